"""``interp serve``: analyses run on a server by name, with results equal to a local run's.

One server on 127.0.0.1 (port 0) serves the shipped organism induction-2l from a thread. Clients
get Results and CircuitGraphs equal to the library functions' on the same model; the model's
queue runs jobs one at a time in order (positions seen while the model is held busy, start and
end times that do not overlap); a missing or wrong token is 401, a request over a limit 413
with the limit and the request's size, bad arguments 400 with the library's message.
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import json
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from typer.testing import CliRunner

from interp.cli import app
from interp.cost import patch_estimate
from interp.discovery import eap, extract, faithfulness
from interp.hooks import holding
from interp.patching import patch_sweep
from interp.path_patching import path_patch_sweep
from interp.serve import ANALYSES, Client, Limits, RemoteError, Server, pack, read_token, unpack
from interp.tasks import make_task

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOKEN = "test-token-8f3a"
MAX_PASSES, MAX_PROMPTS = 1000, 32


@pytest.fixture(scope="module")
def server(induction_model):
    srv = Server(
        {"induction-2l": induction_model},
        token=TOKEN,
        limits=Limits(max_passes=MAX_PASSES, max_prompts=MAX_PROMPTS),
        quiet=True,
    ).start()
    yield srv
    srv.close()


@pytest.fixture
def client(server):
    return Client(server.url, TOKEN)


def _batch(model, **settings):
    return make_task("induction", model, **settings).tokens(model)


def _same(remote, local):
    assert remote.axes == local.axes and remote.labels == local.labels
    assert remote.metric == local.metric
    torch.testing.assert_close(remote.values, local.values, atol=1e-6, rtol=0)


def test_two_clients_at_once_get_the_local_results(server, induction_model):
    m = induction_model
    out: dict[str, object] = {}

    def patch():
        out["patch"] = Client(server.url, TOKEN).patch(by=["layer", "head"], n=6)

    def path():
        out["path"] = Client(server.url, TOKEN).path_patch(sender_positions=["end"], seed=3)

    threads = [threading.Thread(target=patch), threading.Thread(target=path)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    local = patch_sweep(m, _batch(m, n=6), "z", ("layer", "head"), progress=False)
    _same(out["patch"], local)
    assert out["patch"].provenance == local.provenance  # the same model, task and settings
    local = path_patch_sweep(m, _batch(m, seed=3), sender_positions=["end"], progress=False)
    _same(out["path"], local)


def test_queue_runs_jobs_one_at_a_time_in_order(server, client, induction_model):
    """While the test holds the model, the worker has started job 1 and waits; jobs 2 and 3 wait
    in the queue at positions 0 and 1. Planning runs on the twin, so submitting does not wait."""
    with holding(induction_model):
        jobs = [client.submit("patch", by=["layer"], site="attn_out", seed=s) for s in range(3)]
        deadline = time.monotonic() + 10
        while client.job(jobs[0]["id"])["state"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        infos = [client.job(j["id"]) for j in jobs]
        assert [i["state"] for i in infos] == ["running", "queued", "queued"]
        assert [i["position"] for i in infos] == [None, 0, 1]
        start = time.monotonic()
    moved = client.job(jobs[2]["id"], wait=30)  # a long poll answers once the queue moves
    assert time.monotonic() - start < 20 and (moved["state"], moved["position"]) != ("queued", 1)
    ended = [client.wait(j["id"], timeout=60) for j in jobs]
    assert [e["state"] for e in ended] == ["done"] * 3
    for before, after in zip(ended, ended[1:]):
        assert before["ended"] <= after["started"]  # never two at once, first in first out
    m = induction_model
    local = patch_sweep(m, _batch(m, seed=2), "attn_out", ("layer",), progress=False)
    _same(client.result(jobs[2]["id"]), local)


def test_missing_or_wrong_token_is_401(server):
    assert Client(server.url, TOKEN).health()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        request = urllib.request.Request(server.url + "/v1/models", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 401
        assert "missing or wrong token" in json.loads(err.value.read())["error"]
    with pytest.raises(RemoteError, match="wrong token") as err:
        Client(server.url, "not-the-token").patch()
    assert err.value.status == 401


def test_too_big_requests_are_413_naming_the_limit_and_the_size(client, induction_model):
    with pytest.raises(RemoteError, match=r"has 40 prompts.*at most 32 \(its --max-prompts\)") as e:
        client.submit("patch", n=40)
    assert e.value.status == 413
    m = induction_model
    passes = patch_estimate(m, _batch(m, n=8, period=150), "z", ("layer", "pos", "head")).passes
    assert passes > MAX_PASSES  # the request below is over the limit by the local estimate
    with pytest.raises(RemoteError) as e:
        client.submit("patch", period=150)
    assert e.value.status == 413
    assert f"about {passes:,.0f} forward passes" in str(e.value)
    assert f"at most {MAX_PASSES:,} (its --max-passes)" in str(e.value)
    body = json.dumps({"analysis": "patch", "args": {"x": "y" * 2_000_000}}).encode()
    request = urllib.request.Request(
        client.url + "/v1/jobs", body, {"Authorization": f"Bearer {TOKEN}"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 413 and "at most 1,048,576" in json.loads(err.value.read())["error"]


@pytest.mark.parametrize(
    ("analysis", "args", "message"),
    [
        ("plot", {}, "analysis 'plot' is not known; analyses: patch, path_patch"),
        ("patch", {"site": "zz"}, "site='zz' is not accepted; use resid_pre"),
        ("patch", {"by": ["pos"], "site": "mlp_out"}, "by=['pos'] is not accepted for site"),
        ("patch", {"sites": "z"}, "patch takes no argument 'sites'; it takes task, n"),
        ("patch", {"hops": 2}, "hops is not a setting of task 'induction'"),
        ("patch", {"n": "8"}, "n='8' is not accepted; give an integer"),
        ("patch", {"model": "gpt2"}, "model='gpt2' is not served here; this server serves induct"),
        ("patch", {"task": "ioi"}, "only 0 one-token names; IOI needs 3"),  # the library's own
        ("path_patch", {"receivers": "q:9:0"}, "receivers"),
        ("discover", {"method": "magic"}, "method='magic' is not accepted; use EAP, EAP-IG"),
    ],
)
def test_bad_requests_are_400_with_the_message(client, analysis, args, message):
    with pytest.raises(RemoteError, match="") as err:
        client.submit(analysis, **args)
    assert err.value.status == 400 and message in str(err.value)


def test_failed_jobs_report_400_or_500_and_the_server_keeps_serving(
    client, induction_model, monkeypatch
):
    patch = ANALYSES["patch"]

    def refuses(*a, **k):
        raise ValueError("the library refuses this")

    def crashes(*a, **k):
        raise RuntimeError("a bug")

    for run, status, message in ((refuses, 400, "the library refuses this"), (crashes, 500, "")):
        monkeypatch.setitem(ANALYSES, "patch", dataclasses.replace(patch, run=run))
        with pytest.raises(RemoteError) as err:
            client.patch(by=["layer"])
        assert err.value.status == status and message in str(err.value)
    assert "internal error on the server: RuntimeError: a bug" in str(err.value)
    monkeypatch.setitem(ANALYSES, "patch", patch)
    m = induction_model
    _same(client.patch(by=["layer"]), patch_sweep(m, _batch(m), "z", ("layer",), progress=False))


def test_discover_sends_back_the_circuit_graph(client, induction_model):
    remote = client.discover(method="EAP", top_n=20, n=6)
    m = induction_model
    batch = _batch(m, n=6)
    local = extract(eap(m, batch, method="EAP"), top_n=20)
    faith = faithfulness(m, batch, local)
    assert [n.node_id for n in remote.nodes] == [n.node_id for n in local.nodes]
    assert remote.edge_methods == local.edge_methods
    torch.testing.assert_close(remote.edge_weight, local.edge_weight, atol=1e-6, rtol=0)
    assert torch.equal(remote.edge_index[0], local.edge_index[0])
    for ablation, value in zip(faith.labels["ablation"], faith.values.tolist(), strict=True):
        assert remote.provenance["faithfulness"][ablation] == pytest.approx(value, abs=1e-6)


def test_cancel_a_queued_job(client, induction_model):
    with holding(induction_model):
        first = client.submit("patch", by=["layer"])
        second = client.submit("patch", by=["layer"], seed=1)
        assert client.cancel(second["id"])["state"] == "cancelled"
    assert client.wait(first["id"], timeout=60)["state"] == "done"
    with pytest.raises(RemoteError, match="cancelled before it started") as err:
        client.result(second["id"])
    assert err.value.status == 409


def test_wire_refuses_an_archive_that_writes_elsewhere(client, induction_model):
    result = client.head_scores(score="previous-token")
    again = unpack(pack(result))
    assert torch.equal(again.values, result.values) and again.provenance == result.provenance
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../escape.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(ValueError, match="'../escape.json', not a plain file"):
        unpack(buffer.getvalue())


def _run_here_and_remote(server, tmp_path, *args: str) -> tuple[str, str]:
    """stdout of ``interp *args`` run here and with ``--remote``, each with its run id left out
    (the last line of a summary, the "run" entry of ``--json`` output)."""
    runner = CliRunner()
    args = (*args, "-q", "--out", str(tmp_path))
    local = runner.invoke(app, [*args, "--device", "cpu"])
    remote = runner.invoke(app, [*args, "--remote", server.url], env={"INTERP_TOKEN": TOKEN})
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    outputs = []
    for stdout in (local.stdout, remote.stdout):
        if stdout.startswith("{"):
            info = json.loads(stdout)
            assert info.pop("run")
            outputs.append(json.dumps(info, indent=1))
        else:
            *lines, saved = stdout.splitlines()
            assert saved.startswith("saved run "), stdout
            outputs.append("\n".join(lines))
    return outputs[0], outputs[1]


@pytest.mark.parametrize(
    "command",
    [
        "patch --by layer,head --n 6",
        "path-patch --receivers q:1:0,v:1:1 --sender-pos -2 --seed 3",
        "attribute --site attn_out --compare --n 6",
        "discover --method EAP --top-n 20 --n 6",
        "discover --method edge-pruning --level node --top-n 4 --steps 5 --json",
    ],
)
def test_cli_remote_prints_the_local_summary(server, tmp_path, command):
    local, remote = _run_here_and_remote(server, tmp_path, *command.split())
    assert remote == local and len(local.splitlines()) > 3


def test_cli_remote_errors_name_the_option(server, tmp_path):
    runner = CliRunner()
    env = {"INTERP_TOKEN": TOKEN}
    args = ["patch", "--by", "layer", "-q", "--out", str(tmp_path), "--remote", server.url]
    wrong = runner.invoke(app, args, env={"INTERP_TOKEN": "nope"})
    assert wrong.exit_code == 2 and "error: missing or wrong token" in wrong.output
    none = runner.invoke(app, [*args[:-1], "ftp://x"], env=env)
    assert none.exit_code == 2 and "url='ftp://x' is not accepted" in none.output
    here = runner.invoke(app, ["attribute", "--device", "cpu", "--remote", server.url], env=env)
    assert here.exit_code == 2 and "--device is for local runs" in here.output
    far = runner.invoke(app, ["path-patch", "--sender-pos", "99", *args[4:]], env=env)
    assert far.exit_code == 2 and "--sender-pos [99] holds 99, out of range" in far.output


def test_token_from_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_TOKEN", "from-env")
    assert read_token() == "from-env"
    (tmp_path / "token").write_text("from-file\n")
    assert read_token(str(tmp_path / "token")) == "from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_token(str(tmp_path / "empty"))
    monkeypatch.delenv("INTERP_TOKEN")
    assert read_token() is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_a_self_signed_certificate(induction_model, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    srv = Server(
        {"induction-2l": induction_model}, token=TOKEN, certfile=str(cert), keyfile=str(key),
        quiet=True,
    ).start()  # fmt: skip
    try:
        assert srv.url.startswith("https://127.0.0.1:")
        trusted = Client(srv.url, TOKEN, cafile=str(cert))
        assert "induction-2l" in trusted.models()["models"]
        with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            Client(srv.url, TOKEN).models()  # the system does not trust a self-signed one
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(srv.url.replace("https", "http") + "/v1/health", timeout=5)
    finally:
        srv.close()


@pytest.mark.slow
def test_interp_serve_command_prints_its_token_once_and_serves(tmp_path):
    """The real command in a subprocess: the token on stdout (one line), the address on stderr,
    the limits enforced. Slow only for its own Python start and model load (about 10 s)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "INTERP_TOKEN"}
    cmd = [sys.executable, "-m", "interp.cli", "serve", "induction-2l", "--port", "0", "-q"]
    proc = subprocess.Popen(
        [*cmd, "--max-prompts", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    try:
        token = proc.stdout.readline().strip().removeprefix("INTERP_TOKEN=")
        banner = next(line for line in proc.stderr if line.startswith("interp serve: "))
        url = banner.split()[2]
        client = Client(url, token)
        assert list(client.models()["models"]) == ["induction-2l"]
        with pytest.raises(RemoteError, match=r"has 8 prompts.*at most 4 \(its --max-prompts\)"):
            client.patch()
        assert client.patch(by=["layer"], n=4).shape == (2,)
    finally:
        proc.terminate()
        proc.wait(10)
