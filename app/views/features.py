"""Features: what each transcoder feature does: how often it fires, on what, what it promotes."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import resources as R
from app import state

st.title("Features")
st.markdown(
    "A transcoder stands in for an MLP through sparse features (`interp.dictionaries`). Pick a "
    "layer and a feature: its activation density, its strongest contexts on held-out text, and "
    "the tokens its decoder row promotes and suppresses directly."
)
why = R.missing("interp.dictionaries")
if why:
    st.info(f"Transcoders are not available: {why}.")
    st.stop()
ctx = state.require_context()
ss = st.session_state
shipped = R.shipped_transcoders(ctx.spec)
st.text_input(
    "Transcoders: a folder of layer_L sae-lens folders (empty: the model's shipped ones)",
    value="",
    key="transcoders",
    bind=state.URL,
    placeholder="/path/to/transcoders",
)
source = ss["transcoders"].strip() or (ctx.spec if shipped else "")
if not source:
    st.info(
        f"No transcoders ship with {ctx.spec!r}. Give a folder above, or train them: "
        "`interp.dictionaries.train_shipped('induction-2l')` (the organism's recipe) or "
        "`train_transcoders(model, ...)` then `save_transcoders(...)`."
    )
    st.stop()
try:
    tcs = R.transcoders(source, ctx.device)
    density = R.feature_density(ctx.spec, ctx.device, source)
except Exception as err:
    st.error(f"Cannot use the transcoders {source!r} with {ctx.spec!r}: {err}")
    st.stop()
layers = [str(la) for la in tcs]
c1, c2 = st.columns(2)
c1.selectbox(
    "Layer (MLP)", layers, index=state.valid("feature_layer", layers), key="feature_layer",
    bind=state.URL,
)  # fmt: skip
layer = int(ss["feature_layer"])
row = layers.index(ss["feature_layer"])
dens = density.values[row].float().numpy()
d_sae = len(dens)
c2.number_input("Feature", 0, d_sae - 1, value=int(dens.argmax()), key="feature", bind=state.URL)
feature = int(ss["feature"])

m1, m2, m3 = st.columns(3)
m1.metric("Features", d_sae)
m2.metric("Dead on the held-out batch", int((dens == 0).sum()))
m3.metric(f"Density of feature {feature}", f"{dens[feature]:.4f}")
fig = go.Figure(go.Histogram(x=np.log10(dens[dens > 0]), nbinsx=40))
fig.update_layout(
    title=f"Feature density, layer {layer} (log10 of the fraction of tokens it fires on)",
    xaxis_title="log10 density",
    yaxis_title="features",
    height=280,
    margin={"t": 50},
)
st.plotly_chart(fig, key="density_chart", width="stretch")

details = R.feature_details(ctx.spec, ctx.device, source, layer, feature)
left, right = st.columns(2)
with left:
    st.markdown(f"**Top contexts of feature {feature}** (the last token is where it fires)")
    if not details["contexts"]:
        st.info("This feature never fires on the held-out batch.")
    for c in details["contexts"]:
        st.markdown(f"`{c['activation']:.2f}` &nbsp; {c['context']!r} **[{c['token']!r}]**")
with right:
    st.markdown("**Direct logit effects**")
    effects = details["effects"]
    st.dataframe(
        {
            "promotes": [t for t, _ in effects["top"]],
            "+": [round(v, 3) for _, v in effects["top"]],
            "suppresses": [t for t, _ in effects["bottom"]],
            "-": [round(v, 3) for _, v in effects["bottom"]],
        },
        hide_index=True,
        key="feature_effects",
    )
if ctx.prompt_problem is None:
    st.markdown("**Features of this layer most active on the prompt**")
    found = R.prompt_features(ctx.spec, ctx.device, source, layer, ctx.prompt)
    view = R.prompt_view(ctx.spec, ctx.device, ctx.prompt)
    st.dataframe(
        {
            "feature": [f for f, _, _ in found],
            "max activation": [round(a, 3) for _, a, _ in found],
            "at": [f"#{p} {view.tokens[p]!r}" for _, _, p in found],
        },
        hide_index=True,
        key="prompt_features",
    )
