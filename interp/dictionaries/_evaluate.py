"""How well transcoders stand in for the MLPs: variance explained, sparsity, spliced loss.

* **FVE** (fraction of variance explained): ``1 - E|y - y_hat|^2 / E|y - E y|^2`` over tokens, with
  ``y`` the MLP's output.
* **L0**: mean number of active features per token.
* **Spliced loss**: the model's next-token loss with the MLP's output replaced by the
  transcoder's prediction (each layer alone, and all layers at once), against the clean loss and
  against the loss with that MLP's output zeroed (the share of the MLP's contribution recovered
  is ``1 - (spliced - clean) / (zeroed - clean)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor

from ..hooks import locked, run_with_cache, scoped_hooks
from ._transcoder import transcoder_hooks

DENSE_DENSITY = 0.1  # a feature active on more than this share of tokens counts as dense


def check_transcoders(model, transcoders) -> dict[int, object]:
    """Validate ``{layer: transcoder}`` against ``model``; returns it with int keys.

    Raises:
        TypeError: not a mapping from layer to a transcoder-like module.
        ValueError: a layer out of range, or a width that does not fit the model.
    """
    if not isinstance(transcoders, Mapping) or not transcoders:
        raise TypeError(
            "transcoders must be a non-empty {layer: Transcoder} mapping, e.g. "
            "interp.dictionaries.load_transcoders('induction-2l')"
        )
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    out = {}
    for layer, tc in transcoders.items():
        if not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise ValueError(f"transcoder layer {layer!r} is out of range: use 0..{n_layers - 1}")
        for attr in ("W_enc", "W_dec", "b_enc", "b_dec"):
            if not hasattr(tc, attr):
                raise TypeError(f"transcoder for layer {layer} has no {attr}: not a transcoder")
        d_in, d_sae = tc.W_enc.shape
        if d_in != d_model or tuple(tc.W_dec.shape) != (d_sae, d_model):
            raise ValueError(
                f"transcoder for layer {layer} maps {d_in} -> {tuple(tc.W_dec.shape)[-1]} "
                f"(W_enc {tuple(tc.W_enc.shape)}, W_dec {tuple(tc.W_dec.shape)}) but the model "
                f"has d_model={d_model}"
            )
        meta = getattr(getattr(tc, "cfg", None), "metadata", None)
        hook = getattr(meta, "hook_name", None) if meta is not None else None
        expected = transcoder_hooks(model, layer)[0]
        if hook and hook != expected:
            raise ValueError(
                f"transcoder given for layer {layer} reads {hook!r}, not {expected!r}: "
                f"it belongs to another layer or site"
            )
        out[int(layer)] = tc
    return dict(sorted(out.items()))


@contextmanager
def spliced(model, transcoders: Mapping[int, object]) -> Iterator:
    """Inside the block, each listed MLP's output is replaced by its transcoder's prediction."""
    transcoders = check_transcoders(model, transcoders)
    inputs: dict[int, Tensor] = {}
    hooks = []
    for layer, tc in transcoders.items():
        hook_in, hook_out = transcoder_hooks(model, layer)

        def keep(act, hook, layer=layer):
            inputs[layer] = act

        def replace(act, hook, layer=layer, tc=tc):
            return tc(inputs.pop(layer).to(tc.W_enc.dtype)).to(act.dtype)

        hooks += [(hook_in, keep), (hook_out, replace)]
    with scoped_hooks(model, hooks):
        yield model


def _loss(model, tokens: Tensor) -> float:
    with torch.no_grad():
        return float(model(tokens, return_type="loss"))


def _zero_ablated_loss(model, tokens: Tensor, hook: str) -> float:
    """The loss on ``tokens`` with activation ``hook`` (an MLP's output) set to zero."""
    with scoped_hooks(model, [(hook, lambda act, hook: torch.zeros_like(act))]):
        return _loss(model, tokens)


def _layer_figures(
    y: Tensor, y_hat: Tensor, f: Tensor, *, clean: float, spliced_loss: float, zeroed: float
) -> dict:
    """One layer's figures: the FVE of ``y_hat`` (of ``y``, [token, d]), the L0, dead and dense
    shares of features ``f`` ([token, d_sae]), and the losses spliced (the replacement's output
    in place of the MLP's) and zero-ablated against the ``clean`` loss."""
    var = (y - y.mean(0)).pow(2).sum(-1).mean()
    on = f > 0
    return {
        "fve": float(1 - (y - y_hat).pow(2).sum(-1).mean() / var),
        "l0": float(on.float().sum(-1).mean()),
        "dead_fraction": float((on.sum(0) == 0).float().mean()),
        "dense_fraction": float((on.float().mean(0) > DENSE_DENSITY).float().mean()),
        "d_sae": int(f.shape[-1]),
        "spliced_loss": spliced_loss,
        "delta_loss": spliced_loss - clean,
        "zero_ablated_loss": zeroed,
        "loss_recovered": float(1 - (spliced_loss - clean) / max(zeroed - clean, 1e-9)),
    }


@torch.no_grad()
@locked
def reconstruction_report(model, transcoders: Mapping[int, object], tokens: Tensor) -> dict:
    """FVE, L0, dead-feature share and spliced losses per layer on ``tokens`` ([batch, pos]).

    Returns:
        ``{"clean_loss": float, "all_spliced_loss": float, "tokens": int, "layers": {"0": {...}}}``
        where each layer has ``fve``, ``l0``, ``dead_fraction`` (never active here),
        ``dense_fraction`` (active on more than ``DENSE_DENSITY`` of the tokens),
        ``spliced_loss``, ``delta_loss``, ``zero_ablated_loss``, ``loss_recovered``.
    """
    transcoders = check_transcoders(model, transcoders)
    names = [n for layer in transcoders for n in transcoder_hooks(model, layer)]
    _, cache = run_with_cache(model, tokens, names)
    clean = _loss(model, tokens)
    layers = {}
    for layer, tc in transcoders.items():
        hook_in, hook_out = transcoder_hooks(model, layer)
        x = cache[hook_in].reshape(-1, cache[hook_in].shape[-1]).to(tc.W_enc.dtype)
        y = cache[hook_out].reshape(-1, cache[hook_out].shape[-1]).to(tc.W_enc.dtype)
        f = tc.encode(x)
        with spliced(model, {layer: tc}):
            spliced_loss = _loss(model, tokens)
        layers[str(layer)] = _layer_figures(
            y, tc.decode(f), f, clean=clean, spliced_loss=spliced_loss,
            zeroed=_zero_ablated_loss(model, tokens, hook_out),
        )  # fmt: skip
    with spliced(model, transcoders):
        all_spliced = _loss(model, tokens)
    return {
        "clean_loss": clean,
        "all_spliced_loss": all_spliced,
        "all_delta_loss": all_spliced - clean,
        "tokens": int(tokens.numel()),
        "layers": layers,
    }
