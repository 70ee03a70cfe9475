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
from ..dictionaries._evaluate import check_transcoders
from ..hooks import hook_name, locked, run_with_cache, scoped_hooks
from ._core import _in_hook, prompt_tokens


@locked
def intervene(
    model,
    transcoders: Mapping[int, object],
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
        interventions: ``{(layer, pos, feature): value}``; ``how="set"`` clamps the feature's
            activation to ``value``, ``how="scale"`` multiplies it by ``value``.
        freeze_attention: hold attention patterns at their clean values.
        freeze_norms: hold every norm's scale at its clean value.

    Example::

        logits = intervene(model, tcs, prompt, {(1, 9, 123): 0.0})   # ablate one feature
    """
    if how not in ("set", "scale"):
        raise ValueError(f"how must be 'set' or 'scale', got {how!r}")
    transcoders = check_transcoders(model, transcoders)
    tokens = prompt_tokens(model, prompt, prepend_bos)
    n_pos = tokens.numel()
    per_layer: dict[int, list[tuple[int, int, float]]] = {}
    for key, value in interventions.items():
        if not (isinstance(key, tuple) and len(key) == 3):
            raise ValueError(f"intervention keys are (layer, pos, feature) tuples, got {key!r}")
        layer, pos, feat = (int(k) for k in key)
        if layer not in transcoders:
            raise ValueError(
                f"no transcoder for layer {layer} (have {sorted(transcoders)}): cannot intervene"
            )
        d_sae = transcoders[layer].W_enc.shape[1]
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
    names = list(freeze)
    for layer in transcoders:
        names += [_in_hook(model, layer), hook_name(model, "mlp_out", layer)]
    _, clean = run_with_cache(model, tokens[None], names)
    errors = {}
    for layer, tc in transcoders.items():
        x = clean[_in_hook(model, layer)].to(tc.W_enc.dtype)
        errors[layer] = clean[hook_name(model, "mlp_out", layer)] - _decode(tc, tc.encode(x), x)

    inputs: dict[int, Tensor] = {}
    hooks = [(n, lambda act, hook: clean[hook.name]) for n in freeze]
    for layer, tc in transcoders.items():

        def keep(act, hook, layer=layer):
            inputs[layer] = act

        def replace(act, hook, layer=layer, tc=tc):
            x = inputs.pop(layer).to(tc.W_enc.dtype)
            f = tc.encode(x).clone()
            for pos, feat, value in per_layer.get(layer, ()):
                f[0, pos, feat] = value if how == "set" else f[0, pos, feat] * value
            return (_decode(tc, f, x) + errors[layer]).to(act.dtype)

        hooks += [(_in_hook(model, layer), keep), (hook_name(model, "mlp_out", layer), replace)]
    with scoped_hooks(model, hooks), torch.no_grad():
        return model(tokens[None])[0]


def _decode(tc, f: Tensor, x: Tensor) -> Tensor:
    out = f @ tc.W_dec + tc.b_dec
    skip = getattr(tc, "W_skip", None)
    return out if skip is None else out + x @ skip.T
