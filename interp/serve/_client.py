"""A client of an ``interp serve`` server: run analyses on the GPU host by name and arguments.

The client sends an analysis's name and JSON arguments, never code; it waits for the job (long
polls, so a queued job's position is seen as it moves), and reads back the ``Result`` or
``CircuitGraph`` from the files they save themselves as. The numbers equal a local run's on the
same model. ``url`` and ``token`` default to ``INTERP_REMOTE`` and ``INTERP_TOKEN``.

Example:
    >>> client = Client("http://localhost:8765", token)
    >>> r = client.patch(model="induction-2l", task="induction", by=["layer", "head"])
    >>> r.top(3)
    >>> circuit = client.discover(method="EAP", top_n=20)
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from ..graph import CircuitGraph
from ..result import Result
from ._wire import unpack

POLL = 30.0  # seconds one long poll waits on the server


class RemoteError(ValueError):
    """The server refused a request or a job failed; ``status`` is the HTTP status (400 bad
    arguments, 401 token, 404 unknown job, 409 not ready or cancelled, 413 too big, 500 bug)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Client:
    """A connection to one server.

    Arguments:
        url: the server's address, ``http://host:port`` or ``https://...``; default
            ``$INTERP_REMOTE``.
        token: the server's bearer token; default ``$INTERP_TOKEN``.
        cafile: a PEM certificate to trust for HTTPS (a self-signed server certificate); default
            the system's trusted certificates.
        timeout: seconds to wait for the server to answer one request.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        cafile: str | None = None,
        timeout: float | int = 60.0,
    ):
        url = url or os.environ.get("INTERP_REMOTE")
        token = token or os.environ.get("INTERP_TOKEN")
        if not url:
            raise ValueError("url is not given; give the server's http(s)://host:port or set "
                             "INTERP_REMOTE")  # fmt: skip
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url={url!r} is not accepted; give http://host:port or https://...")
        if not token:
            raise ValueError(
                "token is not given; give the token the server printed at start (or its "
                "--token-file) as token=, or set INTERP_TOKEN"
            )
        self.url = url.rstrip("/")
        self._token = token.strip()
        self.timeout = timeout
        self._context = (
            ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the token

    # -- the endpoints ---------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, timeout: float | int | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(
                request, timeout=timeout or self.timeout, context=self._context
            ) as answer:
                payload = answer.read()
                if answer.headers.get_content_type() == "application/json":
                    return json.loads(payload)
                return payload
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace") or err.reason
            raise RemoteError(f"{message} (server {self.url}, HTTP {err.code})", err.code) from None
        except urllib.error.URLError as err:
            raise ConnectionError(
                f"cannot reach the interp server {self.url}: {err.reason}"
            ) from err

    def health(self) -> bool:
        return bool(self._call("GET", "/v1/health").get("ok"))

    def models(self) -> dict[str, Any]:
        """The served models, the analyses with their arguments and defaults, the limits."""
        return self._call("GET", "/v1/models")

    def submit(self, analysis: str, **args: Any) -> dict[str, Any]:
        """Queue ``analysis`` with ``args``; the job's info (``id``, ``position``, ``estimate``).
        Raises ``RemoteError`` 400 for bad arguments, 413 over a server limit."""
        return self._call("POST", "/v1/jobs", {"analysis": analysis, "args": args})

    def job(self, job_id: str, wait: float | int = 0.0) -> dict[str, Any]:
        """A job's info; with ``wait``, once it ended or ``wait`` seconds passed (at most 60)."""
        return self._call("GET", f"/v1/jobs/{job_id}?wait={wait:g}", timeout=wait + self.timeout)

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict], None] | None = None,
        timeout: float | int | None = None,
    ) -> dict[str, Any]:
        """Long-poll until the job ends; ``on_update(info)`` sees each answer (queue position,
        progress). ``TimeoutError`` after ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"job {job_id} did not end within {timeout} s")
            info = self.job(job_id, wait=left)
            if on_update is not None:
                on_update(info)
            if info["state"] in ("done", "failed", "cancelled"):
                return info

    def result(self, job_id: str) -> Result | CircuitGraph:
        """A finished job's Result or CircuitGraph; ``RemoteError`` with the job's error (400,
        500) for a failed one, 409 for one not finished."""
        return unpack(self._call("GET", f"/v1/jobs/{job_id}/result"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/jobs/{job_id}")

    def run(
        self,
        analysis: str,
        *,
        on_update: Callable[[dict], None] | None = None,
        timeout: float | int | None = None,
        **args: Any,
    ) -> Result | CircuitGraph:
        """Submit, wait, and read back: the Result or CircuitGraph the analysis returns.

        Arguments:
            analysis: ``"patch"``, ``"path_patch"``, ``"attribute"``, ``"head_scores"`` or
                ``"discover"`` (``models()`` lists them with their arguments).
            on_update: called with the job's info as it waits (queue position, progress).
            timeout: seconds to wait for the job; None: as long as it takes.
            args: the analysis's arguments: ``model`` (a served model's name; optional when the
                server serves one), ``task`` and its settings (``n``, ``seed``, ``metric``, ...),
                and the analysis's own (``site``, ``by``, ...).
        """
        job = self.submit(analysis, **args)
        if on_update is not None:
            on_update(job)
        self.wait(job["id"], on_update, timeout)
        return self.result(job["id"])

    # -- typed wrappers ----------------------------------------------------------------------
    def patch(
        self,
        model: str | None = None,
        task: str = "induction",
        site: str = "z",
        by: Sequence[str] = ("layer", "pos", "head"),
        direction: str = "denoise",
        normalize: bool = False,
        **task_settings: Any,
    ) -> Result:
        """``interp.patch_sweep`` on the server; see ``run`` for ``task_settings``."""
        return self.run(
            "patch", model=model, task=task, site=site, by=list(by), direction=direction,
            normalize=normalize, **task_settings,
        )  # fmt: skip

    def path_patch(
        self,
        model: str | None = None,
        task: str = "induction",
        receivers: str | Sequence = "logits",
        direction: str = "noise",
        sender_positions: Sequence[int | str] | None = None,
        receiver_positions: Sequence[int | str] | None = None,
        normalize: bool = False,
        **task_settings: Any,
    ) -> Result:
        """``interp.path_patch_sweep`` on the server."""
        return self.run(
            "path_patch", model=model, task=task, receivers=receivers, direction=direction,
            sender_positions=sender_positions, receiver_positions=receiver_positions,
            normalize=normalize, **task_settings,
        )  # fmt: skip

    def attribute(
        self, model: str | None = None, task: str = "induction", site: str = "z",
        compare: bool = False, direction: str = "denoise", **task_settings: Any,
    ) -> Result:  # fmt: skip
        """``interp.attribution_patch`` of one site on the server."""
        return self.run(
            "attribute", model=model, task=task, site=site, compare=compare,
            direction=direction, **task_settings,
        )  # fmt: skip

    def head_scores(
        self, model: str | None = None, score: str = "induction", prompt: str | None = None
    ) -> Result:
        """``interp.heads.score_heads`` on the server."""
        return self.run("head_scores", model=model, score=score, prompt=prompt)

    def discover(
        self, model: str | None = None, task: str = "induction", method: str = "EAP-IG",
        top_n: int = 40, **settings: Any,
    ) -> CircuitGraph:  # fmt: skip
        """A circuit with its faithfulness (``interp discover``) on the server."""
        return self.run("discover", model=model, task=task, method=method, top_n=top_n, **settings)
