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


# -- positions ------------------------------------------------------------------------------------


def by_hand_at(model, batch, sender, receivers, send_at=None, recv_at=None):
    """The definition at positions, one sender, with TransformerLens's own hooks and loops.

    ``send_at`` / ``recv_at``: for each prompt, the positions patched at that end (None: all).
    Run 1 caches the corrupted run; run 2 is the clean run with every head's output frozen to
    the clean run's, except the sender's at ``send_at`` (from the corrupted run), recording the
    receivers' inputs; run 3 is the clean run with the receivers' inputs replaced at ``recv_at``.
    """
    n, seq = batch.clean.shape
    every = [list(range(seq))] * n
    send_at, recv_at = send_at or every, recv_at or every
    z_only = lambda name: name.endswith("hook_z")  # noqa: E731
    _, clean = model.run_with_cache(batch.clean, names_filter=z_only)
    _, corrupted = model.run_with_cache(batch.corrupted, names_filter=z_only)
    s_layer, s_head = sender

    def freeze(z, hook):
        z = clean[hook.name].clone()
        if hook.layer() == s_layer:
            for i in range(n):
                for p in send_at[i]:
                    z[i, p, s_head] = corrupted[hook.name][i, p, s_head]
        return z

    z_hooks = [(f"blocks.{i}.attn.hook_z", freeze) for i in range(model.cfg.n_layers)]
    if receivers == "logits":
        return batch.tl_metric()(model.run_with_hooks(batch.clean, fwd_hooks=z_hooks)).item()
    recorded = {}

    def record(act, hook):
        recorded[hook.name] = act.clone()

    names = {f"blocks.{layer}.attn.hook_{kind}" for kind, layer, _ in receivers}
    model.run_with_hooks(batch.clean, fwd_hooks=z_hooks + [(name, record) for name in names])

    def replace(act, hook):
        for kind, layer, head in receivers:
            if hook.name == f"blocks.{layer}.attn.hook_{kind}":
                for i in range(n):
                    for p in recv_at[i]:
                        act[i, p, head] = recorded[hook.name][i, p, head]
        return act

    logits = model.run_with_hooks(batch.clean, fwd_hooks=[(name, replace) for name in names])
    return batch.tl_metric()(logits).item()


INDUCTION_KEYS = [("k", 1, 0), ("k", 1, 1), ("k", 1, 2)]  # induction-2l's induction heads


@pytest.fixture(scope="module")
def induction(induction_model):
    task = induction_task(induction_model, n=4, period=10)
    return induction_model, task, task.tokens(induction_model)


def test_receiver_positions_everywhere_equal_the_unrestricted_sweep(induction):
    model, task, batch = induction
    seq = batch.clean.shape[1]
    free = path_patch_sweep(model, task, INDUCTION_KEYS, progress=False)
    everywhere = path_patch_sweep(
        model,
        task,
        INDUCTION_KEYS,
        sender_positions=list(range(seq)),
        receiver_positions=list(range(-seq, 0)),
        progress=False,
    )
    assert torch.equal(free.values, everywhere.values)
    assert free.values[0, 3] < free.provenance["no_effect"] - 5  # the previous-token head


@pytest.mark.parametrize(
    ("receivers", "sender_positions", "receiver_positions"),
    [
        (INDUCTION_KEYS, None, "IO"),  # the key the induction heads look up
        (INDUCTION_KEYS, None, -1),
        ([("q", 1, 0), ("v", 1, 2)], [3, "end"], ["end"]),
        ([("k", 1, 1)], ["IO"], [6, 7]),
    ],
)
def test_positions_equal_the_definition_by_hand(
    induction, receivers, sender_positions, receiver_positions
):
    model, task, batch = induction
    result = path_patch_sweep(
        model,
        task,
        receivers,
        sender_positions=sender_positions,
        receiver_positions=receiver_positions,
        senders_per_pass=3,
        progress=False,
    )
    seq, n = batch.clean.shape[1], batch.batch
    names = {"end": seq - 1, "IO": 6}  # clean: BOS, 10 tokens, the first 5 again; answer at 6

    def at(positions):
        if positions is None:
            return None
        items = positions if isinstance(positions, list) else [positions]
        return [[names.get(p, p) % seq if isinstance(p, str) else p % seq for p in items]] * n

    for head in range(4):
        expected = by_hand_at(
            model, batch, (0, head), receivers, at(sender_positions), at(receiver_positions)
        )
        assert result.values[0, head].item() == pytest.approx(expected, abs=1e-4)
    assert torch.all(result.values[1] == result.provenance["no_effect"])


def test_the_previous_token_head_reaches_the_induction_keys_at_the_looked_up_token(induction):
    """Limiting the receivers splits the previous-token head's effect on the induction heads'
    keys by position: the key of the token after the earlier copy ("IO") carries it, the key at
    the last position does not."""
    model, task, _ = induction
    free = path_patch_sweep(model, task, INDUCTION_KEYS, progress=False)
    looked_up = path_patch_sweep(
        model, task, INDUCTION_KEYS, receiver_positions="IO", progress=False
    )
    last = path_patch_sweep(model, task, INDUCTION_KEYS, receiver_positions=-1, progress=False)
    no_effect = free.provenance["no_effect"]
    assert looked_up.values[0, 3] - no_effect < 0.8 * (free.values[0, 3] - no_effect)
    assert abs(last.values[0, 3] - no_effect) < 0.05 * abs(free.values[0, 3] - no_effect)


