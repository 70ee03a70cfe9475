"""The result store: every run saved in a runs folder, listed and reopened later.

Each run is a folder ``runs/<id>/`` holding ``result.json`` (axes, labels, metric, provenance,
and the name of the values file), the values (``result.safetensors``) and ``plot.html``; a
circuit run holds ``graph/`` (the saved CircuitGraph: ``circuit.json`` and
``edges.safetensors``), ``viewer.json`` (the attribution-graph JSON
that Neuronpedia's and circuit-tracer's viewers read; ``graph.json`` in runs saved before it was
renamed) and ``plot.html``. The folder is built under a temporary name and published by one
rename (:func:`interp.artifacts.atomic_dir`), so an interrupted run never leaves a half-written
result, and what an interrupted run left behind is removed by the next one.

One damaged run does not hide the others: :func:`scan_runs` lists the readable runs and names
each broken one with the file and the problem.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

from .artifacts import ArtifactError, atomic_dir, atomic_file, clean_leftovers, read_json, recover
from .graph import GRAPH_FILE, CircuitGraph, graph_file, saved_provenance
from .result import Result

VIEWER_JSON = "viewer.json"
PLOTLY_JS = "plotly.min.js"


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
    except OSError as err:
        raise OSError(f"cannot write to the runs folder {root}: {err.strerror}") from err
    clean_leftovers(root)
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60]
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    for n in range(1000):
        final = root / (run_id if n == 0 else f"{run_id}-{n}")
        if final.exists():
            continue
        try:
            if plot:
                _plotly_bundle(root)
            with atomic_dir(final, replace=False) as tmp:
                _write_run(tmp, result, plot)
        except FileExistsError:  # another process took this id meanwhile
            continue
        except OSError as err:
            raise OSError(f"cannot write to the runs folder {root}: {err.strerror}") from err
        return final.name
    raise FileExistsError(f"no free run id for {run_id!r} in {root}")


def _write_run(folder: Path, result: Result | CircuitGraph, plot: bool) -> None:
    if isinstance(result, CircuitGraph):
        result.save(folder / "graph")
        result.save_json(folder / VIEWER_JSON)
        if plot:
            result.plot().write_html(folder / "plot.html", include_plotlyjs=f"../{PLOTLY_JS}")
    else:
        result.save(folder / "result")
        if plot and len(result.axes) <= 3:
            result.plot().write_html(folder / "plot.html", include_plotlyjs=f"../{PLOTLY_JS}")


def _plotly_bundle(root: Path) -> None:
    """Write plotly.js into the runs folder once, for every run's ``plot.html`` to load offline.

    A CDN link leaves the plot blank without a network; embedding the 4.6 MB bundle in every
    run would repeat it. ``plot.html`` reads ``../plotly.min.js``, so a run opens offline where
    it lies (moving one run folder alone needs the bundle moved beside it).
    """
    import plotly
    from plotly.offline import get_plotlyjs

    bundle = root / PLOTLY_JS
    stamp = f"/* plotly.py {plotly.__version__} */\n"
    if bundle.exists() and bundle.read_text(encoding="utf-8")[: len(stamp)] == stamp:
        return
    with atomic_file(bundle, "w") as f:
        f.write(stamp + get_plotlyjs())


class RunListing(NamedTuple):
    """What :func:`scan_runs` found: readable ``runs`` and ``broken`` ones (``id``, ``file``,
    ``error``), both oldest first."""

    runs: list[dict]
    broken: list[dict]


def scan_runs(root: str | os.PathLike | None = None) -> RunListing:
    """Every run in the runs folder, readable ones apart from damaged ones.

    A run is damaged when its ``result.json`` or ``graph/circuit.json`` is not whole JSON (empty,
    binary, cut short), lacks a field, or its values file is missing. Leftovers of interrupted
    runs are removed first (:func:`interp.artifacts.clean_leftovers`).
    """
    root = runs_dir(root)
    clean_leftovers(root)
    runs, broken = [], []
    for folder in sorted(root.glob("*")):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            runs.append(_summary(folder))
        except (OSError, ArtifactError) as err:
            file = _file_of(folder).relative_to(root)
            broken.append({"id": folder.name, "file": str(file), "error": str(err)})
    return RunListing(runs, broken)


def list_runs(root: str | os.PathLike | None = None) -> list[dict]:
    """Every readable run, oldest first: id, method, metric, axes and shape.

    Damaged runs are left out; :func:`scan_runs` names them."""
    return scan_runs(root).runs


def _file_of(folder: Path) -> Path:
    return graph_file(folder / "graph") or folder / "result.json"


def _summary(folder: Path) -> dict:
    graph_json = graph_file(folder / "graph")
    if graph_json is not None:
        graph = read_json(graph_json)
        if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
            raise ArtifactError(f"{graph_json} is not a saved CircuitGraph (no list of nodes)")
        if not (folder / "graph" / "edges.safetensors").exists():
            raise ArtifactError(f"{folder / 'graph' / 'edges.safetensors'} is missing")
        return {
            "id": folder.name,
            "method": (saved_provenance(graph) or {}).get("method"),
            "metric": "circuit graph",
            "axes": ["nodes", "edges"],
            "shape": [len(graph["nodes"]), None],
        }
    meta_file = folder / "result.json"
    if not meta_file.exists():
        raise ArtifactError(f"{folder} holds neither result.json nor graph/{GRAPH_FILE}")
    data = read_json(meta_file)
    try:
        summary = {
            "id": folder.name,
            "method": data["provenance"].get("method"),
            "metric": data["metric"],
            "axes": data["axes"],
            "shape": [len(data["labels"][a]) for a in data["axes"]],
        }
    except (KeyError, TypeError, AttributeError) as err:
        raise ArtifactError(f"{meta_file} is not a saved Result ({err!r})") from err
    name = data.get("values_file", "result.safetensors")
    values = folder / str(name)
    if not isinstance(name, str) or Path(name).name != name or not values.is_file():
        raise ArtifactError(f"{values} is missing; {meta_file} names it as its values")
    return summary


def load_run(run_id: str, root: str | os.PathLike | None = None) -> Result | CircuitGraph:
    """The Result (or CircuitGraph) of run ``run_id``.

    Raises ``FileNotFoundError`` for an unknown id and ``ArtifactError`` (a ``ValueError``)
    naming the damaged file of a broken run."""
    folder = runs_dir(root) / run_id
    recover(folder)
    if graph_file(folder / "graph") is not None:
        return CircuitGraph.load(folder / "graph")
    if (folder / "result.json").exists():
        return Result.load(folder / "result")
    if folder.is_dir():
        raise ArtifactError(
            f"run {run_id!r} ({folder}) holds neither result.json nor graph/{GRAPH_FILE}"
        )
    known = [r["id"] for r in list_runs(root)]
    raise FileNotFoundError(f"no run {run_id!r} in {runs_dir(root)}; runs: {known[-5:]}")
