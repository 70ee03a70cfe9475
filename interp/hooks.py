"""Hook names, built in one place and checked against the model.

A hook point is a named place in the forward pass where an activation can be read or replaced.
TransformerLens names them ``blocks.{layer}.attn.hook_pattern`` and so on; the names have changed
between versions, so every ``interp`` function builds them here, with ``hook_name``, and the name
is checked against ``model.hook_dict``: an unknown one fails with the close matches.

Sites (the ``site`` argument across the library):

====================  ==========================================  ============================
site                  hook                                         shape
====================  ==========================================  ============================
``resid_pre``         ``blocks.L.hook_resid_pre``                  batch pos d_model
``resid_mid``         ``blocks.L.hook_resid_mid``                  batch pos d_model
``resid_post``        ``blocks.L.hook_resid_post``                 batch pos d_model
``attn_out``          ``blocks.L.hook_attn_out``                   batch pos d_model
``mlp_out``           ``blocks.L.hook_mlp_out``                    batch pos d_model
``mlp_in``            ``blocks.L.hook_mlp_in``                     batch pos d_model
``z``                 ``blocks.L.attn.hook_z``                     batch pos head d_head
``result``            ``blocks.L.attn.hook_result``                batch pos head d_model
``q`` / ``k`` / ``v`` ``blocks.L.attn.hook_q`` ...                 batch pos head d_head
``pattern``           ``blocks.L.attn.hook_pattern``               batch head q_pos k_pos
``attn_scores``       ``blocks.L.attn.hook_attn_scores``           batch head q_pos k_pos
``post``              ``blocks.L.mlp.hook_post`` (MLP neurons)     batch pos d_mlp
``pre``               ``blocks.L.mlp.hook_pre``                    batch pos d_mlp
``scale_ln1``         ``blocks.L.ln1.hook_scale``                  batch pos 1
``scale_ln2``         ``blocks.L.ln2.hook_scale``                  batch pos 1
``scale_final``       ``ln_final.hook_scale``                      batch pos 1
``embed``             ``hook_embed``                               batch pos d_model
====================  ==========================================  ============================
"""

from __future__ import annotations

import difflib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from . import _checks
from .adapter import ModelAdapter, adapter, unwrap


