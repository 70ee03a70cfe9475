"""A catalogue entry for one prompt pair (``prompt_graph_entry``), and faithfulness against a
chosen rival token, on the organism (fast); SmolLM2's France entry is in test_smollm2_graph."""

from pathlib import Path

import pytest
import torch

from interp.attribution_graph import (
    attribution_graph,
    feature_faithfulness,
    prompt_graph_entry,
    prompt_graph_faithfulness,
    top_features,
)
from interp.catalogue import parse_entry
from interp.dictionaries import held_out_tokens, load_transcoders
from interp.graph import CircuitGraph

PROMPT, CORRUPTED = "def f(x): return x\ndef f(", "def g(y): return y\ndef g("


@pytest.fixture(scope="module")
def setup(induction_model):
    torch.set_num_threads(1)
    tcs = load_transcoders("induction-2l")
    ref = held_out_tokens(induction_model, n=4, seq_len=32)
    return tcs, ref


def test_rival_sets_the_metric_and_bad_rivals_fail(induction_model, setup):
    tcs, ref = setup
    g = attribution_graph(induction_model, tcs, PROMPT, node_threshold=0.8)
    with torch.no_grad():
        logits = induction_model(induction_model.to_tokens(PROMPT))[0, -1]
    target = int(logits.argmax())
    rival = int(logits.argsort(descending=True)[5])
    r = feature_faithfulness(
        induction_model, tcs, g, corrupted=CORRUPTED, ablations=("zero",), rival=rival
    )
    assert (r.provenance["target"], r.provenance["rival"]) == (target, rival)
    assert r.provenance["clean_metric"] == pytest.approx(float(logits[target] - logits[rival]))
    default = feature_faithfulness(induction_model, tcs, g, ablations=("zero",))
    assert default.provenance["rival"] == int(logits.argsort(descending=True)[1])
    with pytest.raises(ValueError, match="clean top token itself"):
        feature_faithfulness(induction_model, tcs, g, ablations=("zero",), rival=target)
    with pytest.raises(ValueError, match="give one token"):
        feature_faithfulness(induction_model, tcs, g, ablations=("zero",), rival="return x")
    with pytest.raises(ValueError, match="token id in 0.."):
        feature_faithfulness(induction_model, tcs, g, ablations=("zero",), rival=10**9)


def test_prompt_graph_entry_is_a_valid_entry_whose_figures_reproduce(induction_model, setup):
    tcs, ref = setup
    info, graph = prompt_graph_entry(
        induction_model,
        tcs,
        PROMPT,
        CORRUPTED,
        model_name="induction-2l",
        title="f -> f",
        n_described=3,
        page_tokens=ref,
        reference_tokens=ref,
    )
    entry = parse_entry(Path("prompt-entry"), info)  # the catalogue's own check of entry.json
    assert entry.level == "features" and entry.task_spec.args["corrupted"] == CORRUPTED
    assert set(entry.faithfulness) == {"zero", "mean", "resample"}
    assert entry.nodes == len(graph.nodes) and entry.edges == graph.n_edges
    counts = info["pruned_graph"]
    assert sum(counts.values()) == len(graph.nodes) and counts["logit"] >= 1
    assert info["full_graph"]["nodes"] >= len(graph.nodes)
    assert 0 <= info["graph_scores"]["replacement"] <= 1
    assert info["top_tokens"][0]["token"] == info["example"]["answer"]
    empty = info["empty_circuit_metric"]
    for how, moved in info["features_move_metric_by"].items():
        assert moved == pytest.approx(info["clean_metric"] - empty[how])
    features = top_features(graph, 3)
    assert [row["node"] for row in info["features"]] == [
        f"feature.{la}.{f}@{p}" for la, p, f, _ in features
    ]
    assert all(isinstance(row["top_context"], str) for row in info["features"])
    again = prompt_graph_faithfulness(induction_model, tcs, graph, info["task"]["args"], ref)
    stated = torch.tensor([info["faithfulness"][h] for h in again.labels["ablation"]])
    torch.testing.assert_close(again.values, stated, atol=1e-5, rtol=0)


def test_prompt_graph_entry_needs_prompts_of_one_length(induction_model, setup):
    tcs, ref = setup
    with pytest.raises(ValueError, match="same length"):
        prompt_graph_entry(
            induction_model, tcs, PROMPT, PROMPT + " x", model_name="m", title="t", n_described=0
        )
    with pytest.raises(ValueError, match="task_args lacks"):
        prompt_graph_faithfulness(induction_model, tcs, CircuitGraph(), {"prompt": PROMPT}, ref)
