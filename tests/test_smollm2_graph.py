"""The attribution graph of "The capital of France is" on SmolLM2-135M (slow): rebuilt through
the shipped transcoders (all 30 MLPs), its stated figures (top token, graph scores, size,
faithfulness) hold."""

from __future__ import annotations

import pytest
import torch

from interp.attribution_graph import graph_scores
from interp.catalogue import PROMPT_RECIPES, load_entry
from interp.dictionaries import load_transcoders

NAME = "capital-france-smollm2-features"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rebuilt(smollm2):
    torch.set_num_threads(2)
    recipe = PROMPT_RECIPES[NAME]
    tcs = load_transcoders("smollm2-135m")
    info, graph = recipe.graph_entry(smollm2, tcs, n_described=2)
    return info, graph


def test_smollm2_says_paris_through_features_of_many_layers(rebuilt):
    info, graph = rebuilt
    assert info["example"]["answer"] == " Paris"
    assert info["top_tokens"][0]["prob"] == pytest.approx(0.749, abs=0.01)
    assert info["corrupted_top_tokens"][0]["token"] == " Rome"
    layers = {n.layer for n in graph.nodes if n.kind == "feature"}
    assert layers <= set(range(30)) and len(layers) >= 10
    assert graph.provenance["n_layers"] == 30


def test_the_france_entry_states_what_a_rebuild_measures(rebuilt):
    info, graph = rebuilt
    entry = load_entry(NAME)
    stated = entry.info
    assert info["full_graph"] == stated["full_graph"]
    assert info["pruned_graph"] == stated["pruned_graph"]
    assert (len(graph.nodes), graph.n_edges) == (entry.nodes, entry.edges)
    for key, value in stated["graph_scores"].items():
        assert info["graph_scores"][key] == pytest.approx(value, abs=1e-3), key
    # all features ablated move the metric by 3.9 (resample) to 8.5 (zero): the ratios hold well
    for how, value in entry.faithfulness.items():
        assert info["faithfulness"][how] == pytest.approx(value, abs=0.02), how
        moved = info["features_move_metric_by"][how]
        stated_moved = stated["features_move_metric_by"][how]
        assert moved == pytest.approx(stated_moved, rel=1e-3, abs=1e-3), how
        assert abs(moved) > 3.0, how
    assert not entry.faithful and "NOT FAITHFUL" in entry.verdict
    # every MLP has a transcoder: a third of the influence comes through features
    assert stated["graph_scores"]["replacement"] > 0.3
    assert stated["method"]["transcoder_layers"] == list(range(30))
    stored = entry.graph()
    assert {n.node_id for n in stored.nodes} == {n.node_id for n in graph.nodes}


def test_graph_scores_of_the_stored_graph_are_the_pruned_graphs(rebuilt):
    _, graph = rebuilt
    stored = load_entry(NAME).graph()
    torch.testing.assert_close(
        torch.tensor(list(graph_scores(stored).values())),
        torch.tensor(list(graph_scores(graph).values())),
        atol=1e-4,
        rtol=0,
    )
