"""Caching activations at scale: stream them to disk in shards, read them back lazily.

``cache_to_disk`` runs a model over a token dataset of any size, batch by batch, and writes the
chosen activations to ``shard-NNNNN.safetensors`` files. Each shard is written under a temporary
name and renamed, and ``manifest.json`` (also replaced atomically) lists only complete shards, so
an interrupted run leaves no half-written data: run the same call again and it removes the
interrupted run's temporary files and resumes after the last complete shard. ``ActivationStore``
opens the folder and reads rows on demand; a manifest that names a shard outside its folder is
refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

from .artifacts import ArtifactError, atomic_path, clean_leftovers, read_json, write_json
from .hooks import check_hook, locked, run_with_cache
from .models import provenance

MANIFEST = "manifest.json"


def _fingerprint(tokens: Tensor, names: Sequence[str], positions, dtype) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([sorted(names), positions, str(dtype), list(tokens.shape)]).encode())
    h.update(tokens[: min(len(tokens), 64)].cpu().numpy().tobytes())
    h.update(tokens[-min(len(tokens), 64) :].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _write_json(path: Path, data: dict) -> None:
    write_json(path, data, indent=1)


def _read_manifest(folder: Path) -> dict:
    """The manifest of ``folder``, refused if a shard entry points outside the folder."""
    path = folder / MANIFEST
    manifest = read_json(path)
    try:
        shards = manifest["shards"]
        files = [s["file"] for s in shards]
    except (KeyError, TypeError) as err:
        raise ArtifactError(f"{path} is not an activation-store manifest ({err!r})") from err
    for i, file in enumerate(files):
        # a manifest is data that may come from elsewhere: only plain names inside the folder
        if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
            raise ArtifactError(
                f"{path}: shard {i} file {file!r} points outside the store folder; shard files "
                f"must be plain file names inside {folder}"
            )
    return manifest


@locked
def cache_to_disk(
    model,
    tokens: Tensor,
    names: Sequence[str],
    out: str | os.PathLike,
    *,
    batch_size: int = 8,
    shard_rows: int = 256,
    positions: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> ActivationStore:
    """Run ``model`` over ``tokens`` and store the activations at ``names`` under ``out``.

    Arguments:
        tokens: ``[rows, pos]`` token ids (a memory-mapped tensor works: rows are read per batch).
        names: hook names (checked against the model).
        out: a folder; created, or resumed if it holds an unfinished run of the same call.
        batch_size: rows per forward pass.
        shard_rows: rows per shard file (a multiple of ``batch_size`` is best).
        positions: keep only these positions of each row.
        dtype: storage dtype (e.g. ``torch.float16`` halves the disk).

    Returns:
        The ActivationStore over ``out``.
    """
    if tokens.dim() != 2 or len(tokens) == 0:
        raise ValueError(
            f"tokens must be a non-empty [rows, pos] tensor, got shape {tuple(tokens.shape)}"
        )
    names = [check_hook(model, n) for n in names]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out)  # shards an interrupted run was writing
    fingerprint = _fingerprint(tokens, names, list(positions) if positions else None, dtype)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest = _read_manifest(out)
        if manifest["fingerprint"] != fingerprint:
            raise ValueError(
                f"{out} holds activations of another run (other tokens, names, positions or dtype); "
                "use a new folder"
            )
    else:
        manifest = {
            "fingerprint": fingerprint,
            "names": names,
            "rows": len(tokens),
            "dtype": str(dtype),
            "positions": list(positions) if positions else None,
            "shard_rows": shard_rows,
            "shards": [],
            "model": provenance(model),
        }
        _write_json(manifest_path, manifest)
    done = sum(s["rows"] for s in manifest["shards"])
    bar = tqdm(total=len(tokens), initial=done, desc="caching", disable=not progress, leave=False)
    while done < len(tokens):
        stop = min(done + shard_rows, len(tokens))
        parts: dict[str, list[Tensor]] = {n: [] for n in names}
        for start in range(done, stop, batch_size):
            batch = tokens[start : min(start + batch_size, stop)].to(model.cfg.device)
            _, cache = run_with_cache(model, batch, names)
            for n in names:
                act = cache[n] if positions is None else cache[n][:, list(positions)]
                parts[n].append(act.to("cpu", dtype).contiguous())
            bar.update(len(batch))
        index = len(manifest["shards"])
        shard = f"shard-{index:05d}.safetensors"
        with atomic_path(out / shard) as tmp:
            save_file({n: torch.cat(parts[n]) for n in names}, tmp)
        manifest["shards"].append({"file": shard, "start": done, "rows": stop - done})
        _write_json(manifest_path, manifest)
        done = stop
    bar.close()
    return ActivationStore(out)


class ActivationStore:
    """Activations cached by ``cache_to_disk``, read lazily shard by shard."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.exists():
            raise FileNotFoundError(
                f"{self.folder} holds no {MANIFEST}; make it with cache_to_disk"
            )
        self.manifest = _read_manifest(self.folder)
        self.names: list[str] = self.manifest["names"]

    @property
    def complete(self) -> bool:
        return sum(s["rows"] for s in self.manifest["shards"]) == self.manifest["rows"]

    def __len__(self) -> int:
        return sum(s["rows"] for s in self.manifest["shards"])

    def rows(self, name: str, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of activation ``name``, reading only the shards they lie in."""
        if name not in self.names:
            raise KeyError(f"no activation {name!r} in this store; it holds {self.names}")
        stop = min(stop, len(self))
        pieces = []
        for shard in self.manifest["shards"]:
            lo, hi = shard["start"], shard["start"] + shard["rows"]
            if hi <= start or lo >= stop:
                continue
            with safe_open(self.folder / shard["file"], framework="pt") as f:
                sl = f.get_slice(name)
                pieces.append(sl[max(start, lo) - lo : min(stop, hi) - lo])
        if not pieces:
            raise IndexError(f"rows {start}:{stop} are outside the store's {len(self)} rows")
        return torch.cat(pieces)

    def iter_batches(self, name: str, batch_size: int = 256) -> Iterator[Tensor]:
        for start in range(0, len(self), batch_size):
            yield self.rows(name, start, start + batch_size)
