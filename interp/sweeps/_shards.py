"""Shards: one analysis on one model and one prompt set, named by JSON so any process can run it.

A shard is data, not code: the name of an analysis in :data:`ANALYSES`, a model spec that
:func:`interp.models.load_model` takes, and JSON-like arguments. Any process (a Ray worker on
another machine, or this one in a plain loop) rebuilds the model and the task from those names,
so nothing holding a model is ever pickled, and a shard's content hash (:attr:`Shard.key`) names
its result on disk. :func:`plan` lays shards out on a grid (models or checkpoints x prompt sets)
and :func:`gather` stacks their Results into one, with a leading axis per grid dimension.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..result import Result


@dataclass(frozen=True)
class Analysis:
    """An analysis a shard can name.

    Arguments:
        name: the name shards and the CLI use (``"patch"``).
        help: what it computes, in a line.
        takes_task: it reads a shipped task (``task`` and ``task_args``), so it can be swept
            over prompt sets.
        defaults: every other argument it takes, with its default (JSON-like values).
        run: ``(model, args) -> Result`` with ``args`` holding every key of ``defaults``.
    """

    name: str
    help: str
    takes_task: bool
    defaults: dict[str, Any]
    run: Callable[[Any, dict[str, Any]], Result]


def _task(model, args: dict):
    from ..tasks import make_task

    return make_task(args["task"], model, **args["task_args"])


def _patch(model, args: dict) -> Result:
    from ..patching import patch_sweep

    return patch_sweep(
        model,
        _task(model, args),
        args["site"],
        tuple(args["by"]),
        args["direction"],
        normalize=args["normalize"],
        max_tokens=args["max_tokens"],
        progress=False,
    )


def _eap(model, args: dict) -> Result:
    from ..discovery import edge_scores

    return edge_scores(model, _task(model, args), method=args["method"], ig_steps=args["ig_steps"])


def _heads(model, args: dict) -> Result:
    from ..heads import score_heads

    prompt = args["prompt"]
    return score_heads(model, args["score"], model.to_tokens(prompt) if prompt else None)


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            "patch",
            "activation patching sweep (interp.patch_sweep)",
            True,
            {
                "site": "z",
                "by": ["layer", "pos", "head"],
                "direction": "denoise",
                "normalize": False,
                "max_tokens": 32_768,
            },
            _patch,
        ),
        Analysis(
            "eap",
            "edge attribution patching scores (interp.discovery.edge_scores)",
            True,
            {"method": "EAP", "ig_steps": 5},
            _eap,
        ),
        Analysis(
            "heads",
            "a head score by name (interp.heads.score_heads)",
            False,
            {"score": "induction", "prompt": None},
            _heads,
        ),
    )
}


@dataclass(frozen=True)
class Shard:
    """One unit of a sweep: ``analysis`` on ``model`` with ``args``, at ``where`` in the grid.

    ``where`` (``{"prompt_set": "seed=0"}``) places the shard's Result in the gathered one; it is
    not part of :attr:`key`, which hashes only what the numbers depend on.
    """

    analysis: str
    model: str
    args: dict[str, Any]
    where: dict[str, str] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """What the shard computes, as JSON: ``analysis``, ``model`` and ``args``."""
        return {"analysis": self.analysis, "model": self.model, "args": self.args}

    @property
    def key(self) -> str:
        """A content hash of :meth:`spec` (16 hex digits): the same work has the same key."""
        text = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {**self.spec(), "where": self.where, "key": self.key}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shard:
        return cls(data["analysis"], data["model"], data["args"], data.get("where", {}))


@dataclass(frozen=True)
class Plan:
    """The shards of a sweep in row-major order over ``axes`` (axis name -> labels)."""

    shards: list[Shard]
    axes: dict[str, list[str]]

    @property
    def key(self) -> str:
        """A content hash of every shard's key and the axes."""
        text = json.dumps([[s.key for s in self.shards], self.axes])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {"axes": self.axes, "shards": [s.to_json() for s in self.shards]}


