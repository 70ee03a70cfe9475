"""Feature pages: everything a person reads to tell what one dictionary feature does.

A page, as Neuronpedia shows one, holds for a feature of the transcoder at some layer:

* **top contexts**: the windows of text where it fires hardest (one per window, strongest first),
  each as its tokens with the feature's activation on every token, so a viewer can shade them,
  and the index of the token it peaks on;
* an **activation histogram**: how strongly it fires when it fires (equal-width bins from 0 to
  its maximum, over the active tokens);
* its **density**: the share of tokens on which it is active;
* its **logit effects**: the tokens its decoder row promotes and suppresses directly
  (``feature_logit_effects``);
* its **upstream and downstream features** (``feature_connections``): the features of the
  other transcoders that write into its encoder, and those its decoder row writes into, through
  the residual stream.

The text is natural English by default: evenly spaced windows of ``interp.corpus``'s held-out
split (``corpus_tokens``), which no shipped transcoder was trained on. Any ``[n, pos]`` token
batch can be given instead (the organisms read Python source, for instance).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .. import corpus
from ..hooks import locked
from ._evaluate import check_transcoders
from ._features import _acts, _token_str, feature_logit_effects


@locked
def corpus_tokens(model, n: int = 64, seq_len: int = 128, split: str = "held_out") -> Tensor:
    """``[n, seq_len]`` windows of the English corpus for ``model``'s tokenizer, evenly spaced
    over the split (so every novel is in them); ``held_out`` by default."""
    return corpus.spaced_windows(model.tokenizer, n, seq_len, split)


@locked
def feature_pages(
    model,
    transcoders: Mapping[int, object],
    layer: int,
    features: list[int],
    tokens: Tensor | None = None,
    *,
    k: int = 10,
    before: int = 24,
    after: int = 4,
    bins: int = 30,
    n_logits: int = 10,
    n_connections: int = 10,
) -> dict[int, dict]:
    """The pages of several features of the transcoder at ``layer``, from one pass over ``tokens``.

    Arguments:
        model, transcoders: the model and ``{layer: transcoder}``.
        layer: the transcoder whose features are shown.
        features: feature indices.
        tokens: ``[n, pos]`` text to read (default: ``corpus_tokens(model)``, 64 held-out windows
            of English).
        k: top contexts per feature, at most one per window.
        before, after: tokens of context shown before and after the peak token.
        bins: histogram bins.
        n_logits: promoted and suppressed tokens listed.
        n_connections: upstream and downstream features listed.

    Returns:
        ``{feature: page}``; a page is a dict with ``layer``, ``feature``, ``density``,
        ``max_activation``, ``tokens_seen``, ``contexts`` (each ``{"activation", "row", "pos",
        "start", "tokens": [str], "activations": [float], "peak"}``, where ``peak`` indexes
        ``tokens`` and ``activation == activations[peak]``), ``histogram`` (``{"edges",
        "counts"}``, ``bins + 1`` edges) and ``logits`` (``{"top": [(token, effect)],
        "bottom": [...]}``), ``upstream`` and ``downstream`` (``feature_connections``; empty
        without transcoders at earlier or later layers).
    """
    transcoders = check_transcoders(model, transcoders)
    if layer not in transcoders:
        raise ValueError(f"no transcoder for layer {layer}; have {sorted(transcoders)}")
    tc = transcoders[layer]
    d_sae = int(tc.W_enc.shape[1])
    features = [int(f) for f in features]
    bad = [f for f in features if not 0 <= f < d_sae]
    if bad or not features:
        raise ValueError(f"features must be a non-empty list in 0..{d_sae - 1}; bad: {bad}")
    for name, value in (
        ("k", k),
        ("bins", bins),
        ("n_logits", n_logits),
        ("n_connections", n_connections),
    ):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if tokens is None:
        tokens = corpus_tokens(model)
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [n, pos], got shape {tuple(tokens.shape)}")
    acts = _acts(model, tc, layer, tokens)[..., features]  # [n, pos, len(features)]
    logits = feature_logit_effects(model, transcoders, layer, features, k=n_logits)
    pages = {}
    for j, f in enumerate(features):
        a = acts[..., j]
        active = a[a > 0]
        top = float(a.max()) if a.numel() else 0.0
        hist = torch.histc(active, bins=int(bins), min=0.0, max=top) if top > 0 else None
        pages[f] = {
            "layer": int(layer),
            "feature": f,
            "density": float((a > 0).float().mean()),
            "max_activation": top,
            "tokens_seen": int(a.numel()),
            "contexts": _contexts(model, tokens, a, int(k), int(before), int(after)),
            "histogram": {
                "edges": torch.linspace(0.0, max(top, 0.0), int(bins) + 1).tolist(),
                "counts": hist.long().tolist() if hist is not None else [0] * int(bins),
            },
            "logits": logits[f],
            **feature_connections(model, transcoders, layer, f, k=int(n_connections)),
        }
    return pages


def feature_page(model, transcoders, layer: int, feature: int, tokens=None, **kwargs) -> dict:
    """The page of one feature; see ``feature_pages`` for the arguments and the layout."""
    return feature_pages(model, transcoders, layer, [int(feature)], tokens, **kwargs)[int(feature)]


@torch.no_grad()
@locked
def feature_connections(
    model, transcoders: Mapping[int, object], layer: int, feature: int, *, k: int = 10
) -> dict[str, list[dict]]:
    """The features that write into ``feature`` (upstream) and that it writes into (downstream).

    The input-independent connection of a feature ``i`` of the transcoder at layer ``l`` to a
    feature ``j`` of the one at a later layer ``m`` is the virtual weight

        ``w[i -> j] = c(W_dec[l][i]) . W_enc[m][:, j]``

    (the transcoder circuits paper's direct connection): how much one unit of ``i``'s activation
    raises ``j``'s pre-activation by the direct path through the residual stream, before the
    norm's per-token scale divides it. ``c`` subtracts the row's mean when the model's norm is a
    LayerNorm (it centres its input, so the mean never reaches the encoder) and is the identity
    under RMSNorm. Attention moves part of what a feature writes to other positions, and the
    layers in between add their own; neither is in the virtual weight.

    Arguments:
        model, transcoders: the model and ``{layer: transcoder}``.
        layer, feature: the feature.
        k: how many of each are listed.

    Returns:
        ``{"upstream": [...], "downstream": [...]}``, each a list of ``{"layer", "feature",
        "weight"}`` over all the transcoders at earlier (later) layers, strongest ``|weight|``
        first, signs kept.
    """
    transcoders = check_transcoders(model, transcoders)
    if layer not in transcoders:
        raise ValueError(f"layer={layer!r}: no transcoder there; have {sorted(transcoders)}")
    d_sae = int(transcoders[layer].W_enc.shape[1])
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise ValueError(f"feature={feature!r} is not accepted; use an integer in 0..{d_sae - 1}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} is not accepted; use an integer >= 1")
    centre = str(getattr(model.cfg, "normalization_type", "") or "").upper() in ("LN", "LNPRE")

    def written(W: Tensor) -> Tensor:
        W = W.detach().float()
        return W - W.mean(-1, keepdim=True) if centre else W

    tc = transcoders[layer]
    up, down = [], []
    for other, otc in transcoders.items():
        if other < layer:  # every feature of `other` into our encoder column
            w = written(otc.W_dec) @ tc.W_enc[:, feature].detach().float().to(otc.W_dec.device)
            up += [(other, j, v) for j, v in enumerate(w.tolist())]
        elif other > layer:  # our decoder row into every encoder column of `other`
            row = written(tc.W_dec[feature]).to(otc.W_enc.device)
            w = row @ otc.W_enc.detach().float()
            down += [(other, j, v) for j, v in enumerate(w.tolist())]

    def strongest(found: list[tuple[int, int, float]]) -> list[dict]:
        found.sort(key=lambda t: -abs(t[2]))
        return [{"layer": la, "feature": j, "weight": v} for la, j, v in found[:k]]

    return {"upstream": strongest(up), "downstream": strongest(down)}


def _contexts(model, tokens: Tensor, a: Tensor, k: int, before: int, after: int) -> list[dict]:
    """The ``k`` windows where ``a`` ([n, pos]) peaks highest, one context per window."""
    peak_values, peak_pos = a.max(dim=1)
    order = peak_values.argsort(descending=True)[:k]
    out = []
    for row in order.tolist():
        value, pos = float(peak_values[row]), int(peak_pos[row])
        if value <= 0:
            break
        start, stop = max(0, pos - before), min(tokens.shape[1], pos + after + 1)
        out.append(
            {
                "activation": value,
                "row": row,
                "pos": pos,
                "start": start,
                "tokens": [_token_str(model, t) for t in tokens[row, start:stop].tolist()],
                "activations": a[row, start:stop].tolist(),
                "peak": pos - start,
            }
        )
    return out
