"""The shipped organisms have the circuits their model cards claim, measured here, not read."""

import json

import pytest
from transformers import AutoModelForCausalLM

from interp import ORGANISMS, load_model
from interp.heads import induction_scores, previous_token_scores, repeated_token_loss
from interp.organisms import chain_accuracy, train


def test_weights_are_small_enough_to_ship():
    total = sum(f.stat().st_size for o in ORGANISMS.values() for f in o.path.glob("*.safetensors"))
    assert 0 < total <= 20 * 2**20


@pytest.mark.parametrize("name", list(ORGANISMS))
def test_each_organism_is_an_ordinary_hf_folder_with_a_card(name):
    folder = ORGANISMS[name].path
    for f in ["config.json", "model.safetensors", "tokenizer.json", "README.md", "training.json"]:
        assert (folder / f).exists(), f
    card = (folder / "README.md").read_text()
    assert f"interp organisms train {name}" in card and "## Known circuits" in card
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_induction_2l_has_an_induction_head_in_layer_1(induction_model):
    scores = induction_scores(induction_model).values
    assert scores[1].max().item() >= 0.4
    assert scores[0].max().item() < 0.2  # layer 0 cannot do induction on its own


def test_induction_2l_has_a_previous_token_head_in_layer_0(induction_model):
    scores = previous_token_scores(induction_model).values
    assert scores[0].max().item() >= 0.4


def test_induction_2l_second_copy_loss_is_far_lower(induction_model):
    first, second = repeated_token_loss(induction_model)
    assert second < 0.3 * first


def test_reasoning_tuned_tracks_variables_far_better_than_base():
    from transformers import AutoTokenizer

    acc = {}
    for name in ("reasoning-base", "reasoning-tuned"):
        path = ORGANISMS[name].path
        model = AutoModelForCausalLM.from_pretrained(path)
        acc[name] = chain_accuracy(model, AutoTokenizer.from_pretrained(path), n=300, seed=4242)
    assert acc["reasoning-tuned"]["accuracy"] >= acc["reasoning-base"]["accuracy"] + 0.5
    assert min(acc["reasoning-tuned"]["by_hops"].values()) >= 0.8  # every chain length, held out


def test_reasoning_models_share_architecture_and_tokenizer():
    base = load_model("reasoning-base", device="cpu")
    tuned = load_model("reasoning-tuned", device="cpu")
    assert base.cfg.n_layers == tuned.cfg.n_layers == 4
    assert base.tokenizer.get_vocab() == tuned.tokenizer.get_vocab()


def test_training_runs_and_saves_a_loadable_folder(tmp_path):
    metrics = train("induction-2l", out=tmp_path / "tiny", steps=3)
    assert "repeated random tokens, loss on second copy" in metrics
    model = load_model(tmp_path / "tiny", device="cpu")
    assert model.cfg.n_layers == 2
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_unknown_organism_to_train():
    with pytest.raises(ValueError, match="known: induction-2l"):
        train("induction-3l")
