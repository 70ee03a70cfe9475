"""Result: the labelled array every analysis returns.

A Result is a tensor of values plus what is needed to read it without the code that made it: the
name of each axis with a label for every index (``layer`` 0..L-1, ``pos`` with its token string,
``head``, ``feature``), what the values measure (``metric``), and how they were made
(``provenance``: model, task, method, settings, library version). It saves itself as safetensors
(values) beside JSON (everything else, with the name and hash of the values file, so that the
JSON is the one commit point of a save), and plots itself with plotly.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .artifacts import (
    STALE_SECONDS,
    ArtifactError,
    atomic_file,
    atomic_path,
    read_json,
    sha256_file,
)


@dataclass
class Result:
    """Values with named, labelled axes, the metric they measure and their provenance.

    Arguments:
        values: the numbers, one tensor dimension per axis.
        axes: axis names in the order of ``values``' dimensions, e.g. ``("layer", "head")``.
        labels: for each axis, one string per index (defaults to ``"0"``, ``"1"``, ...).
        metric: what the values measure, e.g. ``"induction score"`` or ``"logit_diff (normalised)"``.
        provenance: how they were made: ``model``, ``method``, settings, ``interp_version``.
    """

    values: torch.Tensor
    axes: tuple[str, ...]
    metric: str
    labels: dict[str, list[str]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = self.values.detach().to("cpu")
        self.axes = tuple(self.axes)
        if self.values.dim() != len(self.axes):
            raise ValueError(
                f"values have {self.values.dim()} dimensions but axes={self.axes} names "
                f"{len(self.axes)}; give one axis name per dimension"
            )
        if len(set(self.axes)) != len(self.axes):
            raise ValueError(f"axis names must be distinct, got {self.axes}")
        for axis, size in zip(self.axes, self.values.shape):
            labels = self.labels.get(axis)
            if labels is None:
                self.labels[axis] = [str(i) for i in range(size)]
            elif len(labels) != size:
                raise ValueError(f"axis {axis!r} has {size} entries but {len(labels)} labels")
        unknown = set(self.labels) - set(self.axes)
        if unknown:
            raise ValueError(f"labels given for axes {sorted(unknown)} that are not in {self.axes}")
        self.provenance.setdefault("interp_version", _version())

    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def __repr__(self) -> str:
        dims = ", ".join(f"{a}={n}" for a, n in zip(self.axes, self.values.shape))
        return f"Result({self.metric!r}; {dims}; method={self.provenance.get('method')!r})"

    def sel(self, **index: int | str) -> Result:
        """Pick one entry along named axes, by position or by label: ``r.sel(layer=1)``."""
        values, axes, labels = self.values, list(self.axes), dict(self.labels)
        for axis, key in index.items():
            if axis not in axes:
                raise KeyError(f"no axis {axis!r}; axes are {tuple(axes)}")
            dim = axes.index(axis)
            size = values.shape[dim]
            if isinstance(key, bool) or not isinstance(key, int | str):
                raise TypeError(f"{axis}={key!r} must be an index (int) or a label (str)")
            if isinstance(key, str):
                if key not in labels[axis]:
                    shown = ", ".join(map(repr, labels[axis][:8]))
                    more = ", ..." if size > 8 else ""
                    raise KeyError(f"{axis}={key!r} is not a label of axis {axis!r}: {shown}{more}")
                i = labels[axis].index(key)
            elif not -size <= key < size:
                raise IndexError(
                    f"{axis}={key} is out of range for axis {axis!r} of size {size}: "
                    f"use 0..{size - 1} (or -{size}..-1 from the end), or a label"
                )
            else:
                i = key
            values = values.select(dim, i)
            axes.pop(dim)
            labels.pop(axis)
        return Result(values, tuple(axes), self.metric, labels, dict(self.provenance))

    @property
    def no_effect(self) -> float:
        """The value that means "no effect" (``provenance["no_effect"]``, else 0).

        For a patching sweep it is the metric of the unpatched run the patches go into: the
        corrupted run when denoising, the clean run when noising (0 and 1 when normalised).
        """
        return float(self.provenance.get("no_effect", 0.0))

    @property
    def effects(self) -> torch.Tensor:
        """``values - no_effect``: how far each entry moved the metric, with its sign."""
        return self.values - self.no_effect

    @property
    def reading(self) -> str:
        """One sentence saying what a value means and which sign is which."""
        if self.provenance.get("reading"):
            return self.provenance["reading"]
        if "no_effect" in self.provenance:
            return f"{self.metric}; no effect = {self.no_effect:.4g}"
        return self.metric

    def top(self, k: int = 5, by: str = "magnitude") -> list[tuple[dict[str, str], float]]:
        """The ``k`` most important entries as ``({axis: label}, value)`` pairs.

        Arguments:
            k: how many (``>= 0``).
            by: ``"magnitude"`` (default): the largest ``|value - no_effect|``, either sign, so
                a component that works against the behaviour (a negative name mover) is shown
                beside the ones that carry it; ``"largest"`` or ``"smallest"``: one end of the
                values.

        NaN entries (no value, e.g. an edge that does not exist) are never among them.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k={k!r} is not accepted; use an integer >= 0")
        if by not in TOP_ORDERS:
            raise ValueError(f"by={by!r} is not accepted; use one of {TOP_ORDERS}")
        flat = self.values.flatten().double()
        if by == "magnitude":
            flat = (flat - self.no_effect).abs()
        elif by == "smallest":
            flat = -flat
        known = ~flat.isnan()
        k = min(k, int(known.sum()))
        flat = flat.masked_fill(~known, float("-inf"))
        out = []
        for idx in flat.topk(k).indices.tolist():
            coords = []
            for size in reversed(self.values.shape):
                coords.append(idx % size)
                idx //= size
            coords.reverse()
            where = {a: self.labels[a][c] for a, c in zip(self.axes, coords)}
            out.append((where, float(self.values[tuple(coords)])))
        return out

    def summary(self, k: int = 5, by: str = "magnitude") -> str:
        """What the values mean, then the ``k`` most important entries (``top``), one a line.

        Heads are written ``L18H6``; each line shows the value and, where "no effect" is not 0,
        the effect (value minus no effect) with its sign.
        """
        top = self.top(k, by)  # checks k and by
        magnitude = "|effect|" if "no_effect" in self.provenance else "|value|"
        order = {
            "magnitude": f"largest {magnitude}, either sign",
            "largest": "largest values",
            "smallest": "smallest values",
        }[by]
        lines = [self.reading, f"top {k} by {order}:"]
        for where, value in top:
            line = f"  {where_label(where):32s} {value:+.4f}"
            if self.no_effect != 0:
                line += f"   effect {value - self.no_effect:+.4f}"
            lines.append(line)
        return "\n".join(lines)

    # -- saving --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.json`` and the values file it names, so that a crash keeps one whole version.

        Two files cannot be replaced together in one step, so the JSON is the single commit point:
        the values go first to a file of their own (``path.safetensors`` on the first save, a
        fresh ``path.<random>.safetensors`` when replacing), the JSON naming that file and its
        SHA-256 then replaces the old JSON in one rename, and only then is the previous values
        file deleted. Until that rename the old JSON still names the old, untouched values.
        """
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".safetensors") else base
        base.parent.mkdir(parents=True, exist_ok=True)
        jsonfile = base.with_name(base.name + ".json")
        previous = _values_name(base) if jsonfile.exists() else None
        name = base.name + ".safetensors"
        while previous is not None and name in (previous, base.name + ".safetensors"):
            name = f"{base.name}.{secrets.token_hex(4)}.safetensors"
        values = base.with_name(name)
        with atomic_path(values) as tmp:
            save_file({"values": self.values.contiguous()}, tmp)
        meta = {
            "axes": list(self.axes),
            "labels": self.labels,
            "metric": self.metric,
            "provenance": self.provenance,
            "values_file": name,
            "values_sha256": sha256_file(values),
        }
        with atomic_file(jsonfile, "w") as f:
            f.write(json.dumps(meta, indent=1, default=str))
        if previous is not None and previous != name:
            base.with_name(previous).unlink(missing_ok=True)
        _remove_orphans(base, keep=name)
        return base

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Read a Result written by :meth:`save` (also the older ``path.safetensors`` layout).

        Raises ``FileNotFoundError`` if a file is missing and ``ArtifactError`` (a ``ValueError``)
        naming the file if it is damaged or its values do not match the recorded hash.
        """
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".safetensors") else base
        jsonfile = base.with_name(base.name + ".json")
        meta = read_json(jsonfile)
        missing = [
            k
            for k in ("axes", "metric", "labels", "provenance")
            if not isinstance(meta, dict) or k not in meta
        ]
        if missing:
            raise ArtifactError(f"{jsonfile} is not a saved Result: no {', '.join(missing)} field")
        values_file = base.with_name(_values_name(base, meta))
        if not values_file.exists():
            raise FileNotFoundError(f"{values_file} is missing; {jsonfile} names it as its values")
        digest = meta.get("values_sha256")
        if digest is not None and sha256_file(values_file) != digest:
            raise ArtifactError(
                f"{values_file} does not match the SHA-256 recorded in {jsonfile}: the values "
                "file was changed or damaged after saving"
            )
        try:
            values = load_file(values_file)["values"]
        except Exception as err:
            raise ArtifactError(
                f"{values_file} is not a readable safetensors file ({err})"
            ) from err
        try:
            return cls(
                values, tuple(meta["axes"]), meta["metric"], meta["labels"], meta["provenance"]
            )
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"{jsonfile} does not fit its values: {err}") from err

    # -- plotting ------------------------------------------------------------------------------
    def plot(self, title: str | None = None, **kwargs: Any):
        """A plotly figure: a heatmap for 2 axes, a line for 1, facets for a leading third axis."""
        import plotly.express as px

        title = title or f"{self.metric} ({self.provenance.get('method', '')})"
        v = self.values.float().numpy()
        if v.ndim == 1:
            return px.line(
                x=self.labels[self.axes[0]],
                y=v,
                title=title,
                labels={"x": self.axes[0], "y": self.metric},
                **kwargs,
            )
        if v.ndim == 2:
            return px.imshow(
                v,
                x=_unique(self.labels[self.axes[1]]),
                y=_unique(self.labels[self.axes[0]]),
                title=title,
                labels={"x": self.axes[1], "y": self.axes[0], "color": self.metric},
                color_continuous_scale="RdBu",
                color_continuous_midpoint=0.0,
                aspect="auto",
                **kwargs,
            )
        if v.ndim == 3:
            return px.imshow(
                v,
                facet_col=0,
                facet_col_wrap=4,
                title=title,
                x=_unique(self.labels[self.axes[2]]),
                y=_unique(self.labels[self.axes[1]]),
                labels={"x": self.axes[2], "y": self.axes[1], "color": self.metric},
                color_continuous_scale="RdBu",
                color_continuous_midpoint=0.0,
                aspect="auto",
                **kwargs,
            )
        raise ValueError(f"plot() draws 1 to 3 axes; this Result has {self.axes}: use sel() first")


