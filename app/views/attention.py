"""Attention: the selected heads' patterns on the prompt, as a heatmap and as a hover view."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from app import components, state
from app import resources as R

ctx = state.require_context(need_prompt=True)
ss = st.session_state

st.title("Attention")
heads = state.all_heads(ctx.info)
# the page opens on the model's strongest induction head, the most telling pattern to start from
top = R.head_score(ctx.spec, ctx.device, "induction").top(1)[0][0]
first = state.head_label(int(top["layer"]), int(top["head"]))
if "heads" in ss and ss.get("heads_for") not in (None, ctx.spec):
    ss["heads"] = [first]  # heads picked for another model: that model's are not this one's
elif "heads" in ss and any(h not in heads for h in ss["heads"]):
    ss["heads"] = [h for h in ss["heads"] if h in heads]
ss["heads_for"] = ctx.spec
st.multiselect(
    "Heads",
    heads,
    default=[first] if "heads" not in ss else None,
    key="heads",
    bind=state.URL,
    help="open heads from the Head atlas, or pick here",
)
if not ss["heads"]:
    st.info("Select at least one head.")
    st.stop()
chosen = tuple(state.parse_head(h) for h in ss["heads"])
view = R.prompt_view(ctx.spec, ctx.device, ctx.prompt)
patterns = R.attention_patterns(ctx.spec, ctx.device, ctx.prompt, chosen)
n = len(view.tokens)

cols = st.columns([2, 2, 1])
with cols[0]:
    st.radio(
        "Show",
        ss["heads"],
        index=state.valid("head_view", ss["heads"]),
        key="head_view",
        horizontal=True,
    )
positions = [state.NO_LOCK] + [str(i) for i in range(n)]
with cols[1]:
    st.selectbox(  # plain options: a bound selectbox writes the option's label into the URL
        "Locked query position",
        positions,
        index=state.valid("q", positions, state.NO_LOCK),
        key="q",
        bind=state.URL,
        help="the position whose attention stays shown; click tokens below to lock them too",
    )
with cols[2]:
    st.write("")
    st.button(
        "Clear lock",
        key="clear_lock",
        disabled=ss["q"] == state.NO_LOCK,
        on_click=ss.update,
        args=({"q": state.NO_LOCK},),
    )

index = ss["heads"].index(ss["head_view"])
pattern = patterns[index]
locked = None if ss["q"] == state.NO_LOCK else int(ss["q"])
st.subheader(f"{ss['head_view']} on the prompt")
st.iframe(
    components.attention_view(view.tokens, pattern, ss["head_view"], locked),
    height="content",
)
labels = [f"{i}:{components.show_token(t)}" for i, t in enumerate(view.tokens)]
fig = go.Figure(
    go.Heatmap(
        z=pattern,
        x=labels,
        y=labels,
        colorscale="Blues",
        zmin=0,
        zmax=1,
        hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>",
    )
)
fig.update_yaxes(autorange="reversed", title="query (destination)")
fig.update_xaxes(title="key (source)")
side = min(900, max(380, 14 * n + 160))
fig.update_layout(height=side, margin={"l": 40, "r": 20, "t": 30, "b": 40})
if locked is not None:
    fig.add_hline(y=labels[locked], line_color="#d33682")
st.plotly_chart(fig, key="attention_heatmap", width="stretch")
if locked is not None:
    row = pattern[locked, : locked + 1]
    top = row.argsort()[::-1][:5]
    st.markdown(
        f"**#{locked} {view.tokens[locked]!r}** attends most to: "
        + ", ".join(f"#{k} {view.tokens[k]!r} ({row[k]:.2f})" for k in top)
    )
if n > 1:
    st.caption(
        f"{len(chosen)} head(s) x {n} tokens. Mean attention to the first position: "
        + ", ".join(f"{h} {patterns[i][1:, 0].mean():.2f}" for i, h in enumerate(ss["heads"]))
    )
