"""Attention pathway trace: on induction-2l it recovers previous-token -> induction."""

import pytest
import torch

from interp.heads import attention_pathways, repeated_random_tokens, source_effects
from interp.hooks import attention_knockout
from interp.tasks import Task


@pytest.fixture(scope="module")
def induction_prompt(induction_model):
    toks = repeated_random_tokens(induction_model, n=1, period=12, seed=3)
    return induction_model.to_string(toks[0, 1:])


def test_trace_finds_the_induction_pathway(induction_model, induction_prompt):
    g = attention_pathways(induction_model, induction_prompt)
    into_logits = {s.label: w for s, t, w, m in g.edges() if t.kind == "logit"}
    assert max(into_logits, key=into_logits.get) in {"L1H0", "L1H1", "L1H2"}
    tokens = induction_model.to_tokens(induction_prompt)[0]
    dest, answer = len(tokens) - 1, int(g.provenance["target"])
    # the strongest induction head reads the earlier copy of the answer (the token after the
    # earlier occurrence of the current token) ...
    top = max((e for e in g.edges() if e[1].kind == "logit"), key=lambda e: e[2])[0]
    sources = {s.pos: w for s, t, w, m in g.edges() if t == top and s.kind == "token"}
    best = max(sources, key=sources.get)
    assert int(tokens[best]) == answer and best < dest
    assert int(tokens[best - 1]) == int(tokens[dest])
    # ... keyed by the previous-token head L0H3 at that position, which reads the token before
    keyed = [(s, w) for s, t, w, m in g.edges() if t == top and m == "path_patching:k"]
    assert keyed and max(keyed, key=lambda e: e[1])[0].node_id == f"head.0.3@{best}"
    prev = {s.pos: w for s, t, w, m in g.edges() if t.node_id == f"head.0.3@{best}"}
    assert max(prev, key=prev.get) == best - 1
    assert g.provenance["n_layers"] == 2 and len(g.to_json()["nodes"]) == len(g.nodes)


def test_source_effects_equal_single_knockouts(induction_model, induction_prompt):
    tokens = induction_model.to_tokens(induction_prompt)
    batch = Task(
        clean=tokens, corrupted=tokens.flip(1), answers=tokens[:, -1], wrong_answers=tokens[:, 1]
    ).tokens(induction_model)
    dest = tokens.shape[1] - 1
    effects = source_effects(induction_model, batch, 1, 2, dest)
    clean, _ = batch.baseline(induction_model)
    for src in (0, 5, dest):
        with torch.no_grad(), attention_knockout(induction_model, [1], [dest], [src], heads=[2]):
            logits = induction_model(batch.clean)[:, -1]
        expected = clean - float(batch.score(logits[None]))
        assert float(effects[src]) == pytest.approx(expected, abs=1e-4)


def test_bad_arguments(induction_model, induction_prompt):
    with pytest.raises(ValueError, match="prompt must be a non-empty"):
        attention_pathways(induction_model, "   ")
    with pytest.raises(ValueError, match="depth"):
        attention_pathways(induction_model, induction_prompt, depth=0)
    with pytest.raises(ValueError, match="single token"):
        attention_pathways(induction_model, induction_prompt, target="module module")
    with pytest.raises(ValueError, match="context"):
        attention_pathways(induction_model, "1" * 300)


def test_trace_runs_under_grouped_query_attention(tmp_path):
    """Key/value senders go into a head's key/value group (4 query heads on 2 key/value heads);
    the bridge traces the same graph as the HookedTransformer."""
    from tiny_models import tiny_llama_folder

    from interp import load_model
    from interp.tasks import induction_task

    folder = tiny_llama_folder(tmp_path / "gqa", n_kv=2, n_layers=3)
    graphs = []
    for backend in ("hooked", "bridge"):
        model = load_model(folder, device="cpu", backend=backend)
        graphs.append(attention_pathways(model, induction_task(model, n=3, period=6), depth=2))
    hooked, bridged = graphs
    methods = set(hooked.edge_methods)
    assert {"path_patching:q", "path_patching:k", "path_patching:v"} & methods
    assert hooked.edge_weights().keys() == bridged.edge_weights().keys()
