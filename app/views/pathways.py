"""Pathways: the attention pathway into the model's prediction, traced and drawn as a graph."""

from __future__ import annotations

import streamlit as st

from app import graph_view, state
from app import resources as R

ss = st.session_state
if ss.pop("_goto", None):
    state.open_attention()

st.title("Pathways")
st.markdown(
    "Which heads carry the prediction at the last token, and where they read from: path "
    "patching from each head into the logits, then attention knockout of each source position, "
    "levels deep (`interp.heads.attention_pathways`)."
)
why = R.missing("interp.heads._pathways") or R.missing("interp.graph")
if why:
    st.info(f"Pathway tracing is not available: {why}.")
    st.stop()
ctx = state.require_context(need_prompt=True)
c1, c2, c3, c4 = st.columns(4)
c1.text_input("Target token (empty: the top prediction)", value="", key="target", bind=state.URL)
c2.number_input("Depth", 1, 3, value=2, key="depth", bind=state.URL)
c3.number_input("Heads per receiver", 1, 8, value=3, key="top_heads", persist_state=state.KEEP)
c4.slider(
    "Minimum effect", 0.0, 0.5, value=0.05, step=0.01, key="min_effect", persist_state=state.KEEP
)
settings = (
    ctx.spec,
    ctx.device,
    ctx.prompt,
    ss["target"],
    int(ss["depth"]),
    int(ss["top_heads"]),
    2,
    float(ss["min_effect"]),
)
small = ctx.info.n_layers * ctx.info.n_heads <= 64  # an organism: traced in seconds
if st.button("Trace", key="run_pathway", type="primary", disabled=small):
    ss["pathway_ran"] = settings
if not small and ss.get("pathway_ran") != settings:
    st.info(
        f"Tracing patches every one of the {ctx.info.n_layers * ctx.info.n_heads} heads, "
        "level by level: press **Trace** to start (minutes on a CPU for a model this size)."
    )
    st.stop()
try:
    with st.spinner("tracing..."):
        graph = R.pathways(*settings)
except ValueError as err:
    st.error(f"No pathway to trace: {err}")
    st.stop()
if not graph.n_edges:
    st.info("No head passes the minimum effect: lower it.")
    st.stop()
graph_view.show_graph(
    graph,
    key="pathway",
    title=f"Attention pathway ({ctx.spec})",
    file_stem="pathway",
    model_spec=ctx.spec,
)
