"""MLP neurons: what turns them on, and what they write.

Feed-forward layers act as key-value memories (Geva et al., 2021): a neuron's input weights are a
key matched against the residual stream, and its output weights a value added to it. Here:
the contexts that activate a neuron most, the tokens its output weights promote through the
unembedding, and the cosine between its input and output weights (positive: the neuron
*enriches* the direction it reads; negative: it *depletes* it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _checks
from ..hooks import hook_name, locked, run_with_cache
from ..models import provenance
from ..result import Result


@locked
def neuron_top_contexts(
    model, tokens: Tensor, layer: int, neurons: list[int] | None = None, k: int = 5, window: int = 8
) -> dict[int, list[dict]]:
    """For each neuron, the ``k`` highest activations over ``tokens`` with their context.

    Returns:
        ``{neuron: [{"activation", "row", "pos", "context", "token"}, ...]}``, strongest first.
    """
    name = hook_name(model, "post", layer)
    tokens = _checks.token_ids(model, tokens, "tokens")
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
    _checks.positive_int(k, "k")
    _, cache = run_with_cache(model, tokens, [name])
    acts = cache[name]  # batch pos d_mlp
    neurons = list(range(acts.shape[-1])) if neurons is None else neurons
    bad = [n for n in neurons if not 0 <= n < acts.shape[-1]]
    if bad:
        raise ValueError(f"neurons {bad} are out of range 0..{acts.shape[-1] - 1}")
    out: dict[int, list[dict]] = {}
    for neuron, top in top_activations(acts, neurons, k).items():
        rows = []
        for value, row, pos in top:
            ctx = tokens[row, max(0, pos - window) : pos + 1]
            rows.append(
                {
                    "activation": value,
                    "row": row,
                    "pos": pos,
                    "context": model.to_string(ctx[:-1]),
                    "token": model.to_string(ctx[-1:]),
                }
            )
        out[neuron] = rows
    return out


def top_activations(
    acts: Tensor, units: list[int], k: int
) -> dict[int, list[tuple[float, int, int]]]:
    """For each unit (last axis of ``acts``, ``[batch, pos, unit]``), its ``k`` largest
    activations as ``(value, row, pos)``, strongest first."""
    flat = acts[..., units].reshape(-1, len(units))
    top = flat.topk(min(k, flat.shape[0]), dim=0)
    return {
        unit: [
            (value, *divmod(idx, acts.shape[1]))
            for value, idx in zip(
                top.values[:, j].tolist(), top.indices[:, j].tolist(), strict=True
            )
        ]
        for j, unit in enumerate(units)
    }


@locked
def neuron_vocab_projection(model, layer: int, k: int = 10) -> dict[str, Tensor]:
    """The tokens each neuron's output weights promote and suppress: ``W_out[layer] @ W_U``.

    Returns:
        ``{"top": [d_mlp, k] token ids, "bottom": [d_mlp, k] token ids}``.
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer={layer} is out of range 0..{model.cfg.n_layers - 1}")
    _checks.positive_int(k, "k")
    logits = model.W_out[layer].detach() @ model.W_U.detach()
    return {"top": logits.topk(k, dim=-1).indices, "bottom": (-logits).topk(k, dim=-1).indices}


@locked
def neuron_in_out_cosine(model) -> Result:
    """Cosine between each neuron's input and output weights: ``[layer, neuron]``."""
    w_in = model.W_in.detach().float()  # layer d_model d_mlp
    w_out = model.W_out.detach().float()  # layer d_mlp d_model
    cos = torch.nn.functional.cosine_similarity(w_in.transpose(1, 2), w_out, dim=-1)
    return Result(
        cos,
        ("layer", "neuron"),
        "cos(W_in, W_out)",
        provenance={"model": provenance(model), "method": "neuron_in_out_cosine"},
    )
