"""The circuit catalogue: every entry loads, and its faithfulness figures hold when re-measured."""

import json

import pytest

from interp.catalogue import FEATURE_RECIPES, RECIPES, build, entries, load_entry, recheck
from interp.circuit_graph import CircuitGraph

ENTRIES = entries()
TOLERANCE = 0.02  # faithfulness is a deterministic function of the stored graph and task


def test_the_catalogue_holds_the_required_circuits():
    names = {e.name for e in ENTRIES}
    assert {
        "induction-2l-heads",
        "induction-2l-features",
        "variable-tracking-reasoning-tuned",
        "induction-smollm2",
        "ioi-smollm2",
    } <= names
    for e in ENTRIES:
        assert set(e.faithfulness) == {"zero", "mean", "resample"}
        graph = e.graph()
        assert isinstance(graph, CircuitGraph) and graph.n_edges == e.info["edges"]
        assert any(n.kind == "logit" for n in graph.nodes)
        viewer = json.loads((e.folder / "graph" / "viewer.json").read_text())
        assert len(viewer["links"]) == graph.n_edges


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(e, marks=[pytest.mark.slow] if e.model == "smollm2-135m" else [])
        for e in ENTRIES
    ],
    ids=lambda e: e.name,
)
def test_every_entry_recovers_its_stated_faithfulness(entry, request):
    # SmolLM2 entries share the session's model (loading it takes ~25 s)
    model = request.getfixturevalue("smollm2") if entry.model == "smollm2-135m" else None
    measured = recheck(entry, model=model)
    for how, stated in entry.faithfulness.items():
        assert measured[how] == pytest.approx(stated, abs=TOLERANCE), how


def test_known_circuit_content():
    induction = load_entry("induction-2l-heads").graph()
    k_edges = {(s.name, t.name) for s, t, w, m in induction.edges() if m.endswith(":k") and w < 0}
    assert ("L0H3", "L1H0") in k_edges  # previous-token head keys an induction head
    features = load_entry("induction-2l-features").graph()
    assert {n.kind for n in features.nodes} == {"token", "feature", "error", "logit"}
    tracking = load_entry("variable-tracking-reasoning-tuned")
    assert "head.3.2" in tracking.graph() and tracking.faithfulness["resample"] > 0.9


def test_build_writes_a_complete_entry_and_bad_names_fail(tmp_path):
    entry = build("variable-tracking-reasoning-tuned", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variable-tracking-reasoning-tuned"]
    assert load_entry(entry.name, tmp_path).info["task"]["name"] == "variable-tracking"
    with pytest.raises(ValueError, match="recipes:"):
        build("nope", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="entries:"):
        load_entry("nope", tmp_path)
    assert {*RECIPES, *FEATURE_RECIPES} >= {e.name for e in ENTRIES}
