"""Steering a transcoder feature and a feature's upstream and downstream features, each checked
against a hand computation on plain TransformerLens hooks (induction-2l and a tiny LayerNorm
model, fast; SmolLM2, slow)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from interp.dictionaries import (
    feature_connections,
    feature_intervention,
    feature_pages,
    held_out_tokens,
    load_transcoders,
    new_transcoder,
    steer,
)

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPT = "def greet(name):\n    return 'Hello, ' + name\n"


@pytest.fixture(scope="module")
def organism(induction_model):
    return induction_model


@pytest.fixture(scope="module")
def tcs():
    return load_transcoders("induction-2l")


@pytest.fixture(scope="module")
def tiny_ln():
    """A 2-layer LayerNorm model with random transcoders for both MLPs (no tokenizer)."""
    model = tiny_model(3, normalization_type="LN")
    torch.manual_seed(3)
    tcs = {layer: new_transcoder(model, layer, 24) for layer in range(2)}
    for tc in tcs.values():
        with torch.no_grad():
            tc.b_enc.normal_()  # some features fire on anything
            tc.W_dec.normal_()
    return model, tcs


def _hand_add(layer: int, row: torch.Tensor, value: float, from_pos: int = 1):
    """``value * row`` added to ``blocks.{layer}.hook_mlp_out`` from ``from_pos`` on, by hand."""

    def hook(act, hook):
        act = act.clone()
        act[:, from_pos:] += value * row
        return act

    return [(f"blocks.{layer}.hook_mlp_out", hook)]


def _hand_clamp(model, tc, layer: int, feature: int, value: float):
    """The feature's activation set to ``value`` (positions >= 1), written out on plain hooks:
    ``f = relu(x @ W_enc[:, i] + b_enc[i])`` from the MLP's normalised input, and the MLP's
    output moved by ``(value - f) * W_dec[i]``."""
    seen = {}

    def read(act, hook):
        seen["f"] = torch.relu(act @ tc.W_enc[:, feature] + tc.b_enc[feature])

    def write(act, hook):
        delta = (value - seen["f"])[..., None] * tc.W_dec[feature]
        delta[:, 0] = 0.0
        return act + delta

    return [(f"blocks.{layer}.ln2.hook_normalized", read), (f"blocks.{layer}.hook_mlp_out", write)]


def _greedy_by_hand(model, ids, n, hooks):
    out = ids
    for _ in range(n):
        logits = model.run_with_hooks(out, fwd_hooks=hooks)
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out[0, ids.shape[1] :].tolist()


def test_leaving_the_feature_alone_changes_nothing(organism, tcs):
    for kwargs in ({"mode": "clamp", "scale": 1.0}, {"mode": "add", "value": 0.0}):
        s = steer(organism, tcs, 1, 5, PROMPT, max_new_tokens=6, **kwargs)
        assert s.steered_ids == s.baseline_ids, kwargs
        assert s.diverges_at is None
        assert torch.equal(s.logit_change, torch.zeros(6, organism.cfg.d_vocab))  # bit for bit
    ids = organism.to_tokens(PROMPT)
    assert s.baseline_ids == _greedy_by_hand(organism, ids, 6, [])
    assert s.prompt == organism.to_str_tokens(ids[0])
    assert "".join(s.baseline) == organism.to_string(torch.tensor(s.baseline_ids))


def test_add_mode_equals_a_hand_written_hook(organism, tcs):
    layer, feature, value = 1, 5, 20.0
    s = steer(organism, tcs, layer, feature, PROMPT, mode="add", value=value, max_new_tokens=5)
    ids = organism.to_tokens(PROMPT)
    hooks = _hand_add(layer, tcs[layer].W_dec[feature], value)
    with torch.no_grad():
        moved = organism.run_with_hooks(ids, fwd_hooks=hooks)[0, -1] - organism(ids)[0, -1]
    assert torch.allclose(s.logit_change[0], moved, atol=1e-4)
    assert s.logit_change[0].abs().max() > 1.0  # a real change, not a no-op
    assert s.steered_ids == _greedy_by_hand(organism, ids, 5, hooks)
    assert s.diverges_at == 0 and s.steered != s.baseline
    top = s.logit_change[0].argmax()
    assert s.steps[0]["promoted"][0][0] == organism.to_string(top[None])
    assert s.steps[0]["promoted"][0][1] == pytest.approx(float(s.logit_change[0].max()))
    assert s.steps[0]["token"] == s.steered[0]


def test_add_on_the_last_layer_moves_the_logits_by_the_direct_path(organism, tcs):
    """Steering only the last position of the last MLP: the logits are the unembedded final
    residual plus ``value * W_dec[f]``, through the final norm, exactly."""
    ids = organism.to_tokens(PROMPT)
    last = ids.shape[1] - 1
    s = steer(organism, tcs, 1, 7, ids[0], mode="add", value=-6.0, max_new_tokens=1, from_pos=last)
    with torch.no_grad():
        logits, cache = organism.run_with_cache(ids, names_filter="blocks.1.hook_resid_post")
        resid = cache["blocks.1.hook_resid_post"][:, -1:] + -6.0 * tcs[1].W_dec[7]
        by_hand = organism.unembed(organism.ln_final(resid))[0, -1] - logits[0, -1]
    assert torch.allclose(s.logit_change[0], by_hand, atol=1e-4)


def test_clamp_mode_equals_a_hand_written_hook(organism, tcs):
    layer, feature, value = 0, 11, 12.0
    s = steer(organism, tcs, layer, feature, PROMPT, mode="clamp", value=value, max_new_tokens=4)
    ids = organism.to_tokens(PROMPT)
    hooks = _hand_clamp(organism, tcs[layer], layer, feature, value)
    with torch.no_grad():
        moved = organism.run_with_hooks(ids, fwd_hooks=hooks)[0, -1] - organism(ids)[0, -1]
    assert torch.allclose(s.logit_change[0], moved, atol=1e-4)
    assert moved.abs().max() > 0.1
    assert s.steered_ids == _greedy_by_hand(organism, ids, 4, hooks)
    # scale=0 ablates: the same as clamping to 0
    a = steer(organism, tcs, layer, feature, PROMPT, mode="clamp", scale=0.0, max_new_tokens=3)
    b = steer(organism, tcs, layer, feature, PROMPT, mode="clamp", value=0.0, max_new_tokens=3)
    assert torch.allclose(a.logit_change, b.logit_change, atol=1e-5)


def test_token_prompts_work_on_a_model_without_a_tokenizer(tiny_ln):
    model, tcs = tiny_ln
    s = steer(model, tcs, 0, 2, [0, 5, 9, 3], mode="add", value=3.0, max_new_tokens=3)
    assert s.prompt == ["[0]", "[5]", "[9]", "[3]"]
    assert s.steered == [f"[{t}]" for t in s.steered_ids] and len(s.steered) == 3
    hooks = _hand_add(0, tcs[0].W_dec[2], 3.0)
    assert s.steered_ids == _greedy_by_hand(model, torch.tensor([[0, 5, 9, 3]]), 3, hooks)


def test_bad_steering_fails_early_and_names_the_argument(organism, tcs):
    def call(**kw):
        args = {"mode": "clamp", "value": 1.0} | kw
        return steer(organism, tcs, args.pop("layer", 1), args.pop("feature", 0), PROMPT, **args)

    with pytest.raises(ValueError, match=r"mode='swap' is not accepted; use one of \('clamp'"):
        call(mode="swap")
    with pytest.raises(ValueError, match="exactly one of value= .* or scale="):
        call(scale=2.0)
    with pytest.raises(ValueError, match="exactly one of value="):
        call(value=None)
    with pytest.raises(ValueError, match="mode='add' takes value="):
        call(mode="add", value=None, scale=1.0)
    with pytest.raises(
        ValueError, match=r"feature=1024 is not accepted; use an integer in 0..1023"
    ):
        call(feature=1024)
    with pytest.raises(ValueError, match=r"layer=3: no transcoder there; have \[0, 1\]"):
        call(layer=3)
    with pytest.raises(ValueError, match="value=nan is not accepted"):
        call(value=float("nan"))
    with pytest.raises(ValueError, match="max_new_tokens=0 is not accepted"):
        call(max_new_tokens=0)
    with pytest.raises(ValueError, match="from_pos=-1 is not accepted"):
        call(from_pos=-1)
    with pytest.raises(ValueError, match="prompt plus max_new_tokens has 270 tokens, over"):
        steer(organism, tcs, 1, 0, list(range(1, 251)), mode="add", value=1.0, max_new_tokens=20)
    with pytest.raises(ValueError, match="prompt='' is empty"):
        steer(organism, tcs, 1, 0, "", mode="add", value=1.0)


def test_hooks_from_feature_intervention_are_scoped_by_the_caller(organism, tcs):
    from interp.hooks import scoped_hooks

    ids = organism.to_tokens(PROMPT)
    hooks = feature_intervention(organism, tcs, 1, 5, mode="add", value=5.0)
    with torch.no_grad():
        with scoped_hooks(organism, hooks):
            steered = organism(ids)
        plain = organism(ids)
        by_hand = organism.run_with_hooks(ids, fwd_hooks=_hand_add(1, tcs[1].W_dec[5], 5.0))
    assert torch.allclose(steered, by_hand, atol=1e-4)
    assert not torch.allclose(steered, plain, atol=1e-2)
    assert not organism.hook_dict["blocks.1.hook_mlp_out"].fwd_hooks  # nothing left attached


# -- upstream and downstream features -----------------------------------------------------------


def test_connections_are_the_virtual_weights_by_hand(organism, tcs):
    W = tcs[0].W_dec.float() @ tcs[1].W_enc.float()  # [d_sae 0, d_sae 1]: RMSNorm, no centring
    feature = 5
    got = feature_connections(organism, tcs, 1, feature, k=4)
    assert got["downstream"] == []  # nothing above the last layer
    column = W[:, feature]
    order = column.abs().argsort(descending=True)[:4].tolist()
    assert [c["feature"] for c in got["upstream"]] == order
    assert all(c["layer"] == 0 for c in got["upstream"])
    weights = torch.tensor([c["weight"] for c in got["upstream"]])
    assert torch.allclose(weights, column[order], atol=1e-5)  # signed, not absolute values
    down = feature_connections(organism, tcs, 0, feature, k=3)
    assert down["upstream"] == []
    row = W[feature]
    order = row.abs().argsort(descending=True)[:3].tolist()
    assert [(c["layer"], c["feature"]) for c in down["downstream"]] == [(1, j) for j in order]
    assert torch.allclose(torch.tensor([c["weight"] for c in down["downstream"]]), row[order])


def test_connections_centre_decoder_rows_under_layernorm(tiny_ln):
    model, tcs = tiny_ln
    dec = tcs[0].W_dec[4]
    by_hand = (dec - dec.mean()) @ tcs[1].W_enc
    got = feature_connections(model, tcs, 0, 4, k=24)["downstream"]
    assert torch.allclose(
        torch.tensor([c["weight"] for c in sorted(got, key=lambda c: c["feature"])]),
        by_hand,
        atol=1e-5,
    )
    assert not torch.allclose(dec @ tcs[1].W_enc, by_hand, atol=1e-3)  # centring matters here
    with pytest.raises(ValueError, match="k=0 is not accepted"):
        feature_connections(model, tcs, 0, 4, k=0)
    with pytest.raises(ValueError, match="feature=24 is not accepted"):
        feature_connections(model, tcs, 0, 24)


def test_feature_pages_carry_the_connections(organism, tcs):
    tokens = held_out_tokens(organism, n=4, seq_len=32)
    page = feature_pages(organism, tcs, 0, [5], tokens, n_connections=3)[5]
    assert page["downstream"] == feature_connections(organism, tcs, 0, 5, k=3)["downstream"]
    assert len(page["downstream"]) == 3 and page["upstream"] == []


@pytest.mark.slow
def test_steering_smollm2_on_english(smollm2):
    tcs = load_transcoders("smollm2-135m")
    prompt = "The capital of France is"
    same = steer(smollm2, tcs, 15, 3, prompt, mode="clamp", scale=1.0, max_new_tokens=4)
    assert same.steered_ids == same.baseline_ids
    assert not same.logit_change.any()
    moved = steer(smollm2, tcs, 15, 3, prompt, mode="add", value=60.0, max_new_tokens=4)
    ids = smollm2.to_tokens(prompt)
    hooks = _hand_add(15, tcs[15].W_dec[3], 60.0)
    with torch.no_grad():
        by_hand = smollm2.run_with_hooks(ids, fwd_hooks=hooks)[0, -1] - smollm2(ids)[0, -1]
    assert torch.allclose(moved.logit_change[0], by_hand.float(), atol=1e-3)
    assert moved.logit_change[0].abs().max() > 0.5
