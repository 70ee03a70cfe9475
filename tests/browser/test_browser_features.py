"""The Features page in a real browser on induction-2l's shipped transcoders: contexts shaded by
activation, the logit lists, a jump to a downstream feature, and a steered completion."""

from __future__ import annotations

import re

import pytest
from test_browser import no_exception, query, settle, shot

pytestmark = pytest.mark.slow


def test_the_feature_page_reads_and_steers(page, app_url, shots):
    page.goto(f"{app_url}/features?feature_layer=0&feature=129")
    page.get_by_role("heading", name="Layer 0, feature 129").wait_for()
    contexts = page.locator(".feature-contexts .ctx")
    # the heading is drawn before the page is read (a first visit computes it, and the URL's
    # widgets may rerun the script once): wait for the contexts, then for the run to end
    contexts.first.wait_for(timeout=120_000)
    settle(page)
    no_exception(page)
    assert contexts.count() == 8
    assert page.locator(".feature-contexts .tok.peak").count() == 8
    peak = page.locator(".feature-contexts .tok.peak").first
    shade = peak.evaluate("e => getComputedStyle(e).backgroundColor")
    assert shade == "rgb(255, 140, 0)"  # fully shaded: the strongest token of the strongest context
    acts = [float(a) for a in contexts.first.locator(".tok").evaluate_all(
        "spans => spans.map(s => s.dataset.act)"
    )]  # fmt: skip
    assert max(acts) == pytest.approx(float(peak.get_attribute("data-act")))
    assert page.get_by_text("Direct logit effects").is_visible()
    assert page.locator('[data-testid="stDataFrame"]').first.is_visible()
    assert re.search(r"It promotes `?\S+", page.locator("main").inner_text())
    page.locator(".js-plotly-plot").first.wait_for()  # the activation histogram
    shot(page, shots, "features")

    # steer: the default clamp (5x the feature's max activation) changes the completion
    page.get_by_role("button", name="Generate").click()
    page.locator(".completion").nth(1).wait_for()
    settle(page)
    no_exception(page)
    baseline, steered = (
        page.locator(".completion").nth(i).locator(".gen").all_inner_texts() for i in (0, 1)
    )
    assert len(baseline) == len(steered) == 12
    assert baseline != steered
    page.get_by_text("The steered completion is different from step").wait_for()
    path = shot(page, shots, "features-steered")
    assert path.stat().st_size > 10_000

    # a downstream feature opens with one click, and the URL says which
    label = page.locator('[data-testid="stButton"] button').filter(has_text=re.compile(r"^L1 #"))
    target = re.match(r"L1 #(\d+)", label.first.inner_text()).group(1)
    label.first.click()
    page.get_by_role("heading", name=f"Layer 1, feature {target}").wait_for()
    settle(page)
    no_exception(page)
    assert query(page).get("feature") == target and query(page).get("feature_layer") == "1"
