"""EAP-IG-activations (Hanna et al., 2024): every component's output interpolated between the
corrupted and the clean run, the receivers' input gradients read there.

Checked against a reference written on plain TransformerLens hooks: per-head ``q``/``k``/``v``
inputs (``use_split_qkv_input``), the MLP input (``hook_mlp_in``) and the final residual stream
each get ``eps * delta`` of every sender, and the gradient with respect to ``eps`` at each step
is the edge's score (averaged over the steps).
"""

from __future__ import annotations

import torch
from tiny_models import tiny_model

from interp.discovery import edge_scores, edge_space
from interp.tasks import Task

STEPS = 3


def _task() -> Task:
    gen = torch.Generator().manual_seed(1)
    clean = torch.randint(0, 50, (3, 8), generator=gen)
    corrupted = torch.randint(0, 50, (3, 8), generator=gen)
    return Task(clean, corrupted, answers=torch.arange(3), wrong_answers=torch.arange(3) + 10)


def _reference(model, task: Task, steps: int) -> dict[str, torch.Tensor]:
    """Scores by the definition, one autograd pass per step, on plain hooks."""
    cfg = model.cfg
    n_layers, n_heads = cfg.n_layers, cfg.n_heads
    names = ["blocks.0.hook_resid_pre"]
    names += [f"blocks.{la}.attn.hook_z" for la in range(n_layers)]
    names += [f"blocks.{la}.hook_mlp_out" for la in range(n_layers)]
    caches = {}
    for key, tokens in (("clean", task.clean), ("corrupted", task.corrupted)):
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        caches[key] = {n: cache[n] for n in names}

    def outputs(c):  # [sender, batch, pos, d_model]: input, then each layer's heads and MLP
        out = [c["blocks.0.hook_resid_pre"]]
        for la in range(n_layers):
            z = c[f"blocks.{la}.attn.hook_z"]
            out += [z[:, :, h] @ model.W_O[la, h] for h in range(n_heads)]
            out += [c[f"blocks.{la}.hook_mlp_out"]]
        return torch.stack(out)

    delta = outputs(caches["corrupted"]) - outputs(caches["clean"])
    total = {k: 0.0 for k in ("q", "k", "v", "mlp", "logits")}
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    try:
        for k in range(steps, 0, -1):
            for key, g in _step(model, task, caches, delta, k / steps).items():
                total[key] = total[key] + g / steps
    finally:
        model.set_use_split_qkv_input(False)
        model.set_use_hook_mlp_in(False)
    return total


def _step(model, task: Task, caches: dict, delta: torch.Tensor, alpha: float) -> dict:
    """d metric / d eps at one point ``alpha`` of the path, every output pinned there."""
    n_layers, n_heads, n_send = model.cfg.n_layers, model.cfg.n_heads, delta.shape[0]
    eps = {c: torch.zeros(n_layers, n_heads, n_send, dtype=delta.dtype) for c in "qkv"}
    eps["mlp"] = torch.zeros(n_layers, n_send, dtype=delta.dtype)
    eps["logits"] = torch.zeros(n_send, dtype=delta.dtype)
    for e in eps.values():
        e.requires_grad_(True)

    def between(name):
        clean, corr = caches["clean"][name], caches["corrupted"][name]
        return corr + alpha * (clean - corr)

    def pin(act, hook):
        return act + (between(hook.name) - act).detach()

    def add_heads(act, hook):
        layer, channel = hook.layer(), hook.name.split("hook_")[-1][0]
        return act + torch.einsum("hs,sbpd->bphd", eps[channel][layer], delta)

    def add_mlp(act, hook):
        return act + torch.einsum("s,sbpd->bpd", eps["mlp"][hook.layer()], delta)

    def add_logits(act, hook):
        return act + torch.einsum("s,sbpd->bpd", eps["logits"], delta)

    hooks = [("blocks.0.hook_resid_pre", lambda act, hook: between(hook.name))]
    for la in range(n_layers):
        hooks += [(f"blocks.{la}.attn.hook_z", pin), (f"blocks.{la}.hook_mlp_out", pin)]
        hooks += [(f"blocks.{la}.hook_{c}_input", add_heads) for c in "qkv"]
        hooks += [(f"blocks.{la}.hook_mlp_in", add_mlp)]
    hooks += [(f"blocks.{n_layers - 1}.hook_resid_post", add_logits)]
    logits = model.run_with_hooks(task.clean, fwd_hooks=hooks)[:, -1]
    rows = torch.arange(len(task.answers))
    metric = (logits[rows, task.answers] - logits[rows, task.wrong_answers]).mean()
    grads = torch.autograd.grad(metric, list(eps.values()))
    return dict(zip(eps, grads, strict=True))


def test_eap_ig_activations_equals_its_definition_on_plain_hooks():
    model = tiny_model(0, dtype=torch.float64)
    task = _task()
    got = edge_scores(model, task, method="EAP-IG-activations", ig_steps=STEPS)
    ref = _reference(model, task, STEPS)
    space = edge_space(model)
    for layer in range(space.n_layers):
        n = space.senders_before(layer)
        for head in range(space.n_heads):
            for c in "qkv":
                row = got.values[space.head_receiver(layer, head, c), :n].double()
                torch.testing.assert_close(row, ref[c][layer, head, :n], rtol=1e-5, atol=1e-6)
        row = got.values[space.mlp_receiver(layer), : space.mlp_sender(layer)].double()
        torch.testing.assert_close(
            row, ref["mlp"][layer, : space.mlp_sender(layer)], rtol=1e-5, atol=1e-6
        )
    torch.testing.assert_close(
        got.values[space.logit_receiver].double(), ref["logits"], rtol=1e-5, atol=1e-6
    )
    assert got.provenance["method"] == "EAP-IG-activations" and got.provenance["ig_steps"] == STEPS


def test_one_step_is_eap_and_more_steps_differ_from_the_inputs_variant():
    model = tiny_model(0, dtype=torch.float64)
    task = _task()
    eap = edge_scores(model, task, method="EAP").values
    one = edge_scores(model, task, method="EAP-IG-activations", ig_steps=1).values
    torch.testing.assert_close(one, eap, equal_nan=True)
    acts = edge_scores(model, task, method="EAP-IG-activations", ig_steps=STEPS).values
    inputs = edge_scores(model, task, method="EAP-IG", ig_steps=STEPS).values
    valid = ~acts.isnan()
    assert (acts[valid] - inputs[valid]).abs().max() > 1e-3
