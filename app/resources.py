"""The model and the analyses the pages show, cached once per process.

The model is loaded once per (spec, device) with ``st.cache_resource`` and shared by every
session. Everything computed on it is cached with ``st.cache_data``, keyed by the spec string
(never by the model object) and the settings, and returns small values: numpy arrays, ``Result``
objects, lists of strings, never activation caches.

A shared model must never run one session's forward pass with another session's hooks attached,
so every computation here holds ``interp.hooks.model_lock(model)`` for its whole length, plain
forward passes included; ``interp``'s own hooked helpers take the same (re-entrant) lock inside.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from interp import heads as H
from interp.adapter import adapter
from interp.hooks import hook_name, model_lock, run_with_cache
from interp.models import ModelNotAvailableOffline, ModelSpecError, load_model
from interp.result import Result

MODEL_ERRORS = (ModelSpecError, ModelNotAvailableOffline, OSError, ValueError)

# the head scores of the atlas: the library's registry (name -> HeadScore with .help)
HEAD_SCORES = H.HEAD_SCORES


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def devices() -> list[str]:
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def get_model(spec: str, device: str):
    """The shared model of ``spec`` on ``device`` (exceptions are not cached: a fix retries)."""
    return load_model(spec, device=device)


@dataclass(frozen=True)
class ModelInfo:
    n_layers: int
    n_heads: int
    n_ctx: int
    d_vocab: int
    d_model: int
    backend: str
    attn_only: bool


def model_info(model) -> ModelInfo:
    c = model.cfg
    return ModelInfo(
        c.n_layers,
        c.n_heads,
        c.n_ctx,
        c.d_vocab,
        c.d_model,
        adapter(model).backend,
        bool(getattr(c, "attn_only", False)),
    )


# -- the prompt ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptView:
    """The prompt as the model reads it: token strings (BOS first) and each token's loss."""

    tokens: list[str]
    ids: list[int]
    loss: np.ndarray  # loss of predicting token i from tokens < i; nan at 0


@st.cache_data(max_entries=64, show_spinner=False)
def prompt_view(spec: str, device: str, prompt: str) -> PromptView:
    model = get_model(spec, device)
    with model_lock(model), torch.no_grad():
        ids = model.to_tokens(prompt)
        loss = model(ids, return_type="loss", loss_per_token=True)[0]
    strs = model.to_str_tokens(ids[0])
    per_token = np.concatenate([[np.nan], loss.float().cpu().numpy()])
    return PromptView(list(strs), ids[0].tolist(), per_token)


def prompt_problem(model, prompt: str) -> str | None:
    """Why ``prompt`` cannot be run, or None."""
    if not prompt.strip():
        return "The prompt is empty: type some text in the sidebar."
    n = len(model.to_tokens(prompt, truncate=False)[0])  # to_tokens cuts at n_ctx by default
    if n > model.cfg.n_ctx:
        return (
            f"The prompt is {n} tokens long (BOS included) but the model reads at most "
            f"{model.cfg.n_ctx}: shorten it."
        )
    return None


# -- heads ---------------------------------------------------------------------------------------


@st.cache_data(max_entries=128, show_spinner=False)
def head_score(spec: str, device: str, score: str, prompt: str = "") -> Result:
    """The ``layer x head`` Result of the head score ``score`` (a name in ``HEAD_SCORES``)."""
    model = get_model(spec, device)
    tokens = model.to_tokens(prompt) if HEAD_SCORES[score].reads_prompt else None
    return H.score_heads(model, score, tokens)


@st.cache_data(max_entries=64, show_spinner=False)
def attention_patterns(
    spec: str, device: str, prompt: str, heads: tuple[tuple[int, int], ...]
) -> np.ndarray:
    """Attention patterns ``[len(heads), q, k]`` (float32) of the chosen heads on ``prompt``."""
    model = get_model(spec, device)
    layers = sorted({layer for layer, _ in heads})
    names = {layer: hook_name(model, "pattern", layer) for layer in layers}
    with model_lock(model):
        _, cache = run_with_cache(model, model.to_tokens(prompt), list(names.values()))
    return np.stack(
        [cache[names[layer]][0, head].float().cpu().numpy() for layer, head in heads]
    ).astype(np.float32)


