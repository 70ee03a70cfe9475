"""A forward pass in which every edge is a dial between its own value and its ablated value.

Each receiver reads ``sum_s keep[r, s] * a_s + (1 - keep[r, s]) * a_s(ablated)`` over its senders
``s``: with ``keep`` in ``{0, 1}`` this is ``faithfulness``'s edge ablation (``ablated_metric``)
exactly; with ``keep`` in ``[0, 1]`` it is the relaxation Edge Pruning (Bhaskar et al., 2024)
optimises, and the pass is differentiable in ``keep``. It is written as the run's own residual
stream minus the deviation of the ablated part (``resid - sum_s (1 - keep) (a_s - a_s(ablated))``)
so that a receiver whose edges are all kept reads the run's ``resid_pre`` to the last bit.

Unlike ``ablated_metric`` (one no-grad pass that writes the senders' outputs into one buffer),
this pass keeps each sender group's output as its own tensor, because autograd cannot read a
buffer that later writes change.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..hooks import hook_name, run_with_cache, scoped_hooks
from ..tasks import TaskBatch
from ._edges import EdgeSpace, answer_logits, qkv_from_inputs, sender_hooks, sender_outputs


def masked_answer_logits(
    model, space: EdgeSpace, batch: TaskBatch, ablate: Tensor, reference: Tensor | None
) -> Tensor:
    """Answer logits ``[batch, vocab]`` on the clean prompts, each edge ablated by ``ablate``.

    Arguments:
        model: a HookedTransformer (or TransformerBridge in compatibility mode).
        space: its ``edge_space``.
        batch: the tokenized task; the pass runs on its clean prompts.
        ablate: ``[receiver, sender]`` in ``[0, 1]`` (0: the edge carries this run's value, 1: the
            ablated value; zero where no edge exists); gradients flow back into it.
        reference: the senders' ablated outputs ``[batch or 1, pos, sender, d_model]``, or None
            for zeros.

    Returns:
        The logits; differentiable in ``ablate`` when gradients are enabled.
    """
    mask = ablate.to(device=batch.clean.device, dtype=torch.float32)
    outputs: list[Tensor] = []  # [batch, pos, k, d_model] per sender group, in column order
    resid: dict = {}
    pending: dict[str, Tensor] = {}
    recomputing: list[int] = []

    def deviation(rows: Tensor) -> Tensor:
        """``sum_s rows[r, s] * (current - ablated output of s)``: ``[batch, pos, r, d_model]``."""
        n = rows.shape[1]
        current = torch.cat(outputs, dim=2)[:, :, :n]
        if reference is not None:
            current = current - reference[:, :, :n]
        return rows.to(current.dtype) @ current

    def on_resid_pre(act, hook):
        layer = int(hook.name.split(".")[1])
        resid[layer] = act
        if layer == 0:
            outputs.append(act[:, :, None])
        return act

    def on_qkv(act, hook):
        layer, channel = int(hook.name.split(".")[1]), hook.name[-1]
        if channel == "q":
            n = space.senders_before(layer)
            rows = mask[layer * space.receivers_per_layer : space.mlp_receiver(layer), :n]
            x = resid[layer][:, :, None, :] - deviation(rows)
            q, pending["k"], pending["v"] = qkv_from_inputs(model, layer, x)
            return q
        return pending.pop(channel, act)

    def on_z(act, hook):
        layer = int(hook.name.split(".")[1])
        outputs.append(torch.einsum("bphd,hdm->bphm", act, model.blocks[layer].attn.W_O))
        return act

    def on_resid_mid(act, hook):
        resid[("mid", int(hook.name.split(".")[1]))] = act
        return act

    def on_mlp_out(act, hook):
        if recomputing:  # the MLP run below, on a bridge whose hook_mlp_out is the MLP's own
            return act
        layer = int(hook.name.split(".")[1])
        row = mask[space.mlp_receiver(layer), : space.mlp_sender(layer)]
        x = resid[("mid", layer)] - deviation(row[None])[:, :, 0]
        block = model.blocks[layer]
        recomputing.append(layer)
        try:
            act = block.mlp(block.ln2(x))
        finally:
            recomputing.clear()
        outputs.append(act[:, :, None])
        return act

    def on_final(act, hook):
        return act - deviation(mask[space.logit_receiver][None])[:, :, 0]

    hooks = []
    for layer in range(space.n_layers):
        hooks.append((hook_name(model, "resid_pre", layer), on_resid_pre))
        hooks += [(hook_name(model, c, layer), on_qkv) for c in "qkv"]
        hooks.append((hook_name(model, "z", layer), on_z))
        if space.has_mlp:
            hooks.append((hook_name(model, "resid_mid", layer), on_resid_mid))
            hooks.append((hook_name(model, "mlp_out", layer), on_mlp_out))
    hooks.append((hook_name(model, "resid_post", space.n_layers - 1), on_final))
    with scoped_hooks(model, hooks):
        return answer_logits(model, batch.clean, batch.answer_pos)


def sender_reference(
    model, space: EdgeSpace, batch: TaskBatch, how: str, *, over: Tensor | None = None
) -> Tensor | None:
    """The senders' ablated outputs ``[batch or 1, pos, sender, d_model]`` for ablation ``how``.

    ``"zero"``: None (zeros); ``"resample"``: the outputs on the paired corrupted prompts;
    ``"mean"``: the per-position mean over ``over`` (token ids ``[n, pos]``, the reference
    distribution), by default over the task's clean and corrupted prompts as ``faithfulness``
    takes it.
    """
    if how == "zero":
        return None
    if how == "resample":
        tokens = batch.corrupted
    elif over is None:
        tokens = torch.cat([batch.clean, batch.corrupted])
    else:
        tokens = over.to(batch.clean.device)
        if tokens.dim() != 2 or tokens.shape[1] != batch.clean.shape[1]:
            raise ValueError(
                f"the mean-ablation reference must be token ids [n, {batch.clean.shape[1]}] (the "
                f"task's prompt length, since the mean is taken per position), got "
                f"{tuple(tokens.shape)}"
            )
    with torch.no_grad():
        out = sender_outputs(
            model, space, run_with_cache(model, tokens, sender_hooks(model, space))[1]
        )
    return out if how == "resample" else out.mean(0, keepdim=True)
