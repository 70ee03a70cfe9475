"""The edge space of a model: which component writes to which component's input.

Senders, in the order of their columns: the input (``blocks.0.hook_resid_pre``: token plus
position embeddings), then per layer each head's output ``z_h @ W_O[h]`` and the MLP's output.
Receivers, in the order of their rows: per layer the query, key and value inputs of each head
(channel-major: ``q`` of heads 0..H-1, then ``k``, then ``v``), then the MLP's input; last the
logits (the final residual stream). Under grouped-query attention the keys and values are one
per key/value head (``hook_k``'s heads), shared by the query heads of its group. A head reads every sender of earlier layers; the MLP of layer
``l`` also reads the heads of layer ``l``; the logits read everything.

A receiver's input is the sum of its senders' outputs plus biases. The engines here never change
the model's configuration: a head's own copy of its input is recomputed from ``resid_pre`` with
the model's own ``ln1`` and ``W_Q``/``W_K``/``W_V`` (checked against ``hook_q`` on every run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapter import adapter
from ..hooks import hook_name
from ..metrics import read_positions

CHANNELS = ("q", "k", "v")


@dataclass(frozen=True)
class EdgeSpace:
    """Senders (columns) and receivers (rows) of a model's component graph.

    ``n_kv_heads`` is the number of key/value heads ``hook_k``/``hook_v`` carry (``None``: one
    per query head). Under grouped-query attention a layer has one query receiver per query head
    and one key and one value receiver per key/value group: query head ``h`` reads the key and
    value of group ``h // (n_heads // n_kv_heads)``.
    """

    n_layers: int
    n_heads: int
    has_mlp: bool
    n_kv_heads: int | None = None

    @property
    def kv_heads(self) -> int:
        """Key/value receivers per layer and channel."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def grouped(self) -> bool:
        return self.kv_heads != self.n_heads

    def group_of(self, head: int) -> int:
        """The key/value group query head ``head`` reads."""
        return head // (self.n_heads // self.kv_heads)

    def heads_of(self, group: int) -> range:
        """The query heads that read key/value group ``group``."""
        size = self.n_heads // self.kv_heads
        return range(group * size, (group + 1) * size)

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
    def head_receivers(self) -> int:
        """Attention receivers per layer: ``q`` per query head, ``k`` and ``v`` per group."""
        return self.n_heads + 2 * self.kv_heads

    @property
    def receivers_per_layer(self) -> int:
        return self.head_receivers + int(self.has_mlp)

    @property
    def n_receivers(self) -> int:
        return self.n_layers * self.receivers_per_layer + 1

    def kv_receiver(self, layer: int, group: int, channel: str) -> int:
        """The row of key/value group ``group``'s ``channel`` (``"k"`` or ``"v"``) input."""
        base = layer * self.receivers_per_layer + self.n_heads
        return base + (channel == "v") * self.kv_heads + group

    def head_receiver(self, layer: int, head: int, channel: str) -> int:
        """The row query head ``head`` reads ``channel`` through (its group's, for k and v)."""
        if channel not in CHANNELS:
            raise ValueError(f"channel={channel!r} is not one of {CHANNELS}")
        if channel == "q":
            return layer * self.receivers_per_layer + head
        return self.kv_receiver(layer, self.group_of(head), channel)

    def mlp_receiver(self, layer: int) -> int:
        return layer * self.receivers_per_layer + self.head_receivers

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
        """``"L1H0.q"``; keys and values ``"L1H0.k"``, or ``"L1G0.k"`` for a group under GQA."""
        kv = "G" if self.grouped else "H"
        labels = []
        for layer in range(self.n_layers):
            labels += [f"L{layer}H{h}.q" for h in range(self.n_heads)]
            labels += [f"L{layer}{kv}{g}.{c}" for c in "kv" for g in range(self.kv_heads)]
            labels += [f"MLP{layer}"] if self.has_mlp else []
        return labels + ["logits"]

    def provenance(self) -> dict:
        return {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "has_mlp": self.has_mlp,
            "n_kv_heads": self.kv_heads,
        }

    @classmethod
    def from_provenance(cls, info: dict) -> EdgeSpace:
        n_heads = int(info["n_heads"])
        kv = int(info.get("n_kv_heads") or n_heads)
        return cls(
            int(info["n_layers"]), n_heads, bool(info["has_mlp"]), None if kv == n_heads else kv
        )


