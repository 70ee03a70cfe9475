"""Features: one transcoder feature as a researcher reads it, and steered from the page.

The page leads with what the feature does (density, peak tokens), then its strongest contexts
shaded token by token, its activation histogram, the tokens it promotes and suppresses, the
features upstream and downstream of it (click one to open it), and a steering box that clamps
or adds the feature while the model continues a prompt. Every number comes from
``interp.dictionaries`` (``feature_page``, ``steer``); the page only draws them.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app import components, state
from app import resources as R
from interp.hooks import model_lock

ss = st.session_state


@st.cache_data(max_entries=64, show_spinner="Reading the feature...")
def page_of(spec: str, device: str, source: str, layer: int, feature: int) -> dict:
    """``interp.dictionaries.feature_page`` on the held-out batch the density is measured on."""
    from interp.dictionaries import feature_page

    model = R.get_model(spec, device)
    with model_lock(model):
        tokens = R.feature_tokens(spec, device)
        return feature_page(model, R.transcoders(source, device), layer, feature, tokens, k=8)


@st.cache_data(max_entries=32, show_spinner="Generating...")
def steered(spec, device, source, layer, feature, prompt, mode, value, n_new):
    """``interp.dictionaries.steer``: the baseline and steered greedy completions."""
    from interp.dictionaries import steer

    model = R.get_model(spec, device)
    return steer(
        model, R.transcoders(source, device), layer, feature, prompt,
        mode=mode, value=value, max_new_tokens=n_new,
    )  # fmt: skip


def named(token: str) -> str:
    """A token inside a markdown code span: whitespace visible, no backtick to end the span."""
    return token.replace(" ", "\u00b7").replace("\n", "\u21b5").replace("`", "\u02cb") or "\u2205"


def open_feature(layer: int, feature: int) -> None:
    """Button callback: show ``feature`` of the transcoder at ``layer``."""
    ss["feature_layer"], ss["feature"] = str(layer), int(feature)


def shaded_contexts(contexts: list[dict], top: float) -> str:
    """The contexts as token chips shaded by the feature's activation (the peak outlined)."""
    rows = []
    for c in contexts:
        chips = []
        for i, (tok, a) in enumerate(zip(c["tokens"], c["activations"])):
            alpha = 0.0 if top <= 0 else max(0.0, min(1.0, a / top))
            peak = " peak" if i == c["peak"] else ""
            chips.append(
                f'<span class="tok{peak}" title="{html.escape(f"{tok!r}: {a:.3f}")}" '
                f'data-act="{a:.4f}" style="background:rgba(255,140,0,{alpha:.3f})">'
                f"{components.show_token(tok)}</span>"
            )
        rows.append(
            f'<div class="ctx"><span class="act">{c["activation"]:.2f}</span>'
            + "".join(chips)
            + "</div>"
        )
    style = (
        "<style>.ctx{font-family:ui-monospace,Menlo,monospace;font-size:13px;line-height:2;"
        "margin-bottom:4px;word-break:break-all;color:#111}"
        ".ctx .act{display:inline-block;width:48px;color:#666;font-size:11px}"
        ".ctx .tok{padding:1px 1px;border-radius:3px;white-space:pre}"
        ".ctx .tok.peak{outline:2px solid #d33682}</style>"
    )
    return style + '<div class="feature-contexts">' + "".join(rows) + "</div>"


def listed(changes: list[tuple[str, float]]) -> str:
    return ", ".join(f"{t!r} {v:+.1f}" for t, v in changes[:3])


def completion(prompt: list[str], new: list[str], other: list[str], title: str) -> str:
    """The prompt in grey, then the generated tokens; those that differ from ``other``'s marked."""
    chips = [f'<span style="color:#999">{components.show_token(t)}</span>' for t in prompt]
    for t, o in zip(new, other, strict=True):
        mark = "background:#fde2b8" if t != o else "background:#e6f0e6"
        chips.append(f'<span class="gen" style="{mark}">{components.show_token(t)}</span>')
    return (
        f'<div class="completion" data-title="{html.escape(title)}" style="font-family:'
        "ui-monospace,Menlo,monospace;font-size:13px;line-height:1.9;word-break:break-all;"
        f'white-space:pre-wrap"><b>{html.escape(title)}</b><br>' + "".join(chips) + "</div>"
    )


st.title("Features")
st.markdown(
    "A transcoder stands in for an MLP through sparse features (`interp.dictionaries`). Pick a "
    "layer and a feature: where it fires on held-out text, what it writes to the logits, which "
    "features feed it and which it feeds, and what the model says when you steer it."
)
why = R.missing("interp.dictionaries")
if why:
    st.info(f"Transcoders are not available: {why}.")
    st.stop()
ctx = state.require_context()
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
if "feature" in ss and not 0 <= int(ss["feature"]) < d_sae:
    del ss["feature"]  # a feature of a wider transcoder
c2.number_input("Feature", 0, d_sae - 1, value=int(dens.argmax()), key="feature", bind=state.URL)
feature = int(ss["feature"])
page = page_of(ctx.spec, ctx.device, source, layer, feature)

