"""Activation patching: swap one activation between a clean and a corrupted run, read the metric.

*Denoising* patches a clean activation into the corrupted run (how much of the behaviour does
this activation restore?); *noising* patches a corrupted activation into the clean run (how much
does losing it hurt?). ``patch_sweep`` does this for every layer, position and head of a site
and returns a Result with one value per patch, equal to what ``transformer_lens.patching`` gives.

How it is fast: TransformerLens runs one full forward pass per patch. Here, many patches share one
batched pass, and on a ``HookedTransformer`` each patched run *resumes* at the patched layer from
the cached residual stream of the target run, computing only the positions at and after the
earliest patched position: the earlier positions cannot change (attention is causal), so their
keys and values are read from the target run through a frozen KV cache. Only the answer positions
are unembedded. Patches after every prompt's answer position cannot change the metric and are not
run.
Patches that start at the same position share one pass through the layers (a wave): each
joins the batch at its own layer, so every block runs on one large batch.
"""

from __future__ import annotations

import itertools
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import _checks, forward
from .adapter import adapter
from .hooks import SITES, hook_name, locked, model_lock, run_with_cache, scoped_hooks
from .models import provenance
from .result import Result
from .tasks import Task, TaskBatch, effect_reading, normalised

# the sites a sweep can patch and their axes, read from interp.hooks.SITES
SITE_AXES: dict[str, tuple[str, ...]] = {
    n: site.axes for n, site in SITES.items() if site.patchable
}
DIRECTIONS = ("denoise", "noise")
_HEAD_FIRST = {n for n, site in SITES.items() if site.head_first}  # [batch, head, q, k]


@dataclass(frozen=True)
class Patch:
    """One patch: a layer, and a position and head (``None`` = all of them)."""

    layer: int
    pos: int | None
    head: int | None


def _validate(model, task, site: str, by, direction: str) -> tuple[TaskBatch, tuple[str, ...]]:
    if site not in SITE_AXES:
        raise ValueError(f"site={site!r} cannot be patched; sites: {', '.join(SITE_AXES)}")
    if isinstance(by, str):
        by = (by,)
    by = tuple(by)
    if not by:
        raise ValueError(
            f"by=() is an empty sweep; give axes from {SITE_AXES[site]}, e.g. ('layer', 'pos')"
        )
    bad = [a for a in by if a not in SITE_AXES[site]]
    if bad or len(set(by)) != len(by):
        raise ValueError(
            f"by={by} is not accepted for site {site!r}: use distinct axes from {SITE_AXES[site]}"
        )
    if "layer" not in by:
        raise ValueError(f"by={by} must include 'layer'")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not accepted; use 'denoise' or 'noise'")
    for layer in range(model.cfg.n_layers):  # fails early for a site the model lacks
        hook_name(model, site, layer)
    batch = task.tokens(model) if isinstance(task, Task) else task
    if not isinstance(batch, TaskBatch):
        raise TypeError(f"task must be an interp.Task, got {type(task).__name__}")
    return batch, by


