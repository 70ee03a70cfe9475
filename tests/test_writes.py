"""Writes: every artifact is replaced atomically, a crash keeps one whole version, leftovers go,
and one damaged run does not hide the others.

The crash tests save in a child process that SIGKILLs itself at a chosen point of the write
(before publishing, between the two renames of a swap, right after the swap or the commit), then
check in this process that the artifact loads as the whole old or the whole new version.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from interp.artifacts import (
    ArtifactError,
    atomic_dir,
    atomic_file,
    clean_leftovers,
    read_json,
    recover,
)
from interp.catalogue import load_entry, write_entry
from interp.graph import CircuitGraph, Node
from interp.organisms import corpus_stream, save_folder
from interp.result import Result
from interp.store import list_runs, load_run, save_run, scan_runs

HERE = Path(__file__).resolve().parent
VERSIONS = {"A": 1.0, "B": 100.0}


# -- two versions of every artifact --------------------------------------------------------------


def result_of(v: str) -> Result:
    values = torch.arange(6.0).reshape(2, 3) * VERSIONS[v] + VERSIONS[v]
    return Result(values, ("layer", "head"), f"metric {v}", provenance={"method": v})


def graph_of(v: str) -> CircuitGraph:
    g = CircuitGraph(provenance={"version": v, "model": "toy"})
    tok, head, logit = Node("token", pos=0, index=3), Node("head", 0, None, 1), Node("logit", 1)
    g.add_edge(tok, head, VERSIONS[v], "test")
    g.add_edge(head, logit, -2 * VERSIONS[v], "test")
    return g


class _FakeModel:
    def __init__(self, v):
        self.v = v

    def save_pretrained(self, folder, safe_serialization=True):
        (Path(folder) / "weights.bin").write_text(f"weights {self.v}")


class _FakeTokenizer(_FakeModel):
    def save_pretrained(self, folder):
        (Path(folder) / "tokenizer.json").write_text(json.dumps({"version": self.v}))


def toy_entry(v: str) -> dict:
    """The least a catalogue entry holds (write_entry refuses less), marked with version ``v``."""
    return {
        "name": "toy",
        "model": "toy",
        "task": {"name": "toy"},
        "method": {"name": "hand"},
        "faithfulness": {"resample": 1.0},
        "version": v,
    }


def write(kind: str, root: Path, v: str):
    """Save version ``v`` of a ``kind`` artifact under ``root``."""
    if kind == "result":
        result_of(v).save(root / "r")
    elif kind == "graph":
        graph_of(v).save(root / "g")
    elif kind == "graph_json":
        graph_of(v).save_json(root / "viewer.json")
    elif kind == "entry":
        write_entry("toy", toy_entry(v), graph_of(v), root)
    elif kind == "organism":
        save_folder(_FakeModel(v), _FakeTokenizer(v), root / "org", f"# {v}\n", {"v": v})
    elif kind == "run":
        save_run(result_of(v), f"sweep-{v}", root, plot=False)
    else:
        raise ValueError(kind)


def read(kind: str, root: Path) -> str:
    """The version the artifact under ``root`` loads as, checking it is whole and not a mix."""
    if kind == "result":
        r = Result.load(root / "r")
        v = r.metric.split()[-1]
        assert torch.equal(r.values, result_of(v).values) and r.provenance["method"] == v
        return v
    if kind == "graph":
        g = CircuitGraph.load(root / "g")
        v = g.provenance["version"]
        assert g.edge_weight.tolist() == graph_of(v).edge_weight.tolist()
        return v
    if kind == "graph_json":
        g = CircuitGraph.from_json(root / "viewer.json")
        v = g.provenance["version"]
        assert g.edge_weight.tolist() == graph_of(v).edge_weight.tolist()
        return v
    if kind == "entry":
        e = load_entry("toy", root)
        v = e.info["version"]
        assert e.graph().provenance["version"] == v
        assert e.graph().edge_weight.tolist() == graph_of(v).edge_weight.tolist()
        assert CircuitGraph.from_json(e.folder / "graph" / "viewer.json").provenance["version"] == v
        return v
    if kind == "organism":
        recover(root / "org")
        folder = root / "org"
        v = json.loads((folder / "training.json").read_text())["v"]
        assert (folder / "weights.bin").read_text() == f"weights {v}"
        assert json.loads((folder / "tokenizer.json").read_text())["version"] == v
        assert (folder / "README.md").read_text() == f"# {v}\n"
        return v
    raise ValueError(kind)


# -- replacing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["result", "graph", "graph_json", "entry", "organism"])
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_leaves_the_whole_new_version(kind, exchange, tmp_path, monkeypatch):
    if not exchange:
        monkeypatch.setattr("interp.artifacts._renameat2", lambda *a: False)
    write(kind, tmp_path, "A")
    assert read(kind, tmp_path) == "A"
    write(kind, tmp_path, "B")
    assert read(kind, tmp_path) == "B"
    write(kind, tmp_path, "A")
    assert read(kind, tmp_path) == "A"
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert leftovers == []


def test_result_json_is_the_commit_point(tmp_path):
    result_of("A").save(tmp_path / "r")
    assert read_json(tmp_path / "r.json")["values_file"] == "r.safetensors"
    result_of("B").save(tmp_path / "r")
    meta = read_json(tmp_path / "r.json")
    assert meta["values_file"] != "r.safetensors"
    # the previous values file is gone once the new JSON is in place: one values file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.json", meta["values_file"]])
    (tmp_path / meta["values_file"]).write_bytes((tmp_path / meta["values_file"]).read_bytes()[:-4])
    with pytest.raises(ArtifactError, match="SHA-256"):
        Result.load(tmp_path / "r")


def test_result_loads_the_older_layout(tmp_path):
    from safetensors.torch import save_file

    r = result_of("A")
    save_file({"values": r.values}, tmp_path / "old.safetensors")
    meta = {"axes": list(r.axes), "labels": r.labels, "metric": r.metric, "provenance": {}}
    (tmp_path / "old.json").write_text(json.dumps(meta))
    assert torch.equal(Result.load(tmp_path / "old").values, r.values)
    result_of("B").save(tmp_path / "old")  # replacing an older save removes its values file
    assert not (tmp_path / "old.safetensors").exists()
    assert torch.equal(Result.load(tmp_path / "old").values, result_of("B").values)


# -- crashes --------------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
sys.path.insert(0, {here!r})
import interp.artifacts as A
import test_writes as T

kind, root, point = sys.argv[1], sys.argv[2], sys.argv[3]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_rename, real_replace, real_r2 = os.rename, os.replace, A._renameat2
if point == "before-publish":
    A._publish = lambda *a: die()
elif point == "after-exchange":
    def r2(src, dst, flags):
        done = real_r2(src, dst, flags)
        if not done:
            sys.exit(3)  # the file system cannot exchange: nothing to test
        if flags == A._RENAME_EXCHANGE:
            die()
        return done
    A._renameat2 = r2
elif point == "between-renames":
    A._renameat2 = lambda *a: False
    def rename(src, dst):
        real_rename(src, dst)
        if ".old-" in os.path.basename(dst):
            die()
    os.rename = rename
elif point in ("before-commit", "after-commit"):
    def replace(src, dst):
        if str(dst).endswith(".json") and point == "before-commit":
            die()
        real_replace(src, dst)
        if str(dst).endswith(".json"):
            die()
    os.replace = replace
T.write(kind, __import__("pathlib").Path(root), "B")
sys.exit(0)
"""

