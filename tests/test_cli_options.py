"""The CLI's shared conventions: task settings, cost estimates and progress on stderr, plain help,
the model as the first positional argument, heads as ``L1H0`` and tokens as strings."""

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from interp.catalogue import entries
from interp.cli import app
from interp.organisms import ORGANISMS

runner = CliRunner()
ESTIMATE = re.compile(
    r"^estimate: .+; about [\d,]+ forward passes of [\d.e+-]+ s \(timed\) = about [\d.]+ (s|min|h)$"
)
PROMPT = "def parse_header(line):\n    return line.strip()\n\nx = parse_header(line)\ny = parse_"


def _commands(group, path=()):
    """Every command path of a click group, e.g. ``("circuits", "list")``."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name)


COMMANDS = sorted(_commands(typer.main.get_command(app)))


def test_every_command_is_listed():
    assert {("graph",), ("discover",), ("path-patch",), ("runs", "show")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_has_no_type_clutter(path):
    out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    assert f"{' '.join(path)} [OPTIONS]" in out.output and "--help" in out.output
    assert "<bool>" not in out.output and "<str>" not in out.output, out.output


def test_numbers_keep_their_type_and_range_in_help():
    out = runner.invoke(app, ["patch", "--help"], env={"COLUMNS": "120"})
    assert re.search(r"--top\s+INT \[x>=1\]", out.output), out.output
    assert re.search(r"--period\s+INT \[x>=3\]", out.output), out.output


def _organism_entries():
    return [e for e in entries() if e.model in ORGANISMS and e.level == "heads"]


@pytest.mark.parametrize("entry", _organism_entries(), ids=lambda e: e.name)
def test_the_cli_rebuilds_a_catalogue_entrys_task(entry, monkeypatch, tmp_path):
    """``--n/--seed/--period/--hops/--metric`` from entry.json give the entry's very prompts."""
    import interp.tasks
    from interp.models import load_model

    built = []
    make_task = interp.tasks.make_task

    def spy(name, model, **kwargs):
        built.append((make_task(name, model, **kwargs), model))
        return built[-1][0]

    monkeypatch.setattr(interp.tasks, "make_task", spy)
    spec = entry.task_spec
    settings = {**spec.args, "metric": spec.metric}
    argv = [f for k, v in settings.items() for f in (f"--{k}", str(v))]
    out = runner.invoke(
        app,
        ["patch", entry.model, "--task", spec.name, *argv, "--site", "resid_pre",
         "--by", "layer", "--quiet", "--json", "--out", str(tmp_path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    ((task, used),) = built
    model = load_model(entry.model, device="cpu")
    stored = entry.task(model).tokens(model)
    rebuilt = task.tokens(used)
    assert rebuilt.clean.shape[0] == spec.args["n"]
    assert rebuilt.clean.tolist() == stored.clean.tolist()
    assert rebuilt.corrupted.tolist() == stored.corrupted.tolist()
    assert rebuilt.answers.tolist() == stored.answers.tolist()
    assert model.to_string(rebuilt.clean[0]) == entry.example.clean


def test_long_commands_estimate_and_show_progress_on_stderr_only(tmp_path):
    out = runner.invoke(
        app, ["discover", "--n", "4", "--top-n", "10", "--out", str(tmp_path), "--json"]
    )
    assert out.exit_code == 0, out.output
    lines = out.stderr.splitlines()
    assert ESTIMATE.match(lines[0]), out.stderr
    assert "EAP-IG: 5 gradient passes" in lines[0]
    # the progress bars: a bar that is left off when done (leave=False) shows its last
    # refresh, which depends on timing, so only the total is certain
    assert re.search(r"faithfulness: +\d+%\|.*\| \d/6 ", out.stderr), out.stderr
    assert json.loads(out.stdout)["edges"] > 0  # stdout is the JSON alone
    assert "estimate:" not in out.stdout and "it/s" not in out.stdout

    out = runner.invoke(app, ["patch", "--by", "layer,head", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert ESTIMATE.match(out.stderr.splitlines()[0]), out.stderr
    assert "estimate: 8 patches of 8 prompts" in out.stderr  # 2 layers x 4 heads
    assert "patching z" in out.stderr
    assert "%|" not in out.stdout and "estimate:" not in out.stdout
    assert out.stdout.startswith("logit_diff over layer x head")

    quiet = runner.invoke(app, ["patch", "--by", "layer", "--quiet", "--out", str(tmp_path)])
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr
    assert "top 5" in quiet.stdout


def test_graph_takes_the_model_first_and_prints_tokens_as_strings(tmp_path):
    argv = ["--max-feature-nodes", "40", "--quiet", "--out", str(tmp_path)]
    out = runner.invoke(app, ["graph", "induction-2l", PROMPT, *argv])
    assert out.exit_code == 0, out.output
    assert out.stderr == ""
    edges = out.stdout.split("strongest edges:\n")[1].splitlines()[:-1]
    assert edges and not any("token." in e or "logit." in e for e in edges), edges
    assert any("'header'" in e for e in edges), edges  # a token of the prompt, as its string
    old = runner.invoke(
        app, ["graph", "--model", "induction-2l", PROMPT, "--max-feature-nodes", "40", "--out",
              str(tmp_path), "--json"],
    )  # fmt: skip
    assert old.exit_code == 0, old.output
    assert "--model is deprecated" in old.stderr
    report = json.loads(old.stdout)
    assert report["top"][0]["source_name"].startswith("'")
    bare = runner.invoke(app, ["graph", PROMPT, *argv, "--json"])  # the default model
    assert json.loads(bare.stdout)["edges"] == report["edges"]


def test_discovered_heads_are_written_like_l1h0(tmp_path):
    out = runner.invoke(
        app,
        ["discover", "reasoning-tuned", "--task", "variable-tracking", "--n", "8", "--top-n",
         "20", "--quiet", "--out", str(tmp_path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    edges = out.stdout.split("strongest edges:\n")[1]
    assert re.search(r"\bL\d+H\d+\b", edges) and "head." not in edges, edges
    run = out.stdout.split("saved run ")[1].split()[0]
    shown = runner.invoke(app, ["runs", "show", run, "--out", str(tmp_path)])
    assert re.search(r"\bL\d+H\d+\b", shown.stdout) and "head." not in shown.stdout
