"""patch_sweep gives the numbers transformer_lens.patching gives, on the shipped model."""

import pytest
import torch
import transformer_lens.patching as tlp
from tiny_models import LLAMA_LIKE, tiny_llama_folder, tiny_model

from interp import load_model
from interp.adapter import adapter
from interp.heads import previous_token_scores
from interp.hooks import UnknownHookError
from interp.patching import patch_sweep
from interp.tasks import Task, induction_task

TOL = 1e-4

# (site, by, TransformerLens function): every sweep both libraries offer, in TL's axis order
REFERENCE = [
    ("resid_pre", ("layer", "pos"), tlp.get_act_patch_resid_pre),
    ("resid_mid", ("layer", "pos"), tlp.get_act_patch_resid_mid),
    ("attn_out", ("layer", "pos"), tlp.get_act_patch_attn_out),
    ("mlp_out", ("layer", "pos"), tlp.get_act_patch_mlp_out),
    ("z", ("layer", "pos", "head"), tlp.get_act_patch_attn_head_out_by_pos),
    ("q", ("layer", "pos", "head"), tlp.get_act_patch_attn_head_q_by_pos),
    ("k", ("layer", "pos", "head"), tlp.get_act_patch_attn_head_k_by_pos),
    ("v", ("layer", "pos", "head"), tlp.get_act_patch_attn_head_v_by_pos),
    ("pattern", ("layer", "head", "pos"), tlp.get_act_patch_attn_head_pattern_by_pos),
    ("z", ("layer", "head"), tlp.get_act_patch_attn_head_out_all_pos),
    ("q", ("layer", "head"), tlp.get_act_patch_attn_head_q_all_pos),
    ("k", ("layer", "head"), tlp.get_act_patch_attn_head_k_all_pos),
    ("v", ("layer", "head"), tlp.get_act_patch_attn_head_v_all_pos),
    ("pattern", ("layer", "head"), tlp.get_act_patch_attn_head_pattern_all_pos),
]


@pytest.fixture(scope="module")
def task(induction_model):
    return induction_task(induction_model, n=4, period=8, seed=3)


@pytest.fixture(scope="module")
def caches(induction_model, task):
    batch = task.tokens(induction_model)
    _, clean = induction_model.run_with_cache(batch.clean)
    _, corrupted = induction_model.run_with_cache(batch.corrupted)
    return batch, clean, corrupted


@pytest.mark.parametrize("engine", ["resume", "full"])
@pytest.mark.parametrize(
    ("site", "by", "reference"), REFERENCE, ids=lambda x: getattr(x, "__name__", str(x))
)
def test_denoising_equals_transformer_lens(
    induction_model, task, caches, site, by, reference, engine
):
    batch, clean_cache, _ = caches
    expected = reference(induction_model, batch.corrupted, clean_cache, batch.tl_metric())
    ours = patch_sweep(induction_model, task, site, by, engine=engine, progress=False)
    assert ours.values.shape == expected.shape
    assert (ours.values - expected).abs().max().item() <= TOL
    assert ours.axes == by


@pytest.mark.parametrize(
    ("site", "by", "reference"), REFERENCE[:5], ids=lambda x: getattr(x, "__name__", str(x))
)
def test_noising_equals_transformer_lens(induction_model, task, caches, site, by, reference):
    batch, _, corrupted_cache = caches
    batch.baseline(induction_model)
    expected = reference(induction_model, batch.clean, corrupted_cache, batch.tl_metric())
    ours = patch_sweep(induction_model, task, site, by, direction="noise", progress=False)
    assert (ours.values - expected).abs().max().item() <= TOL


