"""Faithfulness: how much of the task's behaviour a circuit carries on its own.

Every edge outside the circuit is ablated: its receiver sees the sender's *ablated* output instead
of the one it has in this run, while the edges of the circuit carry the run's own values. The run
is on the clean prompts, so

    faithfulness = (m(circuit) - m(corrupted)) / (m(clean) - m(corrupted))

is the fraction of the clean-vs-corrupted metric difference the circuit recovers: 1 for the whole
model, 0 for the empty circuit under resample ablation (every receiver then reads the corrupted
run's outputs, which is the corrupted run). Three ablations, reported side by side because they
disagree, sometimes widely:

- ``zero``: the sender's output is replaced by zeros;
- ``mean``: by its mean over the task's clean and corrupted prompts (per position);
- ``resample``: by its output on the paired corrupted prompt.

The ablation is per edge, also for heads: a head's query, key and value inputs are recomputed
from its own copy of the residual stream (its ``ln1`` and ``W_Q``/``W_K``/``W_V``), so an edge
into a head's key leaves its query untouched. Under grouped-query attention a key/value head has
one copy, shared by the query heads of its group.
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..hooks import hook_name, locked, run_with_cache, scoped_hooks
from ..models import provenance
from ..result import Result
from ..tasks import Task, TaskBatch
from ._edges import (
    EdgeSpace,
    answer_logits,
    edge_space,
    qkv_from_inputs,
    sender_hooks,
    sender_outputs,
)

ABLATIONS = ("zero", "mean", "resample")


def check_ablations(ablations) -> tuple[str, ...]:
    if isinstance(ablations, str):
        ablations = (ablations,)
    ablations = tuple(ablations)
    bad = [a for a in ablations if a not in ABLATIONS]
    if bad or not ablations or len(set(ablations)) != len(ablations):
        raise ValueError(
            f"ablations={ablations!r} is not accepted; give distinct names from {ABLATIONS}"
        )
    return ablations


@locked
def faithfulness(
    model,
    task: Task | TaskBatch,
    circuit,
    ablations: tuple[str, ...] | str = ABLATIONS,
    *,
    progress: bool = False,
) -> Result:
    """The fraction of the clean-vs-corrupted metric difference ``circuit`` recovers.

    Arguments:
        model: the model the circuit was found in.
        task: clean/corrupted prompts and the metric.
        circuit: a CircuitGraph of component nodes (``eap`` / ``extract`` output), or a boolean
            ``[receiver, sender]`` tensor of kept edges (the layout of ``edge_scores``); a
            position-aware circuit as a ``[receiver, sender, pos]`` tensor or the graph of
            ``extract_positional`` (nodes with ``pos``).
        ablations: any of ``"zero"``, ``"mean"``, ``"resample"``.
        progress: show a progress bar over the ablated runs (two per ablation).

    Returns:
        Result ``[ablation]`` of faithfulness values; provenance holds the raw metric of the
        circuit and of the empty circuit under each ablation, the clean and corrupted metrics
        and the circuit's size.
    """
    ablations = check_ablations(ablations)
    space = edge_space(model)
    batch = task.tokens(model) if isinstance(task, Task) else task
    kept, size = _kept_edges(space, circuit, batch.clean.shape[1])
    clean_metric, corrupted_metric = batch.baseline(model)
    valid = space.reads()
    clean_out, corrupted_out = (
        sender_outputs(model, space, run_with_cache(model, tokens, sender_hooks(model, space))[1])
        for tokens in (batch.clean, batch.corrupted)
    )
    values, raw, empty = [], {}, {}
    bar = tqdm(total=2 * len(ablations), desc="faithfulness", disable=not progress, leave=False)
    for how in ablations:
        if how == "zero":
            reference = None
        elif how == "mean":
            reference = torch.cat([clean_out, corrupted_out]).mean(0, keepdim=True)
        else:
            reference = corrupted_out
        ablate = (valid[..., None] if kept.dim() == 3 else valid) & ~kept
        raw[how] = ablated_metric(model, space, batch, ablate, reference)
        bar.update()
        empty[how] = ablated_metric(model, space, batch, valid, reference)
        bar.update()
        values.append((raw[how] - corrupted_metric) / (clean_metric - corrupted_metric))
    bar.close()
    return Result(
        torch.tensor(values, dtype=torch.float32),
        ("ablation",),
        f"faithfulness ({batch.metric} recovered)",
        {"ablation": list(ablations)},
        {
            "model": provenance(model),
            "task": batch.task.name,
            "method": "faithfulness",
            "metric": batch.metric,
            "clean_metric": clean_metric,
            "corrupted_metric": corrupted_metric,
            "circuit_metric": raw,
            "empty_circuit_metric": empty,
            **size,
            "model_edges": int(valid.sum()),
        },
    )


def _kept_edges(space: EdgeSpace, circuit, n_pos: int | None = None) -> tuple[Tensor, dict]:
    """Boolean ``[receiver, sender]`` of the circuit's edges, and the circuit's size; with
    ``n_pos`` (the prompts' length) also ``[receiver, sender, pos]`` for a positional circuit."""
    if isinstance(circuit, Tensor):
        shapes = [(space.n_receivers, space.n_senders)]
        accepted = f"bool [{space.n_receivers}, {space.n_senders}] (receiver, sender)"
        if n_pos is not None:
            shapes.append((space.n_receivers, space.n_senders, n_pos))
            accepted += f" or [{space.n_receivers}, {space.n_senders}, {n_pos}] (..., pos)"
        if circuit.shape not in shapes or circuit.dtype != torch.bool:
            raise ValueError(
                f"circuit as a tensor must be {accepted}, "
                f"got {circuit.dtype} {tuple(circuit.shape)}"
            )
        valid = space.reads()
        kept = circuit.cpu() & (valid[..., None] if circuit.dim() == 3 else valid)
        return kept, {"circuit_channel_edges": int(kept.sum())}
    from ._graph import graph_edges_to_mask
    from ._positions import positional_edges_to_mask

    if n_pos is not None and any(node.pos is not None for node in circuit.nodes):
        kept = positional_edges_to_mask(space, circuit, n_pos)
    else:
        kept = graph_edges_to_mask(space, circuit)
    return kept, {
        "circuit_edges": int(circuit.n_edges),
        "circuit_nodes": len(circuit.nodes),
        "circuit_channel_edges": int(kept.sum()),
    }


@locked
def ablated_metric(
    model, space: EdgeSpace, batch: TaskBatch, ablate: Tensor, reference: Tensor | None
) -> float:
    """The metric on the clean prompts with the edges ``ablate`` (``[receiver, sender]``) ablated.

    ``reference`` is the senders' ablated outputs ``[batch or 1, pos, sender, d_model]``, or None
    for zeros. ``ablate`` may also be ``[receiver, sender, pos]``: edge ``s -> r`` is then ablated
    at position ``p`` only, where ``r``'s input at ``p`` reads the reference of ``s`` at ``p``
    (position-aware circuits, ``interp.discovery._positions``).
    """
    if ablate.dim() == 3 and ablate.shape[2] != batch.clean.shape[1]:
        raise ValueError(
            f"ablate has {ablate.shape[2]} positions but the prompts have {batch.clean.shape[1]}"
        )
    mask = ablate.to(device=batch.clean.device, dtype=torch.float32)
    n_layers = space.n_layers
    outputs: list[Tensor] = []  # one [batch, pos, sender, d_model] buffer of this run's outputs
    filled = [0]
    resid: dict[int, Tensor] = {}
    pending: dict[str, Tensor] = {}
    recomputing: list[int] = []

    def record(out: Tensor) -> None:
        """Write the next senders' outputs ``[batch, pos, k, d_model]`` into the buffer."""
        if not outputs:
            b, p, _, d = out.shape
            outputs.append(out.new_empty(b, p, space.n_senders, d))
        k = out.shape[2]
        outputs[0][:, :, filled[0] : filled[0] + k] = out
        filled[0] += k

    def deviation(rows: Tensor) -> Tensor:
        """``sum_s rows[r, s] * (current - ablated output of sender s)``: ``[batch, pos, r, d]``
        for ``rows`` ``[r, n]`` (or ``[r, n, pos]``) over the first ``n`` senders."""
        n = rows.shape[1]
        current = outputs[0][:, :, :n]  # each (batch, pos) an [n, d_model] matrix: no copy
        if rows.dim() == 3:  # one [r, n] matrix per position
            out = torch.einsum("rnp,bpnd->bprd", rows.to(current.dtype), current)
            if reference is not None:
                ref = reference[:, :, :n]
                out = out - torch.einsum("rnp,bpnd->bprd", rows.to(ref.dtype), ref)
            return out
        out = rows.to(current.dtype) @ current
        if reference is not None:
            out = out - rows.to(reference.dtype) @ reference[:, :, :n]
        return out

    def on_resid_pre(act, hook):
        layer = int(hook.name.split(".")[1])
        resid[layer] = act
        if layer == 0:
            record(act[:, :, None])
        return act

    def on_qkv(act, hook):
        layer, channel = int(hook.name.split(".")[1]), hook.name[-1]
        if channel == "q":
            n = space.senders_before(layer)
            rows = mask[layer * space.receivers_per_layer : space.mlp_receiver(layer), :n]
            if not rows.any():
                return act
            x = resid[layer][:, :, None, :] - deviation(rows)
            q, pending["k"], pending["v"] = qkv_from_inputs(model, layer, x)
            return q
        return pending.pop(channel, act)

    def on_z(act, hook):
        layer = int(hook.name.split(".")[1])
        record(torch.einsum("bphd,hdm->bphm", act, model.blocks[layer].attn.W_O))
        return act

    def on_resid_mid(act, hook):
        resid[("mid", int(hook.name.split(".")[1]))] = act
        return act

    def on_mlp_out(act, hook):
        if recomputing:  # the MLP run below, on a bridge whose hook_mlp_out is the MLP's own
            return act
        layer = int(hook.name.split(".")[1])
        n = space.mlp_sender(layer)
        row = mask[space.mlp_receiver(layer), :n]
        if row.any():
            x = resid[("mid", layer)] - deviation(row[None])[:, :, 0]
            block = model.blocks[layer]
            recomputing.append(layer)
            try:
                act = block.mlp(block.ln2(x))
            finally:
                recomputing.clear()
        record(act[:, :, None])
        return act

    def on_final(act, hook):
        row = mask[space.logit_receiver]
        if not row.any():
            return act
        return act - deviation(row[None])[:, :, 0]

    hooks = []
    for layer in range(n_layers):
        hooks.append((hook_name(model, "resid_pre", layer), on_resid_pre))
        hooks += [(hook_name(model, c, layer), on_qkv) for c in "qkv"]
        hooks.append((hook_name(model, "z", layer), on_z))
        if space.has_mlp:
            hooks.append((hook_name(model, "resid_mid", layer), on_resid_mid))
            hooks.append((hook_name(model, "mlp_out", layer), on_mlp_out))
    hooks.append((hook_name(model, "resid_post", n_layers - 1), on_final))
    with scoped_hooks(model, hooks), torch.no_grad():
        logits = answer_logits(model, batch.clean, batch.answer_pos)
    return float(batch.score(logits[None])[0])