# (writer, kill point, the version that must load afterwards)
CRASHES = [
    ("result", "before-commit", "A"),
    ("result", "after-commit", "B"),
    ("graph_json", "before-commit", "A"),
    ("graph_json", "after-commit", "B"),
    *[
        (kind, point, "A" if point != "after-exchange" else "B")
        for kind in ("graph", "entry", "organism")
        for point in ("before-publish", "between-renames", "after-exchange")
    ],
]


def crash_while_writing(kind: str, root: Path, point: str) -> int:
    code = CHILD.format(here=str(HERE))
    proc = subprocess.run(
        [sys.executable, "-c", code, kind, str(root), point], capture_output=True, text=True
    )
    if proc.returncode == 3:
        pytest.skip("this file system has no renameat2(RENAME_EXCHANGE)")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return proc.returncode


@pytest.mark.parametrize("kind,point,expected", CRASHES, ids=[f"{k}-{p}" for k, p, _ in CRASHES])
def test_sigkill_mid_replace_keeps_one_whole_version(kind, point, expected, tmp_path):
    write(kind, tmp_path, "A")
    crash_while_writing(kind, tmp_path, point)
    assert read(kind, tmp_path) == expected
    # the next write cleans up after the dead one and succeeds
    write(kind, tmp_path, "B")
    assert read(kind, tmp_path) == "B"
    if kind in ("graph", "entry", "organism"):
        clean_leftovers(tmp_path)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("point", ["before-publish", "after-exchange"])
