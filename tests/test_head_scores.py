"""One registry of head scores: the CLI, the app and scripts offer the same names and numbers."""

import json

import pytest
import torch
from typer.testing import CliRunner

from interp import heads as H
from interp.cli import app
from interp.models import load_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model():
    return load_model("induction-2l")


@pytest.mark.tl4
def test_registry_scores_equal_the_functions_they_name(model):
    direct = {
        "induction": H.induction_scores(model),
        "previous-token": H.previous_token_scores(model),
        "duplicate-token": H.duplicate_token_scores(model),
        "bos": H.bos_scores(model),
        "entropy": H.attention_entropy(model),
        "ov-copying": H.ov_copying_scores(model)[0],
        "ov-copy-suppression": H.ov_copying_scores(model)[1],
    }
    for name, want in direct.items():
        got = H.score_heads(model, name)
        assert got.values.shape == (2, 4)
        torch.testing.assert_close(got.values, want.values, atol=0, rtol=0)
    tokens = model.to_tokens("a b c d e f a b c d e f")
    got = H.score_heads(model, "detector:previous_token_head", tokens)
    torch.testing.assert_close(
        got.values, H.detection_scores(model, tokens, "previous_token_head").values
    )
    # the previous-token head of this organism is L0H3, whichever door the score comes through
    assert H.score_heads(model, "previous-token").top(1)[0][0] == {"layer": "0", "head": "3"}


@pytest.mark.tl4
def test_unknown_score_and_missing_prompt_are_clear_errors(model):
    with pytest.raises(ValueError, match="'bigram' is not known; use one of induction"):
        H.score_heads(model, "bigram")
    with pytest.raises(ValueError, match="reads a prompt"):
        H.score_heads(model, "detector:induction_head")


def test_the_cli_offers_the_registry(tmp_path):  # the app's atlas: tests/app
    help_text = runner.invoke(app, ["heads", "--help"], terminal_width=400).output
    for name in ("previous-token", "ov-copy-suppression", "detector:induction_head"):
        assert name in help_text
    out = runner.invoke(
        app,
        [
            "heads",
            "--score",
            "detector:previous_token_head",
            "--prompt",
            "a b c a b c",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["top"][0]["label"] == "L0H3"
    missing = runner.invoke(app, ["heads", "--score", "detector:induction_head"])
    assert missing.exit_code == 2 and "--prompt" in missing.output
