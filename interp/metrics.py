"""Metrics: the number a run's logits at the answer positions score.

A metric is a function ``metric(logits, batch) -> values``. It gets the logits at each prompt's
answer position(s), in float32, and the tokenized task (``batch.answers``,
``batch.wrong_answers``, ``batch.clean_logprobs``, or token ids it captured itself):

- ``logits`` is ``[n, batch, vocab]`` for one answer position per prompt (``n`` runs, e.g. ``n``
  patches swept at once), or ``[n, batch, m, vocab]`` for ``m`` answer positions per prompt (a
  multi-token answer read teacher-forced: position ``j`` predicts answer token ``j``);
- it returns ``[n, batch]`` (one value per run and prompt; the task's value is their mean over
  prompts) or ``[n]`` (one value per run, for metrics that are not a mean over prompts);
- it must be built from torch operations, so that gradients flow through it (attribution
  patching, EAP and EAP-IG differentiate it).

``vocab`` is the model's *output* vocabulary (``cfg.d_vocab_out``), which differs from its input
vocabulary in compiled and algorithmic models. The built-in metrics are such functions, chosen
by name in ``Task(metric=...)``; ``prob_diff`` is one more, to pass as ``Task(metric=prob_diff)``.

Several answers per prompt (``answers`` ``[batch, k]``, with one answer position) are
alternatives: ``prob`` is the probability that the model says any of them (the sum),
``loss`` its -log, and ``logit_diff`` the mean answer logit minus the mean wrong-answer logit
(the two lists may differ in length). With ``m`` answer positions, ``answers`` is the answer
sequence ``[batch, m]``: ``prob`` is the probability of the whole sequence (the product over its
tokens), ``loss`` its -log, and ``kl`` sums over the positions. ``logit_diff`` and ``prob_diff``
read one position (a prompt holds one answer's prefix, so a wrong sequence cannot be read
teacher-forced from it): multi-token tasks use ``prob``, ``loss``, ``kl`` or a function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor

Metric = Literal["logit_diff", "prob", "loss", "kl"]
MetricFn = Callable[..., Tensor]


def read_positions(x: Tensor, pos: int | Tensor, offset: int = 0) -> Tensor:
    """``x`` ``[..., batch, pos, d]`` at the answer positions: ``[..., batch, d]``, or
    ``[..., batch, m, d]`` for ``m`` positions per prompt.

    Arguments:
        x: activations or logits whose position axis is second to last and starts at ``offset``.
        pos: one position for every prompt (an int), one per prompt (``[batch]``) or ``m`` per
            prompt (``[batch, m]``), counted in the full prompt.
        offset: the position of ``x``'s first entry (a run resumed from a later position).
    """
    if isinstance(pos, int):
        if not 0 <= pos - offset < x.shape[-2]:
            raise IndexError(f"answer position {pos} is outside positions {offset}..")
        return x[..., pos - offset, :]
    idx = pos.to(x.device) - offset
    if bool((idx < 0).any()) or bool((idx >= x.shape[-2]).any()):
        raise IndexError(f"answer positions {pos.tolist()} are outside positions {offset}..")
    multi = idx.dim() == 2
    idx = idx if multi else idx[:, None]
    lead = x.shape[:-3]
    index = idx.view(*(1,) * len(lead), *idx.shape, 1).expand(*lead, *idx.shape, x.shape[-1])
    out = x.gather(-2, index)
    return out if multi else out.squeeze(-2)


def _columns(values: Tensor, ids: Tensor) -> Tensor:
    """``values`` ``[n, batch, vocab]`` at each prompt's token ids ``[batch]`` / ``[batch, k]``:
    ``[n, batch, k]``; or ``[n, batch, m, vocab]`` at ids ``[batch, m]``: ``[n, batch, m]``."""
    n = values.shape[0]
    if values.dim() == 4:
        return values.gather(-1, ids.view(1, *ids.shape, 1).expand(n, -1, -1, 1)).squeeze(-1)
    ids = ids.view(ids.shape[0], -1)
    return values.gather(-1, ids[None].expand(n, -1, -1))


def _answer_logprob(logprobs: Tensor, ids: Tensor) -> Tensor:
    """Log-probability of the answer ``[n, batch]``: of any of the alternatives at one position
    (log of the summed probabilities), or of the whole sequence over ``m`` positions (the summed
    log-probabilities)."""
    per = _columns(logprobs, ids)
    return per.sum(-1) if logprobs.dim() == 4 else per.logsumexp(-1)


def _one_position(logits: Tensor, name: str) -> None:
    if logits.dim() != 3:
        raise ValueError(
            f"metric {name!r} reads one answer position per prompt, but the task has "
            f"{logits.shape[2]} per prompt (a multi-token answer); use 'prob', 'loss', 'kl' or "
            "a metric function"
        )


def _wrong(batch, name: str) -> Tensor:
    if batch.wrong_answers is None:
        raise ValueError(
            f"metric {name!r} needs wrong_answers (the competing token per pair); give "
            "Task(wrong_answers=...)"
        )
    return batch.wrong_answers


def logit_diff(logits: Tensor, batch) -> Tensor:
    """Logit of the answer minus logit of the wrong answer ``[n, batch]`` (means over several)."""
    _one_position(logits, "logit_diff")
    wrong = _wrong(batch, "logit_diff")
    return _columns(logits, batch.answers).mean(-1) - _columns(logits, wrong).mean(-1)


def prob(logits: Tensor, batch) -> Tensor:
    """Probability of the answer ``[n, batch]`` (of any alternative; of the whole sequence)."""
    return _answer_logprob(logits.log_softmax(-1), batch.answers).exp()


def loss(logits: Tensor, batch) -> Tensor:
    """-log probability of the answer ``[n, batch]``."""
    return -_answer_logprob(logits.log_softmax(-1), batch.answers)


def kl(logits: Tensor, batch) -> Tensor:
    """KL divergence from the clean run's next-token distribution ``[n, batch]`` (summed over
    several answer positions); 0 on the clean run."""
    if batch.clean_logprobs is None:
        raise RuntimeError("metric 'kl' needs clean_logprobs; call baseline() first")
    ref = batch.clean_logprobs.unsqueeze(0)
    per = (ref.exp() * (ref - logits.log_softmax(-1))).sum(-1)
    return per.sum(-1) if logits.dim() == 4 else per


def prob_diff(logits: Tensor, batch) -> Tensor:
    """Probability of the answer minus probability of the wrong answer ``[n, batch]``
    (each summed over its alternatives): ``Task(metric=prob_diff)``.

    Unlike ``logit_diff`` it is bounded (-1..1) and saturates when the model is sure, so it
    weighs the prompts the model is unsure of most (Wang et al. report IOI both ways).
    """
    _one_position(logits, "prob_diff")
    wrong = _wrong(batch, "prob_diff")
    probs = logits.softmax(-1)
    return _columns(probs, batch.answers).sum(-1) - _columns(probs, wrong).sum(-1)


BUILTIN: dict[str, MetricFn] = {"logit_diff": logit_diff, "prob": prob, "loss": loss, "kl": kl}
METRICS: tuple[str, ...] = tuple(BUILTIN)


def metric_name(metric: str | MetricFn) -> str:
    """The name results record: a built-in's name, or a function's ``__name__``."""
    if isinstance(metric, str):
        return metric
    return getattr(metric, "__name__", type(metric).__name__)
