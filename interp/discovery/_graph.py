"""Between edge scores and CircuitGraphs: building, extracting, reading back.

A component circuit's nodes: ``Node("token", label="input")`` (the embeddings, every position),
``Node("head", layer, index=h, label="L{l}H{h}")``, ``Node("mlp", layer, label="MLP{l}")`` and
``Node("logit", layer=n_layers, label="logits")``. A head reads its query, key and value through
three separate edges from each sender, told apart by the edge's method: ``"EAP:q"``, ``"EAP:k"``,
``"EAP:v"`` (``qkv="split"``, the default, as auto-circuit counts edges); with ``qkv="sum"`` one
edge per sender and head carries the sum of the three, method ``"EAP"``, and stands for all three
channels. ``CircuitGraph.edge_weights()`` sums parallel edges, so both read the same there.
Under grouped-query attention a key/value head is shared by the query heads of its group: its
key and value edges are drawn into each of those heads (same weight), and ``extract`` counts
such copies as one edge.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..graph import CircuitGraph, Node
from ..result import Result
from ._edges import CHANNELS, EdgeSpace


def space_nodes(space: EdgeSpace) -> tuple[list[Node], list[Node], list[Node]]:
    """The sender node of each column, the receiver node of each non-head row (MLPs, then the
    logits) and the head nodes ``[layer * n_heads + head]``."""
    heads = [
        Node("head", layer, index=h, label=f"L{layer}H{h}")
        for layer in range(space.n_layers)
        for h in range(space.n_heads)
    ]
    mlps = [Node("mlp", layer, label=f"MLP{layer}") for layer in range(space.n_layers)]
    senders = [Node("token", label="input")]
    for layer in range(space.n_layers):
        senders += heads[layer * space.n_heads : (layer + 1) * space.n_heads]
        senders += [mlps[layer]] if space.has_mlp else []
    others = (mlps if space.has_mlp else []) + [Node("logit", layer=space.n_layers, label="logits")]
    return senders, others, heads


def _space_of(scores: Result) -> EdgeSpace:
    info = scores.provenance.get("edge_space")
    if scores.axes != ("receiver", "sender") or info is None:
        raise ValueError(
            "scores must be the [receiver, sender] Result of edge_scores (with its provenance)"
        )
    return EdgeSpace.from_provenance(info)


def to_graph(scores: Result, *, qkv: str = "split") -> CircuitGraph:
    """The CircuitGraph of every scored edge: weight = score, method = the scoring method.

    Under grouped-query attention a key or value edge into a key/value group is drawn once per
    query head of the group (same weight; ``graph_edges_to_mask`` maps any of them back to it).

    Arguments:
        scores: the Result of ``edge_scores``.
        qkv: ``"split"`` (a head's q, k and v edges apart, methods ``"EAP:q"`` ...) or ``"sum"``.
    """
    if qkv not in ("split", "sum"):
        raise ValueError(f"qkv={qkv!r} is not accepted; use 'split' or 'sum'")
    space = _space_of(scores)
    method = scores.provenance.get("method", "EAP")
    senders, others, heads = space_nodes(space)
    keys = {k: scores.provenance[k] for k in ("model", "task", "method", "ig_steps", "metric")}
    spec = keys["model"].get("spec", "") if isinstance(keys["model"], dict) else str(keys["model"])
    graph = CircuitGraph(
        provenance={
            **keys,
            "qkv": qkv,
            "edge_space": space.provenance(),
            "n_layers": space.n_layers,
            "scan": spec,
        }
    )
    send_idx = torch.tensor(graph.add_nodes(senders))
    other_idx = torch.tensor(graph.add_nodes(others))
    head_idx = torch.tensor(graph.add_nodes(heads))
    values = scores.values
    other_rows = [space.mlp_receiver(la) for la in range(space.n_layers)] if space.has_mlp else []
    other_rows = torch.tensor(other_rows + [space.logit_receiver])
    # the row each (head, channel) reads through, heads in the order of ``heads``
    head_rows = {
        c: torch.tensor(
            [
                space.head_receiver(layer, h, c)
                for layer in range(space.n_layers)
                for h in range(space.n_heads)
            ]
        )
        for c in CHANNELS
    }
    groups = [(values[other_rows], other_idx, method)]
    if qkv == "sum":
        summed = sum(values[head_rows[c]] for c in CHANNELS)
        groups.append((summed, head_idx, method))
    else:
        groups += [(values[head_rows[c]], head_idx, f"{method}:{c}") for c in CHANNELS]
    for block, block_nodes, edge_method in groups:
        r, s = (~block.isnan()).nonzero(as_tuple=True)
        graph.add_edges(send_idx[s], block_nodes[r], block[r, s], edge_method)
    return graph


def graph_edges_to_mask(space: EdgeSpace, graph: CircuitGraph) -> Tensor:
    """Boolean ``[receiver, sender]`` of the edges in ``graph`` (see the module's layout)."""
    s, r, keep = _edge_rows(space, graph)
    mask = torch.zeros(space.n_receivers, space.n_senders, dtype=torch.bool)
    mask[r[keep], s[:, None].expand(-1, 3)[keep]] = True
    stray = mask & ~space.reads()
    if stray.any():
        rr, ss = stray.nonzero()[0].tolist()
        raise ValueError(
            f"the graph has an edge the model does not have (sender {ss} -> receiver {rr}): "
            "a component reads only from earlier layers (an MLP also from its own layer's heads)"
        )
    return mask


def _edge_rows(space: EdgeSpace, graph: CircuitGraph) -> tuple[Tensor, Tensor, Tensor]:
    """Each graph edge's sender column ``[edge]``, receiver rows ``[edge, 3]`` and which of the
    three rows it stands for ``[edge, 3]`` (one for a channel edge, all for a summed one)."""
    sender_of = torch.full((len(graph.nodes),), -1)
    row_of = torch.full((len(graph.nodes), 3), -1)
    for i, node in enumerate(graph.nodes):
        where = f"graph node {node.node_id!r}"
        if node.pos is not None:
            raise ValueError(f"{where} has a position; component circuits have pos=None nodes")
        if node.kind in ("head", "mlp") and not 0 <= (node.layer or 0) < space.n_layers:
            raise ValueError(f"{where} is outside the model's {space.n_layers} layers")
        if node.kind == "token":
            sender_of[i] = 0
        elif node.kind == "head":
            if not 0 <= (node.index or 0) < space.n_heads:
                raise ValueError(f"{where} is outside the model's {space.n_heads} heads")
            sender_of[i] = space.head_sender(node.layer, node.index)
            row_of[i] = torch.tensor(
                [space.head_receiver(node.layer, node.index, c) for c in CHANNELS]
            )
        elif node.kind == "mlp" and space.has_mlp:
            sender_of[i] = space.mlp_sender(node.layer)
            row_of[i] = space.mlp_receiver(node.layer)
        elif node.kind == "logit":
            row_of[i] = space.logit_receiver
        else:
            raise ValueError(f"{where} is not a node of this model's component graph")
    src, dst = graph.edge_index
    methods = graph.edge_method_ids.long()
    channel = torch.tensor(
        [CHANNELS.index(m.rsplit(":", 1)[1]) if _split(m) else -1 for m in graph.methods] or [-1]
    )[methods]
    s = sender_of[src]
    cols = torch.arange(3)
    want = (channel[:, None] == -1) | (channel[:, None] == cols[None])
    r = row_of[dst]  # edges x 3
    if (s < 0).any():
        bad = graph.nodes[int(src[(s < 0).nonzero()[0]])]
        raise ValueError(f"graph node {bad.node_id!r} cannot send (the logits read, never send)")
    if (r < 0).all(-1).any():
        bad = graph.nodes[int(dst[(r < 0).all(-1).nonzero()[0]])]
        raise ValueError(f"graph node {bad.node_id!r} cannot receive (the input only sends)")
    return s, r, want & (r >= 0)


def _canonical_copies(graph: CircuitGraph) -> Tensor | None:
    """For a graph of a grouped-query model: each edge's first copy (the same sender and key or
    value head, drawn into another query head of the group); None when edges have no copies."""
    info = graph.provenance.get("edge_space")
    if not isinstance(info, dict) or graph.n_edges == 0:
        return None
    space = EdgeSpace.from_provenance(info)
    if not space.grouped:
        return None
    s, r, keep = _edge_rows(space, graph)
    single = keep.sum(-1) == 1  # summed q+k+v edges are one head's own
    row = (r * keep).sum(-1)
    ids = torch.arange(graph.n_edges)
    key = torch.where(single, s * space.n_receivers + row, -1 - ids)
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), graph.n_edges).scatter_reduce(
        0, inverse, ids, "amin"
    )
    return first[inverse]


