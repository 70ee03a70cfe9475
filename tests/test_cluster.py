"""Sweeps on a local Ray cluster of two worker processes (interp.sweeps).

The gathered Result must equal a plain loop over the same shards in this process, also when a
worker process is SIGKILLed mid-sweep (Ray retries its task) and when an interrupted sweep is
rerun (the shards stored in the sweep folder are reused, only the others are computed).
"""

import json
import os
import signal
import sys
import threading
import time

import pytest
import torch
from typer.testing import CliRunner

from interp.sweeps import SweepFolder, connect, gather, plan, run_shard, sweep

# heavy enough (~1 s a shard on a quiet core) that a worker can be caught mid-shard
TASK_ARGS = {"n": 16}
SEEDS = [0, 1, 2, 3]


def _plan():
    return plan(
        "patch", "induction-2l", task="induction", task_args=TASK_ARGS, seeds=SEEDS, normalize=True
    )


@pytest.fixture(scope="module")
def cluster(request):
    import ray

    if ray.is_initialized():
        ray.shutdown()
    started = time.perf_counter()
    connect("local", workers=2)
    request.addfinalizer(ray.shutdown)
    print(f"\nlocal Ray cluster started in {time.perf_counter() - started:.1f} s")
    return ray


@pytest.fixture(scope="module")
def local_loop():
    """The same shards computed one after another in this process, and how long that took."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray worker runs (one CPU a task): a like-for-like timing
    try:
        run_shard(_plan().shards[0], "cpu")  # load the model first, as a warm worker holds it
        started = time.perf_counter()
        p = _plan()
        result = gather([run_shard(s, "cpu") for s in p.shards], p.axes)
        return result, time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)


def _same(a, b):
    assert a.axes == b.axes and a.labels == b.labels and a.metric == b.metric
    torch.testing.assert_close(a.values, b.values, rtol=0, atol=1e-6)


def test_killed_worker_still_gives_the_local_loops_result(cluster, local_loop, tmp_path):
    folder = SweepFolder(tmp_path / "sweep")
    outcome = {}

    def run():
        try:
            outcome["result"] = sweep(_plan(), out=folder.path, device="cpu", progress=False)
        except BaseException as err:  # reported by the assertion below
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not folder.running() and time.monotonic() < deadline:
        time.sleep(0.002)
    marks = folder.running()
    assert marks, "no shard was marked running within 120 s"
    victim = marks[0]
    os.kill(victim["pid"], signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    _same(result, local_loop[0])
    # the killed worker's shard was computed again, by another process
    workers = {
        s["shard"]["args"]["task_args"]["seed"]: s["worker"]["pid"]
        for s in result.provenance["shards"]
    }
    killed = _plan().shards[[s.key for s in _plan().shards].index(victim["key"])]
    assert workers[killed.args["task_args"]["seed"]] != victim["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(victim["pid"], 0)


def test_sweep_on_ray_equals_the_local_loop(cluster, local_loop, tmp_path):
    started = time.perf_counter()
    result = sweep(_plan(), out=tmp_path / "sweep", device="cpu", progress=False)
    took = time.perf_counter() - started
    print(f"\nray sweep of {len(SEEDS)} shards: {took:.1f} s; local loop {local_loop[1]:.1f} s")
    _same(result, local_loop[0])
    assert result.axes == ("prompt_set", "layer", "pos", "head")
    assert result.labels["prompt_set"] == ["seed=0", "seed=1", "seed=2", "seed=3"]
    # each prompt set's own baselines travel with it, in the plan's order
    local = [s["corrupted_metric"] for s in local_loop[0].provenance["shards"]]
    assert [s["corrupted_metric"] for s in result.provenance["shards"]] == local
    assert len(set(local)) == len(SEEDS)
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [s["key"] for s in saved["shards"]] == [s.key for s in _plan().shards]


def test_rerun_after_an_interrupted_sweep_reuses_finished_shards(cluster, local_loop, tmp_path):
    out = tmp_path / "sweep"

    def interrupt(done, total):
        if done >= 2:
            raise KeyboardInterrupt  # as Ctrl-C would, in the driver's loop

    with pytest.raises(KeyboardInterrupt):
        sweep(_plan(), out=out, device="cpu", progress=interrupt)
    stored = sorted(p.stem for p in (out / "shards").glob("*.json"))
    assert 2 <= len(stored) < len(SEEDS)
    assert not (out / "result.json").exists()
    result = sweep(_plan(), out=out, device="cpu", progress=False)
    info = result.provenance["sweep"]
    assert sorted(info["reused"]) == stored
    assert len(info["computed"]) == len(SEEDS) - len(stored)
    assert not set(info["computed"]) & set(stored)
    _same(result, local_loop[0])
    again = sweep(_plan(), out=out, device="cpu", progress=False)  # all on disk: nothing to run
    assert again.provenance["sweep"]["computed"] == []
    _same(again, local_loop[0])


def test_a_failing_shard_stops_the_sweep_with_its_own_error(cluster, tmp_path):
    from interp.models import ModelSpecError

    p = plan("heads", ["induction-2l", "inductoin-2l"])
    with pytest.raises(ModelSpecError, match="unknown model spec 'inductoin-2l'.*induction-2l"):
        sweep(p, out=tmp_path, device="cpu", progress=False)


def test_cli_sweeps_head_scores_over_models(cluster, tmp_path):
    from interp import load_model
    from interp.cli import app
    from interp.heads import score_heads

    out = CliRunner().invoke(
        app,
        ["sweep", "heads", "reasoning-base", "reasoning-tuned", "--score", "previous-token",
         "--out", str(tmp_path / "sweep"), "--runs", str(tmp_path / "runs"), "--json", "-q",
         "--device", "cpu"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    stored = SweepFolder(tmp_path / "sweep")
    from interp.result import Result

    result = Result.load(stored.path / "result")
    assert report["axes"] == ["model", "layer", "head"] == list(result.axes)
    assert result.labels["model"] == ["reasoning-base", "reasoning-tuned"]
    for i, name in enumerate(["reasoning-base", "reasoning-tuned"]):
        local = score_heads(load_model(name, device="cpu"), "previous-token")
        torch.testing.assert_close(result.values[i], local.values, rtol=0, atol=1e-6)
    assert not torch.equal(result.values[0], result.values[1])


def test_eap_shards_gather_to_stacked_edge_scores(induction_model):
    from interp.discovery import edge_scores
    from interp.tasks import make_task

    p = plan("eap", "induction-2l", task="induction", task_args={"n": 4}, seeds=[3, 4])
    result = gather([run_shard(s, "cpu") for s in p.shards], p.axes)
    assert result.axes == ("prompt_set", "receiver", "sender")
    for i, seed in enumerate([3, 4]):
        local = edge_scores(
            induction_model, make_task("induction", induction_model, n=4, seed=seed)
        )
        torch.testing.assert_close(
            result.values[i], local.values, rtol=0, atol=1e-6, equal_nan=True
        )
        assert result.labels["receiver"] == local.labels["receiver"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: plan("pach", "induction-2l"), "analysis='pach' is not known; use one of patch"),
        (
            lambda: plan("patch", "induction-2l", task="induction", sight="z"),
            "sight is not an argument",
        ),
        (lambda: plan("patch", "induction-2l", task="nope"), "task='nope' is not a shipped task"),
        (
            lambda: plan("patch", "induction-2l", task="induction", task_args={"hops": 2}),
            "task_args hops is not a setting of task 'induction'",
        ),
        (lambda: plan("heads", "induction-2l", seeds=[0]), "analysis 'heads' reads no task"),
        (lambda: plan("patch", "m", task="induction", seeds=[1, 1]), "give distinct integers"),
        (lambda: plan("patch", "m", task="induction", site="zz"), "site='zz' cannot be patched"),
        (lambda: plan("eap", "m", task="induction", method="x"), "method='x' is not accepted"),
        (lambda: plan("heads", "m", score="induction", prompt=torch.ones(2)), "is not JSON-like"),
        (lambda: plan("heads", []), "give one or more model specs"),
        (lambda: sweep(_plan(), workers=0), "workers=0 is not accepted"),
        (lambda: connect("local", workers=-1), "workers=-1 is not accepted"),
    ],
)
def test_bad_input_is_refused_before_any_worker_starts(call, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        call()


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'interp\[cluster\]'"):
        connect("local", workers=2)


def test_plan_keys_name_the_work_not_the_grid():
    a = plan("patch", "induction-2l", task="induction", seeds=[0, 1])
    b = plan(
        "patch",
        "induction-2l",
        task="induction",
        seeds=[1, 5],
        site="z",
        by=("layer", "pos", "head"),
    )
    assert a.shards[1].key == b.shards[0].key  # defaults filled in, tuples as lists
    assert a.shards[0].key != b.shards[1].key
    assert a.shards[1].where == {"prompt_set": "seed=1"}


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["heads", "--seeds", "0,1"], "analysis 'heads' reads no task"),
        (["patch", "--seeds", "0,x"], "--seeds '0,x' is not accepted"),
        (["eap", "--site", "z"], "site is not an argument of analysis 'eap'"),
        (["patch", "--task", "nope"], "--task 'nope' is not a shipped task"),
        (["pach"], "analysis='pach' is not known"),
    ],
)
def test_cli_refuses_a_bad_sweep_in_one_line(argv, expected, tmp_path):
    from interp.cli import app

    out = CliRunner().invoke(app, ["sweep", *argv, "--out", str(tmp_path)])
    assert out.exit_code == 2, out.output
    assert out.stderr.startswith("error: ") and expected in out.stderr, out.stderr
