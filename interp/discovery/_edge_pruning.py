"""Edge Pruning (Bhaskar et al., 2024): learn which edges a task needs by gradient descent.

Every edge ``u -> v`` gets a mask ``z`` in ``[0, 1]``: its receiver reads ``z * a_u + (1 - z) *
a_u(ablated)``, by default ``a_u`` on the paired corrupted prompt (``masked_answer_logits``). The
masks are hard-concrete variables (Louizos et al., 2018): ``z = clamp(sigmoid((logit(u) +
log_alpha) / beta) * (r - l) + l, 0, 1)`` with ``u`` uniform noise, so a mask is exactly 0 or 1
with non-zero probability and the expected number of kept edges,
``sum sigmoid(log_alpha - beta * log(-l / r))``, is differentiable. The loss is

    KL(clean output || masked output) + lambda_1 * gap + lambda_2 * gap^2

where ``gap`` is (expected edges - target) / all edges and the target falls linearly from every
edge to ``target_edges`` over the first ``warmup`` share of the steps. The multipliers
``lambda`` are trained by gradient *ascent* (a Lagrangian, as in CoFi pruning and Edge Pruning),
so the penalty grows until the expected size meets its target instead of being tuned by hand.

Where EAP ranks edges by a first-order estimate, and ACDC removes one edge at a time, the masks
here are fitted jointly, so redundant edges (several induction heads doing one job) are traded
off against one another. Training draws its noise from a generator seeded by ``seed`` and runs
with Adam on the model's device: the same call gives the same masks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..hooks import locked
from ..models import provenance
from ..result import Result
from ..tasks import Task, TaskBatch
from ._edge_mask import masked_answer_logits, sender_reference
from ._edges import edge_space
from ._faithfulness import ABLATIONS

OBJECTIVES = ("kl", "metric")
LEVELS = ("edge", "node")
# hard-concrete stretch (l, r) and temperature beta, Louizos et al. (2018)
_LOW, _HIGH, _BETA = -0.1, 1.1, 2 / 3
# log_alpha is kept within +-10: beyond it a sampled mask differs from 0 or 1 with p < 3e-4
_LOG_ALPHA_LIMIT = 10.0


@locked
def edge_pruning_scores(
    model,
    task: Task | TaskBatch,
    *,
    target_edges: int | None = None,
    sparsity: float | None = None,
    steps: int = 300,
    lr: float = 0.1,
    lambda_lr: float = 0.1,
    warmup: float = 0.5,
    objective: str = "metric",
    ablation: str = "resample",
    level: str = "edge",
    init: float = 3.0,
    seed: int = 0,
    progress: bool = False,
) -> Result:
    """Learned keep-probabilities of every edge (the layout of ``edge_scores``).

    Arguments:
        model: a HookedTransformer (or TransformerBridge in compatibility mode).
        task: clean/corrupted prompts and the metric.
        target_edges: how many ``[receiver, sender]`` edges the masks should keep at the end (a
            head's q, k and v inputs count apart; a key/value group's edge once).
        sparsity: or the share of edges to remove, in ``[0, 1)``; default 0.9 when neither is
            given. With ``level="node"`` both count components (heads and MLPs), not edges.
        steps: optimisation steps (one masked forward and backward pass each).
        lr: Adam's step size for the mask logits ``log_alpha``.
        lambda_lr: Adam's step size for the two Lagrange multipliers (ascent).
        warmup: share of ``steps`` over which the target falls from everything to the target.
        objective: ``"kl"`` (KL divergence from the clean run's next-token distribution at the
            answer position, as Edge Pruning) or ``"metric"`` (squared distance of the task's
            metric from its clean value, in units of clean minus corrupted).
        ablation: what a removed edge carries: ``"resample"`` (the corrupted run, the default),
            ``"mean"`` (the mean over the task's prompts) or ``"zero"``.
        level: ``"edge"`` (one mask per edge) or ``"node"`` (one mask per head and MLP, shared
            by every edge out of it; the input is always kept).
        init: the initial ``log_alpha`` of every mask (3: each mask is 1 with probability ~0.9).
        seed: seeds the hard-concrete noise.
        progress: show a progress bar over the steps.

    Returns:
        A Result ``[receiver, sender]``: each edge's keep-probability ``sigmoid(log_alpha)``
        after training (NaN where no edge exists); larger means kept. Provenance holds the
        settings, the training curve (loss, expected edges) every 10 steps, and the method
        ``"EdgePruning"``; ``to_graph`` and ``extract`` take it as they take EAP scores.
    """
    _check(steps, lr, lambda_lr, warmup, init, seed, objective, level)
    if not isinstance(ablation, str) or ablation not in ABLATIONS:
        raise ValueError(f"ablation={ablation!r} is not accepted; use one of {ABLATIONS}")
    space = edge_space(model)
    valid = space.reads()
    n = _n_units(space, level)
    target = _target(n, target_edges, sparsity, level)
    batch = task.tokens(model) if isinstance(task, Task) else task
    clean_metric, corrupted_metric = batch.baseline(model)
    scale = clean_metric - corrupted_metric
    if objective == "metric" and scale == 0:
        raise ValueError("objective='metric' needs clean and corrupted metrics that differ")
    reference = sender_reference(model, space, batch, ablation)
    device = batch.clean.device
    clean_probs = batch.clean_logprobs.exp().to(device)
    valid_dev = valid.to(device)
    log_alpha = torch.full((n,), float(init), device=device, requires_grad=True)
    lambdas = torch.zeros(2, device=device, requires_grad=True)
    opt = torch.optim.Adam([log_alpha], lr=lr)
    opt_lambda = torch.optim.Adam([lambdas], lr=lambda_lr, maximize=True)
    gen = torch.Generator().manual_seed(seed)
    shift = _BETA * math.log(-_LOW / _HIGH)
    ramp = max(1, round(warmup * steps))
    trace = []
    for step in tqdm(range(steps), disable=not progress, desc="Edge Pruning"):
        u = torch.rand(n, generator=gen, dtype=torch.float32).clamp(1e-6, 1 - 1e-6).to(device)
        stretched = torch.sigmoid((u.log() - (-u).log1p() + log_alpha) / _BETA)
        z = (stretched * (_HIGH - _LOW) + _LOW).clamp(0, 1)
        keep = _keep(space, level, z, device)
        logits = masked_answer_logits(model, space, batch, valid_dev * (1 - keep), reference)
        if objective == "kl":
            logprobs = logits.float().log_softmax(-1)
            task_loss = (clean_probs * (batch.clean_logprobs - logprobs)).sum(-1).mean()
        else:
            metric = batch.score(logits[None])[0]
            task_loss = ((clean_metric - metric) / scale) ** 2
        expected = torch.sigmoid(log_alpha - shift).sum()
        goal = n - (n - target) * min(1.0, (step + 1) / ramp)
        gap = (expected - goal) / n
        loss = task_loss + lambdas[0] * gap + lambdas[1] * gap**2
        opt.zero_grad()
        opt_lambda.zero_grad()
        log_alpha.grad, lambdas.grad = torch.autograd.grad(loss, [log_alpha, lambdas])
        opt.step()
        opt_lambda.step()
        with torch.no_grad():
            log_alpha.clamp_(-_LOG_ALPHA_LIMIT, _LOG_ALPHA_LIMIT)
        if step % 10 == 0 or step == steps - 1:
            trace.append(
                {
                    "step": step,
                    "task_loss": float(task_loss.detach()),
                    "expected": float(expected.detach()),
                    "target": goal,
                    "lambdas": lambdas.detach().cpu().tolist(),
                }
            )
    with torch.no_grad():
        prob = torch.sigmoid(log_alpha.double()).float().cpu()
    values = _keep(space, level, prob, "cpu").masked_fill(~valid, math.nan)
    return Result(
        values,
        ("receiver", "sender"),
        "keep probability (EdgePruning)",
        {"receiver": space.receiver_labels(), "sender": space.sender_labels()},
        {
            "model": provenance(model),
            "task": batch.task.name,
            "method": "EdgePruning",
            "ig_steps": None,
            "metric": batch.metric,
            "clean_metric": clean_metric,
            "corrupted_metric": corrupted_metric,
            "edge_space": space.provenance(),
            "n_edges": int(valid.sum()),
            "edge_pruning": {
                "level": level,
                "target": target,
                "units": n,
                "steps": steps,
                "lr": lr,
                "lambda_lr": lambda_lr,
                "warmup": warmup,
                "objective": objective,
                "ablation": ablation,
                "init": init,
                "seed": seed,
                "hard_concrete": {"low": _LOW, "high": _HIGH, "beta": _BETA},
                "trace": trace,
            },
        },
    )


@locked
def edge_pruning(
    model,
    task: Task | TaskBatch,
    *,
    target_edges: int | None = None,
    sparsity: float | None = None,
    steps: int = 300,
    lr: float = 0.1,
    objective: str = "metric",
    ablation: str = "resample",
    level: str = "edge",
    seed: int = 0,
    qkv: str = "split",
    progress: bool = False,
    **settings,
):
    """A circuit found by Edge Pruning: masks trained to a target size, then made discrete.

    Runs ``edge_pruning_scores``, keeps the ``target`` most probable edges (``extract`` with
    ``top_n``: those on a path from the input to the logits), and scores the circuit with
    ``faithfulness`` under every ablation.

    Arguments:
        target_edges, sparsity, steps, lr, objective, ablation, level, seed, progress: as for
            ``edge_pruning_scores``; ``settings`` passes its other arguments (``lambda_lr``,
            ``warmup``, ``init``).
        qkv: the graph's q/k/v layout, as for ``eap``.

    Returns:
        A CircuitGraph (methods ``"EdgePruning:q"`` ...) whose edge weights are the learned
        keep-probabilities; ``provenance`` holds the training settings and curve
        (``"edge_pruning"``), the clean and corrupted metrics and ``"faithfulness"`` under
        zero, mean and resample ablation.

    Example:
        >>> circuit = edge_pruning(model, induction_task(model), target_edges=12, seed=0)
        >>> circuit.provenance["faithfulness"]["resample"]
    """
    from ._faithfulness import faithfulness
    from ._graph import extract, to_graph

    scores = edge_pruning_scores(
        model,
        task,
        target_edges=target_edges,
        sparsity=sparsity,
        steps=steps,
        lr=lr,
        objective=objective,
        ablation=ablation,
        level=level,
        seed=seed,
        progress=progress,
        **settings,
    )
    info = scores.provenance["edge_pruning"]
    graph = to_graph(scores, qkv=qkv)
    if level == "edge":
        circuit = extract(graph, top_n=info["target"])
    else:  # the edges among the kept components
        circuit = extract(graph, threshold=_kept_threshold(scores, info["target"]))
    f = faithfulness(model, task, circuit)
    circuit.provenance.update(
        edge_pruning=info,
        clean_metric=scores.provenance["clean_metric"],
        corrupted_metric=scores.provenance["corrupted_metric"],
        faithfulness=dict(zip(f.labels["ablation"], f.values.tolist(), strict=True)),
    )
    return circuit


def _kept_threshold(scores: Result, target: int) -> float:
    """The keep-probability of the ``target``-th most probable component (node level)."""
    if target == 0:
        return math.inf
    per_sender = scores.values[:, 1:].nan_to_num(-math.inf).amax(0)  # the input always stays
    return float(per_sender.sort(descending=True).values[min(target, len(per_sender)) - 1])


def _keep(space, level: str, z: Tensor, device) -> Tensor:
    """``[receiver, sender]`` masks from the unit masks ``z`` (one per edge, or per component)."""
    shape = (space.n_receivers, space.n_senders)
    if level == "node":  # the input (column 0) is always kept
        return torch.cat([z.new_ones(1), z])[None].expand(shape)
    rows, cols = space.reads().to(device).nonzero(as_tuple=True)
    return torch.zeros(shape, device=device, dtype=z.dtype).index_put((rows, cols), z)


def _n_units(space, level: str) -> int:
    return int(space.reads().sum()) if level == "edge" else space.n_senders - 1


def _target(n: int, target_edges, sparsity, level: str) -> int:
    what = "edges" if level == "edge" else "components"
    if target_edges is not None and sparsity is not None:
        raise ValueError("give at most one of target_edges= and sparsity=")
    if target_edges is not None:
        if isinstance(target_edges, bool) or not isinstance(target_edges, int):
            raise ValueError(f"target_edges={target_edges!r} must be an integer")
        if not 0 <= target_edges <= n:
            raise ValueError(f"target_edges={target_edges} must be in 0..{n} (the model's {what})")
        return target_edges
    sparsity = 0.9 if sparsity is None else sparsity
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float):
        raise ValueError(f"sparsity={sparsity!r} must be a number in [0, 1)")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity={sparsity!r} must be a number in [0, 1)")
    return max(1, round((1 - sparsity) * n))


def _check(steps, lr, lambda_lr, warmup, init, seed, objective, level) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be an integer >= 1")
    for name, value in (("lr", lr), ("lambda_lr", lambda_lr)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name}={value!r} must be a number > 0")
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number > 0")
    if isinstance(warmup, bool) or not isinstance(warmup, int | float) or not 0 < warmup <= 1:
        raise ValueError(f"warmup={warmup!r} must be a number in (0, 1]")
    if isinstance(init, bool) or not isinstance(init, int | float) or not math.isfinite(init):
        raise ValueError(f"init={init!r} must be a finite number")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} must be an integer")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r} is not accepted; use one of {OBJECTIVES}")
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not accepted; use one of {LEVELS}")
