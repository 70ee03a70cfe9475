"""The HTTP face of a server: JSON endpoints, bearer-token authentication and TLS.

Endpoints (all but ``/v1/health`` need ``Authorization: Bearer TOKEN``)::

    GET    /v1/health               {"ok": true}
    GET    /v1/models               served models, analyses with their arguments, limits
    POST   /v1/jobs                 {"analysis": "patch", "args": {...}} -> 202 and the job
    GET    /v1/jobs/ID?wait=S       the job: state, queue position, progress (waits up to S s)
    GET    /v1/jobs/ID/result       the Result or CircuitGraph as a tar of its saved files
    DELETE /v1/jobs/ID              cancel the job

Errors are JSON ``{"error": message, "status": code}``: 400 for arguments the analysis or the
library refuses, 401 for a missing or wrong token, 404 for an unknown job, 409 for a result not
ready, 413 for a request over a limit, 500 for a bug (the server keeps serving). The token is
compared with ``hmac.compare_digest``, so its value does not leak through timing; it is never
logged. Only the standard library is used: ``http.server.ThreadingHTTPServer`` and ``ssl``.
"""

from __future__ import annotations

import hmac
import json
import secrets
import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._wire import CONTENT_TYPE, kind_of, pack
from ._workbench import Limits, RequestError, Workbench

