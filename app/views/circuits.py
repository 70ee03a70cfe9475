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
from interp.artifacts import ArtifactError  # noqa: E402  (after the check that it imports)
from interp.graph import graph_file  # noqa: E402

try:
    entries = R.catalogue()
except ArtifactError as err:  # a malformed entry.json: the message names the file and field
    st.error(f"The circuit catalogue cannot be read: {err}")
    st.stop()
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
st.subheader(entry.title)
if entry.faithful:
    st.success(entry.verdict.capitalize() + ".")
else:
    st.warning(entry.verdict + ".")
task, method = entry.task_spec, entry.method
settings = ", ".join(f"{k}={v}" for k, v in method.settings.items())
task_args = ", ".join(f"{k}={v}" for k, v in task.args.items())
metric = f"metric `{task.metric}`" if task.metric else "metric: the target logit"
st.markdown(
    f"Model **{entry.model}**, task **{task.name}** "
    f"({task_args + '; ' if task_args else ''}{metric}), found by **{method.name}**"
    + (f" ({settings})." if settings else ".")
)
if entry.notes:
    st.caption(entry.notes)
faith = entry.faithfulness.as_dict()
if faith:
    cols = st.columns(len(faith) + 2)
    for col, (how, value) in zip(cols, faith.items()):
        col.metric(f"Faithful, {how} abl.", f"{value:.3f}", help=f"{how} ablation")
    for col, label, value in (
        (cols[-2], "Clean metric", entry.clean_metric),
        (cols[-1], "Corrupted metric", entry.corrupted_metric),
    ):
        if value is not None:
            col.metric(label, f"{value:.3f}")
    st.caption(
        "Faithfulness: the task metric with every edge outside the circuit ablated, as a share "
        "of the full model's (1 = the circuit alone does the task)."
    )
if entry.heads:
    with st.expander(f"The {len(entry.heads)} heads kept, by effect when patched alone"):
        st.dataframe([{"head": h.head, "effect": h.effect} for h in entry.heads], hide_index=True)
if example := entry.example:
    with st.expander("Example prompt pair"):
        st.code(f"clean:     {example.clean!r}\ncorrupted: {example.corrupted!r}")
        if example.answer is not None:
            st.write(f"answer: {example.answer!r}")

try:
    graph = R.circuit(entry.name, graph_file(entry.folder / "graph").stat().st_mtime)
except Exception as err:
    st.error(f"The saved graph of {entry.name!r} cannot be loaded: {err}")
    st.stop()
graph_view.show_graph(
    graph,
    key="circuit",
    title=entry.title,
    file_stem=entry.name,
    model_spec=entry.model,
    save=lambda g: R.save_circuit(entry.name, g),
)
