"""Path patching checked against a hand-written loop and against activation patching."""

import pytest
import torch
from tiny_models import LLAMA_LIKE, tiny_llama_folder, tiny_model

from interp.patching import patch_sweep
from interp.path_patching import path_patch_sweep
from interp.tasks import Task, induction_task


def tiny(attn_only=False, n_layers=3, seed=0):
    return tiny_model(seed, n_layers=n_layers, n_heads=3, d_vocab=11, attn_only=attn_only)


def tiny_task(seed=0):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, 11, (3, 7), generator=gen)
    corrupted = torch.randint(0, 11, (3, 7), generator=gen)
    return Task(clean, corrupted, torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]))


def by_hand(model, task, sender, receivers):
    """The definition, one sender, unbatched, with TransformerLens's own hooks."""
    batch = task.tokens(model)
    _, clean = model.run_with_cache(batch.clean)
    _, corrupted = model.run_with_cache(batch.corrupted)
    s_layer, s_head = sender

    def freeze(z, hook):
        layer = hook.layer()
        z = clean[hook.name].clone()
        if layer == s_layer:
            z[:, :, s_head] = corrupted[hook.name][:, :, s_head]
        return z

    z_hooks = [(f"blocks.{i}.attn.hook_z", freeze) for i in range(model.cfg.n_layers)]
    if receivers == "logits":
        logits = model.run_with_hooks(batch.clean, fwd_hooks=z_hooks)
        return batch.tl_metric()(logits).item()
    recorded = {}

    def record(act, hook):
        recorded[hook.name] = act.clone()

    names = {f"blocks.{layer}.attn.hook_{kind}" for kind, layer, _ in receivers}
    model.run_with_hooks(batch.clean, fwd_hooks=z_hooks + [(n, record) for n in names])

    def replace(act, hook):
        for kind, layer, head in receivers:
            if hook.name == f"blocks.{layer}.attn.hook_{kind}":
                act[:, :, head] = recorded[hook.name][:, :, head]
        return act

    logits = model.run_with_hooks(batch.clean, fwd_hooks=[(n, replace) for n in names])
    return batch.tl_metric()(logits).item()


@pytest.mark.parametrize("receivers", ["logits", [("q", 2, 0), ("v", 2, 1)], [("k", 1, 2)]])
def test_sweep_equals_the_definition_applied_by_hand(receivers):
    model, task = tiny(), tiny_task()
    result = path_patch_sweep(model, task, receivers, senders_per_pass=4, progress=False)
    last = 3 if receivers == "logits" else min(r[1] for r in receivers)
    for layer in range(last):
        for head in range(3):
            expected = by_hand(model, task, (layer, head), receivers)
            assert result.values[layer, head].item() == pytest.approx(expected, abs=1e-5)


def test_grouped_query_key_and_value_receivers_are_the_groups():
    """Under grouped-query attention (4 query heads on 2 key/value heads) a k/v receiver of a
    head replaces its group's shared key/value: the definition by hand on the group's index, the
    same value for both heads of a group, and the bridge's numbers."""

    model = tiny_model(0, n_layers=3, d_vocab=11, **LLAMA_LIKE)
    task = tiny_task()
    for kind in ("k", "v"):
        result = path_patch_sweep(model, task, [(kind, 2, 3)], progress=False)
        same_group = path_patch_sweep(model, task, [(kind, 2, 2)], progress=False)
        torch.testing.assert_close(result.values, same_group.values)
        for layer in range(2):
            for head in range(4):
                expected = by_hand(model, task, (layer, head), [(kind, 2, 1)])  # group of head 3
                assert result.values[layer, head].item() == pytest.approx(expected, abs=1e-5)


def test_grouped_query_bridge_gives_the_hooked_transformers_numbers(tmp_path):
    from interp import load_model

    folder = tiny_llama_folder(tmp_path / "gqa", n_kv=2, n_layers=3)
    hooked = load_model(folder, device="cpu", backend="hooked")
    bridge = load_model(folder, device="cpu", backend="bridge")
    task = induction_task(hooked, n=3, period=5)
    receivers = [("q", 2, 1), ("k", 2, 3), ("v", 1, 2)]
    torch.testing.assert_close(
        path_patch_sweep(bridge, task, receivers, progress=False).values,
        path_patch_sweep(hooked, task, receivers, progress=False).values,
        atol=1e-5,
        rtol=1e-5,
    )


def test_with_no_other_path_it_equals_activation_patching():
    model, task = tiny(attn_only=True, n_layers=1), tiny_task(1)
    paths = path_patch_sweep(model, task, "logits", progress=False)
    heads = patch_sweep(model, task, "z", ("layer", "head"), direction="noise", progress=False)
    assert torch.allclose(paths.values, heads.values, atol=1e-5)


def test_bad_receivers():
    model, task = tiny(), tiny_task()
    with pytest.raises(ValueError, match="out of range"):
        path_patch_sweep(model, task, [("q", 5, 0)])
    with pytest.raises(ValueError, match="is not accepted"):
        path_patch_sweep(model, task, [("z", 1, 0)])
    with pytest.raises(ValueError, match="receivers is empty"):
        path_patch_sweep(model, task, [])
