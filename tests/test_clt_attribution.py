"""Attribution graphs over a cross-layer transcoder: every edge equals the direct effect measured
by intervening on its source, and a feature's edges run through all its decoders.

As in ``test_attribution_graph.py``, the reference is independent of the graph code: the model
runs with attention patterns, norm scales and every MLP output held at their clean values, one
source's contribution is removed (for a CLT feature at layer ``l``: its decoder output at *every*
MLP ``m >= l``), and each target's move is measured.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from interp.attribution_graph import (
    attribution_graph,
    feature_faithfulness,
    graph_scores,
    intervene,
    prepare,
)
from interp.dictionaries import CrossLayerTranscoder

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = [0, 7, 3, 9, 7, 3, 12, 5]


def random_clt(model, input_hook: str, d_sae: int = 24, seed: int = 0) -> CrossLayerTranscoder:
    """Random weights, with each feature's bias set so it fires on ~1/4 of the prompt."""
    g = torch.Generator().manual_seed(seed)
    n, d = model.cfg.n_layers, model.cfg.d_model
    clt = CrossLayerTranscoder(n, d, d_sae, input_hook=input_hook, dtype=torch.float64)
    names = [clt.hook_name(la) for la in range(n)]
    _, cache = model.run_with_cache(torch.tensor([PROMPT]), names_filter=lambda x: x in names)
    with torch.no_grad():
        for la in range(n):
            clt.W_enc[la] = torch.randn(d, d_sae, generator=g, dtype=torch.float64) / 4
            clt.W_dec[la].copy_(torch.randn(clt.W_dec[la].shape, generator=g) / 8)
            pre = cache[names[la]][0].double() @ clt.W_enc[la]
            clt.b_enc[la] = -pre[1:].quantile(0.75, dim=0)
        clt.b_dec.copy_(torch.randn(n, d, generator=g) / 10)
    return clt.eval()


def frozen_targets(model, clt, tokens, prep, cache, delta_embed=None, delta_mlp=None):
    """Feature pre-activations [n_feat] and demeaned logits in the frozen model."""
    reads = {}
    hooks = [(n, lambda a, hook: cache[hook.name]) for n in cache if "mlp_out" not in n]
    if delta_embed is not None:
        hooks = [h for h in hooks if h[0] != "hook_embed"]
        hooks.append(("hook_embed", lambda a, hook: cache["hook_embed"] + delta_embed))
    for la in range(model.cfg.n_layers):
        d = (delta_mlp or {}).get(la)
        hooks.append(
            (
                f"blocks.{la}.hook_mlp_out",
                lambda a, hook, d=d: cache[hook.name] + (0 if d is None else d),
            )
        )
        hooks.append((clt.hook_name(la), lambda a, hook, la=la: reads.__setitem__(la, a)))
    with torch.no_grad():
        logits = model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0, -1]
    pre = torch.zeros(prep.feat_layer.numel(), dtype=torch.float64)
    for la in range(clt.n_layers):
        m = prep.feat_layer == la
        pre[m] = clt.pre_acts(reads[la][0, prep.feat_pos[m]], la).gather(
            -1, prep.feat_index[m][:, None]
        )[:, 0]
    return pre, logits - logits.mean()


