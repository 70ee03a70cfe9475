"""A catalogue entry as typed records, parsed once from its ``entry.json``.

``entry.json`` stays a plain JSON object (old entries load unchanged, and a reader without
``interp`` can still read it); :func:`parse_entry` checks it once, when the entry is loaded or
written, and gives every reader typed fields instead of ``info.get(...)`` guesses. A malformed
file fails there, with an error naming the file and the field, not later in a page that reads
one key of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ..artifacts import ArtifactError
from ..graph import CircuitGraph

FAITHFUL = 0.8  # the share of the behaviour a circuit must recover to be called faithful

Level = Literal["heads", "features"]
"""What a circuit's nodes are: model components (heads, MLPs) or dictionary features."""
LEVELS: tuple[Level, ...] = get_args(Level)

Ablation = Literal["zero", "mean", "resample"]
"""How everything outside the circuit is knocked out when its faithfulness is measured."""
ABLATIONS: tuple[Ablation, ...] = get_args(Ablation)


@dataclass(frozen=True, eq=False)
class Faithfulness(Mapping[str, float]):
    """The share of the full model's behaviour the circuit alone recovers, per ablation.

    ``1`` means the circuit does the whole task with everything outside it ablated; ``None``
    means that ablation was not measured. It reads as a mapping over the measured ablations
    (``dict(f)`` is what ``entry.json`` stores), so code that took the old dict keeps working.

    Example:
        >>> f = Faithfulness(zero=0.1, mean=0.2, resample=0.9)
        >>> f.faithful, f["resample"], f.as_dict()
        (True, 0.9, {'zero': 0.1, 'mean': 0.2, 'resample': 0.9})
    """

    zero: float | None = None
    mean: float | None = None
    resample: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The measured ablations in the order zero, mean, resample (as ``entry.json`` holds)."""
        return {how: value for how in ABLATIONS if (value := getattr(self, how)) is not None}

    def __getitem__(self, how: str) -> float:
        measured = self.as_dict()
        if how not in measured:
            raise KeyError(how)
        return measured[how]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    @property
    def faithful(self) -> bool:
        """Whether the circuit recovers at least ``FAITHFUL`` of the behaviour under resample
        ablation, the standard counterfactual: zero and mean ablation push the model off its
        distribution, so only resample says whether the circuit is the mechanism."""
        return self.resample is not None and self.resample >= FAITHFUL

    @property
    def verdict(self) -> str:
        """One line a reader sees first: whether to trust the circuit, and why."""
        f = self.resample
        if f is None:
            return "faithfulness not measured under resample ablation: do not rely on it"
        if self.faithful:
            return f"faithful: it recovers {f:.0%} of the behaviour (resample ablation)"
        return (
            f"NOT FAITHFUL: with everything outside it ablated (resample) it recovers {f:.0%} "
            f"of the behaviour, under the {FAITHFUL:.0%} a circuit needs; read it as a sketch"
        )


@dataclass(frozen=True)
class TaskSpec:
    """The task as data: a shipped task's name, its arguments and the metric it reports.

    Feature-level entries explain one prompt pair, named ``induction-prompt``; their metric is
    the attribution graph's target logit, so ``metric`` is ``None``.
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None


@dataclass(frozen=True)
class MethodSpec:
    """How the circuit was found: the method's name and only the settings it used
    (``top_n``, ``ig_steps`` for EAP-IG, ``steps`` for Edge Pruning, thresholds for features)."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HeadEffect:
    """A head kept by head patching, with the change in the metric when it alone is patched."""

    head: str
    effect: float


@dataclass(frozen=True)
class Example:
    """The first prompt pair of the task, as text, so a reader sees what the circuit does."""

    clean: str
    corrupted: str
    answer: str | None = None


@dataclass(frozen=True)
class Entry:
    """One catalogue entry as stored: ``entry.json`` plus its graph folder.

    Built by :func:`parse_entry` (through :func:`~interp.catalogue.load_entry`,
    :func:`~interp.catalogue.entries` or :func:`~interp.catalogue.write_entry`), never by hand.
    ``info`` is the raw JSON object, kept for keys the typed fields do not cover
    (``model_provenance``, ``circuit_features``) and for writing the entry back unchanged.
    """

    name: str
    folder: Path
    info: dict[str, Any]
    title: str
    model: str
    level: Level
    task_spec: TaskSpec
    method: MethodSpec
    faithfulness: Faithfulness
    nodes: int | None = None
    edges: int | None = None
    clean_metric: float | None = None
    corrupted_metric: float | None = None
    example: Example | None = None
    notes: str = ""
    heads: tuple[HeadEffect, ...] = ()

    @property
    def faithful(self) -> bool:
        """Whether the circuit alone recovers at least ``FAITHFUL`` of the behaviour under the
        standard counterfactual (resample) ablation."""
        return self.faithfulness.faithful

    @property
    def verdict(self) -> str:
        """One line a reader sees first: whether to trust the circuit, and why."""
        return self.faithfulness.verdict

    def graph(self) -> CircuitGraph:
        return CircuitGraph.load(self.folder / "graph")

    def task(self, model):
        """The entry's task rebuilt for ``model`` (:func:`interp.tasks.make_task`)."""
        from ..tasks import make_task

        return make_task(self.task_spec.name, model, **self.task_spec.args)


