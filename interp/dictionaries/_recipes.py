"""The shipped transcoders: how they are trained, where they live, and how well they do.

``train_shipped("induction-2l")`` reproduces ``weights/induction-2l/`` (seeded; a few minutes on
two CPU cores). Training data mixes windows of the organisms' corpus (the standard library's
source, tokenised as in ``interp.organisms``) with repeated random token sequences, as the
organism itself was trained; the held-out set takes windows from the last 5% of the corpus,
which training never sees, and repeated sequences from another seed.

SmolLM2-135M-Instruct's recipe is here too (``RECIPES``, ``NATURAL_LAYERS``), but it learns from
English text and is trained by ``_natural.train_natural``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import Tensor

from .. import corpus
from ..adapter import adapter
from ..artifacts import atomic_dir
from ..hooks import locked
from ..organisms import corpus_stream, repeated_random_batch, text_batch
from ._io import load_transcoders, save_transcoders
from ._transcoder import TranscoderTrainConfig, train_transcoders

WEIGHTS_DIR = Path(__file__).parent / "weights"

RECIPES: dict[str, TranscoderTrainConfig] = {
    "induction-2l": TranscoderTrainConfig(
        d_sae=1024, steps=2000, batch_tokens=1024, seq_len=128, lr=2e-3, l1_coefficient=2e-2
    ),
    # trained on English text by ``_natural.train_natural``, not by ``train_shipped``
    "smollm2-135m": TranscoderTrainConfig(
        d_sae=1024,
        steps=700,
        batch_tokens=512,
        buffer_tokens=65536,
        buffer_dtype="bfloat16",
        seq_len=128,
        lr=2e-3,
        l1_coefficient=2e-2,
        dead_after=150,
        resample_every=200,
    ),
}
SYNTHETIC_FRACTION = {"induction-2l": 0.5}
# models whose transcoders learn from natural English (``interp.corpus``), and the MLPs shipped
NATURAL_LAYERS: dict[str, tuple[int, ...]] = {"smollm2-135m": tuple(range(30))}


# transcoders too large for interp's wheel ship as packages of their own (``packages/`` in a
# clone): the model's name, the importable package, and the folder it sits in in the repository
SEPARATE: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("interp_smollm2_transcoders", "packages/interp-smollm2-transcoders"),
}


def shipped_dir(name: str) -> Path:
    """The folder of the shipped transcoders for model ``name``.

    For a model whose transcoders ship as a package of their own (``SEPARATE``: SmolLM2's 30),
    the folder inside that package when it is installed, else where it would be (which does not
    exist; ``load_transcoders`` then says how to install or train them).
    """
    if name not in RECIPES:
        raise ValueError(
            f"no shipped transcoders for {name!r}; shipped: {', '.join(sorted(RECIPES))}"
        )
    if name in SEPARATE:
        spec = importlib.util.find_spec(SEPARATE[name][0])
        if spec is not None and spec.origin is not None:
            return Path(spec.origin).parent / "weights"
    return WEIGHTS_DIR / name


def missing_hint(name: str) -> str:
    """How to get the shipped transcoders of ``name`` when they are not installed."""
    if name not in SEPARATE:
        return f"train them with: interp train transcoder {name}"
    module, folder = SEPARATE[name]
    dist = folder.rsplit("/", 1)[-1]
    return (
        f"{name}'s transcoders ship as the package {dist} (module {module}): in a clone of interp, "
        f"pip install {folder}; or train them with: interp train transcoder {name}"
    )


def has_shipped(name: str) -> bool:
    """Whether trained transcoders for model ``name`` ship with the package.

    False for a model without a recipe, and for an organism whose transcoders were not trained
    yet (``interp train transcoder NAME`` trains them), so a caller can offer them or not
    without catching an error.
    """
    return name in RECIPES and any(shipped_dir(name).glob("layer_*"))


def _stream(model) -> Tensor:
    return corpus_stream(model.tokenizer)


def token_sampler(model, synthetic_fraction: float = 0.5, *, held_out: bool = False):
    """``sample(n, generator) -> [n, seq_len]``: corpus windows mixed with repeated sequences.

    ``held_out=True`` draws windows from the last 5% of the corpus (never used in training).
    """
    stream = _stream(model)
    cut = len(stream) - len(stream) // 20
    part = stream[cut:] if held_out else stream[:cut]
    bos = int(model.tokenizer.bos_token_id)
    vocab = int(model.cfg.d_vocab)

    def sample(n: int, gen: torch.Generator, seq_len: int = 128) -> Tensor:
        n_syn = int(round(n * synthetic_fraction))
        rows = [text_batch(part, n - n_syn, seq_len, gen)] if n > n_syn else []
        if n_syn:
            rows.append(repeated_random_batch(n_syn, seq_len, vocab, bos, gen))
        return torch.cat(rows)[torch.randperm(n, generator=gen)]

    return sample


def natural_recipe(model) -> str | None:
    """The natural-text recipe ``model`` was loaded as (``"smollm2-135m"``), or None."""
    from ..models import SMOLLM2, SMOLLM2_ALIASES

    spec = adapter(model).spec.lower()
    spec = SMOLLM2 if spec in SMOLLM2_ALIASES else spec
    return spec if spec in NATURAL_LAYERS else None


@locked
def held_out_tokens(model, n: int = 32, seq_len: int = 128, seed: int = 2024) -> Tensor:
    """The fixed held-out evaluation batch: ``[n, seq_len]``.

    For an organism: half windows of its held-out source text, half repeated random sequences
    (drawn with ``seed``). For a model with a natural-text recipe (SmolLM2): ``n`` evenly spaced
    windows of the English corpus's held-out split (``interp.corpus.spaced_windows``).
    """
    if natural_recipe(model) is not None:
        return corpus.spaced_windows(model.tokenizer, n, seq_len, "held_out")
    gen = torch.Generator().manual_seed(seed)
    return token_sampler(model, 0.5, held_out=True)(n, gen, seq_len)


def train_shipped(
    name: str = "induction-2l",
    out: str | Path | None = None,
    *,
    config: TranscoderTrainConfig | None = None,
    progress: bool = True,
) -> Path:
    """Train the transcoders of organism ``name`` for every MLP and save them (sae-lens format).

    ``out`` defaults to the shipped folder; the folder is replaced atomically and gets a
    ``metrics.json`` with the held-out figures (FVE, L0, spliced loss) per layer.
    """
    from ..models import load_model
    from ._evaluate import reconstruction_report

    if name in NATURAL_LAYERS:
        raise ValueError(
            f"{name!r} learns from English text: use interp.dictionaries.train_natural({name!r})"
        )
    config = config or RECIPES[name]
    out = Path(out) if out is not None else shipped_dir(name)
    model = load_model(name, device="cpu")
    sample = token_sampler(model, SYNTHETIC_FRACTION.get(name, 0.0))
    tcs, logs = train_transcoders(
        model,
        None,
        config,
        next_tokens=lambda n, g: sample(n, g, config.seq_len),
        model_name=name,
        progress=progress,
    )
    report = reconstruction_report(model, tcs, held_out_tokens(model))
    with atomic_dir(out) as tmp:
        save_transcoders(tcs, tmp, dtype=torch.float16)
        # figures of the saved (float16) weights, as they will be loaded
        report = reconstruction_report(model, load_transcoders(tmp), held_out_tokens(model))
        report["training"] = {
            "recipe": name,
            "final_log": {str(k): v[-1] for k, v in logs.items()},
        }
        (tmp / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        tmp.chmod(0o755)
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
    return out


def shipped_metrics(name: str = "induction-2l") -> dict:
    """The held-out figures recorded when the shipped transcoders were trained."""
    return json.loads((shipped_dir(name) / "metrics.json").read_text())
