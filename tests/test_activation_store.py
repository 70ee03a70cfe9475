import json

import pytest
import torch

from interp.activation_store import ActivationStore, cache_to_disk
from interp.hooks import run_with_cache

NAMES = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]


@pytest.fixture
def tokens(induction_model):
    gen = torch.Generator().manual_seed(0)
    return torch.randint(1, induction_model.cfg.d_vocab, (20, 12), generator=gen)


def test_streams_to_shards_and_reads_back_lazily(induction_model, tokens, tmp_path):
    store = cache_to_disk(
        induction_model, tokens, NAMES, tmp_path, batch_size=4, shard_rows=8, progress=False
    )
    assert store.complete and len(store) == 20
    assert len(list(tmp_path.glob("shard-*.safetensors"))) == 3
    _, cache = run_with_cache(induction_model, tokens[5:13], NAMES)
    for name in NAMES:
        assert torch.allclose(store.rows(name, 5, 13), cache[name], atol=1e-5)
    assert sum(len(b) for b in store.iter_batches(NAMES[0], 7)) == 20


def test_interrupted_run_resumes_without_rewriting(induction_model, tokens, tmp_path, monkeypatch):
    import interp.activation_store as mod

    calls = {"n": 0}
    real = mod.run_with_cache

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # die in the middle of the second shard
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "run_with_cache", flaky)
    with pytest.raises(KeyboardInterrupt):
        cache_to_disk(
            induction_model, tokens, NAMES, tmp_path, batch_size=4, shard_rows=8, progress=False
        )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [8]
    first = (tmp_path / "shard-00000.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(mod, "run_with_cache", real)
    store = cache_to_disk(
        induction_model, tokens, NAMES, tmp_path, batch_size=4, shard_rows=8, progress=False
    )
    assert store.complete and (tmp_path / "shard-00000.safetensors").stat().st_mtime_ns == first
    assert not list(tmp_path.glob(".shard-*"))
    _, cache = run_with_cache(induction_model, tokens, NAMES[:1])
    assert torch.allclose(store.rows(NAMES[0], 0, 20), cache[NAMES[0]], atol=1e-5)


def test_positions_and_dtype(induction_model, tokens, tmp_path):
    store = cache_to_disk(
        induction_model,
        tokens,
        NAMES[:1],
        tmp_path,
        positions=[-1],
        dtype=torch.float16,
        progress=False,
    )
    assert store.rows(NAMES[0], 0, 20).shape == (20, 1, 128)
    assert store.rows(NAMES[0], 0, 1).dtype == torch.float16


def test_a_folder_of_another_run_is_refused(induction_model, tokens, tmp_path):
    cache_to_disk(induction_model, tokens, NAMES[:1], tmp_path, progress=False)
    with pytest.raises(ValueError, match="another run"):
        cache_to_disk(induction_model, tokens.flip(0), NAMES[:1], tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        ActivationStore(tmp_path / "nowhere")
