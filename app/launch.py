"""Start the app: what ``interp app`` runs.

Example:
    >>> from app.launch import launch
    >>> launch("induction-2l", port=8501)  # serves until stopped (Ctrl-C)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"


def command(host: str = "127.0.0.1", port: int = 8501, headless: bool = True) -> list[str]:
    """The ``streamlit run`` command line that serves the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SCRIPT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true" if headless else "false",
        "--browser.gatherUsageStats",
        "false",
    ]


def environment(model: str) -> dict[str, str]:
    """The server's environment: the model to open first, and the repository on the path."""
    env = dict(os.environ)
    env["INTERP_APP_MODEL"] = model
    root = str(SCRIPT.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def launch(
    model: str = "induction-2l",
    host: str = "127.0.0.1",
    port: int = 8501,
    headless: bool = True,
) -> int:
    """Serve the app on ``host:port`` with ``model`` opened first, until it is stopped.

    On POSIX systems the process becomes the Streamlit server (``exec``) and never returns;
    elsewhere it runs the server as a child and returns its exit code.

    Arguments:
        model: any spec ``interp.load_model`` takes; the sidebar can change it later.
        host: the address to bind: ``127.0.0.1`` (this machine only) unless told otherwise.
        port: the TCP port.
        headless: do not open a browser window.
    """
    try:
        import streamlit  # noqa: F401
    except ImportError as err:
        raise RuntimeError("the app needs streamlit: pip install 'interp[app]'") from err
    cmd, env = command(host, port, headless), environment(model)
    if os.name == "posix":  # become the server: signals and the exit code reach it directly
        os.execve(cmd[0], cmd, env)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