def edge_space(model) -> EdgeSpace:
    """The edge space of ``model``; fails on architectures the engines do not model exactly."""
    cfg = model.cfg
    n_kv = cfg.n_key_value_heads or cfg.n_heads
    if getattr(cfg, "ungroup_grouped_query_attention", False):
        n_kv = cfg.n_heads  # hook_k / hook_v carry one (repeated) key and value per query head
    unsupported = {
        "parallel attention and MLP": getattr(cfg, "parallel_attn_mlp", False),
        "shortformer positions": cfg.positional_embedding_type == "shortformer",
        "normalisation before and after": getattr(cfg, "use_normalization_before_and_after", False),
        "key/value heads that do not divide the query heads": cfg.n_heads % n_kv != 0,
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
    return EdgeSpace(
        cfg.n_layers, cfg.n_heads, not cfg.attn_only, None if n_kv == cfg.n_heads else n_kv
    )


_POST_NORM = {"Olmo2ForCausalLM", "Olmo3ForCausalLM"}


def qkv_weights(model, layer: int) -> list[tuple[Tensor, Tensor | None]]:
    """``(W, b)`` of the query, key and value maps of ``layer``, one slice per hook head.

    Queries have ``n_heads`` slices; keys and values as many as ``hook_k`` carries: the stored
    (un-repeated) key/value heads under grouped-query attention, where HookedTransformer's
    ``W_K`` repeats them per query head and the bridge's ``W_K`` does not.
    """
    attn = model.blocks[layer].attn
    cfg = model.cfg
    n_kv = edge_space(model).kv_heads
    out = []
    for name, want in (("Q", cfg.n_heads), ("K", n_kv), ("V", n_kv)):
        pair = []
        for kind in ("W", "b"):
            x = getattr(attn, f"_{kind}_{name}", None)  # HookedTransformer GQA: un-repeated
            if x is None or x.shape[0] != want:
                x = getattr(attn, f"{kind}_{name}", None)
            if x is not None and x.shape[0] != want:
                if want % x.shape[0] == 0:
                    x = x.repeat_interleave(want // x.shape[0], dim=0)
                elif x.shape[0] % want == 0:
                    x = x[:: x.shape[0] // want]
            pair.append(x)
        out.append((pair[0], pair[1]))
    return out


def qkv_from_inputs(model, layer: int, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Queries ``[batch, pos, head, d_head]``, keys and values ``[batch, pos, kv_head, d_head]``
    (the shapes of ``hook_q``/``hook_k``/``hook_v``) from per-receiver inputs.

    ``inputs`` is ``[batch, pos, receiver, d_model]``, receivers in the edge space's order: the
    residual stream each query head, then each key and each value head reads (before ``ln1``).
    This is what the model computes with every input equal to resid_pre.
    """
    normed = model.blocks[layer].ln1(inputs)
    out, start = [], 0
    for w, b in qkv_weights(model, layer):
        n = w.shape[0]
        x = torch.einsum("bphm,hmd->bphd", normed[:, :, start : start + n], w)
        out.append(x if b is None else x + b)
        start += n
    return out[0], out[1], out[2]


def head_input_grads(model, layer: int, resid_pre: Tensor, grads: list[Tensor]) -> Tensor:
    """Gradients at each attention receiver's own input, from the gradients at ``hook_q/k/v``.

    Returns ``[receiver, batch * pos * d_model]`` (rows as the layer's attention receivers: q
    per query head, then k and v per key/value head), the vector-Jacobian product of ``ln1`` and
    ``W_Q``/``W_K``/``W_V`` at ``resid_pre`` (at this run's normalisation scale).
    """
    b, p, d = resid_pre.shape
    weights = qkv_weights(model, layer)
    n = sum(w.shape[0] for w, _ in weights)
    with torch.enable_grad():
        x = resid_pre.detach()[None].expand(n, b, p, d).clone().requires_grad_(True)
        normed = model.blocks[layer].ln1(x)
        out, start = [], 0
        for w, _ in weights:
            k = w.shape[0]
            out.append(torch.einsum("hbpm,hmd->bphd", normed[start : start + k], w))
            start += k
        (grad,) = torch.autograd.grad(out, x, [g.detach() for g in grads])
    return grad.reshape(n, b * p * d)


def answer_logits(model, tokens: Tensor, pos: int | Tensor) -> Tensor:
    """Logits ``[batch, vocab]`` at the answer positions only (a task's ``answer_pos``: one
    for all prompts, or ``[batch]``; ``[batch, m, vocab]`` for ``[batch, m]``)."""
    if not adapter(model).is_hooked:  # a TransformerBridge runs on past stop_at_layer=n_layers
        return read_positions(model(tokens), pos)
    resid = read_positions(model(tokens, stop_at_layer=model.cfg.n_layers), pos)
    flat = resid.reshape(resid.shape[0], -1, resid.shape[-1])  # [batch, 1 or m, d_model]
    if getattr(model.cfg, "normalization_type", None) is not None:
        flat = model.ln_final(flat)
    logits = model.unembed(flat)
    return logits[:, 0] if resid.dim() == 2 else logits


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
