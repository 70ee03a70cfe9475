"""Small random HookedTransformers the tests build: one factory instead of a config per module."""

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

# rotary, grouped-query attention (4 query heads on 2 key/value heads), RMSNorm, gated SiLU MLP:
# SmolLM2's architecture, tiny
LLAMA_LIKE = {
    "n_key_value_heads": 2,
    "act_fn": "silu",
    "gated_mlp": True,
    "normalization_type": "RMS",
    "positional_embedding_type": "rotary",
    "rotary_dim": 8,
}


def tiny_model(seed: int = 0, **overrides) -> HookedTransformer:
    """2 layers, d_model 32, 4 heads of 8, MLP 64, 16 positions, 50 tokens, GELU, LayerNorm;
    ``overrides`` go to ``HookedTransformerConfig`` (e.g. ``**LLAMA_LIKE``)."""
    torch.manual_seed(seed)
    cfg = {
        "n_layers": 2,
        "d_model": 32,
        "n_heads": 4,
        "d_head": 8,
        "d_mlp": 64,
        "n_ctx": 16,
        "d_vocab": 50,
        "act_fn": "gelu",
        "seed": seed,
    } | overrides
    return HookedTransformer(HookedTransformerConfig(**cfg)).eval()


def tiny_llama_folder(folder, n_kv: int, n_layers: int = 2):
    """A tiny random Llama (HF) with ``n_kv`` key/value heads, with induction-2l's tokenizer."""
    import json
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM

    from interp.models import ORGANISMS

    src = ORGANISMS["induction-2l"].path
    vocab = json.loads((src / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=n_kv,
        head_dim=8,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, folder / name)
    return folder
