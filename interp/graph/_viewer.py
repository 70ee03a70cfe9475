"""The attribution-graph JSON that Neuronpedia's and circuit-tracer's viewers read, as types.

One schema, written down once: :class:`ViewerGraph` (``metadata``, ``qParams``, ``nodes``,
``links``) with :class:`ViewerNode` and :class:`ViewerLink`. Our own node fields ride along in
``interp_node`` (and the graph's provenance in ``metadata.info.interp``), so a graph we write
reads back exactly; graphs written by circuit-tracer read back from their own fields. The
top-level ``metadata`` key is the viewers' name, kept as they read it.

This module converts between that JSON and plain lists of :class:`Node` and edges; it knows no
model and no :class:`CircuitGraph` (which calls it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, TypedDict

from ._node import Node

SCHEMA_VERSION = 1

# circuit-tracer's viewer names for node kinds, and back
FEATURE_TYPE: dict[str, str] = {
    "token": "embedding",
    "feature": "cross layer transcoder",
    "error": "mlp reconstruction error",
    "logit": "logit",
    "head": "attention head",
    "mlp": "mlp",
    "neuron": "mlp neuron",
}
_KIND_OF_TYPE = {v: k for k, v in FEATURE_TYPE.items()}
_KIND_OF_TYPE["transcoder"] = "feature"
_KIND_OF_TYPE["sae"] = "feature"


class ViewerNode(TypedDict, total=False):
    node_id: str
    feature: int
    layer: str
    ctx_idx: int
    feature_type: str
    jsNodeId: str
    clerp: str
    influence: float | None
    activation: float | None
    token_prob: float
    is_target_logit: bool
    run_idx: int
    reverse_ctx_idx: int
    interp_node: dict[str, Any]


class ViewerLink(TypedDict, total=False):
    source: str
    target: str
    weight: float
    method: str


class ViewerMetadata(TypedDict, total=False):
    slug: str
    scan: str
    transcoder_list: list[str]
    prompt_tokens: list[str]
    prompt: str
    node_threshold: float | None
    schema_version: int
    info: dict[str, Any]


class ViewerParams(TypedDict):
    pinnedIds: list[str]
    supernodes: list[list[str]]
    linkType: str
    clickedId: str
    sg_pos: str


class ViewerGraph(TypedDict):
    metadata: ViewerMetadata
    qParams: ViewerParams
    nodes: list[ViewerNode]
    links: list[ViewerLink]


Edge = tuple[int, int, float, str]  # source index, target index, weight, method


def viewer_node(node: Node, n_layers: int | None, influence: float | None) -> ViewerNode:
    """One node in circuit-tracer's viewer schema (node_id, feature, layer, ctx_idx, ...)."""
    pos = node.pos if node.pos is not None else 0
    layer = node.layer if node.layer is not None else 0
    index = node.index if node.index is not None else 0
    base: ViewerNode = {
        "ctx_idx": pos,
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "clerp": node.label,
        "influence": influence,
        "activation": node.activation,
        "feature_type": FEATURE_TYPE[node.kind],
        "interp_node": dict(asdict(node)),
    }
    if node.kind == "token":
        base.update(node_id=f"E_{index}_{pos}", feature=pos, layer="E", jsNodeId=f"E_{index}-{pos}")
    elif node.kind == "logit":
        top = str((n_layers if n_layers is not None else layer) + 1)
        prob = node.activation or 0.0
        base.update(
            node_id=f"{top}_{index}_{pos}",
            feature=index,
            layer=top,
            jsNodeId=f"L_{index}-{pos}",
            token_prob=prob,
            is_target_logit=True,
            activation=None,
            clerp=f"Output {node.label} (p={prob:.3f})",
        )
    elif node.kind == "error":
        base.update(
            node_id=f"{layer}_-1_{pos}", feature=-1, layer=str(layer), jsNodeId=f"{layer}_-1-{pos}"
        )
    else:
        # features use circuit-tracer's cantor pairing of (layer, index) for their global id;
        # heads, MLPs and neurons are told apart by feature_type and a kind-prefixed node id
        feature = (layer + index) * (layer + index + 1) // 2 + index
        prefix = "" if node.kind == "feature" else f"{node.kind[0]}"
        base.update(
            node_id=f"{prefix}{layer}_{index}_{pos}",
            feature=feature,
            layer=str(layer),
            jsNodeId=f"{prefix}{layer}_{index}-0",
        )
    return base