@pytest.mark.parametrize("engine", ["linear", "autograd"])
@pytest.mark.parametrize(
    ("norm", "pos", "hook"),
    [("RMS", "rotary", "ln2.hook_normalized"), ("LN", "standard", "hook_resid_mid")],
)
def test_clt_edges_equal_measured_direct_effects(norm, pos, hook, engine):
    model = tiny_model(
        0, normalization_type=norm, positional_embedding_type=pos, dtype=torch.float64
    )
    clt = random_clt(model, hook)
    tokens = torch.tensor(PROMPT)
    g = attribution_graph(model, clt, tokens, batch_size=16, engine=engine)
    assert g.provenance["settings"]["engine"] == engine
    assert g.provenance["transcoders"]["0"] == f"clt:blocks.0.{hook}"
    prep = prepare(model, clt, tokens)
    assert len(prep.cross) == 1 and prep.cross[0].shape[0] == int((prep.feat_layer == 0).sum())
    weights = g.edge_weights()
    names = [n for n in model.hook_dict if n.endswith(("hook_scale", "hook_pattern"))]
    names += ["hook_embed"] + [f"blocks.{la}.hook_mlp_out" for la in range(2)]
    _, c = model.run_with_cache(tokens[None], names_filter=lambda n: n in names)
    cache = dict(c.items())
    base_pre, base_logit = frozen_targets(model, clt, tokens, prep, cache)
    feat_ids = [
        f"feature.{la}.{f}@{p}"
        for la, p, f in zip(
            prep.feat_layer.tolist(), prep.feat_pos.tolist(), prep.feat_index.tolist()
        )
    ]
    logits = [n for n in g.nodes if n.kind == "logit"]
    n_pos, d = tokens.numel(), model.cfg.d_model
    n_checked = n_cross = 0
    for i, fid in enumerate(feat_ids):
        la, p, f, a = (
            int(prep.feat_layer[i]),
            int(prep.feat_pos[i]),
            int(prep.feat_index[i]),
            float(prep.feat_act[i]),
        )
        deltas = {}
        for m in range(la, 2):
            delta = torch.zeros(1, n_pos, d, dtype=torch.float64)
            delta[0, p] = -a * clt.W_dec[la][f, m - la]
            deltas[m] = delta
        pre, logit = frozen_targets(model, clt, tokens, prep, cache, delta_mlp=deltas)
        graph_f = torch.tensor([weights.get((fid, t), 0.0) for t in feat_ids], dtype=torch.float64)
        assert torch.allclose(graph_f, base_pre - pre, atol=1e-6, rtol=0), fid
        n_checked += int(((base_pre - pre).abs() > 1e-9).sum())
        for node in logits:
            e = float((base_logit - logit)[node.index])
            assert weights.get((fid, node.node_id), 0.0) == pytest.approx(e, abs=1e-6)
        if la == 0:  # the same source without its write to MLP 1 moves the logits otherwise
            _, own_only = frozen_targets(model, clt, tokens, prep, cache, delta_mlp={0: deltas[0]})
            n_cross += int(not torch.allclose(own_only, logit, atol=1e-6))
    for p in range(1, n_pos):  # error nodes: what the CLT misses of each MLP
        for la in range(2):
            delta = torch.zeros(1, n_pos, d, dtype=torch.float64)
            delta[0, p] = -prep.errors[la, p]
            pre, _ = frozen_targets(model, clt, tokens, prep, cache, delta_mlp={la: delta})
            graph_f = torch.tensor(
                [weights.get((f"error.{la}@{p}", t), 0.0) for t in feat_ids], dtype=torch.float64
            )
            assert torch.allclose(graph_f, base_pre - pre, atol=1e-6, rtol=0)
    assert n_checked > 30 and n_cross > 5


