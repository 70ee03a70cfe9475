"""A resumable forward pass of a HookedTransformer, for engines that run many patched copies.

``resume(model, x, layer, start, prefix_kv, patch)`` runs blocks ``layer..`` on the residual
stream ``x`` of positions ``start..`` only, reading the keys and values of positions ``< start``
from ``prefix_kv`` (they cannot change: attention is causal). ``patch(site, act)`` is called at
each patch point of the first block, at the places TransformerLens's hooks sit (``resid_pre``,
``q``, ``k``, ``v`` before rotary, ``pattern``, ``z``, ``result``, ``attn_out``, ``resid_mid``,
``mlp_out``, ``resid_post``), so the numbers equal those of a hooked TransformerLens run.

Why not call TransformerLens's blocks: its attention reshapes its weights on every call (and its
unembed copies ``W_U``), which costs more than the arithmetic for the small batches of a sweep.
Here the attention weights are fused once per model and cached. Architectures this does not cover
(parallel attention and MLP, soft-capped scores, local attention, split q/k/v inputs) make
``supported(model)`` False and engines fall back to hooked full passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PatchFn = Callable[[str, Tensor], Tensor]


def supported(model) -> bool:
    """Whether ``resume`` computes exactly what ``model``'s own forward pass computes."""
    from transformer_lens import HookedTransformer

    if not isinstance(model, HookedTransformer):
        return False
    cfg = model.cfg
    unsupported = [
        cfg.positional_embedding_type not in ("standard", "rotary"),
        cfg.parallel_attn_mlp,
        getattr(cfg, "use_local_attn", False),
        (getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) > 0,
        getattr(cfg, "use_split_qkv_input", False),
        getattr(cfg, "use_attn_in", False),
        getattr(cfg, "use_normalization_before_and_after", False),
        getattr(cfg, "use_qk_norm", False),
        cfg.attn_only,
        cfg.n_devices != 1,
    ]
    return not any(unsupported)


@dataclass
class _Fused:
    w_qkv: Tensor  # d_model x (n_heads + 2 n_kv) d_head
    b_qkv: Tensor
    w_o: Tensor  # n_heads d_head x d_model
    b_o: Tensor


def _fused(model, layer: int) -> _Fused:
    """The attention weights of ``layer`` as contiguous matrices, cached on the model."""
    cache = model.__dict__.setdefault("_interp_fused", {})
    attn = model.blocks[layer].attn
    key = (layer, attn.W_Q.data_ptr(), attn.W_Q._version)
    if key not in cache:
        cfg = model.cfg
        n_kv = cfg.n_key_value_heads or cfg.n_heads
        wk = attn._W_K if hasattr(attn, "_W_K") else attn.W_K
        wv = attn._W_V if hasattr(attn, "_W_V") else attn.W_V
        bk = attn._b_K if hasattr(attn, "_b_K") else attn.b_K
        bv = attn._b_V if hasattr(attn, "_b_V") else attn.b_V
        flat = lambda w: w.detach().permute(1, 0, 2).reshape(cfg.d_model, -1)  # noqa: E731
        cache[key] = _Fused(
            w_qkv=torch.cat([flat(attn.W_Q), flat(wk), flat(wv)], dim=1).contiguous(),
            b_qkv=torch.cat(
                [attn.b_Q.detach().reshape(-1), bk.detach().reshape(-1), bv.detach().reshape(-1)]
            ),
            w_o=attn.W_O.detach().reshape(cfg.n_heads * cfg.d_head, cfg.d_model).contiguous(),
            b_o=attn.b_O.detach(),
        )
        assert n_kv * cfg.d_head == wk.shape[0] * wk.shape[-1]
    return cache[key]


@dataclass
class _GatedMLP:
    w_gate: Tensor  # d_mlp x d_model (the layout F.linear takes)
    w_in: Tensor
    w_out: Tensor  # d_model x d_mlp
    b_in: Tensor
    b_out: Tensor