def _json_like(value, arg: str):
    """``value`` as JSON gives it back (tuples become lists); refuse what JSON cannot carry."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{arg}={value!r} is not JSON-like ({err}); give strings, numbers, booleans, lists "
            "and dicts, so that a worker can rebuild it without the objects"
        ) from None


def plan(
    analysis: str,
    models: str | Sequence[str],
    *,
    seeds: Sequence[int] | None = None,
    task: str | None = None,
    task_args: dict[str, Any] | None = None,
    model_axis: str = "model",
    model_labels: Sequence[str] | None = None,
    **args: Any,
) -> Plan:
    """Lay out a sweep: ``analysis`` on every model (or checkpoint) and every prompt set.

    Arguments:
        analysis: a name in :data:`ANALYSES` (``"patch"``, ``"eap"``, ``"heads"``).
        models: one model spec or several (organism names, folders of checkpoints,
            ``"name@revision"``); several make a leading ``model_axis``.
        seeds: prompt sets: the task drawn with each seed; makes a ``"prompt_set"`` axis
            (after the model axis). Only for analyses that read a task.
        task: a shipped task (``interp.tasks.TASKS``), for analyses that read one.
        task_args: the task's own settings (``n``, ``period``, ``metric``, ...), except ``seed``
            when ``seeds`` is given.
        model_axis: the name of the models' axis: ``"model"`` or, say, ``"checkpoint"``.
        model_labels: a label per model (default: the specs as given).
        **args: the analysis' own arguments (``ANALYSES[analysis].defaults`` lists them).

    Returns:
        A :class:`Plan`; every shard's arguments are checked and complete (defaults filled in),
        so two plans that mean the same work share shard keys.

    Example:
        >>> p = plan("patch", "induction-2l", task="induction", seeds=[0, 1, 2], site="z")
        >>> p.axes
        {'prompt_set': ['seed=0', 'seed=1', 'seed=2']}
    """
    if analysis not in ANALYSES:
        raise ValueError(f"analysis={analysis!r} is not known; use one of {', '.join(ANALYSES)}")
    kind = ANALYSES[analysis]
    models = [models] if isinstance(models, str | Path) else list(models)
    if not models or not all(isinstance(m, str | Path) and str(m).strip() for m in models):
        raise ValueError(f"models={models!r} is not accepted; give one or more model specs")
    models = [str(m) for m in models]
    labels = list(model_labels) if model_labels is not None else models
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise ValueError(
            f"model_labels={labels!r} is not accepted; give one distinct label per model "
            f"({len(models)})"
        )
    unknown = sorted(set(args) - set(kind.defaults))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} is not an argument of analysis {analysis!r}; it takes "
            f"{', '.join(kind.defaults) or 'none'}"
        )
    full = _json_like({**kind.defaults, **args}, "args")
    _check_args(analysis, full)
    if kind.takes_task:
        full.update(_task_spec(task, task_args, seeds))
    elif task is not None or task_args or seeds is not None:
        raise ValueError(
            f"analysis {analysis!r} reads no task: task, task_args and seeds are not accepted; "
            "sweep it over models (or checkpoints)"
        )
    axes: dict[str, list[str]] = {}
    if len(models) > 1 or seeds is None:
        axes[model_axis] = labels
    sets = [None] if seeds is None else list(seeds)
    if seeds is not None:
        if not sets or len(set(sets)) != len(sets):
            raise ValueError(f"seeds={list(seeds)!r} is not accepted; give distinct integers")
        for s in sets:
            if isinstance(s, bool) or not isinstance(s, int):
                raise TypeError(f"seeds={list(seeds)!r} holds {s!r}; seeds must be integers")
        if model_axis == "prompt_set":
            raise ValueError("model_axis='prompt_set' is taken by the seeds' axis; use another")
        axes["prompt_set"] = [f"seed={s}" for s in sets]
    shards = []
    for model, label in zip(models, labels):
        for seed in sets:
            shard_args = json.loads(json.dumps(full))
            where = {model_axis: label} if model_axis in axes else {}
            if seed is not None:
                shard_args["task_args"]["seed"] = seed
                where["prompt_set"] = f"seed={seed}"
            shards.append(Shard(analysis, model, shard_args, where))
    return Plan(shards, axes)


def _task_spec(task, task_args, seeds) -> dict[str, Any]:
    from ..tasks import TASKS

    if task not in TASKS:
        raise ValueError(f"task={task!r} is not a shipped task; use one of {', '.join(TASKS)}")
    task_args = _json_like(dict(task_args or {}), "task_args")
    takes = [p for p in inspect.signature(TASKS[task]).parameters if p != "model"]
    bad = sorted(set(task_args) - set(takes))
    if bad:
        raise ValueError(
            f"task_args {', '.join(bad)} is not a setting of task {task!r}; it takes "
            f"{', '.join(takes)}"
        )
    if seeds is not None and "seed" in task_args:
        raise ValueError("task_args['seed'] and seeds are both given; give the seeds only")
    return {"task": task, "task_args": task_args}


def _check_args(analysis: str, args: dict) -> None:
    """Refuse, before any worker starts, the values the analysis itself would refuse."""
    if analysis == "patch":
        from ..patching import DIRECTIONS, SITE_AXES

        if args["site"] not in SITE_AXES:
            raise ValueError(
                f"site={args['site']!r} cannot be patched; sites: {', '.join(SITE_AXES)}"
            )
        by = args["by"]
        if isinstance(by, str) or not all(a in SITE_AXES[args["site"]] for a in by):
            raise ValueError(
                f"by={by!r} is not accepted for site {args['site']!r}: give a list of distinct "
                f"axes from {SITE_AXES[args['site']]}, with 'layer' among them"
            )
        if args["direction"] not in DIRECTIONS:
            raise ValueError(f"direction={args['direction']!r} is not accepted; use {DIRECTIONS}")
    elif analysis == "eap":
        from ..discovery import METHODS

        if args["method"] not in METHODS:
            raise ValueError(f"method={args['method']!r} is not accepted; use one of {METHODS}")
    elif analysis == "heads":
        from ..heads import HEAD_SCORES

        if args["score"] not in HEAD_SCORES:
            raise ValueError(
                f"score={args['score']!r} is not a head score; use one of {', '.join(HEAD_SCORES)}"
            )
        if HEAD_SCORES[args["score"]].reads_prompt and not args["prompt"]:
            raise ValueError(f"score={args['score']!r} reads a prompt; give prompt='...'")


@functools.lru_cache(maxsize=2)
def _model(spec: str, device: str | None):
    """The model ``spec`` on ``device``, loaded once per process (a Ray worker keeps it for the
    next shard of the same model)."""
    from ..models import load_model

    return load_model(spec, device=device)


def run_shard(shard: Shard, device: str | None = None) -> Result:
    """Compute one shard here: load its model (cached per process), run its analysis by name.

    The Result's provenance records the shard's spec under ``"shard"``.
    """
    if shard.analysis not in ANALYSES:
        raise ValueError(f"shard analysis {shard.analysis!r} is not one of {', '.join(ANALYSES)}")
    result = ANALYSES[shard.analysis].run(_model(shard.model, device), shard.args)
    result.provenance["shard"] = shard.spec()
    return result


def gather(results: Sequence[Result], axes: dict[str, list[str]]) -> Result:
    """Stack shard Results (in the plan's row-major order) into one, led by ``axes``.

    Every shard must have the same axes, shape and metric. An inner axis keeps its labels where
    all shards agree and gets plain indices where they differ (positions carry each prompt
    set's tokens); provenance entries equal in all shards stay at the top, and the rest, with
    such labels, are kept per shard in ``provenance["shards"]``.
    """
    sizes = [len(v) for v in axes.values()]
    if not results or len(results) != int(torch.tensor(sizes).prod()):
        raise ValueError(f"{len(results)} results do not fill the grid {axes}")
    first = results[0]
    for i, r in enumerate(results):
        if (r.axes, r.shape, r.metric) != (first.axes, first.shape, first.metric):
            raise ValueError(
                f"shard {i} gives {r!r} with shape {tuple(r.shape)} but shard 0 gives {first!r} "
                f"with shape {tuple(first.shape)}; shards must agree to be stacked"
            )
    lead = set(axes) & set(first.axes)
    if lead:
        raise ValueError(f"sweep axes {sorted(lead)} clash with the Result's own axes")
    labels = dict(axes)
    varying: list[str] = []
    for a in first.axes:
        if all(r.labels[a] == first.labels[a] for r in results):
            labels[a] = first.labels[a]
        else:
            labels[a] = [str(i) for i in range(len(first.labels[a]))]
            varying.append(a)
    keys = {k for r in results for k in r.provenance}
    common = {
        k: first.provenance[k]
        for k in first.provenance
        if all(k in r.provenance and r.provenance[k] == first.provenance[k] for r in results)
    }
    per_shard = [
        {
            **{k: r.provenance[k] for k in sorted(keys - set(common)) if k in r.provenance},
            **({"labels": {a: r.labels[a] for a in varying}} if varying else {}),
        }
        for r in results
    ]
    values = torch.stack([r.values for r in results]).reshape(*sizes, *first.shape)
    provenance = {**common, "sweep_axes": list(axes), "shards": per_shard}
    return Result(values, (*axes, *first.axes), first.metric, labels, provenance)
