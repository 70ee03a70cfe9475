"""Writing artifacts so that a crash never loses both the old and the new version.

An artifact is a file (a JSON, a safetensors shard) or a folder (a run, a saved CircuitGraph, a
catalogue entry, a model folder). Every writer in ``interp`` goes through the two context managers
here, so all of them give the same guarantee: whatever moment the process dies at (``SIGKILL``,
power cut after the data reached the disk), a reader finds either the whole old version or the
whole new one, never neither and never a mix.

- :func:`atomic_file` writes beside the target under a temporary name, fsyncs, and publishes with
  one ``os.replace``: the rename is the single moment the new version appears.
- :func:`atomic_dir` builds a folder beside the target. Publishing a new folder is one rename.
  Replacing an existing one cannot be one ``rename(2)`` (a folder cannot overwrite a non-empty
  folder), so it is one ``renameat2(RENAME_EXCHANGE)`` where Linux offers it (the two names swap
  in one step) and, elsewhere, two renames: the old folder moves aside to ``.NAME.old-PID-X``,
  the new one moves in. A process that dies between those two renames leaves the old version
  whole under that name, and :func:`recover` (which every folder loader calls) puts it back.
- :func:`clean_leftovers` removes what dead writers left behind: temporary folders and files,
  and old versions that are no longer needed. A temporary name carries its writer's pid, so a
  live writer's work in progress (in this process or another) is never taken from under it.

Loaders raise :class:`ArtifactError` for a file that exists but cannot be read, naming it.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Names of leftovers. Temporary names carry the writer's pid; the legacy names (``.run-*`` of the
# runs folder, ``.shard-*`` of the activation store, ``.NAME.old`` of organism folders) came from
# older writers and are judged by age.
_TMP = re.compile(r"^\.(?P<owner>.+)\.tmp-(?P<pid>\d+)-[0-9a-z_]+$")
_OLD = re.compile(r"^\.(?P<owner>.+)\.old(?:-(?P<pid>\d+)(?:-[0-9a-z_]+)?)?$")
_LEGACY = re.compile(r"^\.(?:run|shard)-[0-9A-Za-z_]+(?:\.safetensors)?$")
STALE_SECONDS = 60.0

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


class ArtifactError(ValueError):
    """A saved file exists but cannot be read (not JSON, truncated, wrong hash, ...)."""


# -- files ---------------------------------------------------------------------------------------


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    For writers that want a file name rather than a file object (``safetensors.save_file``,
    ``plotly``'s ``write_html``). On error the temporary file is removed and ``path`` is untouched.

    Example:
        >>> with atomic_path("values.safetensors") as tmp:
        ...     save_file(tensors, tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(
        target, "tmp", lambda p: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    )
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing (``mode`` ``"wb"`` or ``"w"``); on
    success flush, fsync and ``os.replace`` it onto ``path`` (one atomic rename).

    Example:
        >>> with atomic_file("result.json", "w") as f:
        ...     json.dump(meta, f)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r} is not accepted; use 'w' (text) or 'wb' (bytes)")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()


def write_json(path: str | os.PathLike, data: Any, **dump: Any) -> Path:
    """``json.dump(data)`` to ``path`` atomically; returns ``path``."""
    with atomic_file(path, "w") as f:
        json.dump(data, f, **dump)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; :class:`ArtifactError` naming the file if it is not whole JSON."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise ArtifactError(f"{path} is empty (a write was cut short?)")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ArtifactError(f"{path} is not text (binary bytes at offset {err.start})") from err
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from err


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- folders -------------------------------------------------------------------------------------


@contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh folder beside ``path``; on success publish it as ``path`` in one step.

    Arguments:
        path: the folder to create or replace.
        replace: if False, an existing ``path`` is an error (``FileExistsError``), checked at the
            moment of publishing (``RENAME_NOREPLACE`` where available).

    On error the temporary folder is removed and ``path`` is untouched. See the module docstring
    for how an existing folder is swapped and what a crash mid-swap leaves.

    Example:
        >>> with atomic_dir("runs/20240101-sweep") as tmp:
        ...     result.save(tmp / "result")
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = _fresh(target, "tmp", os.mkdir)
    try:
        yield tmp
        for sub, _, files in os.walk(tmp):
            for name in files:
                _fsync(Path(sub) / name)
        _publish(tmp, target, replace)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(target.parent)


def recover(path: str | os.PathLike) -> bool:
    """Put back the old version of folder ``path`` if a writer died mid-swap; True if it did.

    When ``path`` is missing but a ``.NAME.old-*`` sibling exists, a replace was interrupted
    between its two renames and that sibling is the whole old version. If its writer is still
    alive it is given two seconds to finish first.
    """
    target = Path(path)
    if target.exists() or not target.parent.is_dir():
        return False
    olds = [p for p in target.parent.iterdir() if _owner(_OLD, p.name) == target.name]
    for old in sorted(olds, key=_mtime, reverse=True):
        pid = _pid(_OLD, old.name)
        deadline = time.monotonic() + 2.0
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            if target.exists():
                return False
            time.sleep(0.05)
        try:
            os.rename(old, target)
            return True
        except FileNotFoundError:  # another reader put it back first
            continue
        except OSError:  # a new version appeared meanwhile
            return False
    return False


def clean_leftovers(folder: str | os.PathLike, min_age: float = STALE_SECONDS) -> list[Path]:
    """Tidy ``folder`` after dead writers; returns what was removed.

    Interrupted swaps are recovered first (:func:`recover`). Then removed: temporary names of
    dead processes; old versions whose owner is back in place; legacy ``.run-*``/``.shard-*``
    temporaries older than ``min_age`` seconds. Best effort: a read-only folder is left as is.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    for name in names:
        if (owner := _owner(_OLD, name)) is not None and not (folder / owner).exists():
            try:
                recover(folder / owner)
            except OSError:
                pass
    for name in names:
        p = folder / name
        if not p.exists() and not p.is_symlink():
            continue
        if _TMP.match(name):
            stale = not _alive(_pid(_TMP, name))
        elif (owner := _owner(_OLD, name)) is not None:
            stale = (folder / owner).exists()
        elif _LEGACY.match(name):
            stale = time.time() - _mtime(p) > min_age
        else:
            continue
        if stale:
            try:
                _remove(p)
                removed.append(p)
            except OSError:
                pass
    return removed


