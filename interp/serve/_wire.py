"""Results and graphs on the wire: the files they save themselves as, in one tar archive.

A ``Result`` travels as ``result.json`` + its safetensors values file, a ``CircuitGraph`` as its
saved folder ``graph/`` (``circuit.json`` + ``edges.safetensors``): exactly what ``save`` writes
and ``load`` reads, so the receiver checks the values' SHA-256 and the graph's format as it
would for a file on disk. No pickle: JSON and safetensors hold only data. Unpacking refuses any
member that is not a plain file with a plain name, so an archive cannot write outside the
temporary folder it is read into.
"""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
from pathlib import Path

from ..graph import CircuitGraph
from ..result import Result

CONTENT_TYPE = "application/x-tar"
_NAME = re.compile(r"^(graph/)?[A-Za-z0-9_.-]+$")
MAX_UNPACKED = 2 * 1024**3


def kind_of(outcome) -> str:
    """``"graph"`` for a CircuitGraph, ``"result"`` for a Result."""
    if isinstance(outcome, CircuitGraph):
        return "graph"
    if isinstance(outcome, Result):
        return "result"
    raise TypeError(f"cannot send a {type(outcome).__name__}; a Result or CircuitGraph travels")


def pack(outcome: Result | CircuitGraph) -> bytes:
    """``outcome`` saved by its own ``save`` into a temporary folder, as tar bytes."""
    kind = kind_of(outcome)
    with tempfile.TemporaryDirectory(prefix="interp-wire-") as tmp:
        outcome.save(Path(tmp) / kind)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(tmp).as_posix(), recursive=False)
        return buffer.getvalue()


def unpack(data: bytes) -> Result | CircuitGraph:
    """The Result or CircuitGraph in tar bytes made by :func:`pack`.

    Raises ``ValueError`` for an archive that is damaged or holds anything but plain files of
    a saved Result or CircuitGraph (and ``ArtifactError``, a ValueError, as ``load`` does).
    """
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except tarfile.TarError as err:
        raise ValueError(f"the server's answer is not a result archive ({err})") from err
    with tar, tempfile.TemporaryDirectory(prefix="interp-wire-") as tmp:
        total = 0
        for member in tar.getmembers():
            total += member.size
            if not member.isfile() or not _NAME.match(member.name) or ".." in member.name:
                raise ValueError(f"the result archive holds {member.name!r}, not a plain file")
            if total > MAX_UNPACKED:
                raise ValueError("the result archive unpacks to more than 2 GiB")
            target = Path(tmp) / member.name
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
        if (Path(tmp) / "graph").is_dir():
            return CircuitGraph.load(Path(tmp) / "graph")
        if (Path(tmp) / "result.json").exists():
            return Result.load(Path(tmp) / "result")
        raise ValueError("the result archive holds neither result.json nor graph/")
