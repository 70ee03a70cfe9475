"""Models and tasks the benchmarks share: a GPT-2-small-shaped model with random weights, and
random-token clean/corrupted prompts for it."""

import torch


def gpt2_small_shape(seed: int = 0, device: str = "cpu"):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_head=64,
        d_mlp=3072,
        d_vocab=50257,
        n_ctx=1024,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
        device=device,
    )
    model = HookedTransformer(cfg)
    model.eval()
    return model


def make_task(model, seq: int, n_prompts: int, seed: int = 0):
    from interp.tasks import Task

    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, model.cfg.d_vocab, (n_prompts, seq), generator=gen)
    corrupted = clean.clone()
    corrupted[:, : seq // 2] = torch.randint(
        1, model.cfg.d_vocab, (n_prompts, seq // 2), generator=gen
    )
    answers = torch.randint(1, model.cfg.d_vocab, (n_prompts,), generator=gen)
    wrong = torch.randint(1, model.cfg.d_vocab, (n_prompts,), generator=gen)
    return Task(clean, corrupted, answers, wrong, metric="logit_diff", name="random tokens")
