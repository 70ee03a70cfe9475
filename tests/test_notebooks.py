"""Every notebook runs top to bottom on the shipped models without error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    """Runs without error, and without tqdm's "IProgress not found" (ipywidgets is in dev)."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [str(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert outputs, "the executed notebook shows nothing"
    noisy = [o[:300] for o in outputs if "IProgress" in o or "Warning" in o]
    assert not noisy, noisy
