"""Graphs export as PNG through kaleido and the local chromium (CI installs it)."""

import os

import pytest

from interp.graph import CircuitGraph, Node


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")
def test_circuit_plot_exports_png():
    from app import plots

    g = CircuitGraph(provenance={"prompt_tokens": ["a", "b"]})
    g.add_edge(Node("token", pos=0, index=1, label="a"), Node("logit", 1, 1, 2, "b", 0.5), 1.0)
    assert plots.can_draw_png()
    png = g.plot().to_image(format="png", width=400, height=300)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
