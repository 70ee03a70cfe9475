"""Attribution patching: a first-order estimate of every activation patch at once.

Activation patching runs one (batched) pass per patch. Attribution patching (Nanda, 2023; Syed
et al., 2023) linearises the metric around the target run instead: the effect of patching an
activation from ``a_target`` to ``a_source`` is estimated as

    (a_source - a_target) . d metric / d a   (evaluated on the target run)

so every site, layer, position and head is estimated from two forward passes (source, target)
and one backward pass. It is exact for linear effects and can be far off for saturated ones
(attention patterns, large effects): compare it with ``patch_sweep`` where it matters;
``compare=True`` does so and records the correlation in the Result's provenance.
"""

from __future__ import annotations

import torch

from .hooks import hook_name, run_with_cache, scoped_hooks
from .models import provenance
from .patching import SITE_AXES, patch_sweep, position_labels
from .result import Result
from .tasks import Task, TaskBatch


def attribution_patch(
    model,
    task: Task | TaskBatch,
    sites: tuple[str, ...] | str = ("resid_pre", "attn_out", "mlp_out", "z"),
    direction: str = "denoise",
    *,
    compare: bool = False,
) -> dict[str, Result]:
    """Estimate the patching effect of every activation of ``sites`` by attribution patching.

    Arguments:
        model: a TransformerLens model.
        task: the task whose metric is differentiated.
        sites: sites of ``SITE_AXES``; per-head sites give ``layer x pos x head``, the others
            ``layer x pos``, in the axis order ``patch_sweep`` uses.
        direction: ``"denoise"`` (estimate patching clean into corrupted) or ``"noise"``.
        compare: also run the exact ``patch_sweep`` for each site and record the Pearson
            correlation and max |diff| in ``provenance["exact"]``.

    Returns:
        ``{site: Result}`` of estimated metric *changes* plus the target metric, so each value is
        comparable with ``patch_sweep``'s patched metric.
    """
    sites = (sites,) if isinstance(sites, str) else tuple(sites)
    for site in sites:
        if site not in SITE_AXES:
            raise ValueError(f"site={site!r} is not accepted; sites: {', '.join(SITE_AXES)}")
    if direction not in ("denoise", "noise"):
        raise ValueError(f"direction={direction!r} is not accepted; use 'denoise' or 'noise'")
    batch = task.tokens(model) if isinstance(task, Task) else task
    clean_score, corrupted_score = batch.baseline(model)
    target, source = (
        (batch.corrupted, batch.clean) if direction == "denoise" else (batch.clean, batch.corrupted)
    )
    target_score = corrupted_score if direction == "denoise" else clean_score
    names = {
        (site, layer): hook_name(model, site, layer)
        for site in sites
        for layer in range(model.cfg.n_layers)
    }
    _, source_cache = run_with_cache(model, source, list(set(names.values())))
    saved: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(act, hook):
            saved[name] = act
            return act

        return hook

    with scoped_hooks(model, [(n, keep(n)) for n in set(names.values())]), torch.enable_grad():
        logits = model(target)[:, batch.answer_pos]
        metric = batch.score(logits[None])[0]
        order = sorted(saved)
        grads = dict(
            zip(order, torch.autograd.grad(metric, [saved[n] for n in order]), strict=True)
        )
    results = {}
    labels = position_labels(model, batch.clean[0])
    for site in sites:
        per_layer = []
        for layer in range(model.cfg.n_layers):
            name = names[(site, layer)]
            delta = (source_cache[name] - saved[name].detach()) * grads[name]
            if site == "pattern":  # batch head q k -> q head
                per_layer.append(delta.sum(dim=(0, 3)).T)
            elif delta.dim() == 4:  # batch pos head d
                per_layer.append(delta.sum(dim=(0, 3)))
            else:  # batch pos d
                per_layer.append(delta.sum(dim=(0, 2)))
        # the metric is a mean over prompts, so its gradient already carries the 1/batch factor
        values = torch.stack(per_layer).detach().float() + target_score
        axes = ("layer", "pos", "head") if values.dim() == 3 else ("layer", "pos")
        result = Result(
            values,
            axes,
            batch.metric,
            {"pos": labels},
            provenance={
                "model": provenance(model),
                "task": batch.task.name,
                "method": "attribution_patch",
                "site": site,
                "direction": direction,
                "clean_metric": clean_score,
                "corrupted_metric": corrupted_score,
            },
        )
        if compare:
            exact = patch_sweep(model, batch, site, axes, direction, progress=False)
            a, e = result.values.flatten(), exact.values.flatten()
            result.provenance["exact"] = {
                "pearson": float(torch.corrcoef(torch.stack([a, e]))[0, 1]),
                "max_abs_diff": float((a - e).abs().max()),
            }
        results[site] = result
    return results
