import pytest
import torch

from interp.attribution import direct_logit_attribution, logit_lens
from interp.heads import neuron_in_out_cosine, neuron_top_contexts, neuron_vocab_projection
from interp.hooks import attention_knockout, caching, run_with_cache
from interp.tasks import induction_task


def test_direct_logit_attribution_adds_up_to_the_logit_difference(induction_model):
    task = induction_task(induction_model, n=4, period=10)
    batch = task.tokens(induction_model)
    clean, _ = batch.baseline(induction_model)
    parts = direct_logit_attribution(induction_model, batch)
    total = (
        parts["heads"].values.sum() + parts["neurons"].values.sum() + parts["other"].values.sum()
    )
    assert total.item() == pytest.approx(clean, abs=1e-3)
    (where, _), *_ = parts["heads"].top(1)
    assert where["layer"] == "1"  # the induction head writes the answer


def test_a_bridge_without_biases_gives_the_hooked_transformers_attribution(induction_model):
    """The bridge of a Llama-style model has no bias tensors (None), where HookedTransformer has
    zeros: every term still comes out, equal."""
    from interp import load_model

    bridge = load_model("induction-2l", device="cpu", backend="bridge")
    task = induction_task(induction_model, n=4, period=10)
    want = direct_logit_attribution(induction_model, task)
    got = direct_logit_attribution(bridge, task)
    for key in ("heads", "neurons", "other"):
        torch.testing.assert_close(got[key].values, want[key].values, atol=1e-4, rtol=1e-4)


def test_logit_lens_last_layer_equals_the_model(induction_model):
    tokens = induction_model.to_tokens(["def f(x):\n    return x\n"])
    lens = logit_lens(induction_model, tokens)
    with torch.no_grad():
        logprobs = (
            induction_model(tokens).log_softmax(-1)[0, :-1].gather(-1, tokens[0, 1:, None])[:, 0]
        )
    assert torch.allclose(lens.values[-1], logprobs, atol=1e-4)
    assert lens.axes == ("layer", "pos") and lens.values.shape[0] == 2


def test_attention_knockout_blocks_exactly_the_chosen_edges(induction_model):
    tokens = induction_model.to_tokens(["x = 1\ny = x\nz = y\n"])
    name = "blocks.1.attn.hook_pattern"
    with (
        attention_knockout(induction_model, [1], dest=[-1], src=[0, 1], heads=[2]),
        caching(induction_model, [name]) as cache,
    ):
        induction_model(tokens)
    pattern = cache[name][0][0]  # head q k
    assert pattern[2, -1, :2].abs().max() == 0
    assert pattern[2, -1].sum().item() == pytest.approx(1.0, abs=1e-5)
    _, plain = run_with_cache(induction_model, tokens, [name])
    assert torch.allclose(pattern[[0, 1, 3]], plain[name][0, [0, 1, 3]])
    assert not any(hp.fwd_hooks for hp in induction_model.hook_dict.values())
    with pytest.raises(ValueError, match="within 0..1"):
        with attention_knockout(induction_model, [5], dest=[0], src=[0]):
            pass


def test_neurons(induction_model):
    tokens = induction_model.to_tokens(["import os\nimport sys\n", "for i in range(10):\n"])[:, :6]
    top = neuron_top_contexts(induction_model, tokens, layer=0, neurons=[3, 7], k=2)
    _, cache = run_with_cache(induction_model, tokens, ["blocks.0.mlp.hook_post"])
    best = top[3][0]
    assert best["activation"] == pytest.approx(cache["blocks.0.mlp.hook_post"][..., 3].max().item())
    assert cache["blocks.0.mlp.hook_post"][best["row"], best["pos"], 3].item() == pytest.approx(
        best["activation"]
    )
    proj = neuron_vocab_projection(induction_model, 1, k=4)
    assert proj["top"].shape == (induction_model.cfg.d_mlp, 4)
    cos = neuron_in_out_cosine(induction_model)
    assert cos.values.shape == (2, induction_model.cfg.d_mlp) and cos.values.abs().max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="out of range"):
        neuron_top_contexts(induction_model, tokens, layer=0, neurons=[10**6])
