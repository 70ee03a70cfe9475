"""Checks of user arguments, shared so that every entry point fails the same early, clear way.

Each check raises with a message that names the argument, shows the bad value and says what is
accepted. Token prompts are checked here once (text that cannot be encoded, prompts longer than
the model's context, token ids outside the vocabulary or not integers), so tasks, attribution
graphs and attention pathways refuse the same inputs with the same words.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor


def positive_int(value, arg: str) -> int:
    """``value`` if it is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{arg}={value!r} is not accepted; use an integer >= 1")
    return value


def finite(value, arg: str) -> None:
    """Refuse NaN or infinite numbers (a float or a tensor) in an intervention's input."""
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex():
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                where = tuple(bad.nonzero()[0].tolist())
                raise ValueError(
                    f"{arg} holds a non-finite value ({value[where].item()} at index {where}); "
                    "give finite numbers"
                )
        return
    if isinstance(value, int | float) and not math.isfinite(value):
        raise ValueError(f"{arg}={value!r} is not accepted; give a finite number")


def indices(values: Sequence[int], size: int, arg: str, where: str = "") -> list[int]:
    """``values`` as non-negative indices into an axis of ``size``; negative ones count from the
    end (Python's convention), anything outside ``-size..size-1`` or not an integer raises."""
    if isinstance(values, Tensor):
        values = values.tolist()
    if isinstance(values, int | str) or not isinstance(values, Sequence | range):
        raise TypeError(f"{arg}={values!r} must be a list of integers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{arg}={list(values)!r} holds {v!r}; indices must be integers")
        if not -size <= v < size:
            context = f" {where}" if where else ""
            raise IndexError(
                f"{arg}={list(values)!r} holds {v}, out of range{context}: "
                f"use 0..{size - 1} (or -{size}..-1 from the end)"
            )
        out.append(v % size)
    return out


def text(value, arg: str) -> str:
    """A prompt string that is non-empty and can be encoded (no lone surrogates)."""
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a string, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{arg}='' is empty; give a non-empty prompt")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{arg}={value!r} holds {value[err.start : err.end]!r} at character {err.start}, "
            "which is not valid Unicode text (a lone surrogate); give valid text"
        ) from None
    return value


def context(model, n_tokens: int, arg: str) -> None:
    """Refuse a prompt of more tokens than the model's context (TransformerLens would cut it)."""
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx and n_tokens > n_ctx:
        raise ValueError(
            f"{arg} has {n_tokens} tokens, over the context {n_ctx} (the model's n_ctx={n_ctx}); "
            f"give at most {n_ctx} tokens"
        )


def tokenize(model, prompt, arg: str, prepend_bos: bool | None = None) -> Tensor:
    """One prompt string as checked token ids ``[pos]``, never silently truncated."""
    ids = model.to_tokens(text(prompt, arg), prepend_bos=prepend_bos, truncate=False)[0]
    context(model, ids.numel(), arg)
    return ids


def token_ids(model, tokens, arg: str) -> Tensor:
    """Token ids (a tensor or nested lists) checked to be integers inside the vocabulary and to
    fit the context (their last axis is positions)."""
    if not isinstance(tokens, Tensor):
        try:
            tokens = torch.as_tensor(tokens)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{arg} must be token ids (integers), got {tokens!r}") from err
    if tokens.dtype == torch.bool or tokens.is_floating_point() or tokens.is_complex():
        raise TypeError(
            f"{arg} token ids must be an integer tensor, got dtype {tokens.dtype}; "
            "convert with .long() if the values are whole numbers"
        )
    vocab = model.cfg.d_vocab
    if tokens.numel():
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab:
            bad = low if low < 0 else high
            raise ValueError(f"{arg} holds token id {bad}, outside the vocabulary 0..{vocab - 1}")
    if tokens.dim():
        context(model, tokens.shape[-1], arg)
    return tokens


SAE_LENS_INSTALL = "pip install 'sae-lens>=6.54,<7' (it pins transformer-lens < 4)"


def require(module: str, what: str, install: str) -> None:
    """Raise ``ModuleNotFoundError`` saying what needs ``module`` and how to install it, when it
    cannot be imported (an optional dependency, e.g. sae-lens beside TransformerLens 4)."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(f"{what} needs the {module} package: {install}") from err
