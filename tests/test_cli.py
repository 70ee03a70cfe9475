import json

from typer.testing import CliRunner

from interp.cli import app

runner = CliRunner()


def test_summary_json_finds_the_induction_head():
    out = runner.invoke(app, ["summary", "induction-2l", "--device", "cpu", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["induction_heads"][0]["head"].startswith("L1H")
    assert report["induction_heads"][0]["score"] >= 0.4
    assert (
        report["repeated_tokens_loss"]["second_copy"] < report["repeated_tokens_loss"]["first_copy"]
    )


def test_summary_text():
    out = runner.invoke(app, ["summary", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert "Induction heads" in out.output and "L1H" in out.output


def test_models_lists_organisms_and_smollm2():
    out = runner.invoke(app, ["models"])
    assert out.exit_code == 0
    for name in ["induction-2l", "reasoning-base", "reasoning-tuned", "smollm2-135m"]:
        assert name in out.output


def test_bad_model_spec_exits_2_with_the_close_match():
    out = runner.invoke(app, ["summary", "inductoin-2l", "--device", "cpu"])
    assert out.exit_code == 2
    assert "induction-2l" in out.output


def test_unknown_organism_to_train():
    out = runner.invoke(app, ["organisms", "train", "nope"])
    assert out.exit_code == 2 and "known:" in out.output
