"""Position-aware component circuits: scores, faithfulness and extraction per (edge, position).

The ablation of one edge at one position is checked against a reference written on plain
TransformerLens hooks (``use_split_qkv_input``: one head's q or k input at one position gets the
reference value of one sender).
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import LLAMA_LIKE, tiny_model

from interp.discovery import (
    ablated_metric,
    edge_scores,
    edge_space,
    extract,
    extract_positional,
    faithfulness,
    graph_edges_to_mask,
    positional_edges_to_mask,
)
from interp.tasks import Task, induction_task


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Many small passes: one thread is faster than two fighting over a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _task() -> Task:
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 50, (3, 8), generator=gen)
    corrupted = torch.randint(0, 50, (3, 8), generator=gen)
    return Task(clean, corrupted, answers=torch.arange(3), wrong_answers=torch.arange(3) + 10)


@pytest.mark.parametrize("method", ["EAP", "EAP-IG"])
def test_positional_scores_sum_to_the_edge_scores(method):
    model = tiny_model(0, dtype=torch.float64)
    task = _task()
    flat = edge_scores(model, task, method=method, ig_steps=3)
    per = edge_scores(model, task, method=method, ig_steps=3, by_position=True)
    assert per.axes == ("receiver", "sender", "pos")
    assert per.labels["pos"][0].startswith("0:") and len(per.labels["pos"]) == 8
    assert per.labels["receiver"] == flat.labels["receiver"]
    torch.testing.assert_close(
        per.values.sum(-1), flat.values, rtol=1e-6, atol=1e-7, equal_nan=True
    )
    assert per.values[~edge_space(model).reads()].isnan().all()


def test_positional_scores_refuse_unaligned_prompts():
    task = _task()
    model = tiny_model(0)
    unaligned = Task(
        task.clean,
        task.corrupted,
        answers=task.answers,
        wrong_answers=task.wrong_answers,
        answer_pos=[7, 6, 7],
    )
    with pytest.raises(ValueError, match="different positions per prompt"):
        edge_scores(model, unaligned, by_position=True)


def test_a_mask_equal_at_every_position_is_the_flat_mask():
    model = tiny_model(0, dtype=torch.float64)
    task = _task()
    space = edge_space(model)
    gen = torch.Generator().manual_seed(0)
    kept = (torch.rand(space.n_receivers, space.n_senders, generator=gen) < 0.5) & space.reads()
    flat = faithfulness(model, task, kept)
    per = faithfulness(model, task, kept[..., None].expand(-1, -1, 8).clone())
    torch.testing.assert_close(per.values, flat.values, rtol=0, atol=1e-6)
    everything = space.reads()[..., None].expand(-1, -1, 8).clone()
    torch.testing.assert_close(
        faithfulness(model, task, everything).values, torch.ones(3), rtol=0, atol=1e-6
    )


def _sender_output(cache, model, layer: int, head: int) -> torch.Tensor:
    return cache[f"blocks.{layer}.attn.hook_z"][:, :, head] @ model.W_O[layer, head]


@pytest.mark.parametrize(("channel", "pos"), [("q", 7), ("k", 3), ("v", 5)])
def test_one_edge_at_one_position_equals_hand_patching(channel, pos):
    """Ablate L0H1 -> L1H2.<channel> at one position (resample) by hand and by the engine: a
    query matters at the answer position only, a key or value at every earlier one too."""
    model = tiny_model(0, dtype=torch.float64)
    batch = _task().tokens(model)
    space = edge_space(model)
    _, clean = model.run_with_cache(batch.clean)
    _, corrupted = model.run_with_cache(batch.corrupted)
    change = _sender_output(corrupted, model, 0, 1) - _sender_output(clean, model, 0, 1)

    def patch(act, hook):
        act = act.clone()
        act[:, pos, 2] = act[:, pos, 2] + change[:, pos]
        return act

    model.set_use_split_qkv_input(True)
    try:
        with torch.no_grad():
            logits = model.run_with_hooks(
                batch.clean, fwd_hooks=[(f"blocks.1.hook_{channel}_input", patch)]
            )
    finally:
        model.set_use_split_qkv_input(False)
    want = float(batch.score(logits[:, batch.answer_pos][None])[0])
    ablate = torch.zeros(space.n_receivers, space.n_senders, 8, dtype=torch.bool)
    ablate[space.head_receiver(1, 2, channel), space.head_sender(0, 1), pos] = True
    reference = torch.stack(
        [corrupted["blocks.0.hook_resid_pre"]]
        + [_sender_output(corrupted, model, la, h) for la in range(2) for h in range(4)]
        + [corrupted[f"blocks.{la}.hook_mlp_out"] for la in range(2)],
        dim=2,
    )[:, :, [0, 1, 2, 3, 4, 9, 5, 6, 7, 8, 10]]  # input, L0 heads, MLP0, L1 heads, MLP1
    got = ablated_metric(model, space, batch, ablate, reference)
    assert got == pytest.approx(want, abs=1e-9)
    assert got != pytest.approx(float(batch.baseline(model)[0]), abs=1e-6)


@pytest.mark.parametrize("gqa", [False, True])
def test_positional_graph_reads_back_to_its_mask(gqa):
    """Also under grouped-query attention: a key/value edge drawn into each query head of its
    group reads back to the group's one receiver."""
    model = tiny_model(0, **LLAMA_LIKE) if gqa else tiny_model(0)
    task = _task()
    space = edge_space(model)
    scores = edge_scores(model, task, by_position=True)
    circuit = extract_positional(scores, top_n=60)
    assert circuit.n_edges > 0 and all(n.pos is not None for n in circuit.nodes)
    mask = positional_edges_to_mask(space, circuit, 8)
    assert int(mask.sum()) <= 60
    src, dst = circuit.edge_index
    assert all(circuit.nodes[a].pos == circuit.nodes[b].pos for a, b in zip(src, dst, strict=True))
    torch.testing.assert_close(
        faithfulness(model, task, circuit).values, faithfulness(model, task, mask).values
    )
    torch.testing.assert_close(  # positional scores sum to the flat ones here too
        scores.values.sum(-1), edge_scores(model, task).values, equal_nan=True
    )
    with pytest.raises(ValueError, match="by_position=True"):
        extract_positional(edge_scores(model, task), top_n=3)