def test_every_block_sweep_equals_transformer_lens(induction_model, task, caches):
    batch, clean_cache, _ = caches
    expected = tlp.get_act_patch_block_every(
        induction_model, batch.corrupted, clean_cache, batch.tl_metric()
    )
    ours = torch.stack(
        [
            patch_sweep(induction_model, task, s, progress=False).values
            for s in ("resid_pre", "attn_out", "mlp_out")
        ]
    )
    assert (ours - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("metric", ["prob", "loss", "kl"])
def test_other_metrics_equal_transformer_lens(induction_model, metric):
    task = induction_task(induction_model, n=3, period=8, seed=5, metric=metric)
    batch = task.tokens(induction_model)
    batch.baseline(induction_model)
    _, clean_cache = induction_model.run_with_cache(batch.clean)
    expected = tlp.get_act_patch_attn_head_out_by_pos(
        induction_model, batch.corrupted, clean_cache, batch.tl_metric()
    )
    ours = patch_sweep(induction_model, task, "z", ("layer", "pos", "head"), progress=False)
    assert (ours.values - expected).abs().max().item() <= TOL


@pytest.mark.tl4
def test_bridge_gives_the_same_numbers(induction_model, task):
    """A TransformerBridge resumes too; its numbers equal its own full passes and the
    HookedTransformer's."""
    bridge = load_model("induction-2l", device="cpu", backend="bridge")
    for site, by in [("z", ("layer", "pos", "head")), ("resid_pre", ("layer", "pos"))]:
        hooked = patch_sweep(induction_model, task, site, by, progress=False)
        bridged = patch_sweep(bridge, task, site, by, progress=False)
        full = patch_sweep(bridge, task, site, by, engine="full", progress=False)
        assert bridged.provenance["engine"] == "resume"
        assert (hooked.values - bridged.values).abs().max().item() <= TOL
        assert (full.values - bridged.values).abs().max().item() <= TOL


@pytest.mark.parametrize(
    ("site", "by"),
    [
        ("z", ("layer", "pos", "head")),
        ("resid_mid", ("layer", "pos")),
        ("k", ("layer", "pos", "head")),
        ("q", ("layer", "head")),
        ("pattern", ("layer", "head", "pos")),
    ],
)
def test_llama_bridge_resumes_with_its_own_rotary_tables(tmp_path_factory, site, by):
    """A 4-layer GQA Llama from an HF folder, as a TransformerBridge (rotary tables from the
    wrapped model) and as a HookedTransformer: resumed sweeps equal full passes on each."""
    folder = tiny_llama_folder(tmp_path_factory.mktemp("llama") / "m", n_kv=2, n_layers=4)
    bridge = load_model(folder, device="cpu", backend="bridge")
    hooked = load_model(folder, device="cpu", backend="hooked")
    task = induction_task(hooked, n=3, period=5, seed=1)
    full = patch_sweep(bridge, task, site, by, engine="full", progress=False)
    for model in (bridge, hooked):
        ours = patch_sweep(model, task, site, by, max_tokens=200, progress=False)
        assert ours.provenance["engine"] == "resume"
        assert (ours.values - full.values).abs().max().item() <= TOL


def test_a_resumable_pass_that_disagrees_with_the_model_is_not_trusted(
    induction_model, task, monkeypatch
):
    """The engine checks its pass against the model's own run first: with a wrong attention
    scale, "auto" falls back to full passes (right numbers, a warning); "resume" refuses."""
    from interp import forward

    want = patch_sweep(induction_model, task, "resid_pre", engine="full", progress=False)
    adapter(induction_model).forget("fused_attention")
    monkeypatch.setattr(forward, "_attn_scale", lambda model, layer: 1.0)
    try:
        with pytest.warns(UserWarning, match="full forward passes instead"):
            got = patch_sweep(induction_model, task, "resid_pre", progress=False)
        assert got.provenance["engine"] == "full"
        assert (got.values - want.values).abs().max().item() <= TOL
        with pytest.raises(ValueError, match="engine='resume' cannot run this model"):
            patch_sweep(induction_model, task, "resid_pre", engine="resume", progress=False)
    finally:
        adapter(induction_model).forget("fused_attention")


def test_head_result_is_patched_like_transformer_lens_hook_result(induction_model, task):
    """``result`` (a head's output z_h @ W_O[h]) patches through z when the model does not compute
    hook_result, with the numbers TransformerLens gives on hook_result when it does."""
    batch = task.tokens(induction_model)
    plain = patch_sweep(induction_model, task, "result", ("layer", "pos", "head"), progress=False)
    assert plain.provenance["patched_at"] == "z"
    induction_model.set_use_attn_result(True)
    try:
        _, clean_cache = induction_model.run_with_cache(batch.clean)
        expected = tlp.generic_activation_patch(
            induction_model,
            batch.corrupted,
            clean_cache,
            batch.tl_metric(),
            patch_setter=tlp.layer_pos_head_vector_patch_setter,
            activation_name="result",
            index_axis_names=("layer", "pos", "head"),
        )
        for engine in ("resume", "full"):
            hooked = patch_sweep(
                induction_model,
                task,
                "result",
                ("layer", "pos", "head"),
                engine=engine,
                progress=False,
            )
            assert hooked.provenance["patched_at"] == "result"
            assert (hooked.values - expected).abs().max().item() <= TOL
        assert (plain.values - expected).abs().max().item() <= TOL
    finally:
        induction_model.set_use_attn_result(False)


@pytest.mark.tl4
def test_the_circuit_of_induction_2l(induction_model, task):
    # layer 0's previous-token head is the single point of failure: noising it alone kills the
    # behaviour; layer 1 holds several (redundant) induction heads, so restoring all of layer 1's
    # heads restores it, and any one of them restores only part
    prev = int(previous_token_scores(induction_model).values[0].argmax())
    noised = patch_sweep(
        induction_model, task, "z", ("layer", "head"), "noise", normalize=True, progress=False
    )
    assert noised.values[0, prev] < 0.1 and noised.values[0].max() > 0.7
    restored = patch_sweep(induction_model, task, "z", ("layer",), normalize=True, progress=False)
    assert restored.values[1] > 0.8
    assert noised.provenance["clean_metric"] > noised.provenance["corrupted_metric"]


@pytest.mark.tl4
def test_result_labels_positions_with_tokens(induction_model, task):
    result = patch_sweep(induction_model, task, "resid_pre", progress=False)
    assert result.labels["pos"][0] == "0:<|endoftext|>"
    assert result.provenance["site"] == "resid_pre" and result.provenance["direction"] == "denoise"


def test_bad_input_fails_before_work(induction_model, task):
    with pytest.raises(ValueError, match="empty sweep"):
        patch_sweep(induction_model, task, "z", by=())
    with pytest.raises(ValueError, match="not accepted for site 'resid_pre'"):
        patch_sweep(induction_model, task, "resid_pre", by=("layer", "head"))
    with pytest.raises(ValueError, match="cannot be patched"):
        patch_sweep(induction_model, task, "mlp_in")
    with pytest.raises(ValueError, match="direction='sideways'"):
        patch_sweep(induction_model, task, "z", direction="sideways")


def test_site_missing_from_the_model_is_named():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=1,
        d_model=16,
        n_ctx=8,
        d_head=4,
        n_heads=4,
        d_vocab=11,
        attn_only=True,
        act_fn="gelu",
    )
    model = HookedTransformer(cfg)
    tokens = torch.randint(0, 11, (2, 5))
    task = Task(
        tokens, tokens.flip(0), answers=torch.tensor([1, 2]), wrong_answers=torch.tensor([3, 4])
    )
    with pytest.raises(UnknownHookError, match="blocks.0.hook_mlp_out"):
        patch_sweep(model, task, "mlp_out")


