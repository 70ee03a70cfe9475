"""Head detectors from attention patterns: which heads do what, for all heads at once.

An **induction head** completes patterns: at a token ``A`` that occurred before as ``A B``, it
attends to the ``B`` that followed the earlier ``A`` (and copies it). A **previous-token head**
attends from each position to the one before it; induction heads are built on top of one (via
K-composition). Both are measured on repeated random tokens: ``BOS r_1..r_n r_1..r_n``.

Each detector runs one batched forward pass, caching only the attention patterns, and returns a
``layer x head`` Result.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .. import _checks
from ..hooks import hook_name, locked, model_lock, run_with_cache
from ..models import provenance
from ..result import Result


@locked
def repeated_random_tokens(
    model, n: int = 16, period: int = 50, seed: int = 0
) -> Int[Tensor, "batch pos"]:
    """``[BOS, r_1..r_period, r_1..r_period]`` rows of uniformly random non-special tokens."""
    if period < 2:
        raise ValueError(f"period={period} is too short for an induction probe; use >= 2")
    if n < 1:
        raise ValueError(f"n={n}: need at least one sequence")
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx and 1 + 2 * period > n_ctx:
        raise ValueError(
            f"period={period} makes sequences of {1 + 2 * period} tokens, longer than the "
            f"model's context of {n_ctx}; use period <= {(n_ctx - 1) // 2}"
        )
    gen = torch.Generator().manual_seed(seed)
    bos = model.tokenizer.bos_token_id if model.tokenizer is not None else None
    special = set(getattr(model.tokenizer, "all_special_ids", []) or [])
    vocab = model.cfg.d_vocab
    segment = torch.randint(0, vocab, (n, period), generator=gen)
    for s in special:  # move special tokens to an ordinary one
        segment[segment == s] = (s + 1) % vocab
    rows = [segment, segment]
    if bos is not None:
        rows.insert(0, torch.full((n, 1), bos))
    return torch.cat(rows, dim=1).to(model.cfg.device)


def _patterns(model, tokens: Tensor) -> Float[Tensor, "layer batch head q k"]:
    names = [hook_name(model, "pattern", layer) for layer in range(model.cfg.n_layers)]
    _, cache = run_with_cache(model, tokens, names)
    return torch.stack([cache[n] for n in names])


def _diagonal_score(patterns: Tensor, offset: int, start: int) -> Float[Tensor, "layer head"]:
    """Mean attention from each query ``q >= start`` to key ``q - offset``."""
    q_len = patterns.shape[-2]
    q = torch.arange(start, q_len, device=patterns.device)
    vals = patterns[..., q, q - offset]  # layer batch head len(q)
    return vals.mean(dim=(1, 3)).float()


def _head_result(model, values: Tensor, metric: str, method: str, settings: dict) -> Result:
    return Result(
        values,
        ("layer", "head"),
        metric,
        provenance={"model": provenance(model), "method": method, **settings},
    )


@locked
def induction_scores(model, tokens: Tensor | None = None, period: int | None = None) -> Result:
    """Each head's mean attention to the token after the earlier occurrence of the current token.

    Arguments:
        model: a TransformerLens model.
        tokens: repeated sequences ``[BOS?, seg, seg]``; default ``repeated_random_tokens(model)``.
        period: the length of ``seg``; inferred when ``tokens`` is the default.

    Returns:
        A ``layer x head`` Result in [0, 1]; 1 = all attention on the induction target.
    """
    tokens, period, offset0 = _probe(model, tokens, period)
    patterns = _patterns(model, tokens)
    # query at offset0 + period + i attends to offset0 + i + 1: distance period - 1
    scores = _diagonal_score(patterns, offset=period - 1, start=offset0 + period)
    return _head_result(
        model,
        scores,
        "induction score",
        "induction_scores",
        {"period": period, "n_sequences": tokens.shape[0]},
    )


@locked
def previous_token_scores(model, tokens: Tensor | None = None) -> Result:
    """Each head's mean attention from every position to the position just before it."""
    tokens, _, _ = _probe(model, tokens, None)
    patterns = _patterns(model, tokens)
    scores = _diagonal_score(patterns, offset=1, start=1)
    return _head_result(
        model,
        scores,
        "previous-token score",
        "previous_token_scores",
        {"n_sequences": tokens.shape[0]},
    )


