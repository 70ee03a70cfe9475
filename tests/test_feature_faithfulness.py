"""Faithfulness of feature circuits in the replacement model."""

import pytest
import torch

from interp.attribution_graph import attribution_graph, feature_faithfulness
from interp.dictionaries import held_out_tokens, load_transcoders
from interp.graph import CircuitGraph
from interp.heads import repeated_random_tokens


@pytest.fixture(scope="module")
def setup(induction_model):
    torch.set_num_threads(1)
    tcs = load_transcoders("induction-2l")
    toks = repeated_random_tokens(induction_model, n=2, period=10, seed=4)
    clean, corrupted = toks[0], toks[0].clone()
    corrupted[1:11] = toks[1, 1:11]
    ref = held_out_tokens(induction_model, n=4, seq_len=32)
    return tcs, clean, corrupted, ref


def test_all_features_recover_everything_and_none_recover_nothing(induction_model, setup):
    tcs, clean, corrupted, ref = setup
    full = attribution_graph(induction_model, tcs, clean)
    r = feature_faithfulness(induction_model, tcs, full, corrupted=corrupted, reference_tokens=ref)
    assert float(r.values[0]) == pytest.approx(1.0, abs=1e-4)  # zero: inactive features are 0
    empty = full.subgraph(
        torch.tensor([n.kind != "feature" for n in full.nodes]),
        torch.ones(full.n_edges, dtype=torch.bool),
    )
    r0 = feature_faithfulness(
        induction_model, tcs, empty, corrupted=corrupted, reference_tokens=ref
    )
    torch.testing.assert_close(r0.values, torch.zeros(3), atol=1e-5, rtol=0)


def test_bad_arguments(induction_model, setup):
    tcs, clean, corrupted, ref = setup
    g = attribution_graph(induction_model, tcs, clean, max_feature_nodes=20)
    with pytest.raises(ValueError, match="ablations"):
        feature_faithfulness(induction_model, tcs, g, ablations=("median",))
    with pytest.raises(ValueError, match="corrupted prompt"):
        feature_faithfulness(induction_model, tcs, g, ablations=("resample",))
    with pytest.raises(ValueError, match="tokens but the graph"):
        feature_faithfulness(
            induction_model, tcs, g, corrupted=corrupted[:5], ablations=("resample",)
        )
    other = CircuitGraph(provenance={**g.provenance, "model": "reasoning-tuned"})
    with pytest.raises(ValueError, match="made on model 'reasoning-tuned'"):
        feature_faithfulness(induction_model, tcs, other, ablations=("zero",))
    with pytest.raises(ValueError, match="token_ids"):
        feature_faithfulness(induction_model, tcs, CircuitGraph(), ablations=("zero",))


def test_bridge_gives_the_hooked_transformers_graph_and_faithfulness(induction_model, setup):
    """A TransformerBridge runs the autograd engine; its edges and faithfulness are the
    HookedTransformer's (the linear engine's)."""
    from interp import load_model
    from interp.attribution_graph import intervene

    tcs, clean, corrupted, ref = setup
    bridge = load_model("induction-2l", device="cpu", backend="bridge")
    hooked = attribution_graph(induction_model, tcs, clean)
    bridged = attribution_graph(bridge, tcs, clean)
    want, got = hooked.edge_weights(), bridged.edge_weights()
    assert set(want) == set(got) and len(want) > 1000
    assert max(abs(w - got[k]) for k, w in want.items()) < 1e-5
    torch.testing.assert_close(
        intervene(bridge, tcs, clean, {}),
        intervene(induction_model, tcs, clean, {}),
        atol=1e-4,
        rtol=0,
    )
    circuit = hooked.prune(node_threshold=0.8, edge_threshold=0.98)
    torch.testing.assert_close(
        feature_faithfulness(
            bridge, tcs, circuit, corrupted=corrupted, reference_tokens=ref
        ).values,
        feature_faithfulness(
            induction_model, tcs, circuit, corrupted=corrupted, reference_tokens=ref
        ).values,
        atol=1e-4,
        rtol=0,
    )
