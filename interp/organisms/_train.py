"""Training code for the model organisms: seeded, CPU-friendly, saved as Hugging Face folders."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..artifacts import atomic_dir, atomic_file, recover
from . import _data


def cache_dir() -> Path:
    """Where downloads, training checkpoints and corpora go: ``$INTERP_CACHE`` or ``~/.cache/interp``."""
    return Path(os.environ.get("INTERP_CACHE", Path.home() / ".cache" / "interp"))


@dataclass
class TrainConfig:
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_ctx: int = 256
    seq_len: int = 128
    batch: int = 32
    steps: int = 1500
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.05
    seed: int = 0
    synthetic_fraction: float = 0.0
    checkpoint_every: int = 0
    extra: dict = field(default_factory=dict)


def model_config(cfg: TrainConfig, tokenizer):
    """A small Llama-architecture config: rotary positions, RMSNorm, gated (SwiGLU) MLP.

    Rotary positions make relative offsets (a previous-token head) as easy to learn at every
    position; with learned absolute positions the 2-layer model solved repeated sequences with
    fixed-offset heads instead of a previous-token head feeding an induction head.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.n_embd,
        intermediate_size=4 * cfg.n_embd,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_head,
        max_position_embeddings=cfg.n_ctx,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def save_folder(model, tokenizer, out: Path, card: str, meta: dict) -> None:
    """Write an HF model folder atomically: build it beside ``out``, then swap it in whole."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card)
        (tmp / "training.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)


def shared_tokenizer():
    """The organisms' tokenizer, trained on the standard library (cached after the first call)."""
    from transformers import PreTrainedTokenizerFast

    path = cache_dir() / "tokenizer" / f"stdlib-bpe-{_data.VOCAB_SIZE}"
    recover(path)
    if (path / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(path)
    tok = _data.train_tokenizer(_data.stdlib_text())
    with atomic_dir(path) as tmp:
        tok.save_pretrained(tmp)
    return tok


def corpus_stream(tokenizer) -> torch.Tensor:
    """The tokenised standard library as one id stream (cached; loaded as plain tensors only)."""
    path = cache_dir() / "corpus" / f"stdlib-{_data.VOCAB_SIZE}.pt"
    if path.exists():
        # weights_only: a cache file is data, and unpickling arbitrary objects would run code
        return torch.load(path, weights_only=True)
    stream = _data.encode_corpus(tokenizer, _data.stdlib_text())
    with atomic_file(path) as f:
        torch.save(stream, f)
    return stream


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_loop(
    model,
    cfg: TrainConfig,
    next_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    on_checkpoint: Callable[[int, object], None] | None = None,
    desc: str = "train",
) -> list[float]:
    """AdamW with warm-up and cosine decay. ``next_batch(step)`` gives ``(tokens, loss_mask)``."""
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
    )
    losses: list[float] = []
    model.train()
    bar = tqdm(range(cfg.steps), desc=desc, mininterval=5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        tokens, mask = next_batch(step)
        logits = model(tokens).logits[:, :-1]
        target = tokens[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
        ).view_as(target)
        m = mask[:, 1:].float()
        loss = (nll * m).sum() / m.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
        if on_checkpoint and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            model.eval()
            on_checkpoint(step + 1, model)
            model.train()
    model.eval()
    return losses


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def repeated_token_losses(model, tokenizer, n: int = 64, period: int = 50, seed: int = 123):
    """Mean loss on the first and second copy of repeated random tokens (HF model)."""
    gen = torch.Generator().manual_seed(seed)
    seg = torch.randint(1, len(tokenizer), (n, period), generator=gen)
    bos = torch.full((n, 1), tokenizer.bos_token_id)
    tokens = torch.cat([bos, seg, seg], dim=1)
    with torch.no_grad():
        logits = model(tokens).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
    ).view(n, -1)
    return nll[:, :period].mean().item(), nll[:, period:].mean().item()


def held_out_stream(stream: torch.Tensor) -> torch.Tensor:
    """The end of the corpus stream (its last twentieth), which training never samples."""
    return stream[-len(stream) // 20 :]


def held_out_text(n: int = 8, seq_len: int = 128, seed: int = 0) -> torch.Tensor:
    """``n`` windows of ``seq_len`` tokens of the organisms' held-out text, BOS first.

    Loss and in-context learning measured on it are out of sample for every organism: the
    windows come from the end of the tokenised standard library, which training never sees
    (:func:`held_out_stream`). The first call tokenises and caches the corpus; later calls read
    the cache.

    Example:
        >>> from interp.organisms import held_out_text
        >>> held_out_text(8, 128).shape
        torch.Size([8, 128])
    """
    stream = held_out_stream(corpus_stream(shared_tokenizer()))
    return _data.text_batch(stream, n, seq_len, torch.Generator().manual_seed(seed))


def text_loss(model, stream: torch.Tensor, seq_len: int = 128, n: int = 64, seed: int = 7) -> float:
    """Mean next-token loss on windows from the end of the corpus, held out of training."""
    gen = torch.Generator().manual_seed(seed)
    tokens = _data.text_batch(held_out_stream(stream), n, seq_len, gen)
    with torch.no_grad():
        return model(tokens, labels=tokens).loss.item()


def chain_accuracy(model, tokenizer, n: int = 500, seed: int = 10_000, hops=(1, 2, 3)) -> dict:
    """Greedy next-token accuracy on held-out variable-tracking chains, overall and per hop count."""
    rng = random.Random(seed)
    chains = [_data.variable_chain(rng, rng.choice(hops)) for _ in range(n)]
    correct: dict[int, list[bool]] = {h: [] for h in hops}
    for chunk in range(0, n, 100):
        batch = chains[chunk : chunk + 100]
        enc = [[tokenizer.bos_token_id] + tokenizer(c.prompt)["input_ids"] for c in batch]
        width = max(map(len, enc))
        ids = torch.full((len(enc), width), tokenizer.bos_token_id)
        for i, e in enumerate(enc):
            ids[i, width - len(e) :] = torch.tensor(e)
        attn = torch.arange(width)[None] >= (width - torch.tensor([len(e) for e in enc]))[:, None]
        pos = (attn.long().cumsum(1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(ids, attention_mask=attn.long(), position_ids=pos).logits[:, -1]
        pred = tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())
        for c, p in zip(batch, pred):
            correct[c.hops].append(p == c.answer)
    every = [x for v in correct.values() for x in v]
    return {
        "accuracy": sum(every) / len(every),
        "by_hops": {str(h): sum(v) / max(1, len(v)) for h, v in correct.items()},
    }


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)


def wall_clock() -> float:
    return time.perf_counter()