def _split(method: str) -> bool:
    return ":" in method and method.rsplit(":", 1)[1] in CHANNELS


def extract(
    graph: CircuitGraph | Result,
    *,
    threshold: float | None = None,
    top_n: int | None = None,
    absolute: bool = True,
) -> CircuitGraph:
    """A circuit from scored edges: the strongest edges, on paths from the input to the logits.

    Arguments:
        graph: the graph of ``eap`` (or the Result of ``edge_scores``).
        threshold: keep edges whose score is at least this (|score| when ``absolute``).
        top_n: keep the ``top_n`` highest-scoring edges instead (one of the two, not both); the
            copies of a shared key/value edge (grouped-query attention) count as one.
        absolute: rank by |score| (default) or by signed score (keep the largest).

    Returns:
        The sub-graph whose edges lie on some path input -> logits (others are dropped, with the
        nodes they leave unconnected); ``provenance["extract"]`` records the rule.
    """
    if (threshold is None) == (top_n is None):
        raise ValueError("give exactly one of threshold= and top_n=")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        raise ValueError(f"top_n={top_n!r} must be a non-negative integer")
    if threshold is not None and not (
        isinstance(threshold, int | float)
        and not isinstance(threshold, bool)
        and math.isfinite(threshold)
    ):
        raise ValueError(f"threshold={threshold!r} must be a finite number")
    if threshold is not None and absolute and threshold < 0:
        raise ValueError(
            f"threshold={threshold!r} is negative, so with absolute=True (|score| >= threshold) "
            "it would keep every edge; use threshold >= 0, or absolute=False for signed scores"
        )
    if isinstance(graph, Result):
        graph = to_graph(graph)
    w = graph.edge_weight.abs() if absolute else graph.edge_weight
    if top_n is not None:
        first = _canonical_copies(graph)
        if first is not None:  # copies of a shared key/value edge count once
            canonical = first == torch.arange(len(w))
            ranked = w.masked_fill(~canonical, -math.inf)
            chosen = torch.zeros_like(w, dtype=torch.bool)
            chosen[ranked.topk(min(top_n, int(canonical.sum()))).indices] = True
            keep = chosen[first]
        else:
            keep = torch.zeros_like(w, dtype=torch.bool)
            keep[w.topk(min(top_n, w.numel())).indices] = True
    else:
        keep = w >= threshold
    out = _on_paths(graph, keep)
    out.provenance["extract"] = {"threshold": threshold, "top_n": top_n, "absolute": absolute}
    return out


def _on_paths(graph: CircuitGraph, keep: Tensor) -> CircuitGraph:
    """Keep the kept edges that lie on a path from a token node to a logit node."""
    src, dst = graph.edge_index
    src, dst = src[keep], dst[keep]
    kinds = [n.kind for n in graph.nodes]
    forward = torch.tensor([k == "token" for k in kinds])
    backward = torch.tensor([k == "logit" for k in kinds])
    for _ in range(len(kinds) + 1):
        f, b = forward.clone(), backward.clone()
        f[dst[f[src]]] = True
        b[src[b[dst]]] = True
        if torch.equal(f, forward) and torch.equal(b, backward):
            break
        forward, backward = f, b
    on_path = keep.clone()
    on_path[keep] = forward[src] & backward[dst]
    live = forward & backward
    return graph.subgraph(live, on_path)
