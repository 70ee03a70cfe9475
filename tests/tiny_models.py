"""Small random HookedTransformers the tests build: one factory instead of a config per module."""

import pytest
import torch

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


def tiny_model(seed: int = 0, **overrides):
    """2 layers, d_model 32, 4 heads of 8, MLP 64, 16 positions, 50 tokens, GELU, LayerNorm;
    ``overrides`` go to ``HookedTransformerConfig`` (e.g. ``**LLAMA_LIKE``). A test that builds
    one is skipped where TransformerLens has no HookedTransformer (4.x; see scripts/tl4)."""
    from interp.models import hooked_available

    if not hooked_available():
        pytest.skip("builds a random HookedTransformer, which TransformerLens 4 no longer has")
    from transformer_lens import HookedTransformer, HookedTransformerConfig

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


# -- one tiny random model per architecture family, as an HF folder and as a GGUF file -----------

# 2 layers, width 64, induction-2l's vocabulary of 2048; weights drawn wider than transformers'
# default (0.02) so logits are of order 1 and a wrong layout shows. Where transformers rebuilds a
# GGUF config with defaults (Qwen 3's head_dim 128, Gemma's query scale 256 and soft caps,
# GPT-2's 1024 positions), the tiny config keeps those defaults so the file reads back the same.
_COMMON = {
    "vocab_size": 2048,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
    "initializer_range": 0.1,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "pad_token_id": 0,
}
_GQA = {"num_key_value_heads": 2, "head_dim": 16}
FAMILY_CONFIGS = {
    "llama": ("LlamaConfig", {**_COMMON, **_GQA, "tie_word_embeddings": False}),
    "mistral": ("MistralConfig", {**_COMMON, **_GQA, "sliding_window": None}),
    "qwen2": ("Qwen2Config", {**_COMMON, "num_key_value_heads": 2, "tie_word_embeddings": True}),
    "qwen3": (
        "Qwen3Config",
        {**_COMMON, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 128},
    ),
    # a window of 4 on prompts of 10 tokens, so the sliding window matters
    "gemma2": ("Gemma2Config", {**_COMMON, **_GQA, "sliding_window": 4}),
    "gemma3": ("Gemma3TextConfig", {**_COMMON, **_GQA, "sliding_window": 4}),
    "phi": ("PhiConfig", {**_COMMON, "partial_rotary_factor": 0.5}),
    "phi3": ("Phi3Config", {**_COMMON, "tie_word_embeddings": False}),
    "gpt2": (
        "GPT2Config",
        {
            "vocab_size": 2048,
            "n_embd": 64,
            "n_layer": 2,
            "n_head": 4,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "initializer_range": 0.1,
        },
    ),
    "gpt_neox": ("GPTNeoXConfig", {**_COMMON, "rotary_pct": 0.25, "tie_word_embeddings": False}),
    "olmo": ("OlmoConfig", {**_COMMON, "tie_word_embeddings": False}),
    "olmo2": ("Olmo2Config", {**_COMMON, "tie_word_embeddings": False}),
}


def tiny_family_model(family: str, seed: int = 0):
    """A tiny random transformers causal LM of ``family`` (a key of ``FAMILY_CONFIGS``), eager
    attention so that it returns its attention patterns."""
    import transformers

    config_class, kwargs = FAMILY_CONFIGS[family]
    torch.manual_seed(seed)
    config = getattr(transformers, config_class)(**kwargs)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.eval()


def save_family_folder(model, folder):
    """``model`` saved as an HF folder, with induction-2l's tokenizer (vocabulary 2048)."""
    import shutil

    from interp.models import ORGANISMS

    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ORGANISMS["induction-2l"].path / name, folder / name)
    return folder


def _llama_cpp_permute(w, n_head: int):
    """llama.cpp's q/k row order (interleaved rotary halves), which transformers undoes on load."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def write_gguf(model, path, arch: str, name: str):
    """``model`` written as a float32 GGUF of llama.cpp architecture ``arch``, as llama.cpp's
    converter writes it: tensor names from transformers' own GGUF mapping read backwards, the
    layout changes transformers undoes on load applied, config keys from its config mapping, and
    induction-2l's byte-level BPE vocabulary as the tokenizer."""
    import json

    import gguf
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    from interp.models import ORGANISMS

    cfg = model.config
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=cfg.to_dict())
    names = get_gguf_hf_weights_map(model, processor, model_type=arch)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    for key, attr in GGUF_CONFIG_MAPPING[arch].items():
        value = getattr(cfg, attr, None) if attr else None
        if attr == "rope_theta" and value is None:
            rope = cfg.rope_parameters
            value = rope.get("rope_theta", rope.get("full_attention", {}).get("rope_theta"))
        if attr == "n_ctx" and value is None:
            value = cfg.n_positions
        if isinstance(value, bool) or value is None:
            continue
        add = writer.add_uint32 if isinstance(value, int) else writer.add_float32
        add(f"{arch}.{key}", value)
    state = model.state_dict()
    n_head = getattr(cfg, "num_attention_heads", None)
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_head
    transposed = ("attn_qkv.weight", "ffn_down.weight", "ffn_up.weight", "attn_output.weight")
    for gguf_name, hf_name in sorted(names.items()):
        # llama.cpp writes no output matrix for tied embeddings; transformers reads that as tied
        if hf_name not in state or (gguf_name.startswith("output.") and cfg.tie_word_embeddings):
            continue
        w = state[hf_name].detach().float().numpy().copy()
        if arch == "llama" and ".attn_q." in gguf_name:
            w = _llama_cpp_permute(w, n_head)
        elif arch == "llama" and ".attn_k." in gguf_name:
            w = _llama_cpp_permute(w, n_kv)
        elif arch in ("gemma2", "gemma3") and "norm.weight" in gguf_name:
            w = w + 1  # llama.cpp stores Gemma's (1 + w) norm scale whole
        elif arch == "gpt2" and gguf_name.endswith(transposed):
            w = w.T.copy()  # GPT-2's Conv1D keeps its matrices transposed
        writer.add_tensor(gguf_name, w)
    _add_tokenizer(
        writer, json.loads((ORGANISMS["induction-2l"].path / "tokenizer.json").read_text())
    )
    _finish_gguf(writer)
    return path


def write_gguf_header(path, arch: str, name: str = "tiny"):
    """A GGUF holding only what names its architecture (and one tensor): enough for a loader to
    decide whether it reads ``arch`` at all."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    _finish_gguf(writer)
    return path


def _add_tokenizer(writer, tokenizer: dict) -> None:
    vocab = tokenizer["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    special = {t["id"] for t in tokenizer["added_tokens"] if t["special"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in special else 1 for i in range(len(tokens))])  # 3: control
    writer.add_token_merges(
        [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    )
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_pad_token_id(0)


def _finish_gguf(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
