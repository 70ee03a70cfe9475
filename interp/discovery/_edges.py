"""The edge space of a model: which component writes to which component's input.

Senders, in the order of their columns: the input (``blocks.0.hook_resid_pre``: token plus
position embeddings), then per layer each head's output ``z_h @ W_O[h]`` and the MLP's output.
Receivers, in the order of their rows: per layer the query, key and value inputs of each head
(channel-major: ``q`` of heads 0..H-1, then ``k``, then ``v``), then the MLP's input; last the
logits (the final residual stream). A head reads every sender of earlier layers; the MLP of layer
``l`` also reads the heads of layer ``l``; the logits read everything.

A receiver's input is the sum of its senders' outputs plus biases. The engines here never change
the model's configuration: a head's own copy of its input is recomputed from ``resid_pre`` with
the model's own ``ln1`` and ``W_Q``/``W_K``/``W_V`` (checked against ``hook_q`` on every run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..hooks import hook_name

CHANNELS = ("q", "k", "v")


@dataclass(frozen=True)
class EdgeSpace:
    """Senders (columns) and receivers (rows) of a model's component graph."""

    n_layers: int
    n_heads: int
    has_mlp: bool

    @property
    def per_layer(self) -> int:
        """Senders each layer adds: its heads, then its MLP."""
        return self.n_heads + int(self.has_mlp)

    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * self.per_layer

    def head_sender(self, layer: int, head: int) -> int:
        return 1 + layer * self.per_layer + head

    def mlp_sender(self, layer: int) -> int:
        return 1 + layer * self.per_layer + self.n_heads

    def senders_before(self, layer: int) -> int:
        """How many senders come before layer ``layer``: what its heads read."""
        return 1 + layer * self.per_layer

    @property
    def receivers_per_layer(self) -> int:
        return 3 * self.n_heads + int(self.has_mlp)

    @property
    def n_receivers(self) -> int:
        return self.n_layers * self.receivers_per_layer + 1

    def head_receiver(self, layer: int, head: int, channel: str) -> int:
        return layer * self.receivers_per_layer + CHANNELS.index(channel) * self.n_heads + head

    def mlp_receiver(self, layer: int) -> int:
        return layer * self.receivers_per_layer + 3 * self.n_heads

    @property
    def logit_receiver(self) -> int:
        return self.n_receivers - 1

    def reads(self) -> Tensor:
        """Boolean ``[receiver, sender]``: which edges exist."""
        valid = torch.zeros(self.n_receivers, self.n_senders, dtype=torch.bool)
        for layer in range(self.n_layers):
            rows = slice(layer * self.receivers_per_layer, self.mlp_receiver(layer))
            valid[rows, : self.senders_before(layer)] = True
            if self.has_mlp:
                valid[self.mlp_receiver(layer), : self.mlp_sender(layer)] = True
        valid[self.logit_receiver] = True
        return valid

    def sender_labels(self) -> list[str]:
        labels = ["input"]
        for layer in range(self.n_layers):
            labels += [f"L{layer}H{h}" for h in range(self.n_heads)]
            labels += [f"MLP{layer}"] if self.has_mlp else []
        return labels

    def receiver_labels(self) -> list[str]:
        labels = []
        for layer in range(self.n_layers):
            labels += [f"L{layer}H{h}.{c}" for c in CHANNELS for h in range(self.n_heads)]
            labels += [f"MLP{layer}"] if self.has_mlp else []
        return labels + ["logits"]