def _unique(labels: list[str]) -> list[str]:
    """Plotly merges equal category labels; make repeated token strings distinct."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label if n == 0 else f"{label} ({n})")
    return out


def _values_name(base: Path, meta: dict | None = None) -> str:
    """The values file the JSON of ``base`` names (``base.safetensors`` for older saves)."""
    if meta is None:
        try:
            meta = read_json(base.with_name(base.name + ".json"))
        except (OSError, ArtifactError):
            return base.name + ".safetensors"
    name = meta.get("values_file", base.name + ".safetensors") if isinstance(meta, dict) else None
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ArtifactError(
            f"{base}.json names values file {name!r}, which is not a file beside it"
        )
    return name


def _remove_orphans(base: Path, keep: str) -> None:
    """Values files of ``base`` that no JSON names: left by a save that died before its commit.

    Only files older than a minute go, so a concurrent save's uncommitted values stay."""
    pattern = re.compile(re.escape(base.name) + r"\.[0-9a-f]{8}\.safetensors")
    for p in base.parent.iterdir():
        if p.name != keep and pattern.fullmatch(p.name):
            try:
                if time.time() - p.stat().st_mtime > STALE_SECONDS:
                    p.unlink()
            except OSError:
                pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("interp")
    except Exception:
        return "unknown"


TOP_ORDERS = ("magnitude", "largest", "smallest")


def where_label(where: dict[str, str]) -> str:
    """``{"layer": "18", "head": "6", "pos": "5:Mary"}`` -> ``"L18H6 @ 5:Mary"``.

    A layer and a head together are written ``L18H6``, the way papers name heads; other axes
    follow as ``axis=label``.
    """
    rest = dict(where)
    parts = []
    if "layer" in rest and "head" in rest:
        parts.append(f"L{rest.pop('layer')}H{rest.pop('head')}")
    elif "layer" in rest:
        parts.append(f"L{rest.pop('layer')}")
    if "pos" in rest:
        parts.append(f"@ {rest.pop('pos')}")
    parts += [f"{a}={v}" for a, v in rest.items()]
    return " ".join(parts)
