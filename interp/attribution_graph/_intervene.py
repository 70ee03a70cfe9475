"""Feature interventions in the replacement model: clamp or scale a transcoder feature.

The replacement model runs the prompt with each covered MLP's output replaced by its
transcoder's output plus that layer's error vector from the clean run (so with no intervention
it reproduces the model's logits exactly). Features are recomputed from each layer's input, so
an intervention propagates to later features; errors stay at their clean values. Attention
patterns and norm scales are recomputed unless ``freeze_attention`` / ``freeze_norms`` fix them
at their clean values; with both frozen and the intervened feature in the last covered layer,
the change in a demeaned logit equals that feature's edge to the logit in the attribution graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .. import _checks
from ..dictionaries import CrossLayerTranscoder
from ..hooks import locked, run_with_cache, scoped_hooks
from ._core import prompt_tokens
from ._replacement import as_replacement, cache_names, clean_errors, replacement_hooks


@locked
def intervene(
    model,
    transcoders: Mapping[int, object] | CrossLayerTranscoder,
    prompt: str | Sequence[int] | Tensor,
    interventions: Mapping[tuple[int, int, int], float],
    *,
    how: str = "set",
    freeze_attention: bool = False,
    freeze_norms: bool = False,
    prepend_bos: bool | None = None,
) -> Tensor:
    """Logits ``[pos, d_vocab]`` of the replacement model with features clamped or scaled.

    Arguments:
        transcoders: ``{layer: transcoder}`` or a ``CrossLayerTranscoder`` (whose features'
            changes then reach every later MLP through their decoders).
        interventions: ``{(layer, pos, feature): value}``; ``how="set"`` clamps the feature's
            activation to ``value``, ``how="scale"`` multiplies it by ``value``.
        freeze_attention: hold attention patterns at their clean values.
        freeze_norms: hold every norm's scale at its clean value.

    Example::

        logits = intervene(model, tcs, prompt, {(1, 9, 123): 0.0})   # ablate one feature
    """
    if how not in ("set", "scale"):
        raise ValueError(f"how must be 'set' or 'scale', got {how!r}")
    rep = as_replacement(model, transcoders)
    tokens = prompt_tokens(model, prompt, prepend_bos)
    n_pos = tokens.numel()
    per_layer: dict[int, list[tuple[int, int, float]]] = {}
    for key, value in interventions.items():
        if not (isinstance(key, tuple) and len(key) == 3):
            raise ValueError(f"intervention keys are (layer, pos, feature) tuples, got {key!r}")
        layer, pos, feat = (int(k) for k in key)
        if layer not in rep.views:
            raise ValueError(
                f"no transcoder for layer {layer} (have {sorted(rep.views)}): cannot intervene"
            )
        d_sae = rep.views[layer].W_enc.shape[1]
        if not 0 <= pos < n_pos or not 0 <= feat < d_sae:
            raise ValueError(
                f"interventions key {key}: pos must be in 0..{n_pos - 1}, feature in 0..{d_sae - 1}"
            )
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"interventions[{key!r}]={value!r} must be a number") from None
        _checks.finite(number, f"interventions[{key!r}]")
        per_layer.setdefault(layer, []).append((pos, feat, number))

    freeze = [n for n in model.hook_dict if freeze_norms and n.endswith("hook_scale")]
    freeze += [n for n in model.hook_dict if freeze_attention and n.endswith("attn.hook_pattern")]
    _, clean = run_with_cache(model, tokens[None], freeze + cache_names(model, rep))
    errors = clean_errors(model, rep, clean)

    def edit(layer: int, f: Tensor) -> Tensor:
        if layer not in per_layer:
            return f
        f = f.clone()
        for pos, feat, value in per_layer[layer]:
            f[0, pos, feat] = value if how == "set" else f[0, pos, feat] * value
        return f

    hooks = [(n, lambda act, hook: clean[hook.name]) for n in freeze]
    hooks += replacement_hooks(model, rep, errors, edit)
    with scoped_hooks(model, hooks), torch.no_grad():
        return model(tokens[None])[0]
