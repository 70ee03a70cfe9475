"""The architecture matrix: every family researchers bring, from an HF folder and from a GGUF file.

Each family is a tiny random transformers model (``tiny_models.FAMILY_CONFIGS``), saved as an HF
folder and, where transformers reads the architecture back, written as a float32 GGUF the way
llama.cpp writes it. ``load_model`` must give logits equal to the transformers model's, the hook
names every analysis builds, and a patch sweep, a head-score pass and an attribution pass whose
numbers are checked against what they must be. A GGUF architecture transformers cannot
de-quantise, or a class TransformerBridge has no adapter for, is refused by name.
"""

import pytest
import torch
from tiny_models import (
    save_family_folder,
    tiny_family_model,
    write_gguf,
    write_gguf_header,
)

from interp import ModelSpecError, Task, attribution_patch, forward, load_model, patch_sweep
from interp.heads import previous_token_scores
from interp.hooks import hook_name, run_with_cache
from interp.models import FAMILIES, provenance
from interp.patching import site_heads

READABLE = [f for f, family in FAMILIES.items() if family.gguf_readable]
UNREADABLE = [f for f, family in FAMILIES.items() if not family.gguf_readable]
CASES = [(f, "folder") for f in FAMILIES] + [(f, "gguf") for f in READABLE]

CLEAN = torch.tensor([[0, 5, 17, 300, 42, 7, 99, 5, 17, 300]])
CORRUPTED = torch.tensor([[0, 6, 18, 301, 42, 7, 99, 6, 18, 301]])
SAME = (CLEAN == CORRUPTED)[0]  # positions where the prompts agree
TASK = Task(
    clean=CLEAN,
    corrupted=CORRUPTED,
    answers=torch.tensor([42]),
    wrong_answers=torch.tensor([43]),
    name="tiny",
)

