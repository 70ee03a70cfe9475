"""Heads across training (formation, phase change) and post-training (emergence)."""

import pytest
import torch

from interp import ModelSpecError, load_model
from interp.dynamics import (
    accuracy_with_heads_ablated,
    emergent_heads,
    formation,
    hub_checkpoints,
    organism_checkpoints,
    phase_change,
    random_head_sets,
)
from interp.models import provenance
from interp.organisms import ORGANISMS, held_out_text, train
from interp.tasks import variable_tracking_task


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("untrained") / "step-0"
    train("induction-2l", out=folder, steps=1)
    return folder


@pytest.fixture(scope="module")
def text():
    return held_out_text(8, 128, seed=0)  # the training length


def test_formation_finds_the_jump_from_untrained_to_trained(untrained, text, tmp_path):
    out = tmp_path / "formation.json"
    result = formation([(0, untrained), (2500, "induction-2l")], text=text, out=out, progress=False)
    curve = result["max_induction"].values
    assert curve[0] < 0.2 and curve[1] > 0.4
    assert phase_change(result["max_induction"]) == 2500
    assert result["icl_repeated"].values[1] < -5 < result["icl_repeated"].values[0]
    assert result["induction"].axes == ("step", "layer", "head")
    # resumed from the file: no model is loaded again
    import interp.dynamics as dyn

    real = dyn.load_model
    dyn.load_model = lambda *a, **k: (_ for _ in ()).throw(AssertionError("reloaded"))
    try:
        again = formation(
            [(0, untrained), (2500, "induction-2l")], text=text, out=out, progress=False
        )
    finally:
        dyn.load_model = real
    assert torch.equal(again["max_induction"].values, result["max_induction"].values)


def test_formation_over_hub_revisions(untrained, text, fake_hub):
    # Pythia-style revisions "step0", "step2500" of a hub name, served from the local HF cache
    snaps = fake_hub("gpt2", {"step0": untrained, "step2500": ORGANISMS["induction-2l"].path})
    checkpoints = hub_checkpoints("gpt2", [0, "step2500"])
    assert checkpoints == [(0, "gpt2@step0"), (2500, "gpt2@step2500")]
    assert provenance(load_model("gpt2", revision="step0", device="cpu"))["source"] == str(
        snaps["step0"]
    )
    result = formation(checkpoints, text=text, progress=False)
    assert phase_change(result["max_induction"]) == 2500
    with pytest.raises(ModelSpecError, match="only to hub models"):
        load_model("induction-2l", revision="step0")


def test_checkpoints_of_another_architecture_are_refused(text):
    with pytest.raises(ValueError, match="architecture"):
        formation([(0, "induction-2l"), (1, "reasoning-base")], text=text, progress=False)
    with pytest.raises(ValueError, match="increasing"):
        formation([(5, "induction-2l"), (1, "induction-2l")], text=text, progress=False)


def test_training_writes_checkpoints_that_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    train("induction-2l", out=tmp_path / "model", steps=4, checkpoint_every=2)
    found = organism_checkpoints("induction-2l")
    assert [step for step, _ in found] == [2, 4]
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="interp organisms train"):
        organism_checkpoints("induction-2l")


def test_emerged_heads_carry_the_tuned_models_reasoning():
    base = load_model("reasoning-base", device="cpu")
    tuned = load_model("reasoning-tuned", device="cpu")
    task = variable_tracking_task(tuned, n=64, hops=2, seed=11)
    found = emergent_heads(base, tuned, task)
    assert found["emerged"], "post-training should make some heads important"
    assert found["emerged"][0] == (3, 2)  # measured: L3H2 carries ~60% of the logit difference
    heads = found["emerged"][:3]
    hurt = accuracy_with_heads_ablated(tuned, task, heads)
    draws = [
        accuracy_with_heads_ablated(tuned, task, hs)
        for hs in random_head_sets(tuned, len(heads), 8, exclude=heads)
    ]
    assert accuracy_with_heads_ablated(tuned, task, []) == 1.0
    assert hurt < 0.5 and sum(draws) / len(draws) > 0.9


def test_edge_attribution_importance_agrees_with_ablation():
    base = load_model("reasoning-base", device="cpu")
    tuned = load_model("reasoning-tuned", device="cpu")
    task = variable_tracking_task(tuned, n=32, hops=2, seed=11)
    by_ablation = emergent_heads(base, tuned, task)
    by_eap = emergent_heads(base, tuned, task, how="eap-ig")
    assert by_eap["tuned"].provenance["how"] == "eap-ig"
    # the head that matters most after post-training is the same by both measures
    assert by_eap["emerged"][0] == by_ablation["emerged"][0] == (3, 2)
    with pytest.raises(ValueError, match="how='ig'"):
        emergent_heads(base, tuned, task, how="ig")
