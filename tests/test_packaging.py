"""The wheel holds the whole workbench: the library, the app and the catalogue.

The repository keeps the app in ``app/`` and the catalogue in ``circuits/``; the wheel ships them
as the packages ``interp_app`` and ``interp_circuits`` (``pyproject.toml`` maps the folders), so
``pip install 'interp[app]'`` gives a working ``interp app`` and catalogue outside a clone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"interp_app": "app", "interp_circuits": "circuits"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_tree_is_listed_for_the_wheel():
    """``packages`` is an explicit list (a mapped folder cannot be found by ``find``): a new
    subpackage of ``interp`` left off it would be missing from the wheel without a word."""
    config = _setuptools()
    listed = set(config["packages"])
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "interp").rglob("__init__.py")
    }
    assert in_tree - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - in_tree - set(SHIPPED) == set()
    assert config["package-dir"] == SHIPPED
    for folder in SHIPPED.values():
        assert (ROOT / folder / "__init__.py").exists()


CHECK_INSTALLED = """
import importlib, json, sys
from pathlib import Path

import interp, interp_app
from interp.catalogue import catalogue_dir, entries, load_entry
from interp_app.launch import SCRIPT, command

cmd = command()
names = [e.name for e in entries()]
graph = load_entry(names[0]).graph()
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(cmd[4], default_timeout=120).run()
print(json.dumps({
    "interp": interp.__file__,
    "app": interp_app.__file__,
    "script": cmd[4],
    "catalogue": str(catalogue_dir()),
    "entries": names,
    "edges": graph.n_edges,
    "app_state": sys.modules["app.state"].__file__,
    "exceptions": [e.value for e in at.exception],
    "captions": [c.value for c in at.sidebar.caption],
}))
"""


def test_the_installed_wheel_serves_the_app_and_lists_the_catalogue_outside_a_clone(tmp_path):
    pytest.importorskip("streamlit")
    source = tmp_path / "source"  # a copy: building in the tree would race other builds
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in ("interp", "app", "circuits"):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("interp-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(target),  # before the venv's editable finder, which maps the clone
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    run = subprocess.run(
        [sys.executable, "-c", CHECK_INSTALLED],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("interp", "app", "script", "catalogue", "app_state"):
        assert Path(seen[key]).is_relative_to(target), (key, seen[key])
    assert Path(seen["script"]) == target / "interp_app" / "streamlit_app.py"
    assert (target / "interp_app" / "views" / "head_atlas.py").exists()
    shipped = sorted(p.parent.name for p in (ROOT / "circuits").glob("*/entry.json"))
    assert seen["entries"] == shipped and seen["edges"] > 0
    assert seen["exceptions"] == []
    assert any("2 layers" in c for c in seen["captions"])  # the app opened induction-2l
