"""The analyses a server runs, by name, with JSON arguments checked before any work starts.

A client never sends code: it names an analysis (``"patch"``, ``"path_patch"``, ``"attribute"``,
``"head_scores"``, ``"discover"``) and gives its arguments as JSON values, the same settings the
command line takes (a shipped task by name with its settings, a site, the axes to sweep, ...).
:func:`prepare` checks them against the analysis's parameters (an unknown name, a wrong type or
a value outside the accepted ones raises ``ValueError`` naming the argument and what is
accepted); :meth:`Request.plan` builds the task's tokens and the cost estimate
(:mod:`interp.cost`) that the server's limits are checked against; :meth:`Request.run` calls the
library function and returns its ``Result`` or ``CircuitGraph``.

Example:
    >>> request = prepare("patch", {"task": "induction", "site": "z", "by": ["layer", "head"]})
    >>> plan = request.plan(model)
    >>> result = request.run(model, plan)  # == patch_sweep(model, batch, "z", ("layer", "head"))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cost import Estimate


@dataclass(frozen=True)
class Param:
    """One JSON argument: ``check(name, value)`` returns the value to use or raises ValueError."""

    check: Callable[[str, Any], Any]
    default: Any
    help: str


def _accepted(choices) -> str:
    choices = [str(c) for c in choices]
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


def choice(*choices: str) -> Callable[[str, Any], str]:
    def check(name, value):
        if value not in choices:
            raise ValueError(f"{name}={value!r} is not accepted; use {_accepted(choices)}")
        return value

    return check


def integer(minimum: int | None = None) -> Callable[[str, Any], int]:
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}={value!r} is not accepted; give an integer")
        if minimum is not None and value < minimum:
            raise ValueError(f"{name}={value} is not accepted; give an integer >= {minimum}")
        return value

    return check


def number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r} is not accepted; give a number")
    return float(value)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not accepted; give true or false")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}={value!r} is not accepted; give a string")
    return value


def _listed(value: Any) -> list:
    """A JSON list, or a comma-separated string as the command line gives it."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",")]
    return list(value) if isinstance(value, list | tuple) else [value]


def axes(name: str, value: Any) -> tuple[str, ...]:
    from ..patching import SITE_AXES

    got = _listed(value)
    accepted = sorted({a for site_axes in SITE_AXES.values() for a in site_axes})
    if not got or not all(isinstance(a, str) and a in accepted for a in got):
        raise ValueError(
            f"{name}={value!r} is not accepted; give a list of axes from {_accepted(accepted)}"
        )
    return tuple(got)


def positions(name: str, value: Any) -> list[int | str] | None:
    from ..positions import POSITION_NAMES

    if value is None:
        return None
    got = [int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v for v in _listed(value)]
    for item in got:
        if (
            not (isinstance(item, int) and not isinstance(item, bool))
            and item not in POSITION_NAMES
        ):
            raise ValueError(
                f"{name}={value!r} is not accepted: {item!r} is neither an integer nor a "
                f"position name ({_accepted(POSITION_NAMES)})"
            )
    return got


def receivers(name: str, value: Any) -> str | list[tuple[str, int, int]]:
    if value == "logits":
        return value
    parsed = []
    for item in _listed(value):
        parts = item.split(":") if isinstance(item, str) else item
        ok = isinstance(parts, list | tuple) and len(parts) == 3 and parts[0] in ("q", "k", "v")
        digits = ok and all(str(p).isdigit() for p in parts[1:])
        if not digits:
            raise ValueError(
                f"{name}={value!r} is not accepted; give 'logits' or head inputs like "
                "'q:1:0,k:1:2' or [['q', 1, 0], ['k', 1, 2]]"
            )
        parsed.append((parts[0], int(parts[1]), int(parts[2])))
    return parsed


def task_name(name: str, value: Any) -> str:
    from ..tasks import TASKS

    return choice(*TASKS)(name, value)


def metric(name: str, value: Any) -> str:
    from ..tasks import METRICS

    return choice(*METRICS)(name, value)


