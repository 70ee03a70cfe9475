"""Path patching: every head as the sender, into chosen head inputs (or the logits), at chosen
positions; click a sender to open it."""

from __future__ import annotations

import streamlit as st

from app import plots, reading, state
from app import resources as R

ctx = state.require_context()
ss = st.session_state
info = ctx.info
ALL = "all positions"


def _open_cell() -> None:
    cell = plots.selected_cell(ss.get("path_patch_chart"))
    if cell is not None:
        state.select_heads([state.head_label(cell[0], cell[1])])
        ss["_goto"] = "views/attention.py"


def _positions(key: str, label: str, names, options: list[str], disabled=False, help=None):
    """A multiselect of positions (``names``, then ``i:token``); empty is every position."""
    if key in ss and any(p not in options for p in ss[key]):  # positions of another task
        ss[key] = [p for p in ss[key] if p in options]
    st.multiselect(
        label, options, key=key, placeholder=ALL, disabled=disabled, help=help, bind=state.URL
    )
    chosen = [] if disabled else ss[key]
    return tuple(p if p in names else int(p.split(":")[0]) for p in chosen) or None


if ss.pop("_goto", None):
    state.open_attention()

st.title("Path patching")
st.markdown(
    "Patch one head's output (the *sender*) from the corrupted run into the clean run with every "
    "other head frozen, and let the change reach the *receivers* alone: the inputs of later heads, "
    "or the logits (`interp.path_patching.path_patch_sweep`). Both ends can be limited to "
    "positions: Wang et al. patch into the name movers' queries at the last token (`end`) to find "
    "the heads that tell them which name not to copy."
)
tasks = R.task_names()
c1, c2, c3 = st.columns(3)
c1.selectbox(
    "Task",
    tasks,
    index=state.valid("pp_task", tasks, "induction"),
    key="pp_task",
    bind=state.URL,
    help="interp.tasks.TASKS",
)
c1.number_input(
    "Prompt pairs", min_value=1, max_value=64, value=8, step=1, key="pp_n", bind=state.URL
)
c2.radio(
    "Receivers",
    ["head inputs", "logits"],
    index=state.valid("pp_into", ["head inputs", "logits"], "head inputs"),
    key="pp_into",
    bind=state.URL,
    horizontal=True,
)
heads = state.all_heads(info)
into_heads = ss["pp_into"] == "head inputs"
if "pp_heads" in ss and any(h not in heads for h in ss["pp_heads"]):  # heads of another model
    ss["pp_heads"] = [h for h in ss["pp_heads"] if h in heads]
c2.multiselect(
    "Receiver heads",
    heads,
    default=[heads[-1]] if "pp_heads" not in ss else None,
    key="pp_heads",
    bind=state.URL,
    disabled=not into_heads,
)
c2.multiselect(
    "Their inputs",
    ["q", "k", "v"],
    default=["q"] if "pp_inputs" not in ss else None,
    key="pp_inputs",
    bind=state.URL,
    disabled=not into_heads,
    help="under grouped-query attention a k or v receiver is its group's shared key or value",
)
c3.radio(
    "Direction",
    ["noise", "denoise"],
    index=state.valid("pp_direction", ["noise", "denoise"], "noise"),
    key="pp_direction",
    bind=state.URL,
    horizontal=True,
)
c3.checkbox(
    "Normalise (corrupted 0, clean 1)", value=False, key="pp_normalize", persist_state=state.KEEP
)

n = int(ss["pp_n"])
try:
    example = R.task_example(ctx.spec, ctx.device, ss["pp_task"], n)
    names = R.task_positions(ctx.spec, ctx.device, ss["pp_task"], n)
except Exception as err:
    st.error(f"Task {ss['pp_task']!r} cannot be built for {ctx.spec!r}: {err}")
    st.stop()
options = list(names) + [f"{i}:{tok}" for i, tok in enumerate(example["clean"])]
named = ", ".join(f"`{k}` = {v[0]}" for k, v in names.items())
p1, p2 = st.columns(2)
with p1:
    senders_at = _positions(
        "pp_sender_pos",
        "Sender positions",
        names,
        options,
        help=f"names, or positions of the first prompt; names here (first prompt): {named}",
    )
with p2:
    receivers_at = _positions(
        "pp_receiver_pos",
        "Receiver positions",
        names,
        options,
        disabled=not into_heads,
        help="the logits are read at the answer position alone",
    )
with st.expander("The first prompt pair", expanded=False):
    st.markdown(
        f"clean: `{''.join(example['clean'])!r}`  \ncorrupted: `{''.join(example['corrupted'])!r}`"
        f"  \nanswer {example['answer']!r} vs {example['wrong']!r}; metric `{example['metric']}`"
        f"  \nnamed positions: {named}"
    )

receivers = (
    tuple((kind, *state.parse_head(h)) for h in ss["pp_heads"] for kind in ss["pp_inputs"])
    if into_heads
    else "logits"
)
if not receivers:
    st.info("Choose at least one receiver head and one of its inputs (or the logits).")
    st.stop()
settings = (
    ctx.spec,
    ctx.device,
    ss["pp_task"],
    n,
    receivers,
    senders_at,
    receivers_at,
    ss["pp_direction"],
    bool(ss["pp_normalize"]),
)
reading.run_sweep(
    R.run_path_patching,
    settings,
    button="Run path patching",
    key="run_path_patch",
    doing="path patching",
    unit="senders",
    failed="Path patching failed",
)
result = R.path_patching_result(*settings)
prov = result.provenance
reading.show_baselines(result, prov)
into = "logits" if receivers == "logits" else ", ".join(f"{k} L{la}H{h}" for k, la, h in receivers)
fig = plots.clickable_heatmap(
    result.values.float().numpy(),
    x=[str(h) for h in range(info.n_heads)],
    y=[str(la) for la in range(info.n_layers)],
    title=f"{prov['task']}: path patching into {into} ({prov['direction']})",
    colour=prov["metric"],  # the task's metric; result.metric adds how it was normalised
    xaxis="sender head",
    yaxis="sender layer",
    diverging=True,
)
st.plotly_chart(
    fig, key="path_patch_chart", on_select=_open_cell, selection_mode="points", width="stretch"
)
st.caption(
    "Click a sender to open it on the Attention page. Senders at or after the earliest "
    "receiver's layer cannot reach it: they show the unpatched metric."
)
reading.show_reading(result, prov, key="path_patch_rank", noun="senders")
