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
