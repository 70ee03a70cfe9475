"""Scoped hooks: they act inside their block and never outlive it, even when the body raises."""

import threading

import pytest
import torch

from interp.hooks import ablating, caching, model_lock, patching_from, run_with_cache, steering


def _attached(model):
    return sum(len(hp.fwd_hooks) for hp in model.hook_dict.values())


@pytest.fixture
def tokens(induction_model):
    return induction_model.to_tokens(["x = 1\ny = x\n", "for i in range(3):\n"])[:, :6]


@pytest.mark.parametrize("kind", ["caching", "ablating", "patching", "steering"])
def test_hooks_are_removed_when_the_body_raises(induction_model, tokens, kind):
    name = "blocks.0.hook_resid_post"
    _, cache = run_with_cache(induction_model, tokens, [name])
    managers = {
        "caching": lambda: caching(induction_model, [name]),
        "ablating": lambda: ablating(induction_model, [name]),
        "patching": lambda: patching_from(induction_model, cache),
        "steering": lambda: steering(induction_model, name, torch.ones(128)),
    }
    with pytest.raises(RuntimeError, match="boom"), managers[kind]():
        assert _attached(induction_model) == 1
        raise RuntimeError("boom")
    assert _attached(induction_model) == 0


def test_caching_positions_device_dtype(induction_model, tokens):
    with caching(
        induction_model,
        ["blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"],
        positions=[-1],
        dtype=torch.float16,
    ) as cache:
        induction_model(tokens)
    resid = cache["blocks.1.hook_resid_post"][0]
    assert resid.shape == (2, 1, 128) and resid.dtype == torch.float16
    assert cache["blocks.0.attn.hook_pattern"][0].shape == (2, 4, 1, 6)
    _, full = run_with_cache(induction_model, tokens, ["blocks.1.hook_resid_post"])
    assert torch.allclose(resid.float(), full["blocks.1.hook_resid_post"][:, -1:], atol=1e-2)


def test_zero_ablation_of_a_head_changes_only_that_head(induction_model, tokens):
    name = "blocks.1.attn.hook_z"
    with ablating(induction_model, [name], heads=[2]), caching(induction_model, [name]) as cache:
        induction_model(tokens)
    z = cache[name][0]
    assert z[:, :, 2].abs().max() == 0
    assert z[:, :, [0, 1, 3]].abs().max() > 0


def test_mean_and_resample_ablation_use_the_reference(induction_model, tokens):
    name = "blocks.0.hook_attn_out"
    _, ref = run_with_cache(induction_model, tokens, [name])
    with (
        ablating(induction_model, [name], "mean", reference=tokens),
        caching(induction_model, [name]) as cache,
    ):
        induction_model(tokens)
    assert torch.allclose(
        cache[name][0], ref[name].mean(0, keepdim=True).expand_as(ref[name]), atol=1e-5
    )
    with (
        ablating(induction_model, [name], "resample", reference=tokens),
        caching(induction_model, [name]) as cache,
    ):
        induction_model(tokens)
    rows = cache[name][0]
    assert all(any(torch.allclose(r, ref[name][j]) for j in range(2)) for r in rows)
    with pytest.raises(ValueError, match="needs reference"):
        with ablating(induction_model, [name], "mean"):
            pass


def test_patching_from_a_cache_reproduces_that_run(induction_model, tokens):
    other = tokens.flip(0)
    names = [f"blocks.{i}.hook_resid_pre" for i in range(2)]
    logits_other, cache = run_with_cache(induction_model, other, names)
    with patching_from(induction_model, cache, ["blocks.1.hook_resid_pre"]):
        patched = induction_model(tokens)
    assert torch.allclose(patched, logits_other, atol=1e-5)
    with patching_from(induction_model, cache, ["blocks.1.hook_resid_pre"], positions=[0, 1]):
        partly = induction_model(tokens)
    assert not torch.allclose(partly[:, -1], logits_other[:, -1], atol=1e-3)


def test_steering_adds_the_vector(induction_model, tokens):
    name = "blocks.0.hook_resid_post"
    v = torch.randn(128)
    _, base = run_with_cache(induction_model, tokens, [name])
    with (
        steering(induction_model, name, v, scale=2.0, positions=[1]),
        caching(induction_model, [name]) as cache,
    ):
        induction_model(tokens)
    diff = cache[name][0] - base[name]
    assert torch.allclose(diff[:, 1], (2.0 * v).expand(2, -1), atol=1e-5)
    assert diff[:, 0].abs().max() == 0


def test_concurrent_threads_never_see_each_others_hooks(induction_model, tokens):
    name = "blocks.0.hook_resid_post"
    expected = induction_model(tokens)
    outs, errors = {}, []

    def plain(i):
        for _ in range(5):
            with model_lock(induction_model):
                outs.setdefault(i, []).append(induction_model(tokens))

    def steered():
        for _ in range(5):
            with steering(induction_model, name, torch.full((128,), 50.0)):
                induction_model(tokens)

    threads = [threading.Thread(target=plain, args=(0,)), threading.Thread(target=steered)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(torch.allclose(o, expected, atol=1e-5) for o in outs[0])