# -- induction -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InductionProbe:
    first: np.ndarray  # mean loss at each position of the first copy (predicting r_2..r_period)
    second: np.ndarray  # the same positions of the second copy
    pattern: np.ndarray  # [q, k] pattern of the chosen head on sequence 0
    tokens: list[str]  # token strings of sequence 0
    mean_first: float
    mean_second: float


@st.cache_data(max_entries=32, show_spinner=False)
def induction_probe(
    spec: str, device: str, period: int, n: int, seed: int, layer: int, head: int
) -> InductionProbe:
    """Per-position loss on both copies of repeated random tokens, and one head's pattern."""
    model = get_model(spec, device)
    tokens = H.repeated_random_tokens(model, n=n, period=period, seed=seed)
    with model_lock(model):
        first, second = H.repeated_token_loss_by_position(model, tokens, period)
        _, cache = run_with_cache(model, tokens[:1], [hook_name(model, "pattern", layer)])
    pattern = cache[hook_name(model, "pattern", layer)][0, head].float().cpu().numpy()
    tokens_0 = list(model.to_str_tokens(tokens[0]))
    return InductionProbe(
        first.numpy(), second.numpy(), pattern, tokens_0, first.mean().item(), second.mean().item()
    )


@st.cache_data(max_entries=16, show_spinner=False)
def composition(spec: str, device: str, mode: str = "K") -> Result:
    model = get_model(spec, device)
    with model_lock(model):
        return H.composition_scores(model, mode)


# -- patching ------------------------------------------------------------------------------------


def task_names() -> list[str]:
    from interp.tasks import TASKS

    return list(TASKS)


def site_axes() -> dict[str, tuple[str, ...]]:
    from interp.patching import SITE_AXES

    return dict(SITE_AXES)


_SWEEPS: dict[tuple, Result] = {}  # finished sweeps, shared by sessions like st.cache_data
_SWEEPS_LOCK = threading.Lock()


def run_patching(*settings, on_progress=None) -> Result:
    """Run ``interp.patching.patch_sweep`` for ``settings`` (see ``patching_result``), reporting
    ``on_progress(done, total)``; the Result is kept for ``patching_result``. Not st.cache_data:
    a cached function may not drive a progress bar drawn outside it."""
    from interp.patching import patch_sweep
    from interp.tasks import make_task

    spec, device, task, n, site, by, direction, normalize = settings
    model = get_model(spec, device)
    with model_lock(model):
        t = make_task(task, model, n=n)
        result = patch_sweep(
            model,
            t,
            site=site,
            by=by,
            direction=direction,
            normalize=normalize,
            progress=on_progress or False,
        )
    with _SWEEPS_LOCK:
        while len(_SWEEPS) >= 32:
            _SWEEPS.pop(next(iter(_SWEEPS)))
        _SWEEPS[tuple(settings)] = result
    return result


def patching_result(
    spec: str,
    device: str,
    task: str,
    n: int,
    site: str,
    by: tuple[str, ...],
    direction: str,
    normalize: bool,
) -> Result:
    """``interp.patching.patch_sweep`` of a shipped task (``n`` prompt pairs), run once per
    settings and kept."""
    settings = (spec, device, task, n, site, by, direction, normalize)
    with _SWEEPS_LOCK:
        done = _SWEEPS.get(settings)
    return done if done is not None else run_patching(*settings)


