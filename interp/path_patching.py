"""Path patching: the effect of one head on another head's input (or on the logits) alone.

Activation patching a head measures its total effect, through every later component. Path
patching isolates a *path*: sender head -> receiver. As in the IOI paper (Wang et al., 2022):

1. Run the target prompts with every attention head's output frozen to its target-run value,
   except the sender, whose output comes from the source run. MLPs and norms recompute, so the
   sender's effect reaches the receivers directly and through MLPs, but not through other heads.
2. Receivers are inputs of later heads (``("q"|"k"|"v", layer, head)``): record them in run 1,
   then run the target prompts again with only those receiver inputs replaced, and read the
   metric. A receiver of ``"logits"`` reads the metric of run 1 directly. Under grouped-query
   attention a head's key and value are its group's, shared with the other heads of the group:
   a ``k``/``v`` receiver replaces the group's.

``direction="noise"`` (the IOI convention) patches corrupted sender outputs into the clean run;
``"denoise"`` patches clean outputs into the corrupted run. ``path_patch_sweep`` tries every head
as the sender, batching many senders into one pass.

Both ends can be limited to positions (``interp.positions``): ``sender_positions`` takes the
sender's output from the source run at those positions only (elsewhere it stays frozen), and
``receiver_positions`` replaces the receivers' inputs at those positions only. Wang et al. patch
into the name movers' queries at the last token (``receiver_positions="end"``): what reaches
them there is which name to avoid, written by the S-inhibition heads.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import _checks
from .hooks import hook_name, locked, run_with_cache, scoped_hooks
from .models import provenance
from .patching import position_labels, site_heads
from .positions import Positions, entries_of, position_mask
from .result import Result
from .tasks import Task, TaskBatch, effect_reading, normalised

Receiver = tuple[str, int, int]  # ("q" | "k" | "v", layer, head)


def _receivers(model, receivers) -> list[Receiver] | str:
    if receivers == "logits":
        return "logits"
    if isinstance(receivers, str):
        raise ValueError(
            f"receivers={receivers!r} is not accepted; use 'logits' or a list of "
            "('q'|'k'|'v', layer, head)"
        )
    out = []
    for r in receivers:
        if not (isinstance(r, tuple | list) and len(r) == 3 and r[0] in ("q", "k", "v")):
            raise ValueError(
                f"receivers holds {r!r}, which is not accepted; use ('q'|'k'|'v', layer, head) "
                "or 'logits'"
            )
        try:
            kind, layer, head = r[0], operator.index(r[1]), operator.index(r[2])
        except TypeError:
            raise TypeError(f"receivers holds {r!r}: layer and head must be integers") from None
        if not (0 <= layer < model.cfg.n_layers and 0 <= head < model.cfg.n_heads):
            raise ValueError(
                f"receivers holds {r!r}, which is out of range: layers 0..{model.cfg.n_layers - 1}, "
                f"heads 0..{model.cfg.n_heads - 1}"
            )
        out.append((kind, layer, head))
    if not out:
        raise ValueError(
            "receivers is empty; give at least one ('q'|'k'|'v', layer, head) or 'logits'"
        )
    return out


@locked
def path_patch_sweep(
    model,
    task: Task | TaskBatch,
    receivers: Sequence[Receiver] | str = "logits",
    direction: str = "noise",
    *,
    sender_positions: Positions = None,
    receiver_positions: Positions = None,
    normalize: bool = False,
    senders_per_pass: int = 16,
    progress: bool | Callable[[int, int], None] = True,
) -> Result:
    """Path-patch every head as the sender, into ``receivers``; a ``layer x head`` Result.

    Arguments:
        model: a TransformerLens model.
        task: the task whose metric is read.
        receivers: ``"logits"`` or a list of ``("q"|"k"|"v", layer, head)`` head inputs.
        direction: ``"noise"`` (corrupted sender into clean run) or ``"denoise"``.
        sender_positions: where each sender's output is patched: an integer (negative counts
            from the end), a name of ``interp.positions.POSITION_NAMES`` the task has (``"end"``,
            IOI's ``"IO"``, ``"S1"``, ``"S2"``) or a list of them; ``None``: every position.
        receiver_positions: where the receivers' inputs take the patched value, in the same
            form; head receivers only (the logits are read at the answer position alone).
        normalize: map the corrupted run to 0 and the clean run to 1.
        senders_per_pass: how many senders share one batched pass.
        progress: show a progress bar; or a function called with ``(done, total)`` senders as
            the sweep goes (an app's progress bar).

    Returns:
        A Result over ``("layer", "head")`` of senders; heads at or after the earliest receiver's
        layer cannot reach it and get the unpatched metric. ``provenance`` and the reading name
        the positions.

    Example:
        >>> # Wang et al.: which heads reach the name movers' queries at the last token?
        >>> r = path_patch_sweep(model, ioi, [("q", 9, 9), ("q", 10, 0)], receiver_positions="end")
    """
    batch = task.tokens(model) if isinstance(task, Task) else task
    if direction not in ("noise", "denoise"):
        raise ValueError(f"direction={direction!r} is not accepted; use 'noise' or 'denoise'")
    recv = _receivers(model, receivers)
    if recv == "logits" and receiver_positions is not None:
        raise ValueError(
            f"receiver_positions={receiver_positions!r} needs head receivers; with "
            "receivers='logits' the metric is read at the answer position alone (limit "
            "sender_positions instead)"
        )
    send_at = position_mask(batch, sender_positions, "sender_positions")
    recv_at = position_mask(batch, receiver_positions, "receiver_positions")
    _checks.positive_int(senders_per_pass, "senders_per_pass")
    clean_score, corrupted_score = batch.baseline(model)
    target, source = (
        (batch.clean, batch.corrupted) if direction == "noise" else (batch.corrupted, batch.clean)
    )
    target_score = clean_score if direction == "noise" else corrupted_score
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    z_names = [hook_name(model, "z", layer) for layer in range(n_layers)]
    _, target_z = run_with_cache(model, target, z_names)
    _, source_z = run_with_cache(model, source, z_names)
    last_layer = n_layers if recv == "logits" else min(layer for _, layer, _ in recv)
    senders = [(layer, head) for layer in range(last_layer) for head in range(n_heads)]
    values = torch.full((n_layers, n_heads), target_score)
    report = progress if callable(progress) else None
    bar = tqdm(
        total=len(senders),
        desc="path patching",
        disable=report is not None or not progress,
        leave=False,
    )
    for k in range(0, len(senders), senders_per_pass):
        chunk = senders[k : k + senders_per_pass]
        values_chunk = _run_chunk(
            model, batch, target, chunk, target_z, source_z, z_names, recv, send_at, recv_at
        )
        for (layer, head), v in zip(chunk, values_chunk.tolist(), strict=True):
            values[layer, head] = v
        bar.update(len(chunk))
        if report is not None:
            report(k + len(chunk), len(senders))
    bar.close()
    metric = batch.metric
    if normalize:
        values = normalised(values, clean_score, corrupted_score)
        metric = f"{metric} (normalised: corrupted 0, clean 1)"
    reading = effect_reading(batch.metric, direction, normalize, clean_score, corrupted_score)
    where = {"sender": (sender_positions, send_at), "receiver": (receiver_positions, recv_at)}
    reading["reading"] += " " + _path_reading(model, batch, recv, direction, where)
    return Result(
        values,
        ("layer", "head"),
        metric,
        provenance={
            "model": provenance(model),
            "task": batch.task.name,
            "metric": batch.metric,
            "method": "path_patch_sweep",
            "receivers": recv if recv == "logits" else [list(r) for r in recv],
            "sender_positions": _recorded(sender_positions),
            "receiver_positions": _recorded(receiver_positions),
            "direction": direction,
            "clean_metric": clean_score,
            "corrupted_metric": corrupted_score,
            "normalized": normalize,
            **reading,
        },
    )


def _recorded(positions: Positions) -> str | list[int | str]:
    """Positions as provenance records them: ``"all"``, or the list of integers and names."""
    return "all" if positions is None else entries_of(positions)


def _path_reading(model, batch: TaskBatch, recv, direction: str, where: dict) -> str:
    """The path a value measures, with its positions (as given, and as tokens of prompt 0)."""

    def at(end: str) -> str:
        positions, mask = where[end]
        if mask is None:
            return "every position"
        labels = position_labels(model, batch.clean[0])
        tokens = ", ".join(repr(labels[i]) for i in mask[0].nonzero().flatten().tolist())
        given = entries_of(positions)
        plural = "s" if len(given) > 1 else ""
        return f"position{plural} {', '.join(map(str, given))} (prompt 0: {tokens})"

    source = "corrupted" if direction == "noise" else "clean"
    into = (
        "the logits"
        if recv == "logits"
        else ", ".join(f"{kind} of L{layer}H{head}" for kind, layer, head in recv)
        + f" at {at('receiver')}"
    )
    return f"Path: each sender head's {source}-run output at {at('sender')}, into {into}."


def _hook_head(model, kind: str, head: int) -> int:
    """The index along ``hook_{kind}``'s head axis that feeds query head ``head``: the head
    itself, or under grouped-query attention its group's shared key/value head (which the other
    heads of the group read too)."""
    n_heads = model.cfg.n_heads
    n_site = site_heads(model, kind)
    return head if n_site == n_heads else head // (n_heads // n_site)


def _run_chunk(
    model, batch, target, chunk, target_z, source_z, z_names, recv, send_at, recv_at
) -> Tensor:
    """Metric for each sender in ``chunk``: one frozen pass, then (for head receivers) one more.

    ``send_at`` and ``recv_at`` mask the positions patched at each end, ``[prompt, pos]``
    (``None``: every position)."""
    b, reps = batch.batch, len(chunk)
    tokens = target.repeat(reps, 1)

    def freeze(layer):
        def hook(z, hook):
            z = target_z[z_names[layer]].repeat(reps, 1, 1, 1).clone()
            for n, (s_layer, s_head) in enumerate(chunk):
                if s_layer == layer:
                    src = source_z[z_names[layer]][:, :, s_head]
                    if send_at is not None:
                        src = torch.where(
                            send_at[..., None], src, z[n * b : (n + 1) * b, :, s_head]
                        )
                    z[n * b : (n + 1) * b, :, s_head] = src
            return z

        return hook

    hooks = [(z_names[layer], freeze(layer)) for layer in range(model.cfg.n_layers)]
    if recv == "logits":
        with scoped_hooks(model, hooks), torch.no_grad():
            logits = model(tokens)
        return batch.score(batch.read(logits.view(reps, b, *logits.shape[1:])))
    names = {(kind, layer): hook_name(model, kind, layer) for kind, layer, _ in recv}
    recorded: dict[str, Tensor] = {}

    def record(name):
        def hook(act, hook):
            recorded[name] = act.detach().clone()

        return hook

    with (
        scoped_hooks(model, hooks + [(n, record(n)) for n in set(names.values())]),
        torch.no_grad(),
    ):
        model(tokens)

    def replace(name, heads):
        def hook(act, hook):
            act = act.clone()
            patched = recorded[name][:, :, heads]
            if recv_at is not None:
                patched = torch.where(
                    recv_at.repeat(reps, 1)[..., None, None], patched, act[:, :, heads]
                )
            act[:, :, heads] = patched
            return act

        return hook

    by_name: dict[str, list[int]] = {}
    for kind, layer, head in recv:
        by_name.setdefault(names[(kind, layer)], []).append(_hook_head(model, kind, head))
    with scoped_hooks(model, [(n, replace(n, h)) for n, h in by_name.items()]), torch.no_grad():
        logits = model(tokens)
    return batch.score(batch.read(logits.view(reps, b, *logits.shape[1:])))