@dataclass(frozen=True)
class Site:
    """One named place in a transformer block where activations are read or patched.

    Arguments:
        name: the short name analyses take (``"z"``, ``"resid_pre"``).
        hook: the TransformerLens hook name, with ``{layer}`` where a block index goes.
        per_head: its activation has a head axis (``[batch, pos, head, d]``).
        head_first: the head axis comes before the positions (``[batch, head, q_pos, k_pos]``).
        needs_mlp: attention-only models (``cfg.attn_only``) lack it.
        patchable: activation patching sweeps it (``patch_sweep``'s ``site``).
    """

    name: str
    hook: str
    per_head: bool = False
    head_first: bool = False
    needs_mlp: bool = False
    patchable: bool = False

    @property
    def layered(self) -> bool:
        return "{layer}" in self.hook

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes a patching sweep of this site can take (empty when it is not patchable)."""
        if not self.patchable:
            return ()
        return ("layer", "pos", "head") if self.per_head else ("layer", "pos")


_SITE_LIST = (
    Site("resid_pre", "blocks.{layer}.hook_resid_pre", patchable=True),
    Site("resid_mid", "blocks.{layer}.hook_resid_mid", needs_mlp=True, patchable=True),
    Site("resid_post", "blocks.{layer}.hook_resid_post", patchable=True),
    Site("attn_out", "blocks.{layer}.hook_attn_out", patchable=True),
    Site("mlp_out", "blocks.{layer}.hook_mlp_out", needs_mlp=True, patchable=True),
    Site("mlp_in", "blocks.{layer}.hook_mlp_in", needs_mlp=True),
    Site("z", "blocks.{layer}.attn.hook_z", per_head=True, patchable=True),
    Site("result", "blocks.{layer}.attn.hook_result", per_head=True, patchable=True),
    Site("q", "blocks.{layer}.attn.hook_q", per_head=True, patchable=True),
    Site("k", "blocks.{layer}.attn.hook_k", per_head=True, patchable=True),
    Site("v", "blocks.{layer}.attn.hook_v", per_head=True, patchable=True),
    Site(
        "pattern",
        "blocks.{layer}.attn.hook_pattern",
        per_head=True,
        head_first=True,
        patchable=True,
    ),
    Site("attn_scores", "blocks.{layer}.attn.hook_attn_scores", per_head=True, head_first=True),
    Site("post", "blocks.{layer}.mlp.hook_post", needs_mlp=True),
    Site("pre", "blocks.{layer}.mlp.hook_pre", needs_mlp=True),
    Site("scale_ln1", "blocks.{layer}.ln1.hook_scale"),
    Site("scale_ln2", "blocks.{layer}.ln2.hook_scale", needs_mlp=True),
    Site("scale_final", "ln_final.hook_scale"),
    Site("embed", "hook_embed"),
    Site("pos_embed", "hook_pos_embed"),
)
# the one description of every site: hook names, head axes and patchable axes are all read here
SITES: dict[str, Site] = {site.name: site for site in _SITE_LIST}
_MLP_SITES = {n for n, site in SITES.items() if site.needs_mlp}


class UnknownHookError(KeyError):
    """A hook name or site that the model does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def hook_name(model, site: str, layer: int | None = None) -> str:
    """The checked hook name of ``site`` in ``layer``: ``hook_name(model, "z", 3)``.

    Names are remembered per model once checked: a TransformerBridge rebuilds its ``hook_dict``
    (tens of ms on SmolLM2) on every access, and engines name hundreds of hooks per pass. The
    first check of a site checks every layer's name at once.

    Raises:
        ValueError: ``site`` is not one of ``SITES``, or ``layer`` is out of range.
        UnknownHookError: the model has no such hook (e.g. ``mlp_out`` on an attention-only model).
    """
    known = adapter(model).cache("hook_names")
    name = known.get((site, layer))
    if name is None:
        name = _hook_name(model, site, layer)  # raises the helpful errors
        if layer is not None:
            hooks = model.hook_dict
            for other in range(model.cfg.n_layers):
                if (candidate := SITES[site].hook.format(layer=other)) in hooks:
                    known[(site, other)] = candidate
        known[(site, layer)] = name
    return name