# what keeps each family off the resumable patching engine (interp.forward.blockers)
_PARALLEL = {"parallel attention and MLP"}
_PRE_POST = "norms before and after each sublayer"
_WINDOW = "local (sliding-window) attention, window 4"
BLOCKERS = {
    "qwen3": {"QK-norm"},
    "gemma2": {
        "soft-capped attention scores",
        "soft-capped output logits",
        _PRE_POST,
        _WINDOW,
    },
    "gemma3": {"QK-norm", _PRE_POST, _WINDOW, "per-layer rotary tables (local and global bases)"},
    "phi": _PARALLEL | {"one norm shared by attention and MLP"},
    "gpt_neox": _PARALLEL,
    "olmo2": {"QK-norm", _PRE_POST},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """family -> (transformers model, HF folder, GGUF path or None), each built once."""
    root = tmp_path_factory.mktemp("families")
    cache = {}

    def get(family):
        if family not in cache:
            model = tiny_family_model(family)
            folder = save_family_folder(model, root / family)
            gguf = None
            if FAMILIES[family].gguf_readable:
                arch = FAMILIES[family].gguf
                gguf = write_gguf(model, root / f"{family}.gguf", arch, f"tiny-{family}")
            cache[family] = (model, folder, gguf)
        return cache[family]

    return get


@pytest.mark.parametrize(("family", "source"), CASES)
def test_family_loads_hooks_and_runs_analyses(built, family, source):
    hf, folder, gguf = built(family)
    model = load_model(folder if source == "folder" else gguf, device="cpu")
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    assert (n_layers, model.cfg.d_model) == (2, 64)

    # logits equal to transformers' own model (the GGUF went through F32, so exactly)
    with torch.no_grad():
        ref = hf(CLEAN, output_attentions=True)
        ours = model(CLEAN)
    assert (ours - ref.logits).abs().max().item() < 1e-4 * max(1.0, ref.logits.abs().max().item())
    assert provenance(model)["architecture"] in (
        FAMILIES[family].hf_class,
        "LlamaForCausalLM",  # llama.cpp writes Mistral as Llama; it loads back as one
    )

    # the hook names analyses build: present, firing, shaped as documented, consistent
    sites = ["resid_pre", "resid_post", "attn_out", "mlp_out", "z", "q", "k", "v", "pattern"]
    names = {(s, layer): hook_name(model, s, layer) for s in sites for layer in range(n_layers)}
    _, cache = run_with_cache(model, CLEAN, list(names.values()))
    pos = CLEAN.shape[1]
    assert cache[names["z", 0]].shape == (1, pos, n_heads, model.cfg.d_head)
    assert cache[names["k", 0]].shape[2] == site_heads(model, "k")
    assert cache[names["pattern", 1]].shape == (1, n_heads, pos, pos)
    torch.testing.assert_close(cache[names["pattern", 1]].sum(-1), torch.ones(1, n_heads, pos))
    torch.testing.assert_close(cache[names["resid_post", 0]], cache[names["resid_pre", 1]])
    # the patterns are transformers' own attention weights
    for layer in range(n_layers):
        torch.testing.assert_close(
            cache[names["pattern", layer]], ref.attentions[layer], atol=1e-5, rtol=1e-4
        )

    # the fast engine covers the family or names what blocks it, and records that
    blocked = set(forward.blockers(model, pos))
    assert blocked == BLOCKERS.get(family, set())
    sweep = patch_sweep(model, TASK, "resid_pre", ("layer", "pos"), progress=False)
    prov = sweep.provenance
    assert prov["engine"] == ("full" if blocked else "resume")
    if blocked:
        assert all(b in prov["engine_fallback"] for b in blocked)
    else:
        assert prov["engine_fallback"] is None
        full = patch_sweep(
            model, TASK, "resid_pre", ("layer", "pos"), engine="full", progress=False
        )
        torch.testing.assert_close(sweep.values, full.values, atol=1e-4, rtol=1e-4)
    # patching layer 0 where the prompts agree changes nothing; where they differ it does
    corrupted = torch.tensor(prov["corrupted_metric"]).float()
    torch.testing.assert_close(sweep.values[0, SAME], corrupted.expand(int(SAME.sum())))
    assert (sweep.values[0, ~SAME] - corrupted).abs().max() > 1e-4

    # a head score read from the patterns equals the one read from transformers' attentions
    scores = previous_token_scores(model, CLEAN)
    expected = torch.stack(
        [a[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1) for a in ref.attentions]
    )
    torch.testing.assert_close(scores.values, expected, atol=1e-5, rtol=1e-4)

    # attribution: zero where the prompts agree at layer 0, gradients through every layer
    attributed = attribution_patch(model, TASK, ("resid_pre", "z"))
    resid = attributed["resid_pre"].values
    assert resid.shape == (n_layers, pos) and torch.isfinite(resid).all()
    torch.testing.assert_close(resid[0, SAME], corrupted.expand(int(SAME.sum())))
    assert ((resid[:, ~SAME] - corrupted).abs() > 1e-6).any(dim=1).all()
    assert attributed["z"].values.shape == (n_layers, pos, n_heads)


@pytest.mark.parametrize("family", UNREADABLE)
def test_gguf_architecture_transformers_cannot_read_is_refused_by_name(tmp_path, family):
    arch = FAMILIES[family].gguf
    path = write_gguf_header(tmp_path / f"{family}.gguf", arch)
    with pytest.raises(ModelSpecError) as err:
        load_model(path, device="cpu")
    text = str(err.value)
    assert f"architecture {arch!r}" in text and "cannot de-quantise" in text
    assert "qwen3" in text  # names what transformers does read
    assert FAMILIES[family].hf_class in text  # and the way that works: the HF folder


def test_class_without_a_bridge_adapter_is_refused_by_name(tmp_path):
    from transformers import PersimmonConfig, PersimmonForCausalLM

    config = PersimmonConfig(
        vocab_size=2048,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    folder = save_family_folder(PersimmonForCausalLM(config), tmp_path / "persimmon")
    with pytest.raises(ModelSpecError, match="no adapter for PersimmonForCausalLM") as err:
        load_model(folder, device="cpu")
    assert "Gemma 3 (Gemma3ForCausalLM)" in str(err.value)  # the families that do load


def test_explicit_resume_engine_names_the_blocking_feature(built):
    _, folder, _ = built("qwen3")
    model = load_model(folder, device="cpu")
    with pytest.raises(ValueError, match="engine='resume' does not cover .*QK-norm"):
        patch_sweep(model, TASK, "resid_pre", engine="resume", progress=False)