# Measured on induction-2l, 16 prompts of period 20 (31 positions), EAP-IG 5 steps, resample
# ablation. A position-agnostic edge holds at all 31 positions, so equal edge counts favour it;
# equal (edge, position) counts are the last pair: 320 pairs against 10 edges (310 pairs).
POSITIONAL = {20: 0.093, 40: 0.285, 80: 0.979, 320: 1.043}  # top-n (edge, position) pairs
FLAT = {20: 0.081, 40: 0.881, 80: 0.962, 10: 0.001}  # top-n position-agnostic edges


def test_induction_positional_circuit(induction_model):
    """The previous-token head L0H3 reads the first copy (position 10) and writes next to it
    (11), where the induction heads' keys read it; the induction heads write the logits at the
    last position (30)."""
    model = induction_model
    task = induction_task(model, n=16, period=20, seed=0)
    space = edge_space(model)
    per = edge_scores(model, task, method="EAP-IG", ig_steps=5, by_position=True)
    flat = edge_scores(model, task, method="EAP-IG", ig_steps=5)
    measured = {}
    for n_pos, n_flat in zip(POSITIONAL, FLAT, strict=True):
        circuit = extract_positional(per, top_n=n_pos)
        kept = graph_edges_to_mask(space, extract(flat, top_n=n_flat))
        measured[n_pos, n_flat] = (
            round(float(faithfulness(model, task, circuit, "resample").values[0]), 3),
            round(float(faithfulness(model, task, kept, "resample").values[0]), 3),
        )
    print("induction-2l resample faithfulness (positional, flat):", measured)
    for (n_pos, n_flat), (f_pos, f_flat) in measured.items():
        assert f_pos == pytest.approx(POSITIONAL[n_pos], abs=0.03)
        assert f_flat == pytest.approx(FLAT[n_flat], abs=0.03)
    circuit = extract_positional(per, top_n=40)
    edges = {(s.name.split(":")[0], t.name.split(":")[0], m) for s, t, _, m in circuit.edges()}
    assert {n.pos for n in circuit.nodes} == {10, 11, 30}
    assert ("input@10", "L0H3@10", "EAP-IG:v") in edges
    assert {("L0H3@11", f"L1H{h}@11", "EAP-IG:k") for h in range(4)} <= edges
    assert {(f"L1H{h}@30", "logits@30", "EAP-IG") for h in range(4)} <= edges
