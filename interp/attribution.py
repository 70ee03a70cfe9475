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

from . import _checks
from .adapter import adapter
from .hooks import hook_name, locked, run_with_cache, scoped_hooks
from .models import provenance
from .patching import SITE_AXES, hooked_site, patch_sweep, position_labels
from .result import Result
from .tasks import Task, TaskBatch, effect_reading


@locked
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
        (site, layer): hook_name(model, hooked_site(model, site), layer)
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
        logits = batch.read(model(target))
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
                **effect_reading(batch.metric, direction, False, clean_score, corrupted_score),
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


# -- direct logit attribution and the logit lens ----------------------------------------------------


def _final_norm(model, vectors: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Apply the final norm to components of the residual stream, with the run's frozen scale.

    With its scale frozen, the final LayerNorm (or RMSNorm) is linear, so the contributions of
    components add up to the normalised residual stream (its bias aside).
    """
    kind = model.cfg.normalization_type
    if kind in ("LN", "LNPre"):
        vectors = vectors - vectors.mean(-1, keepdim=True)
    out = vectors / scale
    if kind in ("LN", "RMS"):
        out = out * model.ln_final.w
    return out


@locked
def direct_logit_attribution(
    model, task: Task | TaskBatch, run: str = "clean"
) -> dict[str, Result]:
    """Each head's and each MLP neuron's direct effect on the logit difference at the answer position.

    The component's output, passed through the final norm with the run's own (frozen) scale and
    projected on ``W_U[:, answer] - W_U[:, wrong]`` (or ``W_U[:, answer]`` for the ``prob``,
    ``loss`` and ``kl`` metrics or without wrong answers; means over several answers per prompt),
    at each prompt's answer position, averaged over prompts. Heads, neurons, embeddings and biases
    sum to the logit difference (or the answer's logit) that the direction reads.

    Returns:
        ``{"heads": Result(layer, head), "neurons": Result(layer, neuron), "other": Result(term)}``.
    """
    if adapter(model).ln_final is None and model.cfg.normalization_type is not None:
        raise ValueError("direct_logit_attribution needs the model's final norm (ln_final)")
    batch = task.tokens(model) if isinstance(task, Task) else task
    if run not in ("clean", "corrupted"):
        raise ValueError(f"run={run!r} is not accepted; use 'clean' or 'corrupted'")
    tokens = batch.clean if run == "clean" else batch.corrupted
    n_layers = model.cfg.n_layers
    if isinstance(batch.answer_pos, int):
        pos = (slice(None), batch.answer_pos)
    elif batch.answer_pos.dim() == 1:
        pos = (torch.arange(batch.batch, device=batch.clean.device), batch.answer_pos)
    else:
        raise ValueError(
            "direct_logit_attribution reads one answer position per prompt; this task has "
            f"{batch.answer_pos.shape[1]} (a multi-token answer)"
        )
    names = [hook_name(model, "z", la) for la in range(n_layers)]
    names += [hook_name(model, "post", la) for la in range(n_layers)]
    names += ["hook_embed"] + (["hook_pos_embed"] if "hook_pos_embed" in model.hook_dict else [])
    if model.cfg.normalization_type is not None:
        names.append(hook_name(model, "scale_final"))
    _, cache = run_with_cache(model, tokens, names)

    def unembed(ids):  # the (mean) answer's unembedding direction [d_model, batch] and bias
        ids = ids.view(ids.shape[0], -1)
        return model.W_U[:, ids].mean(-1), model.b_U[ids].mean(-1)

    direction, bias = unembed(batch.answers)
    diff = batch.wrong_answers is not None and batch.task.metric not in ("prob", "loss", "kl")
    if diff:
        w_wrong, b_wrong = unembed(batch.wrong_answers)
        direction, bias = direction - w_wrong, bias - b_wrong
    direction = direction.T  # batch d_model
    scale = (
        cache["ln_final.hook_scale"][pos]
        if model.cfg.normalization_type is not None
        else torch.ones(1)
    )

    def project(vectors):  # [batch, ..., d_model] -> [batch, ...]
        shape = (-1,) + (1,) * (vectors.dim() - 2) + (1,)
        normed = _final_norm(model, vectors, scale.view(shape))
        return torch.einsum("b...d,bd->b...", normed, direction)

    heads = torch.stack(
        [
            project(torch.einsum("bhd,hdm->bhm", cache[names[la]][pos], model.W_O[la])).mean(0)
            for la in range(n_layers)
        ]
    )
    neurons = torch.stack(
        [
            project(cache[names[n_layers + la]][pos][:, :, None] * model.W_out[la]).mean(0)
            for la in range(n_layers)
        ]
    )
    embed = cache["hook_embed"][pos] + (
        cache["hook_pos_embed"][pos] if "hook_pos_embed" in cache else 0
    )
    other = {
        "embed": project(embed).mean(0),
        "attn biases": project(_bias_sum(model, "attn", "b_O").expand_as(embed)).mean(0),
        "mlp biases": project(_bias_sum(model, "mlp", "b_out").expand_as(embed)).mean(0),
        "unembed and norm biases": (
            bias + (model.ln_final.b @ direction.T).diagonal()
            if getattr(model.ln_final, "b", None) is not None
            else bias
        ).mean()
        if model.cfg.normalization_type is not None
        else bias.mean(),
    }
    prov = {
        "model": provenance(model),
        "task": batch.task.name,
        "method": "direct_logit_attribution",
        "run": run,
    }
    metric = "direct logit attribution" + (" (logit diff)" if diff else "")
    return {
        "heads": Result(heads.detach().float(), ("layer", "head"), metric, provenance=dict(prov)),
        "neurons": Result(
            neurons.detach().float(), ("layer", "neuron"), metric, provenance=dict(prov)
        ),
        "other": Result(
            torch.stack([torch.as_tensor(v).float() for v in other.values()]).detach(),
            ("term",),
            metric,
            {"term": list(other)},
            dict(prov),
        ),
    }


def _bias_sum(model, part: str, name: str) -> torch.Tensor:
    """A per-block output bias (``attn.b_O``, ``mlp.b_out``) summed over blocks; a missing one
    (a TransformerBridge of a model without biases has ``None``) counts as zero."""
    total = torch.zeros(model.cfg.d_model, device=model.W_U.device, dtype=model.W_U.dtype)
    for block in model.blocks:
        bias = getattr(getattr(block, part), name, None)
        if bias is not None:
            total = total + bias
    return total


@locked
def logit_lens(model, tokens: torch.Tensor, targets: torch.Tensor | None = None) -> Result:
    """Log-probability of each next token read off the residual stream after every layer.

    Each layer's ``resid_post`` goes through the final norm (with its own scale) and the
    unembedding: ``[layer, pos]`` log-probabilities of ``targets`` (default: the actual next
    tokens), averaged over the batch.
    """
    tokens = _checks.token_ids(model, tokens, "tokens")
    if tokens.dim() != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be [batch, pos>=2], got {tuple(tokens.shape)}")
    if targets is not None:
        targets = _checks.token_ids(model, targets, "targets")
        if (
            targets.dim() != 2
            or targets.shape[0] != tokens.shape[0]
            or targets.shape[1] > tokens.shape[1]
        ):
            raise ValueError(
                f"targets must be token ids [batch, pos] with batch {tokens.shape[0]} and at "
                f"most {tokens.shape[1]} positions, got shape {tuple(targets.shape)}"
            )
    targets = tokens[:, 1:] if targets is None else targets
    names = [hook_name(model, "resid_post", la) for la in range(model.cfg.n_layers)]
    _, cache = run_with_cache(model, tokens, names)
    rows = []
    with torch.no_grad():
        for name in names:
            resid = cache[name][:, : targets.shape[1]]
            ln_final = adapter(model).ln_final
            normed = ln_final(resid) if ln_final is not None else resid
            logprobs = (normed @ model.W_U + model.b_U).log_softmax(-1)
            rows.append(logprobs.gather(-1, targets[..., None].to(logprobs.device))[..., 0].mean(0))
    labels = {"pos": position_labels(model, tokens[0])[: targets.shape[1]]}
    return Result(
        torch.stack(rows).float(),
        ("layer", "pos"),
        "log-prob of the next token",
        labels,
        {"model": provenance(model), "method": "logit_lens"},
    )
