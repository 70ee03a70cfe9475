"""Position-aware component circuits: an edge between two components at one position.

Wang et al. (2022) and Haklay et al. (2025) describe circuits whose edges hold at some token
positions only: the previous-token head matters where it writes the first copy, the induction
heads where they read the last token. Here the edge ``s -> r`` at position ``p`` is receiver
``r``'s input at ``p`` reading sender ``s``'s output at ``p``; ablating it replaces that one term
by the reference (corrupted, mean or zero) at ``p`` and leaves ``r``'s input at every other
position alone. Attention moves information across positions inside a head: a head's output at
``q`` reads its query at ``q`` and its keys and values at every ``p <= q``.

- ``edge_scores(..., by_position=True)`` scores ``[receiver, sender, pos]``: the EAP/EAP-IG terms
  before the sum over positions (summed, they are the position-agnostic scores);
- ``faithfulness`` takes a ``[receiver, sender, pos]`` mask of kept edges, or the graph of
  ``extract_positional``;
- ``extract_positional`` keeps the strongest (edge, position) pairs that lie on a path from the
  input to the logits, as a CircuitGraph whose nodes carry ``pos``; ``positional_edges_to_mask``
  reads it back.

Positions are the prompts' token positions, so every prompt must put its tokens at the same
positions: one shared answer position (tasks that align their prompts do).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..graph import CircuitGraph, Node
from ..hooks import hook_name
from ..result import Result
from ..tasks import TaskBatch
from ._edges import CHANNELS, EdgeSpace, head_input_grads


def aligned_positions(batch: TaskBatch) -> int:
    """The prompts' length; fails unless every prompt reads its answer at the same position."""
    pos = batch.answer_pos
    if isinstance(pos, Tensor) and pos.numel() and bool((pos != pos.flatten()[0]).any()):
        raise ValueError(
            f"task {batch.task.name!r} reads answers at different positions per prompt "
            f"({sorted(set(pos.flatten().tolist()))}); position-aware circuits need prompts "
            "aligned token by token: one shared answer position"
        )
    return int(batch.clean.shape[1])


def positional_step_scores(model, space: EdgeSpace, run: dict, delta: Tensor) -> Tensor:
    """``[receiver, sender, pos]`` scores from one gradient pass: ``sum_batch delta . grad``.

    The terms of ``_eap._step_scores`` before their sum over positions; ``delta`` is
    ``[sender, batch * pos * d_model]``.
    """
    b, p, d = run[hook_name(model, "resid_pre", 0)].shape
    delta = delta.view(space.n_senders, b, p, d)
    scores = torch.zeros(space.n_receivers, space.n_senders, p, device=delta.device)
    grads = run["grads"]
    for layer in range(space.n_layers):
        n_read = space.senders_before(layer)
        g_heads = head_input_grads(
            model,
            layer,
            run[hook_name(model, "resid_pre", layer)],
            [grads[hook_name(model, c, layer)] for c in "qkv"],
        ).view(-1, b, p, d)
        rows = slice(layer * space.receivers_per_layer, space.mlp_receiver(layer))
        scores[rows, :n_read] = torch.einsum("rbpd,sbpd->rsp", g_heads, delta[:n_read])
        if space.has_mlp:
            post = grads[hook_name(model, "resid_post", layer)]
            g_mlp = grads[hook_name(model, "resid_mid", layer)] - post
            n_mlp = space.mlp_sender(layer)
            scores[space.mlp_receiver(layer), :n_mlp] = torch.einsum(
                "sbpd,bpd->sp", delta[:n_mlp], g_mlp
            )
    final = grads[hook_name(model, "resid_post", space.n_layers - 1)]
    scores[space.logit_receiver] = torch.einsum("sbpd,bpd->sp", delta, final)
    return scores.float().cpu()


