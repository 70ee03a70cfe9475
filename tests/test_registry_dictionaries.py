"""Pretrained dictionaries by registry name, through sae-lens, from a local Hugging Face cache.

A tiny release is written in sae-lens's format into a temporary cache laid out as
``huggingface_hub`` lays it out (``models--ORG--REPO/refs/main``, ``snapshots/<commit>/FOLDER``)
and registered in sae-lens's release directory; with ``HF_HUB_OFFLINE=1`` it must load through
``sae_lens.SAE.from_pretrained`` equal to the dictionary that was written.
"""

from __future__ import annotations

import pytest
import torch

from interp.dictionaries import load_pretrained, pretrained_releases, resolve_pretrained

REPO = "interp-tests/tiny-saes"
RELEASE = "interp-tiny-release"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)


def _tiny_sae(seed: int):
    from sae_lens import StandardSAE, StandardSAEConfig

    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=8, d_sae=12, dtype="float32", device="cpu"))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    return sae


@pytest.fixture
def tiny_release(tmp_path, fake_hub, offline, monkeypatch):
    """Two SAEs in one fake hub repo, registered as a sae-lens release; returns them by id."""
    from sae_lens.loading.pretrained_saes_directory import (
        PretrainedSAELookup,
        get_pretrained_saes_directory,
    )

    source = tmp_path / "repo"
    saes = {"blocks.0.hook_resid_pre": _tiny_sae(0), "blocks.1.hook_resid_pre": _tiny_sae(1)}
    for i, sae in enumerate(saes.values()):
        sae.save_model(source / f"layer_{i}")
    fake_hub(REPO, {"main": source})
    ids = {sae_id: f"layer_{i}" for i, sae_id in enumerate(saes)}
    lookup = PretrainedSAELookup(
        release=RELEASE,
        repo_id=REPO,
        model="tiny",
        conversion_func=None,
        saes_map=ids,
        expected_var_explained={},
        expected_l0={},
        neuronpedia_id={},
        norm_scaling_factor={},
        config_overrides=None,
    )
    monkeypatch.setitem(get_pretrained_saes_directory(), RELEASE, lookup)
    return saes


def test_registered_release_loads_offline_through_sae_lens(tiny_release):
    from sae_lens import SAE

    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    for sae_id, written in tiny_release.items():
        loaded = load_pretrained(RELEASE, sae_id)
        assert not loaded.training and not loaded.W_enc.requires_grad
        assert torch.equal(loaded.W_enc, written.W_enc)
        assert torch.equal(loaded(x), written(x))
        # the same object sae-lens itself gives for the release name
        assert torch.equal(SAE.from_pretrained(RELEASE, sae_id).W_dec, loaded.W_dec)
    a, b = (load_pretrained(RELEASE, i) for i in tiny_release)
    assert not torch.equal(a.W_enc, b.W_enc)  # each id resolves to its own folder
    assert resolve_pretrained(RELEASE, "blocks.1.hook_resid_pre") == (REPO, "layer_1")
    assert pretrained_releases("tiny")[RELEASE]["sae_ids"] == list(tiny_release)


def test_repo_id_as_release_reads_the_folder(tiny_release):
    written = tiny_release["blocks.1.hook_resid_pre"]
    # sae-lens warns that this repo has a registered release name; expected here
    with pytest.warns(UserWarning, match="registered"):
        loaded = load_pretrained(REPO, "layer_1")
    assert torch.equal(loaded.b_enc, written.b_enc)


def test_not_cached_offline_fails_clearly(tiny_release, fake_hub):
    with pytest.raises(ConnectionError, match=r"gemma-scope-2b-pt-res.*not in the local cache"):
        load_pretrained("gemma-scope-2b-pt-res", "layer_0/width_16k/average_l0_46")
    with pytest.raises(ConnectionError, match="load_dictionary"):
        load_pretrained("interp-tests/absent", "layer_0")


def test_a_cached_repo_without_the_folder_fails_clearly(tiny_release, monkeypatch):
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    lookup = get_pretrained_saes_directory()[RELEASE]
    monkeypatch.setitem(lookup.saes_map, "blocks.2.hook_resid_pre", "layer_2")
    with pytest.raises(ConnectionError, match=r"'layer_2' of the Hugging Face repo"):
        load_pretrained(RELEASE, "blocks.2.hook_resid_pre")


def test_unknown_names_list_close_matches(offline):
    with pytest.raises(ValueError, match="gpt2-small-res-jb"):
        resolve_pretrained("gpt2-small-res-jbb", "blocks.0.hook_resid_pre")
    with pytest.raises(ValueError, match=r"blocks\.0\.hook_resid_pre"):
        resolve_pretrained("gpt2-small-res-jb", "blocks.0.hook_resid_pr")
    # sae-lens's pretrained_saes.yaml: this release lives in jbloom's repo, one folder per hook
    assert resolve_pretrained("gpt2-small-res-jb", "blocks.5.hook_resid_pre") == (
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.5.hook_resid_pre",
    )
    assert "gpt2-small-res-jb" in pretrained_releases("gpt2-small")


def test_without_sae_lens_the_dictionary_functions_say_what_to_install(monkeypatch, tmp_path):
    import sys

    from interp import dictionaries as D

    monkeypatch.setitem(sys.modules, "sae_lens", None)  # as in a venv without sae-lens (TL 4)
    for call in (
        lambda: D.load_dictionary(tmp_path),
        lambda: D.load_transcoders(tmp_path),
        lambda: D.pretrained_releases(),
        lambda: D.load_pretrained("a-release", "an-id"),
    ):
        with pytest.raises(ModuleNotFoundError, match=r"needs the sae_lens package: pip install"):
            call()
