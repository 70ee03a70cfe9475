"""Induction: repeated random tokens, the loss on both copies, the stripe, and K-composition."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import plots, state
from app import resources as R

ctx = state.require_context()
ss = st.session_state
info = ctx.info
senders = [state.head_label(la, h) for la in range(info.n_layers - 1) for h in range(info.n_heads)]
receivers = [state.head_label(la, h) for la in range(1, info.n_layers) for h in range(info.n_heads)]


def _open_pair() -> None:
    cell = plots.selected_cell(ss.get("composition_chart"))
    if cell is not None:
        state.select_heads([senders[cell[0]], receivers[cell[1]]])
        ss["_goto"] = "views/attention.py"


if ss.pop("_goto", None):
    state.open_attention()

st.title("Induction")
st.markdown(
    "Random tokens repeated twice (`BOS r1..rN r1..rN`): an induction head makes the second "
    "copy predictable, so its loss falls far below the first's; its pattern shows a stripe "
    "one position after the diagonal of the earlier copy."
)
max_period = max(3, (info.n_ctx - 1) // 2)
periods = [str(p) for p in (10, 20, 30, 50, 80, 120) if p <= max_period]
heads = state.all_heads(info)
top = R.head_score(ctx.spec, ctx.device, "induction").top(1)[0][0]
default_head = state.head_label(int(top["layer"]), int(top["head"]))  # the strongest one
c1, c2, c3 = st.columns(3)
c1.selectbox(
    "Period (tokens per copy)",
    periods,
    index=state.valid("period", periods, "20"),
    key="period",
    bind=state.URL,
)
c2.number_input(
    "Seed", min_value=0, max_value=10_000, value=0, step=1, key="seed", persist_state=state.KEEP
)
c3.selectbox(
    "Head for the pattern",
    heads,
    index=state.valid("induction_head", heads, default_head),
    key="induction_head",
    persist_state=state.KEEP,
)
period = int(ss["period"])
layer, head = state.parse_head(ss["induction_head"])
probe = R.induction_probe(ctx.spec, ctx.device, period, 8, int(ss["seed"]), layer, head)

m1, m2, m3 = st.columns(3)
m1.metric("Loss, first copy", f"{probe.mean_first:.2f}")
m2.metric("Loss, second copy", f"{probe.mean_second:.2f}")
m3.metric("Drop", f"{probe.mean_first - probe.mean_second:.2f}")

left, right = st.columns(2)
with left:
    x = np.arange(2, period + 1)
    fig = go.Figure(
        [
            go.Scatter(x=x, y=probe.first, name="first copy", mode="lines+markers"),
            go.Scatter(x=x, y=probe.second, name="second copy", mode="lines+markers"),
        ]
    )
    fig.update_layout(
        title="Per-position loss (mean over 8 sequences)",
        xaxis_title="position within the copy",
        yaxis_title="loss (nats)",
        height=380,
        margin={"t": 50},
    )
    st.plotly_chart(fig, key="induction_loss", width="stretch")
with right:
    fig = go.Figure(go.Heatmap(z=probe.pattern, colorscale="Blues", zmin=0, zmax=1))
    fig.update_yaxes(autorange="reversed", title="query")
    fig.update_xaxes(title="key")
    fig.update_layout(
        title=f"{ss['induction_head']} on sequence 0: the stripe sits {period - 1} left of "
        "the diagonal",
        height=380,
        margin={"t": 50},
    )
    st.plotly_chart(fig, key="induction_pattern", width="stretch")

st.subheader("Previous-token -> induction: K-composition")
if info.n_layers < 2:
    st.info("Composition needs at least two layers.")
    st.stop()
comp = R.composition(ctx.spec, ctx.device, "K")
v = comp.values.float().numpy()  # layer1 head1 layer2 head2
matrix = v[: info.n_layers - 1].reshape(len(senders), -1)[:, info.n_heads :]

fig = plots.clickable_heatmap(
    matrix,
    x=receivers,
    y=senders,
    title="K-composition: earlier head (row) writes what the later head's keys read",
    colour="K-composition",
    xaxis="later head",
    yaxis="earlier head",
)
st.plotly_chart(
    fig, key="composition_chart", on_select=_open_pair, selection_mode="points", width="stretch"
)
pairs = sorted(
    (
        (matrix[i, j], senders[i], receivers[j])
        for i in range(len(senders))
        for j in range(len(receivers))
    ),
    reverse=True,
)[:5]
st.markdown(
    "Strongest pairs: "
    + ", ".join(f"{s} -> {r} ({score:.2f})" for score, s, r in pairs)
    + ". Click a cell to open both heads."
)