@locked
def patch_sweep(
    model,
    task: Task | TaskBatch,
    site: str,
    by: tuple[str, ...] | str = ("layer", "pos"),
    direction: str = "denoise",
    *,
    normalize: bool = False,
    max_tokens: int = 32_768,
    engine: str = "auto",
    progress: bool | Callable[[int, int], None] = True,
) -> Result:
    """Patch ``site`` at every combination of the ``by`` axes and measure the task metric.

    Arguments:
        model: a TransformerLens model.
        task: a Task (or one already tokenized).
        site: one of ``SITE_AXES`` (``resid_pre``, ``attn_out``, ``z``, ``pattern``, ...).
        by: the axes to sweep, in the order of the Result's axes, e.g. ``("layer", "pos", "head")``;
            an axis left out is patched whole (``("layer", "head")`` patches every position).
        direction: ``"denoise"`` (clean into corrupted) or ``"noise"`` (corrupted into clean).
        normalize: map the corrupted run to 0 and the clean run to 1.
        max_tokens: memory budget: rows x positions in one batched pass.
        engine: ``"resume"`` (a HookedTransformer, or a TransformerBridge in compatibility
            mode), ``"full"`` (any model) or ``"auto"``.
        progress: show a progress bar; or a function called with ``(done, total)`` patches as
            the sweep goes (an app's progress bar).

    Returns:
        A Result with axes ``by``; ``provenance`` holds the clean and corrupted metric, the
        engine that ran and, where ``"auto"`` could not resume, ``engine_fallback``: why
        (the features ``interp.forward.blockers`` names, e.g. QK-norm).

    Example:
        >>> r = patch_sweep(model, task, site="z", by=("layer", "pos", "head"))
        >>> # equals transformer_lens.patching.get_act_patch_attn_head_out_by_pos(...)
    """
    batch, by = _validate(model, task, site, by, direction)
    _checks.positive_int(max_tokens, "max_tokens")
    if engine not in ("auto", "resume", "full"):
        raise ValueError(f"engine={engine!r} is not accepted; use 'auto', 'resume' or 'full'")
    auto = engine == "auto"
    blocked = forward.blockers(model, batch.clean.shape[1])
    # why the sweep ran full forward passes where it asked for the fast engine, for provenance
    fallback = f"the resumable engine does not cover: {', '.join(blocked)}" if blocked else None
    if auto:
        engine = "full" if blocked else "resume"
    elif engine == "resume" and blocked:
        raise ValueError(
            f"engine='resume' does not cover this model ({type(model).__name__}): "
            f"{', '.join(blocked)}; use engine='full' or 'auto'"
        )
    clean_score, corrupted_score = batch.baseline(model)
    target, source = (
        (batch.corrupted, batch.clean) if direction == "denoise" else (batch.clean, batch.corrupted)
    )
    target_score = corrupted_score if direction == "denoise" else clean_score
    sizes = {"layer": model.cfg.n_layers, "pos": target.shape[1], "head": site_heads(model, site)}
    patches = [
        Patch(**{a: dict(zip(by, combo)).get(a) for a in ("layer", "pos", "head")})
        for combo in itertools.product(*(range(sizes[a]) for a in by))
    ]
    hook_site = hooked_site(model, site)
    names = {layer: hook_name(model, hook_site, layer) for layer in range(model.cfg.n_layers)}
    with torch.no_grad():
        _, source_cache = run_with_cache(model, source, list(names.values()))
        try:
            runner = (_ResumeRunner if engine == "resume" else _FullRunner)(
                model, batch, target, hook_site, names, max_tokens
            )
        except forward.EngineMismatch as err:
            if not auto:
                raise ValueError(f"engine='resume' cannot run this model: {err}") from err
            warnings.warn(f"{err}; patching with full forward passes instead", stacklevel=2)
            engine, fallback = "full", str(err)
            runner = _FullRunner(model, batch, target, hook_site, names, max_tokens)
        values = runner.run(patches, source_cache, target_score, progress)
    values = values.view(*(sizes[a] for a in by))
    metric = batch.metric
    if normalize:
        values = normalised(values, clean_score, corrupted_score)
        metric = f"{metric} (normalised: corrupted 0, clean 1)"
    labels = {a: [str(i) for i in range(sizes[a])] for a in by}
    if "pos" in by:
        labels["pos"] = position_labels(model, batch.clean[0])
    return Result(
        values,
        by,
        metric,
        labels,
        provenance={
            "model": provenance(model),
            "task": batch.task.name,
            "method": "patch_sweep",
            "site": site,
            "patched_at": hook_site,
            "by": list(by),
            "direction": direction,
            "engine": engine,
            "engine_fallback": fallback if auto and engine == "full" else None,
            "clean_metric": clean_score,
            "corrupted_metric": corrupted_score,
            "normalized": normalize,
            "n_prompts": batch.batch,
            "metric": batch.metric,
            "answer_pos": batch.answer_pos
            if isinstance(batch.answer_pos, int)
            else batch.answer_pos.tolist(),
            **effect_reading(batch.metric, direction, normalize, clean_score, corrupted_score),
        },
    )


def hooked_site(model, site: str) -> str:
    """The site whose hook carries ``site``'s activations: ``site`` itself, except ``result``
    (a head's output ``z_h @ W_O[h]``), which TransformerLens computes only with
    ``cfg.use_attn_result``. Nothing else reads a head's result, so patching (or differentiating
    at) ``z_h`` has the same effect, and ``z`` stands in for it."""
    if site == "result" and not getattr(model.cfg, "use_attn_result", False):
        return "z"
    return site


