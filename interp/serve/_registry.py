"""The registry of served analyses: each name mapped to the library function it calls.

Every entry calls the same function the command line calls, with the same defaults, so a remote
``patch`` equals ``interp patch`` and ``patch_sweep`` run locally on the same model and task.
"""

from __future__ import annotations

from ..cost import Estimate
from ..discovery import DISCOVERY_METHODS
from ._analyses import Analysis, Param, axes, choice, flag, integer, number, positions, receivers
from ._analyses import text as text_arg


def _sites() -> tuple[str, ...]:
    from ..patching import SITE_AXES

    return tuple(SITE_AXES)


def _directions() -> tuple[str, ...]:
    from ..patching import DIRECTIONS

    return DIRECTIONS


# -- patch -------------------------------------------------------------------------------------


def _patch_estimate(model, batch, *, site, by, direction, normalize, task):
    from ..cost import patch_estimate
    from ..patching import SITE_AXES

    if site not in SITE_AXES:
        raise ValueError(f"site={site!r} cannot be patched; sites: {', '.join(SITE_AXES)}")
    if any(a not in SITE_AXES[site] for a in by) or len(set(by)) != len(by) or "layer" not in by:
        raise ValueError(
            f"by={list(by)} is not accepted for site {site!r}: give distinct axes from "
            f"{', '.join(SITE_AXES[site])}, with layer among them"
        )
    return patch_estimate(model, batch, site, by)


def _patch(model, batch, *, site, by, direction, normalize, task, progress):
    from ..patching import patch_sweep

    return patch_sweep(model, batch, site, by, direction, normalize=normalize, progress=progress)


# -- path_patch ---------------------------------------------------------------------------------


def _path_estimate(model, batch, *, receivers, sender_positions, receiver_positions, **_):
    from ..cost import path_patch_estimate
    from ..positions import position_mask

    if receivers == "logits" and receiver_positions is not None:
        raise ValueError(
            "receiver_positions needs head receivers; the logits are read at the answer "
            "position alone (limit sender_positions instead)"
        )
    position_mask(batch, sender_positions, "sender_positions")
    position_mask(batch, receiver_positions, "receiver_positions")
    return path_patch_estimate(model, batch, receivers)


def _path_patch(model, batch, *, receivers, direction, normalize, progress, **positions):
    from ..path_patching import path_patch_sweep

    return path_patch_sweep(
        model,
        batch,
        receivers,
        direction,
        sender_positions=positions["sender_positions"],
        receiver_positions=positions["receiver_positions"],
        normalize=normalize,
        progress=progress,
    )


# -- attribute ----------------------------------------------------------------------------------


def _attribute_estimate(model, batch, *, site, compare, direction, task):
    from ..cost import attribution_estimate

    return attribution_estimate(model, batch, site, compare)


def _attribute(model, batch, *, site, compare, direction, task, progress):
    from ..attribution import attribution_patch

    return attribution_patch(model, batch, site, direction, compare=compare)[site]


# -- head_scores --------------------------------------------------------------------------------


def _head_estimate(model, _, *, score, prompt):
    from ..heads import HEAD_SCORES

    if score not in HEAD_SCORES:
        raise ValueError(f"score={score!r} is not accepted; use one of {', '.join(HEAD_SCORES)}")
    if not HEAD_SCORES[score].reads_prompt:
        return None, Estimate(f"head score {score} on its own probe", 2)
    if not prompt:
        raise ValueError(f"score={score!r} reads a prompt; give prompt")
    tokens = model.to_tokens(prompt)
    return tokens, Estimate(f"head score {score} on a prompt of {tokens.shape[1]} tokens", 1)


def _head_scores(model, tokens, *, score, prompt, progress):
    from ..heads import score_heads

    return score_heads(model, score, tokens)


# -- discover -----------------------------------------------------------------------------------


def _discover_estimate(model, batch, *, method, top_n, threshold, steps, level, task):
    from ..cost import discovery_estimate

    return discovery_estimate(model, batch, method, steps=steps)


def _discover(model, batch, *, method, top_n, threshold, steps, level, task, progress):
    """A circuit by ``method`` with its faithfulness in ``provenance``, as ``interp discover``."""
    from ..discovery import discover_circuit

    return discover_circuit(
        model, batch, method, top_n=top_n, threshold=threshold, steps=steps, level=level
    )


def _site(name, value):
    return choice(*_sites())(name, value)


def _direction(name, value):
    return choice(*_directions())(name, value)


def _head_score(name, value):
    from ..heads import HEAD_SCORES

    return choice(*HEAD_SCORES)(name, value)


ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis(
            "patch",
            "activation-patching sweep of a site (interp.patch_sweep); a Result",
            {
                "site": Param(_site, "z", "resid_pre, attn_out, mlp_out, z, q, k, v, pattern..."),
                "by": Param(axes, ("layer", "pos", "head"), "axes to sweep, with layer"),
                "direction": Param(_direction, "denoise", "denoise or noise"),
                "normalize": Param(flag, False, "corrupted run 0, clean run 1"),
            },
            _patch_estimate,
            _patch,
        ),
        Analysis(
            "path_patch",
            "path patching of every head into the logits or head inputs; a Result",
            {
                "receivers": Param(receivers, "logits", "'logits' or head inputs 'q:1:0,v:1:2'"),
                "sender_positions": Param(positions, None, "positions (default: all)"),
                "receiver_positions": Param(positions, None, "positions (default: all)"),
                "direction": Param(_direction, "noise", "noise or denoise"),
                "normalize": Param(flag, False, "corrupted run 0, clean run 1"),
            },
            _path_estimate,
            _path_patch,
        ),
        Analysis(
            "attribute",
            "attribution patching of one site (interp.attribution_patch); a Result",
            {
                "site": Param(_site, "z", "a patching site"),
                "compare": Param(flag, False, "also run exact patching"),
                "direction": Param(_direction, "denoise", "denoise or noise"),
            },
            _attribute_estimate,
            _attribute,
        ),
        Analysis(
            "head_scores",
            "a layer x head score (interp.heads.score_heads); a Result",
            {
                "score": Param(_head_score, "induction", "a head score of HEAD_SCORES"),
                "prompt": Param(text_arg, None, "the prompt detector:* scores read"),
            },
            _head_estimate,
            _head_scores,
            uses_task=False,
        ),
        Analysis(
            "discover",
            "a circuit of heads and MLPs with its faithfulness; a CircuitGraph",
            {
                "method": Param(choice(*DISCOVERY_METHODS), "EAP-IG", "EAP, EAP-IG, ACDC, ..."),
                "top_n": Param(integer(1), 40, "edges to keep"),
                "threshold": Param(number, 0.01, "ACDC: prune edges below this effect"),
                "steps": Param(integer(1), 300, "edge-pruning: optimisation steps"),
                "level": Param(choice("edge", "node"), "edge", "edge-pruning: edge or node"),
            },
            _discover_estimate,
            _discover,
        ),
    )
}
