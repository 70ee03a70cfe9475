"""Models beyond one device: a tiny Llama split by accelerate's device_map, half its layers
offloaded to disk, gives the numbers of the same model on one device."""

import pytest
import torch
from tiny_models import tiny_llama_folder

from interp import ModelSpecError, load_model, patch_sweep
from interp.heads import HEAD_SCORES, score_heads
from interp.models import offloaded, onloaded, provenance
from interp.tasks import induction_task

pytestmark = pytest.mark.tl4
TOL = 1e-5
# the split a model too big for memory gets: embeddings and early layers in memory, the rest on
# disk, brought in one module at a time while it runs
SPLIT = {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    "model.layers.0": "cpu",
    "model.layers.1": "cpu",
    "model.layers.2": "disk",
    "model.layers.3": "disk",
    "model.norm": "cpu",
    "lm_head": "cpu",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_llama_folder(tmp_path_factory.mktemp("llama") / "m", n_kv=2, n_layers=4)


@pytest.fixture(scope="module")
def single(folder):
    return load_model(folder, device="cpu", backend="bridge")


@pytest.fixture(scope="module")
def split(folder, tmp_path_factory):
    return load_model(folder, device_map=SPLIT, offload_folder=tmp_path_factory.mktemp("offload"))


@pytest.fixture(scope="module")
def task(single):
    return induction_task(single, n=3, period=5, seed=1)


def test_the_split_is_real_and_recorded(split):
    assert offloaded(split)
    assert split.blocks[3].attn.original_component.q_proj.weight.device.type == "meta"
    recorded = provenance(split)
    assert recorded["backend"] == "bridge" and recorded["device"] == "cpu+disk"
    assert recorded["device_map"]["model.layers.3"] == "disk"


def test_logits_and_activations_equal_one_device(single, split, task):
    tokens = task.tokens(single).clean
    logits, cache = single.run_with_cache(tokens)
    split_logits, split_cache = split.run_with_cache(tokens)
    assert (logits - split_logits).abs().max().item() <= TOL
    for name in ("blocks.3.attn.hook_pattern", "blocks.3.hook_resid_post", "blocks.2.hook_mlp_out"):
        assert (cache[name] - split_cache[name]).abs().max().item() <= TOL, name


@pytest.mark.parametrize(
    ("site", "by"), [("z", ("layer", "pos", "head")), ("resid_pre", ("layer", "pos"))]
)
def test_patch_sweep_equals_one_device(single, split, task, site, by):
    """The resumed engine reads whole weight matrices, so on the split model the sweep falls
    back to full passes, saying why; the numbers are those of one device."""
    expected = patch_sweep(single, task, site, by, progress=False)
    ours = patch_sweep(split, task, site, by, progress=False)
    assert expected.provenance["engine"] == "resume"
    assert ours.provenance["engine"] == "full"
    assert "offloaded" in str(ours.provenance["engine_fallback"])
    assert (ours.values - expected.values).abs().max().item() <= TOL


@pytest.mark.parametrize("name", list(HEAD_SCORES))
def test_head_scores_equal_one_device(single, split, task, name):
    tokens = task.tokens(single).clean if HEAD_SCORES[name].reads_prompt else None
    expected = score_heads(single, name, tokens)
    if name.startswith("ov-"):  # read from the weights: bring them in for the call
        with onloaded(split):
            ours = score_heads(split, name, tokens)
        assert split.blocks[3].attn.original_component.q_proj.weight.device.type == "meta"
    else:
        ours = score_heads(split, name, tokens)
    assert (ours.values - expected.values).abs().max().item() <= TOL


def test_memory_budget_sends_layers_to_disk(folder, single, task, tmp_path):
    """device_map='auto' with a CPU budget smaller than the model: what does not fit goes to
    disk, and the logits stay those of one device."""
    model = load_model(
        folder, device_map="auto", max_memory={"cpu": "300KB"}, offload_folder=tmp_path
    )
    assert "disk" in provenance(model)["device_map"].values()
    tokens = task.tokens(single).clean
    assert (model(tokens) - single(tokens)).abs().max().item() <= TOL


def test_bad_placements_fail_before_loading(folder, tmp_path):
    with pytest.raises(ValueError, match="exclusive"):
        load_model(folder, device="cpu", device_map="auto")
    with pytest.raises(ValueError, match="need device_map"):
        load_model(folder, max_memory={"cpu": "1GiB"})
    with pytest.raises(ValueError, match="'everywhere' is not accepted"):
        load_model(folder, device_map="everywhere")
    with pytest.raises(ValueError, match="backend='bridge'"):
        load_model(folder, device_map=SPLIT, backend="hooked")
    with pytest.raises(ValueError, match="process_weights"):
        load_model(folder, device_map=SPLIT, process_weights=True)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelSpecError, match="GGUF file"):
        load_model(gguf, device_map=SPLIT)


def test_onloaded_puts_weights_back_when_the_block_raises(split):
    with pytest.raises(RuntimeError, match="inside"), onloaded(split):
        assert split.blocks[3].attn.original_component.q_proj.weight.device.type == "cpu"
        raise RuntimeError("inside")
    assert split.blocks[3].attn.original_component.q_proj.weight.device.type == "meta"
    assert torch.is_tensor(split.blocks[0].attn.original_component.q_proj.weight)
