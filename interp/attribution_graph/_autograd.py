"""The autograd engine: the frozen model's backward pass by torch autograd, as circuit-tracer.

The prompt runs ``batch`` times at once with every attention pattern and norm scale detached
and each MLP's output replaced by a leaf (a skip transcoder's linear path stays
differentiable); ``grads`` then injects one target direction per batch row and reads the
gradients at the embedding and the MLP-output leaves. Works for any TransformerLens block
layout; the linear engine (``_linear.py``) is faster where it applies.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..adapter import adapter
from ..hooks import hook_name, scoped_hooks
from ._core import Prepared
from ._replacement import Replacement


class AutogradBackward:
    """One batched forward of the frozen model; ``rows(...)`` gives direct effects by backward."""

    def __init__(self, model, prep: Prepared, rep: Replacement, batch: int):
        self.model, self.prep, self.batch = model, prep, batch
        n_layers = int(model.cfg.n_layers)
        self.n_layers = n_layers
        self.leaves: dict[int, Tensor] = {}
        self.norm_in: dict[int, Tensor] = {}
        self.embed: Tensor | None = None
        detach_names = [
            n
            for n in model.hook_dict
            if n.endswith("hook_scale") or n.endswith("attn.hook_pattern")
        ]

        def detach(act, hook):
            return act.detach()

        def embed_leaf(act, hook):
            self.embed = act.detach().requires_grad_(True)
            return self.embed

        def keep_in(act, hook, layer):
            self.norm_in[layer] = act
            return act

        def mlp_leaf(act, hook, layer):
            leaf = act.detach().requires_grad_(True)
            self.leaves[layer] = leaf
            tc = rep.views.get(layer)
            skip = getattr(tc, "W_skip", None) if tc is not None else None
            if skip is not None:  # a skip transcoder's linear path stays differentiable
                x = self.norm_in[layer].to(skip.dtype)
                lin = x @ skip.T
                return leaf + (lin - lin.detach()).to(leaf.dtype)
            return leaf

        hooks = [(n, detach) for n in detach_names] + [("hook_embed", embed_leaf)]
        for layer in range(n_layers):
            if layer in rep.views:
                hooks.append(
                    (rep.in_hook(layer), lambda a, hook, layer=layer: keep_in(a, hook, layer))
                )
            hooks.append(
                (
                    hook_name(model, "mlp_out", layer),
                    lambda a, hook, layer=layer: mlp_leaf(a, hook, layer),
                )
            )
        # the last block's output is read by a hook: a TransformerBridge given
        # ``stop_at_layer=n_layers`` runs on to the logits instead of stopping there
        last: dict[str, Tensor] = {}

        def keep_last(act, hook):
            last["resid"] = act
            return act

        hooks.append((hook_name(model, "resid_post", n_layers - 1), keep_last))
        tokens = prep.tokens[None].expand(batch, -1)
        with torch.enable_grad(), scoped_hooks(model, hooks), warnings.catch_warnings():
            # the bridge warns that its norm output is rebuilt from the hooked (frozen) scale:
            # freezing the scale is the point here
            warnings.filterwarnings("ignore", "A forward hook edited hook_scale", UserWarning)
            model(tokens, stop_at_layer=n_layers)
            resid = last["resid"]
            ln_final = adapter(model).ln_final
            self.final = ln_final(resid) if ln_final is not None else resid

    def grads(self, layers: Tensor, positions: Tensor, vectors: Tensor) -> tuple[Tensor, Tensor]:
        """Gradients at the embedding ``[B, pos, d]`` and at every MLP output ``[L, B, pos, d]``
        for targets given by (layer, pos, direction); layer ``n_layers`` is a logit target."""
        B = layers.numel()
        outputs, grad_outputs = [], []
        for layer in layers.unique().tolist():
            mask = layers == layer
            rows = torch.nonzero(mask).flatten()
            target = self.final if layer == self.n_layers else self.norm_in[layer]
            g = torch.zeros_like(target)
            g[rows, positions[mask]] = vectors[mask].to(g.dtype)
            outputs.append(target)
            grad_outputs.append(g)
        inputs = [self.embed] + [self.leaves[la] for la in range(self.n_layers)]
        got = torch.autograd.grad(
            outputs, inputs, grad_outputs, retain_graph=True, allow_unused=True
        )
        dt = self.prep.decoder.dtype
        zero = torch.zeros(self.embed.shape, device=self.embed.device, dtype=dt)
        g_embed = zero if got[0] is None else got[0].to(dt)
        g_mlp = torch.stack([zero if g is None else g.to(dt) for g in got[1:]])
        return g_embed[:B], g_mlp[:, :B]
