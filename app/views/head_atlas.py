"""Head atlas: every head's detector score as a layer x head grid; click a head to open it."""

from __future__ import annotations

import streamlit as st

from app import plots, state
from app import resources as R

ctx = state.require_context()
ss = st.session_state


def _open_clicked() -> None:
    cell = plots.selected_cell(ss.get("atlas_chart"))
    if cell is not None:
        state.select_heads([state.head_label(*cell)])
        ss["_goto"] = "views/attention.py"


if ss.pop("_goto", None):
    state.open_attention()

st.title("Head atlas")
scores = list(R.HEAD_SCORES)
left, right = st.columns([3, 1])
with left:
    st.selectbox(
        "Score",
        scores,
        index=state.valid("score", scores, "induction"),
        key="score",
        bind=state.URL,
        help="interp.heads: one score per head",
    )
score = ss["score"]
with left:
    st.caption(R.HEAD_SCORES[score].help)
reads_prompt = R.HEAD_SCORES[score].reads_prompt
if reads_prompt and ctx.prompt_problem:
    st.error(ctx.prompt_problem)
    st.stop()
result = R.head_score(ctx.spec, ctx.device, score, ctx.prompt if reads_prompt else "")
values = result.values.float().numpy()
selected = [state.parse_head(h) for h in ss.get("heads", []) if h in state.all_heads(ctx.info)]
fig = plots.clickable_heatmap(
    values,
    x=[str(h) for h in range(ctx.info.n_heads)],
    y=[str(la) for la in range(ctx.info.n_layers)],
    title=f"{result.metric} ({ctx.spec})",
    colour=score,
    xaxis="head",
    yaxis="layer",
    highlight=selected,
)
with left:
    st.plotly_chart(
        fig, key="atlas_chart", on_select=_open_clicked, selection_mode="points", width="stretch"
    )
    st.caption("Click a cell to open that head on the Attention page.")
with right:
    st.markdown("**Top heads**")
    top = result.top(min(8, values.size))
    st.dataframe(
        {
            "head": [state.head_label(int(w["layer"]), int(w["head"])) for w, _ in top],
            "score": [round(v, 3) for _, v in top],
        },
        hide_index=True,
        key="atlas_top",
    )
    heads = state.all_heads(ctx.info)
    best = state.head_label(int(top[0][0]["layer"]), int(top[0][0]["head"]))
    st.selectbox("Head", heads, index=state.valid("atlas_open", heads, best), key="atlas_open")
    if st.button("Open in Attention", key="atlas_open_button"):
        state.select_heads([ss["atlas_open"]])
        state.open_attention()
with st.expander("Provenance"):
    st.json(result.provenance, expanded=False)
