"""The Features page on induction-2l's shipped transcoders: it explains a feature with the
library's numbers, jumps to a connected feature, and steers the model from the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="module")
def organism():
    from interp import load_model
    from interp.dictionaries import held_out_tokens, load_transcoders

    model = load_model("induction-2l", device="cpu")
    return model, load_transcoders("induction-2l"), held_out_tokens(model, n=32)


def bodies(at) -> list[str]:
    return [h.proto.body for h in at.get("html")]


def test_the_page_shows_the_library_page_and_jumps_to_a_downstream_feature(make_app, organism):
    from interp.dictionaries import feature_page

    model, tcs, tokens = organism
    at = make_app(feature_layer="0", feature="129")
    at.switch_page("views/features.py").run(timeout=120)
    no_exception(at)
    page = feature_page(model, tcs, 0, 129, tokens, k=8)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Density of feature 129"] == f"{page['density']:.4f}"
    assert metrics["Max activation"] == f"{page['max_activation']:.2f}"
    shaded = next(b for b in bodies(at) if 'class="feature-contexts"' in b)
    assert shaded.count('class="ctx"') == len(page["contexts"]) == 8
    assert shaded.count("tok peak") == 8  # the peak token of every context outlined
    shown = [float(a) for a in re.findall(r'data-act="([-0-9.]+)"', shaded)]
    wanted = [a for c in page["contexts"] for a in c["activations"]]
    assert shown == pytest.approx(wanted, abs=1e-4)
    effects = at.dataframe[0].value
    assert effects["promotes"].tolist() == [t for t, _ in page["logits"]["top"]]
    assert effects["suppresses"].tolist() == [t for t, _ in page["logits"]["bottom"]]
    first = page["downstream"][0]
    button = at.button(key="downstream_0")
    assert button.label.startswith(f"L1 #{first['feature']} ")
    button.click().run()
    no_exception(at)
    assert at.selectbox(key="feature_layer").value == "1"
    assert at.number_input(key="feature").value == first["feature"]
    assert at.subheader[0].value == f"Layer 1, feature {first['feature']}"
    up = feature_page(model, tcs, 1, first["feature"], tokens[:2])["upstream"]
    assert at.button(key="upstream_0").label == f"L0 #{up[0]['feature']}  ({up[0]['weight']:+.3f})"


def test_steering_from_the_page_shows_both_completions(make_app, organism):
    from interp.dictionaries import feature_page, steer

    model, tcs, tokens = organism
    at = make_app(feature_layer="0", feature="129")
    at.switch_page("views/features.py").run(timeout=120)
    assert not [b for b in bodies(at) if 'class="completion"' in b]  # nothing before Generate
    at.radio(key="steer_mode").set_value("add")
    at.slider(key="steer_strength").set_value(8.0)
    at.button(key="steer_run").click().run(timeout=120)
    no_exception(at)
    top = feature_page(model, tcs, 0, 129, tokens)["max_activation"]
    prompt = at.text_area(key="steer_prompt").value
    s = steer(model, tcs, 0, 129, prompt, mode="add", value=8.0 * top, max_new_tokens=12)
    assert s.diverges_at is not None  # strong enough to change the text
    shown = [b for b in bodies(at) if 'class="completion"' in b]
    assert len(shown) == 2
    baseline, steered = shown
    assert steered.count('class="gen"') == 12
    steps = at.dataframe[1].value
    assert steps["baseline"].tolist() == [repr(t) for t in s.baseline]
    assert steps["steered"].tolist() == [repr(t) for t in s.steered]
    assert steps["baseline"].tolist() != steps["steered"].tolist()
    assert any(f"different from step {s.diverges_at}" in c.value for c in at.caption)
    at.slider(key="steer_strength").set_value(0.0).run()  # new settings: Generate again
    assert not [b for b in bodies(at) if 'class="completion"' in b]
    at.button(key="steer_run").click().run()
    assert any("is the same" in c.value for c in at.caption)  # add 0: the model unchanged
    steps = at.dataframe[1].value
    assert steps["steered"].tolist() == steps["baseline"].tolist() == [repr(t) for t in s.baseline]


@pytest.mark.slow
def test_the_page_reads_and_steers_smollm2_on_english():
    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    at = AppTest.from_file(str(app), default_timeout=600)  # SmolLM2 loads in about 25 s
    for key, value in {"model": "smollm2-135m", "feature_layer": "15", "feature": "3"}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("views/features.py").run()
    no_exception(at)
    assert at.subheader[0].value == "Layer 15, feature 3"
    assert {b.key for b in at.button} >= {"upstream_0", "downstream_0"}
    # every MLP has a transcoder: upstream features sit in earlier layers, downstream in later
    up, down = (
        re.match(r"L(\d+) #", at.button(key=k).label) for k in ("upstream_0", "downstream_0")
    )
    assert up and int(up.group(1)) < 15 and down and int(down.group(1)) > 15
    at.text_area(key="steer_prompt").set_value("The capital of France is")
    at.radio(key="steer_mode").set_value("add")
    at.slider(key="steer_strength").set_value(10.0)
    at.number_input(key="steer_tokens").set_value(6)
    at.button(key="steer_run").click().run()
    no_exception(at)
    steps = at.dataframe[1].value
    assert len(steps) == 6
    assert steps["baseline"].tolist() != steps["steered"].tolist()


def test_a_prompt_that_cannot_be_steered_is_reported_and_the_page_goes_on(make_app):
    at = make_app(feature_layer="0", feature="129")
    at.switch_page("views/features.py").run(timeout=120)
    at.text_area(key="steer_prompt").set_value("")
    at.button(key="steer_run").click().run()
    no_exception(at)
    assert any(e.value.startswith("Cannot steer: prompt='' is empty") for e in at.error)
    assert at.dataframe[1].value["feature"].tolist()  # the prompt's features still drawn below