def test_intervene_on_a_clt_matches_edges_to_logits():
    """The direct effect of a feature on a logit, measured with ``intervene`` (patterns and
    scales frozen, later-layer features clamped at their clean values), equals its edge."""
    model = tiny_model(
        1, normalization_type="RMS", positional_embedding_type="rotary", dtype=torch.float64
    )
    clt = random_clt(model, "ln2.hook_normalized", seed=1)
    tokens = torch.tensor(PROMPT)
    with torch.no_grad():
        clean = model(tokens[None])[0]
    assert torch.allclose(intervene(model, clt, tokens, {}), clean, atol=1e-10)
    g = attribution_graph(model, clt, tokens)
    prep = prepare(model, clt, tokens)
    weights = g.edge_weights()
    logit = next(n for n in g.nodes if n.kind == "logit")
    acts = torch.zeros(len(PROMPT), clt.d_sae, dtype=torch.float64)
    m = prep.feat_layer == 1
    acts[prep.feat_pos[m], prep.feat_index[m]] = prep.feat_act[m]
    hold = {(1, p, f): float(acts[p, f]) for p in range(1, len(PROMPT)) for f in range(clt.d_sae)}
    # at the last position, where a layer-0 feature's write to MLP 1 reaches the logits
    last = len(PROMPT) - 1
    sources = [n for n in g.nodes if n.kind == "feature" and n.layer == 0 and n.pos == last]
    sources += [n for n in g.nodes if n.kind == "feature" and n.layer == 1][:3]
    assert len(sources) >= 6
    old = clean[-1] - clean[-1].mean()
    for node in sources:
        held = hold if node.layer == 0 else {}
        new = intervene(
            model,
            clt,
            tokens,
            {**held, (node.layer, node.pos, node.index): 0.0},
            freeze_attention=True,
            freeze_norms=True,
        )[-1]
        effect = float(old[logit.index] - (new[logit.index] - new.mean()))
        assert weights.get((node.node_id, logit.node_id), 0.0) == pytest.approx(effect, abs=1e-6)
    with pytest.raises(ValueError, match="pos must be"):
        intervene(model, clt, tokens, {(0, 99, 0): 0.0})


@pytest.fixture(scope="module")
def organism_setup(induction_model):
    from interp.dictionaries import held_out_tokens, load_clt, load_transcoders
    from interp.heads import repeated_random_tokens

    toks = repeated_random_tokens(induction_model, n=2, period=10, seed=4)
    clean, corrupted = toks[0], toks[0].clone()
    corrupted[1:11] = toks[1, 1:11]
    ref = held_out_tokens(induction_model, n=4, seq_len=32)
    return load_clt("induction-2l"), load_transcoders("induction-2l"), clean, corrupted, ref


def test_shipped_clt_graph_on_the_organism(induction_model, organism_setup):
    """On induction-2l (float32): edges to the top logit equal measured direct effects, the
    graph beside the per-layer transcoders' graph has the scores the README states, and all
    features together recover all that the features carry."""
    clt, tcs, clean, corrupted, ref = organism_setup
    model = induction_model
    g = attribution_graph(model, clt, clean)
    prep = prepare(model, clt, clean)
    weights = g.edge_weights()
    logit = next(n for n in g.nodes if n.kind == "logit")
    acts = torch.zeros(clean.numel(), clt.d_sae)
    m = prep.feat_layer == 1
    acts[prep.feat_pos[m], prep.feat_index[m]] = prep.feat_act[m].float()
    hold = {(1, p, f): float(acts[p, f]) for p in range(1, clean.numel()) for f in range(clt.d_sae)}
    with torch.no_grad():
        base = model(clean[None])[0, -1]
    base = base - base.mean()
    last0 = [n for n in g.nodes if n.kind == "feature" and n.layer == 0 and n.pos == 20]
    strongest = sorted(last0, key=lambda n: -abs(weights.get((n.node_id, logit.node_id), 0)))[:3]
    for node in strongest:
        new = intervene(
            model,
            clt,
            clean,
            {**hold, (0, node.pos, node.index): 0.0},
            freeze_attention=True,
            freeze_norms=True,
        )[-1]
        effect = float(base[logit.index] - (new[logit.index] - new.mean()))
        edge = weights[(node.node_id, logit.node_id)]
        assert abs(edge) > 0.05 and edge == pytest.approx(effect, rel=1e-3, abs=1e-4)
    scores = graph_scores(g)
    per_layer = graph_scores(attribution_graph(model, tcs, clean))
    assert scores["replacement"] == pytest.approx(0.8985, abs=0.01)
    assert per_layer["replacement"] == pytest.approx(0.9383, abs=0.01)
    assert scores["completeness"] == pytest.approx(0.9547, abs=0.01)
    r = feature_faithfulness(model, clt, g, corrupted=corrupted, reference_tokens=ref)
    assert float(r.values[0]) == pytest.approx(1.0, abs=1e-4)
