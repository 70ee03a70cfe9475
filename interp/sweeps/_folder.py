"""The sweep folder: every finished shard on disk, so a rerun of the same sweep skips it.

Layout of a sweep folder::

    sweep.json                 the plan: axes, and each shard's spec and key
    shards/<key>.json          a finished shard's Result (interp.Result.save: the JSON, written
    shards/<key>.safetensors   last by one rename, is the commit point)
    running/<key>.json         the host and pid of the worker computing it (informational)
    result.json / .safetensors the gathered Result, once every shard is done

A shard is stored under its content hash (:attr:`Shard.key`), so a rerun finds what any earlier
run of the same work left, whichever plan it came in. Every write goes through
:mod:`interp.artifacts`: a process killed mid-write leaves the old version or none, and a damaged
shard is simply computed again.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from ..artifacts import ArtifactError, clean_leftovers, read_json, write_json
from ..result import Result
from ._shards import Plan, Shard


class SweepFolder:
    """A sweep's folder (see the module docstring); created on first write."""

    def __init__(self, path: str | os.PathLike):
        if not isinstance(path, str | os.PathLike) or not str(path).strip():
            raise ValueError(f"out={path!r} is not accepted; give a folder path")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"out={str(path)!r} is a file; give a folder for the sweep")

    def _shard_base(self, shard: Shard) -> Path:
        return self.path / "shards" / shard.key

    def finished(self, shard: Shard) -> Result | None:
        """The stored Result of ``shard``, or None when it is missing, damaged or of other work."""
        base = self._shard_base(shard)
        if not base.with_name(base.name + ".json").exists():
            return None
        try:
            result = Result.load(base)
        except (OSError, ArtifactError):
            return None
        return result if result.provenance.get("shard") == shard.spec() else None

    def save_shard(self, shard: Shard, result: Result) -> None:
        """Store a finished shard (atomically) and drop its running mark."""
        result.save(self._shard_base(shard))
        (self.path / "running" / f"{shard.key}.json").unlink(missing_ok=True)

    def mark_running(self, shard: Shard) -> None:
        """Note that this process computes ``shard`` now (host, pid, start time)."""
        info = {"key": shard.key, "host": socket.gethostname(), "pid": os.getpid()}
        write_json(self.path / "running" / f"{shard.key}.json", {**info, "started": time.time()})

    def running(self) -> list[dict]:
        """The running marks: ``{"key", "host", "pid", "started"}`` of shards being computed
        (or whose worker died before finishing them)."""
        marks = []
        for p in sorted((self.path / "running").glob("*.json")):
            try:
                marks.append(read_json(p))
            except (OSError, ArtifactError):  # being replaced, or cut short by a dead worker
                continue
        return marks

    def tidy(self) -> None:
        """Remove what dead writers left (temporary files) in the shard folders."""
        for sub in ("shards", "running"):
            clean_leftovers(self.path / sub)

    def save_plan(self, plan: Plan) -> None:
        write_json(self.path / "sweep.json", plan.to_json(), indent=1)

    def save_result(self, result: Result) -> Path:
        return result.save(self.path / "result")
