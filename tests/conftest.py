import os

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
