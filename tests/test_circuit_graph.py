"""CircuitGraph: building, sparse edges, influence and pruning, comparing, saving, viewer JSON."""

import json

import pytest
import torch

from interp.artifacts import ArtifactError
from interp.graph import NODE_KINDS, CircuitGraph, Node


def chain_graph() -> CircuitGraph:
    """token -> f1 -> logit (strong), token -> f2 -> logit (weak), f3 dangling (no path out)."""
    g = CircuitGraph(provenance={"model": "toy", "n_layers": 2, "prompt": "a b"})
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
    assert pruned.provenance["node_threshold"] == 0.7
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
    assert back.nodes == g.nodes and back.provenance == g.provenance
    torch.testing.assert_close(back.edge_weight, g.edge_weight)
    assert back.edge_method(0) == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "circuit.json",
        "edges.safetensors",
    ]
    with pytest.raises(FileNotFoundError, match="circuit.json"):
        CircuitGraph.load(tmp_path)
    # folders saved before the rename (the same format as graph.json) still load
    (tmp_path / "g" / "circuit.json").rename(tmp_path / "g" / "graph.json")
    old = CircuitGraph.load(tmp_path / "g")
    assert old.nodes == g.nodes and old.edge_weights() == pytest.approx(g.edge_weights())
    # a viewer JSON is not a saved graph, whatever its name
    g.save_json(tmp_path / "v" / "graph.json")
    with pytest.raises(ArtifactError, match="interp.CircuitGraph/1"):
        CircuitGraph.load(tmp_path / "v")


def test_graphs_saved_with_the_old_metadata_key_still_load(tmp_path):
    from interp.store import list_runs

    g = chain_graph()
    g.provenance["method"] = "hand"
    g.save(tmp_path / "run" / "graph")
    file = tmp_path / "run" / "graph" / "circuit.json"
    saved = json.loads(file.read_text())
    assert saved["provenance"] == g.provenance and "metadata" not in saved
    # files written before the rename keep the provenance under "metadata"
    saved["metadata"] = saved.pop("provenance")
    file.write_text(json.dumps(saved))
    old = CircuitGraph.load(tmp_path / "run" / "graph")
    assert old.provenance == g.provenance and old.nodes == g.nodes
    assert list_runs(tmp_path)[0]["method"] == "hand"
    # with neither key the file is damaged, and says so
    del saved["metadata"]
    file.write_text(json.dumps(saved))
    with pytest.raises(ArtifactError, match="provenance"):
        CircuitGraph.load(tmp_path / "run" / "graph")


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
    with pytest.raises(ValueError, match="which is no node"):
        CircuitGraph.from_json(
            {**data, "links": [{"source": "nowhere", "target": "x", "weight": 1}]}
        )


def test_viewer_json_keeps_supernodes_and_merges_duplicate_nodes():
    g = chain_graph()
    g.provenance["supernodes"] = [["two features", "feature.0.1@0", "feature.0.2@0"]]
    data = g.to_json()
    assert data["qParams"]["supernodes"] == g.provenance["supernodes"]
    back = CircuitGraph.from_json(json.loads(json.dumps(data)))
    assert back.provenance["supernodes"] == g.provenance["supernodes"]
    # two viewer nodes that stand for the same node become one, and their edges follow it
    twice = json.loads(json.dumps(data))
    copy = dict(twice["nodes"][1], node_id="copy-of-1")
    twice["nodes"].append(copy)
    twice["links"].append(
        {"source": "copy-of-1", "target": twice["links"][0]["target"], "weight": 2.0}
    )
    merged = CircuitGraph.from_json(twice)
    assert len(merged.nodes) == len(g.nodes) and merged.n_edges == g.n_edges + 1


def test_plot_draws_every_node():
    fig = chain_graph().plot()
    ids = [i for t in fig.data if t.name in NODE_KINDS for i in t.customdata]
    assert len(ids) == 5 and "feature.0.1@0" in ids


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


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_plot_labels_never_overlap_and_rows_are_layers():
    """A crowded graph (40 heads in one layer, long labels, many positions): the labels drawn
    never overlap one another, the most influential nodes keep theirs, and every node sits in
    its layer's row and its position's column."""
    g = CircuitGraph(provenance={"prompt_tokens": [f"tok{i}" for i in range(6)]})
    logit = g.add_node(Node("logit", 3, 5, 0, "' answer'", 0.9))
    for pos in range(6):
        tok = g.add_node(Node("token", None, pos, pos, f"tok{pos}"))
        for h in range(40 if pos == 5 else 3):
            head = g.add_node(Node("head", 1, pos, h, f"L1H{h}-a-long-label"))
            g.add_edge(tok, head, 1.0 + h)
            g.add_edge(head, logit, 1.0 + h)
    fig = g.plot()
    boxes = fig.layout.meta["label_boxes"]
    assert 10 < len(boxes) < len(g.nodes)  # crowded: some labels left to the hover text
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    drawn = {a.text for a in fig.layout.annotations}
    assert "L1H39-a-long-label" in drawn  # the strongest head at the crowded position
    lay = g.layout()
    for i, n in enumerate(g.nodes):
        x, y = lay.xy[i]
        assert lay.rows[int(y)] == (-1.0 if n.kind == "token" else n.layer)
        col = lay.columns.index(n.pos)
        width = 1 / len(lay.columns)
        assert abs(x - lay.column_x[col]) < 40 * width  # in its own column's span
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks[0] == "0: 'tok0'" and len(ticks) == 6
    assert [t.name for t in fig.data[:1]] == ["positive edge weight"]
