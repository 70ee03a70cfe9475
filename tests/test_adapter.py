"""The model adapter owns what interp keeps about a model: nothing is pinned onto the model, the
two backends answer the same questions, and every analysis takes an adapter for a model."""

import copy
import gc
import re
import threading
import warnings
from pathlib import Path

import pytest
import torch

import interp
from interp import ModelAdapter, adapter, load_model, patch_sweep
from interp.heads import previous_token_scores
from interp.hooks import holding, model_lock
from interp.models import hooked_available, provenance
from interp.tasks import induction_task

pytestmark = pytest.mark.tl4

ROOT = Path(interp.__file__).parent
# TransformerLens 4 has no HookedTransformer (scripts/tl4 runs these tests there too)
BACKENDS = ("bridge", "hooked") if hooked_available() else ("bridge",)


@pytest.fixture(scope="module")
def models():
    return {b: load_model("induction-2l", device="cpu", backend=b) for b in BACKENDS}


@pytest.fixture(scope="module")
def bridge(models):
    return models["bridge"]


def _pinned(model) -> list[str]:
    """Attributes interp would have added to the model or its config."""
    names = [k for k in vars(model) if "interp" in k.lower()]
    names += [k for k in vars(model.cfg) if "interp" in k.lower()]
    return names


def test_one_adapter_per_model_holding_lock_caches_and_provenance(bridge):
    a = adapter(bridge)
    assert adapter(bridge) is a and adapter(a) is a
    assert model_lock(bridge) is a.lock
    assert provenance(bridge) == a.provenance
    assert a.provenance["spec"] == "induction-2l" and a.provenance["backend"] == "bridge"
    assert a.spec == "induction-2l"
    a.cache("scratch")["k"] = 1
    assert adapter(bridge).cache("scratch") == {"k": 1}
    a.forget("scratch")
    assert adapter(bridge).cache("scratch") == {}


def test_analyses_pin_nothing_onto_the_model(models):
    for model in models.values():
        task = induction_task(model, n=2, period=5, seed=0)
        patch_sweep(model, task, "z", progress=False)  # the resumable engine fills caches
        previous_token_scores(model, torch.randint(1, 100, (2, 12)))
        assert _pinned(model) == [], _pinned(model)
        assert adapter(model).cache("fused_attention")  # the caches live in the adapter


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_answer_the_same_questions(models, backend):
    model = models[backend]
    a = adapter(model)
    if backend == "bridge":
        assert a.is_bridge and not a.is_hooked and a.backend == "bridge"
        assert a.compatibility_mode and a.hf_model is not None
        assert a.kind == "TransformerBridge"
    else:
        assert a.is_hooked and not a.is_bridge and a.backend == "hooked"
        assert not a.compatibility_mode and a.hf_model is None
    assert a.ln_final is model.ln_final and a.tokenizer is model.tokenizer
    assert a.provenance["backend"] == a.backend


def test_an_analysis_takes_the_adapter_for_the_model(bridge):
    task = induction_task(bridge, n=2, period=5, seed=0)
    want = patch_sweep(bridge, task, "resid_pre", progress=False)
    got = patch_sweep(adapter(bridge), task, "resid_pre", progress=False)
    assert torch.equal(got.values, want.values)
    assert got.provenance["model"] == want.provenance["model"]
    with holding(adapter(bridge)):  # the user's own passes, by adapter
        assert model_lock(bridge)._is_owned()
    # and what is not an analysis: the adapter passes attributes and calls to its model
    a = adapter(bridge)
    assert a.cfg is bridge.cfg and a.hook_dict.keys() == bridge.hook_dict.keys()
    built = induction_task(a, n=2, period=5, seed=0).tokens(a)
    assert torch.equal(built.clean, task.tokens(bridge).clean)
    assert torch.equal(a(built.clean), bridge(built.clean))
    assert copy.copy(a).model is bridge  # copying an adapter does not recurse into the model


def test_a_copy_gets_its_own_lock_and_caches_and_takes_provenance_when_given(models):
    bridge = models[BACKENDS[-1]]
    with warnings.catch_warnings():  # copying a TransformerBridge warns about its config binding
        warnings.simplefilter("ignore", UserWarning)
        twin = copy.copy(bridge)
    assert adapter(twin) is not adapter(bridge)
    assert adapter(twin).lock is not adapter(bridge).lock
    assert adapter(twin).cache("fused_attention") == {}
    assert adapter(twin).provenance["spec"] != "induction-2l"  # nothing recorded for the copy
    adapter(twin).provenance = adapter(bridge).provenance
    assert provenance(twin) == provenance(bridge)
    # holding the twin does not hold the original: another thread can still take it
    took = []
    with holding(twin):

        def take():
            lock = model_lock(bridge)
            took.append(lock.acquire(timeout=5))
            lock.release()

        t = threading.Thread(target=take)
        t.start()
        t.join()
    assert took == [True]


def test_the_adapter_goes_with_its_model():
    model = load_model("induction-2l", device="cpu", backend="bridge")
    ref = adapter(model)._ref
    del model
    gc.collect()
    assert ref() is None
    with pytest.raises(ReferenceError, match="freed"):
        ModelAdapter.model.fget(type("A", (), {"_ref": ref, "kind": "TransformerBridge"})())


def test_not_a_model_is_refused_with_what_is_accepted():
    for bad in ("induction-2l", None, 3):
        with pytest.raises(TypeError, match="load one with interp.load_model"):
            adapter(bad)


# backend duck-typing and state pinned on models belong in interp/adapter.py alone
FORBIDDEN = [
    r"interp_provenance",
    r"_interp_lock",
    r"hasattr\(model, \"ln_final\"\)",
    r"getattr\(model, \"tokenizer\"",
    r"type\(model\)\.__name__ [!=]=",
    r"\bmodel\.__dict__",
]


def test_only_the_adapter_knows_the_backends():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "adapter.py":
            continue
        text = path.read_text()
        for pattern in FORBIDDEN:
            for m in re.finditer(pattern, text):
                line = text[: m.start()].count("\n") + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)}")
    assert found == []
