"""Attribution graphs: every edge equals the effect measured by intervening on its source.

The reference here is independent of the graph code: it runs the model with attention patterns,
norm scales and every MLP output held at their clean values (hooks that return cached tensors),
removes one source's contribution from the residual stream, and measures how each target moves
(features' pre-activations, demeaned logits). In this frozen model that difference is the
direct effect, which is what each edge claims to be.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model
from transformer_lens import HookedTransformer

from interp.attribution_graph import attribution_graph, intervene, prepare
from interp.dictionaries import new_transcoder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread (two threads waiting on each other on a busy
    two-core machine made these tests 20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(norm: str, pos: str, seed: int = 0) -> HookedTransformer:
    return tiny_model(
        seed, normalization_type=norm, positional_embedding_type=pos, dtype=torch.float64
    )


def random_transcoders(model, d_sae: int = 48, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for layer in range(model.cfg.n_layers):
        tc = new_transcoder(model, layer, d_sae, model_name="tiny")
        with torch.no_grad():
            tc.W_enc.copy_(torch.randn(tc.W_enc.shape, generator=gen) / 4)
            tc.b_enc.copy_(torch.randn(d_sae, generator=gen) * 0.3 - 2.2)
            tc.W_dec.copy_(torch.randn(tc.W_dec.shape, generator=gen) / 8)
            tc.b_dec.copy_(torch.randn(model.cfg.d_model, generator=gen) / 10)
        out[layer] = tc.to(torch.float64).eval()
    return out


PROMPT = [0, 7, 3, 9, 7, 3, 12, 5]


def clean_cache(model, tokens):
    names = [n for n in model.hook_dict if n.endswith("hook_scale") or n.endswith("hook_pattern")]
    names += ["hook_embed"] + [f"blocks.{la}.hook_mlp_out" for la in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens[None], names_filter=lambda n: n in names)
    return dict(cache.items())


def frozen_targets(model, tcs, tokens, prep, cache, *, delta_embed=None, delta_mlp=None):
    """Feature pre-activations [n_feat] and demeaned logits [vocab] in the frozen model."""
    norm_in = {}
    hooks = [(n, lambda a, hook: cache[hook.name]) for n in cache if "mlp_out" not in n]
    if delta_embed is not None:
        hooks = [h for h in hooks if h[0] != "hook_embed"]
        hooks.append(("hook_embed", lambda a, hook: cache["hook_embed"] + delta_embed))
    for la in range(model.cfg.n_layers):
        d = delta_mlp.get(la) if delta_mlp else None
        hooks.append(
            (
                f"blocks.{la}.hook_mlp_out",
                lambda a, hook, d=d: cache[hook.name] + (0 if d is None else d),
            )
        )
        hooks.append(
            (f"blocks.{la}.ln2.hook_normalized", lambda a, hook, la=la: norm_in.__setitem__(la, a))
        )
    with torch.no_grad():
        logits = model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0, -1]
    pre = torch.zeros(prep.feat_layer.numel(), dtype=torch.float64)
    for la, tc in tcs.items():
        m = prep.feat_layer == la
        x = norm_in[la][0, prep.feat_pos[m]]
        pre[m] = (x * tc.W_enc[:, prep.feat_index[m]].T).sum(-1) + tc.b_enc[prep.feat_index[m]]
    return pre, logits - logits.mean()


def check_exact(model, tcs, skip_first: bool, engine: str = "auto") -> None:
    tokens = torch.tensor(PROMPT)
    g = attribution_graph(
        model, tcs, tokens, skip_first_position=skip_first, batch_size=16, engine=engine
    )
    assert g.provenance["settings"]["engine"] == ("linear" if engine == "auto" else engine)
    prep = prepare(model, tcs, tokens, skip_first)
    weights = g.edge_weights()
    cache = clean_cache(model, tokens)
    base_pre, base_logit = frozen_targets(model, tcs, tokens, prep, cache)
    feat_ids = [
        f"feature.{la}.{f}@{p}"
        for la, p, f in zip(
            prep.feat_layer.tolist(), prep.feat_pos.tolist(), prep.feat_index.tolist()
        )
    ]
    logit_nodes = [n for n in g.nodes if n.kind == "logit"]
    assert logit_nodes and len(feat_ids) == sum(n.kind == "feature" for n in g.nodes)
    sources = []
    n_pos, d = tokens.numel(), model.cfg.d_model
    for p in range(n_pos):
        delta = torch.zeros(1, n_pos, d, dtype=torch.float64)
        delta[0, p] = -prep.token_vecs[p]
        sources.append((f"token.{int(tokens[p])}@{p}", {"delta_embed": delta}))
    for i, fid in enumerate(feat_ids):
        delta = torch.zeros(1, n_pos, d, dtype=torch.float64)
        delta[0, prep.feat_pos[i]] = -prep.decoder[i]
        sources.append((fid, {"delta_mlp": {int(prep.feat_layer[i]): delta}}))
    for la in range(model.cfg.n_layers):
        for p in range(1 if skip_first else 0, n_pos):
            delta = torch.zeros(1, n_pos, d, dtype=torch.float64)
            delta[0, p] = -prep.errors[la, p]
            sources.append((f"error.{la}@{p}", {"delta_mlp": {la: delta}}))
    n_checked = 0
    for sid, kw in sources:
        pre, logit = frozen_targets(model, tcs, tokens, prep, cache, **kw)
        effect_f = base_pre - pre
        effect_l = base_logit - logit
        graph_f = torch.tensor(
            [weights.get((sid, tid), 0.0) for tid in feat_ids], dtype=torch.float64
        )
        assert torch.allclose(graph_f, effect_f, atol=1e-5, rtol=0), sid
        n_checked += int((effect_f.abs() > 1e-9).sum())
        for node in logit_nodes:
            e = float(effect_l[node.index])
            assert weights.get((sid, node.node_id), 0.0) == pytest.approx(e, abs=1e-5), (sid, node)
    assert n_checked > 50  # the test saw real, nonzero edges


@pytest.mark.parametrize("engine", ["linear", "autograd"])
@pytest.mark.parametrize(("norm", "pos"), [("RMS", "rotary"), ("LN", "standard")])
def test_edges_equal_measured_direct_effects(norm, pos, engine):
    model = tiny(norm, pos)
    check_exact(model, random_transcoders(model), skip_first=True, engine=engine)


def test_edges_exact_with_first_position_and_partial_transcoders():
    model = tiny("RMS", "rotary", seed=1)
    tcs = random_transcoders(model, seed=1)
    check_exact(model, tcs, skip_first=False)
    check_exact(model, {1: tcs[1]}, skip_first=True)  # MLP 0 is one error node per position


def test_graph_layout_and_sparsity():
    model = tiny("RMS", "rotary")
    tcs = random_transcoders(model)
    g = attribution_graph(model, tcs, torch.tensor(PROMPT), batch_size=7)
    kinds = [n.kind for n in g.nodes]
    # tokens first, then features, errors, logits
    assert kinds == sorted(kinds, key=["token", "feature", "error", "logit"].index)
    src, dst = g.edge_index
    nodes = g.nodes
    assert all(nodes[t].kind in ("feature", "logit") for t in dst.tolist())
    # causality: sources never come after their targets, features read only earlier layers
    for s, t in zip(src.tolist(), dst.tolist()):
        assert nodes[s].pos <= nodes[t].pos
        if nodes[s].kind in ("feature", "error"):
            assert nodes[s].layer < nodes[t].layer
    assert (g.edge_weight != 0).all()
    probs = [n.activation for n in nodes if n.kind == "logit"]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    # the same graph with another batch size
    g2 = attribution_graph(model, tcs, torch.tensor(PROMPT), batch_size=1000)
    w1, w2 = g.edge_weights(), g2.edge_weights()
    assert w1.keys() == w2.keys()
    assert all(abs(w1[k] - w2[k]) < 1e-6 for k in w1)
    # top-k per target keeps at most k incoming edges per target
    g3 = attribution_graph(model, tcs, torch.tensor(PROMPT), edge_top_k=3)
    assert torch.bincount(g3.edge_index[1]).max() <= 3
    pruned = attribution_graph(
        model, tcs, torch.tensor(PROMPT), node_threshold=0.5, edge_threshold=0.9
    )
    assert pruned.n_edges < g.n_edges and pruned.provenance["node_threshold"] == 0.5


def test_max_feature_nodes_keeps_the_most_influential():
    model = tiny("RMS", "rotary")
    tcs = random_transcoders(model)
    full = attribution_graph(model, tcs, torch.tensor(PROMPT))
    n_feat = sum(n.kind == "feature" for n in full.nodes)
    small = attribution_graph(model, tcs, torch.tensor(PROMPT), max_feature_nodes=5, batch_size=2)
    assert sum(n.kind == "feature" for n in small.nodes) == 5 < n_feat
    assert small.provenance["n_active_features"] == n_feat
    # edges that exist in both have the same weight
    wf = full.edge_weights()
    for k, w in small.edge_weights().items():
        assert wf[k] == pytest.approx(w, abs=1e-6)


def test_target_logits_and_bad_input():
    model = tiny("LN", "standard")
    tcs = random_transcoders(model)
    g = attribution_graph(model, tcs, torch.tensor(PROMPT), target_logits=[3, 4])
    assert [n.index for n in g.nodes if n.kind == "logit"] == [3, 4]
    with pytest.raises(ValueError, match="n_ctx=16"):
        attribution_graph(model, tcs, torch.arange(17) % 50)
    with pytest.raises(ValueError, match="node_threshold"):
        attribution_graph(model, tcs, torch.tensor(PROMPT), node_threshold=1.5)
    with pytest.raises(ValueError, match="edge_threshold"):
        attribution_graph(model, tcs, torch.tensor(PROMPT), edge_threshold=-0.1)
    with pytest.raises(ValueError, match="out of range"):
        attribution_graph(model, {2: tcs[0]}, torch.tensor(PROMPT))
    bad = new_transcoder(tiny("LN", "standard"), 0, 8)
    with torch.no_grad():
        bad.W_enc = torch.nn.Parameter(torch.zeros(40, 8))
    with pytest.raises(ValueError, match="d_model=32"):
        attribution_graph(model, {0: bad}, torch.tensor(PROMPT))
    with pytest.raises(ValueError, match="reads 'blocks.1.ln2.hook_normalized'"):
        attribution_graph(model, {0: tcs[1]}, torch.tensor(PROMPT))
    with pytest.raises(ValueError, match="token id"):
        attribution_graph(model, tcs, torch.tensor(PROMPT), target_logits=[99])
    with pytest.raises(ValueError, match="batch_size"):
        attribution_graph(model, tcs, torch.tensor(PROMPT), batch_size=0)


def test_intervene_reproduces_model_and_matches_last_layer_edges():
    model = tiny("RMS", "rotary")
    tcs = random_transcoders(model)
    tokens = torch.tensor(PROMPT)
    with torch.no_grad():
        clean = model(tokens[None])[0]
    assert torch.allclose(intervene(model, tcs, tokens, {}), clean, atol=1e-10)
    g = attribution_graph(model, tcs, tokens)
    logit = next(n for n in g.nodes if n.kind == "logit")
    weights = g.edge_weights()
    last = [n for n in g.nodes if n.kind == "feature" and n.layer == 1 and n.pos == len(PROMPT) - 1]
    assert last
    for node in last[:5]:
        new = intervene(
            model,
            tcs,
            tokens,
            {(1, node.pos, node.index): 0.0},
            freeze_attention=True,
            freeze_norms=True,
        )[-1]
        old = clean[-1]
        effect = (old[logit.index] - old.mean()) - (new[logit.index] - new.mean())
        assert weights.get((node.node_id, logit.node_id), 0.0) == pytest.approx(
            float(effect), abs=1e-6
        )
    # scaling by 1 changes nothing; scaling a feature by 2 moves the logits
    assert torch.allclose(
        intervene(model, tcs, tokens, {(1, last[0].pos, last[0].index): 1.0}, how="scale"), clean
    )
    moved = intervene(model, tcs, tokens, {(1, last[0].pos, last[0].index): 2.0}, how="scale")
    assert not torch.allclose(moved, clean)
    with pytest.raises(ValueError, match="how must be"):
        intervene(model, tcs, tokens, {}, how="add")
    with pytest.raises(ValueError, match="pos must be"):
        intervene(model, tcs, tokens, {(1, 99, 0): 0.0})
