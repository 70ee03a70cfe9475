"""Copy suppression measured by ablation."""

import pytest
import torch

from interp import load_model
from interp.heads import copy_suppression_effect, repeated_random_tokens
from interp.hooks import ablating, hook_name


def test_equals_one_head_ablated_by_hand(induction_model):
    tokens = repeated_random_tokens(induction_model, n=4, period=10, seed=1)
    r = copy_suppression_effect(induction_model, tokens, heads_per_pass=3)
    with torch.no_grad():
        logits = induction_model(tokens).float()
        name = hook_name(induction_model, "z", 1)
        with ablating(induction_model, [name], "mean", reference=tokens, heads=[2]):
            ablated = induction_model(tokens).float()
    top = logits.argmax(-1)
    seen = torch.stack(
        [torch.tensor([bool((row[: t + 1] == row_top[t]).any()) for t in range(len(row))])
         for row, row_top in zip(tokens, top)]
    )  # fmt: skip
    seen[:, 0] = False
    delta = ablated.log_softmax(-1).gather(-1, top[..., None]) - logits.log_softmax(-1).gather(
        -1, top[..., None]
    )
    expected = float(delta[..., 0][seen].mean())
    assert float(r.values[1, 2]) == pytest.approx(expected, abs=1e-4)


def test_induction_heads_copy_and_a_tuned_head_suppresses(induction_model):
    r = copy_suppression_effect(induction_model)
    # ablating an induction head or the previous-token head lowers the in-context prediction
    assert (r.values[1, :3] < -0.2).all() and r.values[0, 3] < -1.0
    tuned = copy_suppression_effect(load_model("reasoning-tuned", device="cpu"))
    assert tuned.top(1)[0][0] == {"layer": "2", "head": "2"} and tuned.values[2, 2] > 0.3


def test_bad_probe(induction_model):
    with pytest.raises(ValueError, match="pos >= 3"):
        copy_suppression_effect(induction_model, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="heads_per_pass"):
        copy_suppression_effect(induction_model, heads_per_pass=0)
