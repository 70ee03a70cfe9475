"""Every CLI refusal is one line on stderr, ``error: ...``, with exit code 2, never a traceback.

Most cases run in-process with typer's CliRunner; one runs the real entry point in a subprocess.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interp.cli import app
from interp.organisms import ORGANISMS

runner = CliRunner()
ORGANISM = ORGANISMS["induction-2l"].path
TRANSCODERS = Path(__file__).resolve().parent.parent / "interp/dictionaries/weights/induction-2l"


def assert_one_line_error(result, *expected: str) -> str:
    """Exit code 2, exactly one ``error:`` line on stderr naming ``expected``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if the command loads a model: these refusals must come before."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded a model before refusing its arguments")

    monkeypatch.setattr("interp.models.load_model", refuse)


@pytest.fixture
def folders(tmp_path):
    """Broken inputs a user might point the CLI at."""
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(ORGANISM / "config.json", config_only)
    random_files = tmp_path / "random"
    random_files.mkdir()
    (random_files / "a.bin").write_bytes(bytes(range(200)))
    (random_files / "b.txt").write_text("hello")
    truncated = tmp_path / "truncated"
    shutil.copytree(ORGANISM, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    transcoders = tmp_path / "transcoders"
    shutil.copytree(TRANSCODERS, transcoders)
    (transcoders / "layer_0" / "cfg.json").write_text("{not json")
    runs = tmp_path / "runs"
    (runs / "broken-run").mkdir(parents=True)
    (runs / "broken-run" / "result.json").write_text('{"metric": ')
    return {
        "config_only": str(config_only),
        "random": str(random_files),
        "truncated": str(truncated),
        "missing": str(tmp_path / "nowhere"),
        "transcoders": str(transcoders),
        "runs": str(runs),
    }


# refused before any model loads: (id, argv, text the error line must hold)
EARLY = [
    ("graph-empty-prompt", ["graph", ""], "prompt is empty"),
    ("graph-blank-prompt", ["graph", "   "], "prompt is empty"),
    ("heads-score", ["heads", "--score", "nonsense"], "--score 'nonsense'"),
    ("patch-site", ["patch", "--site", "nonsense"], "--site 'nonsense' cannot be patched"),
    ("patch-by", ["patch", "--by", "layer,foo"], "--by 'layer,foo'"),
    ("patch-by-no-layer", ["patch", "--by", "pos"], "with layer among them"),
    ("patch-by-site", ["patch", "--site", "mlp_out", "--by", "layer,head"], "layer,pos"),
    ("patch-task", ["patch", "--task", "arithmetic"], "--task 'arithmetic' is not a shipped"),
    ("patch-direction", ["patch", "--direction", "sideways"], "use denoise or noise"),
    ("path-patch-receivers", ["path-patch", "--receivers", "q:1"], "kind:layer:head"),
    ("path-patch-negative", ["path-patch", "--receivers", "q:-1:0"], "--receivers 'q:-1:0'"),
    ("path-patch-task", ["path-patch", "--task", "nope"], "--task 'nope'"),
    ("attribute-site", ["attribute", "--site", "mlp"], "--site 'mlp'"),
    (
        "discover-method",
        ["discover", "--method", "magic"],
        "EAP, EAP-IG, EAP-IG-activations, ACDC, edge-pruning or head-patching",
    ),
    (
        "train-layers-organism",
        ["train", "transcoder", "induction-2l", "--layers", "1"],
        "every MLP",
    ),
    ("train-layers-bad", ["train", "transcoder", "smollm2-135m", "--layers", "x"], "3,15,26"),
    ("discover-task", ["discover", "--task", "nope"], "shipped tasks: induction"),
    (
        "patch-setting-of-another-task",
        ["patch", "--task", "ioi", "--period", "5"],
        "--period is not a setting of task 'ioi'; it takes --n, --seed, --metric, --template",
    ),
    ("path-patch-hops", ["path-patch", "--hops", "2"], "it takes --n, --period, --seed"),
    ("attribute-metric", ["attribute", "--metric", "acc"], "--metric 'acc' is not accepted"),
    ("discover-template", ["discover", "--task", "ioi", "--template", "6"], "range 0..5"),
    ("discover-period-min", ["discover", "--period", "2"], "'--period'"),
    ("graph-three-args", ["graph", "a", "b", "c"], "a model and one prompt, not 3"),
    ("summary-negative-top", ["summary", "--top", "-1"], "'--top'"),
    ("graph-zero-nodes", ["graph", "ab", "--max-feature-nodes", "0"], "--max-feature-nodes"),
    ("pathways-depth", ["pathways", "--depth", "0"], "'--depth'"),
    ("app-port", ["app", "--port", "0"], "'--port'"),
    ("unknown-option", ["summary", "--bogus"], "--bogus"),
    ("unknown-command", ["sumary"], "sumary"),
    ("missing-argument", ["runs", "show"], "Missing argument 'run_id'"),
    ("organism", ["organisms", "train", "nope"], "known: induction-2l"),
]


@pytest.mark.parametrize(("name", "argv", "expected"), EARLY, ids=[c[0] for c in EARLY])
def test_refused_before_the_model_loads(no_model_load, name, argv, expected):
    assert_one_line_error(runner.invoke(app, argv), expected)


# refused while loading the model or its data: (id, argv with {folder} names, expected text)
LOADING = [
    ("device-tpu", ["summary", "--device", "tpu"], "device='tpu'"),
    ("device-meta", ["summary", "--device", "meta"], "device='meta'"),
    ("device-cuda-index", ["summary", "--device", "cuda:99"], "device='cuda:99'"),
    ("config-only", ["summary", "{config_only}", "--device", "cpu"], "no weights"),
    ("random-files", ["summary", "{random}", "--device", "cpu"], "no config.json"),
    ("truncated", ["summary", "{truncated}", "--device", "cpu"], "model.safetensors"),
    ("missing-path", ["heads", "{missing}", "--device", "cpu"], "no file or folder at"),
    ("misspelt-model", ["summary", "inductoin-2l", "--device", "cpu"], "induction-2l"),
    (
        "graph-transcoders",
        ["graph", "ab", "--device", "cpu", "--transcoders", "{transcoders}"],
        "layer_0/cfg.json",
    ),
    (
        "graph-no-transcoders",
        ["graph", "ab", "--device", "cpu", "--transcoders", "{missing}"],
        "no transcoder folder",
    ),
    ("graph-threshold", ["graph", "ab", "--device", "cpu", "--node-threshold", "5"], "5"),
    ("runs-show-missing", ["runs", "show", "nope", "--out", "{runs}"], "nope"),
    ("runs-show-broken", ["runs", "show", "broken-run", "--out", "{runs}"], "result.json"),
    ("circuits-check", ["circuits", "check", "nope"], "no catalogue entry 'nope'"),
]


@pytest.mark.parametrize(("name", "argv", "expected"), LOADING, ids=[c[0] for c in LOADING])
def test_loading_refusals_are_one_line(folders, name, argv, expected):
    argv = [a.format(**folders) for a in argv]
    assert_one_line_error(runner.invoke(app, argv), expected.format(**folders))


def test_a_bare_group_still_prints_its_help():
    result = runner.invoke(app, ["runs"])
    assert "Usage" in result.output and "error:" not in result.output


def test_refusals_from_outside_interp_name_their_type(monkeypatch):
    """A ValueError raised by a dependency is one line too, with its type and the debug hint."""

    def deep_inside(*args, **kwargs):
        raise ValueError("something\nmultiline")

    monkeypatch.setattr("interp.models.load_model", deep_inside)
    line = assert_one_line_error(runner.invoke(app, ["summary"]))
    assert line == "error: ValueError: something multiline (INTERP_DEBUG=1 shows the traceback)"


def test_bugs_keep_their_traceback(monkeypatch):
    """An exception that is no refusal (here AttributeError) is not turned into a one-liner."""

    def buggy(*args, **kwargs):
        raise AttributeError("a real bug")

    monkeypatch.setattr("interp.models.load_model", buggy)
    result = runner.invoke(app, ["summary"])
    assert result.exit_code == 1 and isinstance(result.exception, AttributeError)
    assert "error:" not in result.stderr


def test_interp_debug_shows_the_refusal_as_an_exception(monkeypatch):
    monkeypatch.setenv("INTERP_DEBUG", "1")
    result = runner.invoke(app, ["summary", "--device", "tpu"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "device='tpu'" in str(result.exception)


def test_the_installed_entry_point_prints_one_line(tmp_path):
    """The real ``interp`` process (typer's own error printing included): one line, exit 2."""
    env = {**os.environ, "INTERP_DEBUG": ""}
    for argv, expected in [
        (["summary", "--device", "tpu"], "device='tpu'"),
        (["summary", "--top", "-1"], "'--top'"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-c", "from interp.cli import main; main()", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tmp_path,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
        assert proc.stdout == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["patch", "--site", "mlp_out", "--by", "layer,pos", "--direction", "noise"],
        ["path-patch", "--receivers", "q:1:0,v:1:2", "--task", "induction"],
        ["discover", "--method", "ACDC", "--task", "ioi"],
        ["discover", "--task", "ioi", "--template", "5", "--n", "4", "--seed", "1"],
        ["attribute", "--task", "variable-tracking", "--hops", "3", "--distractors", "0"],
        ["graph", "a b"],
        ["graph", "induction-2l", "a b"],
    ],
)
def test_valid_options_pass_the_early_checks(no_model_load, argv):
    """The control for EARLY: valid options get as far as loading the model."""
    result = runner.invoke(app, argv)
    assert isinstance(result.exception, AssertionError), result.output
    assert "loaded a model" in str(result.exception)
