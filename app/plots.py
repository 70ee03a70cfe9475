"""Plotly figures the pages share: a clickable layer x head grid and a clickable heatmap."""

from __future__ import annotations

import functools

import numpy as np
import plotly.graph_objects as go


def clickable_heatmap(
    values: np.ndarray,
    x: list[str],
    y: list[str],
    *,
    title: str,
    colour: str,
    xaxis: str,
    yaxis: str,
    diverging: bool = False,
    highlight: list[tuple[int, int]] = (),
) -> go.Figure:
    """A heatmap with one invisible marker per cell, so a click selects the cell.

    Plotly heatmaps take no part in selections; the markers do. With no hover-distance cutoff
    the marker nearest the pointer is the one hovered and clicked, and on a regular grid that is
    the marker of the cell under the pointer: a click anywhere in a cell selects it, not only on
    its marker. The point's ``customdata`` is ``[row, column]``.
    """
    values = np.asarray(values, dtype=float)
    rows, cols = values.shape
    xx, yy = np.meshgrid(np.arange(cols), np.arange(rows))
    scale = "RdBu" if diverging else "Viridis"
    heat = go.Heatmap(
        z=values,
        x=list(range(cols)),
        y=list(range(rows)),
        colorscale=scale,
        zmid=0.0 if diverging else None,
        colorbar={"title": {"text": colour}},
        hoverinfo="skip",
    )
    text = [
        f"{yaxis} {y[r]}, {xaxis} {x[c]}<br>{colour}: {values[r, c]:.3f}"
        for r, c in zip(yy.ravel(), xx.ravel())
    ]
    cells = go.Scatter(
        x=xx.ravel(),
        y=yy.ravel(),
        mode="markers",
        marker={"size": 18, "opacity": 0.01, "symbol": "square", "color": "black"},
        customdata=np.stack([yy.ravel(), xx.ravel()], axis=1).tolist(),
        hovertext=text,
        hoverinfo="text",
        showlegend=False,
        name="cells",
    )
    fig = go.Figure([heat, cells])
    for r, c in highlight:
        fig.add_shape(
            type="rect",
            x0=c - 0.5,
            x1=c + 0.5,
            y0=r - 0.5,
            y1=r + 0.5,
            line={"color": "#d33682", "width": 3},
        )
    fig.update_layout(
        title=title,
        clickmode="event+select",
        dragmode=False,
        hovermode="closest",
        hoverdistance=-1,  # no cutoff: the nearest cell's marker, wherever in the cell
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        height=max(260, min(900, 60 + 34 * rows)),
    )
    tick = lambda labels, n: {  # noqa: E731
        "tickmode": "array",
        "tickvals": list(range(n)),
        "ticktext": labels,
    }
    fig.update_xaxes(title=xaxis, **tick(x, cols), showgrid=False, zeroline=False)
    fig.update_yaxes(
        title=yaxis, **tick(y, rows), autorange="reversed", showgrid=False, zeroline=False
    )
    return fig


def selected_cell(event) -> tuple[int, int] | None:
    """The ``(row, column)`` of the first clicked cell in a ``st.plotly_chart`` selection."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points:
        data = p.get("customdata")
        if isinstance(data, dict):  # a numpy row comes back as {"0": row, "1": column}
            data = [data.get("0"), data.get("1")]
        if isinstance(data, list | tuple) and len(data) >= 2 and None not in data[:2]:
            return int(data[0]), int(data[1])
        if isinstance(p.get("x"), int | float) and isinstance(p.get("y"), int | float):
            return int(p["y"]), int(p["x"])  # the cell markers sit at (column, row)
    return None


def graph_figure(graph, title: str) -> go.Figure:
    """``CircuitGraph.plot`` made clickable: a click on a node selects it (its ``node_id``).

    The figure keeps the size ``plot`` gave it (its labels were placed for that size)."""
    fig = graph.plot(title=title)
    fig.update_layout(clickmode="event+select")
    return fig


def selected_node(event) -> str | None:
    """The ``node_id`` of the first clicked node in a graph figure's selection."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points:
        data = p.get("customdata")
        if isinstance(data, str):
            return data
        if isinstance(data, list | tuple) and data and isinstance(data[0], str):
            return data[0]
    return None


@functools.cache
def can_draw_png() -> bool:
    """Plotly draws PNG files through kaleido, which drives a local Chrome or Chromium; tried
    once per process on a tiny figure."""
    import importlib.util

    if importlib.util.find_spec("kaleido") is None:
        return False
    try:
        go.Figure().to_image(format="png", width=10, height=10)
    except Exception:
        return False
    return True
