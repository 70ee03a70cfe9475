"""Training sparse autoencoders with sae-lens's own trainer, offline.

sae-lens trains SAEs from a language model and a dataset; here both are passed in memory
(``override_model=`` and ``override_dataset=``, a Hugging Face ``Dataset`` of token rows), so
nothing is downloaded, and logging to Weights & Biases is off. sae-lens needs
``n_batches_in_buffer * context_size >= train_batch_size_tokens``; the defaults here satisfy
it and a bad combination fails before any work.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from .. import _checks
from ..hooks import check_hook, locked

ARCHITECTURES = ("standard", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk")


@locked
def train_sae(
    model,
    hook: str,
    tokens: Tensor,
    *,
    d_sae: int = 1024,
    architecture: str = "standard",
    k: int = 32,
    l1_coefficient: float = 5.0,
    training_tokens: int = 200_000,
    train_batch_size_tokens: int = 1024,
    n_batches_in_buffer: int = 8,
    lr: float = 3e-4,
    seed: int = 0,
    output_path: str | Path | None = None,
    progress: bool = False,
):
    """Train an SAE on activations at ``hook`` with sae-lens's trainer; returns a sae-lens ``SAE``.

    Arguments:
        model: a TransformerLens ``HookedTransformer``.
        hook: a checked hook name, e.g. ``interp.hooks.hook_name(model, "resid_post", 0)``.
        tokens: ``[n, context_size]`` token rows to train on (each row one context).
        architecture: one of ``ARCHITECTURES``; ``k`` is used by the top-k kinds,
            ``l1_coefficient`` by ``standard`` and ``jumprelu``.
        output_path: where sae-lens writes the final SAE (default: a temporary folder, removed).

    The returned SAE is the inference form (``SAE.load_from_disk`` of what the trainer saved),
    so ``save_model`` / ``load_dictionary`` round-trip it in sae-lens's format.
    """
    _checks.require("sae_lens", "training an SAE", _checks.SAE_LENS_INSTALL)
    from datasets import Dataset
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig

    check_hook(model, hook)
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() != 2 or tokens.shape[0] < 1:
        raise ValueError(f"tokens must be [n, context_size] token rows, got {tuple(tokens.shape)}")
    context = int(tokens.shape[1])
    if context > model.cfg.n_ctx:
        raise ValueError(
            f"token rows are {context} long but the model's n_ctx is {model.cfg.n_ctx}"
        )
    if n_batches_in_buffer * context < train_batch_size_tokens:
        raise ValueError(
            f"sae-lens needs n_batches_in_buffer * context_size >= train_batch_size_tokens: "
            f"{n_batches_in_buffer} * {context} < {train_batch_size_tokens}"
        )
    sae_cfg = _sae_config(architecture, int(model.cfg.d_model), d_sae, k, l1_coefficient)
    device = str(next(model.parameters()).device)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(output_path) if output_path is not None else Path(tmp) / "sae"
        cfg = LanguageModelSAERunnerConfig(
            sae=sae_cfg,
            model_name="custom",
            hook_name=hook,
            dataset_path="in-memory",
            is_dataset_tokenized=True,
            streaming=False,
            context_size=context,
            prepend_bos=False,  # rows already start with BOS when the caller wants one
            training_tokens=int(training_tokens),
            train_batch_size_tokens=int(train_batch_size_tokens),
            n_batches_in_buffer=int(n_batches_in_buffer),
            store_batch_size_prompts=min(16, tokens.shape[0]),
            lr=lr,
            device=device,
            seed=seed,
            logger=LoggingConfig(log_to_wandb=False),
            n_checkpoints=0,
            checkpoint_path=str(Path(tmp) / "checkpoints"),
            output_path=str(out),
            n_batches_for_norm_estimate=4,
            n_eval_batches=1,
            verbose=progress,
            model_from_pretrained_kwargs={},  # the model is passed in, not loaded by sae-lens
        )
        dataset = Dataset.from_dict({"input_ids": tokens.tolist()})
        with warnings.catch_warnings():
            # sae-lens warns that overrides make the run unreproducible from its config alone,
            # and that a small in-memory dataset is reused across epochs: both expected here
            warnings.filterwarnings("ignore", category=UserWarning, module=r"sae_lens(\.|$)")
            runner = LanguageModelSAETrainingRunner(
                cfg, override_dataset=dataset, override_model=model
            )
            trained = runner.run()
        from sae_lens import SAE

        final = SAE.load_from_disk(out, device=device) if (out / "cfg.json").exists() else None
        if final is None:
            trained.eval()
            return trained
        final.eval()
        return final


def _sae_config(architecture: str, d_in: int, d_sae: int, k: int, l1: float):
    import sae_lens

    kinds = {
        "standard": ("StandardTrainingSAEConfig", {"l1_coefficient": l1}),
        "topk": ("TopKTrainingSAEConfig", {"k": k}),
        "batchtopk": ("BatchTopKTrainingSAEConfig", {"k": k}),
        "jumprelu": ("JumpReLUTrainingSAEConfig", {"l0_coefficient": l1}),
        "matryoshka_batchtopk": ("MatryoshkaBatchTopKTrainingSAEConfig", {"k": k}),
    }
    name, extra = kinds[architecture]
    return getattr(sae_lens, name)(d_in=d_in, d_sae=int(d_sae), **extra)
