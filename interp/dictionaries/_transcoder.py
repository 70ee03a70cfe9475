"""Training transcoders: sparse, wide replacements for an MLP layer.

A transcoder reads the normalised residual stream that enters an MLP
(``blocks.L.ln2.hook_normalized``) and predicts the MLP's output (``blocks.L.hook_mlp_out``)
through a wide layer of sparsely active ReLU features::

    f = relu(x @ W_enc + b_enc)          # [d_sae] feature activations
    y_hat = f @ W_dec + b_dec            # [d_model] predicted MLP output

It is a sae-lens ``Transcoder`` (architecture ``"transcoder"``), saved in sae-lens's format
(``cfg.json`` + ``sae_weights.safetensors``), so ``sae_lens.SAE.load_from_disk`` loads it
unchanged. sae-lens has no trainer for transcoders (its issue #182); the loop here is ours:
mean squared error of the prediction plus an L1 penalty on the activations weighted by each
feature's decoder norm (so shrinking the decoder cannot buy sparsity), with the penalty warmed
up over the first steps and features that stop firing re-initialised on badly predicted inputs.

The normalised input leaves out the norm's learned weight (``ln2.w``): the transcoder absorbs it
into ``W_enc``. With the norm's scale held fixed, a feature's pre-activation is a linear function
of the residual stream, which is what attribution graphs rely on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import _checks
from ..adapter import adapter
from ..hooks import check_hook, hook_name, locked, run_with_cache


def transcoder_hooks(model, layer: int) -> tuple[str, str]:
    """The checked ``(input, output)`` hook names of the transcoder for MLP ``layer``."""
    out = hook_name(model, "mlp_out", layer)
    return check_hook(model, f"blocks.{int(layer)}.ln2.hook_normalized"), out


@dataclass
class TranscoderTrainConfig:
    """How a transcoder is trained.

    Arguments:
        d_sae: number of features.
        steps: optimiser steps; each draws ``batch_tokens`` activations from the buffer.
        batch_tokens: activations per step.
        buffer_tokens: how many tokens' activations are collected (once) to train on.
        seq_len: length of each sequence run through the model (BOS first).
        lr: Adam learning rate (cosine-decayed to a tenth after a short warm-up).
        l1_coefficient: weight of the sparsity penalty ``sum_f f * |W_dec[f]|`` measured on
            outputs scaled to unit mean squared norm.
        l1_warmup_fraction: share of the steps over which the penalty rises from 0.
        dead_after: a feature that has not fired for this many steps is re-initialised.
        resample_every: how often dead features are looked for (0: never); resampling stops
            after 70% of the steps so the last features settle.
        seed: seeds initialisation, data and resampling.
        buffer_dtype: how the activation buffer is stored (``"bfloat16"`` halves its memory,
            which for all 30 MLPs of SmolLM2 is 4.5 GB at 65,536 tokens); steps run in float32.
    """

    d_sae: int = 1024
    steps: int = 2000
    batch_tokens: int = 1024
    buffer_tokens: int = 131072
    seq_len: int = 128
    lr: float = 2e-3
    l1_coefficient: float = 3e-3
    l1_warmup_fraction: float = 0.05
    dead_after: int = 200
    resample_every: int = 250
    seed: int = 0
    buffer_dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("d_sae", "steps", "batch_tokens", "buffer_tokens", "seq_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.lr <= 0 or self.l1_coefficient < 0:
            raise ValueError("lr must be > 0 and l1_coefficient >= 0")
        if self.buffer_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"buffer_dtype must be 'float32', 'bfloat16' or 'float16', got {self.buffer_dtype!r}"
            )


def new_transcoder(model, layer: int, d_sae: int, *, model_name: str = ""):
    """An untrained sae-lens ``Transcoder`` for MLP ``layer`` of ``model`` (hooks in metadata)."""
    _checks.require("sae_lens", "a transcoder", _checks.SAE_LENS_INSTALL)
    from sae_lens import Transcoder, TranscoderConfig
    from sae_lens.saes.sae import SAEMetadata

    hook_in, hook_out = transcoder_hooks(model, layer)
    d_model = int(model.cfg.d_model)
    cfg = TranscoderConfig(
        d_in=d_model,
        d_sae=int(d_sae),
        d_out=d_model,
        dtype="float32",
        device=str(_device(model)),
        apply_b_dec_to_input=False,
        metadata=SAEMetadata(
            model_name=model_name or _model_name(model),
            hook_name=hook_in,
            hook_name_out=hook_out,
            hook_head_index=None,
            hook_head_index_out=None,
            prepend_bos=True,
            context_size=int(model.cfg.n_ctx),
        ),
    )
    return Transcoder(cfg)


@locked
def train_transcoders(
    model,
    layers: list[int] | None = None,
    config: TranscoderTrainConfig | None = None,
    *,
    next_tokens: Callable[[int, torch.Generator], Tensor] | None = None,
    model_name: str = "",
    progress: bool = True,
) -> tuple[dict, dict[int, list[dict]]]:
    """Train one transcoder per MLP ``layer`` on the same stream of activations.

    Arguments:
        model: a TransformerLens model.
        layers: which MLPs (default: all).
        config: a ``TranscoderTrainConfig``.
        next_tokens: ``next_tokens(n_sequences, generator) -> [n, seq_len]`` token batches
            (default: random token sequences, which only suits tests).
        model_name: recorded in each transcoder's metadata.

    Returns:
        ``({layer: sae_lens.Transcoder}, {layer: [per-step log dicts]})``; the transcoders are in
        eval mode, with decoder and bias scaled back to the model's units.
    """
    config = config or TranscoderTrainConfig()
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    names = {layer: transcoder_hooks(model, layer) for layer in layers}
    buffers, gen = _activation_buffer(model, names, config, next_tokens, progress)
    # outputs are scaled to unit mean squared norm while training, so one l1 suits every layer
    out_scale = {
        layer: float(y.float().pow(2).sum(-1).mean().sqrt()) for layer, (_, y) in buffers.items()
    }
    trainers = {
        layer: _Trainer(new_transcoder(model, layer, config.d_sae, model_name=model_name), config)
        for layer in layers
    }
    for layer, t in trainers.items():
        t.init_from(*_scaled(buffers[layer], out_scale[layer]))
    n_buf = next(iter(buffers.values()))[0].shape[0]
    logs: dict[int, list[dict]] = {layer: [] for layer in layers}
    bar = tqdm(range(config.steps), desc="transcoders", mininterval=5, disable=not progress)
    for step in bar:
        idx = torch.randint(0, n_buf, (config.batch_tokens,), generator=gen)
        for layer, t in trainers.items():
            x, y = buffers[layer]
            logs[layer].append(t.step(step, x[idx].float(), y[idx].float() / out_scale[layer], gen))
        if step % 50 == 0:
            bar.set_postfix(
                {
                    f"L{la}": f"fve={lg[-1]['fve']:.3f} l0={lg[-1]['l0']:.1f}"
                    for la, lg in logs.items()
                }
            )
    out = {}
    for layer, t in trainers.items():
        tc = t.tc
        with torch.no_grad():
            tc.W_dec.mul_(out_scale[layer])
            tc.b_dec.mul_(out_scale[layer])
        tc.eval()
        tc.requires_grad_(False)
        tc.cfg.metadata.training = {**asdict(config), "out_scale": out_scale[layer]}
        out[layer] = tc
    return out, logs


@locked
def train_transcoder(model, layer: int, config: TranscoderTrainConfig | None = None, **kwargs):
    """Train the transcoder of MLP ``layer``; see ``train_transcoders`` for the arguments."""
    tcs, _ = train_transcoders(model, [layer], config, **kwargs)
    return tcs[int(layer)]


class _AdamTrainer:
    """What training a transcoder and a cross-layer transcoder share (``TranscoderTrainConfig``):
    Adam; a learning rate warmed up over the first 2% of the steps, then cosine-decayed from
    ``lr`` to a tenth of it; the L1 coefficient ramped in over ``l1_warmup_fraction`` of the
    steps; gradients clipped at norm 1; dead features (not active for ``dead_after`` steps, by
    ``last_fired``, shaped ``features``) resampled every ``resample_every`` steps in the first
    70% of training."""

    def __init__(self, module: torch.nn.Module, config: TranscoderTrainConfig, features: tuple):
        self.module, self.cfg = module, config
        module.train()
        self.opt = torch.optim.Adam(module.parameters(), lr=config.lr)
        self.last_fired = torch.zeros(features, dtype=torch.long)

    def lr(self, step: int) -> float:
        warm = max(1, self.cfg.steps // 50)
        if step < warm:
            return self.cfg.lr * (step + 1) / warm
        p = (step - warm) / max(1, self.cfg.steps - warm)
        return self.cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * p)))

    def begin(self, step: int) -> float:
        """Set the learning rate of ``step``; the L1 coefficient at ``step``."""
        for g in self.opt.param_groups:
            g["lr"] = self.lr(step)
        ramp = min(1.0, (step + 1) / max(1, self.cfg.l1_warmup_fraction * self.cfg.steps))
        return self.cfg.l1_coefficient * ramp

    def descend(self, loss: Tensor) -> None:
        """One Adam step on ``loss``, gradients clipped at norm 1."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)
        self.opt.step()

    def dead(self, step: int) -> Tensor:
        """Which features have not fired for ``dead_after`` steps (shaped like ``last_fired``)."""
        return step - self.last_fired >= self.cfg.dead_after

    def resample_due(self, step: int) -> bool:
        cfg = self.cfg
        every = cfg.resample_every
        return bool(every) and 0 < step < 0.7 * cfg.steps and step % every == 0

    def zero_state(self, param: Tensor, index: tuple) -> None:
        """Forget Adam's moments of ``param[index]`` (features just resampled)."""
        state = self.opt.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][index] = 0.0


