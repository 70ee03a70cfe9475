"""CircuitGraph: building, sparse edges, influence and pruning, comparing, saving, viewer JSON."""

import json

import pytest
import torch

from interp.circuit_graph import CircuitGraph, Node


def chain_graph() -> CircuitGraph:
    """token -> f1 -> logit (strong), token -> f2 -> logit (weak), f3 dangling (no path out)."""
    g = CircuitGraph(metadata={"model": "toy", "n_layers": 2, "prompt": "a b"})
    tok = Node("token", pos=0, index=5, label="a")
    f1 = Node("feature", layer=0, pos=0, index=1, activation=2.0)
    f2 = Node("feature", layer=0, pos=0, index=2, activation=0.5)
    f3 = Node("feature", layer=1, pos=0, index=3)
    logit = Node("logit", layer=2, pos=1, index=7, label="' x'", activation=0.9)
    for s, t, w in [(tok, f1, 4.0), (tok, f2, 1.0), (f1, logit, 3.0), (f2, logit, -1.0)]:
        g.add_edge(s, t, w, "test")
    g.add_edge(tok, f3, 0.5, "test")
    return g


def test_nodes_are_typed_and_idempotent():
    g = CircuitGraph()
    a = g.add_node(Node("head", layer=1, index=0))
    assert g.add_node(Node("head", layer=1, index=0, label="other label")) == a
    assert g.nodes[a].node_id == "head.1.0" and g.nodes[a].name == "L1H0"
    assert Node("feature", 0, 4, 123).node_id == "feature.0.123@4"
    with pytest.raises(ValueError, match="node kind"):
        Node("attention")
    with pytest.raises(KeyError, match="no node"):
        g.add_edge("head.9.9", a, 1.0)
    with pytest.raises(IndexError):
        g.add_edges(torch.tensor([0]), torch.tensor([5]), torch.tensor([1.0]))


def test_influence_matches_dense_formula():
    g = chain_graph()
    n = len(g.nodes)
    a = torch.zeros(n, n)  # a[target, source], as circuit-tracer's adjacency matrix
    src, dst = g.edge_index
    a[dst, src] = g.edge_weight
    norm = a.abs() / a.abs().sum(1, keepdim=True).clamp_min(1e-10)
    w = g.logit_weights()
    dense = w @ torch.linalg.inv(torch.eye(n) - norm) - w
    torch.testing.assert_close(g.influence(), dense)


def test_prune_keeps_the_strong_path_and_drops_dangling_nodes():
    g = chain_graph()
    pruned = g.prune(node_threshold=0.7, edge_threshold=0.9)
    ids = {n.node_id for n in pruned.nodes}
    assert "feature.0.1@0" in ids and "feature.1.3@0" not in ids
    assert "token.5@0" in ids and "logit.2.7@1" in ids
    assert pruned.metadata["node_threshold"] == 0.7
    full = g.prune(1.0, 1.0)
    assert "feature.0.2@0" in {n.node_id for n in full.nodes}
    with pytest.raises(ValueError, match="node_threshold"):
        g.prune(node_threshold=1.5)


def test_top_edges_threshold_and_compare():
    g = chain_graph()
    top = g.top_edges(2)
    assert top.n_edges == 2 and {round(w) for *_, w, _ in top.edges()} == {4, 3}
    assert g.threshold(2.0).n_edges == 2
    cmp = g.compare(top)
    assert cmp["other_nodes_in_self"] == 1.0 and 0 < cmp["node_iou"] < 1
    assert cmp["shared_edges"] == 2 and "feature.0.2@0" in cmp["only_self"]


def test_save_and_load_roundtrip(tmp_path):
    g = chain_graph()
    g.save(tmp_path / "g")
    g.save(tmp_path / "g")  # overwriting leaves one complete folder
    back = CircuitGraph.load(tmp_path / "g")
    assert back.nodes == g.nodes and back.metadata == g.metadata
    torch.testing.assert_close(back.edge_weight, g.edge_weight)
    assert back.edge_method(0) == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]
    with pytest.raises(FileNotFoundError, match="graph.json"):
        CircuitGraph.load(tmp_path)


def test_viewer_json_roundtrip_and_schema(tmp_path):
    g = chain_graph()
    data = g.to_json()
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    node_keys = {"node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "clerp"}
    assert all(node_keys <= set(n) for n in data["nodes"])
    types = {n["feature_type"] for n in data["nodes"]}
    assert types == {"embedding", "cross layer transcoder", "logit"}
    logit = next(n for n in data["nodes"] if n["feature_type"] == "logit")
    assert logit["layer"] == "3" and logit["is_target_logit"] and logit["token_prob"] == 0.9
    assert {link["source"] for link in data["links"]} <= {n["node_id"] for n in data["nodes"]}
    path = g.save_json(tmp_path / "graph.json")
    back = CircuitGraph.from_json(path)
    assert back.nodes == g.nodes and back.edge_methods == ["test"] * g.n_edges
    assert back.edge_weights() == pytest.approx(g.edge_weights())
    # a viewer file without our extra fields still reads back with kinds, layers and positions
    for n in data["nodes"]:
        n.pop("interp_node")
    plain = CircuitGraph.from_json(json.loads(json.dumps(data)))
    assert [(n.kind, n.layer, n.pos, n.index) for n in plain.nodes] == [
        (n.kind, n.layer, n.pos, n.index) for n in g.nodes
    ]
    with pytest.raises(ValueError, match="links"):
        CircuitGraph.from_json({"metadata": {}, "nodes": []})


def test_plot_draws_every_node():
    fig = chain_graph().plot()
    nodes = fig.data[-1]
    assert len(nodes.x) == 5 and "feature.0.1@0" in list(nodes.customdata)


def test_sparse_graph_memory_is_linear_in_edges():
    g = CircuitGraph()
    n = 20_000
    g.add_nodes(Node("feature", 0, i, 0) for i in range(n - 1))
    g.add_node(Node("logit", 1, 0, 0))
    src = torch.arange(n - 1)
    g.add_edges(src, torch.full_like(src, n - 1), torch.ones(n - 1), "bulk")
    assert g.n_edges == n - 1
    infl = g.influence()
    assert infl.shape == (n,) and float(infl[:-1].sum()) == pytest.approx(1.0, rel=1e-4)
