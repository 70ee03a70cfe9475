"""Circuits, Pathways and Features pages: graphs pruned and inspected, features explained."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def catalogue(tmp_path, monkeypatch):
    """A one-entry catalogue: the induction circuit of induction-2l, drawn by hand."""
    from hand_made import hand_made_catalogue

    monkeypatch.setenv("INTERP_CIRCUITS", str(tmp_path))
    return hand_made_catalogue(tmp_path)


def test_circuits_page_shows_the_entry_prunes_and_opens_a_head(make_app, catalogue):
    at = make_app()
    at.switch_page("views/circuits.py").run()
    no_exception(at)
    assert at.selectbox(key="circuit").value == "induction-by-hand"
    faith = {m.label: m.value for m in at.metric}
    assert faith["Faithful, resample abl."] == "0.875"
    print([c.value for c in at.caption])
    assert any("of 4 edges shown" in c.value for c in at.caption)
    at.radio(key="circuit_prune").set_value("top edges").run()
    at.slider(key="circuit_top").set_value(2).run()
    no_exception(at)
    assert any("2 of 4 edges" in c.value for c in at.caption)
    at.selectbox(key="circuit_node").set_value("head.1.0").run()
    said = [m.value for m in at.markdown]
    assert any(s.startswith("**L1H0**") for s in said)
    assert any(s.startswith("To: 'B'") for s in said)  # its strongest edge out
    assert at.get("download_button")  # JSON and HTML/PNG export
    at.button(key="open_head.1.0").click().run()
    no_exception(at)
    assert [t.value for t in at.title] == ["Attention"]
    assert at.multiselect(key="heads").value == ["L1H0"]


def test_circuits_page_says_so_when_the_catalogue_is_empty(make_app, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CIRCUITS", str(tmp_path))
    at = make_app()
    at.switch_page("views/circuits.py").run()
    no_exception(at)
    assert any("no entries yet" in i.value for i in at.info)


def test_circuits_page_names_a_malformed_entry(make_app, catalogue, tmp_path):
    import json

    path = tmp_path / "induction-by-hand" / "entry.json"
    info = json.loads(path.read_text())
    info["faithfulness"]["resample"] = "high"
    path.write_text(json.dumps(info))
    at = make_app()
    at.switch_page("views/circuits.py").run()
    no_exception(at)
    (error,) = at.error
    assert str(path) in error.value and "'faithfulness.resample'" in error.value


def test_circuits_page_shows_the_heads_a_head_patching_circuit_keeps(make_app, catalogue, tmp_path):
    import json

    path = tmp_path / "induction-by-hand" / "entry.json"
    info = json.loads(path.read_text())
    info["method"] = {"name": "head-patching", "top_n": 2, "unit": "heads", "mlps": "all"}
    info["heads"] = [{"head": "L1H0", "effect": -2.0}, {"head": "L0H3", "effect": 0.5}]
    path.write_text(json.dumps(info))
    at = make_app()
    at.switch_page("views/circuits.py").run()
    no_exception(at)
    assert any("found by **head-patching** (top_n=2" in m.value for m in at.markdown)
    assert any("The 2 heads kept" in e.label for e in at.expander)
    assert at.dataframe[0].value["head"].tolist() == ["L1H0", "L0H3"]


def test_pathways_page_traces_the_prompt(make_app):
    at = make_app(depth="1")
    at.switch_page("views/pathways.py").run(timeout=120)
    no_exception(at)
    nodes = at.selectbox(key="pathway_node").options
    assert any(n.startswith("head.1.") for n in nodes)  # an induction head carries it
    assert any(n.startswith("logit") for n in nodes)


@pytest.fixture(scope="module")
def transcoder_folder(tmp_path_factory):
    """Untrained transcoders for both MLPs of induction-2l, saved as sae-lens folders."""
    from interp import load_model
    from interp.dictionaries import new_transcoder, save_transcoders

    torch.manual_seed(0)
    model = load_model("induction-2l", device="cpu")
    tcs = {layer: new_transcoder(model, layer, 32) for layer in range(model.cfg.n_layers)}
    return str(save_transcoders(tcs, tmp_path_factory.mktemp("tc") / "transcoders"))


def test_features_page_explains_a_feature_and_follows_the_widgets(make_app, transcoder_folder):
    at = make_app(transcoders=transcoder_folder)
    at.switch_page("views/features.py").run(timeout=120)
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Features"] == "32"
    effects = at.dataframe[0].value
    assert len(effects) == 10
    first = effects["promotes"].tolist()
    at.number_input(key="feature").set_value(5).run()
    no_exception(at)
    assert at.dataframe[0].value["promotes"].tolist() != first
    at.selectbox(key="feature_layer").set_value("1").run()
    no_exception(at)
    assert len(at.dataframe[1].value) > 0


def test_features_page_without_transcoders_says_how_to_get_them(make_app, tmp_path):
    at = make_app()
    at.switch_page("views/features.py").run()
    no_exception(at)
    from app import resources as R

    if not R.shipped_transcoders("induction-2l"):
        assert any("train" in i.value for i in at.info)
    at = make_app(transcoders=str(tmp_path))
    at.switch_page("views/features.py").run()
    no_exception(at)
    assert any("Cannot use the transcoders" in e.value for e in at.error)
