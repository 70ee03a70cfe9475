"""A circuit catalogue drawn by hand, for the app's Circuits page (AppTest and browser)."""

import json
from pathlib import Path

from interp.graph import CircuitGraph, Node


def hand_made_catalogue(root: Path) -> CircuitGraph:
    """Write a one-entry catalogue (the induction circuit of induction-2l, 4 edges) under
    ``root``, the folder ``INTERP_CIRCUITS`` names; returns its graph."""
    g = CircuitGraph(provenance={"model": "induction-2l", "method": "hand"})
    tok = Node("token", pos=3, index=17, label="'A'")
    prev = Node("head", layer=0, index=3, label="L0H3")
    ind = Node("head", layer=1, index=0, label="L1H0")
    logit = Node("logit", layer=2, pos=5, index=55, label="'B'", activation=0.9)
    g.add_edge(tok, prev, 0.5)
    g.add_edge(prev, ind, 2.0)
    g.add_edge(ind, logit, 3.0)
    g.add_edge(tok, ind, 0.1)
    folder = root / "induction-by-hand"
    g.save(folder / "graph")
    entry = {
        "name": "induction-by-hand",
        "title": "Induction, drawn by hand",
        "model": "induction-2l",
        "task": {"name": "induction", "args": {"n": 4}, "metric": "logit_diff"},
        "method": {"name": "hand"},
        "faithfulness": {"zero": 0.25, "mean": 0.5, "resample": 0.875},
        "notes": "L0H3 keys L1H0.",
    }
    (folder / "entry.json").write_text(json.dumps(entry))
    return g
