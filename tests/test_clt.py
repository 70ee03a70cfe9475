"""Cross-layer transcoders: both file formats load to the numbers a hand computation gives,
saving writes circuit-tracer's layout, and the shipped CLT of induction-2l keeps its figures."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from tiny_models import tiny_model

from interp.dictionaries import (
    CrossLayerTranscoder,
    TranscoderTrainConfig,
    clt_report,
    load_clt,
    save_clt,
    shipped_clt_metrics,
    shipped_metrics,
    train_clt,
)

L, D, F = 3, 4, 5


def known_weights(seed: int = 0, jump: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": torch.randn(L, D, F, generator=g),  # sae-lens orientation [d_model, d_sae]
        "b_enc": torch.randn(L, F, generator=g) * 0.5,
        "W_dec": [torch.randn(F, L - la, D, generator=g) for la in range(L)],
        "b_dec": torch.randn(L, D, generator=g),
    }
    if jump:
        w["threshold"] = torch.rand(L, F, generator=g) * 0.5
    return w


def hand_features(w: dict, xs: torch.Tensor) -> torch.Tensor:
    """Loops, no matmuls: f[l, n, j] = act(sum_i x[l, n, i] W_enc[l, i, j] + b_enc[l, j])."""
    out = torch.zeros(L, xs.shape[1], F, dtype=torch.float64)
    for la in range(L):
        for n in range(xs.shape[1]):
            for j in range(F):
                pre = sum(float(xs[la, n, i]) * float(w["W_enc"][la, i, j]) for i in range(D))
                pre += float(w["b_enc"][la, j])
                cut = float(w["threshold"][la, j]) if "threshold" in w else 0.0
                out[la, n, j] = pre if pre > cut else 0.0
    return out


def hand_outputs(w: dict, f: torch.Tensor) -> torch.Tensor:
    """y[m, n, :] = b_dec[m] + sum_{l <= m} sum_j f[l, n, j] W_dec[l][j, m - l, :]."""
    out = torch.zeros(L, f.shape[1], D, dtype=torch.float64)
    for m in range(L):
        for n in range(f.shape[1]):
            y = w["b_dec"][m].double().clone()
            for la in range(m + 1):
                for j in range(F):
                    y += float(f[la, n, j]) * w["W_dec"][la][j, m - la].double()
            out[m, n] = y
    return out


def write_circuit_tracer(folder, w: dict, hook: str = "hook_resid_mid") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for la in range(L):
        enc = {
            f"W_enc_{la}": w["W_enc"][la].T.contiguous(),  # circuit-tracer: [d_sae, d_model]
            f"b_enc_{la}": w["b_enc"][la],
            f"b_dec_{la}": w["b_dec"][la],
        }
        if "threshold" in w:
            enc[f"threshold_{la}"] = w["threshold"][la]
        save_file(enc, folder / f"W_enc_{la}.safetensors")
        save_file({f"W_dec_{la}": w["W_dec"][la]}, folder / f"W_dec_{la}.safetensors")
    config = {
        "model_name": "toy",
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": hook,
        "feature_output_hook": "hook_mlp_out",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


def write_gemma_scope_2(folder, w: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for la in range(L):
        w_dec = torch.full((F, L, D), 99.0)  # entries before the source layer are unused
        w_dec[:, la:] = w["W_dec"][la]
        save_file(
            {
                "w_enc": w["W_enc"][la].contiguous(),
                "w_dec": w_dec,
                "b_enc": w["b_enc"][la],
                "b_dec": w["b_dec"][la],
                "threshold": w["threshold"][la],
            },
            folder / f"layer_{la}.safetensors",
        )


@pytest.mark.parametrize("fmt", ["circuit-tracer", "gemma-scope-2"])
def test_both_formats_load_to_the_hand_computation(tmp_path, fmt):
    w = known_weights()
    if fmt == "circuit-tracer":
        write_circuit_tracer(tmp_path / "clt", w)
    else:
        write_gemma_scope_2(tmp_path / "clt", w)
    clt = load_clt(tmp_path / "clt", dtype=torch.float64)
    assert (clt.n_layers, clt.d_model, clt.d_sae) == (L, D, F)
    assert clt.activation == "jump_relu" and clt.input_hook == "hook_resid_mid"
    xs = torch.randn(L, 6, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    f = clt.encode(xs)
    want_f = hand_features(w, xs)
    assert torch.allclose(f, want_f, atol=1e-5)
    assert 0 < int((f > 0).sum()) < f.numel()  # the threshold cuts some features, not all
    assert torch.allclose(clt.decode(f), hand_outputs(w, f), atol=1e-5)
    assert torch.allclose(clt(xs), hand_outputs(w, want_f), atol=1e-5)


def test_save_writes_circuit_tracers_layout_and_round_trips(tmp_path):
    w = known_weights(2)
    write_circuit_tracer(tmp_path / "a", w, hook="ln2.hook_normalized")
    clt = load_clt(tmp_path / "a")
    clt.metadata = {"note": "kept"}
    save_clt(clt, tmp_path / "b")
    for la in range(L):
        enc = load_file(tmp_path / "b" / f"W_enc_{la}.safetensors")
        dec = load_file(tmp_path / "b" / f"W_dec_{la}.safetensors")
        assert set(enc) == {f"W_enc_{la}", f"b_enc_{la}", f"b_dec_{la}", f"threshold_{la}"}
        assert enc[f"W_enc_{la}"].shape == (F, D) and torch.equal(
            enc[f"W_enc_{la}"], w["W_enc"][la].T
        )
        assert dec[f"W_dec_{la}"].shape == (F, L - la, D)
    cfg = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert cfg["model_kind"] == "cross_layer_transcoder"
    assert cfg["feature_input_hook"] == "ln2.hook_normalized"
    back = load_clt(tmp_path / "b")
    assert back.metadata == {"note": "kept"} and back.input_hook == "ln2.hook_normalized"
    for a, b in zip(clt.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    save_clt(clt, tmp_path / "h", dtype=torch.float16)
    half = load_file(tmp_path / "h" / "W_dec_0.safetensors")["W_dec_0"]
    assert half.dtype == torch.float16 and load_clt(tmp_path / "h").W_dec[0].dtype == torch.float32


def test_relu_and_skip_path(tmp_path):
    w = known_weights(3, jump=False)
    write_circuit_tracer(tmp_path / "c", w)
    skip = [torch.randn(D, D) for _ in range(L)]
    for la in range(L):
        path = tmp_path / "c" / f"W_enc_{la}.safetensors"
        save_file({**load_file(path), f"W_skip_{la}": skip[la]}, path)
    clt = load_clt(tmp_path / "c", dtype=torch.float64)
    assert clt.activation == "relu" and clt.W_skip is not None
    xs = torch.randn(L, 3, D, dtype=torch.float64)
    want = hand_outputs(w, hand_features(w, xs)) + torch.stack(
        [xs[la] @ skip[la].double() for la in range(L)]
    )
    assert torch.allclose(clt(xs), want, atol=1e-5)
    with pytest.raises(ValueError, match="needs the input x"):
        clt.decode_layer([clt.encode_layer(xs[0], 0)], 0)


def test_bad_folders_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CLT folder"):
        load_clt(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no CLT"):
        load_clt(tmp_path / "empty")
    w = known_weights()
    write_circuit_tracer(tmp_path / "x", w)
    (tmp_path / "x" / "config.yaml").write_text("model_kind: transcoder_set\n")
    with pytest.raises(ValueError, match="model_kind='transcoder_set'"):
        load_clt(tmp_path / "x")
    (tmp_path / "x" / "config.yaml").write_text("feature_input_hook: mlp.hook_in\n")
    with pytest.raises(ValueError, match="feature_input_hook='mlp.hook_in'"):
        load_clt(tmp_path / "x")
    (tmp_path / "x" / "config.yaml").unlink()
    save_file({"W_dec_1": torch.zeros(F, 1, D)}, tmp_path / "x" / "W_dec_1.safetensors")
    with pytest.raises(ValueError, match=r"W_dec_1 has shape \(5, 1, 4\), expected \(5, 2, 4\)"):
        load_clt(tmp_path / "x")
    save_file({"W_dec_1": w["W_dec"][1]}, tmp_path / "x" / "W_dec_1.safetensors")
    (tmp_path / "x" / "W_enc_2.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="W_enc_2.safetensors is not a readable safetensors"):
        load_clt(tmp_path / "x")
    with pytest.raises(ValueError, match="activation must be one of"):
        CrossLayerTranscoder(2, 4, 4, activation="gelu")


def test_train_clt_learns_a_tiny_model():
    torch.set_num_threads(1)
    model = tiny_model(0)
    cfg = TranscoderTrainConfig(
        d_sae=64, steps=150, batch_tokens=256, buffer_tokens=2048, seq_len=16
    )
    clt, logs = train_clt(model, cfg, progress=False)
    assert clt.n_layers == 2 and clt.d_sae == 64 and not clt.training
    assert logs[-1]["fve"] > logs[0]["fve"] + 0.3 and logs[-1]["fve"] > 0.5
    report = clt_report(model, clt, torch.randint(0, 50, (8, 16)))
    # the training log measures scaled outputs; the report the CLT in the model's units
    assert report["layers"]["1"]["fve"] > 0.4
    assert report["l0_total"] == pytest.approx(
        report["layers"]["0"]["l0"] + report["layers"]["1"]["l0"]
    )


def test_shipped_clt_keeps_its_figures_and_compares_with_the_transcoders():
    from interp.dictionaries import held_out_tokens
    from interp.models import load_model

    torch.set_num_threads(1)
    model = load_model("induction-2l", device="cpu")
    clt = load_clt("induction-2l")
    assert (clt.n_layers, clt.d_sae, clt.input_hook) == (2, 512, "ln2.hook_normalized")
    recorded = shipped_clt_metrics()
    now = clt_report(model, clt, held_out_tokens(model))
    for la in ("0", "1"):
        for key in ("fve", "l0", "spliced_loss"):
            assert now["layers"][la][key] == pytest.approx(recorded["layers"][la][key], rel=1e-4)
    assert now["all_spliced_loss"] == pytest.approx(recorded["all_spliced_loss"], rel=1e-4)
    # what it measured when trained (README): half the features of the per-layer pair, a
    # lower total L0, and the MLPs' outputs mostly explained
    assert now["layers"]["0"]["fve"] > 0.88 and now["layers"]["1"]["fve"] > 0.97
    assert now["layers"]["0"]["dead_fraction"] < 0.01 and now["layers"]["1"]["dead_fraction"] < 0.01
    assert now["all_delta_loss"] < 0.3
    per_layer = shipped_metrics("induction-2l")
    l0_tc = sum(v["l0"] for v in per_layer["layers"].values())
    assert now["l0_total"] < 0.75 * l0_tc
    json.dumps(now)  # plain numbers, ready for metrics.json
