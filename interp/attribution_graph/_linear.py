"""The backward pass of the frozen replacement model, written out (no autograd, no batch forward).

With attention patterns and norm scales frozen and every MLP output a constant, the map from
the residual stream to a target is linear, and its transpose is short: going down the layers,
the gradient at ``resid_post`` is the gradient at that MLP's output (a source); it passes the
cut MLP unchanged to ``resid_mid``, picks up the targets that read ``ln2`` there, and passes
attention as ``G + ln1^T(sum_h P_h^T (G W_O_h^T) W_V_h^T)``. A norm with frozen scale ``s``
and weight ``w`` transposes to ``center(g * w) / s`` (``center`` only for LayerNorm).

Only a batch-1 forward pass (to read patterns and scales) is needed, so memory does not grow
with the number of targets in a block beyond the gradients themselves. Architectures where
this layout does not hold (parallel attention and MLP, norms after sublayers) are refused; the
autograd path in ``_core`` is the reference the tests compare both against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..adapter import adapter
from ..hooks import run_with_cache


def supports(model) -> bool:
    cfg = model.cfg
    return (
        not getattr(cfg, "parallel_attn_mlp", False)
        and not getattr(cfg, "use_normalization_before_and_after", False)
        and not getattr(cfg, "attn_only", False)
        and cfg.normalization_type in ("LN", "LNPre", "RMS", "RMSPre", None)
        and not adapter(model).is_bridge
    )


class LinearBackward:
    """Direct-effect gradients of the frozen model from a batch-1 clean pass."""

    def __init__(
        self, model, tokens: Tensor, dtype: torch.dtype, raw_inputs: frozenset[int] = frozenset()
    ):
        # layers whose feature targets read ``hook_resid_mid`` (the norm's input) directly
        self.raw_inputs = raw_inputs
        self.n_layers = n_layers = int(model.cfg.n_layers)
        self.center = model.cfg.normalization_type in ("LN", "LNPre")
        names = [f"blocks.{la}.attn.hook_pattern" for la in range(n_layers)]
        scales = [f"blocks.{la}.ln{i}.hook_scale" for la in range(n_layers) for i in (1, 2)]
        scales.append("ln_final.hook_scale")
        have = [n for n in scales if n in model.hook_dict]
        _, cache = run_with_cache(model, tokens[None], names + have)
        n_pos = tokens.numel()
        one = torch.ones(n_pos, 1, device=tokens.device, dtype=dtype)

        def scale(name: str) -> Tensor:
            return cache[name][0].to(dtype) if name in cache else one

        def weight(module) -> Tensor | None:
            w = getattr(module, "w", None)
            return None if w is None else w.detach().to(dtype)

        self.layers = []
        for la, block in enumerate(model.blocks):
            attn = block.attn
            self.layers.append(
                {
                    "P": cache[f"blocks.{la}.attn.hook_pattern"][0].to(dtype),  # h q k
                    "W_O": attn.W_O.detach().to(dtype),  # h e d
                    "W_V": attn.W_V.detach().to(dtype),  # h d e
                    "s1": scale(f"blocks.{la}.ln1.hook_scale"),
                    "w1": weight(block.ln1),
                    "s2": scale(f"blocks.{la}.ln2.hook_scale"),
                }
            )
        self.s_final = scale("ln_final.hook_scale")
        ln_final = adapter(model).ln_final
        self.w_final = weight(ln_final) if ln_final is not None else None

    def _norm_t(self, g: Tensor, s: Tensor, w: Tensor | None) -> Tensor:
        if w is not None:
            g = g * w
        g = g / s
        return g - g.mean(-1, keepdim=True) if self.center else g

    def grads(self, layers: Tensor, positions: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor]:
        """Gradients at the embedding ``[B, pos, d]`` and every MLP output ``[L, B, pos, d]``.

        Targets are (layer, pos, direction): layer ``n_layers`` is a direction at the output of
        the final norm (a logit), any other layer a direction at that layer's normalised MLP
        input (a transcoder feature's encoder column), or at ``resid_mid`` for the layers in
        ``raw_inputs``.
        """
        B = layers.numel()
        first = self.layers[0]
        n_pos, d = first["s1"].shape[0], vectors.shape[-1]
        rows = torch.arange(B, device=vectors.device)
        G = torch.zeros(B, n_pos, d, dtype=vectors.dtype, device=vectors.device)
        top = layers == self.n_layers
        if top.any():
            p = positions[top]
            G[rows[top], p] = self._norm_t(vectors[top], self.s_final[p], self.w_final)
        g_mlp = torch.zeros(self.n_layers, B, n_pos, d, dtype=G.dtype, device=G.device)
        for la in range(self.n_layers - 1, -1, -1):
            L = self.layers[la]
            g_mlp[la] = G
            here = layers == la
            if here.any():
                p = positions[here]
                v = vectors[here]
                G[rows[here], p] += (
                    v if la in self.raw_inputs else self._norm_t(v, L["s2"][p], None)
                )
            gz = torch.einsum("bqd,hed->bqhe", G, L["W_O"])
            gv = torch.einsum("hqk,bqhe->bkhe", L["P"], gz)
            gx = torch.einsum("bkhe,hde->bkd", gv, L["W_V"])
            G = G + self._norm_t(gx, L["s1"], L["w1"])
        return G, g_mlp
