"""A run's ``plot.html`` draws in Chromium with the network off (plotly.js ships with the run).

The ``browser`` fixture skips, with the reason, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import torch

from interp import CircuitGraph, Node, Result
from interp.store import PLOTLY_JS, save_run


def _runs(tmp_path):
    result = Result(
        torch.tensor([[0.1, -0.9], [0.4, 0.2]]),
        ("layer", "head"),
        "logit_diff",
        provenance={"method": "patch_sweep"},
    )
    graph = CircuitGraph()
    a = graph.add_node(Node("head", layer=0, pos=2, index=1, label="L0H1"))
    b = graph.add_node(Node("logit", layer=2, pos=2, index=5, label="' x'"))
    graph.add_edge(a, b, 0.5, "EAP")
    return [save_run(result, "offline", tmp_path), save_run(graph, "offline-graph", tmp_path)]


def test_plot_html_draws_with_the_network_off(browser, tmp_path):
    run_ids = _runs(tmp_path)
    assert (tmp_path / PLOTLY_JS).stat().st_size > 1_000_000  # the bundle, once per folder
    requested: list[str] = []
    context = browser.new_context(offline=True)
    try:

        def only_files(route):
            requested.append(route.request.url)
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", only_files)
        page = context.new_page()
        for run_id in run_ids:
            page.goto((tmp_path / run_id / "plot.html").as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            assert page.evaluate("typeof Plotly") == "object"
            assert page.locator(".js-plotly-plot .main-svg").count() >= 1
    finally:
        context.close()
    assert all(url.startswith("file://") for url in requested), requested