def run_path_patching(*settings, on_progress=None) -> Result:
    """Run ``interp.path_patching.path_patch_sweep`` for ``settings`` (see
    ``path_patching_result``), reporting ``on_progress(done, total)``; the Result is kept."""
    from interp.path_patching import path_patch_sweep
    from interp.tasks import make_task

    spec, device, task, n, receivers, senders_at, receivers_at, direction, normalize = settings
    model = get_model(spec, device)
    with model_lock(model):
        result = path_patch_sweep(
            model,
            make_task(task, model, n=n),
            "logits" if receivers == "logits" else list(receivers),
            direction,
            sender_positions=None if senders_at is None else list(senders_at),
            receiver_positions=None if receivers_at is None else list(receivers_at),
            normalize=normalize,
            progress=on_progress or False,
        )
    with _SWEEPS_LOCK:
        while len(_SWEEPS) >= 32:
            _SWEEPS.pop(next(iter(_SWEEPS)))
        _SWEEPS[("path", *settings)] = result
    return result


def path_patching_result(
    spec: str,
    device: str,
    task: str,
    n: int,
    receivers: str | tuple[tuple[str, int, int], ...],
    senders_at: tuple[int | str, ...] | None,
    receivers_at: tuple[int | str, ...] | None,
    direction: str,
    normalize: bool,
) -> Result:
    """``interp.path_patching.path_patch_sweep`` of a shipped task (``n`` prompt pairs) into
    ``receivers`` at positions (``None``: all), run once per settings and kept."""
    settings = (spec, device, task, n, receivers, senders_at, receivers_at, direction, normalize)
    with _SWEEPS_LOCK:
        done = _SWEEPS.get(("path", *settings))
    return done if done is not None else run_path_patching(*settings)


@st.cache_data(max_entries=32, show_spinner=False)
def task_positions(spec: str, device: str, task: str, n: int) -> dict[str, list[int]]:
    """The position names a shipped task has (``interp.positions``), with their index in each
    prompt."""
    from interp.positions import named_positions
    from interp.tasks import make_task

    model = get_model(spec, device)
    with model_lock(model):
        batch = make_task(task, model, n=n).tokens(model)
    return {name: index.tolist() for name, index in named_positions(batch).items()}


@st.cache_data(max_entries=32, show_spinner=False)
def task_example(spec: str, device: str, task: str, n: int) -> dict:
    """The first clean / corrupted prompt pair of a task, as token strings, and its answers."""
    from interp.tasks import make_task

    model = get_model(spec, device)
    with model_lock(model):
        batch = make_task(task, model, n=n).tokens(model)
    return {
        "clean": list(model.to_str_tokens(batch.clean[0])),
        "corrupted": list(model.to_str_tokens(batch.corrupted[0])),
        "answer": model.to_string(batch.answers[:1]),
        "wrong": model.to_string(batch.wrong_answers[:1])
        if batch.wrong_answers is not None
        else None,
        "metric": batch.metric,
    }


# -- emergence -----------------------------------------------------------------------------------


def checkpoints(name: str) -> list[tuple[int, str]]:
    """``(step, folder)`` of an organism's training checkpoints; empty when none were made."""
    from interp.dynamics import organism_checkpoints
    from interp.organisms import ORGANISMS

    if name not in ORGANISMS:
        return []
    try:
        return [(step, str(path)) for step, path in organism_checkpoints(name)]
    except FileNotFoundError:
        return []


@st.cache_data(max_entries=8, show_spinner=False)
def held_out_text(n: int = 8, length: int = 128) -> torch.Tensor:
    """Held-out organism-corpus text for the in-context-learning score, as in notebook 1."""
    from interp.organisms import held_out_text as held_out

    return held_out(n, length, seed=0)


@st.cache_data(max_entries=256, show_spinner=False)
def formation_step(step: int, folder: str, period: int, device: str = "cpu") -> dict:
    """``interp.dynamics.formation`` of one checkpoint, as plain numbers (cached per checkpoint)."""
    from interp.dynamics import formation

    out = formation(
        [(step, folder)], text=held_out_text(), period=period, device=device, progress=False
    )
    return {
        "induction": out["induction"].values[0].numpy(),
        "previous_token": out["previous_token"].values[0].numpy(),
        "icl": float(out["icl"].values[0]),
        "icl_repeated": float(out["icl_repeated"].values[0]),
    }


