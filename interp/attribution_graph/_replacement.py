"""The dictionaries that stand in for the MLPs: per-layer transcoders, or one cross-layer one.

Attribution graphs, interventions and faithfulness all run the same *replacement model*: each
covered MLP's output is replaced by its dictionary's prediction plus that layer's error (the true
output minus the prediction, from the clean run). The two kinds differ only in where a
feature's output goes:

* per-layer transcoders (``{layer: Transcoder}``): layer ``l``'s features write to MLP ``l``;
* a ``CrossLayerTranscoder``: layer ``l``'s features write to every MLP ``l' >= l``, so MLP
  ``l'``'s prediction sums the decoders of the features of layers ``0..l'``.

``as_replacement`` validates either against the model and gives one interface: ``views``
(per-layer encoders with ``W_enc [d_model, d_sae]``, ``b_enc``, ``encode``), ``in_hook``,
``decode`` and the hooks that run the replacement model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

from ..dictionaries import CrossLayerTranscoder, check_clt, check_transcoders
from ..hooks import check_hook, hook_name


@dataclass
class Replacement:
    """Validated dictionaries: ``views`` ``{layer: encoder}`` and, for a CLT, ``clt``."""

    views: dict[int, object]
    clt: CrossLayerTranscoder | None
    hooks_in: dict[int, str]

    def in_hook(self, layer: int) -> str:
        """The hook layer ``layer``'s features read."""
        return self.hooks_in[layer]

    @property
    def raw_input_layers(self) -> frozenset[int]:
        """Layers whose features read the residual stream itself (``hook_resid_mid``), not the
        normalised MLP input."""
        return frozenset(la for la, h in self.hooks_in.items() if h.endswith("hook_resid_mid"))

    def decode(self, layer: int, feats: Mapping[int, Tensor], x: Tensor) -> Tensor:
        """The predicted output of MLP ``layer`` from ``feats`` ``{layer: [..., d_sae]}`` and
        its input ``x`` (used by skip paths)."""
        if self.clt is not None:
            return self.clt.decode_layer([feats[k] for k in range(layer + 1)], layer, x)
        tc = self.views[layer]
        out = feats[layer] @ tc.W_dec + tc.b_dec
        skip = getattr(tc, "W_skip", None)
        return out if skip is None else out + x @ skip.T

    def source(self) -> dict[str, str]:
        """What each layer's dictionary is, for a graph's provenance."""
        if self.clt is not None:
            return {str(la): f"clt:{h}" for la, h in self.hooks_in.items()}
        return {str(la): _tc_source(tc) for la, tc in self.views.items()}


def as_replacement(model, transcoders) -> Replacement:
    """Validate ``transcoders`` (``{layer: Transcoder}`` or a ``CrossLayerTranscoder``)."""
    if isinstance(transcoders, Replacement):
        return transcoders
    if isinstance(transcoders, CrossLayerTranscoder):
        clt = check_clt(model, transcoders)
        views = {la: clt.layer(la) for la in range(clt.n_layers)}
        hooks = {la: check_hook(model, clt.hook_name(la)) for la in views}
        return Replacement(views, clt, hooks)
    views = check_transcoders(model, transcoders)
    hooks = {la: check_hook(model, f"blocks.{la}.ln2.hook_normalized") for la in views}
    return Replacement(views, None, hooks)


def clean_errors(model, rep: Replacement, cache) -> dict[int, Tensor]:
    """``{layer: true MLP output - prediction}`` from a clean cache of inputs and outputs."""
    xs = {la: cache[rep.in_hook(la)].to(v.W_enc.dtype) for la, v in rep.views.items()}
    feats = {la: v.encode(xs[la]) for la, v in rep.views.items()}
    return {
        la: cache[hook_name(model, "mlp_out", la)] - rep.decode(la, feats, xs[la])
        for la in rep.views
    }


def cache_names(model, rep: Replacement) -> list[str]:
    """The hooks ``clean_errors`` reads."""
    return [rep.in_hook(la) for la in rep.views] + [
        hook_name(model, "mlp_out", la) for la in rep.views
    ]


def replacement_hooks(
    model,
    rep: Replacement,
    errors: Mapping[int, Tensor],
    edit: Callable[[int, Tensor], Tensor] | None = None,
) -> list:
    """Hooks that run the replacement model: features recomputed from each layer's input,
    changed by ``edit(layer, feats)`` if given, decoded, plus the clean errors."""
    feats: dict[int, Tensor] = {}
    inputs: dict[int, Tensor] = {}
    hooks = []
    for la, view in rep.views.items():

        def read(act, hook, la=la, view=view):
            x = act.to(view.W_enc.dtype)
            f = view.encode(x)
            feats[la] = f if edit is None else edit(la, f)
            inputs[la] = x

        def replace(act, hook, la=la):
            return (rep.decode(la, feats, inputs[la]) + errors[la]).to(act.dtype)

        hooks += [(rep.in_hook(la), read), (hook_name(model, "mlp_out", la), replace)]
    return hooks


def _tc_source(tc) -> str:
    meta = getattr(getattr(tc, "cfg", None), "metadata", None)
    return str(getattr(meta, "hook_name", "") or type(tc).__name__)


def n_features(rep: Replacement) -> dict[int, int]:
    """Features per layer."""
    return {la: int(v.W_enc.shape[1]) for la, v in rep.views.items()}
