import json

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


def test_pathways_command_stores_a_graph_run(tmp_path):
    from interp.circuit_graph import CircuitGraph
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
    assert "faithfulness" in out.output and "head.3.2" in out.output
    bad = runner.invoke(app, ["discover", "--method", "magic", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "EAP, EAP-IG or ACDC" in bad.output
    listed = runner.invoke(app, ["circuits", "list", "--json"])
    assert "induction-2l-heads" in {r["name"] for r in json.loads(listed.stdout)}
    bad = runner.invoke(app, ["circuits", "check", "nope"])
    assert bad.exit_code == 2 and "entries:" in bad.output


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
