"""Architectures: which model families load, from which files, and what stands in the way.

A model reaches ``load_model`` as a Hugging Face folder, whose ``config.json`` names its class
(``Qwen3ForCausalLM``), or as a GGUF file, whose metadata names a llama.cpp architecture
(``qwen3``) that transformers de-quantises into one of its own classes. Either way the class
transformers builds *is* the architecture: TransformerBridge needs an adapter for it, and
HookedTransformer converts only a few (GPT-2 and Llama here). A GGUF config's ``model_type`` can be
a variant the bridge does not map (``gemma3_text``), so the class is what gets handed on.

``FAMILIES`` lists the families researchers bring, each with the layout features that decide
which analyses take the fast path (``interp.forward.blockers`` names them on a loaded model);
``tests/test_architectures.py`` builds a tiny random model of each, from an HF folder and from a
GGUF, and checks logits, hook names and one pass of each analysis kind against it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    """A model family: its transformers class, the llama.cpp architecture its GGUF files name
    (``None`` where llama.cpp has none), whether transformers reads that GGUF back, and the layout
    features analyses must know about."""

    label: str
    hf_class: str
    gguf: str | None
    gguf_readable: bool
    features: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "llama": Family("Llama 3.x", "LlamaForCausalLM", "llama", True, ("rotary", "GQA")),
    # llama.cpp writes Mistral as "llama"; transformers builds it back as LlamaForCausalLM
    "mistral": Family(
        "Mistral", "MistralForCausalLM", "llama", True, ("rotary", "GQA", "sliding window")
    ),
    "qwen2": Family(
        "Qwen 2.5", "Qwen2ForCausalLM", "qwen2", True, ("rotary", "GQA", "qkv bias", "tied")
    ),
    "qwen3": Family("Qwen 3", "Qwen3ForCausalLM", "qwen3", True, ("rotary", "GQA", "QK-norm")),
    "gemma2": Family(
        "Gemma 2",
        "Gemma2ForCausalLM",
        "gemma2",
        True,
        ("rotary", "GQA", "soft caps", "sliding window", "pre+post norms", "tied"),
    ),
    "gemma3": Family(
        "Gemma 3",
        "Gemma3ForCausalLM",
        "gemma3",
        True,
        ("rotary", "GQA", "QK-norm", "sliding window", "pre+post norms", "tied"),
    ),
    "phi": Family(
        "Phi-1/2", "PhiForCausalLM", "phi2", False, ("partial rotary", "parallel attn+MLP")
    ),
    "phi3": Family("Phi-3", "Phi3ForCausalLM", "phi3", True, ("rotary", "fused qkv")),
    "gpt2": Family("GPT-2", "GPT2LMHeadModel", "gpt2", True, ("absolute positions", "tied")),
    "gpt_neox": Family(
        "Pythia / GPT-NeoX",
        "GPTNeoXForCausalLM",
        "gptneox",
        False,
        ("partial rotary", "parallel attn+MLP"),
    ),
    "olmo": Family("OLMo", "OlmoForCausalLM", "olmo", False, ("rotary", "parameter-free norms")),
    "olmo2": Family(
        "OLMo 2", "Olmo2ForCausalLM", "olmo2", False, ("rotary", "QK-norm", "post norms")
    ),
}

# llama.cpp's spelling of an architecture where transformers' GGUF mapping spells it otherwise
_GGUF_SPELLING = {
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gpt-oss": "gpt_oss",
    "minimax-m2": "minimax_m2",
    "t5encoder": "t5",
}


def gguf_architecture(path: Path) -> str | None:
    """The llama.cpp architecture a GGUF file names (``general.architecture``); ``None`` when the
    file cannot be read as GGUF at all (transformers then says why)."""
    try:
        from gguf import GGUFReader

        field = GGUFReader(path).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode()
    except Exception:  # not a GGUF, truncated, no architecture key: transformers reports it
        return None


def gguf_readable() -> list[str]:
    """The llama.cpp architectures this transformers de-quantises, as GGUF files spell them."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    names = set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}
    try:
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS

        names |= set(GGUF_CONFIG_ARCHS)
    except ImportError:  # transformers before 5.x reads through the mapping alone
        pass
    spelled = {v: k for k, v in _GGUF_SPELLING.items() if k != "t5encoder"}
    return sorted({spelled.get(n, n) for n in names} | ({"t5encoder"} if "t5" in names else set()))


def gguf_refusal(arch: str | None) -> str | None:
    """Why a GGUF of llama.cpp architecture ``arch`` cannot load, naming what can; ``None`` when
    transformers reads the architecture (a failure then lies elsewhere in the file)."""
    if arch is None:
        return None
    readable = gguf_readable()
    if arch in readable or _GGUF_SPELLING.get(arch) in readable:
        return None
    import transformers

    family = next((f for f in FAMILIES.values() if f.gguf == arch), None)
    folder = (
        f" Load the model's Hugging Face folder instead: {family.label} ({family.hf_class}) "
        "loads from one through TransformerBridge."
        if family is not None
        else " Load the model's Hugging Face folder instead, if it has one."
    )
    return (
        f"its architecture {arch!r} is one transformers {transformers.__version__} cannot "
        f"de-quantise from GGUF (it reads {', '.join(readable)}).{folder}"
    )


def bridge_architectures() -> list[str]:
    """The transformers classes TransformerBridge has an adapter for."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    return sorted(SUPPORTED_ARCHITECTURES)


def bridge_refusal(arch: str) -> str | None:
    """Why TransformerBridge cannot wrap class ``arch``, with close names; ``None`` when it can."""
    supported = bridge_architectures()
    if arch in supported:
        return None
    close = difflib.get_close_matches(arch, supported, n=4, cutoff=0.6)
    hint = f" Close names it supports: {', '.join(close)}." if close else ""
    families = ", ".join(f"{f.label} ({f.hf_class})" for f in FAMILIES.values())
    return (
        f"TransformerBridge has no adapter for {arch}, so it cannot be hooked.{hint} "
        f"Tested families: {families}."
    )