@st.cache_data(max_entries=8, show_spinner=False)
def emergence(base: str, tuned: str, device: str, n: int, threshold: float) -> dict:
    """``interp.dynamics.emergent_heads`` on variable tracking between two models."""
    from interp.dynamics import emergent_heads
    from interp.tasks import variable_tracking_task

    mb, mt = get_model(base, device), get_model(tuned, device)
    first, second = sorted([mb, mt], key=id)  # one lock order everywhere: no deadlock
    with model_lock(first), model_lock(second):
        task = variable_tracking_task(mt, n=n)
        return emergent_heads(mb, mt, task, threshold=threshold)


# -- circuits, pathways, features (library parts that may not be there yet) --------------------


def missing(module: str) -> str | None:
    """Why ``module`` cannot be used (not written yet, or broken), or None."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as err:  # ImportError while it is being written; anything it raises
        return f"`{module}` is not available yet ({type(err).__name__}: {err})"
    return None


def catalogue() -> list:
    """The circuit catalogue's entries (``interp.catalogue.entries``), read fresh each run."""
    from interp.catalogue import entries

    return entries()


@st.cache_resource(max_entries=32, show_spinner=False)
def circuit(name: str, mtime: float):
    """The saved CircuitGraph of catalogue entry ``name`` (read-only: prune returns a copy)."""
    from interp.catalogue import load_entry

    return load_entry(name).graph()


def save_circuit(name: str, graph) -> None:
    """Write catalogue entry ``name``'s graph with its supernodes and notes
    (:func:`interp.catalogue.save_graph`: the graph and its viewer JSON, atomically)."""
    from interp.catalogue import save_graph

    save_graph(name, graph)
    circuit.clear()


@st.cache_data(max_entries=32, show_spinner=False)
def pathways(
    spec: str,
    device: str,
    prompt: str,
    target: str,
    depth: int,
    top_heads: int,
    top_sources: int,
    min_effect: float,
):
    """``interp.heads.attention_pathways`` of the prompt (a CircuitGraph)."""
    from interp.heads import attention_pathways

    model = get_model(spec, device)
    with model_lock(model):
        return attention_pathways(
            model,
            prompt,
            target or None,
            depth=depth,
            top_heads=top_heads,
            top_sources=top_sources,
            min_effect=min_effect,
        )


@st.cache_resource(max_entries=4, show_spinner="Loading transcoders...")
def transcoders(source: str, device: str) -> dict:
    """``{layer: transcoder}`` from a shipped name or a folder (``load_transcoders``)."""
    from interp.dictionaries import load_transcoders

    return load_transcoders(source, device=device)


def shipped_transcoders(spec: str) -> bool:
    """Whether trained transcoders ship for ``spec`` (False when sae-lens is missing)."""
    try:
        from interp.dictionaries import has_shipped
    except ImportError:
        return False
    return has_shipped(spec)


@st.cache_data(max_entries=8, show_spinner=False)
def feature_tokens(spec: str, device: str, n: int = 32) -> torch.Tensor:
    """The fixed held-out batch the transcoders are evaluated on."""
    from interp.dictionaries import held_out_tokens

    model = get_model(spec, device)
    return held_out_tokens(model, n=n).cpu()


@st.cache_data(max_entries=16, show_spinner=False)
def feature_density(spec: str, device: str, source: str) -> Result:
    from interp.dictionaries import feature_density as density

    model = get_model(spec, device)
    with model_lock(model):
        return density(model, transcoders(source, device), feature_tokens(spec, device))


@st.cache_data(max_entries=32, show_spinner=False)
def prompt_features(spec: str, device: str, source: str, layer: int, prompt: str) -> list:
    """The features of ``layer`` most active on the prompt: ``[(feature, max activation, pos)]``."""
    from interp.dictionaries import feature_top_contexts

    model = get_model(spec, device)
    with model_lock(model):
        tops = feature_top_contexts(
            model, transcoders(source, device), layer, model.to_tokens(prompt), k=1
        )
    found = [(f, rows[0]["activation"], rows[0]["pos"]) for f, rows in tops.items() if rows]
    return sorted(found, key=lambda t: -t[1])[:20]
