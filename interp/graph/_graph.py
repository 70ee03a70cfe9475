"""CircuitGraph: the typed, weighted graph every circuit-finding method returns, as plain data.

Nodes are typed (``token``, ``head``, ``mlp``, ``neuron``, ``feature``, ``error``, ``logit``) and
carry a layer and a position (``None`` for a node that stands for every position, as in
component-level circuits). Edges point from an upstream node to a downstream one and carry a
weight and the method that scored them. Edges are kept as three flat tensors (source index,
target index, weight), so a graph costs memory in its number of edges, never in the square of its
number of nodes.

A graph prunes itself by influence on the logits (as circuit-tracer does: each node's share of
its targets' incoming absolute weight, propagated back from the logit nodes), compares itself
with another graph, and saves and loads itself (a folder of ``circuit.json`` +
``edges.safetensors``, replaced atomically by :mod:`interp.artifacts`). It knows no model: how
faithful a graph is to a model is :func:`interp.discovery.faithfulness`'s question. The viewer
JSON lives in :mod:`interp.graph._viewer` and the drawing in :mod:`interp.graph._plot`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..artifacts import ArtifactError, atomic_dir, read_json, recover, write_json
from . import _plot
from ._node import Node
from ._viewer import ViewerGraph, from_viewer, to_viewer

FORMAT = "interp.CircuitGraph/1"
GRAPH_FILE = "circuit.json"  # nodes and provenance; edges in edges.safetensors
_OLD_GRAPH_FILE = "graph.json"  # the same format, under the name folders saved before had
PROVENANCE_KEY = "provenance"  # where circuit.json keeps how the graph was made
_OLD_PROVENANCE_KEY = "metadata"  # the same, in files saved before the rename


def graph_file(folder: str | os.PathLike) -> Path | None:
    """The nodes-and-provenance file of a saved graph folder (``circuit.json``, or ``graph.json`` in
    folders saved before the rename), or ``None`` when ``folder`` holds no saved graph."""
    folder = Path(folder)
    for name in (GRAPH_FILE, _OLD_GRAPH_FILE):
        if (folder / name).is_file():
            return folder / name
    return None


def saved_provenance(saved: dict[str, Any]) -> dict[str, Any] | None:
    """The provenance in a saved ``circuit.json``'s contents: under ``"provenance"``, or under
    ``"metadata"`` in files saved before the rename; ``None`` when neither is there."""
    for key in (PROVENANCE_KEY, _OLD_PROVENANCE_KEY):
        if key in saved:
            return saved[key]
    return None


@dataclass
class CircuitGraph:
    """Nodes, weighted edges (sparse), and provenance: how the graph was made (model, prompt,
    method, settings, thresholds), as ``Result.provenance`` records it for a result."""

    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes: list[Node] = []
        self._index: dict[str, int] = {}
        self._src: list[torch.Tensor] = []
        self._dst: list[torch.Tensor] = []
        self._weight: list[torch.Tensor] = []
        self._method_id: list[torch.Tensor] = []
        self.methods: list[str] = []

    # -- building ------------------------------------------------------------------------------
    def add_node(self, node: Node) -> int:
        """Add ``node`` (idempotent by ``node_id``); returns its index."""
        key = node.node_id
        i = self._index.get(key)
        if i is None:
            i = len(self.nodes)
            self.nodes.append(node)
            self._index[key] = i
        return i

    def add_nodes(self, nodes: Iterable[Node]) -> list[int]:
        return [self.add_node(n) for n in nodes]

    def _resolve(self, node: Node | str | int) -> int:
        if isinstance(node, Node):
            return self.add_node(node)
        if isinstance(node, int):
            if not 0 <= node < len(self.nodes):
                raise IndexError(f"node index {node} out of range (0..{len(self.nodes) - 1})")
            return node
        if node not in self._index:
            raise KeyError(f"no node {node!r} in this graph ({len(self.nodes)} nodes)")
        return self._index[node]

    def _method(self, method: str) -> int:
        if method not in self.methods:
            self.methods.append(method)
        return self.methods.index(method)

    def add_edge(
        self, source: Node | str | int, target: Node | str | int, weight: float, method: str = ""
    ) -> None:
        """Add one edge ``source -> target`` (nodes given as Node, node_id or index)."""
        s, t = self._resolve(source), self._resolve(target)
        self.add_edges(torch.tensor([s]), torch.tensor([t]), torch.tensor([float(weight)]), method)

    def add_edges(
        self, source: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, method: str = ""
    ) -> None:
        """Add many edges at once from flat tensors of node indices and weights."""
        source = torch.as_tensor(source, dtype=torch.long).flatten().cpu()
        target = torch.as_tensor(target, dtype=torch.long).flatten().cpu()
        weight = torch.as_tensor(weight).detach().flatten().float().cpu()
        if not (source.numel() == target.numel() == weight.numel()):
            raise ValueError(
                f"source, target and weight must have one entry per edge; got "
                f"{source.numel()}, {target.numel()}, {weight.numel()}"
            )
        n = len(self.nodes)
        if source.numel() and (
            min(source.min(), target.min()) < 0 or max(source.max(), target.max()) >= n
        ):
            raise IndexError(f"edge endpoints must be node indices in 0..{n - 1}")
        self._src.append(source)
        self._dst.append(target)
        self._weight.append(weight)
        self._method_id.append(torch.full_like(source, self._method(method), dtype=torch.int32))

    def _compact(self) -> None:
        if len(self._src) > 1:
            self._src = [torch.cat(self._src)]
            self._dst = [torch.cat(self._dst)]
            self._weight = [torch.cat(self._weight)]
            self._method_id = [torch.cat(self._method_id)]

    # -- reading -------------------------------------------------------------------------------
    @property
    def edge_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._compact()
        if not self._src:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty.clone()
        return self._src[0], self._dst[0]

    @property
    def edge_weight(self) -> torch.Tensor:
        self._compact()
        return self._weight[0] if self._weight else torch.zeros(0)

    @property
    def edge_method_ids(self) -> torch.Tensor:
        """Each edge's method as an index into ``methods`` (int32, in edge order)."""
        self._compact()
        return self._method_id[0] if self._method_id else torch.zeros(0, dtype=torch.int32)

    @property
    def edge_methods(self) -> list[str]:
        """The method of every edge, in edge order."""
        return [self.methods[m] for m in self.edge_method_ids.tolist()]

    @property
    def n_edges(self) -> int:
        return int(sum(t.numel() for t in self._src))

    def edge_method(self, i: int) -> str:
        return self.methods[int(self.edge_method_ids[i])]

    def node(self, node_id: str) -> Node:
        return self.nodes[self._resolve(node_id)]

    def __contains__(self, node: Node | str) -> bool:
        key = node.node_id if isinstance(node, Node) else node
        return key in self._index

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for n in self.nodes:
            kinds[n.kind] = kinds.get(n.kind, 0) + 1
        what = ", ".join(f"{k}={v}" for k, v in kinds.items())
        return f"CircuitGraph({len(self.nodes)} nodes [{what}], {self.n_edges} edges)"

    def edges(self) -> Iterator[tuple[Node, Node, float, str]]:
        """Every edge as ``(source Node, target Node, weight, method)``."""
        for s, t, w, m in self._edge_rows():
            yield self.nodes[s], self.nodes[t], w, m

    def edge_weights(self) -> dict[tuple[str, str], float]:
        """``{(source id, target id): weight}``; parallel edges (e.g. per q/k/v) are summed."""
        out: dict[tuple[str, str], float] = {}
        for s, t, w, _ in self.edges():
            key = (s.node_id, t.node_id)
            out[key] = out.get(key, 0.0) + w
        return out

    # -- influence and pruning -----------------------------------------------------------------
    def logit_weights(self) -> torch.Tensor:
        """Each logit node's weight in the influence: its probability, else an equal share."""
        w = torch.zeros(len(self.nodes))
        logits = [i for i, n in enumerate(self.nodes) if n.kind == "logit"]
        if not logits:
            raise ValueError(
                "this graph has no logit node, so influence on the logits is undefined"
            )
        probs = [self.nodes[i].activation for i in logits]
        if all(p is not None and p > 0 for p in probs):
            w[logits] = torch.tensor(probs, dtype=torch.float32)
        else:
            w[logits] = 1.0 / len(logits)
        return w

    def _normalised(self) -> torch.Tensor:
        """|w| divided by the total |w| entering its target: each edge's share of its target."""
        src, dst = self.edge_index
        a = self.edge_weight.abs()
        total = torch.zeros(len(self.nodes)).index_add_(0, dst, a)
        return a / total[dst].clamp_min(1e-10)

    def influence(self) -> torch.Tensor:
        """Each node's indirect influence on the logits, summed over every path to them.

        The sum over paths of the products of normalised edge shares, weighted by the logit
        weights (circuit-tracer's ``compute_node_influence``), computed on the sparse edges.
        """
        return self._propagate(self._normalised(), self.logit_weights())

    def _propagate(self, share: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
        src, dst = self.edge_index
        current, total = seed.clone(), torch.zeros_like(seed)
        for _ in range(len(self.nodes) + 1):
            current = torch.zeros_like(seed).index_add_(0, src, share * current[dst])
            if not current.any():
                return total
            total += current
        raise ValueError("the graph has a cycle; circuit graphs must be acyclic")

    def edge_influence(self) -> torch.Tensor:
        """Each edge's share of the influence flowing through it to the logits."""
        w = self.logit_weights()
        node = self._propagate(self._normalised(), w) + w
        return self._normalised() * node[self.edge_index[1]]

    def prune(self, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> CircuitGraph:
        """Keep the nodes holding ``node_threshold`` of the total influence, then the edges
        holding ``edge_threshold`` of the edge influence; token and logit nodes always stay.

        The same two-step rule as circuit-tracer's ``prune_graph``; nodes left with no edge on
        a path to a logit are dropped.
        """
        for name, t in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
            if not (isinstance(t, int | float) and 0.0 <= t <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {t!r}")
        keep_node = _cumulative_mask(self.influence(), node_threshold)
        for i, n in enumerate(self.nodes):
            if n.kind in ("token", "logit"):
                keep_node[i] = True
        src, dst = self.edge_index
        sub = self.subgraph(keep_node, keep_node[src] & keep_node[dst])
        keep_edge = _cumulative_mask(sub.edge_influence(), edge_threshold)
        sub = sub.subgraph(torch.ones(len(sub.nodes), dtype=torch.bool), keep_edge)
        out = sub._connected()
        out.provenance.update(node_threshold=node_threshold, edge_threshold=edge_threshold)
        return out

    def top_edges(self, n: int) -> CircuitGraph:
        """Keep the ``n`` edges of largest |weight| (and the nodes they connect)."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        w = self.edge_weight.abs()
        keep = torch.zeros_like(w, dtype=torch.bool)
        keep[w.topk(min(n, w.numel())).indices] = True
        return self.subgraph(torch.ones(len(self.nodes), dtype=torch.bool), keep).drop_isolated()

    def threshold(self, min_abs_weight: float) -> CircuitGraph:
        """Keep the edges with |weight| >= ``min_abs_weight`` (and the nodes they connect)."""
        if not (isinstance(min_abs_weight, int | float) and math.isfinite(min_abs_weight)):
            raise ValueError(f"min_abs_weight must be a finite number, got {min_abs_weight!r}")
        keep = self.edge_weight.abs() >= min_abs_weight
        return self.subgraph(torch.ones(len(self.nodes), dtype=torch.bool), keep).drop_isolated()

    def subgraph(self, keep_node: torch.Tensor, keep_edge: torch.Tensor) -> CircuitGraph:
        """The nodes and edges flagged in the boolean masks (an edge also needs both ends)."""
        src, dst = self.edge_index
        keep_edge = keep_edge & keep_node[src] & keep_node[dst]
        new_index = torch.full((len(self.nodes),), -1, dtype=torch.long)
        kept = keep_node.nonzero().flatten()
        new_index[kept] = torch.arange(kept.numel())
        out = CircuitGraph(provenance=dict(self.provenance))
        out.add_nodes(self.nodes[i] for i in kept.tolist())
        out.methods = list(self.methods)
        if keep_edge.any():
            out._src = [new_index[src[keep_edge]]]
            out._dst = [new_index[dst[keep_edge]]]
            out._weight = [self.edge_weight[keep_edge]]
            out._method_id = [self.edge_method_ids[keep_edge]]
        return out

    def drop_isolated(self) -> CircuitGraph:
        """The same graph without nodes that touch no edge."""
        src, dst = self.edge_index
        used = torch.zeros(len(self.nodes), dtype=torch.bool)
        used[src] = True
        used[dst] = True
        return self.subgraph(used, torch.ones_like(src, dtype=torch.bool))

    def _connected(self) -> CircuitGraph:
        """Drop nodes (other than tokens and logits) with no path to a logit node."""
        src, dst = self.edge_index
        reach = torch.tensor([n.kind == "logit" for n in self.nodes], dtype=torch.bool)
        for _ in range(len(self.nodes) + 1):
            new = reach.clone()
            new[src[reach[dst]]] = True
            if torch.equal(new, reach):
                break
            reach = new
        keep = reach | torch.tensor([n.kind == "token" for n in self.nodes], dtype=torch.bool)
        return self.subgraph(keep, torch.ones_like(src, dtype=torch.bool))

    # -- comparing -----------------------------------------------------------------------------
    def compare(self, other: CircuitGraph) -> dict[str, Any]:
        """Node and edge overlap with ``other`` (by node id), as in circuit-reuse studies.

        Returns intersection-over-union and the share of each graph found in the other, and the
        node ids they share or hold alone.
        """
        a, b = set(self._index), set(other._index)
        ea, eb = set(self.edge_weights()), set(other.edge_weights())
        shared = a & b
        return {
            "node_iou": len(shared) / max(len(a | b), 1),
            "edge_iou": len(ea & eb) / max(len(ea | eb), 1),
            "nodes_in_other": len(shared) / max(len(a), 1),
            "other_nodes_in_self": len(shared) / max(len(b), 1),
            "shared_edges": len(ea & eb),
            "shared_nodes": sorted(shared),
            "only_self": sorted(a - b),
            "only_other": sorted(b - a),
        }

    # -- saving --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder ``path`` (``circuit.json`` + ``edges.safetensors``) atomically.

        The folder is built beside ``path`` and swapped in by :func:`interp.artifacts.atomic_dir`,
        so a crash leaves the whole old graph or the whole new one."""
        target = Path(path)
        with atomic_dir(target) as tmp:
            src, dst = self.edge_index
            save_file(
                {
                    "source": src.contiguous(),
                    "target": dst.contiguous(),
                    "weight": self.edge_weight.contiguous(),
                    "method": self.edge_method_ids.contiguous(),
                },
                tmp / "edges.safetensors",
            )
            meta = {
                "format": FORMAT,
                PROVENANCE_KEY: self.provenance,
                "methods": self.methods,
                "nodes": [asdict(n) for n in self.nodes],
            }
            (tmp / GRAPH_FILE).write_text(json.dumps(meta, indent=1, default=str))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> CircuitGraph:
        """Read a folder written by :meth:`save` (folders saved before the rename keep the
        provenance under ``"metadata"``: read too); ``ArtifactError`` naming a damaged file."""
        folder = Path(path)
        recover(folder)
        file = graph_file(folder)
        if file is None:
            raise FileNotFoundError(f"{folder} is not a saved CircuitGraph (no {GRAPH_FILE} in it)")
        meta = read_json(file)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ArtifactError(f"{file} is not in the {FORMAT} format")
        try:
            provenance = saved_provenance(meta)
            if not isinstance(provenance, dict):
                raise KeyError(PROVENANCE_KEY)
            g = cls(provenance=provenance)
            g.add_nodes(Node(**n) for n in meta["nodes"])
            g.methods = list(meta["methods"])
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{file} is damaged: {err!r}") from err
        try:
            edges = load_file(folder / "edges.safetensors")
        except FileNotFoundError:
            raise
        except Exception as err:
            raise ArtifactError(f"{folder}/edges.safetensors is not readable ({err})") from err
        if edges["source"].numel():
            g._src, g._dst = [edges["source"]], [edges["target"]]
            g._weight, g._method_id = [edges["weight"]], [edges["method"]]
        return g

    # -- attribution-graph JSON (Neuronpedia / circuit-tracer viewer) --------------------------
    def to_json(self) -> ViewerGraph:
        """The graph in the JSON that Neuronpedia's and circuit-tracer's viewers read
        (:class:`interp.graph.ViewerGraph`)."""
        influence = self.influence().tolist() if self._has_logit() else None
        return to_viewer(self.nodes, list(self._edge_rows()), self.provenance, influence)

    def save_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        return write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: dict | str | os.PathLike) -> CircuitGraph:
        """Read an attribution-graph JSON (ours, circuit-tracer's or Neuronpedia's)."""
        if not isinstance(data, dict):
            data = read_json(data)
        provenance, nodes, edges = from_viewer(data)
        g = cls(provenance=provenance)
        index = g.add_nodes(nodes)
        by_method: dict[str, list[list]] = {}
        for s, t, w, method in edges:
            rows = by_method.setdefault(method, [[], [], []])
            rows[0].append(index[s])
            rows[1].append(index[t])
            rows[2].append(w)
        for method, (src, dst, w) in by_method.items():
            g.add_edges(torch.tensor(src), torch.tensor(dst), torch.tensor(w), method)
        return g

    def _edge_rows(self) -> Iterator[tuple[int, int, float, str]]:
        src, dst = self.edge_index
        methods = self.edge_method_ids.tolist()
        for s, t, w, m in zip(src.tolist(), dst.tolist(), self.edge_weight.tolist(), methods):
            yield s, t, w, self.methods[m]

    def _has_logit(self) -> bool:
        return any(n.kind == "logit" for n in self.nodes)

    # -- drawing -------------------------------------------------------------------------------
    def positions(self) -> list[int]:
        """The prompt positions that hold nodes, in order: the columns of :meth:`layout`."""
        return _plot.positions(self.nodes)

    def layout(self) -> _plot.Layout:
        """Where each node is drawn (``.xy[i]``) and the figure's size; see
        :func:`interp.graph.layout`."""
        return _plot.layout(self.nodes)

    def plot(self, title: str | None = None, max_edges: int = 2000):
        """A plotly figure: nodes by layer (y) and position (x); edges coloured by sign."""
        influence = self.influence() if self._has_logit() and self.n_edges else None
        return _plot.figure(
            self.nodes,
            self.edge_index,
            self.edge_weight,
            influence,
            self.provenance,
            title,
            max_edges,
            self.edge_methods,
        )


def _cumulative_mask(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """The smallest set of entries, largest first, whose sum reaches ``threshold`` of the total."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    if scores.numel() == 0:
        return keep
    total = scores.sum()
    if total <= 0:
        return keep
    values, order = scores.sort(descending=True)
    cum = values.cumsum(0) / total
    n = int((cum < threshold).sum()) + 1
    keep[order[: min(n, scores.numel())]] = True
    keep &= scores > 0
    return keep
