"""Training a cross-layer transcoder, and the one shipped for the ``induction-2l`` organism.

The loss is the per-layer transcoder's (``_transcoder.py``), summed over the layers: the squared
error of every MLP's predicted output (each scaled to unit mean squared norm while training,
so every layer counts alike) plus an L1 penalty on each feature's activation weighted by the
norm of *all* its decoders together (the features of layer ``l`` write to ``n_layers - l`` MLPs,
and shrinking those decoders must not buy sparsity). The penalty warms up over the first steps;
features that stop firing are pointed at badly predicted inputs (encoder) and at what their own
layer misses there (decoder), as the per-layer trainer does. Activations are collected once into
a buffer, as there.

``train_shipped_clt("induction-2l")`` reproduces ``weights/induction-2l-clt/`` (seeded; about a
minute on two busy CPU cores) from the data the per-layer transcoders of the organism learn from
(``token_sampler``), and records the held-out figures (``clt_report``) in its ``metrics.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..hooks import check_hook, hook_name, locked
from ._clt import INPUT_HOOKS, CrossLayerTranscoder
from ._transcoder import TranscoderTrainConfig, _activation_buffer, _AdamTrainer, _model_name

WEIGHTS_DIR = Path(__file__).parent / "weights"

CLT_RECIPES: dict[str, TranscoderTrainConfig] = {
    "induction-2l": TranscoderTrainConfig(
        d_sae=512,
        steps=2000,
        batch_tokens=512,
        buffer_tokens=32768,
        seq_len=128,
        lr=2e-3,
        l1_coefficient=2e-2,
    ),
}


def clt_shipped_dir(name: str) -> Path:
    """The folder of the shipped cross-layer transcoder of organism ``name``."""
    if name not in CLT_RECIPES:
        raise ValueError(f"no shipped CLT for {name!r}; shipped: {', '.join(sorted(CLT_RECIPES))}")
    return WEIGHTS_DIR / f"{name}-clt"


@locked
def train_clt(
    model,
    config: TranscoderTrainConfig | None = None,
    *,
    input_hook: str = "ln2.hook_normalized",
    next_tokens: Callable[[int, torch.Generator], Tensor] | None = None,
    model_name: str = "",
    progress: bool = True,
) -> tuple[CrossLayerTranscoder, list[dict]]:
    """Train a cross-layer transcoder over every MLP of ``model``.

    Arguments:
        model: a TransformerLens model.
        config: a ``TranscoderTrainConfig``; ``d_sae`` is the number of features *per layer*.
        input_hook: where features read, relative to ``blocks.L`` (``"ln2.hook_normalized"`` or
            ``"hook_resid_mid"``).
        next_tokens: ``next_tokens(n_sequences, generator) -> [n, seq_len]`` token batches
            (default: random tokens, which only suits tests).

    Returns:
        ``(clt, per-step logs)``; the CLT is in eval mode, in the model's units.
    """
    config = config or TranscoderTrainConfig()
    if input_hook not in INPUT_HOOKS:
        raise ValueError(f"input_hook must be one of {INPUT_HOOKS}, got {input_hook!r}")
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    names = {
        la: (check_hook(model, f"blocks.{la}.{input_hook}"), hook_name(model, "mlp_out", la))
        for la in range(n_layers)
    }
    buffers, gen = _activation_buffer(model, names, config, next_tokens, progress)
    # inputs to the norm of the layer-normalised scale, outputs to unit mean squared norm
    in_scale = [float(buffers[la][0].pow(2).sum(-1).mean().sqrt()) / d_model**0.5 for la in names]
    out_scale = [float(buffers[la][1].pow(2).sum(-1).mean().sqrt()) for la in names]
    xs = torch.stack([buffers[la][0] / in_scale[la] for la in names])  # [L, N, d]
    ys = torch.stack([buffers[la][1] / out_scale[la] for la in names])
    del buffers
    device = xs.device
    clt = CrossLayerTranscoder(
        n_layers, d_model, config.d_sae, input_hook=input_hook, model_name=model_name
    ).to(device)
    trainer = _CLTTrainer(clt, config)
    trainer.init_from(ys)
    n_buf = xs.shape[1]
    logs: list[dict] = []
    bar = tqdm(range(config.steps), desc="clt", mininterval=5, disable=not progress)
    for step in bar:
        idx = torch.randint(0, n_buf, (config.batch_tokens,), generator=gen).to(device)
        logs.append(trainer.step(step, xs[:, idx], ys[:, idx], gen))
        if step % 50 == 0:
            bar.set_postfix(fve=f"{logs[-1]['fve']:.3f}", l0=f"{logs[-1]['l0']:.1f}")
    with torch.no_grad():
        for la in range(n_layers):
            clt.W_enc[la].div_(in_scale[la])
            clt.b_dec[la].mul_(out_scale[la])
            for m in range(la, n_layers):
                clt.W_dec[la][:, m - la].mul_(out_scale[m])
    clt.eval()
    clt.requires_grad_(False)
    clt.model_name = model_name or _model_name(model)
    clt.metadata = {"training": {**asdict(config), "in_scale": in_scale, "out_scale": out_scale}}
    return clt, logs


class _CLTTrainer(_AdamTrainer):
    """Adam on a CLT: summed MSE + decoder-norm-weighted L1, with dead-feature resampling."""

    def __init__(self, clt: CrossLayerTranscoder, config: TranscoderTrainConfig):
        super().__init__(clt, config, (clt.n_layers, config.d_sae))
        self.clt = clt

    @torch.no_grad()
    def init_from(self, ys: Tensor) -> None:
        """Each feature's decoders: norm 0.1 in all in random directions; encoder rows of norm
        0.5 (0.5 / sqrt(d) per unit of input); output biases at the mean outputs."""
        clt = self.clt
        for la in range(clt.n_layers):
            w = torch.randn(clt.W_dec[la].shape, device=ys.device)
            clt.W_dec[la].copy_(0.1 * w / w.flatten(1).norm(dim=-1)[:, None, None])
            enc = torch.randn(clt.d_model, clt.d_sae, device=ys.device)
            clt.W_enc[la].copy_(enc / enc.norm(dim=0, keepdim=True) * 0.5)
        clt.b_enc.zero_()
        clt.b_dec.copy_(ys.mean(1))

    def step(self, step: int, xs: Tensor, ys: Tensor, gen: torch.Generator) -> dict:
        clt = self.clt
        l1 = self.begin(step)
        feats = [torch.relu(xs[la] @ clt.W_enc[la] + clt.b_enc[la]) for la in range(clt.n_layers)]
        y_hat = torch.stack([clt.decode_layer(feats, m) for m in range(clt.n_layers)])
        err = (y_hat - ys).pow(2).sum(-1)  # [L, B]
        mse = err.mean(1).sum()
        norms = clt.decoder_norms()
        sparsity = sum((f * norms[la]).sum(-1).mean() for la, f in enumerate(feats))
        self.descend(mse + l1 * sparsity)
        with torch.no_grad():
            fired = torch.stack([(f > 0).any(0) for f in feats]).cpu()
            self.last_fired[fired] = step
            var = (ys - ys.mean(1, keepdim=True)).pow(2).sum(-1).mean(1)
            fve = 1 - err.mean(1) / var
            log = {
                "step": step,
                "mse": float(mse),
                "fve": float(fve.mean()),
                "fve_per_layer": [float(v) for v in fve],
                "l0": float(sum((f > 0).float().sum(-1).mean() for f in feats)),
                "dead": int(self.dead(step).sum()),
                "resampled": 0,
            }
            if self.resample_due(step):
                log["resampled"] = self.resample(step, xs, ys - y_hat, err.sum(0), gen)
        return log

    @torch.no_grad()
    def resample(self, step: int, xs: Tensor, residual: Tensor, err: Tensor, gen) -> int:
        """Point dead features of each layer at the inputs predicted worst (Anthropic, 2023)."""
        clt, cfg = self.clt, self.cfg
        total = 0
        for la in range(clt.n_layers):
            dead = torch.nonzero(self.dead(step)[la]).flatten()
            if dead.numel() == 0:
                continue
            pick = torch.multinomial(
                err.cpu().clamp_min(1e-12), dead.numel(), replacement=True, generator=gen
            ).to(xs.device)
            d = dead.to(xs.device)
            alive = torch.ones(cfg.d_sae, dtype=torch.bool, device=xs.device)
            alive[d] = False
            enc_norm = clt.W_enc[la][:, alive].norm(dim=0).mean() if alive.any() else 1.0
            x = xs[la, pick]
            clt.W_enc[la][:, d] = (x / x.norm(dim=-1, keepdim=True) * 0.2 * enc_norm).T
            clt.b_enc[la, d] = 0.0
            r = residual[la, pick]
            clt.W_dec[la][d] = 0.0
            clt.W_dec[la][d, 0] = 0.1 * r / r.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            for p, rows in ((clt.W_enc, (la, slice(None), d)), (clt.b_enc, (la, d))):
                self.zero_state(p, rows)
            self.zero_state(clt.W_dec[la], (d,))
            self.last_fired[la, dead] = step
            total += int(dead.numel())
        return total


def train_shipped_clt(
    name: str = "induction-2l",
    out: str | Path | None = None,
    *,
    config: TranscoderTrainConfig | None = None,
    progress: bool = True,
) -> Path:
    """Train the CLT of organism ``name`` and save it (circuit-tracer's format, float16).

    ``out`` defaults to the shipped folder; it is replaced atomically and gets a
    ``metrics.json`` with the held-out figures of the saved weights (``clt_report``).
    """
    from ..models import load_model
    from ._clt_evaluate import clt_report
    from ._clt_io import load_clt, save_clt
    from ._recipes import SYNTHETIC_FRACTION, held_out_tokens, token_sampler

    if name not in CLT_RECIPES:
        raise ValueError(f"no CLT recipe for {name!r}; recipes: {', '.join(sorted(CLT_RECIPES))}")
    config = config or CLT_RECIPES[name]
    out = Path(out) if out is not None else clt_shipped_dir(name)
    model = load_model(name, device="cpu")
    sample = token_sampler(model, SYNTHETIC_FRACTION.get(name, 0.0))
    clt, logs = train_clt(
        model,
        config,
        next_tokens=lambda n, g: sample(n, g, config.seq_len),
        model_name=name,
        progress=progress,
    )
    clt.metadata["training"]["recipe"] = name
    clt.metadata["training"]["final_log"] = logs[-1]
    save_clt(clt, out, dtype=torch.float16)
    # figures of the saved (float16) weights, as they will be loaded
    report = clt_report(model, load_clt(out), held_out_tokens(model))
    report["training"] = {"recipe": name, "final_log": logs[-1]}
    save_clt(
        load_clt(out),
        out,
        dtype=torch.float16,
        extra_files={"metrics.json": json.dumps(report, indent=2) + "\n"},
    )
    return out


def shipped_clt_metrics(name: str = "induction-2l") -> dict:
    """The held-out figures recorded when the shipped CLT of ``name`` was trained."""
    return json.loads((clt_shipped_dir(name) / "metrics.json").read_text())
