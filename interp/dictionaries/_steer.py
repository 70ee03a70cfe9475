"""Steering with a transcoder feature: change what one feature does, and read the new completion.

A transcoder rewrites the MLP at ``layer`` as ``mlp_out = f @ W_dec + b_dec + error``, where
``f`` are the feature activations and ``error`` is whatever the transcoder misses. To steer
feature ``i`` we change ``f[i]`` to ``f'[i]`` and keep the error term, so the MLP's output
becomes::

    mlp_out' = reconstruction(f') + error = mlp_out + (f'[i] - f[i]) * W_dec[i]

Written this way, leaving the feature alone (``f' = f``) gives back the model's own output bit
for bit. Two modes:

* ``clamp``: ``f'[i] = value`` (set the activation), or ``f[i] * scale`` (``scale=0`` ablates
  the feature, ``scale=1`` changes nothing, ``scale=4`` amplifies it where it fires);
* ``add``: ``f'[i] = f[i] + value``, that is ``value * W_dec[i]`` added to the MLP's output,
  whether the feature fires or not.

``steer`` greedily continues a prompt twice, without and with the intervention (applied from
position ``from_pos`` on, generated tokens included), and reports at every step how the
intervention moved the next-token logits on the steered text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import _checks
from ..hooks import locked, scoped_hooks
from ._evaluate import check_transcoders
from ._features import _token_str
from ._transcoder import transcoder_hooks

MODES = ("clamp", "add")


@dataclass(frozen=True)
class Steering:
    """Baseline and steered greedy completions of one prompt.

    Attributes:
        prompt: the prompt's token strings (BOS first when the model prepends it).
        baseline, steered: the generated token strings, ``max_new_tokens`` each.
        baseline_ids, steered_ids: the same as token ids.
        logit_change: ``[max_new_tokens, d_vocab]`` float32 on the cpu: at step ``t``, the
            steered run's next-token logits minus the unsteered model's, both on the prompt
            plus the first ``t`` steered tokens.
        steps: per step, ``{"token", "promoted": [(token, change)], "suppressed": [...]}``:
            the steered token chosen and the tokens whose logits the intervention raised and
            lowered most at that step.
        settings: layer, feature, mode, value, scale and from_pos, as given.
    """

    prompt: list[str]
    baseline: list[str]
    steered: list[str]
    baseline_ids: list[int]
    steered_ids: list[int]
    logit_change: Tensor
    steps: list[dict]
    settings: dict

    @property
    def diverges_at(self) -> int | None:
        """The first step where the two completions differ, or None when they agree."""
        for t, (a, b) in enumerate(zip(self.baseline_ids, self.steered_ids, strict=True)):
            if a != b:
                return t
        return None


def feature_intervention(
    model,
    transcoders: Mapping[int, object],
    layer: int,
    feature: int,
    *,
    mode: str = "clamp",
    value: int | float | None = None,
    scale: int | float | None = None,
    from_pos: int = 1,
) -> list[tuple[str, Callable]]:
    """The forward hooks that steer ``feature`` of the transcoder at ``layer`` (see the module).

    Attach them for one call only (``interp.hooks.scoped_hooks``). Arguments as in ``steer``.
    """
    transcoders = check_transcoders(model, transcoders)
    if layer not in transcoders:
        raise ValueError(f"layer={layer!r}: no transcoder there; have {sorted(transcoders)}")
    tc = transcoders[layer]
    d_sae = int(tc.W_dec.shape[0])
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise ValueError(f"feature={feature!r} is not accepted; use an integer in 0..{d_sae - 1}")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not accepted; use one of {MODES}")
    if mode == "clamp" and (value is None) == (scale is None):
        raise ValueError(
            "mode='clamp' takes exactly one of value= (set the activation) or scale= (multiply "
            f"it); got value={value!r}, scale={scale!r}"
        )
    if mode == "add" and (value is None or scale is not None):
        raise ValueError(
            f"mode='add' takes value= (added along the decoder row) and no scale=; got "
            f"value={value!r}, scale={scale!r}"
        )
    for name, number in (("value", value), ("scale", scale)):
        if number is not None:
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise TypeError(f"{name}={number!r} must be a number")
            _checks.finite(number, name)
    if isinstance(from_pos, bool) or not isinstance(from_pos, int) or from_pos < 0:
        raise ValueError(f"from_pos={from_pos!r} is not accepted; use an integer >= 0")
    hook_in, hook_out = transcoder_hooks(model, layer)
    seen: dict[str, Tensor] = {}

    def read_input(act, hook):
        seen["x"] = act
        return act

    def write_output(act, hook):
        x = seen.pop("x").to(tc.W_enc.dtype)
        f = tc.encode(x)[..., feature]  # [batch, pos]
        if mode == "add":
            new = f + value
        elif value is not None:
            new = torch.full_like(f, float(value))
        else:
            new = f * scale
        delta = new - f
        delta[:, :from_pos] = 0.0
        row = tc.W_dec[feature].to(act.dtype)
        return act + delta.to(act.dtype)[..., None] * row

    return [(hook_in, read_input), (hook_out, write_output)]


@torch.no_grad()
@locked
def steer(
    model,
    transcoders: Mapping[int, object],
    layer: int,
    feature: int,
    prompt: str | Tensor | list[int],
    *,
    mode: str = "clamp",
    value: int | float | None = None,
    scale: int | float | None = None,
    max_new_tokens: int = 12,
    from_pos: int = 1,
    k: int = 5,
) -> Steering:
    """Greedily continue ``prompt`` with and without steering one feature; see the module.

    Arguments:
        model, transcoders: the model and ``{layer: transcoder}``.
        layer, feature: the feature steered.
        prompt: text (tokenised with the model's BOS) or token ids ``[pos]``.
        mode: ``"clamp"`` (set the activation to ``value``, or multiply it by ``scale``) or
            ``"add"`` (add ``value * W_dec[feature]`` to the MLP's output).
        value, scale: how far; ``clamp`` takes one of them, ``add`` takes ``value``.
        max_new_tokens: tokens generated, exactly (no early stop), for each completion.
        from_pos: the first position steered; the default 1 leaves the BOS token alone, which
            attention uses as a resting place and which steering would disturb everywhere.
        k: tokens listed per step in ``steps``.

    Returns:
        A ``Steering``. Example::

            s = steer(model, tcs, 1, 42, "def f(x):", mode="clamp", value=8.0)
            "".join(s.baseline), "".join(s.steered), s.diverges_at
    """
    _checks.positive_int(max_new_tokens, "max_new_tokens")
    _checks.positive_int(k, "k")
    hooks = feature_intervention(
        model, transcoders, layer, feature, mode=mode, value=value, scale=scale, from_pos=from_pos
    )
    if isinstance(prompt, str):
        ids = _checks.tokenize(model, prompt, "prompt")
    else:
        ids = _checks.token_ids(model, prompt, "prompt").reshape(-1).long()
        if ids.numel() == 0:
            raise ValueError("prompt holds no tokens; give text or at least one token id")
    _checks.context(model, ids.numel() + max_new_tokens, "prompt plus max_new_tokens")
    device = next(model.parameters()).device
    ids = ids.to(device)[None]
    base_ids, base_logits = _greedy(model, ids, max_new_tokens, [])
    steered_ids, steered_logits = _greedy(model, ids, max_new_tokens, hooks)
    change = []
    for t in range(max_new_tokens):
        if torch.equal(steered_ids[:t], base_ids[:t]):
            plain = base_logits[t]  # same text so far: the baseline run already has it
        else:
            prefix = torch.cat([ids[0], steered_ids[:t]])[None]
            plain = model(prefix)[0, -1].float()
        change.append((steered_logits[t] - plain).cpu())
    logit_change = torch.stack(change)
    word = lambda t: _token_str(model, int(t))  # noqa: E731
    steps = []
    for t in range(max_new_tokens):
        up, down = logit_change[t].topk(k), (-logit_change[t]).topk(k)
        steps.append(
            {
                "token": word(steered_ids[t]),
                "promoted": [(word(i), v) for i, v in zip(up.indices.tolist(), up.values.tolist())],
                "suppressed": [
                    (word(i), -v) for i, v in zip(down.indices.tolist(), down.values.tolist())
                ],
            }
        )
    return Steering(
        prompt=[word(t) for t in ids[0].tolist()],
        baseline=[word(t) for t in base_ids.tolist()],
        steered=[word(t) for t in steered_ids.tolist()],
        baseline_ids=base_ids.tolist(),
        steered_ids=steered_ids.tolist(),
        logit_change=logit_change,
        steps=steps,
        settings={
            "layer": int(layer),
            "feature": int(feature),
            "mode": mode,
            "value": value,
            "scale": scale,
            "from_pos": from_pos,
        },
    )


def _greedy(model, ids: Tensor, n: int, hooks) -> tuple[Tensor, Tensor]:
    """``n`` greedy tokens after ``ids`` ``[1, pos]`` with ``hooks`` attached for each pass, and
    the next-token logits ``[n, d_vocab]`` (float32) each was chosen from. Every pass reads the
    whole text again (no key-value cache), so a hook sees every position at every step."""
    out, logits = [], []
    text = ids
    for _ in range(n):
        with scoped_hooks(model, hooks):
            last = model(text)[0, -1].float()
        token = last.argmax()
        out.append(token)
        logits.append(last)
        text = torch.cat([text, token.view(1, 1)], dim=1)
    return torch.stack(out), torch.stack(logits)
