"""Faithfulness of a feature circuit: how much of the answer its features carry on their own.

The replacement model runs the prompt with every covered MLP replaced by its transcoder plus
that layer's error from the clean run. Every feature *outside* the circuit is then held at a
reference value, while the circuit's features are recomputed (so they feel what was ablated
upstream):

- ``zero``: 0 (the feature is off);
- ``mean``: its mean activation over held-out tokens;
- ``resample``: its activation, at the same position, on a corrupted prompt.

The metric is the logit difference between the target token and a rival (by default the strongest
other token of the clean run; for a counterfactual, its answer). Faithfulness is
``(m(circuit) - m(empty)) / (m(clean) - m(empty))``, where the empty circuit ablates every
feature: 1 means the circuit's features carry all that the features carry.
Features at the first position (BOS), which attribution graphs leave out, are never ablated.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..graph import CircuitGraph
from ..hooks import locked, run_with_cache, scoped_hooks
from ..result import Result
from ._core import prompt_tokens
from ._graph import _model_name
from ._replacement import as_replacement, cache_names, clean_errors, replacement_hooks

FEATURE_ABLATIONS = ("zero", "mean", "resample")


def _features(model, transcoders, tokens: Tensor) -> dict[int, Tensor]:
    """Each layer's feature activations ``[batch, pos, d_sae]`` on ``tokens``."""
    rep = as_replacement(model, transcoders)
    _, cache = run_with_cache(model, tokens, [rep.in_hook(la) for la in rep.views])
    return {
        la: v.encode(cache[rep.in_hook(la)].to(v.W_enc.dtype)).detach()
        for la, v in rep.views.items()
    }


@locked
def circuit_logits(
    model, transcoders, tokens: Tensor, keep: dict[int, Tensor], reference: dict[int, Tensor]
) -> Tensor:
    """Logits at the last position with features outside ``keep`` (``[pos, d_sae]`` masks) held
    at ``reference`` (broadcastable to ``[pos, d_sae]``), errors at their clean values.

    ``transcoders`` is ``{layer: transcoder}`` or a ``CrossLayerTranscoder``."""
    rep = as_replacement(model, transcoders)
    _, clean = run_with_cache(model, tokens[None], cache_names(model, rep))
    errors = clean_errors(model, rep, clean)

    def edit(layer: int, f: Tensor) -> Tensor:
        return torch.where(keep[layer][None], f, reference[layer])

    with scoped_hooks(model, replacement_hooks(model, rep, errors, edit)), torch.no_grad():
        return model(tokens[None])[0, -1]


