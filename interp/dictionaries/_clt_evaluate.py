"""How well a cross-layer transcoder stands in for the MLPs: the per-layer figures, for a CLT.

The same figures as ``reconstruction_report`` for per-layer transcoders, so the two compare
side by side:

* per output layer ``m``: **FVE** of MLP ``m``'s output predicted from the features of layers
  ``0..m`` (read on the clean run), and the **spliced loss** with MLP ``m`` alone replaced by
  that prediction (against the clean loss and the loss with MLP ``m`` zeroed);
* per source layer ``l``: **L0** (mean active features per token), dead and dense shares;
* the loss with every MLP replaced at once, features recomputed from the spliced stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from ..hooks import hook_name, locked, run_with_cache, scoped_hooks
from ._clt import CrossLayerTranscoder, check_clt
from ._evaluate import _layer_figures, _zero_ablated_loss


@contextmanager
def spliced_clt(model, clt: CrossLayerTranscoder, layers: list[int] | None = None) -> Iterator:
    """Inside the block, the output of each MLP in ``layers`` (default: all) is replaced by the
    CLT's prediction from the features of every layer up to it, read on the running stream."""
    clt = check_clt(model, clt)
    layers = list(range(clt.n_layers)) if layers is None else [int(x) for x in layers]
    feats: dict[int, Tensor] = {}
    inputs: dict[int, Tensor] = {}
    hooks = []
    for la in range(clt.n_layers):

        def read(act, hook, la=la):
            inputs[la] = act
            feats[la] = clt.encode_layer(act.to(clt.W_enc.dtype), la)

        hooks.append((clt.hook_name(la), read))
        if la in layers:

            def replace(act, hook, m=la):
                y = clt.decode_layer([feats[k] for k in range(m + 1)], m, inputs[m])
                return y.to(act.dtype)

            hooks.append((hook_name(model, "mlp_out", la), replace))
    try:
        with scoped_hooks(model, hooks):
            yield model
    finally:
        feats.clear()
        inputs.clear()


def _loss(model, tokens: Tensor) -> float:
    return float(model(tokens, return_type="loss"))


@torch.no_grad()
@locked
def clt_report(model, clt: CrossLayerTranscoder, tokens: Tensor) -> dict:
    """FVE, L0, dead and dense shares and spliced losses of ``clt`` on ``tokens`` [batch, pos].

    Returns:
        ``{"clean_loss", "all_spliced_loss", "all_delta_loss", "l0_total", "tokens",
        "layers": {"0": {...}}}``; each layer has ``fve``, ``spliced_loss``, ``delta_loss``,
        ``zero_ablated_loss``, ``loss_recovered`` (of MLP ``l``'s output) and ``l0``,
        ``dead_fraction``, ``dense_fraction``, ``d_sae`` (of layer ``l``'s features).
    """
    clt = check_clt(model, clt)
    n = clt.n_layers
    names = [clt.hook_name(la) for la in range(n)] + [
        hook_name(model, "mlp_out", la) for la in range(n)
    ]
    _, cache = run_with_cache(model, tokens, names)
    dt = clt.W_enc.dtype
    xs = [cache[clt.hook_name(la)].reshape(-1, clt.d_model).to(dt) for la in range(n)]
    feats = [clt.encode_layer(x, la) for la, x in enumerate(xs)]
    clean = _loss(model, tokens)
    layers = {}
    for la in range(n):
        y = cache[hook_name(model, "mlp_out", la)].reshape(-1, clt.d_model).to(dt)
        y_hat = clt.decode_layer(feats[: la + 1], la, xs[la])
        with spliced_clt(model, clt, [la]):
            spliced_loss = _loss(model, tokens)
        layers[str(la)] = _layer_figures(
            y, y_hat, feats[la], clean=clean, spliced_loss=spliced_loss,
            zeroed=_zero_ablated_loss(model, tokens, hook_name(model, "mlp_out", la)),
        )  # fmt: skip
    with spliced_clt(model, clt):
        all_spliced = _loss(model, tokens)
    return {
        "clean_loss": clean,
        "all_spliced_loss": all_spliced,
        "all_delta_loss": all_spliced - clean,
        "l0_total": sum(v["l0"] for v in layers.values()),
        "tokens": int(tokens.numel()),
        "layers": layers,
    }