def mlp(model, layer: int, x: Tensor) -> Tensor:
    """The block's MLP on ``x``. A gated MLP runs on weights transposed once and cached:
    TransformerLens's own forward copies all three matrices on every call (``W.T.contiguous()``),
    which on a sweep of many small batches costs more than the multiplications. The numbers are
    the same, as the same ``F.linear`` calls run on the same layouts."""
    module = model.blocks[layer].mlp
    cfg = model.cfg
    if not cfg.gated_mlp or cfg.is_layer_norm_activation():
        return module(x)
    cache = model.__dict__.setdefault("_interp_fused_mlp", {})
    key = (layer, module.W_gate.data_ptr(), module.W_gate._version, module.W_out._version)
    if key not in cache:
        cache[key] = _GatedMLP(
            w_gate=module.W_gate.detach().T.contiguous(),
            w_in=module.W_in.detach().T.contiguous(),
            w_out=module.W_out.detach().T.contiguous(),
            b_in=module.b_in.detach(),
            b_out=module.b_out.detach(),
        )
    w = cache[key]
    if w.w_gate.device != x.device:
        x = x.to(w.w_gate.device)
    post = module.act_fn(F.linear(x, w.w_gate)) * F.linear(x, w.w_in) + w.b_in
    return F.linear(post, w.w_out, w.b_out)


def _no_patch(site: str, act: Tensor) -> Tensor:
    return act


def block(
    model,
    layer: int,
    x: Tensor,
    start: int,
    prefix_kv: tuple[Tensor, Tensor] | None,
    patch: PatchFn = _no_patch,
) -> Tensor:
    """One transformer block on positions ``start..`` of ``x`` (``[batch, pos, d_model]``)."""
    cfg = model.cfg
    blk = model.blocks[layer]
    attn = blk.attn
    fused = _fused(model, layer)
    n_kv = cfg.n_key_value_heads or cfg.n_heads
    batch, pos, _ = x.shape
    x = patch("resid_pre", x)
    qkv = blk.ln1(x) @ fused.w_qkv + fused.b_qkv
    q, k, v = qkv.split([cfg.n_heads * cfg.d_head, n_kv * cfg.d_head, n_kv * cfg.d_head], dim=-1)
    q = patch("q", q.view(batch, pos, cfg.n_heads, cfg.d_head))
    k = patch("k", k.view(batch, pos, n_kv, cfg.d_head))
    v = patch("v", v.view(batch, pos, n_kv, cfg.d_head))
    if prefix_kv is not None:
        k = torch.cat([prefix_kv[0], k], dim=1)
        v = torch.cat([prefix_kv[1], v], dim=1)
    if cfg.positional_embedding_type == "rotary":
        q = attn.apply_rotary(q, start)
        k = attn.apply_rotary(k, 0)
    if n_kv != cfg.n_heads:
        k = k.repeat_interleave(cfg.n_heads // n_kv, dim=2)
        v = v.repeat_interleave(cfg.n_heads // n_kv, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / attn.attn_scale
    total = k.shape[1]
    causal = (
        torch.arange(total, device=x.device)[None, :]
        > torch.arange(start, start + pos, device=x.device)[:, None]
    )
    scores = scores.masked_fill(causal, float("-inf"))
    pattern = patch("pattern", scores.softmax(dim=-1).to(cfg.dtype))
    z = patch("z", torch.einsum("bhqk,bkhd->bqhd", pattern, v))
    if _wants(patch, "result"):
        w_o = attn.W_O  # heads d_head d_model
        result = patch("result", torch.einsum("bqhd,hdm->bqhm", z, w_o))
        attn_out = result.sum(dim=2) + fused.b_o
    else:
        attn_out = z.reshape(batch, pos, -1) @ fused.w_o + fused.b_o
    attn_out = patch("attn_out", attn_out)
    resid_mid = patch("resid_mid", x + attn_out)
    mlp_out = patch("mlp_out", mlp(model, layer, blk.ln2(resid_mid)))
    return patch("resid_post", resid_mid + mlp_out)


def _wants(patch: PatchFn, site: str) -> bool:
    return site in getattr(patch, "sites", ())


def resume(
    model,
    x: Tensor,
    layer: int,
    start: int,
    prefix_kv: list[tuple[Tensor, Tensor] | None] | None,
    patch: PatchFn = _no_patch,
) -> Tensor:
    """Run blocks ``layer..n_layers-1`` on positions ``start..``; ``patch`` acts on the first block.

    Arguments:
        x: residual stream entering block ``layer`` at positions ``start..``.
        prefix_kv: for each layer, the keys and values (before rotary) of positions ``< start``,
            batch-aligned with ``x``; ``None`` when ``start == 0``.

    Returns:
        The residual stream after the last block, positions ``start..``.
    """
    for i in range(layer, model.cfg.n_layers):
        kv = prefix_kv[i] if prefix_kv is not None else None
        x = block(model, i, x, start, kv, patch if i == layer else _no_patch)
    return x
