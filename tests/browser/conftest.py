"""End-to-end: the app served as the README says, driven in Debian's Chromium by Playwright.

Skips (with the reason) when /usr/bin/chromium or Playwright is missing; CI has both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hand_made import hand_made_catalogue

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interp_cli() -> str | None:
    """The ``interp`` console script when it has the ``app`` command, else None."""
    candidates = [ROOT / ".venv" / "bin" / "interp", Path(sys.executable).parent / "interp"]
    found = shutil.which("interp")
    candidates += [Path(found)] if found else []
    for exe in candidates:
        if exe.exists():
            ok = subprocess.run([str(exe), "app", "--help"], capture_output=True, timeout=60)
            if ok.returncode == 0:
                return str(exe)
    return None


def server_command(port: int) -> list[str]:
    """``interp app --port P`` as the README says; before the CLI has it, ``app.launch``."""
    cli = _interp_cli()
    if cli:
        return [cli, "app", "--port", str(port)]
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from app.launch import launch; "
        f"raise SystemExit(launch(port={port}))"
    )
    return [sys.executable, "-c", code]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """Serve the app on a free port for the whole session; yields its base URL."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    circuits = tmp_path_factory.mktemp("circuits")
    hand_made_catalogue(circuits)
    for name in ("ioi-smollm2", "induction-smollm2"):  # the largest shipped circuits, as drawn
        shutil.copytree(ROOT / "circuits" / name, circuits / name)
    env["INTERP_CIRCUITS"] = str(circuits)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            server_command(port), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the app did not answer in {START_TIMEOUT} s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def browser(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go (also copied to $APP_SHOTS when set, to look at by hand)."""
    return tmp_path_factory.mktemp("shots")