def _space_of(scores: Result) -> EdgeSpace:
    info = scores.provenance.get("edge_space")
    if scores.axes != ("receiver", "sender", "pos") or info is None:
        raise ValueError(
            "scores must be the [receiver, sender, pos] Result of "
            "edge_scores(..., by_position=True) (with its provenance)"
        )
    return EdgeSpace.from_provenance(info)


def _later(x: Tensor) -> Tensor:
    """``out[..., p] = any(x[..., p:])``: read by a query at ``p`` or later."""
    return x.flip(-1).int().cummax(-1).values.flip(-1).bool()


def _earlier(x: Tensor) -> Tensor:
    """``out[..., q] = any(x[..., :q + 1])``: reachable by a query at ``q``."""
    return x.int().cummax(-1).values.bool()


def on_paths(space: EdgeSpace, keep: Tensor) -> Tensor:
    """The kept ``[receiver, sender, pos]`` edges on some path from the input to the logits.

    Paths run along edges at one position and, inside a head, from its key or value input at
    ``p`` to its output at every ``q >= p`` and from its query input at ``q`` to its output at ``q``.
    """
    n_pos = keep.shape[2]
    fwd = torch.zeros(space.n_senders, n_pos, dtype=torch.bool)  # sender output reached
    fwd[0] = True
    for layer in range(space.n_layers):
        reach = (keep & fwd[None]).any(1)  # [receiver, pos]: input reached from the input
        for h in range(space.n_heads):
            q, k, v = (space.head_receiver(layer, h, c) for c in CHANNELS)
            fwd[space.head_sender(layer, h)] = reach[q] | _earlier(reach[k] | reach[v])
        if space.has_mlp:
            reach = (keep & fwd[None]).any(1)
            fwd[space.mlp_sender(layer)] = reach[space.mlp_receiver(layer)]
    bwd = torch.zeros(space.n_receivers, n_pos, dtype=torch.bool)  # input reaches the logits
    bwd[space.logit_receiver] = True
    for layer in reversed(range(space.n_layers)):
        if space.has_mlp:
            s = space.mlp_sender(layer)
            bwd[space.mlp_receiver(layer)] = (keep[:, s] & bwd).any(0)
        for h in range(space.n_heads):
            out = (keep[:, space.head_sender(layer, h)] & bwd).any(0)
            q, k, v = (space.head_receiver(layer, h, c) for c in CHANNELS)
            bwd[q] |= out
            bwd[k] |= _later(out)
            bwd[v] |= _later(out)
    return keep & fwd[None] & bwd[:, None]


def _nodes(space: EdgeSpace, pos: int, labels: list[str]):
    """Sender nodes ``[sender]`` and receiver nodes with channels ``[receiver] -> [(node, c)]``
    at position ``pos``."""
    where = f"@{labels[pos]}"
    senders = [Node("token", pos=pos, label=f"input{where}")]
    receivers: list[list[tuple[Node, str | None]]] = [[] for _ in range(space.n_receivers)]
    for layer in range(space.n_layers):
        for h in range(space.n_heads):
            node = Node("head", layer, pos=pos, index=h, label=f"L{layer}H{h}{where}")
            senders.append(node)
            for c in CHANNELS:
                receivers[space.head_receiver(layer, h, c)].append((node, c))
        if space.has_mlp:
            node = Node("mlp", layer, pos=pos, label=f"MLP{layer}{where}")
            senders.append(node)
            receivers[space.mlp_receiver(layer)].append((node, None))
    logit = Node("logit", layer=space.n_layers, pos=pos, label=f"logits{where}")
    receivers[space.logit_receiver].append((logit, None))
    return senders, receivers