# -- what it is ----------------------------------------------------------------------------------
contexts = page["contexts"]
peaks = list(dict.fromkeys(c["tokens"][c["peak"]] for c in contexts))[:4]
st.subheader(f"Layer {layer}, feature {feature}")
if contexts:
    st.markdown(
        f"Fires on **{page['density']:.2%}** of {page['tokens_seen']:,} held-out tokens, at most "
        f"**{page['max_activation']:.2f}**; strongest on "
        + ", ".join(f"`{named(t)}`" for t in peaks)
        + ". It promotes "
        + ", ".join(f"`{named(t)}`" for t, _ in page["logits"]["top"][:3])
        + "."
    )
else:
    st.info(f"Feature {feature} never fires on the {page['tokens_seen']:,} held-out tokens.")
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"Density of feature {feature}", f"{page['density']:.4f}")
m2.metric("Max activation", f"{page['max_activation']:.2f}")
m3.metric("Features", d_sae)
m4.metric("Dead on the held-out batch", int((dens == 0).sum()))

left, right = st.columns([3, 2])
with left:
    st.markdown("**Top contexts** (shaded by activation; the peak token outlined)")
    if contexts:
        st.html(shaded_contexts(contexts, page["max_activation"]))
with right:
    hist = page["histogram"]
    edges = np.asarray(hist["edges"])
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=hist["counts"], width=np.diff(edges)))
    fig.update_layout(
        title="Activation histogram (active tokens)",
        xaxis_title="activation",
        yaxis_title="tokens",
        height=260,
        margin={"t": 40, "b": 40},
    )
    st.plotly_chart(fig, key="activation_histogram", width="stretch")
    st.markdown("**Direct logit effects**")
    effects = page["logits"]
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

# -- upstream and downstream ---------------------------------------------------------------------
st.markdown(
    "**Connected features**: virtual weights `W_dec · W_enc` through the residual stream "
    "(input-independent; click one to open it)"
)
up_col, down_col = st.columns(2)
for col, side, word in ((up_col, "upstream", "earlier"), (down_col, "downstream", "later")):
    with col:
        st.caption(f"{side.capitalize()}: features of {word} layers")
        if not page[side]:
            st.caption(f"none: no transcoder at an {word} layer")
        grid = st.columns(3)
        for i, c in enumerate(page[side][:6]):
            grid[i % 3].button(
                f"L{c['layer']} #{c['feature']}  ({c['weight']:+.3f})",
                key=f"{side}_{i}",
                on_click=open_feature,
                args=(c["layer"], c["feature"]),
                width="stretch",
            )

# -- steering ------------------------------------------------------------------------------------
st.subheader("Steer")
st.caption(
    "clamp sets the feature's activation to the value at every position after BOS (generated "
    "tokens included); add adds the value times its decoder row to the MLP's output. The "
    "transcoder's error term is kept, so the model is unchanged where the feature is left alone."
)
s1, s2, s3 = st.columns([3, 1, 2])
with s1:
    prompt = st.text_area(
        "Prompt to continue",
        value=ctx.prompt if ctx.prompt_problem is None else "",
        key="steer_prompt",
        height=90,
    )
with s2:
    mode = st.radio("Mode", ["clamp", "add"], key="steer_mode")
    n_new = st.number_input("New tokens", 1, 64, value=12, key="steer_tokens")
unit = page["max_activation"] or 1.0
with s3:
    times = st.slider(
        "Strength (x the feature's max activation)", -10.0, 10.0, 5.0, 0.5, key="steer_strength"
    )
    st.caption(f"value = {times} x {unit:.3f} = {times * unit:.3f}")
    go_steer = st.button("Generate", key="steer_run", type="primary")
settings = (ctx.spec, ctx.device, source, layer, feature, prompt, mode, times * unit, int(n_new))
if go_steer:
    ss["_steer_shown"] = settings
s = None
if ss.get("_steer_shown") == settings:
    try:
        s = steered(*settings)
    except (ValueError, TypeError) as err:  # an empty or too long prompt: say so, draw the rest
        st.error(f"Cannot steer: {err}")
if s is not None:
    b1, b2 = st.columns(2)
    b1.html(completion(s.prompt, s.baseline, s.steered, "Baseline"))
    b2.html(completion(s.prompt, s.steered, s.baseline, f"Steered ({mode} {times * unit:.2f})"))
    said = "the same" if s.diverges_at is None else f"different from step {s.diverges_at}"
    st.caption(f"The steered completion is {said}. How steering moved each step's logits:")
    st.dataframe(
        {
            "step": list(range(len(s.steps))),
            "baseline": [repr(t) for t in s.baseline],
            "steered": [repr(t) for t in s.steered],
            "most raised": [listed(x["promoted"]) for x in s.steps],
            "most lowered": [listed(x["suppressed"]) for x in s.steps],
        },
        hide_index=True,
        key="steer_steps",
    )

# -- the layer and the prompt --------------------------------------------------------------------
with st.expander(f"All features of layer {layer}: density"):
    fig = go.Figure(go.Histogram(x=np.log10(dens[dens > 0]), nbinsx=40))
    fig.update_layout(
        title=f"Feature density, layer {layer} (log10 of the fraction of tokens it fires on)",
        xaxis_title="log10 density",
        yaxis_title="features",
        height=280,
        margin={"t": 50},
    )
    st.plotly_chart(fig, key="density_chart", width="stretch")
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