class _Trainer(_AdamTrainer):
    """Adam on one transcoder: MSE + decoder-norm-weighted L1, with dead-feature resampling."""

    def __init__(self, tc, config: TranscoderTrainConfig):
        super().__init__(tc, config, (config.d_sae,))
        self.tc = tc

    def init_from(self, x: Tensor, y: Tensor) -> None:
        """Decoder rows of norm 0.1 in random directions, encoder = their transpose, b_dec = mean."""
        tc = self.tc
        with torch.no_grad():
            w = torch.randn(tc.cfg.d_sae, tc.cfg.d_out, device=tc.W_dec.device)
            tc.W_dec.copy_(0.1 * w / w.norm(dim=-1, keepdim=True))
            enc = torch.randn(tc.cfg.d_in, tc.cfg.d_sae, device=tc.W_enc.device)
            tc.W_enc.copy_(enc / enc.norm(dim=0, keepdim=True) * 0.5)
            tc.b_enc.zero_()
            tc.b_dec.copy_(y.mean(0))

    def step(self, step: int, x: Tensor, y: Tensor, gen: torch.Generator) -> dict:
        tc = self.tc
        l1 = self.begin(step)
        pre = x @ tc.W_enc + tc.b_enc
        f = torch.relu(pre)
        y_hat = f @ tc.W_dec + tc.b_dec
        err = (y_hat - y).pow(2).sum(-1)
        mse = err.mean()
        sparsity = (f * tc.W_dec.norm(dim=-1)).sum(-1).mean()
        self.descend(mse + l1 * sparsity)
        with torch.no_grad():
            fired = (f > 0).any(0).cpu()
            self.last_fired[fired] = step
            var = (y - y.mean(0)).pow(2).sum(-1).mean()
            log = {
                "step": step,
                "mse": float(mse),
                "fve": float(1 - mse / var),
                "l0": float((f > 0).float().sum(-1).mean()),
                "dead": int(self.dead(step).sum()),
                "resampled": 0,
            }
            if self.resample_due(step):
                log["resampled"] = self.resample(step, x, y - y_hat.detach(), err.detach(), gen)
        return log

    @torch.no_grad()
    def resample(self, step: int, x: Tensor, residual: Tensor, err: Tensor, gen) -> int:
        """Point dead features at inputs the transcoder predicts worst (Anthropic, 2023)."""
        tc, cfg = self.tc, self.cfg
        dead = torch.nonzero(self.dead(step)).flatten()
        if dead.numel() == 0:
            return 0
        pick = torch.multinomial(
            err.cpu().clamp_min(1e-12), dead.numel(), replacement=True, generator=gen
        )
        pick = pick.to(x.device)
        dead_d = dead.to(x.device)
        alive = torch.ones(cfg.d_sae, dtype=torch.bool, device=x.device)
        alive[dead_d] = False
        enc_norm = tc.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        xi = x[pick]
        tc.W_enc[:, dead_d] = (xi / xi.norm(dim=-1, keepdim=True) * 0.2 * enc_norm).T
        tc.b_enc[dead_d] = 0.0
        r = residual[pick]
        tc.W_dec[dead_d] = 0.1 * r / r.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        for p, rows in (
            (tc.W_enc, (slice(None), dead_d)),
            (tc.b_enc, (dead_d,)),
            (tc.W_dec, (dead_d,)),
        ):
            self.zero_state(p, rows)
        self.last_fired[dead] = step
        return int(dead.numel())