def site_heads(model, site: str) -> int:
    """Heads along a site's head axis: key/value heads for k and v under grouped-query attention."""
    cfg = model.cfg
    if (
        site in ("k", "v")
        and cfg.n_key_value_heads
        and not getattr(cfg, "ungroup_grouped_query_attention", False)
    ):
        return cfg.n_key_value_heads
    return cfg.n_heads


@locked
def position_labels(model, tokens: Tensor) -> list[str]:
    """``"i:token"`` labels for a position axis (token ids when the model has no tokenizer)."""
    strings = model.to_str_tokens(tokens) if model.tokenizer is not None else tokens.tolist()
    return [f"{i}:{s}" for i, s in enumerate(strings)]


def _write(site: str, act: Tensor, src: Tensor, rows: slice, patch: Patch, offset: int) -> None:
    """Copy the source activation into ``act`` for one patch (positions shifted by ``offset``)."""
    if site in _HEAD_FIRST:  # [batch, head, q_pos, k_pos]; ``pos`` is the destination
        h = slice(None) if patch.head is None else patch.head
        if patch.pos is None:
            act[rows, h] = src[:, h, offset:]
        else:
            act[rows, h, patch.pos - offset] = src[:, h, patch.pos]
        return
    if patch.pos is None:
        if patch.head is None:
            act[rows] = src[:, offset:]
        else:
            act[rows, :, patch.head] = src[:, offset:, patch.head]
    elif patch.head is None:
        act[rows, patch.pos - offset] = src[:, patch.pos]
    else:
        act[rows, patch.pos - offset, patch.head] = src[:, patch.pos, patch.head]