@pytest.mark.parametrize("sender_positions", [-1, ["end", 2], [0, 4, 5]])
def test_logits_with_sender_positions_equal_the_definition_by_hand(sender_positions):
    model, task = tiny(), tiny_task()
    batch = task.tokens(model)
    result = path_patch_sweep(
        model, task, "logits", sender_positions=sender_positions, progress=False
    )
    items = sender_positions if isinstance(sender_positions, list) else [sender_positions]
    at = [[6 if p == "end" else p % 7 for p in items]] * batch.batch
    for layer in range(3):
        for head in range(3):
            expected = by_hand_at(model, batch, (layer, head), "logits", send_at=at)
            assert result.values[layer, head].item() == pytest.approx(expected, abs=1e-4)
    # with every other head frozen, nothing moves the sender's output across positions: only
    # its output at the answer position reaches the logits
    everywhere = path_patch_sweep(model, task, "logits", progress=False)
    if -1 in items or "end" in items:
        torch.testing.assert_close(result.values, everywhere.values)
    else:
        assert torch.all(result.values == result.provenance["no_effect"])
    assert not torch.all(everywhere.values == result.provenance["no_effect"])


def ioi_like_task():
    """Token-id prompts with IOI's roles at different places: answer (IO) 2, wrong answer (S) 3,
    named twice; the object comes first in prompt 0, second in prompt 1."""
    clean = torch.tensor([[0, 2, 5, 3, 7, 3, 9], [0, 3, 5, 2, 3, 8, 9]])
    corrupted = torch.tensor([[0, 2, 5, 3, 7, 4, 9], [0, 3, 5, 2, 4, 8, 9]])
    return Task(clean, corrupted, torch.tensor([2, 2]), torch.tensor([3, 3]))


def test_named_positions_are_found_in_each_prompt():
    from interp.positions import named_positions, position_mask

    model, task = tiny(), ioi_like_task()
    batch = task.tokens(model)
    found = {name: index.tolist() for name, index in named_positions(batch).items()}
    assert found == {"end": [6, 6], "IO": [1, 3], "S1": [3, 1], "S2": [5, 4]}
    mask = position_mask(batch, ["S2", 0], "sender_positions")
    assert mask.nonzero().tolist() == [[0, 0], [0, 5], [1, 0], [1, 4]]
    result = path_patch_sweep(
        model,
        task,
        [("q", 2, 1), ("k", 2, 0)],
        sender_positions="S2",
        receiver_positions=["end", "IO"],
        progress=False,
    )
    for layer in range(2):
        for head in range(3):
            expected = by_hand_at(
                model,
                batch,
                (layer, head),
                [("q", 2, 1), ("k", 2, 0)],
                send_at=[[5], [4]],
                recv_at=[[6, 1], [6, 3]],
            )
            assert result.values[layer, head].item() == pytest.approx(expected, abs=1e-4)


def test_positions_are_recorded_and_read():
    model, task = tiny(), ioi_like_task()
    result = path_patch_sweep(
        model, task, [("q", 2, 1)], sender_positions="S2", receiver_positions=-1, progress=False
    )
    assert result.provenance["sender_positions"] == ["S2"]
    assert result.provenance["receiver_positions"] == [-1]
    assert "corrupted-run output at position S2 (prompt 0: '5:3')" in result.reading
    assert "into q of L2H1 at position -1 (prompt 0: '6:9')" in result.summary()
    free = path_patch_sweep(model, task, "logits", progress=False)
    assert free.provenance["sender_positions"] == "all"
    assert "output at every position, into the logits." in free.reading


def test_bad_positions():
    model, task = tiny(), tiny_task()
    recv = [("q", 2, 0)]
    with pytest.raises(IndexError, match=r"sender_positions=\[0, 7\] holds 7, out of range"):
        path_patch_sweep(model, task, recv, sender_positions=[0, 7])
    with pytest.raises(IndexError, match="use 0..6 .or -7..-1 from the end"):
        path_patch_sweep(model, task, recv, receiver_positions=-8)
    with pytest.raises(ValueError, match="names position 6 more than once"):
        path_patch_sweep(model, task, recv, receiver_positions=[-1, "end"])
    with pytest.raises(ValueError, match="names position 2 more than once"):
        path_patch_sweep(model, task, recv, sender_positions=[2, 2])
    # (under pytest the runtime type checker may refuse first; it names the argument too)
    checker = "|typechecking parameter 'sender_positions'"
    with pytest.raises(TypeError, match=r"holds 1.5; positions are integers or names" + checker):
        path_patch_sweep(model, task, recv, sender_positions=[1.5])
    with pytest.raises(TypeError, match="holds True"):
        path_patch_sweep(model, task, recv, sender_positions=[True])
    with pytest.raises(TypeError, match="is not accepted; give an integer, a name" + checker):
        path_patch_sweep(model, task, recv, sender_positions={1, 2})
    with pytest.raises(ValueError, match="'S3', which is not a position name; names: end, IO"):
        path_patch_sweep(model, task, recv, sender_positions="S3")
    with pytest.raises(ValueError, match="'S2', which this task does not have in every prompt"):
        path_patch_sweep(model, task, recv, sender_positions="S2")
    with pytest.raises(ValueError, match=r"receiver_positions=\[\] is empty"):
        path_patch_sweep(model, task, recv, receiver_positions=[])
    with pytest.raises(ValueError, match="needs head receivers"):
        path_patch_sweep(model, task, "logits", receiver_positions=-1)
