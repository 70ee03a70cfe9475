"""Drawing a circuit graph: positions as columns (labelled with their tokens), layers as rows.

The figure is laid out in pixels, not left to the browser: rows and columns get fixed sizes, the
figure its own width and height, so where every node and label lands is known here. That is
what lets labels that would overlap be left off (the more influential node keeps its label; the
others still show theirs on hover) and lets a test check that none overlap.

Works on plain nodes and edge tensors, so it knows neither models nor :class:`CircuitGraph`
(whose ``plot``/``layout`` call it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._node import Node

PALETTE = {
    "token": "#7f7f7f",
    "head": "#1f77b4",
    "mlp": "#ff7f0e",
    "neuron": "#bcbd22",
    "feature": "#2ca02c",
    "error": "#d62728",
    "logit": "#9467bd",
}
EDGE_COLOURS = {+1: "rgba(33,102,172,0.55)", -1: "rgba(178,24,43,0.55)"}
ROW_PX = 64  # one layer row
NODE_PX = 44  # room one node takes across its row (or its column's share)
MIN_COLUMN_PX = 64  # a position column, however few nodes it holds
LABEL_FONT_PX = 11
MARGIN = {"l": 70, "r": 30, "t": 130, "b": 90}


def _char_px(text: str) -> float:
    # plotly's default sans-serif at 11 px: about 0.6 em a character (a little over, to be safe)
    return 0.62 * LABEL_FONT_PX * len(text) + 4


def positions(nodes: list[Node]) -> list[int]:
    """The prompt positions that hold nodes, in order: the columns of :func:`layout`."""
    return sorted({n.pos for n in nodes if n.pos is not None})


def _row(n: Node) -> float:
    """Tokens below layer 0, logits above the last layer, MLPs just above their layer's heads."""
    if n.kind == "token":
        return -1.0
    layer = float(n.layer if n.layer is not None else 0)
    return layer + (0.5 if n.kind in ("mlp", "neuron", "error") else 0.0)


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in data units and in pixels.

    ``xy[i]`` is node ``i``'s (x, y) in data units; the figure is ``width x height`` pixels and
    the axes span ``x_range`` / ``y_range``, so :meth:`to_px` is exact."""

    xy: dict[int, tuple[float, float]]
    rows: list[float]
    columns: list[int | None]
    column_x: list[float]
    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        """Pixel position in the figure (origin top left) of data point (x, y)."""
        plot_w = self.width - MARGIN["l"] - MARGIN["r"]
        plot_h = self.height - MARGIN["t"] - MARGIN["b"]
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return (
            MARGIN["l"] + (x - x0) / (x1 - x0) * plot_w,
            MARGIN["t"] + (y1 - y) / (y1 - y0) * plot_h,
        )


def layout(nodes: list[Node]) -> Layout:
    """Rows are the used layers (tokens at the bottom), columns the used positions (one column
    for graphs without positions); nodes sharing a row and column sit side by side, ordered by
    kind and index. Unused layers and positions take no room."""
    rows = sorted({_row(n) for n in nodes})
    row_of = {r: i for i, r in enumerate(rows)}
    cols: list[int | None] = positions(nodes) or [None]
    if any(n.pos is None for n in nodes) and cols != [None]:
        cols = [None, *cols]
    col_of = {c: i for i, c in enumerate(cols)}
    cells: dict[tuple[int, int], list[int]] = {}
    order = sorted(range(len(nodes)), key=lambda i: (nodes[i].kind, nodes[i].index or 0))
    for i in order:
        n = nodes[i]
        cells.setdefault((row_of[_row(n)], col_of[n.pos]), []).append(i)
    # each column is as wide as its fullest cell needs
    widths = [MIN_COLUMN_PX] * len(cols)
    for (_, c), members in cells.items():
        widths[c] = max(widths[c], NODE_PX * len(members))
    left = [sum(widths[:c]) for c in range(len(cols))]
    total_w = sum(widths)
    xy: dict[int, tuple[float, float]] = {}
    for (r, c), members in cells.items():
        k = len(members)
        for j, i in enumerate(members):
            centre = left[c] + widths[c] / 2 + (j - (k - 1) / 2) * NODE_PX
            xy[i] = (centre / total_w, float(r))
    height = MARGIN["t"] + MARGIN["b"] + ROW_PX * max(len(rows), 2)
    pad = max(360 - total_w, 0) / total_w if total_w else 0.0  # a narrow graph sits centred
    width = MARGIN["l"] + MARGIN["r"] + max(total_w, 360)
    return Layout(
        xy=xy,
        rows=rows,
        columns=cols,
        column_x=[(left[c] + widths[c] / 2) / total_w for c in range(len(cols))],
        width=int(width),
        height=int(height),
        x_range=(-pad / 2, 1.0 + pad / 2),
        y_range=(-0.6, len(rows) - 0.4),
    )


def label_boxes(lay: Layout, texts: list[str], shown: list[bool]) -> list[tuple[float, ...]]:
    """Pixel boxes ``(x0, y0, x1, y1)`` of the labels drawn (centred 16 px above each node)."""
    boxes = []
    for i, text in enumerate(texts):
        if not shown[i] or not text:
            continue
        x, y = lay.to_px(*lay.xy[i])
        w, h = _char_px(text), LABEL_FONT_PX + 4
        boxes.append((x - w / 2, y - 16 - h / 2, x + w / 2, y - 16 + h / 2))
    return boxes


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def choose_labels(lay: Layout, texts: list[str], importance: list[float]) -> list[bool]:
    """Which nodes keep their label: most important first, each only if its label overlaps no
    label already placed."""
    shown = [False] * len(texts)
    placed: list[tuple[float, ...]] = []
    for i in sorted(range(len(texts)), key=lambda i: -importance[i]):
        trial = [False] * len(texts)
        trial[i] = True
        box = label_boxes(lay, texts, trial)
        if box and not any(_overlaps(box[0], p) for p in placed):
            placed.append(box[0])
            shown[i] = True
    return shown


def _row_label(r: float, nodes: list[Node]) -> str:
    if r == -1.0:
        return "tokens"
    kinds = {n.kind for n in nodes if _row(n) == r}
    if kinds == {"logit"}:
        return "logits"
    layer = int(r)
    return f"L{layer} MLP" if r != layer else f"L{layer}"


def figure(
    nodes: list[Node],
    edge_index: tuple[torch.Tensor, torch.Tensor],
    edge_weight: torch.Tensor,
    influence: torch.Tensor | None,
    provenance: dict[str, Any],
    title: str | None = None,
    max_edges: int = 2000,
    edge_names: list[str] | None = None,
):
    """A plotly figure: layers as rows, positions as columns labelled with their tokens, edges
    coloured by sign (a legend says which is which), hover text on nodes and edges, labels that
    never overlap (``fig.layout.meta["label_boxes"]`` holds the boxes drawn)."""
    import plotly.graph_objects as go

    lay = layout(nodes)
    src, dst = edge_index
    w = edge_weight
    order = w.abs().argsort(descending=True)[:max_edges]
    scale = float(w.abs().max()) if w.numel() else 1.0
    fig = go.Figure()
    meaning = provenance.get("edge_reading") or "edge weight"
    for sign, colour in EDGE_COLOURS.items():
        xs, ys, mx, my, hover = [], [], [], [], []
        for e in order.tolist():
            if (w[e] >= 0) != (sign > 0):
                continue
            (x0, y0), (x1, y1) = lay.xy[int(src[e])], lay.xy[int(dst[e])]
            xs += [x0, x1, None]
            ys += [y0, y1, None]
            mx.append((x0 + x1) / 2)
            my.append((y0 + y1) / 2)
            s, t = nodes[int(src[e])], nodes[int(dst[e])]
            how = f" ({edge_names[e]})" if edge_names and edge_names[e] else ""
            hover.append(f"{s.name} → {t.name}<br>weight {float(w[e]):+.4g}{how}")
        name = f"{'positive' if sign > 0 else 'negative'} {meaning}"
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": colour, "width": 1.5},
                hoverinfo="skip",
                name=name,
                legendgroup=name,
            )
        )
        # hover targets at edge midpoints: what each edge is and weighs
        fig.add_trace(
            go.Scatter(
                x=mx,
                y=my,
                mode="markers",
                marker={"size": 9, "color": colour, "opacity": 0.01},
                hovertext=hover,
                hoverinfo="text",
                showlegend=False,
                legendgroup=name,
                name="edges",
            )
        )
    tokens = provenance.get("prompt_tokens") or []
    notes = provenance.get("node_notes") or {}
    importance = [float(v) for v in influence] if influence is not None else [0.0] * len(nodes)
    if influence is None and w.numel():
        strength = torch.zeros(len(nodes)).index_add_(0, src, w.abs()).index_add_(0, dst, w.abs())
        importance = strength.tolist()
    # token nodes are named by the position axis; the rest get a label where it fits
    texts = ["" if n.kind == "token" else n.name for n in nodes]
    shown = choose_labels(lay, texts, importance)
    for kind, colour in PALETTE.items():
        members = [i for i, n in enumerate(nodes) if n.kind == kind]
        if not members:
            continue
        hover = []
        for i in members:
            n = nodes[i]
            where = "" if n.pos is None else f"<br>position {n.pos}"
            if n.pos is not None and n.pos < len(tokens):
                where += f" {tokens[n.pos]!r}"
            extra = "" if influence is None else f"<br>influence {float(influence[i]):.3g}"
            act = "" if n.activation is None else f"<br>activation {n.activation:.3g}"
            note = f"<br><i>{notes[n.node_id]}</i>" if n.node_id in notes else ""
            hover.append(f"<b>{n.name}</b> ({n.kind})<br>{n.node_id}{where}{act}{extra}{note}")
        fig.add_trace(
            go.Scatter(
                x=[lay.xy[i][0] for i in members],
                y=[lay.xy[i][1] for i in members],
                mode="markers",
                marker={"size": 14, "color": colour, "line": {"width": 1, "color": "white"}},
                hovertext=hover,
                hoverinfo="text",
                customdata=[nodes[i].node_id for i in members],
                name=kind,
            )
        )
    for i, text in enumerate(texts):
        if shown[i] and text:
            fig.add_annotation(
                x=lay.xy[i][0],
                y=lay.xy[i][1],
                text=text,
                showarrow=False,
                yshift=16,
                font={"size": LABEL_FONT_PX, "color": "#222"},
                bgcolor="rgba(255,255,255,0.85)",
                borderpad=1,
            )
    _draw_supernodes(fig, lay, nodes, provenance.get("supernodes") or [])
    ticks = []
    for c in lay.columns:
        if c is None:
            ticks.append("all positions")
        else:
            ticks.append(f"{c}: {tokens[c]!r}" if c < len(tokens) else str(c))
    fig.update_xaxes(
        tickvals=lay.column_x,
        ticktext=ticks,
        range=list(lay.x_range),
        showgrid=False,
        zeroline=False,
        tickangle=-30 if len(ticks) > 6 else 0,
    )
    fig.update_yaxes(
        tickvals=list(range(len(lay.rows))),
        ticktext=[_row_label(r, nodes) for r in lay.rows],
        range=list(lay.y_range),
        showgrid=True,
        gridcolor="rgba(0,0,0,0.06)",
        zeroline=False,
    )
    fig.update_layout(
        title={
            "text": title or provenance.get("name", "circuit"),
            "x": 0.01,
            "xanchor": "left",
            "y": 0.995,
            "yanchor": "top",
        },
        xaxis_title="position" if lay.columns != [None] else "",
        yaxis_title="layer",
        showlegend=True,
        legend={
            "orientation": "h",
            "y": 1.0,
            "yanchor": "bottom",
            "x": 0,
            "font": {"size": 11},
        },
        width=lay.width,
        height=lay.height,
        margin=MARGIN,
        plot_bgcolor="white",
        meta={
            "max_abs_weight": scale,
            "label_boxes": label_boxes(lay, texts, shown),
            "labels_shown": sum(shown),
        },
    )
    return fig


def _draw_supernodes(fig, lay: Layout, nodes: list[Node], groups: list[list[str]]) -> None:
    """A shaded box around each supernode's members, its name written inside the box's top edge
    (circuit-tracer's ``supernodes``: ``[name, node_id, ...]``; members not drawn are skipped)."""
    where = {n.node_id: i for i, n in enumerate(nodes)}
    palette = ["#b58900", "#6c71c4", "#2aa198", "#d33682", "#859900", "#cb4b16"]
    for g, group in enumerate(groups):
        members = [where[m] for m in group[1:] if m in where]
        if not members:
            continue
        xs = [lay.xy[i][0] for i in members]
        ys = [lay.xy[i][1] for i in members]
        dx = (
            0.5
            * NODE_PX
            / (lay.width - MARGIN["l"] - MARGIN["r"])
            * (lay.x_range[1] - lay.x_range[0])
        )
        colour = palette[g % len(palette)]
        fig.add_shape(
            type="rect",
            x0=min(xs) - dx,
            x1=max(xs) + dx,
            y0=min(ys) - 0.3,
            y1=max(ys) + 0.42,
            line={"color": colour, "width": 2, "dash": "dot"},
            fillcolor=colour,
            opacity=0.12,
            layer="below",
            label={"text": group[0], "textposition": "bottom left", "font": {"size": 10}},
            name=f"supernode:{group[0]}",
        )
