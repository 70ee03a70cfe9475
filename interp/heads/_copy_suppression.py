"""Copy suppression measured by ablation (McDougall et al., 2023).

A copy-suppression head attends to earlier tokens that the model is about to predict and pushes
their logits down. The weights show it as negative copying in the OV circuit
(``ov_copying_scores``); its *effect* shows when the head is ablated: the log-probability of the
in-context tokens the model predicts goes up. This module measures that effect for every head:
at each position whose top prediction already occurs earlier in the context, the change in that
token's log-probability when the head's output is mean-ablated. Positive: the head suppressed
the copy; negative: it helped copy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..hooks import hook_name, locked, model_lock, run_with_cache, scoped_hooks
from ..models import provenance
from ..result import Result
from ._detectors import repeated_random_tokens


def _in_context_targets(tokens: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """The top prediction at each position, and whether it occurs in the context so far."""
    top = logits.argmax(-1)  # batch pos
    seen = tokens[:, None, :] == top[:, :, None]  # batch pos(query) pos(context)
    causal = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool, device=tokens.device)
    seen = (seen & causal.tril()[None]).any(-1)
    seen[:, 0] = False
    return top, seen


def _mean_ablation(rows: list[tuple[int, int]], b: int, mean: Tensor):
    """A z hook: in row block ``i`` (of ``b`` prompts), replace ``head`` by its mean."""

    def ablate(z, hook):
        for i, head in rows:
            z[i * b : (i + 1) * b, :, head] = mean[:, :, head]
        return z

    return ablate


@locked
def copy_suppression_effect(
    model,
    tokens: Tensor | None = None,
    *,
    heads_per_pass: int = 8,
) -> Result:
    """Rise in log-prob of predicted in-context tokens when each head is mean-ablated.

    Arguments:
        model: a TransformerLens model.
        tokens: probe sequences ``[batch, pos]``; default: repeated random tokens, where the
            second copy's predictions all occur earlier in the context.
        heads_per_pass: how many single-head ablations share one batched forward pass.

    Returns:
        A ``layer x head`` Result; positive values mark copy suppression.
    """
    if tokens is None:
        tokens = repeated_random_tokens(model, n=8, period=24, seed=0)
    if tokens.dim() != 2 or tokens.shape[1] < 3:
        raise ValueError(f"tokens must be [batch, pos] with pos >= 3, got {tuple(tokens.shape)}")
    if heads_per_pass < 1:
        raise ValueError(f"heads_per_pass must be >= 1, got {heads_per_pass}")
    tokens = tokens.to(model.cfg.device)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    z_names = [hook_name(model, "z", layer) for layer in range(n_layers)]
    with model_lock(model):
        logits, cache = run_with_cache(model, tokens, z_names)
    top, mask = _in_context_targets(tokens, logits)
    if not mask.any():
        raise ValueError(
            "no position of the probe predicts a token from its own context; give tokens with "
            "repeated content (e.g. repeated_random_tokens)"
        )
    clean_lp = logits.float().log_softmax(-1).gather(-1, top[..., None])[..., 0]
    means = {name: cache[name].mean(0, keepdim=True) for name in z_names}  # 1 pos head d_head
    pairs = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    values = torch.zeros(n_layers, n_heads)
    b = tokens.shape[0]
    for k in range(0, len(pairs), heads_per_pass):
        chunk = pairs[k : k + heads_per_pass]

        fwd = []
        for layer in sorted({la for la, _ in chunk}):
            rows = [(i, head) for i, (la, head) in enumerate(chunk) if la == layer]
            fwd.append((z_names[layer], _mean_ablation(rows, b, means[z_names[layer]])))
        with torch.no_grad(), scoped_hooks(model, fwd):
            out = model(tokens.repeat(len(chunk), 1)).float().log_softmax(-1)
        lp = out.gather(-1, top.repeat(len(chunk), 1)[..., None])[..., 0].view(len(chunk), b, -1)
        delta = (lp - clean_lp[None]) * mask[None]
        for (layer, head), d in zip(chunk, delta.sum((1, 2)) / mask.sum(), strict=True):
            values[layer, head] = float(d)
    return Result(
        values,
        ("layer", "head"),
        "copy suppression (rise in log-prob of predicted in-context tokens when ablated)",
        provenance={
            "model": provenance(model),
            "method": "copy_suppression_effect",
            "ablation": "mean",
            "positions": int(mask.sum()),
        },
    )
