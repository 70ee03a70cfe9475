"""Tasks: clean and corrupted prompts, the answers, and the metric that scores a run.

A task is data: pairs of prompts of equal token length that differ in what matters (the clean run
gets the behaviour, the corrupted run does not), the answer token for each pair (and the wrong
answer the corrupted prompt points to), the position whose logits are read (one for all prompts,
one per prompt, or several per prompt for a multi-token answer), and a metric:

- ``logit_diff``: logit of the answer minus logit of the wrong answer;
- ``prob``: probability of the answer;
- ``loss``: -log probability of the answer;
- ``kl``: KL divergence from the clean run's next-token distribution (0 on the clean run);
- a function ``metric(logits, batch)`` of the logits at the answer positions (see
  ``interp.metrics``, which also defines ``prob_diff`` and how several answers are scored).

The *normalised* form maps the corrupted run to 0 and the clean run to 1. Sweeps, discovery
methods and the app all take the same ``Task``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from . import _checks, organisms
from .hooks import locked
from .metrics import BUILTIN, METRICS, Metric, MetricFn, metric_name, read_positions
from .metrics import prob_diff as prob_diff

Prompts = Sequence[str] | Tensor
Answers = Sequence[str | int | Sequence[str | int]] | Tensor
AnswerPos = int | Sequence[int] | Sequence[Sequence[int]] | Tensor


@dataclass
class Task:
    """Clean/corrupted prompt pairs with answers and a metric.

    Arguments:
        clean: prompt strings, or token ids ``[batch, pos]``.
        corrupted: the same number of prompts, each the same token length as its clean pair.
        answers: the correct next token per pair: one-token strings or token ids (``[batch]``);
            or several per pair, a list per pair or ids ``[batch, k]`` (alternatives, see
            ``interp.metrics``); with ``m`` answer positions per pair, the answer sequence of
            ``m`` tokens per pair (a string of ``m`` tokens, a list, or ids ``[batch, m]``).
            Checked against the model's output vocabulary (``cfg.d_vocab_out``).
        wrong_answers: the competing token(s) per pair, given as ``answers``; required for
            ``metric="logit_diff"``.
        metric: one of ``METRICS``, or a function ``metric(logits, batch)`` of the logits at the
            answer positions ``[n, batch, vocab]`` (``[n, batch, m, vocab]`` for ``m`` answer
            positions) returning ``[n, batch]`` or ``[n]``; see ``interp.metrics``. Results
            record a function by its ``__name__``.
        answer_pos: the token position whose logits are read (after BOS, if prepended;
            negative counts from the end; default: the last): one for every pair, one per pair
            (a list or ``[batch]`` tensor), or ``m`` per pair (``[batch, m]``) for a multi-token
            answer whose first ``m - 1`` tokens end the prompt (position ``j`` predicts answer
            token ``j``, teacher-forced).
        name: a label carried into results.
        prepend_bos: add BOS before string prompts; default: the model's own default.

    Example:
        >>> task = Task(clean=["a = 7; b = a; print(b)"], corrupted=["a = 3; b = a; print(b)"],
        ...             answers=["7"], wrong_answers=["3"], metric="logit_diff")
        >>> from interp.metrics import prob_diff
        >>> task = Task(clean, corrupted, answers, wrong, metric=prob_diff, answer_pos=[5, 7])
    """

    clean: Prompts
    corrupted: Prompts
    answers: Answers
    wrong_answers: Answers | None = None
    metric: str | MetricFn = "logit_diff"
    answer_pos: AnswerPos = -1
    name: str = "task"
    prepend_bos: bool | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.metric) and self.metric not in METRICS:
            raise ValueError(
                f"metric={self.metric!r} is not accepted; use one of {METRICS} or a function "
                "metric(logits, batch) -> values (see interp.metrics)"
            )
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
            dims = (1, 2) if "answers" in arg else (2,)
            if isinstance(value, Tensor) and value.dim() not in dims:
                shape = "[batch] or [batch, k]" if "answers" in arg else "[batch, pos]"
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
        pos = self.answer_pos
        if isinstance(pos, Tensor) and pos.dim() == 0 and not pos.is_floating_point():
            self.answer_pos = int(pos)
        pos = self.answer_pos
        if (
            isinstance(pos, bool)
            or not isinstance(pos, int | Sequence | Tensor)
            or (isinstance(pos, Tensor) and pos.dim() == 0)
        ):
            raise TypeError(
                f"answer_pos={pos!r} is not accepted; give a position (int), one per pair "
                "(a list or [batch] tensor), or several per pair ([batch, m])"
            )
        if not isinstance(pos, int) and len(pos) != n:
            size = tuple(pos.shape) if isinstance(pos, Tensor) else f"{len(pos)} entries"
            raise ValueError(
                f"answer_pos has {size} but clean has {n} pairs; give one int for every pair, "
                "or one entry per pair"
            )

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
        pos = self._positions(clean.shape[1], clean.device)
        per = pos.shape[1] if isinstance(pos, Tensor) and pos.dim() == 2 else None
        if per is not None and self.metric == "logit_diff":
            raise ValueError(
                f"metric={self.metric!r} reads one answer position per pair, but answer_pos "
                f"gives {per} (a multi-token answer); use 'prob', 'loss', 'kl' or a function"
            )
        answers = self._answer_tokens(model, self.answers, "answers", per)
        wrong = None
        if self.wrong_answers is not None:
            wrong = self._answer_tokens(model, self.wrong_answers, "wrong_answers", per)
        return TaskBatch(self, clean, corrupted, answers, wrong, pos)

    def _positions(self, seq: int, device) -> int | Tensor:
        """``answer_pos`` counted from the start: an int when every pair shares one position
        (the engines' fast path), else ``[batch]`` or ``[batch, m]``."""
        pos = self.answer_pos
        if isinstance(pos, int):
            at = pos + seq if pos < 0 else pos
            if not 0 <= at < seq:
                raise ValueError(f"answer_pos={pos} is outside prompts of {seq} tokens")
            return at
        try:
            ids = pos if isinstance(pos, Tensor) else torch.tensor(pos)
        except (TypeError, ValueError):
            raise ValueError(
                f"answer_pos={pos!r} is not accepted; give integers, the same number per pair"
            ) from None
        if ids.dtype == torch.bool or ids.is_floating_point() or ids.dim() not in (1, 2):
            raise ValueError(
                f"answer_pos must be integers [batch] or [batch, m], got {ids.dtype} of shape "
                f"{tuple(ids.shape)}"
            )
        if ids.dim() == 2 and ids.shape[1] == 0:
            raise ValueError("answer_pos is [batch, 0]; give at least one position per pair")
        raw = ids.long().cpu()
        ids = torch.where(raw < 0, raw + seq, raw)
        bad = ((ids < 0) | (ids >= seq)).nonzero().tolist()
        if bad:
            where = "][".join(map(str, bad[0]))
            raise ValueError(
                f"answer_pos[{where}]={int(raw[tuple(bad[0])])} is outside prompts of {seq} tokens"
            )
        if ids.dim() == 1 and bool((ids == ids[0]).all()):
            return int(ids[0])
        return ids.to(device)

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

    def _answer_tokens(
        self, model, answers: Answers, arg: str, per: int | None
    ) -> Int[Tensor, "batch ..."]:
        """Answer ids ``[batch]`` or ``[batch, k]``; with ``per`` answer positions per pair, the
        answer sequence ``[batch, per]``."""
        if isinstance(answers, Tensor):
            if answers.dtype == torch.bool or answers.is_floating_point():
                raise TypeError(f"{arg} token ids must be an integer tensor, got {answers.dtype}")
            ids = answers.to(model.cfg.device).long()
        else:
            rows, listed = [], False
            for i, a in enumerate(answers):
                several = isinstance(a, Sequence) and not isinstance(a, str)
                listed |= several
                row = []
                for j, item in enumerate(a if several else [a]):
                    where = f"{arg}[{i}][{j}]" if several else f"{arg}[{i}]"
                    if isinstance(item, bool) or not isinstance(item, int | str):
                        raise TypeError(
                            f"{where}={item!r} is not accepted; give a one-token string or a "
                            "token id"
                        )
                    if isinstance(item, int):
                        row.append(item)
                        continue
                    toks = model.to_tokens(_checks.text(item, where), prepend_bos=False)[0]
                    if len(toks) != 1 and (several or per is None):
                        raise ValueError(
                            f"{where}={item!r} is {len(toks)} tokens; an answer must be one token "
                            "(a multi-token answer needs one answer position per token: "
                            "answer_pos [batch, m])"
                        )
                    row += toks.tolist()
                if not row:
                    raise ValueError(f"{arg}[{i}] is empty; give at least one answer per pair")
                rows.append(row)
            lengths = sorted({len(row) for row in rows})
            if len(lengths) > 1:
                raise ValueError(
                    f"{arg} gives {lengths} tokens per pair; give the same number for every pair"
                )
            if per is None and not listed and lengths == [1]:
                rows = [row[0] for row in rows]
            ids = torch.tensor(rows, device=model.cfg.device)
        if per is not None and (ids.dim() != 2 or ids.shape[1] != per):
            raise ValueError(
                f"{arg} must give the answer sequence of {per} tokens per pair (one per answer "
                f"position), got shape {tuple(ids.shape)}"
            )
        vocab = output_vocab(model)
        bad = ((ids < 0) | (ids >= vocab)).nonzero().tolist()
        if bad:
            where = "][".join(map(str, bad[0]))
            raise ValueError(
                f"{arg}[{where}]={int(ids[tuple(bad[0])])} is outside the vocabulary of the "
                f"model's outputs, 0..{vocab - 1} (cfg.d_vocab_out)"
            )
        return ids


def output_vocab(model) -> int:
    """The size of the model's output vocabulary: ``cfg.d_vocab_out``, which compiled and
    algorithmic models set apart from the input vocabulary ``cfg.d_vocab``."""
    out = getattr(model.cfg, "d_vocab_out", None)
    return out if isinstance(out, int) and out > 0 else model.cfg.d_vocab


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
    """A task tokenized for one model: what sweeps consume.

    ``answer_pos`` is an int when every prompt reads one shared position (the engines slice it),
    else ``[batch]`` (one per prompt) or ``[batch, m]`` (a multi-token answer); ``read`` gathers
    either, so engines never index positions themselves.
    """

    task: Task
    clean: Int[Tensor, "batch pos"]
    corrupted: Int[Tensor, "batch pos"]
    answers: Int[Tensor, "batch ..."]
    wrong_answers: Int[Tensor, "batch ..."] | None
    answer_pos: int | Int[Tensor, "batch ..."]
    clean_logprobs: Tensor | None = None

    @property
    def metric(self) -> str:
        """The metric's name (a function's ``__name__``), as results record it."""
        return metric_name(self.task.metric)

    @property
    def batch(self) -> int:
        return self.clean.shape[0]

    @property
    def first_answer_pos(self) -> int:
        """The earliest position any prompt reads."""
        pos = self.answer_pos
        return pos if isinstance(pos, int) else int(pos.min())

    @property
    def last_answer_pos(self) -> int:
        """The latest position any prompt reads: a patch after it cannot change the metric."""
        pos = self.answer_pos
        return pos if isinstance(pos, int) else int(pos.max())

    def read(self, x: Tensor, offset: int = 0) -> Tensor:
        """``x`` ``[..., batch, pos, d]`` (logits, or a residual stream) at each prompt's answer
        position: ``[..., batch, d]``, or ``[..., batch, m, d]`` with ``m`` answer positions.
        ``offset`` is the position of ``x``'s first entry (a run resumed part-way)."""
        return read_positions(x, self.answer_pos, offset)

    def subset(self, rows: slice) -> TaskBatch:
        """The same task restricted to the prompt pairs ``rows`` (baseline not yet run)."""
        pos = self.answer_pos
        if isinstance(pos, Tensor):
            pos = pos[rows]
            if pos.dim() == 1 and bool((pos == pos[0]).all()):
                pos = int(pos[0])
        wrong = None if self.wrong_answers is None else self.wrong_answers[rows]
        return TaskBatch(
            self.task, self.clean[rows], self.corrupted[rows], self.answers[rows], wrong, pos
        )

    def per_prompt(self, logits: Float[Tensor, "n batch *m vocab"]) -> Float[Tensor, "n _b"]:
        """The metric of each run and prompt ``[n, batch]`` from the logits at the answer
        positions (``[n, 1]`` for a metric function that gives one value per run).

        Raises:
            ValueError: a metric function returned something else than ``[n, batch]`` or ``[n]``.
        """
        logits = logits.float()
        fn = BUILTIN[self.task.metric] if isinstance(self.task.metric, str) else self.task.metric
        values = fn(logits, self)
        n, b = logits.shape[:2]
        if not isinstance(values, Tensor) or tuple(values.shape) not in ((n, b), (n,)):
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(
                f"metric {self.metric!r} returned {got} for logits {tuple(logits.shape)}; a "
                f"metric returns [n, batch] = [{n}, {b}] (a value per run and prompt) or [n] = "
                f"[{n}] (one per run)"
            )
        values = values.float()
        return values if values.dim() == 2 else values[:, None]

    def score(self, logits: Float[Tensor, "n batch *m vocab"]) -> Float[Tensor, " n"]:
        """The metric of each run, averaged over prompts; NaN raises."""
        values = self.per_prompt(logits).mean(-1)
        if torch.isnan(values).any():
            raise NonFiniteMetric(f"metric {self.metric!r} returned NaN")
        return values

    def score_resid(self, resid: Float[Tensor, "n batch *m d_model"], model) -> Float[Tensor, " n"]:
        """The metric from the final (normalised) residual stream at the answer positions.

        ``logit_diff`` reads only the answer and wrong-answer columns of the unembedding; the other
        metrics, and metric functions, get the whole output vocabulary (a softmax needs it).
        """
        if self.task.metric != "logit_diff":
            return self.score(resid @ model.W_U + model.b_U)

        def mean_column(ids):  # the unembedding direction and bias of the (mean) answer
            ids = ids.view(ids.shape[0], -1)
            return model.W_U[:, ids].mean(-1), model.b_U[ids].mean(-1)  # [d_model, batch], [batch]

        (w_a, b_a), (w_w, b_w) = mean_column(self.answers), mean_column(self.wrong_answers)
        w, b = w_a - w_w, b_a - b_w
        values = ((resid * w.T[None]).sum(-1) + b).float().mean(-1)
        if torch.isnan(values).any():
            raise NonFiniteMetric(f"metric {self.metric!r} returned NaN")
        return values

    @locked
    def baseline(self, model) -> tuple[float, float]:
        """The metric on the clean run and on the corrupted run (also fills ``clean_logprobs``)."""
        with torch.no_grad():
            clean = self.read(model(self.clean))
            corrupted = self.read(model(self.corrupted))
        self.clean_logprobs = clean.float().log_softmax(-1)
        scores = {}
        for run, logits in (("clean", clean), ("corrupted", corrupted)):
            values = self.per_prompt(logits[None])[0]
            bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
            if bad:
                value = float(values[bad[0]])
                where = f"prompt {bad[0]} of {run}" if len(values) == self.batch else "all prompts"
                raise NonFiniteMetric(
                    f"task metric {self.metric!r} is {'NaN' if math.isnan(value) else value} on "
                    f"the {run} run ({where}): a baseline must be finite; check the model's "
                    "weights and logits on that prompt"
                )
            scores[run] = float(values.mean())
        return scores["clean"], scores["corrupted"]

    def tl_metric(self):
        """The same metric as a function of full logits ``[batch, pos, vocab]`` -> scalar, the form
        ``transformer_lens.patching`` takes."""

        def metric(logits: Tensor) -> Tensor:
            return self.score(self.read(logits)[None])[0]

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
        value, other = rng.sample(organisms.DIGITS, 2)
        seed_i = rng.random()
        pair = [
            organisms.variable_chain(
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
