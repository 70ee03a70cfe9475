"""``interp app``'s launcher: the command it runs and the model it hands the app."""

from __future__ import annotations

import sys

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_launch_serves_the_app_script_on_localhost_by_default():
    from app.launch import SCRIPT, command, environment

    cmd = command()
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert cmd[4] == str(SCRIPT) and SCRIPT.name == "streamlit_app.py" and SCRIPT.exists()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8501"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    other = command(host="0.0.0.0", port=9000, headless=False)
    assert other[other.index("--server.address") + 1] == "0.0.0.0"
    assert other[other.index("--server.port") + 1] == "9000"
    assert environment("reasoning-tuned")["INTERP_APP_MODEL"] == "reasoning-tuned"


def test_the_model_given_to_the_launcher_is_the_one_the_app_opens(make_app, monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_APP_MODEL", "reasoning-base")
    at = make_app()
    assert not at.exception
    assert at.selectbox(key="model").value == "reasoning-base"
    assert any("4 layers" in c.value for c in at.sidebar.caption)
    monkeypatch.setenv("INTERP_APP_MODEL", str(tmp_path / "model.gguf"))
    at = make_app()
    assert at.selectbox(key="model").value == "local folder or .gguf file"
    assert at.text_input(key="model_path").value == str(tmp_path / "model.gguf")
    assert at.error  # no such file: said in the sidebar, the app keeps running
    at = make_app(model="reasoning-tuned")  # a link's model wins over the launcher's
    assert at.selectbox(key="model").value == "reasoning-tuned"
