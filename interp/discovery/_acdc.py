"""ACDC-style iterative pruning (Conmy et al., 2023): remove edges one at a time, measuring.

Start from the whole model. Visit the receivers from the logits backwards (the logits, then the
last layer's MLP, its heads' v, k and q inputs, then the layer before ...); at each receiver that
still reaches the logits, try removing each incoming edge (resample-ablating it, as
``faithfulness`` does) and keep it removed when the metric moves less than ``threshold`` further
from the clean run's, in units of the clean-vs-corrupted difference:

    |m(without e) - m(clean)| - |m(current) - m(clean)| < threshold * |m(clean) - m(corrupted)|

One forward pass per edge tried: exact, where EAP is a first-order estimate, and slow on large
models (tens of thousands of passes on GPT-2-small); use it on small models or to refine an EAP
circuit (``start=``).
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..hooks import locked, run_with_cache
from ..models import provenance
from ..result import Result
from ..tasks import Task
from ._edges import edge_space, sender_hooks, sender_outputs
from ._faithfulness import _kept_edges, ablated_metric


@locked
def acdc(model, task, threshold: float = 0.01, *, start=None, progress: bool = False):
    """A circuit found by ACDC-style pruning; edge weight = metric change its removal would cause.

    Arguments:
        model: a HookedTransformer (or TransformerBridge in compatibility mode).
        task: clean/corrupted prompts and the metric.
        threshold: the largest tolerated step away from the clean metric per removed edge, as a
            fraction of ``|m(clean) - m(corrupted)|``; ``>= 0``.
        start: a circuit to prune further (a CircuitGraph from ``eap``/``extract``); default the
            whole model.
        progress: show a progress bar over receivers.

    Returns:
        A CircuitGraph of the kept edges (methods ``"ACDC"``, ``"ACDC:q"`` ...) whose weight is
        ``m(without the edge) - m(current)`` at the time it was tried.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"threshold={threshold!r} must be a finite number >= 0")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold={threshold!r} must be a finite number >= 0")
    from ._graph import to_graph

    space = edge_space(model)
    valid = space.reads()
    kept = valid.clone() if start is None else _kept_edges(space, start)[0]
    batch = task.tokens(model) if isinstance(task, Task) else task
    clean_metric, corrupted_metric = batch.baseline(model)
    scale = abs(clean_metric - corrupted_metric)
    if scale == 0:
        raise ValueError("the task's clean and corrupted metrics are equal: nothing to recover")
    _, cache = run_with_cache(model, batch.corrupted, sender_hooks(model, space))
    reference = sender_outputs(model, space, cache)
    current = ablated_metric(model, space, batch, valid & ~kept, reference)
    weights = torch.full(valid.shape, math.nan)
    tried = 0
    order = list(range(space.n_receivers - 1, -1, -1))
    for r in tqdm(order, disable=not progress, desc="ACDC"):
        if not _reaches_logits(space, kept, r):
            kept[r] = False
            continue
        for s in reversed(kept[r].nonzero().flatten().tolist()):
            kept[r, s] = False
            trial = ablated_metric(model, space, batch, valid & ~kept, reference)
            tried += 1
            weights[r, s] = trial - current
            step = (abs(trial - clean_metric) - abs(current - clean_metric)) / scale
            if step < threshold:
                current = trial
            else:
                kept[r, s] = True
    scores = Result(
        weights.masked_fill(~kept, math.nan),
        ("receiver", "sender"),
        f"{batch.metric} change (ACDC)",
        {"receiver": space.receiver_labels(), "sender": space.sender_labels()},
        {
            "model": provenance(model),
            "task": batch.task.name,
            "method": "ACDC",
            "ig_steps": None,
            "metric": batch.metric,
            "edge_space": space.provenance(),
        },
    )
    graph = to_graph(scores).drop_isolated()
    graph.provenance.update(
        threshold=threshold,
        edges_tried=tried,
        clean_metric=clean_metric,
        corrupted_metric=corrupted_metric,
        circuit_metric=current,
    )
    return graph


def _reaches_logits(space, kept: torch.Tensor, receiver: int) -> bool:
    """Whether the node of ``receiver`` still sends along a kept edge (or is the logits)."""
    if receiver == space.logit_receiver:
        return True
    per_layer = space.receivers_per_layer
    layer, offset = divmod(receiver, per_layer)
    if space.has_mlp and offset == per_layer - 1:
        senders = [space.mlp_sender(layer)]
    elif offset < space.n_heads:  # a query
        senders = [space.head_sender(layer, offset)]
    else:  # a key or value: every query head of its group reads it
        group = (offset - space.n_heads) % space.kv_heads
        senders = [space.head_sender(layer, h) for h in space.heads_of(group)]
    return bool(kept[:, senders].any())
