"""Two sessions on one cached model: each sees its own numbers, whatever the other one runs.

Sessions share the model that ``st.cache_resource`` returns. Here three threads play three
sessions on that one object: one runs a patching sweep (hooks on ``z``), one keeps a zero-ablation
of every head attached while it runs forward passes, and one reads the prompt's loss and attention
patterns (plain and cached forward passes). Each must get exactly what it gets alone.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SPEC, DEVICE = "induction-2l", "cpu"
PROMPT = "def greet(name):\n    return name\n\ndef greet(name):\n    return name\n"
HEADS = ((1, 0), (0, 3))


def _fresh(cached):
    """The function under a ``st.cache_data`` wrapper: computed every call, never read back."""
    return cached.__wrapped__


def test_sessions_on_one_cached_model_never_see_each_others_hooks():
    from app import resources as R
    from interp.hooks import ablating, hook_name

    model = R.get_model(SPEC, DEVICE)
    assert R.get_model(SPEC, DEVICE) is model  # one model per process
    patch, view, patterns = (
        R.run_patching,  # computes every call
        _fresh(R.prompt_view),
        _fresh(R.attention_patterns),
    )
    sweep_args = (SPEC, DEVICE, "induction", 4, "z", ("layer", "head"), "denoise", False)
    alone_sweep = patch(*sweep_args).values
    alone_loss = view(SPEC, DEVICE, PROMPT).loss
    alone_patterns = patterns(SPEC, DEVICE, PROMPT, HEADS)
    tokens = model.to_tokens(PROMPT)
    with ablating(model, [hook_name(model, "z", la) for la in range(2)]), torch.no_grad():
        ablated_loss = model(tokens, return_type="loss").item()
    assert not np.isclose(ablated_loss, np.nanmean(alone_loss))  # the ablation shows if leaked

    errors: list[BaseException] = []
    sweeps, views = [], []
    stop = threading.Event()

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # noqa: BLE001 - reported by the main thread
                errors.append(err)

        return run

    def session_sweeping():
        for _ in range(3):
            sweeps.append(patch(*sweep_args).values)

    def session_ablating():
        names = [hook_name(model, "z", la) for la in range(model.cfg.n_layers)]
        while not stop.is_set():
            with ablating(model, names, "zero"), torch.no_grad():
                model(tokens)
            time.sleep(0.002)  # let the other sessions in between passes

    def session_reading():
        for _ in range(25):
            views.append((view(SPEC, DEVICE, PROMPT).loss, patterns(SPEC, DEVICE, PROMPT, HEADS)))

    threads = [threading.Thread(target=guard(f)) for f in (session_sweeping, session_reading)]
    ablator = threading.Thread(target=guard(session_ablating))
    ablator.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    ablator.join(timeout=60)
    assert not errors, errors
    assert len(sweeps) == 3 and len(views) == 25
    for values in sweeps:
        torch.testing.assert_close(values, alone_sweep, rtol=1e-5, atol=1e-5)
    for loss, pattern in views:
        np.testing.assert_allclose(loss, alone_loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pattern, alone_patterns, rtol=1e-5, atol=1e-6)
    leftover = [name for name, hp in model.hook_dict.items() if hp.fwd_hooks or hp.bwd_hooks]
    assert leftover == []