MAX_BODY = 1024 * 1024  # a request is a name and a few arguments
MAX_DISCARD = 64 * MAX_BODY  # an oversized body read to its end before the 413, up to this
MAX_WAIT = 60.0  # the longest long poll, seconds


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):  # the handshake, off the accept loop
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # -- answering -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, headers=()) -> None:
        body = json.dumps(data, default=str).encode()
        self._send(status, body, "application/json", headers)

    def _error(self, status: int, message: str, headers=()) -> None:
        self._json(status, {"error": message, "status": status}, headers)

    # -- routing ---------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if parts == ["v1", "health"] and method == "GET":
                return self._json(200, {"ok": True})
            if not self._authorised():
                self._drain()
                return self._error(
                    401,
                    "missing or wrong token: send 'Authorization: Bearer TOKEN' with the token "
                    "the server printed at start (or its --token-file / INTERP_TOKEN)",
                    [("WWW-Authenticate", 'Bearer realm="interp"')],
                )
            if parts == ["v1", "models"] and method == "GET":
                return self._json(200, self.server.workbench.describe())
            if parts == ["v1", "jobs"] and method == "POST":
                body = self._body()
                return self._json(202, self.server.workbench.submit(*body))
            if len(parts) == 3 and parts[:2] == ["v1", "jobs"] and method == "GET":
                wait = self._wait(parse_qs(url.query).get("wait", ["0"])[0])
                return self._json(200, self.server.workbench.info(parts[2], wait))
            if len(parts) == 3 and parts[:2] == ["v1", "jobs"] and method == "DELETE":
                return self._json(200, self.server.workbench.cancel(parts[2]))
            if len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "result":
                if method == "GET":
                    return self._result(parts[2])
            self._drain()
            self._error(404, f"no endpoint {method} {url.path}; see GET /v1/models")
        except RequestError as err:
            self._error(err.status, str(err))
        except Exception as err:  # a bug: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self._error(500, f"internal error on the server: {type(err).__name__}: {err}")

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        expected = self.server.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    def _drain(self) -> None:
        """Read (and drop) a body the client sent, so the connection stays usable."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True

    def _discard(self, length: int) -> None:
        """Read and drop an oversized body (up to ``MAX_DISCARD``) so that the client, still
        sending, reads the 413 instead of a broken pipe; close the connection after."""
        self.close_connection = True
        left = min(length, MAX_DISCARD)
        while left > 0 and (chunk := self.rfile.read(min(left, 65536))):
            left -= len(chunk)

    def _body(self) -> tuple[Any, Any]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise RequestError("the request needs a Content-Length header", 411)
        if int(length) > MAX_BODY:
            self._discard(int(length))
            raise RequestError(
                f"the request body is {int(length):,} bytes; this server reads at most "
                f"{MAX_BODY:,} (a request is an analysis name and its arguments)",
                413,
            )
        try:
            data = json.loads(self.rfile.read(int(length)) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(f"the request body is not JSON: {err}") from err
        if not isinstance(data, dict) or "analysis" not in data:
            raise RequestError(
                'the request body must be a JSON object {"analysis": NAME, "args": {...}}'
            )
        extra = sorted(set(data) - {"analysis", "args"})
        if extra:
            raise RequestError(f"the request body has unknown fields {extra}; give analysis, args")
        return data["analysis"], data.get("args")

    @staticmethod
    def _wait(value: str) -> float:
        try:
            wait = float(value)
        except ValueError:
            raise RequestError(
                f"wait={value!r} is not accepted; give seconds, like wait=30"
            ) from None
        return min(max(wait, 0.0), MAX_WAIT)

    def _result(self, job_id: str) -> None:
        outcome = self.server.workbench.outcome(job_id)
        body = pack(outcome)
        self._send(200, body, CONTENT_TYPE, [("X-Interp-Kind", kind_of(outcome))])

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class Server(ThreadingHTTPServer):
    """A workbench server: loaded models shared through queues, over HTTP(S).

    Arguments:
        models: ``{name: model}`` already loaded (a model is loaded once per server).
        host, port: where to listen; port 0 picks a free port (see ``url``). The default
            host keeps the server on this machine: reach it through an SSH tunnel, or give
            ``0.0.0.0`` with TLS.
        token: the bearer token clients must send; None: a fresh random one (``token``).
        certfile, keyfile: a PEM certificate and key for HTTPS; both or neither.
        limits: the most one request may ask for (``Limits``).
        quiet: no access log on stderr.

    Example:
        >>> server = Server({"induction-2l": load_model("induction-2l")}).start()
        >>> Client(server.url, server.token).run("patch", task="induction", by=["layer", "head"])
        >>> server.close()
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        models: dict[str, Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        limits: Limits | None = None,
        quiet: bool = False,
    ):
        if token is not None and not token.strip():
            raise ValueError("token is empty; give a secret string, or None for a random one")
        if (certfile is None) != (keyfile is None):
            raise ValueError("certfile and keyfile go together: give both for HTTPS, or neither")
        self.token = token.strip() if token is not None else secrets.token_urlsafe(32)
        self.quiet = quiet
        self.workbench = Workbench(models, limits)
        super().__init__((host, port), _Handler)
        self.tls = certfile is not None
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile, keyfile)
            self.socket = context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread: threading.Thread | None = None

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up or fails the TLS handshake gets one log line, not a traceback."""
        err = sys.exc_info()[1]
        if isinstance(err, ssl.SSLError | ConnectionError | TimeoutError):
            if not self.quiet:
                print(f"{client_address[0]}: connection dropped: {err}", file=sys.stderr)
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> Server:
        """Serve from a background thread (tests, notebooks); ``close`` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="interp-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, stop the queues' workers, close the socket."""
        if self._thread is not None:
            self.shutdown()
        self.workbench.close()
        self.server_close()


def read_token(token_file: str | None = None) -> str | None:
    """The token in ``token_file`` (its first line), else ``$INTERP_TOKEN``, else None (the
    server makes a random one). ``ValueError`` for an empty or unreadable file."""
    import os
    from pathlib import Path

    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip().splitlines()
        except OSError as err:
            raise ValueError(f"token_file {token_file!r} cannot be read: {err}") from err
        if not token or not token[0].strip():
            raise ValueError(f"token_file {token_file!r} is empty; write the token on its line 1")
        return token[0].strip()
    return os.environ.get("INTERP_TOKEN", "").strip() or None
