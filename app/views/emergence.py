"""Emergence: head scores across training checkpoints, and heads that post-training made."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import resources as R
from app import state
from interp.organisms import ORGANISMS

ctx = state.require_context()
ss = st.session_state

st.title("Emergence")
tab_train, tab_post = st.tabs(["Across training", "Base vs post-trained"])

with tab_train:
    name = ctx.spec if ctx.spec in ORGANISMS else "induction-2l"
    found = R.checkpoints(name)
    st.markdown(
        f"Induction and previous-token scores of **{name}** at each training checkpoint "
        "(`interp.dynamics.formation`); induction heads form in a phase change."
    )
    if not found:
        st.info(
            f"No training checkpoints of {name!r} on this machine (they live in "
            f"`~/.cache/interp`, not in the repository). Make them with:\n\n"
            f"```\ninterp organisms train {name}\n```"
        )
    else:
        every_options = [1, 2, 5, 10]
        st.select_slider(
            "Use every n-th checkpoint",
            every_options,
            value=5 if len(found) > 10 else 1,
            key="every",
            persist_state=state.KEEP,
        )
        picked = found[:: int(ss["every"])]
        if picked[-1] != found[-1]:
            picked.append(found[-1])
        if st.button(f"Score {len(picked)} checkpoints", key="run_formation", type="primary"):
            ss["formation_ran"] = (name, tuple(picked))
        if ss.get("formation_ran") != (name, tuple(picked)):
            st.caption(f"{len(found)} checkpoints found; each takes about a second.")
        else:
            bar = st.progress(0.0, text="scoring checkpoints...")
            rows = []
            for i, (step, folder) in enumerate(picked):
                rows.append(R.formation_step(step, folder, 20, ctx.device))
                bar.progress((i + 1) / len(picked), text=f"step {step}")
            bar.empty()
            steps = [s for s, _ in picked]
            induction = np.stack([r["induction"] for r in rows])  # step layer head
            previous = np.stack([r["previous_token"] for r in rows])
            n_layers, n_heads = induction.shape[1:]
            fig = go.Figure()
            for la in range(n_layers):
                for h in range(n_heads):
                    fig.add_scatter(
                        x=steps, y=induction[:, la, h], name=f"L{la}H{h} induction", mode="lines"
                    )
            fig.add_scatter(
                x=steps,
                y=previous.max(axis=(1, 2)),
                name="max previous-token",
                line={"dash": "dash", "color": "black"},
            )
            fig.update_layout(
                title="Head scores across training", xaxis_title="step", yaxis_title="score"
            )
            st.plotly_chart(fig, key="formation_chart", width="stretch")
            jumps = np.diff(induction.max(axis=(1, 2)))
            if len(jumps):
                st.metric(
                    "Steepest rise of the max induction score",
                    f"step {steps[int(jumps.argmax()) + 1]}",
                )
            fig2 = go.Figure(
                [
                    go.Scatter(x=steps, y=[r["icl"] for r in rows], name="ICL score (text)"),
                    go.Scatter(
                        x=steps, y=[r["icl_repeated"] for r in rows], name="repeated-token drop"
                    ),
                ]
            )
            fig2.update_layout(title="In-context learning", xaxis_title="step", yaxis_title="nats")
            st.plotly_chart(fig2, key="icl_chart", width="stretch")

with tab_post:
    st.markdown(
        "Head importance for variable tracking (`a = 7; b = a; print(b)` -> `7`) in "
        "**reasoning-base** and **reasoning-tuned**: the metric lost when each head is "
        "mean-ablated, as a share of the tuned model's logit difference "
        "(`interp.dynamics.emergent_heads`)."
    )
    st.slider(
        "Importance threshold",
        0.01,
        0.5,
        value=0.05,
        step=0.01,
        key="threshold",
        persist_state=state.KEEP,
    )
    if st.button("Compare", key="run_emergence", type="primary"):
        ss["emergence_ran"] = True
    if ss.get("emergence_ran"):
        with st.spinner("ablating every head in both models..."):
            out = R.emergence(
                "reasoning-base", "reasoning-tuned", ctx.device, 16, float(ss["threshold"])
            )
        scale = max(abs(out["tuned"].provenance["clean_metric"]), 1e-6)
        cols = st.columns(2)
        for col, key in zip(cols, ("base", "tuned")):
            share = out[key].values.float().numpy() / scale
            fig = go.Figure(
                go.Heatmap(
                    z=share, colorscale="RdBu", zmid=0, colorbar={"title": {"text": "share"}}
                )
            )
            fig.update_yaxes(autorange="reversed", title="layer")
            fig.update_xaxes(title="head")
            fig.update_layout(title=f"reasoning-{key}", height=320)
            col.plotly_chart(fig, key=f"emergence_{key}", width="stretch")
        label = lambda hs: ", ".join(state.head_label(*h) for h in hs) or "none"  # noqa: E731
        st.markdown(
            f"**Emerged:** {label(out['emerged'])}  \n**Faded:** {label(out['faded'])}  \n"
            f"**Stable:** {label(out['stable'])}"
        )