def _activation_buffer(model, names, config, next_tokens, progress) -> tuple[dict, torch.Generator]:
    """``{layer: (inputs, outputs)}`` for ``config.buffer_tokens`` tokens, on the model's device,
    and the generator that drew them: seeded by ``config.seed`` (as torch is), it draws the
    training batches next. ``next_tokens`` (None: uniform random tokens) makes the sequences."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    if next_tokens is None:

        def next_tokens(n: int, g: torch.Generator) -> Tensor:
            return torch.randint(0, model.cfg.d_vocab, (n, config.seq_len), generator=g)

    per_batch = 32
    n_batches = max(1, -(-config.buffer_tokens // (per_batch * config.seq_len)))
    hooks = [n for pair in names.values() for n in pair]
    # layers above the deepest transcoder (and the unembedding) cannot change what is cached
    stop = max(names) + 1
    stop_kwargs = {"stop_at_layer": stop} if stop < int(model.cfg.n_layers) else {}
    parts: dict[int, tuple[list[Tensor], list[Tensor]]] = {layer: ([], []) for layer in names}
    dtype = getattr(torch, config.buffer_dtype)
    for _ in tqdm(range(n_batches), desc="activations", mininterval=5, disable=not progress):
        tokens = next_tokens(per_batch, gen).to(_device(model))
        _, cache = run_with_cache(model, tokens, hooks, **stop_kwargs)
        for layer, (i, o) in names.items():
            parts[layer][0].append(cache[i].reshape(-1, cache[i].shape[-1]).to(dtype))
            parts[layer][1].append(cache[o].reshape(-1, cache[o].shape[-1]).to(dtype))
    return {layer: (torch.cat(xs), torch.cat(ys)) for layer, (xs, ys) in parts.items()}, gen


def _scaled(pair: tuple[Tensor, Tensor], scale: float) -> tuple[Tensor, Tensor]:
    return pair[0].float(), pair[1].float() / scale


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _model_name(model) -> str:
    return adapter(model).spec or "model"
