"""Feature pages: everything a person reads to tell what one dictionary feature does.

A page, as Neuronpedia shows one, holds for a feature of the transcoder at some layer:

* **top contexts**: the windows of text where it fires hardest (one per window, strongest first),
  each as its tokens with the feature's activation on every token, so a viewer can shade them,
  and the index of the token it peaks on;
* an **activation histogram**: how strongly it fires when it fires (equal-width bins from 0 to
  its maximum, over the active tokens);
* its **density**: the share of tokens on which it is active;
* its **logit effects**: the tokens its decoder row promotes and suppresses directly
  (``feature_logit_effects``).

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

    Returns:
        ``{feature: page}``; a page is a dict with ``layer``, ``feature``, ``density``,
        ``max_activation``, ``tokens_seen``, ``contexts`` (each ``{"activation", "row", "pos",
        "start", "tokens": [str], "activations": [float], "peak"}``, where ``peak`` indexes
        ``tokens`` and ``activation == activations[peak]``), ``histogram`` (``{"edges",
        "counts"}``, ``bins + 1`` edges) and ``logits`` (``{"top": [(token, effect)],
        "bottom": [...]}``).
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
    for name, value in (("k", k), ("bins", bins), ("n_logits", n_logits)):
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
        }
    return pages


def feature_page(model, transcoders, layer: int, feature: int, tokens=None, **kwargs) -> dict:
    """The page of one feature; see ``feature_pages`` for the arguments and the layout."""
    return feature_pages(model, transcoders, layer, [int(feature)], tokens, **kwargs)[int(feature)]


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
