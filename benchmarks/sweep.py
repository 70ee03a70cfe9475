"""Sweeps on Ray (interp.sweeps) against a plain loop over the same shards in one process.

A patching sweep (site z, by layer x pos x head, normalised) of an organism over ``--seeds``
prompt sets of the induction task, timed three ways, and the largest difference between them:

- local loop: ``run_shard`` one shard after another here, one torch thread (as a Ray task with
  one CPU gets), the model already loaded;
- ray, cold: a local Ray cluster of ``--workers`` CPUs started, each worker importing interp and
  loading the model, then the sweep;
- ray, warm: the same sweep again on the running cluster (workers keep their model).

    python benchmarks/sweep.py                       # induction-2l, 8 prompt sets, 2 workers
    python benchmarks/sweep.py --seeds 32 --workers 8 --n 32
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from interp.sweeps import connect, gather, plan, run_shard, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="induction-2l")
    parser.add_argument("--seeds", type=int, default=8, help="prompt sets (shards)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n", type=int, default=16, help="prompt pairs per prompt set")
    args = parser.parse_args()
    p = plan(
        "patch",
        args.model,
        task="induction",
        task_args={"n": args.n},
        seeds=list(range(args.seeds)),
        normalize=True,
    )
    torch.set_num_threads(1)
    run_shard(p.shards[0], "cpu")
    start = time.perf_counter()
    local = gather([run_shard(s, "cpu") for s in p.shards], p.axes)
    t_local = time.perf_counter() - start

    start = time.perf_counter()
    connect("local", workers=args.workers)
    t_start = time.perf_counter() - start
    cold = sweep(p, workers=args.workers, device="cpu", progress=False)
    t_cold = time.perf_counter() - start
    start = time.perf_counter()
    warm = sweep(p, workers=args.workers, device="cpu", progress=False)
    t_warm = time.perf_counter() - start
    diff = max((r.values - local.values).abs().max().item() for r in (cold, warm))
    print(
        f"{args.model}: {args.seeds} prompt sets x {args.n} prompts, patch z by layer,pos,head "
        f"{tuple(local.shape)}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"local loop (1 thread)       {t_local:6.1f} s")
    print(
        f"ray cold, {args.workers} workers        {t_cold:6.1f} s (cluster start {t_start:.1f} s)"
    )
    print(f"ray warm, {args.workers} workers        {t_warm:6.1f} s")
    print(f"largest difference from the local loop: {diff:.2e}")


if __name__ == "__main__":
    main()
