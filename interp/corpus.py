"""Natural English text available offline: Jane Austen's six novels, as token windows.

Dictionaries trained on a real model need the kind of text the model read, not random tokens and
not the organisms' Python source. The text here is Jane Austen's six completed novels (*Sense and
Sensibility*, *Pride and Prejudice*, *Mansfield Park*, *Emma*, *Northanger Abbey*, *Persuasion*:
about 730,000 words, public domain, from Project Gutenberg) as Debian's package
``r-cran-janeaustenr`` ships them (the R package ``janeaustenr`` by Julia Silge, MIT licence).
Only its data files are used, so R itself is not needed: ``scripts/setup`` unpacks the package into
``.venv/share/interp/janeaustenr`` (``apt-get download r-cran-janeaustenr`` and ``dpkg-deb -x``);
``apt-get install r-cran-janeaustenr`` works as well. The data are R's lazy-load database (one
zlib-compressed, serialised character vector of lines per novel), read by the small reader at the
end of this module.

Lines are joined into paragraphs (blank lines separate paragraphs in the source; runs of spaces
become one), paragraphs by ``"\\n\\n"``. The **held-out split** is the last 10% of each novel's
paragraphs, so it covers every book and training never sees it; **train** is the rest. A split is
tokenised as one stream (novels separated by the tokenizer's end-of-text token) and cut into
consecutive, non-overlapping windows, each led by the BOS token as the organisms' windows are::

    windows = token_windows(model.tokenizer, seq_len=128, split="held_out")  # [n, 128]
    for batch in window_batches(model.tokenizer, 128, batch=32, seed=0):    # shuffled, seeded
        ...
    sample = window_sampler(model.tokenizer, 128)   # sample(n, generator), for trainers
    fixed = spaced_windows(model.tokenizer, 16)     # evenly spaced held-out windows
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from .artifacts import atomic_file

NOVELS = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
SPLITS = ("train", "held_out")
HELD_OUT_FRACTION = 0.1
LICENCE = "texts: public domain (Project Gutenberg); janeaustenr package: MIT (Julia Silge)"
# where R (and so `apt-get install r-cran-janeaustenr`) puts packages
_R_LIBRARIES = tuple(
    Path(p) / "janeaustenr"
    for p in ("/usr/lib/R/site-library", "/usr/local/lib/R/site-library", "/usr/lib/R/library")
)
_INSTALL = (
    "Jane Austen's novels come from Debian's r-cran-janeaustenr package: run scripts/setup (it "
    "unpacks the package into .venv/share/interp/janeaustenr), or `apt-get install "
    "r-cran-janeaustenr`, or set INTERP_AUSTEN_DIR to a folder holding the R package "
    "janeaustenr (its data/Rdata.rdb and data/Rdata.rdx)"
)


def austen_dir() -> Path:
    """The installed R package ``janeaustenr``: ``$INTERP_AUSTEN_DIR``, the virtualenv, or R's.

    Raises:
        FileNotFoundError: none of those places holds its data, with how to install it.
    """
    env = os.environ.get("INTERP_AUSTEN_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(sys.prefix) / "share" / "interp" / "janeaustenr", *_R_LIBRARIES]
    for folder in candidates:
        if (folder / "data" / "Rdata.rdb").is_file() and (folder / "data" / "Rdata.rdx").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no English corpus found (looked in {looked}). {_INSTALL}")


def austen_novels() -> dict[str, str]:
    """``{title: text}`` for the six novels, in publication order; paragraphs joined by blank lines."""
    data = austen_dir() / "data"
    lines = _read_lazyload(data / "Rdata.rdx", data / "Rdata.rdb")
    missing = [key for key in NOVELS if key not in lines]
    if missing:
        raise ValueError(f"{data} lacks the novels {missing}; reinstall r-cran-janeaustenr")
    return {title: _paragraphs(lines[key]) for key, title in NOVELS.items()}


def split_texts(split: str = "train") -> dict[str, str]:
    """``{title: text}`` of one split: ``"train"`` (the first 90% of each novel's paragraphs) or
    ``"held_out"`` (the last 10%)."""
    _check_split(split)
    out = {}
    for title, text in austen_novels().items():
        paragraphs = text.split("\n\n")
        cut = len(paragraphs) - max(1, int(len(paragraphs) * HELD_OUT_FRACTION))
        part = paragraphs[:cut] if split == "train" else paragraphs[cut:]
        out[title] = "\n\n".join(part)
    return out


def token_stream(tokenizer, split: str = "train") -> Tensor:
    """One split as a 1-D token stream, novels separated by the end-of-text token (cached).

    The cache (``$INTERP_CACHE/corpus``) is keyed by the tokenizer's vocabulary, so two
    tokenizers never share one; it holds a plain tensor, loaded with ``weights_only``.
    """
    from .organisms import cache_dir

    _check_split(split)
    path = cache_dir() / "corpus" / f"austen-{split}-{_tokenizer_key(tokenizer)}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    sep = _separator(tokenizer)
    ids: list[int] = []
    for text in split_texts(split).values():
        if ids:
            ids.append(sep)
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
    stream = torch.tensor(ids, dtype=torch.long)
    with atomic_file(path) as f:
        torch.save(stream, f)
    return stream


def token_windows(
    tokenizer, seq_len: int = 128, split: str = "train", *, bos: bool = True
) -> Tensor:
    """Consecutive, non-overlapping windows of a split: ``[n, seq_len]``, in corpus order.

    Arguments:
        tokenizer: the model's tokenizer (``model.tokenizer``).
        seq_len: tokens per window, BOS included.
        split: ``"train"`` or ``"held_out"``.
        bos: lead each window with ``tokenizer.bos_token_id`` (then ``seq_len - 1`` text tokens).
    """
    if int(seq_len) < 2:
        raise ValueError(f"seq_len must be at least 2, got {seq_len}")
    stream = token_stream(tokenizer, split)
    body = int(seq_len) - 1 if bos else int(seq_len)
    n = len(stream) // body
    windows = stream[: n * body].reshape(n, body)
    if bos:
        if tokenizer.bos_token_id is None:
            raise ValueError("the tokenizer has no BOS token; pass bos=False")
        lead = torch.full((n, 1), int(tokenizer.bos_token_id), dtype=torch.long)
        windows = torch.cat([lead, windows], dim=1)
    return windows


def spaced_windows(tokenizer, n: int, seq_len: int = 128, split: str = "held_out") -> Tensor:
    """``n`` windows of a split, evenly spaced from its first to its last (so every novel is
    among them): the fixed evaluation batches of ``interp.dictionaries``."""
    windows = token_windows(tokenizer, seq_len, split)
    if not 1 <= int(n) <= len(windows):
        raise ValueError(f"n must be in 1..{len(windows)} ({split} windows), got {n}")
    return windows[torch.linspace(0, len(windows) - 1, int(n)).round().long()]


def window_batches(
    tokenizer,
    seq_len: int = 128,
    batch: int = 32,
    split: str = "train",
    *,
    seed: int = 0,
    epochs: int | None = 1,
) -> Iterator[Tensor]:
    """Yield ``[batch, seq_len]`` windows of a split in a seeded random order.

    Each epoch visits every window once (the last, partial batch of an epoch is dropped);
    ``epochs=None`` repeats forever with a fresh order each epoch.
    """
    windows = token_windows(tokenizer, seq_len, split)
    if int(batch) < 1 or int(batch) > len(windows):
        raise ValueError(f"batch must be in 1..{len(windows)} (windows in {split!r}), got {batch}")
    gen = torch.Generator().manual_seed(int(seed))
    epoch = 0
    while epochs is None or epoch < epochs:
        order = torch.randperm(len(windows), generator=gen)
        for s in range(0, len(order) - int(batch) + 1, int(batch)):
            yield windows[order[s : s + int(batch)]]
        epoch += 1


def window_sampler(tokenizer, seq_len: int = 128, split: str = "train"):
    """``sample(n, generator) -> [n, seq_len]``: windows drawn without replacement until all are
    used, then anew; the form ``interp.dictionaries.train_transcoders(next_tokens=...)`` takes."""
    windows = token_windows(tokenizer, seq_len, split)
    state: dict[str, Tensor | int] = {"order": torch.empty(0, dtype=torch.long), "at": 0}

    def sample(n: int, gen: torch.Generator) -> Tensor:
        rows = []
        while n > 0:
            order, at = state["order"], int(state["at"])
            if at >= len(order):
                state["order"], state["at"] = torch.randperm(len(windows), generator=gen), 0
                continue
            take = order[at : at + n]
            rows.append(windows[take])
            state["at"] = at + len(take)
            n -= len(take)
        return torch.cat(rows)

    return sample


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _separator(tokenizer) -> int:
    for token_id in (tokenizer.eos_token_id, tokenizer.bos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError("the tokenizer has neither an EOS nor a BOS token to separate the novels")


def _tokenizer_key(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    probe = tokenizer("It is a truth universally acknowledged", add_special_tokens=False)
    h = hashlib.sha256(repr((vocab, probe["input_ids"], tokenizer.bos_token_id)).encode())
    return h.hexdigest()[:16]


def _paragraphs(lines: list[str | None]) -> str:
    paragraphs, current = [], []
    for line in lines:
        line = (line or "").strip()
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(" ".join(current).split()))
            current = []
    if current:
        paragraphs.append(" ".join(" ".join(current).split()))
    return "\n\n".join(paragraphs)


# -- R's lazy-load database: just enough of R's serialisation format to read character vectors ----


def _read_lazyload(rdx: Path, rdb: Path) -> dict[str, list]:
    """``{name: value}`` of every object in an R lazy-load database (``.rdx`` index + ``.rdb``)."""
    try:
        index = _RReader(_unpack_rdx(rdx.read_bytes())).read()
        blob = rdb.read_bytes()
        out = {}
        for name, (offset, length) in index["variables"].items():
            chunk = blob[int(offset) : int(offset) + int(length)]
            out[name] = _RReader(zlib.decompress(chunk[4:])).read()
        return out
    except (KeyError, ValueError, TypeError, zlib.error, struct.error, OSError) as err:
        raise ValueError(f"cannot read the R data in {rdb.parent}: {err}. {_INSTALL}") from err


def _unpack_rdx(raw: bytes) -> bytes:
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return zlib.decompress(raw[4:])


class _RReader:
    """R's XDR serialisation (versions 2 and 3): vectors, pairlists and symbols, no closures.

    Returns strings as ``str`` (``None`` for ``NA``), atomic vectors as lists, a generic vector as
    a list (a dict when it has names), and a pairlist as a list of ``(tag, value)`` pairs; other
    attributes are dropped.
    """

    _NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC, _REF = (
        254,
        1,
        2,
        9,
        10,
        13,
        14,
        16,
        19,
        255,
    )
    _SPECIAL = {242, 241, 253, 252, 251, 247}  # the empty/base/global envs, unbound, missing

    def __init__(self, data: bytes):
        if data[:2] != b"X\n":
            raise ValueError("not R's XDR serialisation format")
        self.data, self.at, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()
        if version == 3:
            n = self.int()
            self.at += n  # skips the native encoding's name

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.at)
        self.at += 4
        return value

    def length(self) -> int:
        n = self.int()
        return (self.int() << 32) + self.int() if n == -1 else n

    def read(self):
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == self._NIL or kind in self._SPECIAL:
            return None
        if kind == self._REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == self._SYM:
            name = self.read()
            self.refs.append(name)
            return name
        if kind == self._LIST:
            pairs = []
            while True:
                if has_attr:
                    self.read()
                tag = self.read() if has_tag else None
                pairs.append((tag, self.read()))
                flags = self.int()
                kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
                if kind != self._LIST:
                    self.at -= 4
                    self.read()  # the list's end (NULL)
                    return pairs
        if kind == self._CHAR:
            n = self.int()
            if n == -1:
                return None
            text = self.data[self.at : self.at + n].decode("utf-8", errors="replace")
            self.at += n
            return text
        if kind in (self._LGL, self._INT):
            n = self.length()
            value = list(struct.unpack_from(f">{n}i", self.data, self.at))
            self.at += 4 * n
        elif kind == self._REAL:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.at))
            self.at += 8 * n
        elif kind in (self._STR, self._VEC):
            value = [self.read() for _ in range(self.length())]
        else:
            raise ValueError(f"R object of type {kind} is not supported by this reader")
        if has_attr:
            names = dict(self.read() or []).get("names")
            if kind == self._VEC and names is not None:
                return dict(zip(names, value))
        return value