def node_from_viewer(raw: ViewerNode) -> Node:
    """The :class:`Node` a viewer node stands for (ours exactly; circuit-tracer's by its fields)."""
    ours = raw.get("interp_node")
    if isinstance(ours, dict):
        return Node(**ours)
    kind = _KIND_OF_TYPE.get(raw.get("feature_type", ""), "feature")
    pos = raw.get("ctx_idx")
    layer_s = str(raw.get("layer", "0"))
    if kind == "token":
        index = int(raw["node_id"].split("_")[1])
        return Node("token", None, pos, index, raw.get("clerp", ""))
    if kind == "logit":
        index = int(raw.get("feature", 0))
        return Node(
            "logit", int(layer_s) - 1, pos, index, raw.get("clerp", ""), raw.get("token_prob")
        )
    if kind == "error":
        return Node("error", int(layer_s), pos, None, raw.get("clerp", ""))
    index = int(raw["node_id"].lstrip("hmn").split("_")[1])
    return Node(kind, int(layer_s), pos, index, raw.get("clerp", ""), raw.get("activation"))


def to_viewer(
    nodes: list[Node],
    edges: list[Edge],
    provenance: dict[str, Any],
    influence: list[float] | None,
) -> ViewerGraph:
    """The viewer JSON of a graph given as nodes, edges (by node index) and provenance."""
    n_layers = provenance.get("n_layers")
    infl = influence if influence is not None else [None] * len(nodes)
    vnodes = [viewer_node(n, n_layers, i) for n, i in zip(nodes, infl)]
    ids = [n["node_id"] for n in vnodes]
    links: list[ViewerLink] = [
        {"source": ids[s], "target": ids[t], "weight": w, "method": m} for s, t, w, m in edges
    ]
    pinned = [n["node_id"] for n in vnodes if n["feature_type"] == "logit"]
    md = provenance
    return {
        "metadata": {
            "slug": md.get("slug", md.get("name", "interp-graph")),
            "scan": md.get("scan", md.get("model", "")),
            "transcoder_list": md.get("transcoder_list", []),
            "prompt_tokens": md.get("prompt_tokens", []),
            "prompt": md.get("prompt", ""),
            "node_threshold": md.get("node_threshold"),
            "schema_version": SCHEMA_VERSION,
            "info": {"generator": "interp", "interp": {k: _plain(v) for k, v in md.items()}},
        },
        "qParams": {
            "pinnedIds": md.get("pinned_ids", pinned),
            "supernodes": md.get("supernodes", []),
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": vnodes,
        "links": links,
    }


def from_viewer(data: dict[str, Any]) -> tuple[dict[str, Any], list[Node], list[Edge]]:
    """Provenance, nodes and edges (by node index) of a viewer JSON (ours or circuit-tracer's):
    ours from ``metadata.info.interp``, circuit-tracer's its whole ``metadata``.

    Raises ``ValueError`` naming what is missing or which link points at an unknown node."""
    if not isinstance(data, dict):
        raise ValueError(f"an attribution-graph JSON is an object, not {type(data).__name__}")
    for key in ("metadata", "nodes", "links"):
        if key not in data:
            raise ValueError(f"not an attribution-graph JSON: no {key!r} field")
    md = dict(data["metadata"])
    ours = md.get("info", {}).get("interp") if isinstance(md.get("info"), dict) else None
    provenance = dict(ours) if ours else md
    params = data.get("qParams") or {}
    if params.get("supernodes"):
        provenance["supernodes"] = params["supernodes"]
    nodes, index = [], {}
    for raw in data["nodes"]:
        node = node_from_viewer(raw)
        index[raw["node_id"]] = len(nodes)
        nodes.append(node)
    edges: list[Edge] = []
    for link in data["links"]:
        for end in ("source", "target"):
            if link.get(end) not in index:
                raise ValueError(f"link {link!r} names {end} {link.get(end)!r}, which is no node")
        method = link.get("method", md.get("method", ""))
        edges.append((index[link["source"]], index[link["target"]], float(link["weight"]), method))
    return provenance, nodes, edges


def _plain(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)
