"""Edge attribution patching: interp.discovery.edge_scores against auto-circuit 1.0.1.

Runs both side by side in one process, on the same model and prompts (the model copied: auto-
circuit rewires the modules of the model it is given), and prints for each the time of one EAP
scoring of every edge (best of ``--repeats``, the two interleaved), the peak resident memory it
added, and how far the two agree: the Pearson correlation of the scores of the same edges, the
largest difference, and the overlap of their top-k edges.

    python benchmarks/eap.py                        # induction-2l and a GPT-2-small-shaped model
    python benchmarks/eap.py --models induction-2l --prompts 8 --seq 24

auto-circuit is not a dependency of interp: install it by hand, without its dependencies (it
pins nothing we lack, but pulls in plotting and dataset packages it does not need here):

    pip install --no-deps auto-circuit==1.0.1

It imports names TransformerLens 3 renamed (``past_key_value_caching``) and ``blobfile`` (for its
SAE loaders); both are stubbed below, in this process only. Its EAP is the gradient of
``-(mean logit difference)`` with respect to an edge mask that moves the receiver's input from
clean to corrupted, i.e. minus our score: the agreement below compares ours with -theirs.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import threading
import time
import types

import torch
from _models import gpt2_small_shape, make_task


def import_auto_circuit():
    """Import auto-circuit under TransformerLens 3 (aliases and stubs in this process only)."""
    import transformer_lens
    import transformer_lens.cache.key_value_cache as kv

    legacy = types.ModuleType("transformer_lens.past_key_value_caching")
    legacy.HookedTransformerKeyValueCache = kv.TransformerLensKeyValueCache
    sys.modules.setdefault("transformer_lens.past_key_value_caching", legacy)
    transformer_lens.HookedTransformerKeyValueCache = kv.TransformerLensKeyValueCache
    if "blobfile" not in sys.modules:
        stub = types.ModuleType("blobfile")
        stub.BlobFile = None
        sys.modules["blobfile"] = stub
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.types import AblationType
    from auto_circuit.utils.graph_utils import patchable_model

    return (
        PromptDataLoader,
        PromptDataset,
        mask_gradient_prune_scores,
        AblationType,
        patchable_model,
    )


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms from /proc."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def added_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def ac_label(name: str) -> str:
    """auto-circuit node names -> ours: "A1.2.Q" -> "L1H2.q", "MLP 0" -> "MLP0"."""
    if name == "Resid Start":
        return "input"
    if name == "Resid End":
        return "logits"
    if name.startswith("MLP "):
        return f"MLP{name[4:]}"
    parts = name[1:].split(".")
    label = f"L{parts[0]}H{parts[1]}"
    return label + (f".{parts[2].lower()}" if len(parts) == 3 else "")


def compare(name: str, model, task, repeats: int, top_k: tuple[int, ...]) -> dict:
    from interp.discovery import edge_scores

    PromptDataLoader, PromptDataset, mask_gradient, AblationType, patchable = import_auto_circuit()
    batch = task.tokens(model)
    ac_model = copy.deepcopy(model)
    for flag in ("use_attn_result", "use_split_qkv_input", "use_hook_mlp_in", "use_attn_in"):
        setattr(ac_model.cfg, flag, True)
    ac_model.setup()
    t0 = time.perf_counter()
    ac_model = patchable(
        ac_model,
        factorized=True,
        slice_output="last_seq",
        separate_qkv=True,
        device=torch.device("cpu"),
    )
    ac_setup = time.perf_counter() - t0
    dataset = PromptDataset(
        list(batch.clean),
        list(batch.corrupted),
        [a.view(1) for a in batch.answers],
        [w.view(1) for w in batch.wrong_answers],
    )
    loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=batch.batch)

    def run_ours():
        return edge_scores(model, batch, method="EAP")

    def run_theirs():
        return mask_gradient(
            ac_model,
            loader,
            None,
            grad_function="logit",
            answer_function="avg_diff",
            mask_val=0.0,
            ablation_type=AblationType.RESAMPLE,
        )

    times: dict[str, list[float]] = {"interp": [], "auto-circuit": []}
    memory: dict[str, float] = {}
    outputs = {}
    for _ in range(repeats):
        for who, fn in (("interp", run_ours), ("auto-circuit", run_theirs)):
            gc.collect()
            with PeakRSS() as rss:
                t0 = time.perf_counter()
                outputs[who] = fn()
                times[who].append(time.perf_counter() - t0)
            memory[who] = max(memory.get(who, 0.0), rss.added_mb)
    ours, theirs = outputs["interp"], outputs["auto-circuit"]
    receivers, senders = ours.labels["receiver"], ours.labels["sender"]
    pairs = []
    for edge in ac_model.edges:
        r = receivers.index(ac_label(edge.dest.name))
        s = senders.index(ac_label(edge.src.name))
        pairs.append((float(ours.values[r, s]), -float(edge.prune_score(theirs))))
    a, b = torch.tensor(pairs).T
    n_ours = int((~ours.values.isnan()).sum())
    overlap = {}
    for k in top_k:
        top_a = set(a.abs().topk(min(k, len(a))).indices.tolist())
        top_b = set(b.abs().topk(min(k, len(b))).indices.tolist())
        overlap[k] = len(top_a & top_b) / max(len(top_a), 1)
    best = {who: min(t) for who, t in times.items()}
    print(f"\n== {name}: {batch.batch} prompts x {batch.clean.shape[1]} tokens ==")
    print(f"edges: interp {n_ours}, auto-circuit {len(pairs)} (matched {len(pairs)})")
    for who in times:
        runs = ", ".join(f"{t:.3f}" for t in times[who])
        print(f"{who:>13}: best {best[who]:.3f} s  (runs {runs})  peak +{memory[who]:.0f} MB")
    print(f"auto-circuit patchable_model setup (not timed above): {ac_setup:.3f} s")
    print(f"speed-up (auto-circuit / interp): {best['auto-circuit'] / best['interp']:.2f}x")
    pearson = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    print(
        f"agreement: pearson {pearson:.6f}, max |diff| {float((a - b).abs().max()):.2e} "
        f"(max |score| {float(a.abs().max()):.2e}), top-k overlap "
        + ", ".join(f"{k}: {v:.2f}" for k, v in overlap.items())
    )
    return {"times": best, "memory": memory, "pearson": pearson, "overlap": overlap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["induction-2l", "gpt2-small-shape"])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--seq", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for name in args.models:
        if name == "gpt2-small-shape":
            model = gpt2_small_shape()
            task = make_task(model, args.seq, args.prompts)
        else:
            from interp import load_model
            from interp.tasks import induction_task

            model = load_model(name, device="cpu")
            task = induction_task(model, n=args.prompts, period=max(3, (args.seq - 1) * 2 // 3))
        compare(name, model, task, args.repeats, top_k=(10, 50, 200))


if __name__ == "__main__":
    main()
