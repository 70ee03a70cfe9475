"""Heads across training and post-training: when they form, which ones emerge.

**Formation.** Induction heads appear in a *phase change* (Olsson et al., 2022): over a few
hundred steps the induction score jumps and the in-context-learning score (loss late in the
context minus loss early) drops. ``formation`` scores every head of every checkpoint and finds the
step of the steepest rise. Results go to a JSON file as each checkpoint finishes, so a long run
that is interrupted resumes where it stopped.

**Emergence after post-training.** ``emergent_heads`` scores each head's importance for a task in
a base and a post-trained model (the metric lost when the head is mean-ablated) and sorts heads
into emerged (important after, not before), faded, and stable.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .artifacts import clean_leftovers, read_json, write_json
from .heads import (
    induction_scores,
    previous_token_scores,
    repeated_random_tokens,
    repeated_token_loss,
)
from .hooks import ablating, hook_name, locked
from .models import load_model, provenance
from .organisms import checkpoint_dir
from .result import Result
from .tasks import Task, TaskBatch


def organism_checkpoints(name: str) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the training checkpoints of organism ``name``, by step."""
    root = checkpoint_dir(name)
    clean_leftovers(root)
    found = sorted(
        (int(p.name.split("-")[1]), p) for p in root.glob("step-*") if (p / "config.json").exists()
    )
    if not found:
        raise FileNotFoundError(
            f"no checkpoints of {name!r} under {root}; run `interp organisms train {name}` to make them"
        )
    return found


def hub_checkpoints(name: str, revisions: Sequence[str | int]) -> list[tuple[int, str]]:
    """``(step, "name@revision")`` pairs for :func:`formation` over a hub model's revisions.

    An integer ``N`` means Pythia's revision name ``"stepN"``; a revision ``"stepN"`` gets step
    ``N``; any other revision gets its index in the list.
    """
    if not revisions:
        raise ValueError("revisions is empty; give revision names or step numbers")
    out = []
    for i, rev in enumerate(revisions):
        if isinstance(rev, int):
            out.append((rev, f"{name}@step{rev}"))
        elif rev.startswith("step") and rev[4:].isdigit():
            out.append((int(rev[4:]), f"{name}@{rev}"))
        else:
            out.append((i, f"{name}@{rev}"))
    return out


