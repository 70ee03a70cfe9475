"""What a server holds: its loaded models and their queues, its jobs, its limits.

The HTTP layer (``_http``) only translates between requests and these methods; everything a
server decides (which model, whether a request is too big, what a job's state is) is here,
so it can be tested and reused without a socket.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ._analyses import prepare
from ._jobs import Job, ModelQueue, new_job_id

KEEP_JOBS = 1000  # ended jobs kept (with their results) before the oldest are forgotten


class RequestError(ValueError):
    """A request the server refuses; ``status`` is its HTTP status (400, 404, 409, 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """The most one request may ask for; None: no limit.

    Arguments:
        max_passes: the cost estimate's forward passes (``interp.cost``), e.g. 5000.
        max_prompts: prompt pairs of the task (or prompts of a head score).
    """

    max_passes: int | float | None = None
    max_prompts: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_passes", "max_prompts"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value} is not accepted; give a positive number or None")

    def check(self, prompts: int, estimate) -> None:
        """Raise ``RequestError`` (413) naming the limit and the request's size when over one."""
        if self.max_prompts is not None and prompts > self.max_prompts:
            raise RequestError(
                f"the request has {prompts} prompts; this server runs at most {self.max_prompts} "
                f"(its --max-prompts): ask for fewer (n)",
                413,
            )
        if self.max_passes is not None and estimate.passes > self.max_passes:
            raise RequestError(
                f"the request is about {estimate.passes:,.0f} forward passes ({estimate.work}); "
                f"this server runs at most {self.max_passes:,.0f} (its --max-passes): ask for "
                "fewer prompts, axes or steps, or run it on your own machine",
                413,
            )


def _is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is the library refusing its input (a 400), not a bug (a 500)."""
    from ..hooks import UnknownHookError

    return isinstance(err, ValueError | TypeError | IndexError | NotImplementedError) or (
        isinstance(err, UnknownHookError)
    )


class Workbench:
    """Loaded models (one queue each), the jobs submitted to them, and the limits.

    Arguments:
        models: ``{name: model}``, each loaded once; requests name one (or omit the name when
            there is only one).
        limits: what one request may ask for.
    """

    def __init__(self, models: dict[str, Any], limits: Limits | None = None):
        if not models:
            raise ValueError("models is empty; serve at least one model")
        self.limits = limits or Limits()
        self.changed = threading.Condition()
        self.queues = {
            name: ModelQueue(name, model, self.changed, _is_user_error)
            for name, model in models.items()
        }
        self.jobs: dict[str, Job] = {}

    def describe(self) -> dict[str, Any]:
        """The served models, the analyses and their arguments, the limits."""
        from ..models import provenance
        from ._registry import ANALYSES

        return {
            "models": {
                name: {"provenance": provenance(q.model), "waiting": len(q._waiting)}
                for name, q in self.queues.items()
            },
            "analyses": {
                a.name: {
                    "summary": a.summary,
                    "args": {
                        k: {"default": p.default, "help": p.help} for k, p in a.all_params().items()
                    },
                }
                for a in ANALYSES.values()
            },
            "limits": {
                "max_passes": self.limits.max_passes,
                "max_prompts": self.limits.max_prompts,
            },
        }

    def _queue(self, model: str | None) -> ModelQueue:
        if model is None:
            if len(self.queues) == 1:
                return next(iter(self.queues.values()))
            raise RequestError(f"give model: this server serves {', '.join(self.queues)}")
        if model not in self.queues:
            raise RequestError(
                f"model={model!r} is not served here; this server serves {', '.join(self.queues)}"
            )
        return self.queues[model]

    def submit(self, analysis: Any, args: Any) -> dict[str, Any]:
        """Check, plan and queue a request; its job's info. ``RequestError`` (400 for bad input,
        413 when over a limit) refuses it before it is queued."""
        if not isinstance(analysis, str):
            raise RequestError(f"analysis={analysis!r} is not accepted; give an analysis name")
        try:
            request = prepare(analysis, args if args is not None else {})
            queue = self._queue(request.model)
            plan = queue.plan(request)
        except RequestError:
            raise
        except Exception as err:
            if not _is_user_error(err):
                raise
            raise RequestError(" ".join(str(err).split())) from err
        self.limits.check(plan.prompts, plan.estimate)
        job = Job(new_job_id(), queue.name, request, plan)
        with self.changed:
            self._forget_old()
            self.jobs[job.id] = job
        queue.submit(job)
        return self.info(job.id)

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError(
                f"no job {job_id!r} on this server (finished jobs are kept a while)", 404
            )
        return job

    def info(self, job_id: str, wait: float | int = 0.0) -> dict[str, Any]:
        """The job's info; with ``wait`` seconds, a long poll: answered once the job's state or
        queue position changes, or the time is up."""
        job = self.job(job_id)
        queue = self.queues[job.model]
        deadline = time.monotonic() + max(0.0, wait)
        with self.changed:
            then = (job.state, queue.position(job))
            while (
                not job.ended_
                and (job.state, queue.position(job)) == then
                and (left := deadline - time.monotonic()) > 0
            ):
                self.changed.wait(left)
            return job.info(queue.position(job))

    def outcome(self, job_id: str):
        """A finished job's Result or CircuitGraph; ``RequestError`` while it has none."""
        job = self.job(job_id)
        if job.state == "done":
            return job.outcome
        if job.error is not None:
            raise RequestError(job.error, job.status or 500)
        raise RequestError(f"job {job_id} is {job.state}; its result is not ready", 409)

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.job(job_id)
        self.queues[job.model].cancel(job)
        return self.info(job_id)

    def close(self) -> None:
        for q in self.queues.values():
            q.stop()

    def _forget_old(self) -> None:
        ended = [j for j in self.jobs.values() if j.ended_]
        for job in sorted(ended, key=lambda j: j.ended or 0)[: max(0, len(ended) - KEEP_JOBS)]:
            del self.jobs[job.id]
