"""Edge attribution patching (EAP) and EAP with integrated gradients (EAP-IG).

Patching one edge ``u -> v`` (only ``v`` sees ``u``'s corrupted output) changes the metric by
about ``(a_u(corrupted) - a_u(clean)) . d metric / d input_v``, summed over positions (Syed et al.,
2023). The gradient at every receiver's input comes from one backward pass, so one clean and one
corrupted forward pass plus one backward pass score every edge. EAP-IG (Hanna et al., 2024)
averages the gradient over ``ig_steps`` runs whose input embeddings lie on the straight line from
the corrupted to the clean embeddings (``alpha = k / ig_steps``, ``k = 1..ig_steps``), which
follows saturated effects better; with ``ig_steps=1`` it is EAP. This is Hanna et al.'s
EAP-IG-inputs. ``"EAP-IG-activations"`` interpolates every component's output instead: at each
step the input and every head's and MLP's output take the value ``corrupted + alpha * (clean -
corrupted)`` (straight-through, so gradients still flow through them), and the receivers' input
gradients are read there; it follows effects that saturate inside the model rather than at the
embeddings.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..hooks import hook_name, locked, scoped_hooks
from ..models import provenance
from ..patching import position_labels
from ..result import Result
from ..tasks import Task, TaskBatch
from ._edges import (
    EdgeSpace,
    answer_logits,
    edge_space,
    head_input_grads,
    qkv_from_inputs,
    sender_outputs,
)
from ._positions import aligned_positions, positional_step_scores

METHODS = ("EAP", "EAP-IG", "EAP-IG-activations")
_PINNED = ("hook_z", "hook_mlp_out")  # the outputs EAP-IG-activations interpolates


@locked
def edge_scores(
    model,
    task: Task | TaskBatch,
    *,
    method: str = "EAP",
    ig_steps: int = 5,
    progress: bool = False,
    by_position: bool = False,
) -> Result:
    """Score every edge of the model's head/MLP graph on ``task`` by EAP or EAP-IG.

    Arguments:
        model: a HookedTransformer (or TransformerBridge in compatibility mode).
        task: clean/corrupted prompts and the metric.
        method: ``"EAP"``, ``"EAP-IG"`` (inputs interpolated) or ``"EAP-IG-activations"``
            (every component's output interpolated).
        ig_steps: interpolation steps for the EAP-IG methods (ignored by EAP); ``>= 1``.
        progress: show a progress bar over the gradient passes.
        by_position: keep the position axis (``[receiver, sender, pos]``, see
            ``interp.discovery._positions``) instead of summing over it.

    Returns:
        A Result ``[receiver, sender]``: the estimated change of the metric when that one edge
        carries the corrupted run's value (NaN where no edge exists). Receivers are each head's
        ``q``/``k``/``v`` input (``"L1H0.k"``; under grouped-query attention one key and one
        value input per key/value head, ``"L1G0.k"``), each MLP and ``"logits"``; senders are
        ``"input"``, heads and MLPs. ``to_graph`` turns it into a CircuitGraph. With
        ``by_position``, ``[receiver, sender, pos]`` (positions labelled ``"i:token"`` from the
        first prompt); summed over ``pos`` it is the ``[receiver, sender]`` Result.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not accepted; use one of {METHODS}")
    if isinstance(ig_steps, bool) or not isinstance(ig_steps, int) or ig_steps < 1:
        raise ValueError(f"ig_steps={ig_steps!r} must be an integer >= 1")
    space = edge_space(model)
    batch = task.tokens(model) if isinstance(task, Task) else task
    step_scores = _step_scores
    if by_position:
        aligned_positions(batch)
        step_scores = positional_step_scores
    if batch.metric == "kl":
        batch.baseline(model)  # the clean distribution KL is measured from
    steps = ig_steps if method.startswith("EAP-IG") else 1
    corrupted = _run(model, space, batch.corrupted, batch, None, grad=False)
    corrupted_metric = corrupted.pop("metric")
    corrupted_out = sender_outputs(model, space, corrupted)
    per_pos = (batch.clean.shape[1],) if by_position else ()
    scores = torch.zeros(space.n_receivers, space.n_senders, *per_pos)
    delta = None
    clean: dict[str, Tensor] = {}  # the clean run's outputs, for EAP-IG-activations
    for k in tqdm(range(steps, 0, -1), disable=not progress, desc=method):
        alpha = k / steps
        pinned = clean if method == "EAP-IG-activations" and delta is not None else None
        run = _run(model, space, batch.clean, batch, (alpha, corrupted, pinned), grad=True)
        if delta is None:  # the first pass has alpha = 1: the clean run
            clean = {n: v for n, v in run.items() if n.endswith(_PINNED)}
            _check_recompute(model, run)
            clean_metric = run["metric"]
            delta = corrupted_out - sender_outputs(model, space, run)
            # [sender, batch * pos * d_model]: each row one sender's contiguous delta
            delta = delta.permute(2, 0, 1, 3).reshape(space.n_senders, -1)
        scores += step_scores(model, space, run, delta) / steps
    valid = space.reads()
    scores = scores.masked_fill(~(valid[..., None] if by_position else valid), math.nan)
    labels = {"receiver": space.receiver_labels(), "sender": space.sender_labels()}
    if by_position:
        labels["pos"] = position_labels(model, batch.clean[0])
    return Result(
        scores,
        ("receiver", "sender", "pos") if by_position else ("receiver", "sender"),
        f"{batch.metric} change ({method})",
        labels,
        {
            "model": provenance(model),
            "task": batch.task.name,
            "method": method,
            "ig_steps": steps,
            "metric": batch.metric,
            "clean_metric": clean_metric,
            "corrupted_metric": corrupted_metric,
            "edge_space": space.provenance(),
            "n_edges": int(valid.sum()),
        },
    )


def _run(model, space: EdgeSpace, tokens: Tensor, batch, interpolate, *, grad: bool) -> dict:
    """One forward pass keeping what the scores need (and the metric's gradients if ``grad``).

    ``interpolate=(alpha, corrupted_cache, clean_cache)`` replaces the input embedding by
    ``corrupted + alpha * (clean - corrupted)``; with a ``clean_cache`` (EAP-IG-activations) every
    head's ``z`` and MLP's output too, straight-through (the value pinned, the gradient kept).
    """
    saved: dict[str, Tensor] = {}
    wanted = [hook_name(model, "resid_pre", la) for la in range(space.n_layers)]
    wanted += [hook_name(model, "z", la) for la in range(space.n_layers)]
    if space.has_mlp:
        wanted += [hook_name(model, "mlp_out", la) for la in range(space.n_layers)]
    if grad:
        wanted += [hook_name(model, c, la) for c in "qkv" for la in range(space.n_layers)]
        wanted += [hook_name(model, "resid_post", la) for la in range(space.n_layers)]
        if space.has_mlp:
            wanted += [hook_name(model, "resid_mid", la) for la in range(space.n_layers)]
    input_name = hook_name(model, "resid_pre", 0)

    def keep(act, hook):
        if hook.name == input_name and interpolate is not None and interpolate[0] != 1.0:
            alpha, corrupted, _ = interpolate
            act = corrupted[input_name] + alpha * (act - corrupted[input_name])
        elif interpolate is not None and interpolate[2] is not None and hook.name.endswith(_PINNED):
            alpha, corrupted, clean = interpolate
            target = corrupted[hook.name] + alpha * (clean[hook.name] - corrupted[hook.name])
            act = act + (target - act).detach()
        saved[hook.name] = act
        return act

    with scoped_hooks(model, [(n, keep) for n in wanted]), torch.set_grad_enabled(grad):
        logits = answer_logits(model, tokens, batch.answer_pos)
        metric = batch.score(logits[None])[0]
        if grad:
            targets = [n for n in wanted if n.endswith(("hook_q", "hook_k", "hook_v"))]
            targets += [n for n in wanted if n.endswith(("hook_resid_post", "hook_resid_mid"))]
            grads = torch.autograd.grad(metric, [saved[n] for n in targets], allow_unused=True)
            saved["grads"] = {
                n: torch.zeros_like(saved[n]) if g is None else g
                for n, g in zip(targets, grads, strict=True)
            }
    saved = {n: v.detach() if isinstance(v, Tensor) else v for n, v in saved.items()}
    saved["metric"] = float(metric.detach())
    return saved


def _check_recompute(model, saved: dict) -> None:
    """Fail unless ln1 and W_Q/W_K/W_V of layer 0 reproduce the run's q, k and v."""
    resid = saved[hook_name(model, "resid_pre", 0)]
    b, p, d = resid.shape
    x = resid[:, :, None, :].expand(b, p, edge_space(model).head_receivers, d)
    with torch.no_grad():
        recomputed = qkv_from_inputs(model, 0, x)
    for c, r in zip("qkv", recomputed, strict=True):
        seen = saved[hook_name(model, c, 0)]
        if r.shape != seen.shape or not torch.allclose(r, seen, rtol=1e-3, atol=1e-4):
            raise NotImplementedError(
                f"{type(model).__name__}: hook_{c} of layer 0 is not ln1(resid_pre) @ W_{c.upper()}"
                " + b; component circuits need a model whose heads read the residual stream so"
            )


def _step_scores(model, space: EdgeSpace, run: dict, delta: Tensor) -> Tensor:
    """``[receiver, sender]`` scores from one gradient pass: ``sum_{batch,pos} delta . grad``.

    ``delta`` is ``[sender, batch * pos * d_model]``; each receiver's input gradient is flattened
    the same way, so each layer's scores are one matrix product.
    """
    scores = torch.zeros(space.n_receivers, space.n_senders, device=delta.device)
    grads = run["grads"]
    for layer in range(space.n_layers):
        n_read = space.senders_before(layer)
        g_heads = head_input_grads(
            model,
            layer,
            run[hook_name(model, "resid_pre", layer)],
            [grads[hook_name(model, c, layer)] for c in "qkv"],
        )
        rows = slice(layer * space.receivers_per_layer, space.mlp_receiver(layer))
        scores[rows, :n_read] = g_heads @ delta[:n_read].T
        if space.has_mlp:
            post = grads[hook_name(model, "resid_post", layer)]
            g_mlp = grads[hook_name(model, "resid_mid", layer)] - post
            n_mlp = space.mlp_sender(layer)
            scores[space.mlp_receiver(layer), :n_mlp] = delta[:n_mlp] @ g_mlp.reshape(-1)
    final = grads[hook_name(model, "resid_post", space.n_layers - 1)]
    scores[space.logit_receiver] = delta @ final.reshape(-1)
    return scores.float().cpu()


@locked
def eap(
    model,
    task: Task | TaskBatch,
    *,
    method: str = "EAP",
    ig_steps: int = 5,
    qkv: str = "split",
    progress: bool = False,
):
    """Every head/MLP edge of ``model`` scored on ``task``, as a CircuitGraph.

    Runs ``edge_scores`` and ``to_graph``: an edge's weight is the estimated change of the metric
    when that edge alone carries the corrupted run's value (negative: the edge carries the
    behaviour); ``extract`` then keeps a circuit and ``faithfulness`` checks it. Nodes and the
    q/k/v edge layout are described in ``interp.discovery._graph``.

    Arguments:
        method, ig_steps, progress: as for ``edge_scores``.
        qkv: ``"split"`` (a head's q, k and v edges apart, methods ``"EAP:q"`` ...) or ``"sum"``.

    Example:
        >>> graph = eap(model, induction_task(model), method="EAP-IG", ig_steps=5)
        >>> circuit = extract(graph, top_n=30)
        >>> faithfulness(model, task, circuit).values  # zero, mean, resample
    """
    from ._graph import to_graph

    if qkv not in ("split", "sum"):
        raise ValueError(f"qkv={qkv!r} is not accepted; use 'split' or 'sum'")
    scores = edge_scores(model, task, method=method, ig_steps=ig_steps, progress=progress)
    return to_graph(scores, qkv=qkv)
