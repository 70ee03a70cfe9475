"""Faithfulness curves: how much of the behaviour the top-n edges of a ranking carry, for each n.

One circuit's faithfulness says little about a method: a ranking can look good at 40 edges and
useless at 20. The curve keeps the ``n`` best-ranked edges (``extract(top_n=n)``: those on a
path from the input to the logits), ablates every other edge and measures

    faithfulness(n) = (m(circuit) - m(corrupted)) / (m(clean) - m(corrupted))

exactly as ``faithfulness`` does, for a list of sizes and for each ablation: ``"resample"`` (the
counterfactual: each removed edge carries the paired corrupted prompt's value, so the empty
circuit is the corrupted run and scores 0) and ``"mean"`` (the mean over a reference
distribution; the empty circuit scores what the mean run recovers, rarely 0). Every size keeps
nothing or everything the same way, so the whole model scores 1 under every ablation.

Any ranking goes in: EAP or EAP-IG scores (by |score|), Edge Pruning's keep-probabilities, ACDC
weights. The curve also names the smallest size that reaches a stated ``target``, the circuit a
method would report at that faithfulness.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..artifacts import ArtifactError, read_json, write_json
from ..graph import CircuitGraph
from ..hooks import locked
from ..models import provenance
from ..result import Result
from ..tasks import Task, TaskBatch
from ._edge_mask import sender_reference
from ._edges import edge_space
from ._faithfulness import ablated_metric, check_ablations

FORMAT = "interp.FaithfulnessCurve/1"


@dataclass
class FaithfulnessCurve:
    """Faithfulness against circuit size for one ranking of edges, under one or more ablations.

    ``sizes`` are the requested ``top_n``; ``edges`` the ``[receiver, sender]`` edges each circuit
    really has (fewer where top-ranked edges lie on no input-to-logits path). ``values[ablation]``
    is the faithfulness at each size (clean 1, corrupted 0), ``metric[ablation]`` the raw metric;
    ``chosen[ablation]`` the smallest size whose faithfulness reaches ``target`` (None if none
    does).
    """

    method: str
    sizes: list[int]
    edges: list[int]
    values: dict[str, list[float]]
    metric: dict[str, list[float]]
    clean_metric: float
    corrupted_metric: float
    model_edges: int
    target: float | None = None
    chosen: dict[str, int | None] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ablations(self) -> list[str]:
        return list(self.values)

    def at(self, size: int, ablation: str = "resample") -> float:
        """The faithfulness of the circuit of ``size`` top-ranked edges."""
        if ablation not in self.values:
            raise ValueError(f"ablation={ablation!r} is not on this curve; it has {self.ablations}")
        if size not in self.sizes:
            raise ValueError(f"size={size} is not on this curve; its sizes are {self.sizes}")
        return self.values[ablation][self.sizes.index(size)]

    def circuit(self, graph: CircuitGraph | Result, ablation: str = "resample") -> CircuitGraph:
        """The circuit chosen at the target: ``extract(graph, top_n=chosen[ablation])``.

        ``graph`` must be the ranking the curve was measured on.
        """
        from ._graph import extract

        size = self.chosen.get(ablation)
        if size is None:
            raise ValueError(
                f"no size on this curve reaches faithfulness {self.target} under {ablation!r} "
                f"ablation (best {max(self.values[ablation]):.3g}); add larger sizes"
            )
        return extract(graph, top_n=size, absolute=self.provenance.get("absolute", True))

    # -- saving --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the curve as one JSON file, atomically."""
        return write_json(path, self.to_json(), indent=1, default=str)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FaithfulnessCurve:
        """Read a curve written by :meth:`save`; ``ArtifactError`` naming a damaged file."""
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(f"{path} is not a saved FaithfulnessCurve ({FORMAT})")
        data = {k: v for k, v in data.items() if k != "format"}
        try:
            return cls(**data)
        except TypeError as err:
            raise ArtifactError(f"{path} does not hold a FaithfulnessCurve: {err}") from err

    # -- plotting ------------------------------------------------------------------------------
    def plot(self, fig=None, title: str | None = None):
        """Faithfulness against edges, one line per ablation; pass ``fig`` to overlay methods."""
        import plotly.graph_objects as go

        if fig is None:
            fig = go.Figure()
            fig.update_layout(
                title=title or f"faithfulness against circuit size ({self.method})",
                xaxis_title="edges in the circuit",
                yaxis_title="faithfulness (corrupted 0, clean 1)",
            )
            if self.target is not None:
                fig.add_hline(y=self.target, line_dash="dot", annotation_text="target")
        for ablation, values in self.values.items():
            fig.add_trace(
                go.Scatter(
                    x=self.edges, y=values, mode="lines+markers", name=f"{self.method} {ablation}"
                )
            )
        return fig


