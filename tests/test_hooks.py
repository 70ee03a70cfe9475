import pytest

from interp.hooks import SITES, UnknownHookError, check_hook, hook_name


def test_every_site_exists_on_the_organism(induction_model):
    for site in SITES:
        layer = 1 if SITES[site].layered else None
        if site == "result":  # needs cfg.use_attn_result
            continue
        if site == "pos_embed" and induction_model.cfg.positional_embedding_type == "rotary":
            continue
        assert hook_name(induction_model, site, layer) in induction_model.hook_dict


def test_unknown_site_and_hook_name_close_matches(induction_model):
    with pytest.raises(ValueError, match="Did you mean 'resid_pre'"):
        hook_name(induction_model, "resid_pr", 0)
    with pytest.raises(ValueError, match="use 0..1"):
        hook_name(induction_model, "z", 2)
    with pytest.raises(UnknownHookError, match="blocks.0.attn.hook_z"):
        check_hook(induction_model, "blocks.0.attn.hook_zz")
