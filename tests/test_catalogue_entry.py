"""A catalogue entry's typed fields: parsed once from ``entry.json``, refused with the file and
the field named when malformed, and unchanged through a write and a read."""

import json

import pytest
from typer.testing import CliRunner

from interp.artifacts import ArtifactError
from interp.catalogue import (
    FAITHFUL,
    LEVELS,
    Example,
    Faithfulness,
    HeadEffect,
    MethodSpec,
    TaskSpec,
    entries,
    load_entry,
    write_entry,
)
from interp.cli import app
from interp.graph import CircuitGraph, Node


def tiny_graph() -> CircuitGraph:
    g = CircuitGraph(provenance={"model": "induction-2l"})
    head = Node("head", layer=1, index=0, label="L1H0")
    g.add_edge(Node("token", pos=0, index=3, label="'A'"), head, 0.5)
    g.add_edge(head, Node("logit", layer=2, pos=0, index=4, label="'B'"), 2.0)
    return g


def full_info() -> dict:
    """An entry as :func:`interp.catalogue.build` writes a head-patching circuit."""
    return {
        "name": "ioi-by-hand",
        "title": "IOI, by hand",
        "model": "smollm2-135m",
        "level": "heads",
        "task": {"name": "ioi", "args": {"n": 16}, "metric": "logit_diff"},
        "example": {
            "clean": "When Mary and John",
            "corrupted": "When Anne and Bob",
            "answer": " Mary",
        },
        "method": {"name": "head-patching", "top_n": 2, "unit": "heads", "mlps": "all"},
        "heads": [{"head": "L23H3", "effect": -2.0}, {"head": "L29H0", "effect": 1}],
        "nodes": 4,
        "edges": 2,
        "faithfulness": {"zero": 0.25, "mean": 0.5, "resample": 0.875},
        "clean_metric": 4.5,
        "corrupted_metric": 0.5,
        "model_provenance": {"spec": "smollm2-135m", "source": "gpt2"},
        "notes": "Two heads, for the test.",
    }


def write_raw(root, name: str, info) -> None:
    """Write ``entry.json`` as given, past :func:`write_entry`'s check (as an old or a hand-edited
    entry would be)."""
    folder = root / name
    tiny_graph().save(folder / "graph")
    (folder / "entry.json").write_text(json.dumps(info))


def test_typed_fields_round_trip_through_write_and_load(tmp_path):
    written = write_entry("ioi-by-hand", full_info(), tiny_graph(), tmp_path)
    loaded = load_entry("ioi-by-hand", tmp_path)
    assert loaded == written and entries(tmp_path) == [loaded]
    assert loaded.info == full_info()  # entry.json is the same plain JSON as before
    assert loaded.title == "IOI, by hand" and loaded.model == "smollm2-135m"
    assert loaded.level == "heads"
    assert loaded.task_spec == TaskSpec("ioi", {"n": 16}, "logit_diff")
    assert loaded.method == MethodSpec(
        "head-patching", {"top_n": 2, "unit": "heads", "mlps": "all"}
    )
    assert loaded.faithfulness == Faithfulness(zero=0.25, mean=0.5, resample=0.875)
    assert (loaded.nodes, loaded.edges) == (4, 2)
    assert (loaded.clean_metric, loaded.corrupted_metric) == (4.5, 0.5)
    assert loaded.example == Example("When Mary and John", "When Anne and Bob", " Mary")
    assert loaded.heads == (HeadEffect("L23H3", -2.0), HeadEffect("L29H0", 1.0))
    assert loaded.notes == "Two heads, for the test."
    assert loaded.graph().n_edges == 2


def test_an_old_entry_with_only_the_required_fields_loads_with_defaults(tmp_path):
    write_raw(
        tmp_path,
        "old",
        {
            "model": "induction-2l",
            "task": {"name": "induction"},
            "method": {"name": "hand"},
            "faithfulness": {"zero": 0.1, "resample": 0.9},
        },
    )
    old = load_entry("old", tmp_path)
    assert old.title == "old" and old.level == "heads" and old.notes == ""
    assert old.task_spec == TaskSpec("induction", {}, None)
    assert old.method == MethodSpec("hand", {})
    assert old.faithfulness.mean is None and old.faithfulness.as_dict() == {
        "zero": 0.1,
        "resample": 0.9,
    }
    assert old.edges is None and old.example is None and old.heads == ()
    assert old.faithful and old.verdict.startswith("faithful: it recovers 90%")