def test_nan_metric_is_an_error(induction_model, task):
    batch = task.tokens(induction_model)
    batch.per_prompt = lambda logits: torch.full(logits.shape[:2], float("nan"))
    with pytest.raises(FloatingPointError, match="NaN"):
        patch_sweep(induction_model, batch, "resid_pre", progress=False)


def test_progress_callback_follows_the_sweep(induction_model):
    from interp.patching import patch_sweep
    from interp.tasks import induction_task

    seen = []
    patch_sweep(
        induction_model,
        induction_task(induction_model, n=2, period=6),
        "z",
        ("layer", "head"),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen and seen[-1] == (8, 8) and all(a < b for (a, _), (b, _) in zip(seen, seen[1:]))
    # every patch starts at position 0: one wave, which reports its blocks as it goes
    assert len(seen) >= 2 and 0 < seen[0][0] < 8


@pytest.mark.parametrize("max_tokens", [32_768, 40, 1])
@pytest.mark.parametrize(
    ("site", "by", "reference"),
    [REFERENCE[0], REFERENCE[3], REFERENCE[4], REFERENCE[5], REFERENCE[8], REFERENCE[9]],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_waves_through_a_deeper_llama_like_model_equal_transformer_lens(
    site, by, reference, max_tokens
):
    """Patches of every layer share one pass per start position (a wave); a small memory budget
    splits the wave. Either way the numbers are TransformerLens's."""
    model = tiny_model(1, n_layers=4, **LLAMA_LIKE)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50, (2, 10), generator=gen)
    corrupted = clean.clone()
    corrupted[:, :4] = torch.randint(0, 50, (2, 4), generator=gen)
    task = Task(clean, corrupted, torch.tensor([3, 7]), torch.tensor([5, 9]), metric="logit_diff")
    batch = task.tokens(model)
    _, clean_cache = model.run_with_cache(batch.clean)
    expected = reference(model, batch.corrupted, clean_cache, batch.tl_metric())
    ours = patch_sweep(model, task, site, by, max_tokens=max_tokens, progress=False)
    assert ours.provenance["engine"] == "resume"
    assert (ours.values - expected).abs().max().item() <= TOL
