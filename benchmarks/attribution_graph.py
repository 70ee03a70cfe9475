"""Attribution graphs, side by side with circuit-tracer: time, peak memory, edge agreement.

    python benchmarks/attribution_graph.py                       # induction-2l, shipped transcoders
    python benchmarks/attribution_graph.py --ct-python /work/venv-ct/bin/python --repeats 3
    python benchmarks/attribution_graph.py --model smollm2-135m --transcoders /tmp/tc30 \\
        --prompt "The capital of France is" --ct-python /work/venv-ct/bin/python

circuit-tracer 0.5.0 pins transformers<=4.57.3 and huggingface-hub<1.0, so it lives in its own
virtual environment (``python -m venv /work/venv-ct && /work/venv-ct/bin/pip install
torch==2.13.0 circuit-tracer==0.5.0 'transformers<=4.57.3'``). This script is both the driver
and the worker for each side: the driver exports the model's weights, config and the shipped
transcoders (circuit-tracer's safetensors layout, ``interp.dictionaries.export_circuit_tracer``)
to a work folder, then runs ``--worker ours`` with this interpreter and ``--worker ct`` with
circuit-tracer's, each in a fresh process (so peak memory is that process's own). Each worker
times ``attribution_graph`` / ``circuit_tracer.attribute`` end to end (clean pass, active
features, every edge) on the same tokens, the same transcoders and the same batch size, after
one warm-up run, and writes its edges keyed by node id (``feature.L.F@P``, ``error.L@P``,
``token.T@P``, ``logit.T@P``). The driver compares the edges.

Both treat the first (BOS) position's MLP output as a constant and use demeaned logits. The
driver picks the logit targets once, from our model's logits (top tokens to cumulative
probability 0.95, at most 10, the rule both use by default), and hands the same ids to both.

Any model ``interp.load_model`` loads as a ``HookedTransformer`` can be given with ``--model``,
e.g. SmolLM2-135M-Instruct (``smollm2-135m``, de-quantised from its GGUF file): the driver saves
the HookedTransformer's own weights (TransformerLens names, so no Hugging Face checkpoint is
needed and nothing is fetched) and the config fields that rebuild it, and circuit-tracer's
``ReplacementModel.from_config`` builds the same model from them. circuit-tracer needs a
transcoder for every layer (``--transcoders``: a folder of ``layer_L`` sae-lens folders, one per
MLP). ``--prompt`` is tokenised by our model's tokenizer with BOS
(``interp.attribution_graph.prompt_tokens``); without it the prompt is a random induction
sequence of ``--prompt-len`` tokens after BOS. Both sides get those token ids, and circuit-tracer
gets the model's tokenizer with its special tokens (so it prepends no second BOS; the worker
checks). ``--backend`` picks how our side loads the model (``hooked``, the default: the
``"linear"`` engine; ``bridge``: a TransformerBridge, the ``"autograd"`` engine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
CFG_FIELDS = (
    "n_layers d_model n_ctx d_head n_heads d_mlp d_vocab d_vocab_out act_fn normalization_type "
    "positional_embedding_type rotary_dim rotary_base gated_mlp final_rms eps original_architecture "
    "default_prepend_bos tokenizer_prepends_bos rotary_adjacent_pairs n_key_value_heads "
    "parallel_attn_mlp attn_only use_attn_scale"
).split()


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Resident memory now; also resets the peak (Linux: ``5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status("VmRSS")


def peak_mb() -> float:
    """Peak resident memory since the last ``rss_mb()`` (or since start)."""
    hwm = _status("VmHWM")
    return hwm if hwm == hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- driver ------------------------------------------------------------------------------------
def export(
    work: Path,
    organism: str,
    transcoders: str,
    prompt_len: int,
    seed: int,
    prompt: str | None = None,
    backend: str = "hooked",
) -> dict:
    import torch

    from interp import load_model
    from interp.attribution_graph import prompt_tokens, salient_logits
    from interp.dictionaries import export_circuit_tracer, load_transcoders
    from interp.organisms import ORGANISMS

    # a HookedTransformer whatever our side runs: circuit-tracer loads its state dict
    model = load_model(organism, device="cpu", backend="hooked")
    tcs = load_transcoders(transcoders)
    n_layers = int(model.cfg.n_layers)
    if sorted(tcs) != list(range(n_layers)):
        raise SystemExit(
            f"circuit-tracer's ReplacementModel needs a transcoder for every one of the {n_layers} "
            f"layers of {organism}; {transcoders} has layers {sorted(tcs)}"
        )
    work.mkdir(parents=True, exist_ok=True)
    meta = export_circuit_tracer(tcs, work / "transcoders")
    # parameters only: the masks and rotary tables are rebuilt from the config
    buffers = ("mask", "IGNORE", "rotary_sin", "rotary_cos")
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(buffers)}
    torch.save(state, work / "model.pt")
    cfg = {k: getattr(model.cfg, k) for k in CFG_FIELDS if hasattr(model.cfg, k)}
    cfg = {k: (float(v) if type(v).__name__ == "float64" else v) for k, v in cfg.items()}
    if prompt is not None:
        tokens = prompt_tokens(model, prompt).tolist()  # BOS as our attribution_graph adds it
    else:
        # an induction prompt: BOS, then a random segment repeated twice
        gen = torch.Generator().manual_seed(seed)
        half = (prompt_len - 1) // 2
        seg = torch.randint(1, model.cfg.d_vocab, (half,), generator=gen)
        tokens = [model.tokenizer.bos_token_id, *seg.tolist(), *seg.tolist()][:prompt_len]
    with torch.no_grad():
        logits = model(torch.tensor([tokens]))[0, -1]
    targets = salient_logits(logits)[0].tolist()  # circuit-tracer's default rule, chosen once
    # circuit-tracer's transformers (4.x) cannot read a transformers-5 tokenizer_config: give it
    # the same tokenizer.json under a config it knows
    tok_dir = work / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    if organism in ORGANISMS:
        src = ORGANISMS[organism].path
        (tok_dir / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
        bos = model.tokenizer.bos_token
        tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": bos}
        tok_cfg.update(unk_token=bos, pad_token=bos, model_max_length=int(model.cfg.n_ctx))
    else:  # e.g. SmolLM2's, rebuilt from its GGUF file: its own special tokens
        model.tokenizer.backend_tokenizer.save(str(tok_dir / "tokenizer.json"))
        tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast"}
        for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
            if getattr(model.tokenizer, name, None) is not None:
                tok_cfg[name] = str(getattr(model.tokenizer, name))
        tok_cfg["model_max_length"] = int(model.cfg.n_ctx)
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    job = {
        "organism": organism,
        "backend": backend,
        "transcoders": str(transcoders),
        "tokenizer": str(tok_dir),
        "cfg": cfg,
        "transcoder_paths": meta["transcoder_paths"],
        "tokens": tokens,
        "target_logits": targets,
    }
    (work / "job.json").write_text(json.dumps(job))
    return job


def run_worker(python: str, which: str, work: Path, batch: int, repeats: int, threads: int) -> dict:
    cmd = [python, str(HERE), "--worker", which, "--work", str(work), "--batch-size", str(batch)]
    cmd += ["--repeats", str(repeats), "--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{which} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads((work / f"{which}.json").read_text())


def compare(a: dict, b: dict) -> dict:
    ka, kb = set(a), set(b)
    both = ka & kb
    scale = max([abs(v) for v in a.values()] + [1e-12])
    diffs = [abs(a[k] - b[k]) for k in both]
    tol = 1e-4 * scale
    agree = sum(d <= tol for d in diffs)
    # edges only one side has must be negligible for the graphs to be the same
    only = [abs(a[k]) for k in ka - kb] + [abs(b[k]) for k in kb - ka]
    return {
        "edges_ours": len(ka),
        "edges_circuit_tracer": len(kb),
        "shared": len(both),
        "max_abs_diff": max(diffs, default=0.0),
        "max_abs_weight": scale,
        "agree_within_1e-4_of_max": agree / max(1, len(both)),
        "largest_unshared_edge": max(only, default=0.0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--worker", choices=["ours", "ct"])
    ap.add_argument("--work", default=None)
    ap.add_argument(
        "--model",
        "--organism",
        dest="organism",
        metavar="MODEL",
        default="induction-2l",
        help="an organism, smollm2-135m, or any spec load_model takes",
    )
    ap.add_argument(
        "--backend", default="hooked", help="load_model's backend for our side (hooked, bridge)"
    )
    ap.add_argument("--transcoders", default=None, help="folder (default: the shipped ones)")
    ap.add_argument("--prompt", default=None, help="text (default: a random induction prompt)")
    ap.add_argument("--prompt-len", type=int, default=41)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ct-python", default="/work/venv-ct/bin/python")
    args = ap.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        work = Path(args.work)
        job = json.loads((work / "job.json").read_text())
        fn = worker_ours if args.worker == "ours" else worker_ct
        result = fn(job, work, args.batch_size, args.repeats)
        (work / f"{args.worker}.json").write_text(json.dumps(result))
        return
    import tempfile

    work = Path(args.work or tempfile.mkdtemp(prefix="attrib-bench-"))
    job = export(
        work,
        args.organism,
        args.transcoders or args.organism,
        args.prompt_len,
        args.seed,
        prompt=args.prompt,
        backend=args.backend,
    )
    ours = run_worker(sys.executable, "ours", work, args.batch_size, args.repeats, args.threads)
    ct = run_worker(args.ct_python, "ct", work, args.batch_size, args.repeats, args.threads)
    cmp = compare(ours.pop("edges"), ct.pop("edges"))
    report = {
        "organism": args.organism,
        "transcoders": job["transcoders"],
        "prompt": args.prompt,
        "prompt_tokens": len(job["tokens"]),
        "tokens": job["tokens"],
        "logit_targets": job["target_logits"],
        "batch_size": args.batch_size,
        "threads": args.threads,
        "ours": ours,
        "circuit_tracer": ct,
        "time_ratio_ours_over_ct": ours["seconds_median"] / ct["seconds_median"],
        # None where circuit-tracer's run needed no memory beyond what its warm-up left (a short
        # prompt: the warm-up is the whole prompt, and its freed blocks are reused)
        "memory_ratio_ours_over_ct": (
            ours["peak_mb_delta"] / ct["peak_mb_delta"] if ct["peak_mb_delta"] >= 1 else None
        ),
        "peak_rss_ratio_ours_over_ct": ours["peak_rss_mb"] / ct["peak_rss_mb"],
        "same_logit_targets": sorted(ours["logit_targets"]) == sorted(ct["logit_targets"]),
        "edges": cmp,
    }
    print(json.dumps(report, indent=2))
    (work / "report.json").write_text(json.dumps(report, indent=2))


# -- workers -----------------------------------------------------------------------------------
def worker_ours(job: dict, work: Path, batch: int, repeats: int) -> dict:
    import torch

    from interp import load_model
    from interp.attribution_graph import attribution_graph
    from interp.dictionaries import load_transcoders

    model = load_model(job["organism"], device="cpu", backend=job.get("backend", "auto"))
    tcs = load_transcoders(job["transcoders"])
    tokens = torch.tensor(job["tokens"])
    targets = job.get("target_logits")
    attribution_graph(model, tcs, tokens[:8], batch_size=batch)  # warm-up (imports, kernels)
    before = rss_mb()
    times = []
    g = None
    for _ in range(repeats):
        g = None  # the previous graph is freed before the next is built
        t = time.perf_counter()
        g = attribution_graph(model, tcs, tokens, batch_size=batch, target_logits=targets)
        times.append(time.perf_counter() - t)
    peak_abs = peak_mb()  # before the comparison's edge dict is built
    peak = peak_abs - before
    edges = {f"{s.node_id}>{d.node_id}": w for s, d, w, _ in g.edges()}
    info = g.provenance
    return {
        "model": type(model).__name__,
        "engine": info["settings"]["engine"],
        "seconds": times,
        "seconds_median": sorted(times)[len(times) // 2],
        "peak_mb_delta": peak,
        "rss_mb_before": before,
        "peak_rss_mb": peak_abs,
        "nodes": len(g.nodes),
        "feature_nodes": info["n_feature_nodes"],
        "logit_targets": [n.index for n in g.nodes if n.kind == "logit"],
        "edges": edges,
    }


def worker_ct(job: dict, work: Path, batch: int, repeats: int) -> dict:
    import torch
    from circuit_tracer import ReplacementModel, attribute
    from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set
    from transformer_lens import HookedTransformerConfig
    from transformers import PreTrainedTokenizerFast

    paths = {int(k): v for k, v in job["transcoder_paths"].items()}
    tcs = load_transcoder_set(
        paths,
        scan="interp",
        feature_input_hook="ln2.hook_normalized",
        feature_output_hook="hook_mlp_out",
        device=torch.device("cpu"),
        dtype=torch.float32,
        lazy_encoder=False,
        lazy_decoder=False,
    )
    cfg = HookedTransformerConfig(**job["cfg"], dtype=torch.float32, device="cpu")
    model = ReplacementModel.from_config(cfg, tcs, backend="transformerlens")
    state = torch.load(work / "model.pt")
    buffers = ("mask", "IGNORE", "rotary_sin", "rotary_cos")  # rebuilt by the config
    state = {_ct_key(k): v for k, v in state.items() if not k.endswith(buffers)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("transcoders.") and "IGNORE" not in k]
    bad = [k for k in bad if not k.endswith(("mask", "rotary_sin", "rotary_cos"))]
    if bad or unexpected:
        raise RuntimeError(f"weights did not load: missing {bad[:5]}, unexpected {unexpected[:5]}")
    model.set_tokenizer(PreTrainedTokenizerFast.from_pretrained(job["tokenizer"]))
    tokens = torch.tensor(job["tokens"])
    targets = job.get("target_logits")
    targets = None if targets is None else torch.tensor(targets)
    attribute(tokens[:8], model, batch_size=batch)  # warm-up
    before = rss_mb()
    times = []
    g = None
    for _ in range(repeats):
        g = None  # the previous graph is freed before the next is built
        t = time.perf_counter()
        g = attribute(tokens, model, batch_size=batch, attribution_targets=targets)
        times.append(time.perf_counter() - t)
    peak_abs = peak_mb()  # before the comparison's edge dict is built
    peak = peak_abs - before
    if g.input_tokens.tolist() != tokens.tolist():  # e.g. a BOS it did not know was special
        raise RuntimeError(
            f"circuit-tracer ran on {g.input_tokens.tolist()}, not {tokens.tolist()}"
        )
    n_pos, n_layers = len(tokens), cfg.n_layers
    sel = g.active_features[g.selected_features].tolist()
    names = [f"feature.{la}.{f}@{p}" for la, p, f in sel]
    names += [f"error.{la}@{p}" for la in range(n_layers) for p in range(n_pos)]
    names += [f"token.{int(t)}@{p}" for p, t in enumerate(tokens.tolist())]
    names += [f"logit.{n_layers}.{int(t.vocab_idx)}@{n_pos - 1}" for t in g.logit_targets]
    adj = g.adjacency_matrix
    dst, src = torch.nonzero(adj, as_tuple=True)
    w = adj[dst, src].tolist()
    edges = {f"{names[s]}>{names[d]}": x for s, d, x in zip(src.tolist(), dst.tolist(), w)}
    return {
        "seconds": times,
        "seconds_median": sorted(times)[len(times) // 2],
        "peak_mb_delta": peak,
        "rss_mb_before": before,
        "peak_rss_mb": peak_abs,
        "nodes": len(names),
        "feature_nodes": len(sel),
        "logit_targets": [int(t.vocab_idx) for t in g.logit_targets],
        "edges": edges,
    }


def _ct_key(k: str) -> str:
    parts = k.split(".")
    if len(parts) > 2 and parts[0] == "blocks" and parts[2] == "mlp":
        return ".".join(parts[:3] + ["old_mlp"] + parts[3:])
    if parts[0] == "unembed":
        return ".".join(["unembed", "old_unembed"] + parts[1:])
    return k


if __name__ == "__main__":
    main()
