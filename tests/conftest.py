import os
import shutil

import pytest
import torch

# every test runs with no network: the hub must never be needed
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


# INTERP_TEST_BACKEND=bridge: the model fixtures load TransformerBridges (compatibility mode)
# instead of HookedTransformers; scripts/tl4 sets it to run the `tl4` tests on TransformerLens 4
BACKEND = os.environ.get("INTERP_TEST_BACKEND", "auto")
# (INTERP_TEST_ALL=1 collects every module anyway, to see what else passes)
TL4_ONLY = BACKEND == "bridge" and not os.environ.get("INTERP_TEST_ALL")


def pytest_ignore_collect(collection_path, config):
    """Under INTERP_TEST_BACKEND=bridge (scripts/tl4), only modules holding tests marked `tl4`
    are imported: the others may import sae-lens or HookedTransformer, absent on TransformerLens 4."""
    if not TL4_ONLY or collection_path.suffix != ".py" or collection_path.name == "conftest.py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    return True if "mark.tl4" not in collection_path.read_text() else None


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of many small passes (faster than two fighting over a busy
    machine); use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def induction_model():
    from interp import load_model

    return load_model("induction-2l", device="cpu", backend=BACKEND)


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