def edge_space(model) -> EdgeSpace:
    """The edge space of ``model``; fails on architectures the engines do not model exactly."""
    cfg = model.cfg
    unsupported = {
        "parallel attention and MLP": getattr(cfg, "parallel_attn_mlp", False),
        "shortformer positions": cfg.positional_embedding_type == "shortformer",
        "normalisation before and after": getattr(cfg, "use_normalization_before_and_after", False),
        "grouped-query attention": (cfg.n_key_value_heads or cfg.n_heads) != cfg.n_heads,
        "split q/k/v inputs already on": getattr(cfg, "use_split_qkv_input", False),
        "attention inputs already split": getattr(cfg, "use_attn_in", False),
        "post-norm blocks": getattr(cfg, "original_architecture", "") in _POST_NORM,
    }
    bad = [name for name, on in unsupported.items() if on]
    if bad:
        raise NotImplementedError(
            f"component circuits do not model {', '.join(bad)} ({cfg.model_name}): each head's "
            "q/k/v input must be ln1(resid_pre) of its own layer"
        )
    return EdgeSpace(cfg.n_layers, cfg.n_heads, not cfg.attn_only)


_POST_NORM = {"Olmo2ForCausalLM", "Olmo3ForCausalLM"}


def qkv_from_inputs(model, layer: int, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Queries, keys and values ``[batch, pos, head, d_head]`` from per-head inputs.

    ``inputs`` is ``[batch, pos, 3, head, d_model]``: the residual stream each head's q, k and v
    read (before ``ln1``). This is what the model computes with every input equal to resid_pre.
    """
    attn = model.blocks[layer].attn
    normed = model.blocks[layer].ln1(inputs)
    out = []
    for c, name in enumerate("QKV"):
        x = torch.einsum("bphm,hmd->bphd", normed[:, :, c], getattr(attn, f"W_{name}"))
        bias = getattr(attn, f"b_{name}", None)
        out.append(x if bias is None else x + bias)
    return out[0], out[1], out[2]


def head_input_grads(model, layer: int, resid_pre: Tensor, grads: list[Tensor]) -> Tensor:
    """Gradients at each head's own q/k/v input, from the gradients at ``hook_q/k/v``.

    Returns ``[3 * head, batch * pos * d_model]`` (rows channel-major, as the receivers), the
    vector-Jacobian product of ``ln1`` and ``W_Q``/``W_K``/``W_V`` at ``resid_pre`` (at this
    run's normalisation scale).
    """
    b, p, d = resid_pre.shape
    h = model.cfg.n_heads
    attn = model.blocks[layer].attn
    with torch.enable_grad():
        x = resid_pre.detach()[None, None].expand(3, h, b, p, d).clone().requires_grad_(True)
        normed = model.blocks[layer].ln1(x)
        qkv = [
            torch.einsum("hbpm,hmd->bphd", normed[c], getattr(attn, f"W_{name}"))
            for c, name in enumerate("QKV")
        ]
        (grad,) = torch.autograd.grad(qkv, x, [g.detach() for g in grads])
    return grad.reshape(3 * h, b * p * d)


def answer_logits(model, tokens: Tensor, pos: int) -> Tensor:
    """Logits ``[batch, vocab]`` at position ``pos`` only (the unembedding of one position)."""
    from transformer_lens import HookedTransformer

    if not isinstance(model, HookedTransformer):
        return model(tokens)[:, pos]
    resid = model(tokens, stop_at_layer=model.cfg.n_layers)[:, pos : pos + 1]
    if getattr(model.cfg, "normalization_type", None) is not None:
        resid = model.ln_final(resid)
    return model.unembed(resid)[:, 0]


def sender_outputs(model, space: EdgeSpace, cache: dict[str, Tensor]) -> Tensor:
    """Every sender's output ``[batch, pos, sender, d_model]`` from a cache of ``sender_hooks``."""
    parts = [cache[hook_name(model, "resid_pre", 0)][:, :, None]]
    for layer in range(space.n_layers):
        z = cache[hook_name(model, "z", layer)]
        parts.append(torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O))
        if space.has_mlp:
            parts.append(cache[hook_name(model, "mlp_out", layer)][:, :, None])
    return torch.cat(parts, dim=2)


def sender_hooks(model, space: EdgeSpace) -> list[str]:
    """The hooks ``sender_outputs`` reads."""
    names = [hook_name(model, "resid_pre", 0)]
    for layer in range(space.n_layers):
        names.append(hook_name(model, "z", layer))
        if space.has_mlp:
            names.append(hook_name(model, "mlp_out", layer))
    return names
