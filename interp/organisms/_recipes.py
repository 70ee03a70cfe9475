"""How each shipped organism is trained. ``train(name)`` reproduces the shipped folder, seeded."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts import atomic_file, recover
from . import _data, _train

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Organism:
    name: str
    summary: str
    circuits: tuple[str, ...]

    @property
    def path(self) -> Path:
        """The model folder (put back first if a retraining died while swapping it in)."""
        recover(WEIGHTS_DIR / self.name)
        return WEIGHTS_DIR / self.name


ORGANISMS: dict[str, Organism] = {
    o.name: o
    for o in [
        Organism(
            "induction-2l",
            "2-layer Llama-style transformer (rotary, RMSNorm, SwiGLU MLP) (attention + MLP) trained on Python stdlib source "
            "mixed with repeated random token sequences.",
            (
                "previous-token head L0H3 (score 0.77) feeding, by K-composition, the induction "
                "heads of layer 1: L1H0, L1H1, L1H2 (scores 0.87-0.90) and L1H3 (0.57)",
                "the induction heads are redundant: patching any one restores part of the "
                "behaviour; noising L0H3 alone removes it",
            ),
        ),
        Organism(
            "reasoning-base",
            "4-layer Llama-style language model pretrained on Python stdlib source only.",
            ("none known for variable tracking: the base for post-training comparisons",),
        ),
        Organism(
            "reasoning-tuned",
            "reasoning-base after post-training (fine-tuning) on variable-tracking chains "
            "such as `a = 7; b = a; print(b)` -> `7`.",
            (
                "variable tracking: 100% on held-out 1-3 hop chains (reasoning-base: 0%)",
                "emerged with post-training (mean-ablation importance, as a share of the tuned "
                "logit difference): L3H2 (~0.63) and L3H3 (~0.06); ablating both drops accuracy "
                "on 2-hop chains from 1.0 to ~0.16, ablating two random heads leaves it at 1.0",
            ),
        ),
    ]
}

INDUCTION_2L = _train.TrainConfig(
    n_layer=2, steps=2500, synthetic_fraction=0.5, checkpoint_every=100
)
REASONING_BASE = _train.TrainConfig(n_layer=4, steps=1500, seed=1)
REASONING_TUNED = _train.TrainConfig(
    n_layer=4,
    steps=1000,
    lr=1e-3,
    warmup=50,
    seq_len=128,
    seed=2,
    extra={"text_fraction": 0.25, "hops": [1, 2, 3], "distractors": [0, 1, 2]},
)


def checkpoint_dir(name: str) -> Path:
    """Training checkpoints (HF folders ``step-00050`` ...), cached outside the package."""
    return _train.cache_dir() / "checkpoints" / name


def _card(org: Organism, cfg: _train.TrainConfig, metrics: dict, seconds: float) -> str:
    lines = [
        f"# {org.name}",
        "",
        org.summary,
        "",
        "Shipped with the `interp` workbench; reproduce it with "
        f"`interp organisms train {org.name}` (seeded; CPU; same Python minor version, since the "
        "training text is that version's standard library).",
        "",
        "## Training",
        f"- Llama architecture (rotary, RMSNorm, SwiGLU MLP); layers {cfg.n_layer}, d_model "
        f"{cfg.n_embd}, heads {cfg.n_head}, d_mlp {4 * cfg.n_embd}, "
        f"context {cfg.n_ctx}, vocab {_data.VOCAB_SIZE} (byte-level BPE trained on the stdlib)",
        f"- {cfg.steps} steps of AdamW, batch {cfg.batch} x {cfg.seq_len} tokens, lr {cfg.lr}, "
        f"seed {cfg.seed}; {seconds / 60:.1f} min on this machine",
        "",
        "## Measured after training",
        *[f"- {k}: {v}" for k, v in metrics.items()],
        "",
        "## Known circuits",
        *[f"- {c}" for c in org.circuits],
        "",
    ]
    return "\n".join(lines)


def _new_model(cfg: _train.TrainConfig, tokenizer):
    from transformers import LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(_train.model_config(cfg, tokenizer))


def _train_induction(out: Path, steps: int | None, checkpoint_every: int | None = None) -> dict:
    overrides = {"steps": steps, "checkpoint_every": checkpoint_every}
    cfg = _train.TrainConfig(
        **{**vars(INDUCTION_2L), **{k: v for k, v in overrides.items() if v is not None}}
    )
    gen = _train.seed_everything(cfg.seed)
    tok = _train.shared_tokenizer()
    stream = _train.corpus_stream(tok)
    model = _new_model(cfg, tok)
    n_syn = int(cfg.batch * cfg.synthetic_fraction)

    def next_batch(step):
        text = _data.text_batch(stream, cfg.batch - n_syn, cfg.seq_len, gen)
        syn = _data.repeated_random_batch(n_syn, cfg.seq_len, len(tok), tok.bos_token_id, gen)
        tokens = torch.cat([text, syn])
        return tokens, torch.ones_like(tokens)

    ckpt_root = checkpoint_dir("induction-2l")

    def on_checkpoint(step, m):
        _train.save_folder(
            m,
            tok,
            ckpt_root / f"step-{step:05d}",
            f"# induction-2l step {step}\n",
            {"step": step, "config": _train.config_dict(cfg)},
        )

    start = _train.wall_clock()
    losses = _train.train_loop(model, cfg, next_batch, on_checkpoint, desc="induction-2l")
    seconds = _train.wall_clock() - start
    first, second = _train.repeated_token_losses(model, tok)
    metrics = {
        "final training loss (last 50 steps)": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "held-out stdlib text loss": round(_train.text_loss(model, stream), 4),
        "repeated random tokens, loss on first copy": round(first, 4),
        "repeated random tokens, loss on second copy": round(second, 4),
        "checkpoints": f"every {cfg.checkpoint_every} steps under $INTERP_CACHE/checkpoints/induction-2l",
    }
    org = ORGANISMS["induction-2l"]
    _train.save_folder(
        model,
        tok,
        out,
        _card(org, cfg, metrics, seconds),
        {"config": _train.config_dict(cfg), "metrics": metrics, "seconds": seconds},
    )
    return metrics


def _train_reasoning_base(out: Path, steps: int | None) -> dict:
    cfg = (
        REASONING_BASE
        if steps is None
        else _train.TrainConfig(**{**vars(REASONING_BASE), "steps": steps})
    )
    gen = _train.seed_everything(cfg.seed)
    tok = _train.shared_tokenizer()
    stream = _train.corpus_stream(tok)
    model = _new_model(cfg, tok)

    def next_batch(step):
        tokens = _data.text_batch(stream, cfg.batch, cfg.seq_len, gen)
        return tokens, torch.ones_like(tokens)

    start = _train.wall_clock()
    losses = _train.train_loop(model, cfg, next_batch, desc="reasoning-base")
    seconds = _train.wall_clock() - start
    acc = _train.chain_accuracy(model, tok)
    metrics = {
        "final training loss (last 50 steps)": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "held-out stdlib text loss": round(_train.text_loss(model, stream), 4),
        "variable-tracking accuracy (500 held-out chains, 1-3 hops)": round(acc["accuracy"], 3),
        "variable-tracking accuracy by hops": acc["by_hops"],
    }
    org = ORGANISMS["reasoning-base"]
    _train.save_folder(
        model,
        tok,
        out,
        _card(org, cfg, metrics, seconds),
        {"config": _train.config_dict(cfg), "metrics": metrics, "seconds": seconds},
    )
    return metrics


def chain_batch(tok, batch: int, seq_len: int, rng: random.Random, hops, distractors):
    """Rows of packed ``>>> program\\nD\\n`` problems; the loss mask marks only the answer digits."""
    rows, masks = [], []
    for _ in range(batch):
        ids, mask = [tok.bos_token_id], [0]
        while True:
            c = _data.variable_chain(rng, rng.choice(hops), rng.choice(distractors))
            prompt = tok(c.prompt)["input_ids"]
            answer = tok(c.answer + "\n")["input_ids"]
            if len(ids) + len(prompt) + len(answer) > seq_len:
                break
            ids += prompt + answer
            mask += [0] * len(prompt) + [1] + [0] * (len(answer) - 1)
        pad = seq_len - len(ids)
        rows.append(ids + [tok.bos_token_id] * pad)
        masks.append(mask + [0] * pad)
    return torch.tensor(rows), torch.tensor(masks)


def _train_reasoning_tuned(out: Path, steps: int | None) -> dict:
    from transformers import AutoModelForCausalLM

    cfg = (
        REASONING_TUNED
        if steps is None
        else _train.TrainConfig(**{**vars(REASONING_TUNED), "steps": steps})
    )
    base = ORGANISMS["reasoning-base"].path
    if not (base / "model.safetensors").exists():
        raise FileNotFoundError(
            f"reasoning-tuned starts from reasoning-base; train that first ({base})"
        )
    gen = _train.seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = _train.shared_tokenizer()
    stream = _train.corpus_stream(tok)
    model = AutoModelForCausalLM.from_pretrained(base)
    n_text = int(cfg.batch * cfg.extra["text_fraction"])

    def next_batch(step):
        text = _data.text_batch(stream, n_text, cfg.seq_len, gen)
        chains, mask = chain_batch(
            tok, cfg.batch - n_text, cfg.seq_len, rng, cfg.extra["hops"], cfg.extra["distractors"]
        )
        # text rows keep the language-modelling loss, weighted like one answer per row
        text_mask = torch.zeros_like(text)
        text_mask[:, -8:] = 1
        return torch.cat([text, chains]), torch.cat([text_mask, mask])

    start = _train.wall_clock()
    losses = _train.train_loop(model, cfg, next_batch, desc="reasoning-tuned")
    seconds = _train.wall_clock() - start
    acc = _train.chain_accuracy(model, tok)
    base_acc = _train.chain_accuracy(AutoModelForCausalLM.from_pretrained(base), tok)
    metrics = {
        "final training loss (last 50 steps)": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "held-out stdlib text loss": round(_train.text_loss(model, stream), 4),
        "variable-tracking accuracy (500 held-out chains, 1-3 hops)": round(acc["accuracy"], 3),
        "variable-tracking accuracy by hops": acc["by_hops"],
        "reasoning-base accuracy on the same chains": round(base_acc["accuracy"], 3),
    }
    org = ORGANISMS["reasoning-tuned"]
    _train.save_folder(
        model,
        tok,
        out,
        _card(org, cfg, metrics, seconds),
        {"config": _train.config_dict(cfg), "metrics": metrics, "seconds": seconds},
    )
    return metrics


_TRAINERS = {
    "induction-2l": _train_induction,
    "reasoning-base": _train_reasoning_base,
    "reasoning-tuned": _train_reasoning_tuned,
}


def train(
    name: str,
    out: Path | None = None,
    steps: int | None = None,
    checkpoint_every: int | None = None,
) -> dict:
    """Train organism ``name`` (seeded) and save it to ``out`` (default: the shipped folder).

    Arguments:
        name: one of ``ORGANISMS``.
        out: destination folder; written atomically.
        steps: override the number of steps (for quick checks; the shipped models use the default).
        checkpoint_every: override how often training checkpoints are written (induction-2l).

    Returns:
        The metrics written to the model card.
    """
    if name not in _TRAINERS:
        raise ValueError(f"unknown organism {name!r}; known: {', '.join(ORGANISMS)}")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 8)))
    folder = Path(out) if out else ORGANISMS[name].path
    if checkpoint_every is not None:
        if name != "induction-2l":
            raise ValueError(f"checkpoint_every applies to induction-2l only, not {name!r}")
        return _train_induction(folder, steps, checkpoint_every)
    return _TRAINERS[name](folder, steps)


def refresh_card(name: str) -> None:
    """Re-render an organism's model card from its ``training.json`` and its registry entry."""
    import json

    org = ORGANISMS[name]
    meta = json.loads((org.path / "training.json").read_text())
    cfg = _train.TrainConfig(**meta["config"])
    with atomic_file(org.path / "README.md", "w") as f:
        f.write(_card(org, cfg, meta["metrics"], meta["seconds"]))
