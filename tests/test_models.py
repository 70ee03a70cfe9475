import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from interp import ORGANISMS, ModelNotAvailableOffline, ModelSpecError, load_model
from interp.models import known_names, provenance


@pytest.mark.parametrize("name", list(ORGANISMS))
@pytest.mark.parametrize("backend", ["hooked", "bridge"])
def test_organism_loads_offline_with_transformers_logits(name, backend):
    model = load_model(name, device="cpu", backend=backend)
    hf = AutoModelForCausalLM.from_pretrained(ORGANISMS[name].path)
    tokens = model.to_tokens("def load(path):\n    return open(path).read()\n")
    with torch.no_grad():
        ours = model(tokens)
        ref = hf(tokens).logits
    assert (ours - ref).abs().max().item() < 1e-4
    assert provenance(model)["backend"] == backend
    assert str(ours.device) == "cpu"


def test_auto_backend_is_hooked_for_llama_and_gpt2_folders(induction_model):
    from transformer_lens import HookedTransformer

    assert isinstance(induction_model, HookedTransformer)
    assert provenance(induction_model)["process_weights"] is False


def test_dtype_is_settable():
    model = load_model("induction-2l", device="cpu", dtype="bfloat16")
    assert model.W_Q.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype='float8' is not accepted"):
        load_model("induction-2l", device="cpu", dtype="float8")


def test_processed_weights_keep_the_logit_differences(induction_model):
    processed = load_model("induction-2l", device="cpu", process_weights=True)
    tokens = induction_model.to_tokens("x = 1\ny = x\n")
    with torch.no_grad():
        a = induction_model(tokens).log_softmax(-1)
        b = processed(tokens).log_softmax(-1)
    assert (a - b).abs().max().item() < 1e-4
    # folding moves the norm weights into the next matrices: RMS becomes RMSPre
    assert (induction_model.cfg.normalization_type, processed.cfg.normalization_type) == (
        "RMS",
        "RMSPre",
    )


@pytest.mark.tl4
def test_unknown_spec_lists_accepted_forms_and_close_matches():
    with pytest.raises(ModelSpecError) as err:
        load_model("induction-2", device="cpu")
    text = str(err.value)
    assert "induction-2l" in text and "Close matches" in text
    assert ".gguf" in text and "smollm2-135m" in text


def test_empty_spec_and_non_model_path(tmp_path):
    with pytest.raises(ModelSpecError, match="empty model spec"):
        load_model("  ", device="cpu")
    with pytest.raises(ModelSpecError, match="neither a model folder"):
        load_model(tmp_path, device="cpu")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(ModelSpecError, match="not a GGUF model"):
        load_model(bad, device="cpu")


def test_bad_backend():
    with pytest.raises(ValueError, match="backend='fast' is not accepted"):
        load_model("induction-2l", backend="fast")


@pytest.mark.tl4
def test_local_folder_loads(tmp_path):
    folder = tmp_path / "not-a-gpt2-model"
    shutil.copytree(ORGANISMS["induction-2l"].path, folder)
    model = load_model(folder, device="cpu")
    assert model.cfg.original_architecture == "LlamaForCausalLM"
    assert model.cfg.n_layers == 2


def test_hub_name_loads_from_the_local_cache_without_network(tmp_path, fake_hub):
    # stand-in weights under the hub id of gpt2: the hub path resolves the name, finds the
    # snapshot in the cache and loads it, with HF_HUB_OFFLINE set by conftest
    from interp.models import official_name

    snap = fake_hub(official_name("gpt2"), {"main": ORGANISMS["induction-2l"].path})["main"]
    model = load_model("gpt2", device="cpu")
    assert provenance(model)["source"] == str(snap)
    assert model.cfg.n_layers == json.loads((snap / "config.json").read_text())["num_hidden_layers"]


def test_hub_name_offline_and_uncached_says_how_to_use_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailableOffline) as err:
        load_model("gpt2", device="cpu")
    assert "local" in str(err.value) and "config.json" in str(err.value)


@pytest.mark.tl4
def test_known_names_include_organisms_smollm2_and_transformerlens():
    names = known_names()
    assert "induction-2l" in names and "smollm2-135m" in names and "gpt2" in names


def test_without_hooked_transformer_models_load_as_bridges_and_patch_the_same(
    induction_model, monkeypatch
):
    """TransformerLens 4 has no HookedTransformer: 'auto' then gives a TransformerBridge, the
    fast patching engine still runs on it, and 'hooked' is refused by name."""
    import builtins

    from interp.models import ModelSpecError, load_model
    from interp.patching import patch_sweep
    from interp.tasks import induction_task

    task = induction_task(induction_model, n=2, period=6)
    want = patch_sweep(induction_model, task, "z", ("layer", "pos", "head"), progress=False)
    real_import = builtins.__import__

    def no_hooked_transformer(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "transformer_lens" and "HookedTransformer" in (fromlist or ()):
            raise ImportError("cannot import name 'HookedTransformer' (TransformerLens 4)")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_hooked_transformer)
    model = load_model("induction-2l", device="cpu")
    assert type(model).__name__ == "TransformerBridge"
    got = patch_sweep(model, task, "z", ("layer", "pos", "head"), progress=False)
    assert got.provenance["engine"] == "resume"
    assert (got.values - want.values).abs().max().item() <= 1e-4
    with pytest.raises(ModelSpecError, match="went in 4.0"):
        load_model("induction-2l", device="cpu", backend="hooked")
