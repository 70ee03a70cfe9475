"""Cost estimates count the passes each computation makes (no timed assertions)."""

import pytest

from interp.cost import (
    ABLATED_PER_RECEIVER,
    Estimate,
    discovery_estimate,
    duration,
    patch_estimate,
    path_patch_estimate,
    time_forward,
)
from interp.tasks import make_task


@pytest.fixture(scope="module")
def batch(induction_model):
    return make_task("induction", induction_model, n=4).tokens(induction_model)


def test_patch_counts_patches_and_the_layers_the_resume_engine_runs(induction_model, batch):
    est = patch_estimate(induction_model, batch, "z", ("layer", "pos", "head"))
    n_pos = batch.clean.shape[1]
    assert est.work == f"{2 * n_pos * 4:,} patches of 4 prompts"
    assert est.passes == pytest.approx(3 + 2 * n_pos * 4 * 3 / 4)  # layers 0 and 1: 2/2, 1/2
    full = patch_estimate(induction_model, batch, "z", ("layer", "head"), engine="full")
    assert full.passes == 3 + 8


def test_path_patch_counts_one_run_per_sender_into_logits_two_into_heads(induction_model, batch):
    assert path_patch_estimate(induction_model, batch, "logits").passes == 4 + 8
    assert path_patch_estimate(induction_model, batch, [("q", 1, 0)]).passes == 4 + 2 * 4


def test_discovery_counts_gradient_and_ablated_passes(induction_model, batch):
    from interp.discovery import edge_space

    space = edge_space(induction_model)
    ablated = max(1.0, ABLATED_PER_RECEIVER * space.receivers_per_layer)
    eap_ig = discovery_estimate(induction_model, batch, "EAP-IG", ig_steps=5)
    assert eap_ig.passes == pytest.approx(1 + 5 * 3 + 4 + 6 * ablated) and not eap_ig.at_most
    acdc = discovery_estimate(induction_model, batch, "ACDC")
    assert acdc.at_most and f"{int(space.reads().sum()):,} edges" in acdc.work


def test_the_estimate_line(induction_model, batch):
    seconds = time_forward(induction_model, batch.clean)
    assert 0 < seconds < 60
    line = Estimate("8 patches", 11).timed(2.0)
    assert line == "estimate: 8 patches; about 11 forward passes of 2 s (timed) = about 22 s"
    assert "at most" in Estimate("edges", 5, at_most=True).timed(1.0)
    assert [duration(s) for s in (0.5, 40.0, 450.0, 9000.0)] == [
        "0.5 s",
        "40 s",
        "7.5 min",
        "2.5 h",
    ]
