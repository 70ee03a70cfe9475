"""The head scores, by name: one registry that the CLI, the app and scripts all read.

Each :class:`HeadScore` names a ``layer x head`` score, says in a line what it measures, whether
it reads a prompt (TransformerLens's head detector) or its own probe (repeated random tokens,
the weights), and computes it. ``interp heads --score NAME``, the app's head atlas and
``score_heads(model, NAME)`` therefore offer the same scores under the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ..hooks import locked
from ..result import Result
from ._copy_suppression import copy_suppression_effect
from ._detectors import (
    attention_entropy,
    bos_scores,
    detection_scores,
    duplicate_token_scores,
    induction_scores,
    previous_token_scores,
)
from ._weights import ov_copying_scores


@dataclass(frozen=True)
class HeadScore:
    """One named head score.

    Arguments:
        name: the name the CLI takes and the app shows (``"previous-token"``).
        help: what a high score means, in a line.
        reads_prompt: ``True`` when it scores the heads on a prompt the user gives (the
            detector scores); the others make their own probe.
        compute: ``(model, tokens or None) -> Result`` of shape ``layer x head``.
    """

    name: str
    help: str
    reads_prompt: bool
    compute: Callable[[object, Tensor | None], Result]


def _detector(kind: str) -> Callable[[object, Tensor | None], Result]:
    def compute(model, tokens):
        if tokens is None:
            raise ValueError(f"head score 'detector:{kind}' reads a prompt; give tokens")
        return detection_scores(model, tokens, kind)

    return compute


_SCORES = (
    HeadScore(
        "induction",
        "attention to the token after the earlier copy of the current token",
        False,
        lambda m, t: induction_scores(m),
    ),
    HeadScore(
        "previous-token",
        "attention to the position just before",
        False,
        lambda m, t: previous_token_scores(m),
    ),
    HeadScore(
        "duplicate-token",
        "attention to the earlier copy of the current token",
        False,
        lambda m, t: duplicate_token_scores(m),
    ),
    HeadScore(
        "bos", "attention to the first position (attention sink)", False, lambda m, t: bos_scores(m)
    ),
    HeadScore(
        "entropy",
        "entropy of the attention distribution (nats)",
        False,
        lambda m, t: attention_entropy(m),
    ),
    HeadScore(
        "ov-copying",
        "own token among the top logits of W_E W_OV W_U",
        False,
        lambda m, t: ov_copying_scores(m)[0],
    ),
    HeadScore(
        "ov-copy-suppression",
        "own token among the bottom logits of W_E W_OV W_U",
        False,
        lambda m, t: ov_copying_scores(m)[1],
    ),
    HeadScore(
        "copy-suppression",
        "rise in log-prob of in-context predictions when the head is mean-ablated",
        False,
        lambda m, t: copy_suppression_effect(m),
    ),
    *(
        HeadScore(
            f"detector:{kind}",
            f"TransformerLens's head detector ({kind}) on the prompt",
            True,
            _detector(kind),
        )
        for kind in ("induction_head", "previous_token_head", "duplicate_token_head")
    ),
)
HEAD_SCORES: dict[str, HeadScore] = {s.name: s for s in _SCORES}


@locked
def score_heads(model, score: str, tokens: Tensor | None = None) -> Result:
    """The ``layer x head`` Result of the head score named ``score`` (one of ``HEAD_SCORES``).

    Arguments:
        model: a TransformerLens model.
        score: a name in ``HEAD_SCORES``.
        tokens: the prompt ``[batch, pos]`` for the scores that read one (``detector:*``);
            ignored by the others.

    Example:
        >>> score_heads(model, "previous-token").top(3)
    """
    if score not in HEAD_SCORES:
        raise ValueError(f"head score {score!r} is not known; use one of {', '.join(HEAD_SCORES)}")
    return HEAD_SCORES[score].compute(model, tokens)
