"""What a dictionary feature does: how often it fires, on what, and which tokens it promotes.

* ``feature_density``: the fraction of tokens on which each feature is active.
* ``feature_top_contexts``: the strongest activations of chosen features with their context.
* ``feature_logit_effects``: the direct effect of each feature's decoder row on the logits,
  ``(W_dec[f] * ln_final.w) @ W_U`` (the final norm's learned weight included, its
  per-token scale left out, as in direct logit attribution), demeaned over the vocabulary, with the tokens it promotes and suppresses most.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..adapter import adapter
from ..heads import top_activations
from ..hooks import locked, run_with_cache
from ..result import Result
from ._evaluate import check_transcoders
from ._transcoder import transcoder_hooks


@torch.no_grad()
def _acts(model, tc, layer: int, tokens: Tensor, batch: int = 16) -> Tensor:
    """Feature activations ``[n, pos, d_sae]`` of ``tc`` on ``tokens`` ``[n, pos]``."""
    hook_in = transcoder_hooks(model, layer)[0]
    # nothing above the transcoder's own block changes its input
    stop = {"stop_at_layer": layer + 1} if layer + 1 < int(model.cfg.n_layers) else {}
    out = []
    for s in range(0, tokens.shape[0], batch):
        _, cache = run_with_cache(model, tokens[s : s + batch], [hook_in], **stop)
        out.append(tc.encode(cache[hook_in].to(tc.W_enc.dtype)).float())
    return torch.cat(out)


@locked
def feature_density(model, transcoders: Mapping[int, object], tokens: Tensor) -> Result:
    """Fraction of tokens on which each feature fires: a ``layer x feature`` Result."""
    transcoders = check_transcoders(model, transcoders)
    widths = {tc.W_enc.shape[1] for tc in transcoders.values()}
    if len(widths) != 1:
        raise ValueError(f"transcoders have different widths {sorted(widths)}; pass one at a time")
    dens = torch.stack(
        [(_acts(model, tc, la, tokens) > 0).float().mean((0, 1)) for la, tc in transcoders.items()]
    )
    return Result(
        dens,
        ("layer", "feature"),
        "activation density",
        labels={"layer": [str(la) for la in transcoders]},
        provenance={"method": "feature_density", "tokens": int(tokens.numel())},
    )


@locked
def feature_top_contexts(
    model,
    transcoders: Mapping[int, object],
    layer: int,
    tokens: Tensor,
    features: list[int] | None = None,
    k: int = 5,
    window: int = 8,
) -> dict[int, list[dict]]:
    """For each feature of the transcoder at ``layer``, its ``k`` strongest activations.

    Returns:
        ``{feature: [{"activation", "row", "pos", "context", "token"}, ...]}``, strongest first
        (only activations > 0; a feature that never fires gets an empty list).
    """
    transcoders = check_transcoders(model, transcoders)
    if layer not in transcoders:
        raise ValueError(f"no transcoder for layer {layer}; have {sorted(transcoders)}")
    acts = _acts(model, transcoders[layer], layer, tokens)
    d_sae = acts.shape[-1]
    features = list(range(d_sae)) if features is None else [int(f) for f in features]
    bad = [f for f in features if not 0 <= f < d_sae]
    if bad:
        raise ValueError(f"features {bad} are out of range 0..{d_sae - 1}")
    out: dict[int, list[dict]] = {}
    for f, top in top_activations(acts, features, k).items():
        rows = []
        for value, row, pos in top:
            if value <= 0:
                break
            ctx = tokens[row, max(0, pos - window) : pos + 1]
            rows.append(
                {
                    "activation": value,
                    "row": row,
                    "pos": pos,
                    "context": "".join(_token_str(model, t) for t in ctx[:-1].tolist()),
                    "token": _token_str(model, int(ctx[-1])),
                }
            )
        out[f] = rows
    return out


@torch.no_grad()
@locked
def feature_logit_effects(
    model,
    transcoders: Mapping[int, object],
    layer: int,
    features: list[int] | None = None,
    k: int = 10,
) -> dict[int, dict[str, list[tuple[str, float]]]]:
    """The tokens each feature's decoder row promotes and suppresses directly.

    Returns:
        ``{feature: {"top": [(token, effect), ...], "bottom": [...]}}``, ``k`` each, where
        ``effect`` is the demeaned ``(W_dec[f] * ln_final.w) @ W_U`` entry for that token.
    """
    transcoders = check_transcoders(model, transcoders)
    if layer not in transcoders:
        raise ValueError(f"no transcoder for layer {layer}; have {sorted(transcoders)}")
    tc = transcoders[layer]
    d_sae = tc.W_dec.shape[0]
    features = list(range(d_sae)) if features is None else [int(f) for f in features]
    W = tc.W_dec[features].float()
    w = getattr(adapter(model).ln_final, "w", None)
    if w is not None:
        W = W * w.detach().float()
    eff = W @ model.W_U.detach().float()
    eff = eff - eff.mean(-1, keepdim=True)
    top, bottom = eff.topk(k, dim=-1), (-eff).topk(k, dim=-1)
    out = {}
    for j, f in enumerate(features):
        out[f] = {
            "top": [
                (_token_str(model, t), v)
                for t, v in zip(top.indices[j].tolist(), top.values[j].tolist())
            ],
            "bottom": [
                (_token_str(model, t), -v)
                for t, v in zip(bottom.indices[j].tolist(), bottom.values[j].tolist())
            ],
        }
    return out


def _token_str(model, token: int) -> str:
    """The token's text, or its id in brackets for a model without a tokenizer."""
    if adapter(model).tokenizer is None:
        return f"[{token}]"
    return model.to_string(torch.tensor([token]))