def parse_entry(folder: Path, info: Any) -> Entry:
    """Check ``info`` (the JSON of ``folder/entry.json``) and return its typed :class:`Entry`.

    Raises:
        ArtifactError: naming the file and the field, when a required field (``model``,
            ``task``, ``method``, ``faithfulness``) is missing or a field has the wrong type.
    """
    where = folder / "entry.json"
    fields = _Fields(where, info, "")
    if not isinstance(info, dict):
        raise ArtifactError(f"{where}: expected a JSON object, got {type(info).__name__}")
    level = fields.text("level", default="heads")
    if level not in LEVELS:
        raise ArtifactError(f"{where}: level {level!r} is not one of {', '.join(LEVELS)}")
    task = fields.part("task")
    method = fields.part("method")
    faith = fields.part("faithfulness")
    unknown = sorted(set(faith.raw) - set(ABLATIONS))
    if unknown:
        raise ArtifactError(
            f"{where}: faithfulness has unknown ablation(s) {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(ABLATIONS)}"
        )
    return Entry(
        name=folder.name,
        folder=folder,
        info=info,
        title=fields.text("title", default=folder.name),
        model=fields.text("model"),
        level=level,
        task_spec=TaskSpec(
            task.text("name"), task.part("args", default={}).raw, task.text("metric", None)
        ),
        method=MethodSpec(
            method.text("name"), {k: v for k, v in method.raw.items() if k != "name"}
        ),
        faithfulness=Faithfulness(**{how: faith.number(how, None) for how in ABLATIONS}),
        nodes=fields.count("nodes"),
        edges=fields.count("edges"),
        clean_metric=fields.number("clean_metric", None),
        corrupted_metric=fields.number("corrupted_metric", None),
        example=_example(fields),
        notes=fields.text("notes", default=""),
        heads=tuple(HeadEffect(h.text("head"), h.number("effect")) for h in fields.items("heads")),
    )


def _example(fields: _Fields) -> Example | None:
    if fields.raw.get("example") is None:
        return None
    example = fields.part("example")
    return Example(example.text("clean"), example.text("corrupted"), example.text("answer", None))


_REQUIRED: Any = object()


@dataclass
class _Fields:
    """Typed reads of one JSON object of ``entry.json``; errors name the file and the field."""

    where: Path
    raw: Any
    prefix: str

    def _get(self, key: str, default: Any) -> Any:
        if not isinstance(self.raw, dict):
            raise ArtifactError(
                f"{self.where}: {self.prefix.rstrip('.')!r} should be a JSON object, "
                f"got {self.raw!r}"
            )
        if key in self.raw:
            return self.raw[key]
        if default is _REQUIRED:
            raise ArtifactError(f"{self.where}: the field {self.prefix + key!r} is missing")
        return default

    def _wrong(self, key: str, value: Any, expected: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: {self.prefix + key!r} is {value!r}, not {expected}")

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, str):
            raise self._wrong(key, value, "a string")
        return value

    def number(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, value, "a number")
        return float(value)

    def count(self, key: str) -> int | None:
        value = self._get(key, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self._wrong(key, value, "a whole number")
        return value

    def part(self, key: str, default: Any = _REQUIRED) -> _Fields:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._wrong(key, value, "a JSON object")
        return _Fields(self.where, value, f"{self.prefix}{key}.")

    def items(self, key: str) -> list[_Fields]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise self._wrong(key, value, "a list")
        return [_Fields(self.where, v, f"{self.prefix}{key}[{i}].") for i, v in enumerate(value)]
