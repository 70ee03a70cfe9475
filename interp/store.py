"""The result store: every run saved in a runs folder, listed and reopened later.

Each run is a folder ``runs/<id>/`` holding ``result.safetensors`` (values), ``result.json``
(axes, labels, metric, provenance) and ``plot.html``; a circuit run holds ``graph/`` (the saved
CircuitGraph), ``graph.json`` (the attribution-graph JSON viewers read) and ``plot.html``. The folder is built under a temporary name
and renamed into place, so an interrupted run never leaves a half-written result.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .circuit_graph import CircuitGraph
from .result import Result


def runs_dir(path: str | os.PathLike | None = None) -> Path:
    """The runs folder: ``path``, else ``$INTERP_RUNS``, else ``./runs``."""
    return Path(path or os.environ.get("INTERP_RUNS", "runs"))


def save_run(
    result: Result | CircuitGraph,
    name: str,
    root: str | os.PathLike | None = None,
    plot: bool = True,
) -> str:
    """Store a Result or a CircuitGraph as a new run; returns its id (``YYYYmmdd-HHMMSS-name``)."""
    root = runs_dir(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".run-", dir=root))
    except OSError as err:
        raise OSError(f"cannot write to the runs folder {root}: {err.strerror}") from err
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60]
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    try:
        if isinstance(result, CircuitGraph):
            result.save(tmp / "graph")
            result.save_json(tmp / "graph.json")
            if plot:
                result.plot().write_html(tmp / "plot.html", include_plotlyjs="cdn")
        else:
            result.save(tmp / "result")
            if plot and len(result.axes) <= 3:
                result.plot().write_html(tmp / "plot.html", include_plotlyjs="cdn")
        final = root / run_id
        n = 1
        while final.exists():
            final = root / f"{run_id}-{n}"
            n += 1
        tmp.rename(final)
        return final.name
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def list_runs(root: str | os.PathLike | None = None) -> list[dict]:
    """Every complete run, oldest first: id, method, metric, axes and shape."""
    out = []
    for folder in sorted(runs_dir(root).glob("*")):
        meta = folder / "result.json"
        if folder.name.startswith("."):
            continue
        if (folder / "graph" / "graph.json").exists():
            graph = json.loads((folder / "graph" / "graph.json").read_text())
            out.append(
                {
                    "id": folder.name,
                    "method": graph["metadata"].get("method"),
                    "metric": "circuit graph",
                    "axes": ["nodes", "edges"],
                    "shape": [len(graph["nodes"]), None],
                }
            )
            continue
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        out.append(
            {
                "id": folder.name,
                "method": data["provenance"].get("method"),
                "metric": data["metric"],
                "axes": data["axes"],
                "shape": [len(data["labels"][a]) for a in data["axes"]],
            }
        )
    return out


def load_run(run_id: str, root: str | os.PathLike | None = None) -> Result | CircuitGraph:
    """The Result (or CircuitGraph) of run ``run_id``."""
    folder = runs_dir(root) / run_id
    if (folder / "graph" / "graph.json").exists():
        return CircuitGraph.load(folder / "graph")
    if not (folder / "result.json").exists():
        known = [r["id"] for r in list_runs(root)]
        raise FileNotFoundError(f"no run {run_id!r} in {runs_dir(root)}; runs: {known[-5:]}")
    return Result.load(folder / "result")
