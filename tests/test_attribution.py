import pytest
import torch
from tiny_models import tiny_model

from interp.attribution import attribution_patch
from interp.patching import patch_sweep
from interp.tasks import Task, induction_task


def test_exact_where_the_metric_is_linear_in_the_activation():
    # no final norm: the logits, and so the logit difference, are linear in the last MLP's output
    model = tiny_model(1, d_vocab=13, normalization_type=None)
    gen = torch.Generator().manual_seed(0)
    task = Task(
        torch.randint(0, 13, (2, 6), generator=gen),
        torch.randint(0, 13, (2, 6), generator=gen),
        torch.tensor([1, 2]),
        torch.tensor([3, 4]),
    )
    estimate = attribution_patch(model, task, "mlp_out")["mlp_out"]
    exact = patch_sweep(model, task, "mlp_out", progress=False)
    assert torch.allclose(estimate.values[-1], exact.values[-1], atol=1e-5)


@pytest.mark.tl4
def test_compare_records_the_correlation_with_exact_patching(induction_model):
    task = induction_task(induction_model, n=4, period=8)
    results = attribution_patch(induction_model, task, ("attn_out", "z"), compare=True)
    assert results["z"].axes == ("layer", "pos", "head")
    assert results["attn_out"].values.shape == (2, 13)
    for r in results.values():
        assert -1.0 <= r.provenance["exact"]["pearson"] <= 1.0
    # measured: the last layer acts on the logits almost linearly (through the final norm only),
    # so there the estimate tracks exact patching; through saturated attention it does not
    exact = patch_sweep(induction_model, task, "attn_out", progress=False).values[-1]
    estimate = results["attn_out"].values[-1]
    assert torch.corrcoef(torch.stack([estimate, exact]))[0, 1] > 0.99


@pytest.mark.tl4
def test_head_result_estimates_equal_z_and_hook_result(induction_model):
    """The estimate at a head's result equals the one at its z (result = z_h @ W_O[h]), with
    or without TransformerLens computing hook_result."""
    task = induction_task(induction_model, n=3, period=6)
    plain = attribution_patch(induction_model, task, ("result", "z"))
    torch.testing.assert_close(plain["result"].values, plain["z"].values, atol=1e-5, rtol=0)
    induction_model.set_use_attn_result(True)
    try:
        hooked = attribution_patch(induction_model, task, "result")["result"]
    finally:
        induction_model.set_use_attn_result(False)
    torch.testing.assert_close(hooked.values, plain["result"].values, atol=1e-5, rtol=0)


def test_bad_sites(induction_model):
    task = induction_task(induction_model, n=2)
    with pytest.raises(ValueError, match="site='mlp' is not accepted"):
        attribution_patch(induction_model, task, "mlp")