@locked
def feature_faithfulness(
    model,
    transcoders,
    graph: CircuitGraph,
    *,
    corrupted: str | Tensor | None = None,
    reference_tokens: Tensor | None = None,
    ablations: tuple[str, ...] = FEATURE_ABLATIONS,
    rival: int | str | None = None,
) -> Result:
    """Faithfulness of the feature nodes of ``graph`` (an attribution graph of one prompt).

    Arguments:
        graph: the (pruned) attribution graph; its ``provenance["prompt_tokens_ids"]`` or prompt
            give the tokens, and its feature nodes are the circuit.
        corrupted: the prompt ``resample`` ablation takes values from (same token length).
        reference_tokens: ``[batch, pos]`` tokens for ``mean`` ablation.
        rival: the token (id, or a one-token string) the clean top token is compared against;
            default: the clean run's second most likely token. A counterfactual's answer
            (``" Rome"`` against ``" Paris"``) measures the information the corruption removes.
    """
    bad = [a for a in ablations if a not in FEATURE_ABLATIONS]
    if bad or not ablations:
        raise ValueError(f"ablations={ablations!r}: use some of {FEATURE_ABLATIONS}")
    rep = as_replacement(model, transcoders)
    transcoders = rep.views
    ids = graph.provenance.get("token_ids")
    if ids is None:
        raise ValueError("graph.provenance has no 'token_ids': pass a graph from attribution_graph")
    made_for = graph.provenance.get("model")
    if made_for is not None and made_for != _model_name(model):
        raise ValueError(
            f"the graph was made on model {made_for!r}, not {_model_name(model)!r}: load that model"
        )
    tokens = torch.as_tensor(ids, device=model.cfg.device)
    n_pos = tokens.numel()
    widths = {la: tc.W_enc.shape[1] for la, tc in transcoders.items()}
    for node in graph.nodes:
        if node.kind == "feature" and not (
            node.layer in widths and 0 <= node.index < widths[node.layer] and node.pos < n_pos
        ):
            raise ValueError(
                f"graph node {node.node_id} does not fit these transcoders (layers "
                f"{sorted(widths)}, widths {sorted(set(widths.values()))}) or the prompt"
            )
    keep = {
        la: torch.zeros(n_pos, tc.W_enc.shape[1], dtype=torch.bool, device=tc.W_enc.device)
        for la, tc in transcoders.items()
    }
    for node in graph.nodes:
        if node.kind == "feature" and node.layer in keep:
            keep[node.layer][node.pos, node.index] = True
    for mask in keep.values():  # attribution graphs leave out the first position (BOS)
        mask[0] = True
    with torch.no_grad():
        clean_logits = model(tokens[None])[0, -1]
    target = int(clean_logits.argmax())
    if rival is None:
        others = clean_logits.clone()
        others[target] = float("-inf")
        rival = int(others.argmax())
    else:
        rival = _token_id(model, rival)
        if rival == target:
            raise ValueError(f"rival {rival} is the clean top token itself; pick another token")

    def metric(logits: Tensor) -> float:
        return float(logits[target] - logits[rival])

    references: dict[str, dict[int, Tensor]] = {}
    for how in ablations:
        if how == "zero":
            references[how] = {
                la: torch.zeros(1, tc.W_enc.shape[1]) for la, tc in transcoders.items()
            }
        elif how == "mean":
            if reference_tokens is None:
                raise ValueError("mean ablation needs reference_tokens [batch, pos]")
            acts = _features(model, rep, reference_tokens.to(model.cfg.device))
            references[how] = {la: a.mean((0, 1))[None] for la, a in acts.items()}
        else:
            if corrupted is None:
                raise ValueError("resample ablation needs a corrupted prompt")
            other = (
                prompt_tokens(model, corrupted, None) if isinstance(corrupted, str) else corrupted
            )
            other = torch.as_tensor(other, device=model.cfg.device).flatten()
            if other.numel() != n_pos:
                raise ValueError(
                    f"corrupted has {other.numel()} tokens but the graph's prompt has {n_pos}"
                )
            references[how] = {la: a[0] for la, a in _features(model, rep, other[None]).items()}
    full = metric(clean_logits)
    nothing = {la: torch.zeros_like(k) for la, k in keep.items()}
    for mask in nothing.values():
        mask[0] = True
    values, raw, empty = [], {}, {}
    for how in ablations:
        raw[how] = metric(circuit_logits(model, rep, tokens, keep, references[how]))
        empty[how] = metric(circuit_logits(model, rep, tokens, nothing, references[how]))
        values.append((raw[how] - empty[how]) / (full - empty[how]))
    return Result(
        torch.tensor(values),
        ("ablation",),
        "feature-circuit faithfulness (logit difference recovered)",
        {"ablation": list(ablations)},
        {
            "method": "feature_faithfulness",
            "target": target,
            "rival": rival,
            "clean_metric": full,
            "circuit_metric": raw,
            "empty_circuit_metric": empty,
            "circuit_features": int(sum(int(k.sum()) for k in keep.values())),
        },
    )


def _token_id(model, token: int | str) -> int:
    """A token id from an id or a one-token string, range-checked."""
    if isinstance(token, str):
        ids = model.to_tokens(token, prepend_bos=False)[0]
        if ids.numel() != 1:
            raise ValueError(f"rival {token!r} is {ids.numel()} tokens; give one token")
        token = int(ids[0])
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"rival must be a token id or a one-token string, got {token!r}")
    if not 0 <= token < model.cfg.d_vocab:
        raise ValueError(f"rival {token} must be a token id in 0..{model.cfg.d_vocab - 1}")
    return token