TASK_PARAMS = {
    "task": Param(task_name, "induction", "a shipped task: induction, variable-tracking, ioi"),
    "n": Param(integer(1), None, "how many prompt pairs (default: the task's)"),
    "seed": Param(integer(), None, "seed the prompts are drawn with"),
    "metric": Param(metric, None, "logit_diff, prob, loss or kl"),
    "period": Param(integer(3), None, "induction: repeated sequence length"),
    "hops": Param(integer(0), None, "variable-tracking: copies of the value"),
    "distractors": Param(integer(0), None, "variable-tracking: unrelated assignments"),
    "template": Param(integer(0), None, "ioi: sentence template"),
}


@dataclass(frozen=True)
class Analysis:
    """A named analysis: its own parameters (the task's are added when ``uses_task``), how much
    work a request is (``estimate``) and how to run it (``run``)."""

    name: str
    summary: str
    params: dict[str, Param]
    estimate: Callable[..., Estimate]
    run: Callable[..., Any]
    uses_task: bool = True

    def all_params(self) -> dict[str, Param]:
        return {**TASK_PARAMS, **self.params} if self.uses_task else dict(self.params)


@dataclass
class Plan:
    """What a request will run: its tokens (a ``TaskBatch``, or a prompt's tokens), how many
    prompts, and the cost estimate checked against the server's limits."""

    inputs: Any
    prompts: int
    estimate: Estimate


@dataclass
class Request:
    """A checked request: the analysis, the model name (None: the server's only model), the
    analysis's arguments and the task's settings."""

    analysis: Analysis
    model: str | None
    args: dict[str, Any]
    task_args: dict[str, Any] = field(default_factory=dict)

    def plan(self, model) -> Plan:
        """Tokens and estimate for ``model``; tokenizing only, so a twin of the model that has its
        own tokenizer and lock (the server's) plans while the model runs another job."""
        from ..tasks import make_task

        if self.analysis.uses_task:
            batch = make_task(self.args["task"], model, **self.task_args).tokens(model)
            return Plan(batch, batch.batch, self.analysis.estimate(model, batch, **self.args))
        tokens, estimate = self.analysis.estimate(model, None, **self.args)
        return Plan(tokens, 0 if tokens is None else int(tokens.shape[0]), estimate)

    def run(self, model, plan: Plan, progress: Callable[[int, int], None] | bool = False):
        """The analysis's ``Result`` or ``CircuitGraph`` on ``model``, from ``plan``'s tokens."""
        return self.analysis.run(model, plan.inputs, progress=progress, **self.args)

    def describe(self) -> dict[str, Any]:
        return {"analysis": self.analysis.name, **self.args, **self.task_args}


def prepare(name: str, args: dict[str, Any]) -> Request:
    """Check ``args`` (a JSON object) for the analysis ``name``; a :class:`Request`.

    ``model`` is taken out of ``args`` (a name the server serves, checked there). Raises
    ``ValueError`` naming the analysis or the argument and what is accepted.
    """
    from ..tasks import TASKS
    from ._registry import ANALYSES

    if name not in ANALYSES:
        raise ValueError(f"analysis {name!r} is not known; analyses: {', '.join(ANALYSES)}")
    if not isinstance(args, dict):
        raise ValueError(f"the arguments must be a JSON object, got {type(args).__name__}")
    analysis = ANALYSES[name]
    args = dict(args)
    model = args.pop("model", None)
    if model is not None and not isinstance(model, str):
        raise ValueError(f"model={model!r} is not accepted; give the name of a served model")
    params = analysis.all_params()
    unknown = [k for k in args if k not in params]
    if unknown:
        raise ValueError(
            f"{name} takes no argument {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(params)}"
        )
    checked, task_args = {}, {}
    for key, param in params.items():
        value = args.get(key, param.default)
        if key == "task":
            checked[key] = param.check(key, value)
        elif key in TASK_PARAMS:
            if value is not None:
                task_args[key] = param.check(key, value)
        else:
            checked[key] = (
                value if value is None and param.default is None else param.check(key, value)
            )
    if analysis.uses_task:
        takes = [p for p in inspect.signature(TASKS[checked["task"]]).parameters if p != "model"]
        for key in task_args:
            if key not in takes:
                raise ValueError(
                    f"{key} is not a setting of task {checked['task']!r}; it takes "
                    f"{', '.join(takes)}"
                )
    return Request(analysis, model, checked, task_args)
