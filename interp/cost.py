"""Cost estimates: how much work a long computation is, and about how long it will take.

Before a sweep or a circuit search starts, the command line times one forward pass of the model
over the task's prompts (a *probe*) and multiplies it by the number of passes the computation
makes, counted in units of that pass: a backward pass counts as two forward passes, a patch on
the resume engine as the share of the layers it runs, an ablated pass of ``faithfulness`` (which
recomputes every head's query, key and value from its own copy of the residual stream) as a
few. The figure tells minutes from hours before they are spent; batching, caches and the
machine's other work move the real time, typically within a factor of two or three.

Example:
    >>> est = patch_estimate(model, task.tokens(model), "z", ("layer", "pos", "head"))
    >>> print(est.timed(time_forward(model, task.tokens(model).clean)))
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .hooks import locked

BACKWARD = 2.0  # a backward pass, in forward passes
# an ablated pass (``discovery.faithfulness``, ``acdc``), in forward passes per head input of a
# layer it recomputes: measured 0.1 on induction-2l, 0.22 on SmolLM2-135M (16 inputs a layer)
ABLATED_PER_RECEIVER = 0.25


@dataclass(frozen=True)
class Estimate:
    """What a computation will run: ``work`` in words and ``passes`` in forward passes."""

    work: str
    passes: float | int
    at_most: bool = False

    def timed(self, seconds_per_pass: float) -> str:
        """One line: the work, the passes and the expected time at ``seconds_per_pass``."""
        bound = "at most " if self.at_most else "about "
        return (
            f"estimate: {self.work}; {bound}{self.passes:,.0f} forward passes of "
            f"{seconds_per_pass:.2g} s (timed) = {bound}{duration(self.passes * seconds_per_pass)}"
        )


def duration(seconds: float) -> str:
    """``seconds`` in the unit a person reads: ``"40 s"``, ``"7.5 min"``, ``"2.1 h"``."""
    if seconds < 90:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@locked
def time_forward(model, tokens: torch.Tensor) -> float:
    """Seconds of one forward pass of ``model`` over ``tokens`` (the second of two: the first
    warms caches and lazy initialisation up)."""
    with torch.no_grad():
        model(tokens[:1])
        start = time.perf_counter()
        model(tokens)
    return time.perf_counter() - start


def patch_estimate(model, batch, site: str, by: tuple[str, ...], engine: str = "auto"):
    """``patch_sweep``'s work: one patched run per patch (the resume engine runs only the layers
    from the patched one on), plus the two baselines and the source cache."""
    from . import forward
    from .patching import site_heads

    n_layers = model.cfg.n_layers
    sizes = {"layer": n_layers, "pos": batch.clean.shape[1], "head": site_heads(model, site)}
    patches = math.prod(sizes[a] for a in by)
    resume = engine == "resume" or (engine == "auto" and forward.supported(model))
    share = (n_layers + 1) / (2 * n_layers) if resume else 1.0  # the mean share of layers run
    return Estimate(f"{patches:,} patches of {batch.batch} prompts", 3 + patches * share)


def path_patch_estimate(model, batch, receivers):
    """``path_patch_sweep``'s work: per sender head before the receivers, one frozen run (and,
    into head receivers, one more that reads), plus the baselines and the two caches. Receivers
    are checked as ``path_patch_sweep`` checks them (ValueError)."""
    from .path_patching import _receivers

    receivers = _receivers(model, receivers)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    logits = receivers == "logits"
    last = n_layers if logits else min(layer for _, layer, _ in receivers)
    senders = last * n_heads
    runs = 1 if logits else 2
    return Estimate(f"{senders:,} sender heads of {batch.batch} prompts", 4 + runs * senders)


def attribution_estimate(model, batch, site: str, compare: bool):
    """``attribution_patch``'s work: two forward passes and one backward pass; with ``compare``
    also the exact ``patch_sweep`` it is compared with."""
    passes = 2 + 1 + BACKWARD
    work = f"2 forward and 1 backward pass of {batch.batch} prompts"
    if compare:
        exact = patch_estimate(model, batch, site, _site_axes(site))
        passes += exact.passes
        work += f", then {exact.work} to compare"
    return Estimate(work, passes)


def _site_axes(site: str) -> tuple[str, ...]:
    from .patching import SITE_AXES

    return SITE_AXES[site]


def discovery_estimate(model, batch, method: str, ig_steps: int = 5, steps: int = 300):
    """``eap`` (or ``acdc``) and then ``faithfulness``: gradient passes, then ablated passes.

    ACDC tries each edge once at most, one ablated pass each: an upper bound.
    """
    from .discovery import edge_space

    space = edge_space(model)
    ablated = max(1.0, ABLATED_PER_RECEIVER * space.receivers_per_layer)
    faithfulness = 4 + 6 * ablated  # baselines and caches, then zero/mean/resample x 2
    if method == "ACDC":
        edges = int(space.reads().sum())
        return Estimate(
            f"ACDC tries up to {edges:,} edges (one ablated pass each), then faithfulness "
            "(6 ablated passes)",
            3 + (edges + 1) * ablated + faithfulness,
            at_most=True,
        )
    if method == "edge-pruning":
        # each step is one masked forward pass (every receiver reads a mix of clean and ablated
        # senders) and its backward pass; then faithfulness
        return Estimate(
            f"edge-pruning: {steps} masked forward+backward passes, then faithfulness "
            "(6 ablated passes)",
            3 + steps * ablated * (1 + BACKWARD) + faithfulness,
        )
    if method == "head-patching":
        # one patch per head (the resumable engine runs the layers from the patched one on: half
        # the model on average), one EAP gradient pass for the edge weights, then faithfulness
        heads = space.n_layers * space.n_heads
        return Estimate(
            f"head-patching: {heads} head patches and 1 gradient pass, then faithfulness "
            "(6 ablated passes)",
            2 + heads * 0.5 + (1 + BACKWARD) + faithfulness,
        )
    steps = ig_steps if method.startswith("EAP-IG") else 1
    return Estimate(
        f"{method}: {steps} gradient pass{'es' if steps > 1 else ''}, then faithfulness "
        "(6 ablated passes)",
        1 + steps * (1 + BACKWARD) + faithfulness,
    )