def _hook_name(model, site: str, layer: int | None) -> str:
    if site not in SITES:
        close = difflib.get_close_matches(site, SITES, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown site {site!r}.{hint} Sites: {', '.join(SITES)}")
    if site in _MLP_SITES and getattr(model.cfg, "attn_only", False):
        raise UnknownHookError(
            f"the model has no {SITES[site].hook.format(layer=layer)!r}: it is attention-only "
            f"(cfg.attn_only), so it has no MLP sites ({', '.join(sorted(_MLP_SITES))})"
        )
    if not SITES[site].layered:
        return check_hook(model, SITES[site].hook)
    n_layers = model.cfg.n_layers
    if layer is None or not 0 <= int(layer) < n_layers:
        raise ValueError(
            f"layer={layer!r} is out of range for site {site!r}: use 0..{n_layers - 1}"
        )
    return check_hook(model, SITES[site].hook.format(layer=int(layer)))


def check_hook(model, name: str, hooks: dict | None = None) -> str:
    """Return ``name`` if the model has that hook point, else fail with the close matches.

    ``hooks``: the model's ``hook_dict``, when the caller checks many names (a TransformerBridge
    rebuilds it on every access, ~40 ms on SmolLM2).
    """
    hooks = model.hook_dict if hooks is None else hooks
    if name in hooks:
        return name
    close = difflib.get_close_matches(name, list(hooks), n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise UnknownHookError(
        f"the model has no hook {name!r}.{hint} "
        f"({type(model).__name__} with {len(hooks)} hook points; list them with model.hook_dict)"
    )


# -- scoped hooks ------------------------------------------------------------------------------
#
# Hooks live only inside a ``with`` block: TransformerLens's ``model.hooks`` removes exactly the
# hooks its block added, in a ``finally``, so also when the body raises. A model shared between
# threads (two app sessions on one cached model) would otherwise run one session's forward pass
# with the other's hooks attached, so every hooked computation also holds the model's lock.


def model_lock(model) -> threading.RLock:
    """The re-entrant lock that serialises hooked computations on ``model`` (its adapter's)."""
    return adapter(model).lock


@contextmanager
def holding(*models) -> Iterator:
    """Hold the locks of ``models`` for the block: nothing else run through ``interp`` touches them.

    Every analysis in ``interp`` holds its model's lock from start to end, so its forward passes
    (hooked or plain) never run while another thread's hooks are attached, and its numbers equal
    a serial run's. Wrap your own forward passes on a model shared with ``interp`` analyses in
    other threads the same way::

        with holding(model):
            logits = model(tokens)

    Several models are locked in one global order (by id), so two threads that lock the same pair
    cannot deadlock.
    """
    unwrapped = {id(m): m for m in map(unwrap, models)}
    locks = [model_lock(m) for m in sorted(unwrapped.values(), key=id)]
    for lock in locks:
        lock.acquire()
    try:
        yield models[0] if len(models) == 1 else models
    finally:
        for lock in reversed(locks):
            lock.release()


def locked(fn: Callable | None = None, *, models: Sequence[str] = ("model",)) -> Callable:
    """Decorate an analysis so that it runs holding the lock of its model argument(s).

    ``models`` names the parameters that hold models (default the first, ``model``). The lock
    is re-entrant, so analyses that call one another hold it once.
    """
    if fn is None:
        return functools.partial(locked, models=models)
    signature = inspect.signature(fn)
    params = list(signature.parameters)
    where = [params.index(name) for name in models]

    @functools.wraps(fn)
    def call(*args, **kwargs):
        held = [
            args[i] if i < len(args) else kwargs.get(name)
            for i, name in zip(where, models, strict=True)
        ]
        held = [m for m in held if m is not None and not isinstance(m, (str, bytes))]
        if not held:
            return fn(*args, **kwargs)
        if any(isinstance(m, ModelAdapter) for m in held):  # an analysis takes an adapter too
            args = tuple(unwrap(a) if i in where else a for i, a in enumerate(args))
            kwargs = {k: unwrap(v) if k in models else v for k, v in kwargs.items()}
            held = [unwrap(m) for m in held]
        with holding(*held):
            return fn(*args, **kwargs)

    return call


def run(model, *args, **kwargs):
    """``model(*args, **kwargs)`` holding the model's lock (see ``holding``)."""
    with model_lock(model):
        return model(*args, **kwargs)


@contextmanager
def scoped_hooks(model, fwd_hooks: Sequence[tuple[str, Callable]] = (), bwd_hooks=()) -> Iterator:
    """Attach hooks for the ``with`` block only, holding the model's lock; names are checked."""
    named = [name for name, _ in [*fwd_hooks, *bwd_hooks] if isinstance(name, str)]
    hooks = model.hook_dict if named else None
    for name in named:
        check_hook(model, name, hooks)
    fwd = [(n, _as_named(fn, n)) if isinstance(n, str) else (n, fn) for n, fn in fwd_hooks]
    bwd = [(n, _as_named(fn, n)) if isinstance(n, str) else (n, fn) for n, fn in bwd_hooks]
    with model_lock(model), model.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
        yield model


class _NamedHook:
    """The hook point as seen by a hook function, named as the caller asked.

    On a TransformerBridge, ``blocks.0.hook_resid_pre`` is an alias that fires as
    ``blocks.0.hook_in``; hook functions here key their results by ``hook.name``.
    """

    __slots__ = ("name", "_point")

    def __init__(self, name: str, point) -> None:
        self.name = name
        self._point = point

    def __getattr__(self, attr: str):
        return getattr(self._point, attr)


def _as_named(fn: Callable, name: str) -> Callable:
    def call(act, hook):
        return fn(act, _NamedHook(name, hook))

    return call


def run_with_cache(
    model, tokens: Tensor, names: Sequence[str], **kwargs
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model`` once, caching only the checked hook ``names``; returns ``(logits, cache)``."""
    hooks = model.hook_dict
    wanted = {check_hook(model, n, hooks) for n in names}
    cache: dict[str, Tensor] = {}

    def save(act, hook):
        cache[hook.name] = act.detach()

    with scoped_hooks(model, [(n, save) for n in wanted]), torch.no_grad():
        logits = model(tokens, **kwargs)
    return logits, cache


@contextmanager
def caching(
    model,
    names: Sequence[str] | Callable[[str], bool],
    *,
    positions: Sequence[int] | slice | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[dict[str, list[Tensor]]]:
    """Record activations of every forward pass run inside the block.

    Arguments:
        names: hook names, or a filter on names.
        positions: keep only these positions (axis 1 of ``[batch, pos, ...]`` activations, the
            query axis of patterns).
        device, dtype: where and how to store them (e.g. ``"cpu"``, ``torch.float16``).

    Yields:
        ``{name: [activation of each pass]}``, filled as passes run.

    Example:
        >>> with caching(model, ["blocks.0.hook_resid_post"], positions=[-1]) as cache:
        ...     model(tokens)
        >>> cache["blocks.0.hook_resid_post"][0].shape
    """
    selected = (
        [n for n in model.hook_dict if names(n)]
        if callable(names)
        else [check_hook(model, n) for n in _name_list(names)]
    )
    if positions is not None and not isinstance(positions, slice):
        _positions(model, positions)
    store: dict[str, list[Tensor]] = {n: [] for n in selected}

    def save(act, hook):
        kept = act.detach()
        if positions is not None:
            axis = 2 if hook.name.endswith(_HEAD_FIRST) else 1
            index = (
                positions
                if isinstance(positions, slice)
                else torch.as_tensor(
                    _seq_positions(positions, act.shape[axis], hook, "positions"),
                    device=act.device,
                )
            )
            kept = kept[(slice(None),) * axis + (index,)]
        store[hook.name].append(kept.to(device=device or kept.device, dtype=dtype or kept.dtype))

    with scoped_hooks(model, [(n, save) for n in selected]):
        yield store


# hook-name suffixes of the per-head activations, read from SITES (plus rotary q/k, no sites)
_HEAD_FIRST = tuple(s.hook.rsplit(".", 1)[-1] for s in _SITE_LIST if s.head_first)
_PER_HEAD = (
    *(s.hook.rsplit(".", 1)[-1] for s in _SITE_LIST if s.per_head),
    "hook_rot_q",
    "hook_rot_k",
)


def _name_list(names, arg: str = "names") -> list[str]:
    if isinstance(names, str):
        raise TypeError(
            f"{arg}={names!r} is a single string; give a list of hook names: [{names!r}]"
        )
    return list(names)


def _n_heads(model, name: str) -> int:
    """Heads along ``name``'s head axis: key/value heads for k and v under grouped-query attention."""
    cfg = model.cfg
    if (
        name.endswith(("hook_k", "hook_v", "hook_rot_k"))
        and getattr(cfg, "n_key_value_heads", None)
        and not getattr(cfg, "ungroup_grouped_query_attention", False)
    ):
        return cfg.n_key_value_heads
    return cfg.n_heads


def _check_heads(model, names: Sequence[str], heads) -> list[int] | None:
    """Refuse ``heads=`` for hooks without a head axis, and heads out of range, up front."""
    if heads is None:
        return None
    flat = [n for n in names if not n.endswith(_PER_HEAD)]
    if flat:
        raise ValueError(
            f"heads={heads!r} was given but {flat[0]!r} has no head axis; heads= applies only "
            f"to per-head hooks ({', '.join(_PER_HEAD)})"
        )
    n = min((_n_heads(model, name) for name in names), default=model.cfg.n_heads)
    _checks.indices(heads, n, "heads", f"for {n} heads")
    return list(heads)


def _positions(model, positions) -> list[int]:
    """Positions checked up front against the context (their sequence is known only in the hook)."""
    return _checks.indices(positions, int(model.cfg.n_ctx), "positions", "for any prompt")


def _seq_positions(positions, size: int, hook, arg: str = "positions") -> list[int]:
    """Positions as non-negative indices into a sequence of ``size`` tokens, checked."""
    return _checks.indices(positions, size, arg, f"for a sequence of {size} tokens at {hook.name}")


def _head_index(act: Tensor, hook, heads: Sequence[int] | None):
    """Index selecting ``heads`` in a per-head activation (all of it when ``heads`` is None)."""
    if heads is None:
        return (...,)
    head_axis = 1 if hook.name.endswith(_HEAD_FIRST) else 2
    heads = _checks.indices(heads, act.shape[head_axis], "heads", f"at {hook.name}")
    return (slice(None),) * head_axis + (heads,)


def _selection_mask(act: Tensor, hook, positions, heads) -> Tensor:
    """Boolean mask, broadcastable to ``act``, of the chosen positions and heads."""
    pattern = hook.name.endswith(("hook_pattern", "hook_attn_scores"))
    pos_axis, head_axis = (2, 1) if pattern else (1, 2)
    per_head = pattern or act.dim() == 4
    shape = [1] * act.dim()
    mask = torch.ones(shape, dtype=torch.bool, device=act.device)
    if positions is not None:
        shape_p = list(shape)
        shape_p[pos_axis] = act.shape[pos_axis]
        m = torch.zeros(shape_p, dtype=torch.bool, device=act.device)
        pos = _seq_positions(positions, act.shape[pos_axis], hook)
        m.index_fill_(pos_axis, torch.as_tensor(pos, device=act.device), True)
        mask = mask & m
    if heads is not None:
        if not per_head:
            raise ValueError(f"heads= was given but {hook.name} has no head axis")
        shape_h = list(shape)
        shape_h[head_axis] = act.shape[head_axis]
        m = torch.zeros(shape_h, dtype=torch.bool, device=act.device)
        heads = _checks.indices(heads, act.shape[head_axis], "heads", f"at {hook.name}")
        m.index_fill_(head_axis, torch.as_tensor(heads, device=act.device), True)
        mask = mask & m
    return mask


@contextmanager
def ablating(
    model,
    names: Sequence[str],
    how: str = "zero",
    *,
    reference: Tensor | None = None,
    heads: Sequence[int] | None = None,
    seed: int = 0,
) -> Iterator:
    """Ablate activations for passes run inside the block.

    Arguments:
        names: hook names to ablate.
        how: ``"zero"``; ``"mean"`` (the mean over ``reference`` prompts and positions... per
            position when lengths match); ``"resample"`` (the activation of a random other
            ``reference`` prompt).
        reference: token ids ``[batch, pos]`` for ``mean`` and ``resample``.
        heads: for per-head hooks (``hook_z``, ``hook_pattern`` ...), ablate only these heads.
    """
    if how not in ("zero", "mean", "resample"):
        raise ValueError(f"how={how!r} is not accepted; use 'zero', 'mean' or 'resample'")
    names = [check_hook(model, n) for n in _name_list(names)]
    heads = _check_heads(model, names, heads)
    stats: dict[str, Tensor] = {}
    if how != "zero":
        if reference is None:
            raise ValueError(f"how={how!r} needs reference token ids [batch, pos]")
        reference = _checks.token_ids(model, reference, "reference")
        if reference.dim() != 2:
            raise ValueError(
                f"reference token ids must be [batch, pos], got shape {tuple(reference.shape)}"
            )
        _, stats = run_with_cache(model, reference, names)
    gen = torch.Generator().manual_seed(seed)

    def ablate(act, hook):
        idx = _head_index(act, hook, heads)
        if how == "zero":
            act[idx] = 0.0
            return act
        ref = stats[hook.name]
        if how == "mean":
            mean = ref.mean(0, keepdim=True)
            mean = mean if mean.shape[1:] == act.shape[1:] else ref.mean((0, 1), keepdim=True)
            act[idx] = mean.expand_as(act)[idx]
            return act
        if ref.shape[1:] != act.shape[1:]:
            raise ValueError(
                f"resample ablation needs reference prompts of the same length at {hook.name}"
            )
        pick = torch.randint(0, ref.shape[0], (act.shape[0],), generator=gen).to(ref.device)
        act[idx] = ref[pick][idx]
        return act

    with scoped_hooks(model, [(n, ablate) for n in names]):
        yield model


@contextmanager
def patching_from(
    model,
    cache: dict[str, Tensor],
    names: Sequence[str] | None = None,
    *,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
) -> Iterator:
    """Replace activations with those in ``cache`` (from another run) inside the block."""
    names = [check_hook(model, n) for n in (_name_list(names) if names is not None else cache)]
    missing = [n for n in names if n not in cache]
    if missing:
        raise KeyError(f"the cache has no {missing[0]!r}; it holds {sorted(cache)[:5]}...")
    heads = _check_heads(model, names, heads)
    if positions is not None:
        _positions(model, positions)
    for n in names:
        _checks.finite(cache[n], f"cache[{n!r}]")

    def patch(act, hook):
        src = cache[hook.name].to(act.device, act.dtype)
        if src.shape != act.shape:
            raise ValueError(
                f"{hook.name}: cached shape {tuple(src.shape)} != run's {tuple(act.shape)}"
            )
        return torch.where(_selection_mask(act, hook, positions, heads), src, act)

    with scoped_hooks(model, [(n, patch) for n in names]):
        yield model


@contextmanager
def steering(
    model, name: str, vector: Tensor, *, scale: float = 1.0, positions: Sequence[int] | None = None
) -> Iterator:
    """Add ``scale * vector`` to the activation at ``name`` (all positions, or ``positions``)."""
    name = check_hook(model, name)
    if not isinstance(vector, Tensor):
        raise TypeError(f"vector must be a tensor, got {type(vector).__name__}")
    _checks.finite(vector, "vector")
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"scale={scale!r} must be a number")
    _checks.finite(scale, "scale")
    if positions is not None:
        _positions(model, positions)

    def steer(act, hook):
        v = (scale * vector).to(act.device, act.dtype)
        if v.shape[-1] != act.shape[-1]:
            raise ValueError(
                f"steering vector has width {v.shape[-1]}; {hook.name} has {act.shape[-1]}"
            )
        if positions is None:
            return act + v
        pos = _seq_positions(positions, act.shape[1], hook)
        act[:, pos] = act[:, pos] + v
        return act

    with scoped_hooks(model, [(name, steer)]):
        yield model


@contextmanager
def attention_knockout(
    model,
    layers: Sequence[int],
    dest: Sequence[int],
    src: Sequence[int],
    *,
    heads: Sequence[int] | None = None,
) -> Iterator:
    """Block attention from destination positions ``dest`` to source positions ``src``.

    Inside the block, in ``layers`` (and only ``heads``, default all), the attention scores from
    each ``dest`` to each ``src`` are set to -inf before the softmax, so no information moves
    along those edges (Geva et al., 2023). A query left with no allowed key attends nowhere.
    """
    n = model.cfg.n_layers
    bad = [la for la in layers if not 0 <= la < n]
    if bad or not layers:
        raise ValueError(f"layers={list(layers)} must be a non-empty list within 0..{n - 1}")
    names = [hook_name(model, "attn_scores", la) for la in layers]
    n_ctx = int(model.cfg.n_ctx)
    _checks.indices(dest, n_ctx, "dest", "for any prompt")
    _checks.indices(src, n_ctx, "src", "for any prompt")
    heads = _check_heads(model, names, heads)

    def knock(scores, hook):
        q, k = scores.shape[-2], scores.shape[-1]
        rows = torch.as_tensor(_seq_positions(dest, q, hook, "dest"), dtype=torch.long)
        cols = torch.as_tensor(_seq_positions(src, k, hook, "src"), dtype=torch.long)
        mask = torch.zeros(q, k, dtype=torch.bool, device=scores.device)
        mask[rows.to(scores.device)[:, None], cols.to(scores.device)[None, :]] = True
        h = slice(None) if heads is None else heads
        scores[:, h] = scores[:, h].masked_fill(mask, float("-inf"))
        return scores

    with scoped_hooks(model, [(name, knock) for name in names]):
        yield model
