"""Summaries a researcher reads right: the most important entries by magnitude, with their sign
and what the sign means for the chosen direction and normalisation.

On ``induction-2l`` the induction task's most important head is the previous-token head L0H3,
and its effect is negative when denoising: restoring L0H3's clean output alone, into a run whose
first copy is corrupted, points the induction heads at the wrong token. A summary that lists only
the largest values never shows it.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from interp import Result, patch_sweep, path_patch_sweep
from interp.cli import app
from interp.result import where_label
from interp.tasks import induction_task


@pytest.fixture(scope="module")
def task(induction_model):
    return induction_task(induction_model, n=8, period=20)


@pytest.mark.parametrize("direction", ["denoise", "noise"])
@pytest.mark.parametrize("normalize", [False, True])
def test_top_ranks_by_magnitude_with_sign(induction_model, task, direction, normalize):
    r = patch_sweep(
        induction_model,
        task,
        "z",
        ("layer", "head"),
        direction,
        normalize=normalize,
        progress=False,
    )
    clean, corrupted = r.provenance["clean_metric"], r.provenance["corrupted_metric"]
    if normalize:
        clean, corrupted = 1.0, 0.0
    no_effect = corrupted if direction == "denoise" else clean
    assert r.no_effect == pytest.approx(no_effect)
    assert torch.allclose(r.effects, r.values - no_effect)
    (where, value), *_ = r.top(3)
    assert where_label(where) == "L0H3"
    effect = value - no_effect
    assert effect < 0 and abs(effect) == pytest.approx(float(r.effects.abs().max()))
    # the reading says which sign is which for this direction
    if direction == "denoise":
        assert "- means it works against it" in r.reading
        assert "carries the behaviour" in r.reading
    else:
        assert "- means it is needed for it" in r.reading
    assert f"no effect = {no_effect:.4g}" in r.reading
    # either end on request
    largest = r.top(1, "largest")[0][1]
    smallest = r.top(1, "smallest")[0][1]
    assert largest == float(r.values.max()) and smallest == float(r.values.min())
    text = r.summary(2)
    assert text.splitlines()[0] == r.reading
    first = text.splitlines()[2].split()
    assert first[0] == "L0H3" and float(first[1]) == pytest.approx(value, abs=1e-4)
    if no_effect != 0:
        assert first[2:] == ["effect", f"{effect:+.4f}"]


def test_denoise_largest_values_hide_the_most_important_head(induction_model, task):
    r = patch_sweep(induction_model, task, "z", ("layer", "head"), progress=False)
    assert "L0H3" not in [where_label(w) for w, _ in r.top(3, "largest")]
    assert where_label(r.top(1)[0][0]) == "L0H3"


def test_path_patching_reads_against_the_clean_run(induction_model, task):
    r = path_patch_sweep(induction_model, task, receivers="logits", progress=False)
    assert r.no_effect == pytest.approx(r.provenance["clean_metric"])
    where, value = r.top(1)[0]
    assert where["layer"] == "1" and value < r.no_effect  # an induction head, needed
    assert "- means it is needed for it" in r.reading


def test_results_without_a_baseline_rank_by_absolute_value():
    r = Result(torch.tensor([[0.2, -0.9], [0.5, 0.1]]), ("layer", "head"), "score")
    assert r.top(2) == [
        ({"layer": "0", "head": "1"}, pytest.approx(-0.9)),
        ({"layer": "1", "head": "0"}, pytest.approx(0.5)),
    ]
    assert r.top(1, "largest")[0][1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="by='biggest'"):
        r.top(1, "biggest")


def test_where_label_writes_heads_as_papers_do():
    assert where_label({"layer": "18", "head": "6"}) == "L18H6"
    assert where_label({"layer": "3", "pos": "5: Mary", "head": "1"}) == "L3H1 @ 5: Mary"
    assert where_label({"layer": "2"}) == "L2"


def test_cli_prints_the_reading_and_the_signed_top(tmp_path):
    runner = CliRunner()
    args = ["patch", "induction-2l", "--by", "layer,head", "--out", str(tmp_path)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    reading = next(i for i, line in enumerate(lines) if "no effect =" in line)
    assert "+ means the component carries the behaviour" in lines[reading]
    assert lines[reading + 1].startswith("top 5 by largest |effect|")
    assert lines[reading + 2].split()[0] == "L0H3" and "effect -" in lines[reading + 2]
    as_json = runner.invoke(app, [*args, "--json", "--rank", "largest", "--top", "2"])
    info = json.loads(as_json.stdout)
    assert info["rank"] == "largest" and len(info["top"]) == 2
    assert info["top"][0]["label"] != "L0H3" and "effect" in info["top"][0]
    assert info["no_effect"] == pytest.approx(info["provenance"]["corrupted_metric"])
    shown_run = runner.invoke(app, ["runs", "show", info["run"], "--out", str(tmp_path)])
    assert shown_run.exit_code == 0 and "no effect =" in shown_run.stdout
    assert not shown_run.stdout.lstrip().startswith("{")  # readable, not JSON
    bad = runner.invoke(app, [*args, "--rank", "biggest"])
    assert bad.exit_code == 2 and "--rank" in bad.output
