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
(parallel attention and MLP, soft-capped scores or logits, local attention, QK-norm, norms after
each sublayer, split q/k/v inputs) are named by ``blockers(model)``, and engines fall back to
hooked full passes, recording the reason.

Both model kinds are covered: a ``HookedTransformer``, and a ``TransformerBridge`` in
compatibility mode, whose ``W_Q``/``W_K``/``W_V``/``W_O``, norms and MLPs have TransformerLens's
layouts and whose rotary tables come from the wrapped model's own rotary embedding. Engines check
``matches(model, ...)`` on the run they resume from before trusting the numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._offload import offloaded
from .adapter import adapter

PatchFn = Callable[[str, Tensor], Tensor]


def supported(model, n_pos: int | None = None) -> bool:
    """Whether ``resume`` computes what ``model``'s own forward pass computes (on prompts of
    ``n_pos`` tokens, where given): ``blockers`` names what stands in the way when it does not."""
    return not blockers(model, n_pos)


def blockers(model, n_pos: int | None = None) -> list[str]:
    """The features of ``model`` that ``resume`` does not compute, by name; empty when it covers it.

    Read from the TransformerLens config and, for a TransformerBridge, from the wrapped
    transformers model too, whose config and modules say what the bridge's config leaves out
    (QK-norm, norms after each sublayer, sliding-window layers, per-layer rotary tables).

    Arguments:
        model: a TransformerLens model.
        n_pos: the prompts' length; sliding-window attention blocks only a window shorter than it.
    """
    info = adapter(model)
    if not (info.is_hooked or info.compatibility_mode):
        return [
            f"{info.kind} is neither a HookedTransformer nor a TransformerBridge "
            "in compatibility mode"
        ]
    cfg = model.cfg
    pos_type = getattr(cfg, "positional_embedding_type", None)
    found = {
        f"positional embedding {pos_type!r}": pos_type not in ("standard", "rotary"),
        "parallel attention and MLP": getattr(cfg, "parallel_attn_mlp", False),
        "soft-capped attention scores": (getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) > 0,
        "soft-capped output logits": (getattr(cfg, "output_logits_soft_cap", -1.0) or -1.0) > 0,
        "split q/k/v inputs": getattr(cfg, "use_split_qkv_input", False)
        or getattr(cfg, "use_attn_in", False),
        "norms before and after each sublayer": getattr(
            cfg, "use_normalization_before_and_after", False
        ),
        "QK-norm": getattr(cfg, "use_qk_norm", False),
        "attention-only blocks": getattr(cfg, "attn_only", False),
        "a model split across devices": getattr(cfg, "n_devices", 1) != 1,
        # it reads whole weight matrices, which offloaded layers hold only while they run
        "weights offloaded by accelerate (device_map)": offloaded(model),
    }
    window = getattr(cfg, "window_size", None) if getattr(cfg, "use_local_attn", False) else None
    if info.compatibility_mode:
        found.update(_bridge_blockers(model))
        window = window or _sliding_window(info.hf_model)
    if window is not None and (n_pos is None or window < n_pos):
        found[f"local (sliding-window) attention, window {window}"] = True
    return [name for name, present in found.items() if present]


def _bridge_blockers(model) -> dict[str, bool]:
    blk = model.blocks[0] if len(model.blocks) else None
    if blk is None or not all(hasattr(blk, n) for n in ("ln1", "attn", "mlp")):
        return {"blocks the bridge does not split into ln1, attn, ln2 and mlp": True}
    layer = getattr(blk, "original_component", None)
    attn = getattr(blk.attn, "original_component", None)
    rotary = getattr(model.cfg, "positional_embedding_type", None) == "rotary"
    rotary_module = getattr(getattr(model, "rotary_emb", None), "original_component", None)
    return {
        "one norm shared by attention and MLP": not hasattr(blk, "ln2"),
        "norms before and after each sublayer": hasattr(blk, "ln1_post")
        or hasattr(blk, "ln2_post")
        or hasattr(layer, "post_feedforward_layernorm"),
        "QK-norm": any(
            hasattr(c, n)
            for c in (blk.attn, attn)
            for n in ("q_norm", "k_norm", "q_layernorm", "k_layernorm")
        ),
        "rotary embedding the bridge does not expose": rotary and rotary_module is None,
        "adjacent-pair rotary": rotary and getattr(model.cfg, "rotary_adjacent_pairs", False),
        "per-layer rotary tables (local and global bases)": rotary
        and rotary_module is not None
        and "layer_type" in inspect.signature(rotary_module.forward).parameters,
    }


def _sliding_window(hf_model) -> int | None:
    """The window of the wrapped model's sliding-window layers; ``None`` if it has none."""
    config = getattr(hf_model, "config", None)
    window = getattr(config, "sliding_window", None)
    if not window:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return window if "sliding_attention" in layer_types else None
    return window if getattr(config, "use_sliding_window", True) else None


class EngineMismatch(ValueError):
    """The resumable pass does not reproduce the model's own forward pass."""


