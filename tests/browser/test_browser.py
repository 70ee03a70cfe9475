"""The app in a real browser: pages render, the atlas and the attention view answer the mouse,
and the URL carries the state."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest

# a real server and browser: about 3 minutes on 2 busy cores (CI runs the slow tests)
pytestmark = pytest.mark.slow

PAGES = {
    "": "Head atlas",
    "attention": "Attention",
    "induction": "Induction",
    "patching": "Activation patching",
    "emergence": "Emergence",
    "pathways": "Pathways",
    "circuits": "Circuits",
    "features": "Features",
}


def settle(page, timeout: float = 60_000) -> None:
    """Wait until the app's script run is over and nothing is stale."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.dataset.testScriptState === 'notRunning'
                && !document.querySelector('[data-stale="true"]');
        }""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)


def shot(page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("APP_SHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    return path


def query(page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders(page, app_url, shots, path):
    page.goto(f"{app_url}/{path}")
    page.get_by_role("heading", name=PAGES[path], exact=True).wait_for()
    settle(page)
    no_exception(page)
    page.locator('[data-testid="stSidebar"] .tok.bos').wait_for()  # the prompt's token strip
    shot(page, shots, f"page-{path or 'head-atlas'}")


def test_clicking_a_head_in_the_atlas_opens_it(page, app_url, shots):
    page.goto(app_url)
    page.get_by_role("heading", name="Head atlas").wait_for()
    settle(page)
    cells = page.locator(".js-plotly-plot").first.locator(".scatterlayer .point")
    cells.first.wait_for()  # plotly draws after the script run ends
    assert cells.count() == 8  # 2 layers x 4 heads of induction-2l
    box = cells.nth(6).bounding_box()  # layer 1, head 2
    right = cells.nth(7).bounding_box()  # layer 1, head 3: one cell to the right
    above = cells.nth(2).bounding_box()  # layer 0, head 2: one cell up
    centre = lambda b: (b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)  # noqa: E731
    (cx, cy), (rx, _), (_, ay) = centre(box), centre(right), centre(above)
    # near the cell's corner, far outside its marker: the whole cell answers the click
    x, y = cx - 0.4 * (rx - cx), cy + 0.4 * (cy - ay)
    assert abs(x - cx) > box["width"] and abs(y - cy) > box["height"]
    page.mouse.move(x - 2, y - 2)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    settle(page)
    assert urlparse(page.url).path.endswith("/attention")
    assert query(page)["heads"] == "L1H2"
    shot(page, shots, "atlas-click-opened-attention")


def test_hovering_a_token_shades_where_it_attends_and_the_lock_holds(page, app_url, shots):
    page.goto(f"{app_url}/attention?heads=L0H3")
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    settle(page)
    view = page.frame_locator("iframe").first
    info = view.locator("#av-info")
    view.locator("#tok-12").hover()
    assert info.inner_text().startswith("query #12 attends most to #11")  # previous-token head
    shade = view.locator("#tok-11").evaluate("e => getComputedStyle(e).backgroundColor")
    assert shade not in ("rgba(0, 0, 0, 0)", "transparent")
    shot(page, shots, "attention-hover")
    view.locator("#tok-12").click()
    view.locator("#tok-5").hover()
    assert info.inner_text().startswith("locked query #12")  # the lock holds
    view.locator("#av-clear").click()
    assert "hover a token" in info.inner_text()
    view.locator("#tok-5").hover()
    assert info.inner_text().startswith("query #5")


def test_the_url_carries_the_state_both_ways(page, app_url, shots):
    prompt = ">>> a = 7; b = a; print(b)\n"
    # L3H3: not the head the page opens on (L3H2, the strongest), which the URL leaves out
    page.goto(f"{app_url}/attention?model=reasoning-tuned&heads=L3H3&prompt={quote(prompt)}")
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    settle(page)
    no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("4 layers x 4 heads", exact=False).count() == 1
    params = query(page)
    assert params["model"] == "reasoning-tuned" and params["heads"] == "L3H3"
    assert params["prompt"] == prompt
    # a widget change goes into the URL
    page.get_by_role("link", name="Head atlas").click()
    page.get_by_role("heading", name="Head atlas").wait_for()
    settle(page)
    assert query(page)["model"] == "reasoning-tuned"  # kept across pages
    page.get_by_role("combobox", name="Score").click()
    page.get_by_role("option", name="previous-token", exact=True).click()
    settle(page)
    assert query(page)["score"] == "previous-token"
    shot(page, shots, "url-state")


def click_point(page, points, index: int) -> None:
    """Click a plotly marker the way a user does (move, press, release)."""
    box = points.nth(index).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 2, y - 2)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()


def drawn_labels(page, graph) -> tuple[list[str], list[dict]]:
    """The node labels ``graph`` draws and their boxes, checked never to overlap (the graph is
    scrolled on screen first: mouse clicks need it there)."""
    labels = graph.locator(".annotation")
    labels.first.wait_for()
    graph.locator(".cartesianlayer").scroll_into_view_if_needed()
    settle(page)
    names = [labels.nth(i).text_content() for i in range(labels.count())]
    boxes = [labels.nth(i).bounding_box() for i in range(labels.count())]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"] + 0.5
                or b["x"] + b["width"] <= a["x"] + 0.5
                or a["y"] + a["height"] <= b["y"] + 0.5
                or b["y"] + b["height"] <= a["y"] + 0.5
            )
            assert apart, (names[i], a, b)
    return names, boxes


@pytest.mark.parametrize(
    ("url", "heading", "label"),
    [
        ("pathways", "Pathways", "L1H1"),
        ("circuits?circuit=ioi-smollm2", "Circuits", "L23H3"),
        ("circuits?circuit=induction-smollm2", "Circuits", "L16H0"),
    ],
)
def test_every_circuit_viewer_draws_labels_apart(page, app_url, shots, url, heading, label):
    """The Pathways viewer and the large SmolLM2 catalogue circuits (62 and 132 nodes) keep
    their drawn labels apart; a crowded node keeps its label in its hover text."""
    page.goto(f"{app_url}/{url}")
    page.get_by_role("heading", name=heading, exact=True).wait_for()
    settle(page, timeout=180_000)
    no_exception(page)
    graph = page.locator(".js-plotly-plot").last if heading == "Pathways" else None
    graph = graph or page.locator(".js-plotly-plot").first
    names, _ = drawn_labels(page, graph)
    assert label in names, names
    shot(page, shots, f"viewer-{url.split('=')[-1]}")


def test_clicking_a_node_in_a_circuit_shows_it_and_opens_its_head(page, app_url, shots):
    page.goto(f"{app_url}/circuits")
    page.get_by_role("heading", name="Circuits", exact=True).wait_for()
    settle(page)
    no_exception(page)
    page.get_by_text("Faithful, resample abl.").wait_for()
    graph = page.locator(".js-plotly-plot").first
    names, boxes = drawn_labels(page, graph)
    assert "L1H0" in names
    # each label sits 16 px above its node: click the node under "L1H0"
    box = boxes[names.index("L1H0")]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 + 16
    page.mouse.move(x - 2, y - 2)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    page.get_by_role("button", name="Open L1H0 in Attention").wait_for()
    settle(page)
    shot(page, shots, "circuit-node")
    page.get_by_role("button", name="Open L1H0 in Attention").click()
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    settle(page)
    assert query(page)["heads"] == "L1H0"


def test_a_patching_sweep_runs_and_a_cell_opens_its_head(page, app_url, shots):
    page.goto(f"{app_url}/patching")
    page.get_by_role("heading", name="Activation patching").wait_for()
    settle(page)
    page.get_by_role("button", name="Run sweep").click()
    page.get_by_text("Clean metric").wait_for()
    settle(page)
    no_exception(page)
    shot(page, shots, "patching")
    cells = page.locator(".js-plotly-plot").first.locator(".scatterlayer .point")
    cells.first.wait_for()
    assert cells.count() == 8  # layer x head
    click_point(page, cells, 4)  # layer 1, head 0
    page.get_by_role("heading", name="Attention", exact=True).wait_for()
    settle(page)
    assert query(page)["heads"] == "L1H0"
