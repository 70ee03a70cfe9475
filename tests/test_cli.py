import json

import pytest
from typer.testing import CliRunner

from interp.cli import app

runner = CliRunner()


def test_summary_json_finds_the_induction_head():
    out = runner.invoke(app, ["summary", "induction-2l", "--device", "cpu", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
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


def test_patch_writes_a_run_that_reopens(tmp_path):
    from interp.store import load_run

    out = runner.invoke(
        app,
        [
            "patch",
            "induction-2l",
            "--site",
            "z",
            "--by",
            "layer,head",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    result = load_run(report["run"], tmp_path)
    assert result.axes == ("layer", "head") and result.provenance["site"] == "z"
    assert (tmp_path / report["run"] / "plot.html").exists()
    listed = runner.invoke(app, ["runs", "list", "--out", str(tmp_path), "--json"])
    assert json.loads(listed.stdout)[0]["id"] == report["run"]
    shown = runner.invoke(app, ["runs", "show", report["run"], "--out", str(tmp_path)])
    assert shown.exit_code == 0 and f"run {report['run']}: patch_sweep" in shown.stdout
    shown = runner.invoke(app, ["runs", "show", report["run"], "--out", str(tmp_path), "--json"])
    assert json.loads(shown.stdout)["metric"] == result.metric


def test_heads_command_and_bad_options(tmp_path):
    out = runner.invoke(
        app, ["heads", "--score", "previous-token", "--device", "cpu", "--out", str(tmp_path)]
    )
    assert out.exit_code == 0 and "\n  L0H3 " in out.output
    bad = runner.invoke(app, ["heads", "--score", "bigram", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "is not accepted" in bad.output
    bad = runner.invoke(app, ["patch", "--site", "mlp", "--device", "cpu", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "cannot be patched" in bad.output
    bad = runner.invoke(
        app, ["patch", "--task", "arithmetic", "--device", "cpu", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "shipped tasks" in bad.output
    bad = runner.invoke(app, ["runs", "show", "nope", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "no run 'nope'" in bad.output


def test_read_only_runs_folder_is_a_clear_error_and_loses_nothing(tmp_path):
    import os

    first = runner.invoke(app, ["heads", "--device", "cpu", "--out", str(tmp_path), "--json"])
    run = json.loads(first.stdout)["run"]
    os.chmod(tmp_path, 0o555)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions; nothing to check then
            return
        out = runner.invoke(app, ["heads", "--device", "cpu", "--out", str(tmp_path)])
        assert out.exit_code == 1 and "cannot write to the runs folder" in out.output
    finally:
        os.chmod(tmp_path, 0o755)
    assert (tmp_path / run / "result.json").exists()


def test_path_patch_and_attribute_commands(tmp_path):
    out = runner.invoke(
        app,
        ["path-patch", "--receivers", "q:1:0", "--device", "cpu", "--out", str(tmp_path), "--json"],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["provenance"]["receivers"] == [["q", 1, 0]]
    bad = runner.invoke(
        app, ["path-patch", "--receivers", "q:9:0", "--device", "cpu", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "out of range" in bad.output
    out = runner.invoke(
        app,
        [
            "attribute",
            "--site",
            "attn_out",
            "--compare",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert out.exit_code == 0 and "pearson" in out.output


def test_path_patch_at_positions(tmp_path):
    """The previous-token head L0H3 reaches induction-2l's induction keys at the looked-up token
    (IO, the answer's earlier copy); positions are checked before the model loads, and refused
    in one line."""
    keys = "k:1:0,k:1:1,k:1:2"
    common = ["--device", "cpu", "--out", str(tmp_path)]
    out = runner.invoke(
        app, ["path-patch", "--receivers", keys, "--receiver-pos", "IO", *common, "--json"]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["provenance"]["receiver_positions"] == ["IO"]
    assert report["provenance"]["sender_positions"] == "all"
    assert report["top"][0]["label"] == "L0H3" and report["top"][0]["effect"] < -10
    assert "into k of L1H0, k of L1H1, k of L1H2 at position IO" in report["reading"]
    positions = ["--sender-pos", "-1,2", "--receiver-pos", "-1"]
    out = runner.invoke(app, ["path-patch", "--receivers", keys, *positions, *common])
    assert out.exit_code == 0, out.output
    assert "output at positions -1, 2 (prompt 0:" in out.stdout
    refusals = [
        (["--receivers", keys, "--sender-pos", "x"], "--sender-pos 'x' is not accepted"),
        (["--receivers", keys, "--sender-pos", "2,2"], "names '2' twice"),
        (["--receiver-pos", "end"], "--receiver-pos 'end' needs head receivers"),
        (["--receivers", keys, "--receiver-pos", "S2"], "which this task does not have"),
        (["--receivers", keys, "--sender-pos", "40"], "--sender-pos [40] holds 40, out of range"),
    ]
    for args, message in refusals:
        bad = runner.invoke(app, ["path-patch", *args, *common])
        assert bad.exit_code == 2 and message in bad.output, bad.output
        assert bad.output.startswith("error: ") and bad.output.count("\n") == 1


def test_pathways_command_stores_a_graph_run(tmp_path):
    from interp.graph import CircuitGraph
    from interp.store import list_runs, load_run

    out = runner.invoke(
        app, ["pathways", "--depth", "1", "--device", "cpu", "--out", str(tmp_path), "--json"]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    graph = load_run(report["run"], tmp_path)
    assert isinstance(graph, CircuitGraph) and graph.n_edges == report["edges"] > 0
    assert report["top"][0]["source"].startswith(("head.1.", "token."))
    viewer = json.loads((tmp_path / report["run"] / "viewer.json").read_text())
    assert {"metadata", "nodes", "links"} <= set(viewer)
    assert list_runs(tmp_path)[0]["metric"] == "circuit graph"
    shown = runner.invoke(app, ["runs", "show", report["run"], "--out", str(tmp_path), "--json"])
    assert "top_edges" in json.loads(shown.stdout)
    shown = runner.invoke(app, ["runs", "show", report["run"], "--out", str(tmp_path)])
    assert "strongest edges" in shown.stdout
    bad = runner.invoke(app, ["pathways", "--prompt", "   ", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "non-empty" in bad.output


def test_copy_suppression_scores_from_the_cli(tmp_path):
    out = runner.invoke(
        app, ["heads", "reasoning-tuned", "--score", "copy-suppression", "--out", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("copy suppression") and lines[3].split()[0] == "L2H2"


def test_discover_and_the_catalogue_commands(tmp_path):
    out = runner.invoke(
        app,
        ["discover", "reasoning-tuned", "--task", "variable-tracking", "--top-n", "30",
         "--device", "cpu", "--out", str(tmp_path)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "faithfulness" in out.output and "L3H2" in out.output
    bad = runner.invoke(app, ["discover", "--method", "magic", "--out", str(tmp_path)])
    assert (
        bad.exit_code == 2
        and "EAP, EAP-IG, EAP-IG-activations, ACDC, edge-pruning or head-patching" in bad.output
    )
    listed = runner.invoke(app, ["circuits", "list", "--json"])
    assert "induction-2l-heads" in {r["name"] for r in json.loads(listed.stdout)}
    bad = runner.invoke(app, ["circuits", "check", "nope"])
    assert bad.exit_code == 2 and "entries:" in bad.output


def test_discover_by_edge_pruning_reports_the_circuits_own_faithfulness(tmp_path):
    from interp.discovery import faithfulness
    from interp.models import load_model
    from interp.store import load_run
    from interp.tasks import induction_task

    out = runner.invoke(
        app,
        ["discover", "induction-2l", "--task", "induction", "--n", "4", "--method",
         "edge-pruning", "--top-n", "32", "--steps", "40", "--out", str(tmp_path), "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "estimate: edge-pruning: 40 masked forward+backward passes" in out.stderr
    report = json.loads(out.stdout)
    circuit = load_run(report["run"], tmp_path)
    assert 16 <= circuit.n_edges <= 32  # the 32 most probable, less those off input-logit paths
    assert circuit.provenance["edge_pruning"]["steps"] == 40
    model = load_model("induction-2l")
    again = faithfulness(model, induction_task(model, n=4), circuit)
    for how, value in zip(again.labels["ablation"], again.values.tolist(), strict=True):
        assert circuit.provenance["faithfulness"][how] == pytest.approx(value, abs=1e-5)


def test_attribution_graph_command(tmp_path):
    prompt = (
        "def parse_header(line):\n    return line.strip()\n\nx = parse_header(line)\ny = parse_"
    )
    out = runner.invoke(
        app, ["graph", prompt, "--max-feature-nodes", "200", "--out", str(tmp_path), "--json"]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    kinds = {e["source"].split(".")[0] for e in report["top"]}
    assert report["edges"] > 0 and kinds <= {"token", "feature", "error"}
    bad = runner.invoke(app, ["graph", prompt, "--node-threshold", "1.5", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "node_threshold" in bad.output
    bad = runner.invoke(app, ["graph", prompt, "--transcoders", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "no transcoder folder" in bad.output
    bad = runner.invoke(app, ["train", "transcoder", "gpt9"])
    assert bad.exit_code == 2 and "recipes:" in bad.output
