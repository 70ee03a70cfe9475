"""Head-by-position activation patching: interp.patch_sweep against transformer_lens.patching.

Runs both side by side in one process on the same model and task, and prints both times, the
ratio, the max |diff| and peak memory, and the floor set by the arithmetic the sweep really needs
(each patch recomputes its own layer's MLP at its position, later layers at later positions and
the logits at one position), divided by the matrix-multiply rate measured in the same run.

    python benchmarks/patching.py                     # GPT-2-small shape, random weights
    python benchmarks/patching.py --model smollm2-135m
    python benchmarks/patching.py --model smollm2-135m --backend bridge   # TransformerBridge
    python benchmarks/patching.py --tl-patches 0      # TransformerLens on every patch (slow)
    python benchmarks/patching.py --device cuda       # on a GPU (peak memory: CUDA's)

TransformerLens runs one forward pass per patch, so its time is linear in the number of patches:
by default it runs on a random sample of patches (its own ``index_df`` argument) and its full
time is that per-patch time times the number of patches; its values are compared on the sample.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from _models import gpt2_small_shape, make_task


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str = "cpu", seconds: float = 2.0) -> float:
    """FLOP/s of a float32 matrix multiply of the sizes the sweep uses, on ``device``."""
    a = torch.randn(2048, 768, device=device)
    b = torch.randn(768, 3072, device=device)
    a @ b
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
        sync(device)
        n += 10
    return n * 2 * 2048 * 768 * 3072 / (time.perf_counter() - start)


def timed(fn, device: str):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def floor_flops(cfg, seq: int, n_prompts: int, answer_pos: int) -> float:
    """FLOPs a head-by-position sweep needs at least (per the module docstring)."""
    d, dm, nh, dh, v = cfg.d_model, cfg.d_mlp, cfg.n_heads, cfg.d_head, cfg.d_vocab
    n_kv = cfg.n_key_value_heads or nh
    attn_proj = 2 * d * (nh * dh + 2 * n_kv * dh) + 2 * nh * dh * d  # q, k, v, o per position
    mlp = 2 * d * dm * (3 if cfg.gated_mlp else 2)
    total = 0.0
    for layer in range(cfg.n_layers):
        for pos in range(seq):
            if pos > answer_pos:
                continue
            flops = mlp  # this layer's MLP at this position
            for _later in range(layer + 1, cfg.n_layers):
                for q in range(pos, seq):
                    flops += attn_proj + mlp + 2 * 2 * nh * dh * (q + 1)
            flops += 2 * d * v  # logits at the answer position
            total += flops * nh
    return total * n_prompts


def run(model, task, tl_patches: int, seed: int) -> dict:
    import pandas as pd
    import transformer_lens.patching as tlp

    from interp.patching import patch_sweep

    batch = task.tokens(model)
    batch.baseline(model)
    metric = batch.tl_metric()
    cfg = model.cfg
    seq = batch.clean.shape[1]
    n_patches = cfg.n_layers * seq * cfg.n_heads
    device = str(cfg.device)
    rate = matmul_rate(device)

    ours, ours_s = timed(
        lambda: patch_sweep(model, task, "z", ("layer", "pos", "head"), progress=False), device
    )

    with torch.no_grad():
        _, clean_cache = model.run_with_cache(batch.clean)
    index = pd.DataFrame(
        [
            (layer, pos, head)
            for layer in range(cfg.n_layers)
            for pos in range(seq)
            for head in range(cfg.n_heads)
        ],
        columns=["layer", "pos", "head"],
    )
    if tl_patches and tl_patches < n_patches:
        index = index.sample(n=tl_patches, random_state=seed).reset_index(drop=True)
    ref, tl_s = timed(
        lambda: tlp.generic_activation_patch(
            model,
            batch.corrupted,
            clean_cache,
            metric,
            patch_setter=tlp.layer_pos_head_vector_patch_setter,
            activation_name="z",
            index_df=index,
        ),
        device,
    )
    tl_full_s = tl_s / len(index) * n_patches
    ours_at = ours.values[
        torch.as_tensor(index["layer"].to_numpy().copy()),
        torch.as_tensor(index["pos"].to_numpy().copy()),
        torch.as_tensor(index["head"].to_numpy().copy()),
    ]
    floor_s = floor_flops(cfg, seq, batch.batch, batch.answer_pos) / rate
    return {
        "engine": ours.provenance["engine"],
        "patches": n_patches,
        "prompts": batch.batch,
        "seq": seq,
        "matmul_gflops": round(rate / 1e9, 1),
        "ours_s": round(ours_s, 2),
        "tl_patches_timed": len(index),
        "tl_s_per_patch": round(tl_s / len(index), 4),
        "tl_full_s": round(tl_full_s, 1),
        "speedup_vs_tl": round(tl_full_s / ours_s, 1),
        "floor_s": round(floor_s, 2),
        "ours_over_floor": round(ours_s / floor_s, 2),
        "max_abs_diff": float((ours_at - ref.flatten().cpu()).abs().max()),
        "peak_memory_gb": peak_memory_gb(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="gpt2-small-shape",
        help="'gpt2-small-shape' (random weights) or any interp.load_model spec",
    )
    parser.add_argument("--seq", type=int, default=24)
    parser.add_argument("--prompts", type=int, default=1)
    parser.add_argument("--tl-patches", type=int, default=150, help="0 = every patch")
    parser.add_argument(
        "--backend",
        default="hooked",
        choices=["hooked", "bridge"],
        help="HookedTransformer or TransformerBridge (a real model only)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "gpt2-small-shape":
        model = gpt2_small_shape(args.seed, args.device)
    else:
        from interp import load_model

        model = load_model(args.model, device=args.device, backend=args.backend)
    task = make_task(model, args.seq, args.prompts, args.seed)
    report = {
        "model": args.model,
        "backend": type(model).__name__,
        "device": str(model.cfg.device),
        "threads": torch.get_num_threads(),
        **run(model, task, args.tl_patches, args.seed),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