@pytest.mark.parametrize(
    "change,field,why",
    [
        (lambda i: i.pop("faithfulness"), "'faithfulness' is missing", "missing faithfulness"),
        (
            lambda i: i["faithfulness"].update(resample="high"),
            "'faithfulness.resample' is 'high', not a number",
            "a faithfulness that is not a number",
        ),
        (
            lambda i: i["faithfulness"].update(resample=True),
            "'faithfulness.resample' is True, not a number",
            "a boolean is not a number",
        ),
        (
            lambda i: i["faithfulness"].update(exact=1.0),
            "unknown ablation(s) 'exact'; accepted: zero, mean, resample",
            "an unknown ablation",
        ),
        (
            lambda i: i.update(level="neurons"),
            f"level 'neurons' is not one of {', '.join(LEVELS)}",
            "an unknown level",
        ),
        (lambda i: i.pop("model"), "'model' is missing", "no model"),
        (lambda i: i["task"].pop("name"), "'task.name' is missing", "a task without a name"),
        (lambda i: i.update(method="EAP"), "'method' is 'EAP', not a JSON object", "a bare method"),
        (lambda i: i.update(edges=2.5), "'edges' is 2.5, not a whole number", "fractional edges"),
        (
            lambda i: i["heads"][1].pop("effect"),
            "'heads[1].effect' is missing",
            "a head without its effect",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v and "'" not in v else "",
)
def test_a_malformed_entry_names_the_file_and_the_field(tmp_path, change, field, why):
    info = full_info()
    change(info)
    write_raw(tmp_path, "broken", info)
    where = str(tmp_path / "broken" / "entry.json")
    for read in (lambda: load_entry("broken", tmp_path), lambda: entries(tmp_path)):
        with pytest.raises(ArtifactError) as err:
            read()
        assert where in str(err.value) and field in str(err.value), why
    # and write_entry refuses it before anything is written
    with pytest.raises(ArtifactError, match="entry.json"):
        write_entry("also-broken", info, tiny_graph(), tmp_path)
    assert not (tmp_path / "also-broken").exists()


def test_an_entry_that_is_not_a_json_object_is_refused(tmp_path):
    write_raw(tmp_path, "list", [1, 2])
    with pytest.raises(ArtifactError, match=r"list/entry.json: expected a JSON object, got list"):
        load_entry("list", tmp_path)


def test_the_cli_names_a_malformed_entry_instead_of_a_traceback(tmp_path, monkeypatch):
    info = full_info()
    info["faithfulness"]["resample"] = "high"
    write_raw(tmp_path, "broken", info)
    monkeypatch.setenv("INTERP_CIRCUITS", str(tmp_path))
    for argv in (["circuits", "list"], ["circuits", "check", "broken"]):
        out = CliRunner().invoke(app, argv)
        assert out.exit_code == 2, out.output
        assert "broken/entry.json" in out.output and "'faithfulness.resample'" in out.output


def test_faithfulness_reads_as_the_stored_mapping_and_judges_by_resample():
    f = Faithfulness(zero=-0.1, resample=0.5)
    assert f.as_dict() == {"zero": -0.1, "resample": 0.5} == dict(f)
    assert list(f) == ["zero", "resample"] and len(f) == 2 and f["resample"] == 0.5
    with pytest.raises(KeyError):
        f["mean"]  # not measured
    assert not f.faithful and f.verdict.startswith("NOT FAITHFUL") and "50%" in f.verdict
    assert Faithfulness(resample=FAITHFUL).faithful
    assert not Faithfulness(zero=1.0).faithful
    assert Faithfulness(zero=1.0).verdict.startswith("faithfulness not measured under resample")
    with pytest.raises(AttributeError):
        f.resample = 1.0  # frozen: the stored figure is not edited in place


def test_every_shipped_entry_parses_and_its_typed_fields_match_its_json():
    shipped = entries()
    assert shipped, "the shipped catalogue is empty"
    for e in shipped:
        raw = json.loads((e.folder / "entry.json").read_text())
        assert e.info == raw, e.name
        assert e.level in LEVELS and e.model == raw["model"] and e.title == raw["title"]
        assert e.task_spec.name == raw["task"]["name"] and e.task_spec.args == raw["task"]["args"]
        assert e.method.name == raw["method"]["name"]
        assert e.faithfulness.as_dict() == raw["faithfulness"]
        assert e.edges == raw["edges"] and e.nodes == raw["nodes"]
        assert e.example is not None and e.example.clean == raw["example"]["clean"]
        assert e.faithful == (e.faithfulness.resample >= FAITHFUL)
        if e.method.name == "head-patching":
            assert [h.head for h in e.heads] == [h["head"] for h in raw["heads"]], e.name