def _probe(model, tokens, period):
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if tokens is None:
        period = min(50, (n_ctx - 1) // 2) if n_ctx else 50  # a short-context model: shorter
        tokens = repeated_random_tokens(model, period=period)
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
    if n_ctx and tokens.shape[1] > n_ctx:
        raise ValueError(
            f"tokens of length {tokens.shape[1]} are longer than the model's context of {n_ctx}"
        )
    tokens = _checks.token_ids(model, tokens, "tokens")
    has_bos = model.tokenizer is not None and bool(
        (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    )
    offset0 = 1 if has_bos else 0
    if period is None:
        period = (tokens.shape[1] - offset0) // 2
    if tokens.shape[1] < offset0 + 2 * period:
        raise ValueError(
            f"tokens of length {tokens.shape[1]} cannot hold two copies of period {period}"
        )
    return tokens.to(model.cfg.device), period, offset0


@locked
def repeated_token_loss_by_position(
    model, tokens: Tensor | None = None, period: int | None = None
) -> tuple[Float[Tensor, " period_1"], Float[Tensor, " period_1"]]:
    """Next-token loss at each position of the first and of the second copy, averaged over rows.

    Entry ``j`` of each is the loss of predicting ``r_{j+2}`` from the copy's ``r_1..r_{j+1}``
    (the copy's first token has nothing in the copy to predict it). On the second copy an
    induction head can look the answer up one period back, so its loss falls to near zero after
    the first position or two, while the first copy stays at chance.

    Arguments:
        tokens: ``[BOS, r_1..r_period, r_1..r_period]`` rows (:func:`repeated_random_tokens`),
            with or without the BOS; default a fresh batch.
        period: the length of one copy; default read from ``tokens``.

    Returns:
        ``(first, second)``: float32 tensors of ``period - 1`` losses each, on the CPU.
    """
    tokens, period, offset0 = _probe(model, tokens, period)
    with torch.no_grad(), model_lock(model):
        loss = model(tokens, return_type="loss", loss_per_token=True)  # batch pos-1
    # loss[:, i] predicts token i+1; first copy predicts tokens offset0+1 .. offset0+period-1
    loss = loss.float().cpu()
    first = loss[:, offset0 : offset0 + period - 1].mean(0)
    second = loss[:, offset0 + period : offset0 + 2 * period - 1].mean(0)
    return first, second


def repeated_token_loss(model, tokens: Tensor | None = None, period: int | None = None):
    """Mean next-token loss on the first and on the second copy of repeated random tokens.

    Returns:
        ``(first, second)``: a working induction mechanism makes ``second`` far below ``first``.
    """
    first, second = repeated_token_loss_by_position(model, tokens, period)
    return first.mean().item(), second.mean().item()


@locked
def duplicate_token_scores(
    model, tokens: Tensor | None = None, period: int | None = None
) -> Result:
    """Each head's mean attention from a token to its own earlier occurrence (one period back)."""
    tokens, period, offset0 = _probe(model, tokens, period)
    scores = _diagonal_score(_patterns(model, tokens), offset=period, start=offset0 + period)
    return _head_result(
        model,
        scores,
        "duplicate-token score",
        "duplicate_token_scores",
        {"period": period, "n_sequences": tokens.shape[0]},
    )


@locked
def bos_scores(model, tokens: Tensor | None = None) -> Result:
    """Each head's mean attention to the first position (attention sink / BOS heads)."""
    tokens, _, _ = _probe(model, tokens, None)
    patterns = _patterns(model, tokens)
    scores = patterns[..., 1:, 0].mean(dim=(1, 3)).float()
    return _head_result(
        model, scores, "attention to BOS", "bos_scores", {"n_sequences": tokens.shape[0]}
    )


@locked
def attention_entropy(model, tokens: Tensor | None = None) -> Result:
    """Mean entropy (nats) of each head's attention distribution, over positions and prompts."""
    tokens, _, _ = _probe(model, tokens, None)
    p = _patterns(model, tokens).float()
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)  # layer batch head q
    return _head_result(
        model,
        entropy.mean(dim=(1, 3)),
        "attention entropy (nats)",
        "attention_entropy",
        {"n_sequences": tokens.shape[0]},
    )


DETECTION_KINDS = ("previous_token_head", "duplicate_token_head", "induction_head")


def detection_pattern(tokens: Tensor, kind: str) -> Tensor:
    """The 0/1 ``[batch, q, k]`` pattern an ideal head of ``kind`` would have (TransformerLens's)."""
    if kind not in DETECTION_KINDS:
        raise ValueError(f"kind={kind!r} is not accepted; use one of {DETECTION_KINDS}")
    b, t = tokens.shape
    if kind == "previous_token_head":
        return torch.diag_embed(torch.ones(t - 1), offset=-1).expand(b, t, t).clone()
    same = (tokens[:, :, None] == tokens[:, None, :]).float()
    same = same * (1 - torch.eye(t))  # not the current token itself
    if kind == "induction_head":
        same = torch.cat([torch.zeros(b, t, 1), same[:, :, :-1]], dim=2)
    return torch.tril(same)


@locked
def detection_scores(
    model,
    tokens: Tensor,
    kind: str,
    *,
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Result:
    """TransformerLens's ``head_detector.detect_head`` score (``error_measure="mul"``), batched.

    The fraction of each head's attention that falls where an ideal head of ``kind`` would put it,
    averaged over the sequences in ``tokens`` (``[batch, pos]``), all in one forward pass.
    """
    tokens = _checks.token_ids(model, tokens, "tokens")
    if tokens.dim() != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be [batch, pos] with pos >= 2, got {tuple(tokens.shape)}")
    patterns = _patterns(model, tokens.to(model.cfg.device)).float()  # layer batch head q k
    det = detection_pattern(tokens.cpu(), kind).to(patterns.device)
    if exclude_bos:
        patterns = patterns.clone()
        patterns[..., 0] = 0
    if exclude_current_token:
        patterns = patterns * (1 - torch.eye(patterns.shape[-1], device=patterns.device))
    hits = (patterns * det[None, :, None]).sum(dim=(-1, -2))
    scores = (hits / patterns.sum(dim=(-1, -2))).mean(1)
    return _head_result(
        model,
        scores,
        f"{kind} detection score",
        "detection_scores",
        {"kind": kind, "exclude_bos": exclude_bos, "exclude_current_token": exclude_current_token},
    )