def extract_positional(scores: Result, top_n: int, *, absolute: bool = True) -> CircuitGraph:
    """A position-aware circuit: the ``top_n`` strongest (edge, position) pairs on input -> logits
    paths (see ``on_paths``), as a CircuitGraph whose nodes carry ``pos``.

    Arguments:
        scores: the ``[receiver, sender, pos]`` Result of ``edge_scores(..., by_position=True)``.
        top_n: how many (edge, position) pairs to rank in; those off every path are dropped.
        absolute: rank by |score| (default) or by signed score (keep the largest).

    Returns:
        Edges ``(sender at p) -> (receiver at p)``, method ``"EAP:q"`` ... for a head's query,
        key and value inputs (under grouped-query attention a key/value edge is drawn into each
        query head of its group). ``faithfulness`` takes the graph as it is;
        ``positional_edges_to_mask`` reads it back to the ``[receiver, sender, pos]`` mask.
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0:
        raise ValueError(f"top_n={top_n!r} must be a non-negative integer")
    space = _space_of(scores)
    values = scores.values.float()
    valid = ~values.isnan()
    w = (values.abs() if absolute else values).masked_fill(~valid, -math.inf)
    keep = torch.zeros_like(valid)
    keep.view(-1)[w.flatten().topk(min(top_n, int(valid.sum()))).indices] = True
    kept = on_paths(space, keep & valid)
    method = scores.provenance.get("method", "EAP")
    keys = ("model", "task", "method", "ig_steps", "metric")
    graph = CircuitGraph(
        provenance={
            **{k: scores.provenance.get(k) for k in keys},
            "edge_space": space.provenance(),
            "n_layers": space.n_layers,
            "positions": list(scores.labels["pos"]),
            "extract": {"top_n": top_n, "absolute": absolute, "by_position": True},
        }
    )
    labels = list(scores.labels["pos"])
    for p in sorted(set(kept.nonzero()[:, 2].tolist())):
        senders, receivers = _nodes(space, p, labels)
        r, s = kept[:, :, p].nonzero(as_tuple=True)
        for row, col in zip(r.tolist(), s.tolist(), strict=True):
            for node, c in receivers[row]:
                graph.add_edge(
                    senders[col], node, float(values[row, col, p]), method + (f":{c}" if c else "")
                )
    return graph


def positional_edges_to_mask(space: EdgeSpace, graph: CircuitGraph, n_pos: int) -> Tensor:
    """Boolean ``[receiver, sender, pos]`` of the edges of a position-aware ``graph``."""
    mask = torch.zeros(space.n_receivers, space.n_senders, n_pos, dtype=torch.bool)
    src, dst = graph.edge_index
    for a, b, method in zip(src.tolist(), dst.tolist(), graph.edge_methods, strict=True):
        sender, receiver = graph.nodes[a], graph.nodes[b]
        pos = receiver.pos
        if pos is None or sender.pos != pos or not 0 <= pos < n_pos:
            raise ValueError(
                f"edge {sender.node_id!r} -> {receiver.node_id!r}: a position-aware edge joins "
                f"two nodes at one position in 0..{n_pos - 1}"
            )
        col = _sender_column(space, sender)
        channel = method.rsplit(":", 1)[1] if ":" in method else None
        for row in _receiver_rows(space, receiver, channel):
            if not space.reads()[row, col]:
                raise ValueError(
                    f"edge {sender.node_id!r} -> {receiver.node_id!r} is not an edge of the model"
                )
            mask[row, col, pos] = True
    return mask


def _sender_column(space: EdgeSpace, node: Node) -> int:
    if node.kind == "token":
        return 0
    if node.kind == "head":
        return space.head_sender(node.layer, node.index)
    if node.kind == "mlp" and space.has_mlp:
        return space.mlp_sender(node.layer)
    raise ValueError(f"graph node {node.node_id!r} cannot send in this model's component graph")


def _receiver_rows(space: EdgeSpace, node: Node, channel: str | None) -> list[int]:
    if node.kind == "head":
        channels = CHANNELS if channel not in CHANNELS else (channel,)
        return [space.head_receiver(node.layer, node.index, c) for c in channels]
    if node.kind == "mlp" and space.has_mlp:
        return [space.mlp_receiver(node.layer)]
    if node.kind == "logit":
        return [space.logit_receiver]
    raise ValueError(f"graph node {node.node_id!r} cannot receive in this model's component graph")
