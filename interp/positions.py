"""Positions: where an intervention acts, as indices or as the names of a task's roles.

Some experiments act at a few positions only: Wang et al. (2022) path-patch into the name
movers' *queries at the last token*, which finds the S-inhibition heads that tell them which name
not to copy. Positions are given as integers (negative ones count from the end, Python's
convention) or as names of roles. The names are found in the task's own tokens, so a task needs
no extra data to have them, and a name exists for a task when its role sits in every prompt:

- ``"end"``: the answer position, whose logits the metric reads (every task has it);
- ``"IO"``: the first position of the answer token in the clean prompt (IOI's indirect object);
- ``"S1"``, ``"S2"``: the first and the second position of the wrong answer token in the clean
  prompt (IOI's subject, named twice).

A name may sit at a different index in each prompt (IOI puts the object first in half of them),
so positions resolve to a mask over ``[prompt, position]``. They are the clean prompt's, which
the corrupted prompt shares token for token (the "ABC" corruption of IOI has another name at S2).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Int
from torch import Tensor

if TYPE_CHECKING:
    from .tasks import TaskBatch

POSITION_NAMES: tuple[str, ...] = ("end", "IO", "S1", "S2")
Positions = int | str | Sequence[int | str] | None


def named_positions(batch: TaskBatch) -> dict[str, Int[Tensor, " batch"]]:
    """The names of ``POSITION_NAMES`` that sit in every prompt of ``batch``, with the index of
    each in each prompt. Roles are searched before the answer position only."""
    clean = batch.clean
    n, seq = clean.shape
    end = torch.as_tensor(batch.answer_pos, device=clean.device).expand(n).long()
    found = {"end": end}
    before = torch.arange(seq, device=clean.device)[None] < end[:, None]
    roles = [("IO", batch.answers, 0)]
    if batch.wrong_answers is not None:
        roles += [("S1", batch.wrong_answers, 0), ("S2", batch.wrong_answers, 1)]
    for name, tokens, nth in roles:
        hits = (clean == tokens[:, None]) & before
        if bool((hits.sum(1) > nth).all()):  # the (nth+1)-th occurrence in every prompt
            rank = hits.long().cumsum(1)
            found[name] = (hits & (rank == nth + 1)).long().argmax(1)
    return found


def position_mask(
    batch: TaskBatch, positions: Positions, arg: str = "positions"
) -> Bool[Tensor, "batch pos"] | None:
    """``positions`` as a mask of the chosen positions of each prompt; ``None`` (all) stays None.

    Arguments:
        batch: the tokenized task (its prompts' length, its roles).
        positions: an integer (negative counts from the end), a name from ``POSITION_NAMES``
            that the task has, or a list of them; ``None`` means every position.
        arg: the argument's name, for errors.

    Raises:
        TypeError: an entry is neither an integer nor a string.
        IndexError: an integer is outside the prompts.
        ValueError: an unknown or absent name, an empty list, or one position named twice.
    """
    if positions is None:
        return None
    entries = entries_of(positions, arg)
    n, seq = batch.clean.shape
    names = named_positions(batch)
    mask = torch.zeros(n, seq, dtype=torch.long, device=batch.clean.device)
    rows = torch.arange(n, device=mask.device)
    for entry in entries:
        if isinstance(entry, str):
            if entry not in names:
                raise ValueError(_unknown_name(entry, names, arg))
            index = names[entry]
        else:
            if not -seq <= entry < seq:
                raise IndexError(
                    f"{arg}={_shown(positions)} holds {entry}, out of range for prompts of {seq} "
                    f"tokens: use 0..{seq - 1} (or -{seq}..-1 from the end), or a name "
                    f"({', '.join(names)})"
                )
            index = torch.full((n,), entry % seq, device=mask.device)
        mask[rows, index] += 1
    twice = (mask > 1).nonzero().tolist()
    if twice:
        prompt, pos = twice[0]
        raise ValueError(
            f"{arg}={_shown(positions)} names position {pos} more than once (in prompt "
            f"{prompt}); give each position once"
        )
    return mask.bool()


def entries_of(positions: Positions, arg: str = "positions") -> list[int | str]:
    """``positions`` as a non-empty list of integers and names, checked for type only (what a
    caller can check before a task is tokenized)."""
    items = [positions] if isinstance(positions, int | str) else positions
    if isinstance(items, Tensor):
        items = items.tolist()
    if not isinstance(items, Sequence | range):
        raise TypeError(
            f"{arg}={positions!r} is not accepted; give an integer, a name "
            f"({', '.join(POSITION_NAMES)}), a list of them, or None for every position"
        )
    out: list[int | str] = []
    for item in items:
        if isinstance(item, str):
            if item not in POSITION_NAMES:
                raise ValueError(_unknown_name(item, POSITION_NAMES, arg))
            out.append(item)
            continue
        try:
            if isinstance(item, bool):
                raise TypeError
            out.append(operator.index(item))
        except TypeError:
            raise TypeError(
                f"{arg}={_shown(positions)} holds {item!r}; positions are integers or names "
                f"({', '.join(POSITION_NAMES)})"
            ) from None
    if not out:
        raise ValueError(
            f"{arg}=[] is empty; give at least one position, or None for every position"
        )
    return out


def _shown(positions) -> str:
    return repr(positions.tolist() if isinstance(positions, Tensor) else positions)


def _unknown_name(name: str, names, arg: str) -> str:
    known = ", ".join(names)
    if name in POSITION_NAMES:
        return (
            f"{arg} names {name!r}, which this task does not have in every prompt; "
            f"its names: {known} (or give integers)"
        )
    return f"{arg} names {name!r}, which is not a position name; names: {known} (or integers)"
