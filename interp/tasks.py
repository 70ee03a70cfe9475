"""Tasks: clean and corrupted prompts, the answers, and the metric that scores a run.

A task is data: pairs of prompts of equal token length that differ in what matters (the clean run
gets the behaviour, the corrupted run does not), the answer token for each pair (and the wrong
answer the corrupted prompt points to), the position whose logits are read, and a metric:

- ``logit_diff``: logit of the answer minus logit of the wrong answer;
- ``prob``: probability of the answer;
- ``loss``: -log probability of the answer;
- ``kl``: KL divergence from the clean run's next-token distribution (0 on the clean run).

The *normalised* form maps the corrupted run to 0 and the clean run to 1. Sweeps, discovery
methods and the app all take the same ``Task``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from . import _checks
from .hooks import locked
from .organisms import _data

Metric = Literal["logit_diff", "prob", "loss", "kl"]
METRICS: tuple[str, ...] = ("logit_diff", "prob", "loss", "kl")
Prompts = Sequence[str] | Tensor


@dataclass
class Task:
    """Clean/corrupted prompt pairs with answers and a metric.

    Arguments:
        clean: prompt strings, or token ids ``[batch, pos]``.
        corrupted: the same number of prompts, each the same token length as its clean pair.
        answers: the correct next token per pair (strings of one token each, or ids ``[batch]``).
        wrong_answers: the competing token per pair; required for ``metric="logit_diff"``.
        metric: one of ``METRICS``.
        answer_pos: the position whose logits are read (default: the last).
        name: a label carried into results.
        prepend_bos: add BOS before string prompts; default: the model's own default.

    Example:
        >>> task = Task(clean=["a = 7; b = a; print(b)"], corrupted=["a = 3; b = a; print(b)"],
        ...             answers=["7"], wrong_answers=["3"], metric="logit_diff")
    """

    clean: Prompts
    corrupted: Prompts
    answers: Prompts
    wrong_answers: Prompts | None = None
    metric: str = "logit_diff"
    answer_pos: int = -1
    name: str = "task"
    prepend_bos: bool | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric={self.metric!r} is not accepted; use one of {METRICS}")
        if self.metric == "logit_diff" and self.wrong_answers is None:
            raise ValueError(
                "metric='logit_diff' needs wrong_answers (the competing token per pair)"
            )
        for arg in ("clean", "corrupted", "answers", "wrong_answers"):
            value = getattr(self, arg)
            if isinstance(value, str):
                raise TypeError(
                    f"{arg}={value!r} is a single string; give a list with one entry per pair"
                )
            if isinstance(value, Tensor) and value.dim() != (1 if "answers" in arg else 2):
                shape = "[batch]" if "answers" in arg else "[batch, pos]"
                raise ValueError(f"{arg} token ids must be {shape}, got shape {tuple(value.shape)}")
        n = len(self.clean)
        for arg in ("corrupted", "answers", "wrong_answers"):
            value = getattr(self, arg)
            if value is not None and len(value) != n:
                raise ValueError(
                    f"{arg} has {len(value)} entries but clean has {n}; give one per pair"
                )
        if n == 0:
            raise ValueError("clean is empty: a task needs at least one prompt pair")

    @locked
    def tokens(self, model) -> TaskBatch:
        """Tokenize for ``model`` and check everything before any long computation starts."""
        clean = self._prompt_tokens(model, self.clean, "clean")
        corrupted = self._prompt_tokens(model, self.corrupted, "corrupted")
        if clean.shape != corrupted.shape:
            raise ValueError(
                f"clean prompts tokenize to shape {tuple(clean.shape)} but corrupted to "
                f"{tuple(corrupted.shape)}: each pair must have the same number of tokens"
            )
        answers = self._answer_tokens(model, self.answers, "answers")
        wrong = None
        if self.wrong_answers is not None:
            wrong = self._answer_tokens(model, self.wrong_answers, "wrong_answers")
        pos = self.answer_pos if self.answer_pos >= 0 else clean.shape[1] + self.answer_pos
        if not 0 <= pos < clean.shape[1]:
            raise ValueError(
                f"answer_pos={self.answer_pos} is outside prompts of {clean.shape[1]} tokens"
            )
        return TaskBatch(self, clean, corrupted, answers, wrong, pos)

    def _prompt_tokens(self, model, prompts: Prompts, arg: str) -> Int[Tensor, "batch pos"]:
        if isinstance(prompts, Tensor):
            if prompts.dim() != 2:
                raise ValueError(
                    f"{arg} token ids must be [batch, pos], got {tuple(prompts.shape)}"
                )
            return _checks.token_ids(model, prompts, arg).to(model.cfg.device)
        lengths = {}
        rows = []
        for i, text in enumerate(prompts):
            if not isinstance(text, str) or not text:
                raise ValueError(f"{arg}[{i}] must be a non-empty string, got {text!r}")
            ids = model.to_tokens(
                _checks.text(text, f"{arg}[{i}]"), prepend_bos=self.prepend_bos, truncate=False
            )[0]
            lengths[i] = len(ids)
            rows.append(ids)
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"{arg} prompts tokenize to different lengths {sorted(set(lengths.values()))}; "
                "all prompts in a task must have the same number of tokens"
            )
        _checks.context(model, rows[0].shape[0], f"each of the {arg} prompts")
        return torch.stack(rows).to(model.cfg.device)

    def _answer_tokens(self, model, answers: Prompts, arg: str) -> Int[Tensor, " batch"]:
        vocab = model.cfg.d_vocab
        if isinstance(answers, Tensor):
            if answers.dtype == torch.bool or answers.is_floating_point():
                raise TypeError(f"{arg} token ids must be an integer tensor, got {answers.dtype}")
            ids = answers.to(model.cfg.device).long()
            if ids.dim() != 1:
                raise ValueError(f"{arg} token ids must be 1-D [batch], got {tuple(ids.shape)}")
        else:
            out = []
            for i, a in enumerate(answers):
                if isinstance(a, bool) or not isinstance(a, int | str):
                    raise TypeError(
                        f"{arg}[{i}]={a!r} is not accepted; give a one-token string or a token id"
                    )
                if isinstance(a, int):
                    out.append(a)
                    continue
                ids_i = model.to_tokens(_checks.text(a, f"{arg}[{i}]"), prepend_bos=False)[0]
                if len(ids_i) != 1:
                    raise ValueError(
                        f"{arg}[{i}]={a!r} is {len(ids_i)} tokens; an answer must be one token"
                    )
                out.append(int(ids_i[0]))
            ids = torch.tensor(out, device=model.cfg.device)
        bad = ((ids < 0) | (ids >= vocab)).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"{arg}[{bad[0]}]={int(ids[bad[0]])} is outside the vocabulary 0..{vocab - 1}"
            )
        return ids


class NonFiniteMetric(FloatingPointError, ValueError):
    """A task metric that came out NaN (or, for a baseline, infinite)."""


def normalised(values: Tensor, clean: float, corrupted: float) -> Tensor:
    """``values`` mapped so that the corrupted metric is 0 and the clean metric is 1.

    Raises:
        ValueError: the clean and corrupted metrics are equal, so the scale is undefined.
    """
    if clean == corrupted:
        raise ValueError(
            f"normalize=True is undefined: the clean and corrupted metrics are equal "
            f"(clean {clean!r}, corrupted {corrupted!r}), so there is no difference to divide "
            "by; use normalize=False, or corrupted prompts that change the answer"
        )
    return (values - corrupted) / (clean - corrupted)


def effect_reading(
    metric: str, direction: str, normalize: bool, clean: float, corrupted: float
) -> dict[str, float | str]:
    """What a patching value means: ``{"no_effect": value, "reading": sentence}``.

    A patched run is the unpatched *target* run with one component taken from the *source* run.
    Denoising patches clean activations into the corrupted run, so "no effect" is the corrupted
    metric and a component that carries the behaviour moves the value towards the clean metric.
    Noising patches corrupted activations into the clean run, so "no effect" is the clean metric
    and a component the behaviour needs moves the value towards the corrupted metric; one that
    moves it the other way works against the behaviour (a negative name mover, say). Results
    store both in their provenance, and ``Result.top``/``summary`` rank by distance from "no
    effect", either sign.
    """
    if normalize:
        clean_v, corrupted_v, scale = 1.0, 0.0, " (normalised: corrupted 0, clean 1)"
    else:
        clean_v, corrupted_v, scale = clean, corrupted, ""
    if direction == "denoise":
        target = corrupted_v
        what = "corrupted run with this component patched in from the clean run"
        to_clean, to_corrupted = "carries the behaviour", "works against it"
    else:
        target = clean_v
        what = "clean run with this component patched in from the corrupted run"
        to_clean, to_corrupted = "works against the behaviour", "is needed for it"
    plus, minus = (to_clean, to_corrupted) if clean_v >= corrupted_v else (to_corrupted, to_clean)
    reading = (
        f"{metric}{scale} of the {what}; no effect = {target:.4g} (clean {clean_v:.4g}, "
        f"corrupted {corrupted_v:.4g}). Effect = value - ({target:.4g}): + means the component "
        f"{plus}, - means it {minus}."
    )
    return {"no_effect": float(target), "reading": reading}


@dataclass
class TaskBatch:
    """A task tokenized for one model: what sweeps consume."""

    task: Task
    clean: Int[Tensor, "batch pos"]
    corrupted: Int[Tensor, "batch pos"]
    answers: Int[Tensor, " batch"]
    wrong_answers: Int[Tensor, " batch"] | None
    answer_pos: int
    clean_logprobs: Tensor | None = None

    @property
    def metric(self) -> str:
        return self.task.metric

    @property
    def batch(self) -> int:
        return self.clean.shape[0]

    def per_prompt(self, logits: Float[Tensor, "n batch vocab"]) -> Float[Tensor, "n batch"]:
        """The metric of each run and prompt, from the logits at the answer position."""
        logits = logits.float()
        idx = self.answers.view(1, -1, 1).expand(logits.shape[0], -1, 1)
        if self.metric == "logit_diff":
            wrong = self.wrong_answers.view(1, -1, 1).expand(logits.shape[0], -1, 1)
            return (logits.gather(-1, idx) - logits.gather(-1, wrong)).squeeze(-1)
        logprobs = logits.log_softmax(-1)
        if self.metric == "prob":
            return logprobs.gather(-1, idx).squeeze(-1).exp()
        if self.metric == "loss":
            return -logprobs.gather(-1, idx).squeeze(-1)
        if self.clean_logprobs is None:
            raise RuntimeError("metric 'kl' needs clean_logprobs; call baseline() first")
        ref = self.clean_logprobs.unsqueeze(0)
        return (ref.exp() * (ref - logprobs)).sum(-1)

    def score(self, logits: Float[Tensor, "n batch vocab"]) -> Float[Tensor, " n"]:
        """The metric of each run, averaged over prompts; NaN raises."""
        values = self.per_prompt(logits).mean(-1)
        if torch.isnan(values).any():
            raise NonFiniteMetric(f"metric {self.metric!r} returned NaN")
        return values

    def score_resid(self, resid: Float[Tensor, "n batch d_model"], model) -> Float[Tensor, " n"]:
        """The metric from the final (normalised) residual stream at the answer position.

        ``logit_diff`` reads only the answer and wrong-answer columns of the unembedding; the other
        metrics need the whole vocabulary (for the softmax).
        """
        if self.metric != "logit_diff":
            return self.score(resid @ model.W_U + model.b_U)
        w = model.W_U[:, self.answers] - model.W_U[:, self.wrong_answers]  # d_model batch
        b = model.b_U[self.answers] - model.b_U[self.wrong_answers]
        values = ((resid * w.T[None]).sum(-1) + b).float().mean(-1)
        if torch.isnan(values).any():
            raise NonFiniteMetric(f"metric {self.metric!r} returned NaN")
        return values

    @locked
    def baseline(self, model) -> tuple[float, float]:
        """The metric on the clean run and on the corrupted run (also fills ``clean_logprobs``)."""
        with torch.no_grad():
            clean = model(self.clean)[:, self.answer_pos]
            corrupted = model(self.corrupted)[:, self.answer_pos]
        self.clean_logprobs = clean.float().log_softmax(-1)
        scores = {}
        for run, logits in (("clean", clean), ("corrupted", corrupted)):
            values = self.per_prompt(logits[None])[0]
            bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
            if bad:
                value = float(values[bad[0]])
                raise NonFiniteMetric(
                    f"task metric {self.metric!r} is {'NaN' if math.isnan(value) else value} on "
                    f"the {run} run (prompt {bad[0]} of {run}): a baseline must be finite; check "
                    "the model's weights and logits on that prompt"
                )
            scores[run] = float(values.mean())
        return scores["clean"], scores["corrupted"]

    def tl_metric(self):
        """The same metric as a function of full logits ``[batch, pos, vocab]`` -> scalar, the form
        ``transformer_lens.patching`` takes."""

        def metric(logits: Tensor) -> Tensor:
            return self.score(logits[:, self.answer_pos][None])[0]

        return metric


# -- shipped tasks ---------------------------------------------------------------------------------


@locked
def induction_task(
    model, n: int = 8, period: int = 20, seed: int = 0, metric: Metric = "logit_diff"
) -> Task:
    """Induction on repeated random tokens.

    Clean: ``BOS r_1..r_k r_1..r_j``: the next token ``r_{j+1}`` is predictable by induction.
    Corrupted: the first copy replaced by other random tokens, so nothing earlier predicts it.
    The wrong answer is the token the corrupted first copy would predict.
    """
    if period < 3:
        raise ValueError(f"period={period} is too short; use >= 3")
    gen = torch.Generator().manual_seed(seed)
    vocab = model.cfg.d_vocab
    special = set(getattr(model.tokenizer, "all_special_ids", []) or [])
    ordinary = torch.tensor([t for t in range(vocab) if t not in special])
    seg = ordinary[torch.randint(len(ordinary), (n, period), generator=gen)]
    other = ordinary[torch.randint(len(ordinary), (n, period), generator=gen)]
    j = period // 2  # how much of the second copy is shown
    bos = torch.full((n, 1), model.tokenizer.bos_token_id)
    clean = torch.cat([bos, seg, seg[:, :j]], dim=1)
    corrupted = torch.cat([bos, other, seg[:, :j]], dim=1)
    return Task(
        clean,
        corrupted,
        answers=seg[:, j],
        wrong_answers=other[:, j],
        metric=metric,
        name=f"induction (period {period})",
        info={"period": period, "seed": seed},
    )


@locked
def variable_tracking_task(
    model,
    n: int = 16,
    hops: int = 2,
    distractors: int = 1,
    seed: int = 0,
    metric: Metric = "logit_diff",
) -> Task:
    """Variable tracking: ``>>> a = 7; b = a; print(b)`` -> ``7`` (for ``reasoning-tuned``).

    The corrupted prompt is the same program with another starting value; the wrong answer is
    that value.
    """
    rng = random.Random(seed)
    clean, corrupted, answers, wrong = [], [], [], []
    for _ in range(n):
        value, other = rng.sample(_data.DIGITS, 2)
        seed_i = rng.random()
        pair = [
            _data.variable_chain(
                random.Random(seed_i), hops, distractors, value=v, avoid=(value, other)
            )
            for v in (value, other)
        ]
        clean.append(pair[0].prompt)
        corrupted.append(pair[1].prompt)
        answers.append(value)
        wrong.append(other)
    return Task(
        clean,
        corrupted,
        answers,
        wrong,
        metric=metric,
        name=f"variable tracking ({hops} hops)",
        info={"hops": hops, "distractors": distractors, "seed": seed},
    )


IOI_TEMPLATES = (
    "When{A} and{B} went to the store,{B} gave a drink to",
    "When{A} and{B} went to the park,{B} handed a ball to",
    "After{A} and{B} finished lunch,{B} passed the salt to",
    "Then{A} and{B} had a long argument, and afterwards{B} said to",
    "While{A} and{B} were working at the office,{B} sent an email to",
    "Friends{A} and{B} found a book at the library.{B} gave it to",
)
IOI_NAMES = (
    " Mary",
    " John",
    " Alice",
    " Bob",
    " Tom",
    " James",
    " Sarah",
    " David",
    " Emma",
    " Michael",
    " Anna",
    " Paul",
    " Lisa",
    " Mark",
    " Kate",
    " Peter",
    " Laura",
    " Daniel",
    " Rachel",
    " Chris",
)


@locked
def ioi_task(
    model, n: int = 24, seed: int = 0, metric: Metric = "logit_diff", template: int = 0
) -> Task:
    """Indirect object identification (Wang et al., 2022), with the "ABC" corruption.

    Clean: ``When Mary and John went to the store, John gave a drink to`` -> `` Mary`` (the
    indirect object); the wrong answer is the subject `` John``. Corrupted: the second mention of
    the subject replaced by a third name, so nothing tells which of the first two is the object.
    All pairs use one template (``IOI_TEMPLATES[template]``) and names of ``IOI_NAMES`` that are
    one token for ``model``, so prompts have equal lengths; half put the object first.
    """
    if not 0 <= template < len(IOI_TEMPLATES):
        raise ValueError(f"template={template} is out of range 0..{len(IOI_TEMPLATES) - 1}")
    names = [name for name in IOI_NAMES if len(model.to_tokens(name, prepend_bos=False)[0]) == 1]
    if len(names) < 3:
        raise ValueError(
            f"the model's tokenizer has only {len(names)} one-token names; IOI needs 3"
        )
    text = IOI_TEMPLATES[template]
    rng = random.Random(seed)
    clean, corrupted, answers, wrong = [], [], [], []
    for i in range(n):
        io, s, third = rng.sample(names, 3)
        first, second = (io, s) if i % 2 == 0 else (s, io)
        head = text.replace("{A}", first).replace("{B}", second, 1)
        clean.append(head.replace("{B}", s))
        corrupted.append(head.replace("{B}", third))
        answers.append(io)
        wrong.append(s)
    return Task(
        clean,
        corrupted,
        answers,
        wrong,
        metric=metric,
        name="indirect object identification",
        info={"seed": seed, "names": names, "template": text},
    )


TASKS = {
    "induction": induction_task,
    "variable-tracking": variable_tracking_task,
    "ioi": ioi_task,
}


@locked
def make_task(name: str, model, **kwargs) -> Task:
    """A shipped task by name: ``induction``, ``variable-tracking`` or ``ioi``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; shipped tasks: {', '.join(TASKS)}")
    return TASKS[name](model, **kwargs)