@locked
def icl_score(model, tokens: torch.Tensor, early: int = 20, late: int | None = None) -> float:
    """In-context-learning score: mean loss at position ``late`` minus at ``early`` (negative = ICL)."""
    late = late if late is not None else tokens.shape[1] - 2
    if not 0 < early < late < tokens.shape[1] - 1:
        raise ValueError(
            f"need 0 < early={early} < late={late} < {tokens.shape[1] - 1} (probe length - 1)"
        )
    with torch.no_grad():
        loss = model(tokens.to(model.cfg.device), return_type="loss", loss_per_token=True)
    window = max(1, (late - early) // 10)
    return float(
        loss[:, late - window : late + 1].mean() - loss[:, early : early + window + 1].mean()
    )


def _signature(model) -> dict:
    c = model.cfg
    return {
        "n_layers": c.n_layers,
        "n_heads": c.n_heads,
        "d_model": c.d_model,
        "d_vocab": c.d_vocab,
    }


def formation(
    checkpoints: Sequence[tuple[int, str | os.PathLike]],
    *,
    text: torch.Tensor,
    period: int = 40,
    n_sequences: int = 16,
    out: str | os.PathLike | None = None,
    device: str | None = "cpu",
    progress: bool = True,
) -> dict[str, Result]:
    """Head scores and the in-context-learning score at every checkpoint.

    Arguments:
        checkpoints: ``(step, model spec)`` pairs, e.g. from ``organism_checkpoints``.
        text: held-out token ids ``[batch, pos]`` for the ICL score (with BOS first if used).
        period: length of the repeated random sequences that probe the heads.
        out: a JSON file to write results to as they come; an existing one is resumed.

    Returns:
        ``{"induction": Result(step, layer, head), "previous_token": ..., "max_induction":
        Result(step), "icl": Result(step), "icl_repeated": Result(step)}``: ``icl`` is the
        late-minus-early loss on ``text`` (Olsson et al.), ``icl_repeated`` the second-copy minus
        first-copy loss on the repeated-token probe; ``phase_change`` locates the jump.
    """
    if not checkpoints:
        raise ValueError("checkpoints is empty; give (step, model spec) pairs")
    steps = [int(s) for s, _ in checkpoints]
    if steps != sorted(set(steps)):
        raise ValueError(f"checkpoint steps must be increasing and distinct, got {steps}")
    done: dict[str, dict] = {}
    path = Path(out) if out else None
    if path and path.exists():
        done = read_json(path)["steps"]
    signature = None
    bar = tqdm(checkpoints, desc="checkpoints", disable=not progress, leave=False)
    for step, spec in bar:
        if str(step) in done:
            signature = signature or done[str(step)]["signature"]
            continue
        model = load_model(spec, device=device)
        sig = _signature(model)
        if signature is not None and sig != signature:
            raise ValueError(
                f"checkpoint at step {step} ({spec}) has architecture {sig}, unlike the others ({signature})"
            )
        signature = sig
        if 2 * period + 1 > model.cfg.n_ctx:
            raise ValueError(
                f"period={period} needs {2 * period + 1} positions; the model has {model.cfg.n_ctx}"
            )
        probe = repeated_random_tokens(model, n=n_sequences, period=period, seed=0)
        done[str(step)] = {
            "signature": sig,
            "induction": induction_scores(model, probe, period).values.tolist(),
            "previous_token": previous_token_scores(model, probe).values.tolist(),
            "icl": icl_score(model, text),
            "icl_repeated": _loss_drop(model, probe, period),
        }
        if path:
            write_json(path, {"steps": done})
    rows = [done[str(s)] for s in steps]
    labels = {"step": [str(s) for s in steps]}
    prov = {
        "method": "formation",
        "checkpoints": [str(p) for _, p in checkpoints],
        "period": period,
    }
    induction = torch.tensor([r["induction"] for r in rows])
    return {
        "induction": Result(
            induction, ("step", "layer", "head"), "induction score", dict(labels), dict(prov)
        ),
        "previous_token": Result(
            torch.tensor([r["previous_token"] for r in rows]),
            ("step", "layer", "head"),
            "previous-token score",
            dict(labels),
            dict(prov),
        ),
        "max_induction": Result(
            induction.flatten(1).max(1).values,
            ("step",),
            "max induction score",
            dict(labels),
            dict(prov),
        ),
        "icl": Result(
            torch.tensor([r["icl"] for r in rows]),
            ("step",),
            "ICL score (late - early loss)",
            dict(labels),
            dict(prov),
        ),
        "icl_repeated": Result(
            torch.tensor([r["icl_repeated"] for r in rows]),
            ("step",),
            "repeated-token loss drop (second copy - first copy)",
            dict(labels),
            dict(prov),
        ),
    }


def _loss_drop(model, probe, period) -> float:
    first, second = repeated_token_loss(model, probe, period)
    return second - first


def phase_change(curve: Result) -> int:
    """The step at which a 1-D score over steps rises fastest (the checkpoint after the jump)."""
    if curve.axes != ("step",) or len(curve.values) < 2:
        raise ValueError("phase_change takes a Result over ('step',) with at least two checkpoints")
    jumps = curve.values[1:] - curve.values[:-1]
    return int(curve.labels["step"][int(jumps.argmax()) + 1])


# -- emergence after post-training ------------------------------------------------------------------


@locked
def head_importance(model, task: Task | TaskBatch, how: str = "mean") -> Result:
    """The task metric lost when each head's output is ablated: ``layer x head`` (clean run).

    ``how="mean"`` replaces the head's ``z`` by its mean over the corrupted prompts, ``"zero"`` by
    0. ``how="eap"`` / ``"eap-ig"`` estimates, instead, the metric lost when the head's output
    takes its corrupted value on every outgoing edge: minus the sum of its edges' EAP (EAP-IG)
    scores, from one gradient pass (a few with EAP-IG) instead of one pass per head.
    """
    hows = ("mean", "zero", "eap", "eap-ig")
    if how not in hows:
        raise ValueError(f"how={how!r} is not accepted; use one of {hows}")
    batch = task.tokens(model) if isinstance(task, Task) else task
    clean, _ = batch.baseline(model)
    if how in ("eap", "eap-ig"):
        values = _eap_head_importance(model, batch, "EAP" if how == "eap" else "EAP-IG")
    else:
        values = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
        for layer in range(model.cfg.n_layers):
            name = hook_name(model, "z", layer)
            for head in range(model.cfg.n_heads):
                with (
                    ablating(model, [name], how, reference=batch.corrupted, heads=[head]),
                    torch.no_grad(),
                ):
                    logits = batch.read(model(batch.clean))
                values[layer, head] = clean - float(batch.score(logits[None])[0])
    return Result(
        values,
        ("layer", "head"),
        f"{batch.metric} lost when ablated ({how})",
        provenance={
            "model": provenance(model),
            "task": batch.task.name,
            "method": "head_importance",
            "how": how,
            "clean_metric": clean,
        },
    )


def _eap_head_importance(model, batch: TaskBatch, method: str) -> torch.Tensor:
    from .discovery import edge_scores, edge_space

    scores = edge_scores(model, batch, method=method).values.nan_to_num(0.0)
    space = edge_space(model)
    values = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            values[layer, head] = -scores[:, space.head_sender(layer, head)].sum()
    return values


@locked(models=("base", "tuned"))
def emergent_heads(base, tuned, task: Task, *, threshold: float = 0.05, how: str = "mean") -> dict:
    """Heads that emerged, faded or stayed between ``base`` and ``tuned`` for ``task``.

    Importance is the metric lost when the head is ablated (``how="mean"`` or ``"zero"``), or its
    edge-attribution estimate (``how="eap"`` or ``"eap-ig"``), as a share of the *tuned* model's
    clean metric (the same units in both models); a head is important when its share is at
    least ``threshold``.

    Returns:
        ``{"base": Result, "tuned": Result, "emerged": [(layer, head)], "faded": [...],
        "stable": [...]}`` with heads sorted by their tuned importance.
    """
    if _signature(base) != _signature(tuned):
        raise ValueError(
            f"base {_signature(base)} and tuned {_signature(tuned)} differ in architecture"
        )
    imp_base = head_importance(base, task, how)
    imp_tuned = head_importance(tuned, task, how)
    # one scale for both: the tuned model's clean metric. (Each model's own clean metric would
    # inflate the base, whose clean logit difference is near zero when it cannot do the task.)
    scale = max(abs(imp_tuned.provenance["clean_metric"]), 1e-6)
    share_b, share_t = imp_base.values / scale, imp_tuned.values / scale
    heads = [
        (layer, head) for layer in range(base.cfg.n_layers) for head in range(base.cfg.n_heads)
    ]
    heads.sort(key=lambda h: -float(share_t[h]))
    important_b = {h for h in heads if share_b[h] >= threshold}
    important_t = {h for h in heads if share_t[h] >= threshold}
    return {
        "base": imp_base,
        "tuned": imp_tuned,
        "emerged": [h for h in heads if h in important_t and h not in important_b],
        "faded": [h for h in heads if h in important_b and h not in important_t],
        "stable": [h for h in heads if h in important_b and h in important_t],
    }


@locked
def accuracy_with_heads_ablated(
    model, task: Task, heads: Sequence[tuple[int, int]], how: str = "mean"
) -> float:
    """Top-1 accuracy of the answer on the clean prompts with ``heads`` ablated together."""
    batch = task.tokens(model)
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    managers = [
        ablating(model, [hook_name(model, "z", layer)], how, reference=batch.corrupted, heads=hs)
        for layer, hs in by_layer.items()
    ]
    with torch.no_grad(), ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        top = batch.read(model(batch.clean)).argmax(-1)
    if top.dim() == 2:  # a multi-token answer: right when every token is
        hit = (top == batch.answers).all(-1)
    else:  # right when the top token is the answer (any of several)
        hit = (top[:, None] == batch.answers.view(batch.batch, -1)).any(-1)
    return float(hit.float().mean())


def random_head_sets(
    model, size: int, draws: int, seed: int = 0, exclude=()
) -> list[list[tuple[int, int]]]:
    rng = random.Random(seed)
    pool = [
        (la, h)
        for la in range(model.cfg.n_layers)
        for h in range(model.cfg.n_heads)
        if (la, h) not in set(exclude)
    ]
    return [rng.sample(pool, size) for _ in range(draws)]
