"""Patching: an activation-patching sweep of a shipped task; click a cell to open its head."""

from __future__ import annotations

import streamlit as st

from app import plots, reading, state
from app import resources as R

ctx = state.require_context()
ss = st.session_state
info = ctx.info


def _open_cell() -> None:
    cell = plots.selected_cell(ss.get("patch_chart"))
    rows = ss.get("_patch_rows")
    if cell is None or not rows:
        return
    layer, head = rows[cell[0]]
    if head is None and ss.get("_patch_cols_are_heads"):
        head = cell[1]
    heads = [head] if head is not None else range(info.n_heads)
    state.select_heads([state.head_label(layer, h) for h in heads])
    ss["_goto"] = "views/attention.py"


if ss.pop("_goto", None):
    state.open_attention()

st.title("Activation patching")
st.markdown(
    "Patch one activation from the clean run into the corrupted run (*denoise*: how much of the "
    "behaviour does it restore?) or the other way (*noise*: how much does losing it hurt?), for "
    "every layer, position and head of a site (`interp.patching.patch_sweep`)."
)
tasks = R.task_names()
site_axes = R.site_axes()
sites = [s for s in site_axes if not (info.attn_only and s in ("mlp_out", "resid_mid"))]
c1, c2, c3 = st.columns(3)
c1.selectbox(
    "Task",
    tasks,
    index=state.valid("task", tasks, "induction"),
    key="task",
    bind=state.URL,
    help="interp.tasks.TASKS",
)
c1.number_input(
    "Prompt pairs", min_value=1, max_value=64, value=8, step=1, key="n_prompts", bind=state.URL
)
c2.selectbox(
    "Site",
    sites,
    index=state.valid("site", sites, "z"),
    key="site",
    bind=state.URL,
    help="interp.hooks.SITES",
)
axes = site_axes[ss["site"]]
by_options = (
    ["layer,head", "layer,pos", "layer,pos,head", "layer"]
    if "head" in axes
    else [
        "layer,pos",
        "layer",
    ]
)
c2.selectbox(
    "Sweep over",
    by_options,
    index=state.valid("by", by_options, by_options[0]),
    key="by",
    bind=state.URL,
)
c3.radio(
    "Direction",
    ["denoise", "noise"],
    index=state.valid("direction", ["denoise", "noise"], "denoise"),
    key="direction",
    bind=state.URL,
    horizontal=True,
)
c3.checkbox(
    "Normalise (corrupted 0, clean 1)", value=False, key="normalize", persist_state=state.KEEP
)

settings = (
    ctx.spec,
    ctx.device,
    ss["task"],
    int(ss["n_prompts"]),
    ss["site"],
    tuple(ss["by"].split(",")),
    ss["direction"],
    bool(ss["normalize"]),
)
try:
    example = R.task_example(ctx.spec, ctx.device, ss["task"], int(ss["n_prompts"]))
except Exception as err:
    st.error(f"Task {ss['task']!r} cannot be built for {ctx.spec!r}: {err}")
    st.stop()
with st.expander("The first prompt pair", expanded=False):
    st.markdown(
        f"clean: `{''.join(example['clean'])!r}`  \ncorrupted: `{''.join(example['corrupted'])!r}`"
        f"  \nanswer {example['answer']!r} vs {example['wrong']!r}; metric `{example['metric']}`"
    )

reading.run_sweep(
    R.run_patching,
    settings,
    button="Run sweep",
    key="run_sweep",
    doing=f"patching {ss['site']} by {ss['by']}",
    unit="patches",
    failed="The sweep failed",
)
result = R.patching_result(*settings)
values = result.values.float().numpy()
prov = result.provenance
reading.show_baselines(result, prov)

layers = [str(la) for la in range(info.n_layers)]
ss["_patch_cols_are_heads"] = False
if result.axes == ("layer",):
    matrix, x, rows = values[:, None], ["all"], [(la, None) for la in range(info.n_layers)]
    y, xaxis = layers, "all positions and heads"
elif result.axes == ("layer", "head"):
    matrix, x = values, [str(h) for h in range(values.shape[1])]
    rows, y, xaxis = [(la, None) for la in range(info.n_layers)], layers, "head"
    ss["_patch_cols_are_heads"] = True
elif result.axes == ("layer", "pos"):
    matrix, x = values, list(result.labels["pos"])
    rows, y, xaxis = [(la, None) for la in range(info.n_layers)], layers, "position"
else:  # layer pos head: one row per head
    n_heads = values.shape[2]
    matrix = values.transpose(0, 2, 1).reshape(info.n_layers * n_heads, -1)
    x = list(result.labels["pos"])
    rows = [(la, h) for la in range(info.n_layers) for h in range(n_heads)]
    y, xaxis = [state.head_label(la, h) for la, h in rows], "position"
ss["_patch_rows"] = rows
fig = plots.clickable_heatmap(
    matrix,
    x=x,
    y=y,
    title=f"{prov['task']}: patching {prov['site']} ({prov['direction']})",
    colour=prov["metric"],  # the task's metric; result.metric adds how it was normalised
    xaxis=xaxis,
    yaxis="layer" if y is layers else "head",
    diverging=True,
)
st.plotly_chart(
    fig, key="patch_chart", on_select=_open_cell, selection_mode="points", width="stretch"
)
st.caption("Click a cell to open its head (or every head of its layer) on the Attention page.")
reading.show_reading(result, prov, key="patch_rank", noun="cells")
