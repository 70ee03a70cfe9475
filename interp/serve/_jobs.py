"""Jobs and the queue that lets several users share one loaded model.

A server loads each model once and gives it one :class:`ModelQueue`: a first-in-first-out list
of jobs and one worker thread that runs them one at a time. Analyses attach hooks to the model,
so two of them at once would corrupt each other's numbers (``interp.hooks.locked`` serialises
them anyway); a queue makes that wait visible. A waiting job knows its place in the queue (0:
next), a running one its progress, a finished one its result or its error. Jobs on different
models run side by side.

A job is planned (its tokens and cost estimate) before it is queued, on a *twin* of the model:
the same weights and config, its own copy of the tokenizer and its own lock. Planning only
tokenizes, so a submission is answered, and a too-big one refused, while another job runs.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..adapter import adapter
from ._analyses import Plan, Request

# states a job goes through; "failed" and "cancelled" also end it
STATES = ("queued", "running", "done", "failed", "cancelled")
_ENDED = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside a running job's progress callback when the job was cancelled."""


@dataclass
class Job:
    """One submitted request, its place in its model's queue and, once run, its outcome.

    ``status`` is the HTTP status of a failure: 400 for input the library refused (its message
    in ``error``), 500 for a bug on the server.
    """

    id: str
    model: str
    request: Request
    plan: Plan
    state: str = "queued"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    progress: tuple[int, int] | None = None
    outcome: Any = None
    error: str | None = None
    status: int | None = None
    cancel: bool = False

    @property
    def ended_(self) -> bool:
        return self.state in _ENDED

    def info(self, position: int | None) -> dict[str, Any]:
        """The job as JSON: state, queue position (queued jobs), progress, timing, error."""
        est = self.plan.estimate
        info = {
            "id": self.id,
            "model": self.model,
            "request": self.request.describe(),
            "state": self.state,
            "position": position,
            "estimate": {"work": est.work, "passes": est.passes, "at_most": est.at_most},
            "prompts": self.plan.prompts,
            "submitted": self.submitted,
            "started": self.started,
            "ended": self.ended,
        }
        if self.progress is not None:
            info["progress"] = {"done": self.progress[0], "total": self.progress[1]}
        if self.state == "done":
            info["kind"] = "graph" if hasattr(self.outcome, "edge_weight") else "result"
        if self.error is not None:
            info["error"], info["status"] = self.error, self.status
        return info


def planning_twin(model):
    """A shallow copy of ``model`` with its own tokenizer and its own lock, for planning.

    It shares weights, hooks and config with ``model``; only tokenization runs on it (tasks are
    built and tokenized, never run), so it never touches what a running job's hooks change.
    """
    twin = copy.copy(model)  # a new object: a new adapter, with its own lock
    adapter(twin).provenance = adapter(model).provenance
    tokenizer = adapter(model).tokenizer
    if tokenizer is not None:
        twin.__dict__["tokenizer"] = copy.deepcopy(tokenizer)
    return twin


class ModelQueue:
    """The FIFO of one loaded model and the worker thread that runs its jobs one at a time."""

    def __init__(self, name: str, model, changed: threading.Condition, is_user_error):
        self.name = name
        self.model = model
        self.twin = planning_twin(model)
        self.plan_lock = threading.Lock()  # the twin's tokenizer serves one plan at a time
        self._changed = changed  # the server's condition, notified whenever any job changes
        self._is_user_error = is_user_error
        self._waiting: deque[Job] = deque()
        self._worker = threading.Thread(target=self._work, name=f"interp-serve-{name}")
        self._worker.daemon = True
        self._stop = False
        self._worker.start()

    def plan(self, request: Request) -> Plan:
        with self.plan_lock:
            return request.plan(self.twin)

    def submit(self, job: Job) -> None:
        with self._changed:
            self._waiting.append(job)
            self._changed.notify_all()

    def position(self, job: Job) -> int | None:
        """``job``'s place among the waiting jobs (0: it runs next); None once it started."""
        with self._changed:
            try:
                return self._waiting.index(job)
            except ValueError:
                return None

    def cancel(self, job: Job) -> None:
        """Cancel ``job``: a waiting one leaves the queue, a running one stops at its next
        progress report (analyses that report none finish first)."""
        with self._changed:
            if job in self._waiting:
                self._waiting.remove(job)
                self._end(job, "cancelled", "cancelled before it started", 409)
            elif not job.ended_:
                job.cancel = True

    def stop(self) -> None:
        with self._changed:
            self._stop = True
            self._changed.notify_all()

    def _end(self, job: Job, state: str, error: str | None = None, status: int | None = None):
        job.state, job.error, job.status, job.ended = state, error, status, time.time()
        self._changed.notify_all()

    def _next(self) -> Job | None:
        with self._changed:
            while not self._waiting and not self._stop:
                self._changed.wait()
            if self._stop:
                return None
            job = self._waiting.popleft()
            job.state, job.started = "running", time.time()
            self._changed.notify_all()
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:

            def progress(done: int, total: int, job: Job = job) -> None:
                if job.cancel:
                    raise Cancelled
                with self._changed:
                    job.progress = (done, total)
                    self._changed.notify_all()

            try:
                outcome = job.request.run(self.model, job.plan, progress=progress)
            except Cancelled:
                with self._changed:
                    self._end(job, "cancelled", "cancelled while it ran", 409)
                continue
            except Exception as err:  # the server keeps serving after a failed job
                user = self._is_user_error(err)
                message = " ".join(str(err).split()) or type(err).__name__
                if not user:
                    traceback.print_exc()
                    message = f"internal error on the server: {type(err).__name__}: {message}"
                with self._changed:
                    self._end(job, "failed", message, 400 if user else 500)
                continue
            with self._changed:
                job.outcome = outcome
                self._end(job, "done")


def new_job_id(counter=itertools.count(1)) -> str:
    """A job id that says its order of submission and cannot be guessed: ``j000003-9f2c1ab4``."""
    return f"j{next(counter):06d}-{secrets.token_hex(4)}"