class _FullRunner:
    """Batched patches, each a full forward pass: works on any TransformerLens model."""

    def __init__(self, model, batch: TaskBatch, target: Tensor, site: str, names, max_tokens: int):
        self.partial: Callable[[int], None] = lambda k: None
        self.model, self.batch, self.target, self.site, self.names = (
            model,
            batch,
            target,
            site,
            names,
        )
        self.max_tokens = max_tokens

    def start(self, patch: Patch) -> int:
        return 0

    def run(
        self,
        patches: list[Patch],
        source_cache,
        target_score: float,
        progress: bool | Callable[[int, int], None],
    ) -> Tensor:
        """The metric after each patch; patches in batches of ``batches``, with progress."""
        values = torch.full((len(patches),), float("nan"))
        pending = []
        for i, p in enumerate(patches):
            if self.start(p) > self.batch.last_answer_pos:
                values[i] = target_score  # causally cannot reach the answer position
            else:
                pending.append(i)
        report = progress if callable(progress) else None
        bar = tqdm(
            total=len(patches),
            desc=f"patching {self.site}",
            disable=report is not None or not progress,
            leave=False,
        )
        done = len(patches) - len(pending)
        shown = 0

        def show(n: int) -> None:  # n patches' worth of work done in all
            nonlocal shown
            if n > shown:
                bar.update(n - shown)
                shown = n
                if report is not None:
                    report(n, len(patches))

        show(done)
        # a long batch reports its progress as it goes: ``partial(k)`` = k patches' worth of it
        self.partial = lambda k: show(done + k)
        for idx, scores in self.batches(patches, pending, source_cache):
            values[idx] = scores.cpu()
            done += len(idx)
            show(done)
        bar.close()
        return values

    def batches(self, patches: list[Patch], pending: list[int], source_cache):
        """Yield ``(patch indices, their metric)``: patches of one layer in chunks, each chunk a
        batched full forward pass."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i in pending:
            groups[patches[i].layer].append(i)
        per_chunk = max(1, self.max_tokens // (self.batch.batch * self.target.shape[1]))
        for layer, idx in groups.items():
            for k in range(0, len(idx), per_chunk):
                chunk = idx[k : k + per_chunk]
                src = source_cache[self.names[layer]]
                out = self.forward(layer, [patches[i] for i in chunk], src)
                yield chunk, self.score(out, len(chunk))

    def score(self, logits: Tensor, n: int) -> Tensor:
        return self.batch.score(logits)

    def _hook(self, patches: list[Patch], src: Tensor, start: int):
        b = self.batch.batch

        def hook(act, hook):
            for n, patch in enumerate(patches):
                _write(self.site, act, src, slice(n * b, (n + 1) * b), patch, start)
            return act

        return hook

    def forward(self, layer: int, patches: list[Patch], src: Tensor) -> Tensor:
        tokens = self.target.repeat(len(patches), 1)
        hook = self._hook(patches, src, 0)
        with scoped_hooks(self.model, [(self.names[layer], hook)]):
            logits = self.model(tokens)
        return self.batch.read(logits.view(len(patches), self.batch.batch, *logits.shape[1:]))


class _SitePatch:
    """The patch callback of ``interp.forward``: writes source activations at one site."""

    def __init__(self, site: str, write):
        self.sites = (site,)
        self.write = write

    def __call__(self, site: str, act: Tensor) -> Tensor:
        if site != self.sites[0]:
            return act
        act = act.clone()
        self.write(act)
        return act


class _ResumeRunner(_FullRunner):
    """Resume each patched run at its layer and earliest position; only the answer is unembedded.

    Patches that start at the same position run as one *wave* through the layers: a patch at layer
    ``L`` joins the batch at block ``L`` and rides along with the patches of earlier layers from
    there on. Each row still computes only the blocks after its own patch, but every block runs
    once per wave on one large batch instead of once per layer on a small one, which keeps the
    matrix multiplies near their peak rate and the per-call overhead small.
    """

    def __init__(self, model, batch: TaskBatch, target: Tensor, site: str, names, max_tokens: int):
        super().__init__(model, batch, target, site, names, max_tokens)
        n = model.cfg.n_layers
        wanted = [
            f"blocks.{i}.{s}"
            for i in range(n)
            for s in ("hook_resid_pre", "attn.hook_k", "attn.hook_v")
        ]
        # a per-position z patch changes its layer only at its own position: it skips the layer
        self.single_position = site == "z"
        if self.single_position:
            wanted += [
                f"blocks.{i}.{s}"
                for i in range(n)
                for s in ("hook_resid_mid", "hook_resid_post", "attn.hook_z")
            ]
        last = f"blocks.{n - 1}.hook_resid_post"
        _, cache = run_with_cache(model, target, [*wanted, last])
        self.resid = [cache[f"blocks.{i}.hook_resid_pre"] for i in range(n)]
        self.final = cache[last]
        with model_lock(model):
            forward.matches(model, self.resid[0], cache[last])
        self.keys = [cache[f"blocks.{i}.attn.hook_k"] for i in range(n)]
        self.values = [cache[f"blocks.{i}.attn.hook_v"] for i in range(n)]
        if self.single_position:
            self.mid = [cache[f"blocks.{i}.hook_resid_mid"] for i in range(n)]
            self.post = [cache[f"blocks.{i}.hook_resid_post"] for i in range(n)]
            self.z = [cache[f"blocks.{i}.attn.hook_z"] for i in range(n)]

    def start(self, patch: Patch) -> int:
        return 0 if patch.pos is None else patch.pos

    def batches(self, patches: list[Patch], pending: list[int], source_cache):
        """Yield ``(patch indices, their metric)``, a wave at a time (see the class)."""
        by_start: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i in pending:
            by_start[self.start(patches[i])][patches[i].layer].append(i)
        seq = self.target.shape[1]
        for start, layers in sorted(by_start.items()):
            tokens = sum(map(len, layers.values())) * self.batch.batch * (seq - start)
            n_waves = min(-(-tokens // self.max_tokens), max(map(len, layers.values())))
            for w in range(n_waves):
                parts = {
                    layer: idx[w * len(idx) // n_waves : (w + 1) * len(idx) // n_waves]
                    for layer, idx in sorted(layers.items())
                }
                wave = {layer: part for layer, part in parts.items() if part}
                if wave:
                    order, resid = self._wave(start, wave, patches, source_cache)
                    yield order, self.score(resid, len(order))

    def _wave(
        self, start: int, wave: dict[int, list[int]], patches: list[Patch], source_cache
    ) -> tuple[list[int], Tensor]:
        """Run the patches of ``wave`` (layer -> patch indices, all starting at ``start``).

        Returns the patch indices in row order and their final normalised residual stream at the
        answer positions ``[patches, batch, (m,) d_model]``.
        """
        model = self.model
        x: Tensor | None = None
        order: list[int] = []
        first, n_layers = min(wave), model.cfg.n_layers
        size = sum(map(len, wave.values()))
        with model_lock(model):
            for layer in range(first, n_layers):
                # blocks done so far, as patches' worth of the wave (the last reported by run)
                self.partial(size * (layer - first) // (n_layers - first))
                new = [patches[i] for i in wave.get(layer, ())]
                src = source_cache[self.names[layer]] if new else None
                skip = self.single_position and all(p.pos is not None for p in new)
                patch = forward._no_patch
                if new and skip:
                    if x is not None:
                        x = forward.block(model, layer, x, start, self._prefix(layer, x), patch)
                    x = _cat(x, self._skip_layer(layer, start, new, src))
                else:
                    if new:
                        rows = 0 if x is None else x.shape[0]
                        fresh = self.resid[layer][:, start:].repeat(len(new), 1, 1)
                        x = _cat(x, fresh)
                        patch = _SitePatch(self.site, self._writer(new, src, start, rows))
                    if x is not None:
                        x = forward.block(model, layer, x, start, self._prefix(layer, x), patch)
                order += wave.get(layer, [])
            x = x.view(len(order), self.batch.batch, *x.shape[1:])
            if start > self.batch.first_answer_pos:  # answers before ``start`` are unchanged
                prefix = self.final[:, :start].expand(len(order), -1, -1, -1)
                x, start = torch.cat([prefix, x], dim=2), 0
            final = self.batch.read(x, offset=start)
            ln_final = adapter(model).ln_final
            if ln_final is not None:
                flat = final.reshape(-1, 1, final.shape[-1])
                final = ln_final(flat).view(final.shape)
            return order, final

    def _writer(self, new: list[Patch], src: Tensor, start: int, rows: int):
        b = self.batch.batch

        def write(act):
            for n, patch in enumerate(new):
                row = rows + n * b
                _write(self.site, act, src, slice(row, row + b), patch, start)

        return write

    def _prefix(self, layer: int, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The target run's keys and values of positions before ``x``'s, one copy per row."""
        start = self.resid[layer].shape[1] - x.shape[1]
        if start == 0:
            return None
        reps = x.shape[0] // self.batch.batch
        return (
            self.keys[layer][:, :start].repeat(reps, 1, 1, 1),
            self.values[layer][:, :start].repeat(reps, 1, 1, 1),
        )

    def _skip_layer(self, layer: int, pos: int, patches: list[Patch], src: Tensor) -> Tensor:
        """Residual stream after ``layer`` at positions ``pos..`` for z patches at ``pos``.

        Patching ``z`` at one position changes the attention output there alone, by
        ``(z_source - z_target) @ W_O``; the MLP then runs at that position only, and every later
        position keeps the target run's ``resid_post``.
        """
        model, reps = self.model, len(patches)
        w_o = model.blocks[layer].attn.W_O  # head d_head d_model
        diff = src[:, pos] - self.z[layer][:, pos]  # batch head d_head
        if all(p.head is not None for p in patches):  # one head each: all heads in one product
            per_head = torch.einsum("bhd,hdm->hbm", diff, w_o)
            delta = per_head[[p.head for p in patches]].reshape(reps * diff.shape[0], -1)
        else:
            delta = torch.cat([torch.einsum("bhd,hdm->bm", diff, w_o)] * reps)
        mid = self.mid[layer][:, pos].repeat(reps, 1) + delta  # reps*batch d_model
        blk = model.blocks[layer]
        post = mid + forward.mlp(model, layer, blk.ln2(mid[:, None]))[:, 0]
        x = self.post[layer][:, pos:].repeat(reps, 1, 1)
        x[:, 0] = post
        return x

    def score(self, resid: Tensor, n: int) -> Tensor:
        return self.batch.score_resid(resid, self.model)


def _cat(x: Tensor | None, new: Tensor) -> Tensor:
    return new if x is None else torch.cat([x, new])