def test_sigkill_mid_run_keeps_the_other_runs(point, tmp_path):
    first = save_run(result_of("A"), "first", tmp_path, plot=False)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(here=str(HERE)), "run", str(tmp_path), point],
        capture_output=True,
        text=True,
    )
    # a new run is published by one rename (never an exchange): the child may finish
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-2000:]
    ids = [r["id"] for r in list_runs(tmp_path)]
    assert ids[0] == first and len(ids) == (1 if proc.returncode else 2)
    assert torch.equal(load_run(first, tmp_path).values, result_of("A").values)
    assert scan_runs(tmp_path).broken == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- leftovers ------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_are_removed_but_not_a_live_writers(tmp_path):
    save_run(result_of("A"), "first", tmp_path, plot=False)
    dead, old = _dead_pid(), time.time() - 3600
    stale = [tmp_path / ".run-abc123", tmp_path / ".shard-x1y2z3", tmp_path / f".x.tmp-{dead}-ab12"]
    for p in stale:
        p.mkdir()
        (p / "partial").write_text("half")
        os.utime(p, (old, old))
    (tmp_path / f".y.json.tmp-{dead}-cd34").write_text("{")
    live = [tmp_path / f".z.tmp-{os.getpid()}-ef56", tmp_path / ".run-fresh1"]
    for p in live:
        p.mkdir()
    second = save_run(result_of("B"), "second", tmp_path, plot=False)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == sorted(p.name for p in live)
    assert torch.equal(load_run(second, tmp_path).values, result_of("B").values)


def test_activation_store_removes_stale_shards(induction_model, tmp_path):
    from interp.activation_store import cache_to_disk

    tokens = torch.randint(
        0, induction_model.cfg.d_vocab, (8, 6), generator=torch.Generator().manual_seed(0)
    )
    old = time.time() - 3600
    (tmp_path / ".shard-abc123").write_bytes(b"\0" * 10)
    os.utime(tmp_path / ".shard-abc123", (old, old))
    (tmp_path / f".shard-00000.safetensors.tmp-{_dead_pid()}-0a1b").write_bytes(b"\0")
    store = cache_to_disk(
        induction_model,
        tokens,
        ["blocks.0.hook_resid_post"],
        tmp_path,
        batch_size=4,
        shard_rows=4,
        progress=False,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json",
        "shard-00000.safetensors",
        "shard-00001.safetensors",
    ]
    _, cache = induction_model.run_with_cache(tokens, names_filter="blocks.0.hook_resid_post")
    assert torch.allclose(
        store.rows("blocks.0.hook_resid_post", 0, 8), cache["blocks.0.hook_resid_post"], atol=1e-5
    )


def test_atomic_file_and_dir_leave_the_target_untouched_on_error(tmp_path):
    (tmp_path / "f.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "f.json", "w") as f:
        f.write("new")
        raise RuntimeError
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "x").write_text("new")
        raise RuntimeError
    assert (tmp_path / "f.json").read_text() == "old" and (
        tmp_path / "d" / "x"
    ).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f.json"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_file(tmp_path / "f.json", "a"):
            pass
    with pytest.raises(FileExistsError), atomic_dir(tmp_path / "d", replace=False) as tmp:
        (tmp / "x").write_text("new")
    assert (tmp_path / "d" / "x").read_text() == "old"