def matches(model, resid_pre: Tensor, resid_post_last: Tensor) -> None:
    """Check that ``resume`` from the first block's input gives the model's own last-block output
    (both from one run of the model); raise ``EngineMismatch`` naming the difference if not.

    A loose check (relative to the activations' size): it catches a wrong rotary convention,
    attention scale or norm, which change the numbers by their own size, not float rounding.
    """
    with torch.no_grad():
        ours = resume(model, resid_pre, 0, 0, None)
    scale = float(resid_post_last.abs().max().clamp_min(1e-6))
    err = float((ours - resid_post_last).abs().max()) / scale
    tol = max(1e-4, 20 * torch.finfo(resid_post_last.dtype).eps)
    if not err <= tol:
        raise EngineMismatch(
            f"the resumable pass differs from {type(model).__name__}'s own forward pass by "
            f"{err:.2g} of the activations' size (tolerance {tol:.2g}) on "
            f"{getattr(model.cfg, 'original_architecture', None) or type(model).__name__}"
        )


@dataclass
class _Fused:
    w_qkv: Tensor  # d_model x (n_heads + 2 n_kv) d_head
    b_qkv: Tensor
    w_o: Tensor  # n_heads d_head x d_model
    b_o: Tensor
    scale: float  # attention scores are divided by it


def _attn_scale(model, layer: int) -> float:
    """What attention scores are divided by: the HookedTransformer's own, else from the config
    as TransformerLens sets it (sqrt(d_head), times the layer number where the model says so)."""
    attn = model.blocks[layer].attn
    if hasattr(attn, "attn_scale"):
        return float(attn.attn_scale)
    cfg = model.cfg
    if not getattr(cfg, "use_attn_scale", True):
        return 1.0
    scale = getattr(cfg, "attn_scale", -1.0) or -1.0
    scale = float(scale) if scale > 0 else cfg.d_head**0.5
    if getattr(cfg, "scale_attn_by_inverse_layer_idx", False):
        scale *= layer + 1
    return scale


def _rotate(model, layer: int, x: Tensor, offset: int) -> Tensor:
    """Rotary embedding of ``x`` (``[batch, pos, head, d_head]``) at positions ``offset..``."""
    info = adapter(model)
    if info.is_hooked:
        return model.blocks[layer].attn.apply_rotary(x, offset)
    n = offset + x.shape[1]
    cache = info.cache("rotary")
    key = (x.device, x.dtype)
    if key not in cache or cache[key][0].shape[0] < n:
        size = max(n, 2 * cache[key][0].shape[0] if key in cache else 64)
        dummy = torch.zeros(1, size, model.cfg.d_head, device=x.device, dtype=x.dtype)
        cos, sin = model.rotary_emb(dummy, torch.arange(size, device=x.device)[None])
        cache[key] = (cos[0].to(x.dtype), sin[0].to(x.dtype))  # pos x rotary dim
    cos, sin = (t[offset:n, None, :] for t in cache[key])
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    half = torch.cat([-rot[..., r // 2 :], rot[..., : r // 2]], dim=-1)
    out = rot * cos + half * sin
    return torch.cat([out, rest], dim=-1) if rest.shape[-1] else out


def _fused(model, layer: int) -> _Fused:
    """The attention weights of ``layer`` as contiguous matrices, cached in the model's adapter."""
    cache = adapter(model).cache("fused_attention")
    attn = model.blocks[layer].attn
    # a TransformerBridge builds W_Q anew on each access: key on the weight it is built from
    source = getattr(getattr(attn, "q", None), "weight", None)
    if not isinstance(source, Tensor):
        source = attn.W_Q
    key = (layer, source.data_ptr(), source._version)
    if key not in cache:
        cfg = model.cfg
        n_kv = cfg.n_key_value_heads or cfg.n_heads
        wk = attn._W_K if hasattr(attn, "_W_K") else attn.W_K
        wv = attn._W_V if hasattr(attn, "_W_V") else attn.W_V
        bk = attn._b_K if hasattr(attn, "_b_K") else attn.b_K
        bv = attn._b_V if hasattr(attn, "_b_V") else attn.b_V
        assert n_kv * cfg.d_head == wk.shape[0] * wk.shape[-1]
        flat = lambda w: w.detach().permute(1, 0, 2).reshape(cfg.d_model, -1)  # noqa: E731
        w_q = attn.W_Q

        def bias(b, w):  # a TransformerBridge of a model without biases has None
            return (
                torch.zeros(w.shape[0] * w.shape[-1], dtype=w.dtype, device=w.device)
                if (b is None)
                else b.detach().reshape(-1)
            )

        b_o = getattr(attn, "b_O", None)
        cache[key] = _Fused(
            w_qkv=torch.cat([flat(w_q), flat(wk), flat(wv)], dim=1).contiguous(),
            b_qkv=torch.cat([bias(attn.b_Q, w_q), bias(bk, wk), bias(bv, wv)]),
            w_o=attn.W_O.detach().reshape(cfg.n_heads * cfg.d_head, cfg.d_model).contiguous(),
            b_o=torch.zeros(cfg.d_model, dtype=w_q.dtype, device=w_q.device)
            if b_o is None
            else b_o.detach(),
            scale=_attn_scale(model, layer),
        )
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
    info = adapter(model)
    if not (info.is_hooked and cfg.gated_mlp) or cfg.is_layer_norm_activation():
        return module(x)
    cache = info.cache("fused_mlp")
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
        q = _rotate(model, layer, q, start)
        k = _rotate(model, layer, k, 0)
    if n_kv != cfg.n_heads:
        k = k.repeat_interleave(cfg.n_heads // n_kv, dim=2)
        v = v.repeat_interleave(cfg.n_heads // n_kv, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / fused.scale
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
