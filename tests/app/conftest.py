"""AppTest helpers: the app's entry point, run as a simulated session on the shipped organisms."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
TIMEOUT = 30
if str(APP.parents[1]) not in sys.path:  # `app` is a folder of the source tree
    sys.path.insert(0, str(APP.parents[1]))


@pytest.fixture
def make_app():
    """``make_app(**query_params)`` -> an AppTest that has run once."""
    from streamlit.testing.v1 import AppTest

    def make(**params: str):
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        for key, value in params.items():
            at.query_params[key] = value
        return at.run()

    return make