# -- damaged runs ---------------------------------------------------------------------------------

DAMAGE = {
    "brace": ("result.json", b"{"),
    "empty": ("result.json", b""),
    "binary": ("result.json", bytes(range(256))),
    "truncated-graph": ("graph/circuit.json", None),
    "no-fields": ("result.json", b'{"axes": ["layer"]}'),
}


def _damage(folder: Path, file: str, data: bytes | None) -> None:
    path = folder / file
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if data is None else data)


def test_list_runs_names_each_broken_run_and_lists_the_good_ones(tmp_path):
    good = [save_run(result_of("A"), "good-result", tmp_path, plot=False)]
    good.append(save_run(graph_of("B"), "good-graph", tmp_path, plot=False))
    broken = {}
    for label, (file, data) in DAMAGE.items():
        obj = graph_of("A") if file.startswith("graph/") else result_of("A")
        run_id = save_run(obj, label, tmp_path, plot=False)
        _damage(tmp_path / run_id, file, data)
        broken[run_id] = file
    listing = scan_runs(tmp_path)
    assert sorted(r["id"] for r in listing.runs) == sorted(good)
    assert {r["id"]: r["shape"] for r in listing.runs} == {good[0]: [2, 3], good[1]: [3, None]}
    assert {b["id"]: b["file"] for b in listing.broken} == {
        k: str(Path(k) / f) for k, f in broken.items()
    }
    assert sorted(r["id"] for r in list_runs(tmp_path)) == sorted(good)
    for run_id, file in broken.items():
        with pytest.raises(ArtifactError, match=file.split("/")[-1]):
            load_run(run_id, tmp_path)
    assert torch.equal(load_run(good[0], tmp_path).values, result_of("A").values)
    assert CircuitGraph.load(tmp_path / good[1] / "graph").edge_weight.tolist() == [100.0, -200.0]
    assert read_json(tmp_path / good[1] / "viewer.json")["nodes"]

    from interp.cli import app

    out = CliRunner().invoke(app, ["runs", "list", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert sorted(ln.split()[0] for ln in lines[:2]) == sorted(good)
    for run_id, file in broken.items():
        (line,) = [ln for ln in lines if ln.startswith(run_id)]
        assert "BROKEN" in line and file.split("/")[-1] in line
    shown = CliRunner().invoke(app, ["runs", "show", next(iter(broken)), "--out", str(tmp_path)])
    assert shown.exit_code != 0 and "result.json" in shown.output


def test_load_run_of_an_unknown_id_is_not_found(tmp_path):
    save_run(result_of("A"), "only", tmp_path, plot=False)
    with pytest.raises(FileNotFoundError, match="no run 'nope'"):
        load_run("nope", tmp_path)


# -- refusing unsafe inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("file", ["/etc/passwd", "../outside.safetensors", "sub/../../x", ".."])
def test_activation_store_refuses_a_manifest_pointing_outside(file, tmp_path):
    from interp.activation_store import ActivationStore

    manifest = {"names": ["x"], "rows": 1, "shards": [{"file": file, "start": 0, "rows": 1}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="points outside the store folder"):
        ActivationStore(tmp_path)


def test_corpus_cache_loads_with_weights_only(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    stream = torch.arange(50, dtype=torch.int32)
    # no corpus to tokenise: the organisms' data module yields the stream directly
    monkeypatch.setattr("interp.organisms._data.encode_corpus", lambda tok, text: stream)
    monkeypatch.setattr("interp.organisms._data.stdlib_text", lambda: "")
    assert torch.equal(corpus_stream(None), stream)  # written
    assert torch.equal(corpus_stream(None), stream)  # read back, weights_only
    path = next((tmp_path / "corpus").iterdir())

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save(Payload(), path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        corpus_stream(None)
