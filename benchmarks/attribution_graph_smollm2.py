"""Attribution graphs on SmolLM2-135M-Instruct: time and peak memory against prompt length.

    python benchmarks/attribution_graph_smollm2.py                        # 16, 64, 256, 1024 tokens
    python benchmarks/attribution_graph_smollm2.py --lengths 16 64 --max-feature-nodes 0  # uncapped
    python benchmarks/attribution_graph_smollm2.py --layers 3,15,26      # three transcoders only

Each length runs in a fresh worker process (so its peak resident memory is its own): the prompt
is the first ``length`` tokens of a held-out window of ``interp.corpus`` (Jane Austen), the
transcoders are the shipped ones (all 30 MLPs, or those ``--layers`` names; each other MLP is one
error node per position), and the worker times ``attribution_graph`` end to end after a warm-up on 8 tokens.
A length that runs past ``--max-seconds`` is stopped, and longer ones are not tried.

The circuit-tracer row for SmolLM2 is in ``benchmarks/attribution_graph.py``, which runs ours and
circuit-tracer's ``attribute`` (from its own virtual environment) on the same tokens, transcoders
and logit targets and compares every edge::

    python benchmarks/attribution_graph.py --model smollm2-135m --transcoders DIR \\
        --prompt "The capital of France is" --ct-python /work/venv-ct/bin/python

circuit-tracer's ``ReplacementModel`` needs a transcoder for every layer, so ``DIR`` is a folder
of 30 ``layer_L`` sae-lens folders, one per MLP (``interp.dictionaries.save_transcoders``); a
set with some MLPs left to error nodes, like the three here, runs only on our side, in this
script.

What grows with length ``n`` (``F`` features active per token, about 137 summed over the three
transcoders; ``L`` = 30 layers; ``B`` = batch of targets; ``d`` = 576):

* the rows: one backward pass per target, ``F * n`` feature targets, each costing ``O(L n d^2 +
  L n^2 d)`` (the attention transpose), so time grows as ``n^2`` to ``n^3`` uncapped, and as
  ``n`` to ``n^2`` with ``max_feature_nodes`` fixed;
* the gradients of one block, ``[L, B, n, d]`` float32 (the ``"linear"`` engine): ``L B n d 4``
  bytes, linear in ``n`` (the ``"autograd"`` engine instead runs ``B`` copies of the prompt
  forward, with ``B`` attention patterns ``[heads, n, n]`` per layer: ``n^2``);
* the edges: every target row is dense over the sources before it, so an uncapped graph keeps
  up to ``F n (n + F n + L n)`` edges (12 bytes each while collecting): ``n^2``, the term that
  ends it first. circuit-tracer keeps a dense ``[nodes, nodes]`` adjacency, also ``n^2``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

# the side-by-side benchmark's helpers
from attribution_graph import peak_mb, rss_mb  # noqa: E402

N_LAYERS, D_MODEL = 30, 576


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from interp import corpus
    from interp.attribution_graph import attribution_graph
    from interp.dictionaries import load_transcoders
    from interp.models import load_model

    model = load_model("smollm2-135m", device="cpu", backend=args.backend)
    tcs = load_transcoders("smollm2-135m")
    if args.layers:
        tcs = {la: tcs[la] for la in map(int, args.layers.split(","))}
    # prefixes of one held-out window: every length reads the same text
    window = corpus.token_windows(model.tokenizer, max(args.length, 1024), "held_out")[0]
    tokens = window[: args.length]
    cap = args.max_feature_nodes or None
    settings = dict(max_feature_nodes=cap, batch_size=args.batch_size, edge_top_k=args.edge_top_k)
    attribution_graph(model, tcs, tokens[:8], **settings)  # warm-up (imports, kernels)
    before = rss_mb()
    start = time.perf_counter()
    g = attribution_graph(model, tcs, tokens, **settings)
    seconds = time.perf_counter() - start
    peak = peak_mb() - before
    info = g.provenance
    n_active = info["n_active_features"]
    n_src = args.length * (1 + N_LAYERS) + n_active
    return {
        "length": args.length,
        "backend": type(model).__name__,
        "engine": info["settings"]["engine"],
        "seconds": seconds,
        "seconds_parts": info["seconds"],
        "peak_mb_delta": peak,
        "rss_mb_before": before,
        "active_features": n_active,
        "feature_nodes": info["n_feature_nodes"],
        "nodes": len(g.nodes),
        "edges": g.n_edges,
        "block_gradients_mb": N_LAYERS * args.batch_size * args.length * D_MODEL * 4 / 2**20,
        "uncapped_edges_bound": n_active * n_src,
        "settings": settings,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256, 1024])
    ap.add_argument("--max-feature-nodes", type=int, default=256, help="0: every active feature")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--edge-top-k", type=int, default=None)
    ap.add_argument("--backend", default="hooked", help="hooked: the 'linear' engine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", default=None, help="MLPs whose transcoders to use, e.g. 3,15,26")
    ap.add_argument("--max-seconds", type=float, default=900)
    ap.add_argument("--out", default=None, help="write the report here (JSON)")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--length", type=int, default=16)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    rows = []
    for n in args.lengths:
        cmd = [sys.executable, str(HERE), "--worker", "--length", str(n)]
        for flag in (
            "max_feature_nodes",
            "batch_size",
            "edge_top_k",
            "backend",
            "threads",
            "layers",
        ):
            value = getattr(args, flag)
            if value is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(value)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_seconds)
        except subprocess.TimeoutExpired:
            rows.append({"length": n, "stopped": f"over {args.max_seconds:.0f} s"})
            print(json.dumps(rows[-1]), flush=True)
            break
        if proc.returncode != 0:
            rows.append({"length": n, "failed": proc.stderr.strip().splitlines()[-1:]})
            print(json.dumps(rows[-1]), flush=True)
            break
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        rows[-1]["worker_seconds"] = time.perf_counter() - start
        print(json.dumps(rows[-1]), flush=True)
    used = f"MLPs {args.layers}" if args.layers else "all 30 MLPs"
    report = {"model": "smollm2-135m", "transcoders": f"shipped ({used})", "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
