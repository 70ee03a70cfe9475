"""Node-level circuits: the top heads by activation patching, every MLP, all edges between them.

The ranking is checked against ``patch_sweep`` itself, the graph's edges against the node mask
built by hand, its faithfulness against ablating the heads outside it, and the result against the
known circuits of the shipped organisms (L0H3 keying the layer-1 induction heads in
``induction-2l``; L3H2 and L3H3 in ``reasoning-tuned``).
"""

from __future__ import annotations

import pytest
import torch

from interp.discovery import (
    edge_space,
    faithfulness,
    graph_edges_to_mask,
    head_circuit,
    head_effects,
    node_mask,
)
from interp.models import load_model
from interp.patching import patch_sweep
from interp.tasks import induction_task, variable_tracking_task


def test_node_mask_keeps_exactly_the_edges_between_kept_components(induction_model):
    space = edge_space(induction_model)
    mask = node_mask(space, [(0, 3), (1, 2)], mlps=False)
    labels_r, labels_s = space.receiver_labels(), space.sender_labels()
    kept = {(labels_r[r], labels_s[s]) for r, s in mask.nonzero().tolist()}
    # by hand: L1H2 reads the input and L0H3 through q, k and v; the logits read all three
    want = {(f"L1H2.{c}", s) for c in "qkv" for s in ("input", "L0H3")}
    want |= {("L0H3.q", "input"), ("L0H3.k", "input"), ("L0H3.v", "input")}
    want |= {("logits", s) for s in ("input", "L0H3", "L1H2")}
    assert kept == want
    with_mlps = node_mask(space, [(0, 3)], mlps=True)
    assert with_mlps[space.mlp_receiver(1), space.mlp_sender(0)]  # MLP1 reads MLP0
    assert with_mlps[space.mlp_receiver(1), space.head_sender(0, 3)]
    assert not with_mlps[space.head_receiver(1, 2, "q"), space.head_sender(0, 3)]
    with pytest.raises(ValueError, match="L2H0 is not in the model"):
        node_mask(space, [(2, 0)])


def test_head_effects_are_noising_patches_minus_clean(induction_model):
    task = induction_task(induction_model, n=8, period=20, seed=0)
    effects = head_effects(induction_model, task, progress=False)
    swept = patch_sweep(induction_model, task, "z", ("layer", "head"), "noise", progress=False)
    clean = swept.provenance["clean_metric"]
    torch.testing.assert_close(effects.values, swept.values - clean)
    assert effects.axes == ("layer", "head")
    # the induction heads carry the behaviour: corrupting any one of them lowers the metric
    assert (effects.values[1, :3] < -0.1).all(), effects.values


def test_head_circuit_finds_induction_and_is_as_faithful_as_its_node_mask(induction_model):
    task = induction_task(induction_model, n=8, period=20, seed=0)
    circuit = head_circuit(induction_model, task, top_n=4, mlps=True)
    heads = {h["head"] for h in circuit.provenance["heads"]}
    assert {"L0H3", "L1H0", "L1H1", "L1H2"} == heads, circuit.provenance["heads"]
    effects = [abs(h["effect"]) for h in circuit.provenance["heads"]]
    assert effects == sorted(effects, reverse=True)
    space = edge_space(induction_model)
    pairs = [(int(h[1]), int(h[3])) for h in heads]
    hand = node_mask(space, pairs, mlps=True)
    assert torch.equal(graph_edges_to_mask(space, circuit), hand)
    f_graph = faithfulness(induction_model, task, circuit, ("resample", "mean"))
    f_mask = faithfulness(induction_model, task, hand, ("resample", "mean"))
    torch.testing.assert_close(f_graph.values, f_mask.values)
    # measured 0.51 / 0.74 (resample / mean): the layer-0 heads other than L0H3 also feed the
    # induction heads' queries and values; with every head kept the circuit is the model
    torch.testing.assert_close(f_graph.values, torch.tensor([0.507, 0.740]), atol=0.03, rtol=0)
    whole = head_circuit(induction_model, task, top_n=8, mlps=True)
    torch.testing.assert_close(
        faithfulness(induction_model, task, whole).values, torch.ones(3), atol=1e-4, rtol=0
    )
    # edge weights are EAP scores, so an influence filter has something to read
    assert circuit.edge_weight.abs().max() > 0


def test_head_circuit_in_reasoning_tuned_holds_the_tuned_heads():
    model = load_model("reasoning-tuned", device="cpu")
    task = variable_tracking_task(model, n=32, hops=2, seed=5)
    circuit = head_circuit(model, task, top_n=4)
    heads = {h["head"] for h in circuit.provenance["heads"]}
    assert {"L3H2", "L3H3"} <= heads, circuit.provenance["heads"]


def test_head_circuit_refuses_bad_sizes(induction_model):
    task = induction_task(induction_model, n=4, period=20, seed=0)
    with pytest.raises(ValueError, match="top_n=0 must be a positive integer"):
        head_circuit(induction_model, task, top_n=0)
    with pytest.raises(ValueError, match="more than the model's 8 heads"):
        head_circuit(induction_model, task, top_n=9)


def test_under_grouped_query_attention_the_graph_shows_only_the_kept_heads():
    """A key/value group is shared by two query heads; keeping one of them keeps the group's
    edges, drawn into the kept head only, and the graph still maps back to the node mask."""
    from tiny_models import LLAMA_LIKE, tiny_model

    from interp.tasks import Task

    model = tiny_model(0, **LLAMA_LIKE)
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 50, (3, 8), generator=gen)
    corrupted = torch.randint(0, 50, (3, 8), generator=gen)
    task = Task(clean, corrupted, answers=torch.arange(3), wrong_answers=torch.arange(3) + 10)
    circuit = head_circuit(model, task, top_n=3)
    kept = {h["head"] for h in circuit.provenance["heads"]}
    drawn = {n.label for n in circuit.nodes if n.kind == "head"}
    assert drawn == kept
    space = edge_space(model)
    assert space.grouped
    pairs = [(int(h[1]), int(h[3])) for h in kept]
    assert torch.equal(graph_edges_to_mask(space, circuit), node_mask(space, pairs))


def test_discover_head_patching_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    argv = ["discover", "induction-2l", "--task", "induction", "--n", "8", "--period", "20"]
    argv += ["--seed", "0", "--method", "head-patching", "--top-n", "4", "--quiet"]
    out = CliRunner().invoke(app, [*argv, "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "estimate:" not in out.output
    heads = next(line for line in out.stdout.splitlines() if line.startswith("heads kept"))
    assert heads.endswith("L0H3 -13.53, L1H0 -6.36, L1H2 -6.08, L1H1 -3.28"), heads
    assert "resample 0.507" in out.stdout
