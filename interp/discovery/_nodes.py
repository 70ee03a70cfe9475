"""Node-level circuits: which heads a task needs, every MLP kept, with all their edges.

Wang et al. (2022) describe IOI in GPT-2 small as a set of 26 heads (name movers, S-inhibition,
induction and duplicate-token heads) with every MLP kept, and check it by ablating every other
head. Edge-level circuits (``eap`` + ``extract``) on a 30-layer model need thousands of edges to
reach the same faithfulness, because one head's contribution is spread over the many layers
that read it; a node-level circuit states the same finding in the unit researchers reason in.

``head_circuit`` ranks heads by activation patching (each head's output from the corrupted run
patched into the clean run, one head at a time: the drop of the metric, with its sign), keeps
the ``top_n`` heads by magnitude and every MLP (or none), and returns the CircuitGraph of every
edge between kept components, each weighted by its EAP score so a viewer can filter by
influence. ``faithfulness`` then ablates everything else: a head outside the circuit is ablated
in every receiver that reads it, which is ablating the head.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..graph import CircuitGraph
from ..hooks import locked
from ..patching import patch_sweep
from ..result import Result
from ..tasks import Task, TaskBatch
from ._eap import edge_scores
from ._edges import CHANNELS, EdgeSpace, edge_space
from ._graph import to_graph


def node_mask(space: EdgeSpace, heads, *, mlps: bool = True) -> Tensor:
    """Boolean ``[receiver, sender]``: every edge between the input, ``heads`` (``(layer, head)``
    pairs), the MLPs (when ``mlps``) and the logits.

    Under grouped-query attention a key/value group is read when any of its query heads is kept.
    """
    keep_s = torch.zeros(space.n_senders, dtype=torch.bool)
    keep_r = torch.zeros(space.n_receivers, dtype=torch.bool)
    keep_s[0] = True
    keep_r[space.logit_receiver] = True
    if mlps and space.has_mlp:
        for layer in range(space.n_layers):
            keep_s[space.mlp_sender(layer)] = True
            keep_r[space.mlp_receiver(layer)] = True
    for layer, head in heads:
        if not (0 <= layer < space.n_layers and 0 <= head < space.n_heads):
            raise ValueError(
                f"head L{layer}H{head} is not in the model ({space.n_layers} layers of "
                f"{space.n_heads} heads)"
            )
        keep_s[space.head_sender(layer, head)] = True
        for channel in CHANNELS:
            keep_r[space.head_receiver(layer, head, channel)] = True
    return space.reads() & keep_r[:, None] & keep_s[None, :]


@locked
def head_effects(model, task: Task | TaskBatch, *, progress: bool = False) -> Result:
    """Each head's effect on the metric: the corrupted run's output of that one head patched into
    the clean run (all positions), minus the clean metric. ``[layer, head]``; negative: the head
    carries the behaviour, positive: it works against it (e.g. a negative name mover)."""
    batch = task.tokens(model) if isinstance(task, Task) else task
    swept = patch_sweep(model, batch, "z", ("layer", "head"), "noise", progress=progress)
    clean = float(swept.provenance["clean_metric"])
    return Result(
        swept.values - clean,
        swept.axes,
        f"{batch.metric} change with the head's output from the corrupted run",
        swept.labels,
        {**swept.provenance, "method": "head-patching", "reading": "noise minus clean"},
    )


@locked
def head_circuit(
    model,
    task: Task | TaskBatch,
    top_n: int = 30,
    *,
    mlps: bool = True,
    effects: Result | None = None,
    progress: bool = False,
) -> CircuitGraph:
    """The ``top_n`` heads with the largest ``head_effects`` (by magnitude), every MLP when
    ``mlps``, and every edge between them, weighted by EAP.

    Arguments:
        model, task: as for ``eap``.
        top_n: heads kept (at most the model's heads).
        mlps: keep every MLP (Wang et al.'s convention) or none.
        effects: a ``head_effects`` Result already computed (it is the costly part: one patch
            per head).
        progress: progress bars over the patches and the gradient pass.

    Returns:
        A CircuitGraph; ``provenance["heads"]`` lists the kept heads by importance with their
        effects, ``provenance["level"]`` is ``"nodes"``.
    """
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n={top_n!r} must be a positive integer (heads kept)")
    space = edge_space(model)
    if top_n > space.n_layers * space.n_heads:
        raise ValueError(
            f"top_n={top_n} is more than the model's {space.n_layers * space.n_heads} heads"
        )
    batch = task.tokens(model) if isinstance(task, Task) else task
    if effects is None:
        effects = head_effects(model, batch, progress=progress)
    if effects.axes != ("layer", "head") or tuple(effects.values.shape) != (
        space.n_layers,
        space.n_heads,
    ):
        raise ValueError(
            f"effects must be head_effects' [layer, head] Result of this model, got axes "
            f"{effects.axes} {tuple(effects.values.shape)}"
        )
    flat = effects.values.flatten().abs().nan_to_num(-1.0)
    chosen = flat.topk(top_n).indices.tolist()
    heads = [divmod(i, space.n_heads) for i in chosen]
    scores = edge_scores(model, batch, method="EAP", progress=progress)
    kept = node_mask(space, heads, mlps=mlps)
    masked = Result(
        scores.values.masked_fill(~kept, float("nan")),
        scores.axes,
        scores.metric,
        scores.labels,
        scores.provenance,
    )
    graph = to_graph(masked)
    # under grouped-query attention to_graph draws a key/value edge to every query head of the
    # group; only the copies into kept heads stay (one always does: the group is read because
    # a kept head reads it), so the graph shows exactly the kept heads
    chosen_heads = set(heads)
    src, dst = graph.edge_index
    into_kept = torch.tensor(
        [
            n.kind != "head" or (n.layer, n.index) in chosen_heads
            for n in (graph.nodes[i] for i in dst.tolist())
        ],
        dtype=torch.bool,
    )
    used = torch.zeros(len(graph.nodes), dtype=torch.bool)
    used[src[into_kept]], used[dst[into_kept]] = True, True  # heads left out go with their edges
    graph = graph.subgraph(used, into_kept)
    graph.provenance.update(
        method="head-patching",
        level="nodes",
        top_n=top_n,
        mlps=mlps,
        heads=[{"head": f"L{la}H{h}", "effect": float(effects.values[la, h])} for la, h in heads],
        edge_weights="EAP",
    )
    return graph