# -- internals -----------------------------------------------------------------------------------


def _fresh(target: Path, kind: str, make) -> Path:
    """A new name ``.NAME.KIND-PID-RANDOM`` beside ``target``, created by ``make(path)``."""
    for _ in range(100):
        p = target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            make(p)
            return p
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _publish(tmp: Path, target: Path, replace: bool) -> None:
    if not replace:
        if _renameat2(tmp, target, _RENAME_NOREPLACE):
            return
        if target.exists() or target.is_symlink():
            raise FileExistsError(errno.EEXIST, "already exists", str(target))
        os.rename(tmp, target)
        return
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
        return
    if _renameat2(tmp, target, _RENAME_EXCHANGE):
        _remove(tmp)  # tmp now holds the old version
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(target, old)
    os.rename(tmp, target)
    _remove(old)


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where the libc or the file system lacks it."""
    fn = _libc_renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(dst))


_RENAMEAT2: list = []


def _libc_renameat2():
    if not _RENAMEAT2:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_uint,
            ]
            fn.restype = ctypes.c_int
        except (AttributeError, OSError, TypeError):
            fn = None
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _owner(pattern: re.Pattern, name: str) -> str | None:
    m = pattern.match(name)
    return m.group("owner") if m else None


def _pid(pattern: re.Pattern, name: str) -> int | None:
    m = pattern.match(name)
    return int(m.group("pid")) if m and m.group("pid") else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except OSError:
        return 0.0


def _fsync(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(p: Path) -> None:
    try:
        _fsync(p)
    except OSError:  # not every platform or file system syncs folders
        pass


def check_safetensors(
    path: str | os.PathLike, error: type[Exception] = ArtifactError, fix: str = ""
) -> None:
    """Refuse a safetensors file whose header cannot be read (empty, truncated, not safetensors).

    Reading the header costs microseconds and turns a failure deep inside a loader into an error
    that names the file. ``error`` is the exception type raised; ``fix`` says what to do.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as err:
        raise error(
            f"{path} is not a readable safetensors file ({err}); it is probably truncated or "
            f"corrupt{': ' + fix if fix else ''}"
        ) from err
