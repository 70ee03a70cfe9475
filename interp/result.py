"""Result: the labelled array every analysis returns.

A Result is a tensor of values plus what is needed to read it without the code that made it: the
name of each axis with a label for every index (``layer`` 0..L-1, ``pos`` with its token string,
``head``, ``feature``), what the values measure (``metric``), and how they were made
(``provenance``: model, task, method, settings, library version). It saves itself as safetensors
(values) beside JSON (everything else), written to temporary names and renamed, and plots itself
with plotly.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


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
            i = key if isinstance(key, int) else labels[axis].index(key)
            values = values.select(dim, i)
            axes.pop(dim)
            labels.pop(axis)
        return Result(values, tuple(axes), self.metric, labels, dict(self.provenance))

    def top(self, k: int = 5) -> list[tuple[dict[str, str], float]]:
        """The ``k`` largest entries as ``({axis: label}, value)`` pairs."""
        flat = self.values.flatten()
        k = min(k, flat.numel())
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

    # -- saving --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path.safetensors`` and ``path.json`` atomically (temporary name, then rename)."""
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".safetensors") else base
        base.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "axes": list(self.axes),
            "labels": self.labels,
            "metric": self.metric,
            "provenance": self.provenance,
        }
        text = json.dumps(meta, indent=1, default=str)
        tensors = base.with_name(base.name + ".safetensors")
        jsonfile = base.with_name(base.name + ".json")
        _atomic(tensors, lambda tmp: save_file({"values": self.values.contiguous()}, tmp))
        _atomic(jsonfile, lambda tmp: Path(tmp).write_text(text))
        return base

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".json", ".safetensors") else base
        meta = json.loads(base.with_name(base.name + ".json").read_text())
        values = load_file(base.with_name(base.name + ".safetensors"))["values"]
        return cls(values, tuple(meta["axes"]), meta["metric"], meta["labels"], meta["provenance"])

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


def _atomic(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("interp")
    except Exception:
        return "unknown"
