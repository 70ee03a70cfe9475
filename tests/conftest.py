import os
import shutil

import pytest
import torch

# every test runs with no network: the hub must never be needed
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def induction_model():
    from interp import load_model

    return load_model("induction-2l", device="cpu")


@pytest.fixture(scope="session")
def smollm2():
    from interp import load_model

    return load_model("smollm2-135m", device="cpu")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """Make a Hugging Face cache laid out as huggingface_hub writes it, with one snapshot per
    revision: ``fake_hub(repo_id, {revision: source folder})`` -> ``{revision: snapshot}``."""

    def make(repo_id, revisions):
        repo = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        out = {}
        for i, (revision, source) in enumerate(revisions.items()):
            commit = f"{i:040d}"
            out[revision] = repo / "snapshots" / commit
            shutil.copytree(source, out[revision])
            (repo / "refs" / revision).write_text(commit)
        return out

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    return make
