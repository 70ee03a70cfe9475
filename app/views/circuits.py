"""Circuits: the catalogue's saved circuits as graphs, pruned, inspected, exported."""

from __future__ import annotations

import streamlit as st

from app import graph_view, state
from app import resources as R

ss = st.session_state
if ss.pop("_goto", None):
    state.open_attention()

st.title("Circuits")
why = R.missing("interp.catalogue") or R.missing("interp.graph")
if why:
    st.info(f"The circuit catalogue cannot be read: {why}.")
    st.stop()
from interp.graph import graph_file  # noqa: E402  (after the check that it imports)

entries = R.catalogue()
if not entries:
    st.info(
        "The catalogue (`circuits/`) has no entries yet. Build one with "
        "`interp.catalogue.build(name)`."
    )
    st.stop()
names = [e.name for e in entries]
ctx = state.context()
# open on a faithful circuit of the current model where there is one
mine = sorted(
    (e for e in entries if ctx is not None and e.model == ctx.spec), key=lambda e: not e.faithful
)
mine = [e.name for e in mine]
st.selectbox(
    "Circuit",
    names,
    index=state.valid("circuit", names, mine[0] if mine else names[0]),
    key="circuit",
    bind=state.URL,
)
entry = entries[names.index(ss["circuit"])]
info = entry.info
st.subheader(info.get("title", entry.name))
if entry.faithful:
    st.success(entry.verdict.capitalize() + ".")
else:
    st.warning(entry.verdict + ".")
method = info.get("method", {})
task = info.get("task", {})
settings = ", ".join(f"{k}={v}" for k, v in method.items() if k != "name")
st.markdown(
    f"Model **{info.get('model')}**, task **{task.get('name')}** "
    f"({', '.join(f'{k}={v}' for k, v in task.get('args', {}).items())}; metric "
    f"`{task.get('metric')}`), found by **{method.get('name')}**"
    + (f" ({settings})." if settings else ".")
)
if info.get("notes"):
    st.caption(info["notes"])
faith = info.get("faithfulness", {})
if faith:
    cols = st.columns(len(faith) + 2)
    for col, (how, value) in zip(cols, faith.items()):
        col.metric(f"Faithful, {how} abl.", f"{value:.3f}", help=f"{how} ablation")
    if "clean_metric" in info:
        cols[-2].metric("Clean metric", f"{info['clean_metric']:.3f}")
        cols[-1].metric("Corrupted metric", f"{info.get('corrupted_metric', float('nan')):.3f}")
    st.caption(
        "Faithfulness: the task metric with every edge outside the circuit ablated, as a share "
        "of the full model's (1 = the circuit alone does the task)."
    )
if example := info.get("example"):
    with st.expander("Example prompt pair"):
        st.code(f"clean:     {example.get('clean')!r}\ncorrupted: {example.get('corrupted')!r}")
        st.write(f"answer: {example.get('answer')!r}")

try:
    graph = R.circuit(entry.name, graph_file(entry.folder / "graph").stat().st_mtime)
except Exception as err:
    st.error(f"The saved graph of {entry.name!r} cannot be loaded: {err}")
    st.stop()
graph_view.show_graph(
    graph,
    key="circuit",
    title=info.get("title", entry.name),
    file_stem=entry.name,
    model_spec=info.get("model"),
    save=lambda g: R.save_circuit(entry.name, g),
)
