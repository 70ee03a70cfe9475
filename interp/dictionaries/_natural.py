"""Transcoders for a real model, trained on natural English text.

The organisms' transcoders (``_recipes``) learn from the Python source the organisms read. A
pretrained model such as SmolLM2-135M-Instruct read English, so its transcoders learn from
``interp.corpus`` (Jane Austen's novels): training draws windows of the corpus's train split,
and every figure is measured on windows of its held-out split, which training never sees.

``train_natural("smollm2-135m")`` reproduces the transcoders of all 30 MLPs (seeded), which ship
as the package ``interp-smollm2-transcoders`` (``packages/`` in a clone; about 70 MB, too much for
interp's own wheel): one forward pass over ``buffer_tokens`` tokens of the corpus caches every
MLP's input and output at once (stored in bfloat16: 4.5 GB for 65,536 tokens), then the 30
transcoders take their ``steps`` optimiser steps side by side on the same batches.
``train_natural("smollm2-135m", layers=[L], out=folder)`` trains any subset with the same
recipe. ``metrics.json`` records the time it took (``training.seconds``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import Tensor

from .. import corpus
from ..artifacts import atomic_dir
from ..hooks import locked
from ._evaluate import reconstruction_report
from ._io import load_transcoders, save_transcoders
from ._recipes import NATURAL_LAYERS, RECIPES, shipped_dir
from ._transcoder import train_transcoders

HELD_OUT_WINDOWS = 16  # windows of 128 tokens behind every figure in metrics.json


@locked
def natural_held_out_tokens(model, n: int = HELD_OUT_WINDOWS, seq_len: int = 128) -> Tensor:
    """``[n, seq_len]`` held-out corpus windows, evenly spaced so that every novel is in them."""
    return corpus.spaced_windows(model.tokenizer, n, seq_len, "held_out")


def train_natural(
    name: str = "smollm2-135m",
    layers: list[int] | None = None,
    out: str | Path | None = None,
    *,
    model=None,
    progress: bool = True,
) -> Path:
    """Train transcoders for ``name``'s MLPs on the English corpus and save them with their figures.

    Arguments:
        name: a model with a natural-text recipe (``NATURAL_LAYERS``): ``"smollm2-135m"``.
        layers: which MLPs (default: the shipped ones).
        out: the folder to write (default: the shipped folder, only for the shipped layers); it is
            replaced atomically and gets a ``metrics.json`` with held-out FVE, L0, dead and dense
            feature shares and spliced losses per layer, and the training time.
        model: the loaded model (default: ``load_model(name)``).

    Returns:
        ``out``.
    """
    if name not in NATURAL_LAYERS:
        raise ValueError(
            f"no natural-text recipe for {name!r}; have {', '.join(sorted(NATURAL_LAYERS))}"
        )
    layers = list(NATURAL_LAYERS[name]) if layers is None else [int(x) for x in layers]
    if out is None:
        if sorted(layers) != sorted(NATURAL_LAYERS[name]):
            raise ValueError(
                f"layers {layers} are not the shipped set {list(NATURAL_LAYERS[name])}: give out="
            )
        out = shipped_dir(name)
    if model is None:
        from ..models import load_model

        model = load_model(name)
    config = RECIPES[name]
    start = time.perf_counter()
    tcs, logs = train_transcoders(
        model,
        layers,
        config,
        next_tokens=corpus.window_sampler(model.tokenizer, config.seq_len, "train"),
        model_name=name,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    with atomic_dir(out) as tmp:
        save_transcoders(tcs, tmp, dtype=torch.float16)
        # figures of the saved (float16) weights, as they will be loaded
        report = reconstruction_report(model, load_transcoders(tmp), natural_held_out_tokens(model))
        report["training"] = {
            "recipe": name,
            "corpus": "interp.corpus (Jane Austen's novels), train split; figures: held-out split",
            "seconds": round(seconds, 1),
            "torch_threads": torch.get_num_threads(),
            "final_log": {str(k): v[-1] for k, v in logs.items()},
        }
        (tmp / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        tmp.chmod(0o755)
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
    return Path(out)
