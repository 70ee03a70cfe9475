"""Head detectors and weight-based head circuits, against TransformerLens where it has them."""

import pytest
import torch
from transformer_lens.head_detector import detect_head

from interp.heads import (
    DETECTION_KINDS,
    attention_entropy,
    bos_scores,
    composition_scores,
    detection_scores,
    duplicate_token_scores,
    induction_scores,
    ov_copying_scores,
    previous_token_scores,
)

TEXTS = [
    "def f(x):\n    return x + 1\n\ndef f(x):\n    return x + 1\n",
    "import os\nimport sys\nimport os\n",
]


@pytest.mark.parametrize("kind", DETECTION_KINDS)
@pytest.mark.parametrize("exclude", [(False, False), (True, True)])
def test_detection_scores_equal_transformer_lens(induction_model, kind, exclude):
    bos, current = exclude
    for text in TEXTS:
        tokens = induction_model.to_tokens(text)  # exactly what detect_head tokenizes
        ours = detection_scores(
            induction_model, tokens, kind, exclude_bos=bos, exclude_current_token=current
        )
        ref = detect_head(
            induction_model, text, kind, exclude_bos=bos, exclude_current_token=current
        )
        assert torch.allclose(ours.values, ref.float(), atol=1e-5)


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_composition_scores_equal_transformer_lens(induction_model, mode):
    ours = composition_scores(induction_model, mode)
    ref = induction_model.all_composition_scores(mode)
    assert ours.values.shape == ref.shape
    assert torch.allclose(ours.values, ref.float(), atol=1e-4)


def test_k_composition_links_the_previous_token_head_to_the_induction_head(induction_model):
    prev = previous_token_scores(induction_model).values[0].argmax().item()
    ind = induction_scores(induction_model).values[1].argmax().item()
    k = composition_scores(induction_model, "K").values[
        0, :, 1, :
    ]  # layer-0 heads -> layer-1 heads
    assert k[prev, ind] == k.max()


def test_other_detectors_are_probabilities_and_entropies(induction_model):
    for result in [duplicate_token_scores(induction_model), bos_scores(induction_model)]:
        assert result.values.shape == (2, 4)
        assert 0 <= result.values.min() and result.values.max() <= 1
    entropy = attention_entropy(induction_model).values
    assert (entropy >= 0).all() and (entropy <= torch.log(torch.tensor(101.0))).all()


def test_ov_copying_on_a_constructed_copying_head():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_ctx=8,
        d_head=16,
        n_heads=2,
        d_vocab=16,
        attn_only=True,
        act_fn="gelu",
        seed=0,
    )
    model = HookedTransformer(cfg)
    with torch.no_grad():
        model.W_E.copy_(torch.eye(16))
        model.W_U.copy_(torch.eye(16))
        model.blocks[0].attn.W_V.copy_(torch.stack([torch.eye(16), torch.eye(16)]))
        model.blocks[0].attn.W_O.copy_(torch.stack([torch.eye(16), -torch.eye(16)]))
    copying, suppression = ov_copying_scores(model, n_tokens=16)
    assert copying.values[0].tolist() == [1.0, 0.0]
    assert suppression.values[0].tolist() == [0.0, 1.0]


def test_bad_arguments(induction_model):
    with pytest.raises(ValueError, match="kind='bigram_head'"):
        detection_scores(induction_model, torch.zeros(1, 4, dtype=torch.long), "bigram_head")
    with pytest.raises(ValueError, match="mode='X'"):
        composition_scores(induction_model, "X")
    with pytest.raises(ValueError, match="cannot hold two copies"):
        induction_scores(induction_model, torch.zeros(2, 5, dtype=torch.long), period=4)


def test_ablating_the_induction_heads_raises_the_second_copy_loss(induction_model):
    from interp.heads import repeated_random_tokens, repeated_token_loss
    from interp.hooks import ablating

    tokens = repeated_random_tokens(induction_model, n=8, period=30)
    _, plain = repeated_token_loss(induction_model, tokens, period=30)
    inductive = (
        (induction_scores(induction_model, tokens, period=30).values[1] > 0.4)
        .nonzero()
        .flatten()
        .tolist()
    )
    with ablating(induction_model, ["blocks.1.attn.hook_z"], heads=inductive):
        first, ablated = repeated_token_loss(induction_model, tokens, period=30)
    assert (
        plain < 0.5 and ablated > 0.5 * first
    )  # the second copy becomes almost as hard as the first


def test_a_short_context_model_gets_a_probe_that_fits():
    """The default probe (period 50, 101 tokens) shrinks to the model's context; a probe that
    cannot fit is refused by name."""
    from tiny_models import tiny_model

    from interp.heads import induction_scores, repeated_random_tokens, repeated_token_loss

    model = tiny_model(0)  # n_ctx 16
    scores = induction_scores(model)
    assert scores.values.shape == (2, 4) and scores.provenance["period"] == 7
    assert len(repeated_token_loss(model)) == 2
    with pytest.raises(ValueError, match="longer than the model's context of 16"):
        repeated_random_tokens(model, period=50)
    with pytest.raises(ValueError, match="longer than the model's context of 16"):
        induction_scores(model, torch.zeros(1, 20, dtype=torch.long))


def test_repeated_token_loss_by_position_lines_up_with_the_tokens(induction_model):
    """Entry j of each copy is the loss of predicting that copy's token j + 2, read against a
    forward pass here; without BOS the same copies give the same losses."""
    from interp.heads import (
        repeated_random_tokens,
        repeated_token_loss,
        repeated_token_loss_by_position,
    )

    period = 12
    tokens = repeated_random_tokens(induction_model, n=4, period=period, seed=3)
    first, second = repeated_token_loss_by_position(induction_model, tokens, period)
    assert first.shape == second.shape == (period - 1,)
    logits = induction_model(tokens).float()
    logp = logits.log_softmax(-1)
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]  # nll[:, i] predicts token i + 1
    # tokens: BOS, r_1..r_period, r_1..r_period; the first copy predicts r_2..r_period
    torch.testing.assert_close(first, nll[:, 1:period].mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        second, nll[:, period + 1 : 2 * period].mean(0), atol=1e-4, rtol=1e-4
    )
    assert second.mean() < 0.2 * first.mean()  # induction: the second copy is looked up
    mean_first, mean_second = repeated_token_loss(induction_model, tokens, period)
    assert mean_first == pytest.approx(first.mean().item(), rel=1e-5)
    assert mean_second == pytest.approx(second.mean().item(), rel=1e-5)
