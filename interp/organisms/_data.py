"""Offline training data for the model organisms.

Everything here is built from what every Python installation carries: the source text of the
standard library, a byte-level BPE tokenizer trained on that text, synthetic repeated random
token sequences (which make induction heads form quickly), and variable-tracking chains
(``a = 7; b = a; print(b)`` -> ``7``), a small multi-step reasoning task.
"""

from __future__ import annotations

import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

BOS = "<|endoftext|>"
VOCAB_SIZE = 2048
_SKIP_DIRS = {"site-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo", "__pycache__"}

# "u" is left out: the stdlib tokenizer merges it with neighbours ("(u)" is not three tokens)
VARIABLE_NAMES = tuple("abcdefghijklmnopqrstvwxyz")
DIGITS = tuple("0123456789")


def stdlib_files(max_bytes: int = 12_000_000) -> list[Path]:
    """The standard library's ``.py`` files in a fixed order, up to ``max_bytes`` in total."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    total = 0
    for path in sorted(root.rglob("*.py")):
        if _SKIP_DIRS.intersection(path.relative_to(root).parts):
            continue
        size = path.stat().st_size
        if total + size > max_bytes:
            break
        files.append(path)
        total += size
    if not files:
        raise RuntimeError(f"no standard-library source found under {root}")
    return files


def stdlib_text(max_bytes: int = 12_000_000) -> list[str]:
    return [p.read_text(encoding="utf-8", errors="replace") for p in stdlib_files(max_bytes)]


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer (GPT-2 style) trained on ``texts``; deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # digits split one by one (as in Llama) so that every digit value is the same token length
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=BOS, unk_token=BOS, pad_token=BOS
    )


def encode_corpus(tokenizer, texts: list[str]) -> torch.Tensor:
    """All texts as one long 1-D token stream, documents separated by BOS."""
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.append(tokenizer.bos_token_id)
        ids.extend(enc)
    return torch.tensor(ids, dtype=torch.long)


def text_batch(
    stream: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator
) -> torch.Tensor:
    """Random windows of the token stream, each starting with BOS: ``[batch, seq_len]``."""
    starts = torch.randint(0, len(stream) - seq_len, (batch,), generator=gen)
    windows = torch.stack([stream[s : s + seq_len - 1] for s in starts.tolist()])
    bos = torch.full((batch, 1), int(stream[0]), dtype=torch.long)
    return torch.cat([bos, windows], dim=1)


def repeated_random_batch(
    batch: int,
    seq_len: int,
    vocab_size: int,
    bos_id: int,
    gen: torch.Generator,
    min_period: int = 8,
    max_period: int | None = None,
) -> torch.Tensor:
    """BOS, then a random token segment repeated until ``seq_len``: the induction-head curriculum."""
    max_period = max_period or (seq_len - 1) // 2
    rows = []
    for _ in range(batch):
        period = int(torch.randint(min_period, max_period + 1, (1,), generator=gen))
        segment = torch.randint(1, vocab_size, (period,), generator=gen)
        reps = (seq_len - 1 + period - 1) // period
        rows.append(torch.cat([torch.tensor([bos_id]), segment.repeat(reps)[: seq_len - 1]]))
    return torch.stack(rows)


@dataclass(frozen=True)
class Chain:
    """One variable-tracking problem: a program and the digit it prints."""

    program: str
    answer: str
    hops: int

    @property
    def prompt(self) -> str:
        return f">>> {self.program}\n"


def variable_chain(
    rng: random.Random,
    hops: int,
    distractors: int = 1,
    value: str | None = None,
    avoid: tuple[str, ...] = (),
) -> Chain:
    """``a = 7; b = a; ...; print(x)`` with ``hops`` copies, plus distractor assignments.

    The value is a digit; every name is a single letter used once. Distractors are other
    variables holding other digits, interleaved so the answer cannot be read off by position.
    """
    names = rng.sample(VARIABLE_NAMES, hops + 1 + distractors)
    chain_names, other_names = names[: hops + 1], names[hops + 1 :]
    value = rng.choice(DIGITS) if value is None else value
    steps = [f"{chain_names[0]} = {value}"]
    steps += [f"{chain_names[i + 1]} = {chain_names[i]}" for i in range(hops)]
    # distractor values avoid the answer (and ``avoid``: e.g. both values of a clean/corrupted pair)
    pool = [d for d in DIGITS if d != value and d not in avoid]
    others = [f"{n} = {rng.choice(pool)}" for n in other_names]
    # keep the chain's own order; drop each distractor at a random place
    for stmt in others:
        steps.insert(rng.randint(1, len(steps)), stmt)
    program = "; ".join(steps) + f"; print({chain_names[-1]})"
    return Chain(program=program, answer=value, hops=hops)
