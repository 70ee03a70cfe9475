"""Turning computed rows into a CircuitGraph, and circuit-tracer's partial influence."""

from __future__ import annotations

import torch
from torch import Tensor

from ..adapter import adapter
from ..graph import CircuitGraph, Node

METHOD = "transcoder-attribution"


def _partial_influence(src_parts, dst_parts, w_parts, n_nodes, logit_node, logit_probs) -> Tensor:
    """Influence on the logits of every node, from the rows computed so far (circuit-tracer)."""
    src, dst = torch.cat(src_parts).long(), torch.cat(dst_parts).long()
    w = torch.cat(w_parts).abs().float()
    total = torch.zeros(n_nodes).index_add_(0, dst, w)
    share = w / total[dst].clamp_min(1e-10)
    current = torch.zeros(n_nodes)
    current[logit_node] = logit_probs.float()
    influence = torch.zeros(n_nodes)
    for _ in range(n_nodes + 1):
        current = torch.zeros(n_nodes).index_add_(0, src, share * current[dst])
        if not current.any():
            break
        influence += current
    return influence


def _assemble(
    model, prep, transcoders, tokens, logit_ids, probs, visited, src, dst, w
) -> CircuitGraph:
    """Build the CircuitGraph: tokens, selected features, errors, logits; edges renumbered."""
    n_layers, n_pos = int(model.cfg.n_layers), tokens.numel()
    n_feat = prep.feat_layer.numel()
    n_src = n_pos + n_feat + n_layers * n_pos
    new_id = torch.full((n_src + logit_ids.numel(),), -1, dtype=torch.long)
    graph = CircuitGraph(
        provenance={
            "model": _model_name(model),
            "method": METHOD,
            "transcoders": transcoders.source(),
            "n_layers": n_layers,
            "token_ids": [int(t) for t in tokens.tolist()],
        }
    )
    strs = model.to_str_tokens(tokens) if adapter(model).tokenizer is not None else None
    if strs is not None:
        graph.provenance.update(prompt_tokens=list(strs), prompt="".join(strs))
    for p in range(n_pos):
        label = strs[p] if strs is not None else str(int(tokens[p]))
        new_id[p] = graph.add_node(Node("token", None, p, int(tokens[p]), label=label))
    layers, poss, feats, acts = (
        t.tolist() for t in (prep.feat_layer, prep.feat_pos, prep.feat_index, prep.feat_act)
    )
    for i in torch.nonzero(visited).flatten().tolist():
        new_id[n_pos + i] = graph.add_node(
            Node("feature", layers[i], poss[i], feats[i], activation=acts[i])
        )
    norms = prep.errors.norm(dim=-1).tolist()
    mask = prep.error_mask.tolist()
    for layer in range(n_layers):
        for p in range(n_pos):
            if mask[layer][p]:
                j = n_pos + n_feat + layer * n_pos + p
                new_id[j] = graph.add_node(Node("error", layer, p, activation=norms[layer][p]))
    for k, t in enumerate(logit_ids.tolist()):
        label = (
            model.to_string(torch.tensor([t])) if adapter(model).tokenizer is not None else str(t)
        )
        new_id[n_src + k] = graph.add_node(
            Node("logit", n_layers, n_pos - 1, t, label=label, activation=float(probs[t]))
        )
    src = _take(src)
    s = new_id[src.long()]
    del src
    dst = _take(dst)
    d = new_id[dst.long()]
    del dst
    w = _take(w)
    ok = (s >= 0) & (d >= 0)
    if not bool(ok.all()):  # edges from features left out by max_feature_nodes
        s, d, w = s[ok], d[ok], w[ok]
    graph.add_edges(s, d, w, METHOD)
    return graph


def _take(parts: list[Tensor]) -> Tensor:
    """Concatenate and empty a list of edge chunks (so the chunks can be freed)."""
    out = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int32)
    parts.clear()
    return out


def _decode(model, tokens: Tensor) -> str:
    if adapter(model).tokenizer is None:
        return " ".join(map(str, tokens.tolist()))
    return model.to_string(tokens)


def _model_name(model) -> str:
    return adapter(model).spec or "model"
