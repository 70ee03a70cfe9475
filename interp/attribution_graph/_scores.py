"""How much of an attribution graph the dictionaries explain: replacement and completeness scores.

Both are circuit-tracer's (``compute_graph_scores``), on the unpruned graph:

* **replacement score**: of the influence on the logits that reaches the graph's *inputs*
  (token embeddings and error nodes, the nodes with no incoming edges), the share that starts at
  tokens; 1 when errors carry nothing, i.e. the features explain every path.
* **completeness score**: for each node, the share of its incoming (absolute, normalised) edge
  weight that comes from non-error nodes, averaged with weights = the node's influence on the
  logits (plus the logit weights themselves).

They let a per-layer transcoder graph and a CLT graph of the same prompt be compared directly.
"""

from __future__ import annotations

import torch

from ..graph import CircuitGraph


def graph_scores(graph: CircuitGraph) -> dict[str, float]:
    """``{"replacement": float, "completeness": float}`` of an (unpruned) attribution graph."""
    if not isinstance(graph, CircuitGraph):
        raise TypeError(f"graph must be a CircuitGraph, got {type(graph).__name__}")
    n = len(graph.nodes)
    src, dst = graph.edge_index
    a = graph.edge_weight.abs().float()
    total = torch.zeros(n).index_add_(0, dst, a)
    share = a / total[dst].clamp_min(1e-10)
    seed = graph.logit_weights().float()
    influence = graph.influence().float()
    kinds = [node.kind for node in graph.nodes]
    is_err = torch.tensor([k == "error" for k in kinds])
    is_tok = torch.tensor([k == "token" for k in kinds])
    tok, err = float(influence[is_tok].sum()), float(influence[is_err].sum())
    from_error = torch.zeros(n).index_add_(0, dst, share * is_err[src].float())
    has_inputs = total > 0
    non_error = torch.where(has_inputs, 1 - from_error, torch.ones(n))
    weight = influence + seed
    return {
        "replacement": tok / max(tok + err, 1e-12),
        "completeness": float((non_error * weight).sum() / weight.sum().clamp_min(1e-12)),
    }
