import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.attribution import attribution_patch
from interp.patching import patch_sweep
from interp.tasks import Task, induction_task


def test_exact_where_the_metric_is_linear_in_the_activation():
    # no final norm: the logits, and so the logit difference, are linear in the last MLP's output
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_ctx=16,
        d_head=8,
        n_heads=4,
        d_vocab=13,
        d_mlp=64,
        act_fn="gelu",
        normalization_type=None,
        seed=1,
    )
    model = HookedTransformer(cfg)
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


def test_compare_records_the_correlation_with_exact_patching(induction_model):
    task = induction_task(induction_model, n=4, period=8)
    results = attribution_patch(induction_model, task, ("resid_pre", "z"), compare=True)
    assert results["z"].axes == ("layer", "pos", "head")
    assert results["resid_pre"].values.shape == (2, 13)
    for r in results.values():
        assert -1.0 <= r.provenance["exact"]["pearson"] <= 1.0
    # the residual stream before layer 0 is where the linear estimate is best
    assert results["resid_pre"].provenance["exact"]["pearson"] > 0.8


def test_bad_sites(induction_model):
    task = induction_task(induction_model, n=2)
    with pytest.raises(ValueError, match="site='mlp' is not accepted"):
        attribution_patch(induction_model, task, "mlp")
