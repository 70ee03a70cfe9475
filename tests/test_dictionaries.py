"""Dictionaries: transcoder training, sae-lens format round trips, circuit-tracer export,
splicing, feature statistics, SAE training through sae-lens, and the shipped transcoders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import tiny_model

from interp.dictionaries import (
    TranscoderTrainConfig,
    check_transcoders,
    export_circuit_tracer,
    feature_density,
    feature_logit_effects,
    feature_top_contexts,
    held_out_tokens,
    load_dictionary,
    load_pretrained,
    load_transcoders,
    new_transcoder,
    reconstruction_report,
    save_transcoders,
    shipped_metrics,
    spliced,
    train_sae,
    train_transcoders,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread (two threads waiting on each other on a busy
    two-core machine made these tests 20x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny():
    return tiny_model(0, normalization_type="LN")


@pytest.fixture(scope="module")
def trained(tiny):
    cfg = TranscoderTrainConfig(
        d_sae=64,
        steps=150,
        batch_tokens=256,
        buffer_tokens=2048,
        seq_len=16,
        lr=3e-3,
        l1_coefficient=1e-3,
        resample_every=50,
        dead_after=30,
    )
    return train_transcoders(tiny, None, cfg, progress=False)


def test_training_learns_the_mlp(trained):
    tcs, logs = trained
    assert sorted(tcs) == [0, 1]
    for layer, log in logs.items():
        first = sum(x["fve"] for x in log[:10]) / 10
        last = sum(x["fve"] for x in log[-10:]) / 10
        assert last > 0.6 and last > first + 0.2, (layer, first, last)
        assert 0 < log[-1]["l0"] < 64
    assert sum(x["resampled"] for x in logs[0] + logs[1]) >= 0
    meta = tcs[0].cfg.metadata
    assert meta.hook_name == "blocks.0.ln2.hook_normalized"
    assert meta.hook_name_out == "blocks.0.hook_mlp_out"
    assert not tcs[0].training


def test_sae_lens_loads_saved_transcoders_unchanged(trained, tmp_path, tiny):
    from sae_lens import SAE, Transcoder

    tcs, _ = trained
    save_transcoders(tcs, tmp_path)
    cfg = json.loads((tmp_path / "layer_1" / "cfg.json").read_text())
    assert cfg["architecture"] == "transcoder" and cfg["d_out"] == 32
    x = torch.randn(5, 32)
    for layer in (0, 1):
        by_sae_lens = SAE.load_from_disk(tmp_path / f"layer_{layer}")
        assert isinstance(by_sae_lens, Transcoder)
        assert torch.equal(by_sae_lens(x), tcs[layer](x))
        assert torch.equal(load_dictionary(tmp_path / f"layer_{layer}")(x), tcs[layer](x))
    again = load_transcoders(tmp_path)
    assert sorted(again) == [0, 1] and torch.equal(again[1].W_dec, tcs[1].W_dec)
    # float16 storage: the config keeps float32, sae-lens casts back on load
    save_transcoders(tcs, tmp_path / "half", dtype=torch.float16)
    raw = load_file(tmp_path / "half" / "layer_0" / "sae_weights.safetensors")
    assert raw["W_enc"].dtype == torch.float16
    half = SAE.load_from_disk(tmp_path / "half" / "layer_0")
    assert half.W_enc.dtype == torch.float32
    assert torch.allclose(half(x), tcs[0](x), atol=1e-2, rtol=1e-2)
    with pytest.raises(FileNotFoundError, match="layer_L"):
        load_transcoders(tmp_path / "layer_0")
    with pytest.raises(FileNotFoundError, match="no transcoder folder"):
        load_transcoders(tmp_path / "nowhere")


def test_circuit_tracer_export(trained, tmp_path):
    tcs, _ = trained
    meta = export_circuit_tracer(tcs, tmp_path)
    assert meta["feature_input_hook"] == "ln2.hook_normalized"
    state = load_file(meta["transcoder_paths"][0])
    assert set(state) == {"W_enc", "W_dec", "b_enc", "b_dec"}
    assert state["W_enc"].shape == (64, 32)  # circuit-tracer: [d_transcoder, d_model]
    assert torch.equal(state["W_enc"], tcs[0].W_enc.T)
    assert torch.equal(state["W_dec"], tcs[0].W_dec)
    # circuit-tracer's encode: relu(F.linear(x, W_enc, b_enc)); decode: acts @ W_dec + b_dec
    x = torch.randn(3, 32)
    ours = tcs[0](x)
    theirs = torch.relu(torch.nn.functional.linear(x, state["W_enc"], state["b_enc"]))
    assert torch.allclose(theirs @ state["W_dec"] + state["b_dec"], ours, atol=1e-6)


def test_splicing_and_report(trained, tiny):
    tcs, _ = trained
    tokens = torch.randint(0, 50, (4, 16), generator=torch.Generator().manual_seed(1))
    clean = tiny(tokens)
    with spliced(tiny, tcs):
        changed = tiny(tokens)
    assert not torch.allclose(clean, changed)
    assert torch.equal(tiny(tokens), clean)  # hooks gone after the block
    report = reconstruction_report(tiny, tcs, tokens)
    assert set(report["layers"]) == {"0", "1"}
    for r in report["layers"].values():
        assert 0 < r["fve"] <= 1 and r["l0"] > 0
        assert r["delta_loss"] == pytest.approx(r["spliced_loss"] - report["clean_loss"])


def test_bad_transcoders_fail_early(trained, tiny):
    tcs, _ = trained
    with pytest.raises(ValueError, match="out of range"):
        check_transcoders(tiny, {5: tcs[0]})
    with pytest.raises(ValueError, match="reads 'blocks.0"):
        check_transcoders(tiny, {1: tcs[0]})
    with pytest.raises(TypeError, match="mapping"):
        check_transcoders(tiny, [tcs[0]])
    with pytest.raises(ValueError, match="must be a positive"):
        TranscoderTrainConfig(steps=0)


def test_feature_statistics(trained, tiny):
    tcs, _ = trained
    tokens = torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(2))
    dens = feature_density(tiny, tcs, tokens)
    assert dens.axes == ("layer", "feature") and dens.values.shape == (2, 64)
    assert ((dens.values >= 0) & (dens.values <= 1)).all()
    top = feature_top_contexts(tiny, tcs, 0, tokens, features=[0, 1, 2], k=3)
    acts = top[int(dens.values[0].argmax())] if int(dens.values[0].argmax()) in top else top[0]
    assert all(a["activation"] > 0 for a in acts)
    assert all(a["activation"] >= b["activation"] for a, b in zip(acts, acts[1:]))
    with pytest.raises(ValueError, match="out of range"):
        feature_top_contexts(tiny, tcs, 0, tokens, features=[999])


def test_logit_effects_are_the_decoder_through_the_unembedding(trained, tiny):
    tcs, _ = trained
    with torch.no_grad():
        eff = (tcs[1].W_dec[3] * tiny.ln_final.w) @ tiny.W_U
        eff = eff - eff.mean()
    out = feature_logit_effects(tiny, tcs, 1, features=[3], k=2)
    assert out[3]["top"][0] == (f"[{int(eff.argmax())}]", pytest.approx(float(eff.max()), abs=1e-5))
    assert out[3]["bottom"][0][1] == pytest.approx(float(eff.min()), abs=1e-5)


def test_new_transcoder_is_a_sae_lens_transcoder(tiny):
    from sae_lens import Transcoder

    tc = new_transcoder(tiny, 1, 16)
    assert isinstance(tc, Transcoder)
    assert tuple(tc.W_enc.shape) == (32, 16) and tuple(tc.W_dec.shape) == (16, 32)


def test_registry_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="load_dictionary"):
        load_pretrained("gemma-scope-2b-pt-res", "layer_0/width_16k/average_l0_46")


def test_sae_lens_trains_an_sae_offline(tiny, tmp_path):
    from sae_lens import SAE

    tokens = torch.randint(0, 50, (32, 16), generator=torch.Generator().manual_seed(3))
    sae = train_sae(
        tiny,
        "blocks.0.hook_resid_post",
        tokens,
        d_sae=48,
        architecture="topk",
        k=4,
        training_tokens=2048,
        train_batch_size_tokens=128,
        n_batches_in_buffer=8,
        output_path=tmp_path / "sae",
    )
    assert sae.cfg.d_sae == 48 and sae.cfg.metadata.hook_name == "blocks.0.hook_resid_post"
    loaded = SAE.load_from_disk(tmp_path / "sae")
    x = torch.randn(4, 32)
    assert torch.equal(loaded(x), sae(x))
    assert ((sae.encode(x) > 0).sum(-1) <= 4).all()
    with pytest.raises(ValueError, match="n_batches_in_buffer"):
        train_sae(tiny, "blocks.0.hook_resid_post", tokens, train_batch_size_tokens=4096)


def test_shipped_transcoders_reproduce_their_figures(induction_model):
    tcs = load_transcoders("induction-2l")
    assert sorted(tcs) == [0, 1]
    recorded = shipped_metrics("induction-2l")
    report = reconstruction_report(induction_model, tcs, held_out_tokens(induction_model))
    assert report["clean_loss"] == pytest.approx(recorded["clean_loss"], abs=1e-3)
    for layer in ("0", "1"):
        got, want = report["layers"][layer], recorded["layers"][layer]
        assert got["fve"] == pytest.approx(want["fve"], abs=1e-3)
        assert got["l0"] == pytest.approx(want["l0"], abs=0.05)
        assert got["delta_loss"] == pytest.approx(want["delta_loss"], abs=1e-3)
        assert got["fve"] > 0.8 and got["l0"] < 60  # the figures themselves are worth shipping
    assert report["all_delta_loss"] == pytest.approx(recorded["all_delta_loss"], abs=1e-3)