def default_sizes(n_edges: int) -> list[int]:
    """0, then powers of two and their 1.5 multiples up to ``n_edges``, then ``n_edges``."""
    sizes, k = {0, n_edges}, 1
    while k < n_edges:
        sizes.update({k, min(n_edges, k * 3 // 2)})
        k *= 2
    return sorted(sizes)


@locked
def faithfulness_curve(
    model,
    task: Task | TaskBatch,
    scores: CircuitGraph | Result,
    sizes: list[int] | None = None,
    *,
    ablations: tuple[str, ...] | str = ("resample", "mean"),
    reference=None,
    target: float | None = 0.8,
    absolute: bool = True,
    progress: bool = False,
) -> FaithfulnessCurve:
    """Faithfulness of the top-n edges of ``scores`` for each ``n`` in ``sizes``.

    Arguments:
        model: the model the edges were scored in.
        task: clean/corrupted prompts and the metric.
        scores: every edge scored: the graph of ``eap``, ``edge_pruning_scores``'s Result (or
            ``edge_scores``'), or any CircuitGraph of component edges.
        sizes: the ``top_n`` values (``[receiver, sender]`` edges; default ``default_sizes``).
        ablations: any of ``"zero"``, ``"mean"``, ``"resample"``.
        reference: the distribution mean ablation averages over: a Task (its clean and
            corrupted prompts), a TaskBatch or token ids ``[n, pos]`` of the task's length;
            default the task's own clean and corrupted prompts, as ``faithfulness``.
        target: the faithfulness a chosen circuit must reach (None: choose none).
        absolute: rank by |score| (EAP's signed effects) or by signed score.
        progress: show a progress bar over sizes.

    Returns:
        A FaithfulnessCurve; ``curve.chosen`` names the smallest size reaching ``target`` under
        each ablation and ``curve.circuit(scores)`` extracts it.

    Example:
        >>> graph = eap(model, task, method="EAP-IG")
        >>> curve = faithfulness_curve(model, task, graph, [0, 10, 20, 40, 110])
        >>> curve.chosen["resample"], curve.plot()
    """
    from ._graph import extract, graph_edges_to_mask, to_graph

    ablations = check_ablations(ablations)
    if target is not None and (
        isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target)
    ):
        raise ValueError(f"target={target!r} must be a finite number or None")
    space = edge_space(model)
    valid = space.reads()
    n_edges = int(valid.sum())
    sizes = default_sizes(n_edges) if sizes is None else sizes
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in sizes):
        raise ValueError(f"sizes={sizes!r} must be a non-empty list of integers >= 0")
    sizes = sorted(set(sizes))
    graph = to_graph(scores) if isinstance(scores, Result) else scores
    if not isinstance(graph, CircuitGraph):
        raise ValueError(
            f"scores must be a CircuitGraph or the Result of edge_scores, got {type(scores)}"
        )
    batch = task.tokens(model) if isinstance(task, Task) else task
    clean_metric, corrupted_metric = batch.baseline(model)
    if clean_metric == corrupted_metric:
        raise ValueError("the task's clean and corrupted metrics are equal: nothing to recover")
    over = _reference_tokens(model, reference)
    refs = {how: sender_reference(model, space, batch, how, over=over) for how in ablations}
    edges, metric = [], {how: [] for how in ablations}
    for size in tqdm(sizes, disable=not progress, desc="faithfulness curve"):
        kept = graph_edges_to_mask(space, extract(graph, top_n=size, absolute=absolute))
        edges.append(int(kept.sum()))
        for how in ablations:
            metric[how].append(ablated_metric(model, space, batch, valid & ~kept, refs[how]))
    scale = clean_metric - corrupted_metric
    values = {how: [(m - corrupted_metric) / scale for m in ms] for how, ms in metric.items()}
    chosen = {
        how: next((s for s, v in zip(sizes, vs, strict=True) if v >= target), None)
        for how, vs in values.items()
        if target is not None
    }
    method = graph.provenance.get("method") or (graph.methods[0] if graph.methods else "circuit")
    return FaithfulnessCurve(
        method=str(method),
        sizes=sizes,
        edges=edges,
        values=values,
        metric=metric,
        clean_metric=clean_metric,
        corrupted_metric=corrupted_metric,
        model_edges=n_edges,
        target=target,
        chosen=chosen,
        provenance={
            "model": provenance(model),
            "task": batch.task.name,
            "metric": batch.metric,
            "absolute": absolute,
            "mean_over": "task prompts" if over is None else f"{len(over)} reference prompts",
            "normalisation": "corrupted 0, clean 1",
        },
    )


def _reference_tokens(model, reference):
    """Token ids ``[n, pos]`` of the mean-ablation reference distribution, or None."""
    if reference is None or isinstance(reference, torch.Tensor):
        return reference
    if isinstance(reference, Task):
        reference = reference.tokens(model)
    if isinstance(reference, TaskBatch):
        return torch.cat([reference.clean, reference.corrupted])
    raise ValueError(
        f"reference must be a Task, a TaskBatch or token ids [n, pos], got {type(reference)}"
    )
