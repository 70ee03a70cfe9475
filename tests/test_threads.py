"""Threads sharing one model get exactly the numbers of a serial run.

Every analysis holds its model's lock from start to end (``interp.hooks.locked``), and hooks are
attached only under that lock, so a thread never runs a forward pass while another thread's
hooks are on the model. Here eight threads run every analysis on one shared model, in shuffled
orders, while an adversary keeps zero-ablation hooks on every head (and sleeps with them
attached); every number must equal the serial run's exactly (max |diff| 0).
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from interp import (
    attribution_graph,
    attribution_patch,
    direct_logit_attribution,
    eap,
    extract,
    faithfulness,
    intervene,
    load_model,
    load_transcoders,
    logit_lens,
    patch_sweep,
    path_patch_sweep,
)
from interp import heads as H
from interp.dynamics import head_importance, icl_score
from interp.hooks import ablating, holding, hook_name, run
from interp.tasks import induction_task

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROMPT = "def greet(name):\n    return name\n\ndef greet(name):\n    return"
N_THREADS, ROUNDS = 8, 2


def _numbers(out) -> np.ndarray:
    """Every number an analysis returned, flattened (Results, graphs, tensors, dicts, tuples)."""
    if isinstance(out, dict):
        return np.concatenate([_numbers(out[k]) for k in sorted(out, key=str)] or [np.zeros(0)])
    if isinstance(out, tuple | list):
        return np.concatenate([_numbers(o) for o in out] or [np.zeros(0)])
    if isinstance(out, torch.Tensor):
        return out.detach().float().cpu().numpy().ravel()
    if isinstance(out, float | int):
        return np.array([out], dtype=np.float64)
    if hasattr(out, "values") and isinstance(out.values, torch.Tensor):  # Result
        return _numbers(out.values)
    if hasattr(out, "edge_weight"):  # CircuitGraph: its edges and its nodes' ids
        ids = np.array([hash(n.node_id) % 10_000 for n in out.nodes], dtype=np.float64)
        return np.concatenate([_numbers(out.edge_weight), _numbers(out.edge_index), ids])
    raise TypeError(f"no numbers in {type(out).__name__}")


def _analyses(model):
    task = induction_task(model, n=4, period=8, seed=1)
    tokens = model.to_tokens(PROMPT)
    graph = eap(model, task)
    circuit = extract(graph, top_n=20)
    transcoders = load_transcoders("induction-2l")
    return {
        "patch_sweep z": lambda: patch_sweep(model, task, "z", by=("layer", "head")),
        "patch_sweep resid (normalised)": lambda: patch_sweep(
            model, task, "resid_pre", by=("layer", "pos"), normalize=True
        ),
        "path_patch_sweep": lambda: path_patch_sweep(model, task, receivers="logits"),
        "attribution_patch": lambda: attribution_patch(model, task, ("z", "resid_pre")),
        "eap": lambda: eap(model, task),
        "eap-ig": lambda: eap(model, task, method="EAP-IG", ig_steps=2),
        "faithfulness": lambda: faithfulness(model, task, circuit),
        "head_importance": lambda: head_importance(model, task),
        "direct_logit_attribution": lambda: direct_logit_attribution(model, task),
        "logit_lens": lambda: logit_lens(model, tokens),
        "induction_scores": lambda: H.induction_scores(model),
        "detection_scores": lambda: H.detection_scores(model, tokens, "previous_token_head"),
        "attention_pathways": lambda: H.attention_pathways(model, PROMPT),
        "icl_score": lambda: icl_score(model, H.repeated_random_tokens(model, n=2, period=20)),
        "attribution_graph": lambda: attribution_graph(model, transcoders, PROMPT),
        "intervene": lambda: intervene(model, transcoders, PROMPT, {(1, 3, 5): 2.0}),
        "user forward (hooks.run)": lambda: run(model, tokens),
    }


@contextmanager
def _ablated_in_another_thread(model, seconds: float):
    """Enter once another thread holds every head's ``z`` zero-ablated (for ``seconds``)."""
    names = [hook_name(model, "z", layer) for layer in range(model.cfg.n_layers)]
    entered = threading.Event()

    def hold():
        with ablating(model, names):
            entered.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait()
    try:
        yield
    finally:
        holder.join()


@pytest.fixture(scope="module", params=["hooked", "bridge"])
def shared_model(request):
    return load_model("induction-2l", device="cpu", backend=request.param)


def test_a_thread_holding_hooks_does_not_leak_into_a_sweep(shared_model):
    """The issue's reproducer: thread A sleeps inside ``ablating``; B's sweep starts meanwhile."""
    model = shared_model
    task = induction_task(model, n=4, period=8, seed=1)
    alone = patch_sweep(model, task, "z", by=("layer", "head"))
    with _ablated_in_another_thread(model, seconds=1.0):
        sweep = patch_sweep(model, task, "z", by=("layer", "head"))
    assert sweep.provenance["clean_metric"] == alone.provenance["clean_metric"]
    assert torch.equal(sweep.values, alone.values)


def test_eight_threads_every_analysis_equal_to_serial(shared_model):
    model = shared_model
    analyses = _analyses(model)
    serial = {name: _numbers(fn()) for name, fn in analyses.items()}
    names = [hook_name(model, "z", layer) for layer in range(model.cfg.n_layers)]
    errors: list[BaseException] = []
    got: list[tuple[str, np.ndarray]] = []
    stop = threading.Event()

    def worker(seed: int):
        try:
            order = list(analyses) * ROUNDS
            random.Random(seed).shuffle(order)
            for name in order:
                got.append((name, _numbers(analyses[name]())))
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    def adversary():
        while not stop.is_set():
            with ablating(model, names), torch.no_grad():
                model(model.to_tokens(PROMPT))  # its own hooked pass, and a pause with hooks on
                time.sleep(0.01)
            time.sleep(0.001)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_THREADS)]
    spoiler = threading.Thread(target=adversary)
    spoiler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    spoiler.join()
    if errors:
        raise errors[0]
    assert len(got) == N_THREADS * ROUNDS * len(analyses)
    wrong = {
        name: float(np.abs(values - serial[name]).max(initial=0.0))
        for name, values in got
        if values.shape != serial[name].shape or not np.array_equal(values, serial[name])
    }
    assert wrong == {}, f"threads changed these analyses' numbers (max |diff|): {wrong}"


def test_holding_serialises_a_users_own_passes(shared_model):
    """``holding(model)`` keeps another thread's hooks off the user's own forward passes."""
    model = shared_model
    tokens = model.to_tokens(PROMPT)
    with torch.no_grad():
        alone = model(tokens)
    with _ablated_in_another_thread(model, seconds=0.5), holding(model), torch.no_grad():
        mine = model(tokens)
    assert torch.equal(mine, alone)
