"""Every page of the app on the shipped organisms: it runs, shows what it should, and reacts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def titles(at) -> list[str]:
    return [t.value for t in at.title]


def test_head_atlas_opens_on_the_default_model_with_its_induction_heads(make_app):
    at = make_app()
    no_exception(at)
    assert titles(at) == ["Head atlas"]
    assert at.selectbox(key="model").value == "induction-2l"
    assert at.selectbox(key="score").value == "induction"
    top = at.dataframe[0].value
    assert set(top["head"][:3]) == {"L1H0", "L1H1", "L1H2"}  # the known induction heads
    assert top["score"][0] > 0.8
    strip = [h.proto.body for h in at.get("html")]
    assert any('class="tok bos"' in body for body in strip)  # BOS shown in the token strip


def test_changing_the_score_changes_the_atlas(make_app):
    at = make_app()
    at.selectbox(key="score").set_value("previous-token").run()
    no_exception(at)
    top = at.dataframe[0].value
    assert top["head"][0] == "L0H3"  # the previous-token head


def test_the_atlas_offers_the_library_head_scores(make_app):
    from interp.heads import HEAD_SCORES

    at = make_app()
    assert list(at.selectbox(key="score").options) == list(HEAD_SCORES)


def test_prompt_detector_scores_use_the_prompt(make_app):
    at = make_app()
    at.selectbox(key="score").set_value("detector:previous_token_head").run()
    first = list(at.dataframe[0].value["score"])
    at.text_area(key="prompt").set_value("a b c d e f g h a b c d e f g h").run()
    no_exception(at)
    assert list(at.dataframe[0].value["score"]) != first


def test_open_button_jumps_to_attention_with_the_head(make_app):
    at = make_app()
    at.selectbox(key="atlas_open").set_value("L1H2")
    at.button(key="atlas_open_button").click().run()
    no_exception(at)
    assert titles(at) == ["Attention"]
    assert at.multiselect(key="heads").value == ["L1H2"]


def test_attention_opens_on_the_strongest_induction_head_and_follows_a_model_switch(make_app):
    from interp.heads import induction_scores
    from interp.models import load_model

    at = make_app()
    at.switch_page("views/attention.py").run()
    no_exception(at)
    top = induction_scores(load_model("induction-2l")).top(1)[0][0]
    assert at.multiselect(key="heads").value == [f"L{top['layer']}H{top['head']}"]
    assert top["layer"] == "1"  # an induction head, not the last head of the model (L1H3)
    at.multiselect(key="heads").set_value(["L0H0", "L0H3"]).run()
    # L0H0 and L0H3 exist in reasoning-tuned too, but they are another model's heads
    at.selectbox(key="model").set_value("reasoning-tuned").run()
    no_exception(at)
    tuned = induction_scores(load_model("reasoning-tuned")).top(1)[0][0]
    assert at.multiselect(key="heads").value == [f"L{tuned['layer']}H{tuned['head']}"]


def test_attention_lock_shows_where_a_token_attends_and_clears(make_app):
    at = make_app(heads=["L1H0", "L0H3"])
    at.switch_page("views/attention.py").run()
    no_exception(at)
    assert at.multiselect(key="heads").value == ["L1H0", "L0H3"]
    assert at.radio(key="head_view").options == ["L1H0", "L0H3"]
    at.selectbox(key="q").set_value("20").run()
    no_exception(at)
    said = [m.value for m in at.markdown if "attends most to" in m.value]
    assert said and said[0].startswith("**#20")
    at.radio(key="head_view").set_value("L0H3").run()
    said_prev = [m.value for m in at.markdown if "attends most to" in m.value]
    assert said_prev != said  # another head, other numbers
    assert "#19" in said_prev[0].split("attends most to:")[1].split(",")[0]  # previous token
    at.button(key="clear_lock").click().run()
    assert at.selectbox(key="q").value == "none"
    assert not [m for m in at.markdown if "attends most to" in m.value]


def test_the_url_reopens_the_same_view(make_app):
    # widgets are bound to the URL's query parameters (the browser tests check that the URL
    # follows the widgets; AppTest does not report the URL a bound widget writes)
    prompt = ">>> a = 7; b = a; print(b)\n"
    at = make_app(model="reasoning-tuned", prompt=prompt, heads=["L3H2"], q="5")
    at.switch_page("views/attention.py").run()
    no_exception(at)
    assert at.selectbox(key="model").value == "reasoning-tuned"
    assert at.text_area(key="prompt").value == ">>> a = 7; b = a; print(b)\n"
    assert at.multiselect(key="heads").value == ["L3H2"]
    assert any("4 layers" in c.value for c in at.sidebar.caption)
    assert at.selectbox(key="q").value == "5"
    said = [m.value for m in at.markdown if "attends most to" in m.value]
    assert said and said[0].startswith("**#5")


def test_induction_page_shows_the_drop_and_reacts_to_the_period(make_app):
    at = make_app()
    at.switch_page("views/induction.py").run()
    no_exception(at)
    metrics = {m.label: float(m.value) for m in at.metric}
    assert metrics["Loss, second copy"] < metrics["Loss, first copy"] - 2  # induction works
    at.selectbox(key="period").set_value("30").run()
    no_exception(at)
    again = {m.label: float(m.value) for m in at.metric}
    assert again != metrics
    strongest = [m.value for m in at.markdown if m.value.startswith("Strongest pairs")]
    assert strongest and "L0H3 -> L1H" in strongest[0]  # previous-token head feeds the keys


def test_patching_runs_a_sweep_and_a_new_site_needs_a_new_run(make_app):
    at = make_app()
    at.switch_page("views/patching.py").run()
    no_exception(at)
    assert any("Run sweep" in i.value for i in at.info)
    at.button(key="run_sweep").click().run()
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Clean metric"]) > float(metrics["Corrupted metric"])
    # the most important cell by magnitude is the previous-token head L0H3 (restoring it alone
    # lowers the logit difference), shown with its sign beside what the sign means
    assert float(metrics["Largest |effect|"]) < -2
    important = [m.value for m in at.markdown if m.value.startswith("Most important cells")]
    assert important and important[0].split(";")[0].startswith("Most important cells: **L0H3")
    assert any("no effect =" in m.value and "- means" in m.value for m in at.markdown)
    at.radio(key="patch_rank").set_value("largest").run()
    largest = [m.value for m in at.markdown if m.value.startswith("Most important cells")]
    assert "L0H3" not in largest[0].split(";")[0]
    at.selectbox(key="site").set_value("resid_pre").run()
    assert at.selectbox(key="by").options == ["layer,pos", "layer"]
    assert any("Run sweep" in i.value for i in at.info)
    at.button(key="run_sweep").click().run()
    no_exception(at)
    again = {m.label: m.value for m in at.metric}
    assert again["Largest |effect|"] != metrics["Largest |effect|"]


def test_path_patching_into_the_induction_keys_at_chosen_positions(make_app):
    """The previous-token head L0H3 reaches the induction heads' keys at the looked-up token
    (``IO``: the answer's earlier copy) and not at the last position (``end``)."""
    at = make_app()
    at.switch_page("views/path_patching.py").run()
    no_exception(at)
    assert titles(at) == ["Path patching"]
    assert at.multiselect(key="pp_sender_pos").options[:3] == ["end", "IO", "0:<|endoftext|>"]
    at.multiselect(key="pp_heads").set_value(["L1H0", "L1H1", "L1H2"])
    at.multiselect(key="pp_inputs").set_value(["k"]).run()
    assert any("Run path patching" in i.value for i in at.info)

    def run() -> tuple[float, str, str]:
        at.button(key="run_path_patch").click().run()
        no_exception(at)
        largest = float(next(m.value for m in at.metric if m.label == "Largest |effect|"))
        top = next(m.value for m in at.markdown if m.value.startswith("Most important senders"))
        reading = next(m.value for m in at.markdown if m.value.startswith("**What the numbers"))
        return largest, top, reading

    everywhere, top, reading = run()
    assert everywhere < -10 and top.startswith("Most important senders: **L0H3**")
    assert "into k of L1H0, k of L1H1, k of L1H2 at every position" in reading
    at.multiselect(key="pp_receiver_pos").set_value(["IO"]).run()
    assert any("Run path patching" in i.value for i in at.info)  # new positions, new run
    looked_up, top, reading = run()
    assert looked_up < -10 and top.startswith("Most important senders: **L0H3**")
    assert "at position IO (prompt 0: '11:" in reading
    at.multiselect(key="pp_receiver_pos").set_value(["end"]).run()
    last, _, reading = run()
    assert abs(last) < 0.05 * abs(everywhere) and "at position end" in reading
    at.radio(key="pp_into").set_value("logits").run()
    assert at.multiselect(key="pp_receiver_pos").disabled
    at.multiselect(key="pp_sender_pos").set_value(["30:wait"]).run()
    _, _, reading = run()
    assert "output at position 30 (prompt 0: '30:wait'), into the logits." in reading


def test_emergence_across_training_and_after_post_training(make_app):
    from app import resources as R

    at = make_app()
    at.switch_page("views/emergence.py").run()
    no_exception(at)
    if not R.checkpoints("induction-2l"):
        assert any("interp organisms train induction-2l" in i.value for i in at.info)
    else:
        at.select_slider(key="every").set_value(10).run()
        at.button(key="run_formation").click().run(timeout=120)
        no_exception(at)
        assert any(m.label.startswith("Steepest rise") for m in at.metric)
    at.button(key="run_emergence").click().run(timeout=120)
    no_exception(at)
    said = [m.value for m in at.markdown if m.value.startswith("**Emerged:**")]
    assert said and "L3H2" in said[0]


@pytest.mark.parametrize("page", ["pathways", "circuits", "features"])
def test_library_dependent_pages_run(make_app, page):
    at = make_app()
    at.switch_page(f"views/{page}.py").run()
    no_exception(at)
    assert at.title


# -- bad input ----------------------------------------------------------------------------------


def test_an_empty_prompt_is_reported_and_the_app_keeps_working(make_app):
    at = make_app()
    at.text_area(key="prompt").set_value("   ").run()
    no_exception(at)
    assert any("prompt is empty" in e.value for e in at.error)
    at.switch_page("views/attention.py").run()
    assert any("prompt is empty" in e.value for e in at.error)
    at.text_area(key="prompt").set_value("def f(x): return x").run()
    no_exception(at)
    assert not at.error


def test_a_prompt_longer_than_the_context_is_reported(make_app):
    at = make_app()
    at.switch_page("views/attention.py").run()
    at.text_area(key="prompt").set_value("x = 1\n" * 400).run()
    no_exception(at)
    assert any("reads at most 256" in e.value for e in at.error)


def test_a_path_that_is_not_a_model_is_reported(make_app, tmp_path):
    at = make_app()
    at.selectbox(key="model").set_value("local folder or .gguf file").run()
    no_exception(at)
    at.text_input(key="model_path").set_value(str(tmp_path)).run()
    no_exception(at)
    assert any("neither a model folder" in e.value for e in at.error)
    assert any("Pick a model" in i.value for i in at.info)  # the page says why it is empty
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF not really a gguf file")
    at.text_input(key="model_path").set_value(str(bad)).run()
    no_exception(at)
    assert any("not a GGUF model" in e.value for e in at.error)
    at.selectbox(key="model").set_value("induction-2l").run()
    no_exception(at)
    assert not at.error and at.dataframe


def test_an_unknown_hub_name_is_reported(make_app):
    at = make_app(model="hub model name", model_hub="no-such-model-anywhere")
    no_exception(at)
    assert at.selectbox(key="model").value == "hub model name"
    assert dict(at.query_params)["model_hub"] == "no-such-model-anywhere"
    assert any("unknown model spec" in e.value for e in at.error)


PAGES = [
    None,
    "views/attention.py",
    "views/induction.py",
    "views/patching.py",
    "views/path_patching.py",
    "views/emergence.py",
    "views/pathways.py",
    "views/circuits.py",
    "views/features.py",
]


def test_every_page_runs_on_a_grouped_query_transformer_bridge(tmp_path, monkeypatch):
    """A local Llama with grouped-query attention, loaded as a TransformerBridge (what
    TransformerLens 4 gives, and SmolLM2's default): every page runs, and so does a sweep."""
    import functools
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    from tiny_models import tiny_llama_folder

    from app import resources as R

    folder = tiny_llama_folder(tmp_path / "gqa", n_kv=2, n_layers=3)
    monkeypatch.setenv("INTERP_APP_MODEL", str(folder))
    monkeypatch.setattr(R, "load_model", functools.partial(R.load_model, backend="bridge"))
    app = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    for page in PAGES:
        at = AppTest.from_file(str(app), default_timeout=60).run()
        if page:
            at.switch_page(page).run()
        no_exception(at)
        if page == "views/patching.py":
            at.button(key="run_sweep").click().run()
            no_exception(at)
            assert at.get("plotly_chart")
        if page == "views/path_patching.py":  # into the k of a head under grouped-query attention
            at.multiselect(key="pp_inputs").set_value(["q", "k"]).run()
            at.button(key="run_path_patch").click().run()
            no_exception(at)
            assert at.get("plotly_chart")
    assert type(R.get_model(str(folder), "cpu")).__name__ == "TransformerBridge"


def test_node_panels_show_token_text_literally():
    from app.graph_view import shown

    # a newline is written out, and '+', '*', '_' and backticks do not turn into markdown
    assert shown("'\n+'") == "'\\\\n\\+'"
    assert shown("a*b_c`d") == "a\\*b\\_c\\`d"
    assert shown("L1H0") == "L1H0"


def test_supernodes_and_notes_are_drawn_and_saved_with_the_circuit(make_app, tmp_path, monkeypatch):
    import shutil

    from interp.catalogue import load_entry
    from interp.graph import CircuitGraph

    shutil.copytree("circuits/induction-2l-heads", tmp_path / "induction-2l-heads")
    monkeypatch.setenv("INTERP_CIRCUITS", str(tmp_path))
    at = make_app(circuit="induction-2l-heads")
    at.switch_page("views/circuits.py").run()
    no_exception(at)
    key = "circuit_induction-2l-heads"
    at.radio(key="circuit_prune").set_value("top edges").run()
    at.multiselect(key=f"{key}_group_members").set_value(["head.1.0", "head.1.1"]).run()
    at.text_input(key=f"{key}_group_name").set_value("induction heads").run()
    at.button(key=f"{key}_group_add").click().run()
    no_exception(at)
    at.selectbox(key=f"{key}_note_node").set_value("head.0.3").run()
    at.text_input(key=f"{key}_note_text_head.0.3").set_value("previous token + keys").run()
    at.button(key=f"{key}_save").click().run()
    no_exception(at)
    saved = load_entry("induction-2l-heads", tmp_path)
    graph = saved.graph()
    assert graph.provenance["supernodes"] == [["induction heads", "head.1.0", "head.1.1"]]
    assert graph.provenance["node_notes"] == {"head.0.3": "previous token + keys"}
    assert saved.faithfulness == load_entry("induction-2l-heads").faithfulness
    viewer = CircuitGraph.from_json(tmp_path / "induction-2l-heads" / "graph" / "viewer.json")
    assert viewer.provenance["supernodes"] == graph.provenance["supernodes"]
    fig = graph.plot()
    assert [s.name for s in fig.layout.shapes] == ["supernode:induction heads"]
