"""Attention pathways: which heads move information from which positions to the prediction.

For a prompt and a target token, the trace works back from the logits:

1. **Heads into the logits.** Path patching (sender head -> logits, every other head frozen)
   scores each head's direct effect on the metric; the strongest heads act at the destination
   (the answer position).
2. **Where each head reads from.** Attention knockout of one (head, source -> destination) edge at
   a time, all sources in one batched pass, scores each source position; the strongest sources
   become ``token`` nodes feeding the head.
3. **Heads into those heads.** Path patching into the head's query, key and value inputs scores
   the earlier heads that feed it. A query sender acts at the head's destination; a key or value
   sender acts at the head's strongest source position. Steps 2-3 repeat for each sender, down to
   ``depth`` levels of heads.

Every weight is an effect on the metric, as a fraction of the clean-minus-corrupted difference;
the result is a small :class:`~interp.graph.CircuitGraph` the app draws.
"""

from __future__ import annotations

import torch

from .. import _checks
from ..graph import CircuitGraph, Node
from ..hooks import hook_name, locked, model_lock, scoped_hooks
from ..models import provenance
from ..path_patching import path_patch_sweep
from ..tasks import Task, TaskBatch, output_vocab


@locked
def pathway_task(model, prompt: str, target: str | int | None = None, seed: int = 0) -> Task:
    """A one-prompt task for a pathway trace: the target's logit against the best other token,
    with a corrupted prompt made by shuffling the prompt's tokens (the first token stays)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    tokens = _checks.tokenize(model, prompt, "prompt")[None]
    if tokens.shape[1] < 3:
        raise ValueError("prompt is too short for a pathway trace; give at least two tokens")
    with torch.no_grad(), model_lock(model):
        logits = model(tokens)[0, -1]
    if target is None:
        answer = int(logits.argmax())
    elif isinstance(target, int):
        answer = target
    else:
        ids = model.to_tokens(target, prepend_bos=False)[0]
        if len(ids) != 1:
            raise ValueError(f"target={target!r} is {len(ids)} tokens; give a single token")
        answer = int(ids[0])
    if not 0 <= answer < output_vocab(model):
        raise ValueError(
            f"target token id {answer} is outside the model's output vocabulary "
            f"0..{output_vocab(model) - 1}"
        )
    gen = torch.Generator().manual_seed(seed)
    corrupted = tokens.clone()
    perm = torch.randperm(tokens.shape[1] - 1, generator=gen) + 1
    corrupted[0, 1:] = tokens[0, perm]
    others = logits.clone()
    others[answer] = float("-inf")
    return Task(
        clean=tokens.cpu(),
        corrupted=corrupted.cpu(),
        answers=torch.tensor([answer]),
        wrong_answers=torch.tensor([int(others.argmax())]),
        metric="logit_diff",
        name="pathway",
    )


@locked
def source_effects(model, batch: TaskBatch, layer: int, head: int, dest: int) -> torch.Tensor:
    """Drop in the metric when head ``(layer, head)`` may not attend from ``dest`` to each source
    position (one knockout per source, all in one batched pass); ``[dest + 1]``."""
    _checks.indices([head], model.cfg.n_heads, "head", f"for {model.cfg.n_heads} heads")
    seq = batch.clean.shape[1]
    (dest,) = _checks.indices([dest], seq, "dest", f"for prompts of {seq} tokens")
    n_src = dest + 1
    b = batch.clean.shape[0]
    tokens = batch.clean.repeat(n_src, 1)  # row s * b + i: prompt i with source s knocked out
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    srcs = rows // b

    def knock(scores, hook):
        scores[rows, head, dest, srcs] = float("-inf")
        return scores

    with torch.no_grad(), scoped_hooks(model, [(hook_name(model, "attn_scores", layer), knock)]):
        logits = batch.read(model(tokens).view(n_src, b, seq, -1))
    clean, _ = batch.baseline(model)
    per = batch.per_prompt(logits).mean(-1)
    return clean - per


@locked
def attention_pathways(
    model,
    task: Task | TaskBatch | str,
    target: str | int | None = None,
    *,
    depth: int = 2,
    top_heads: int = 3,
    top_sources: int = 2,
    min_effect: float = 0.05,
) -> CircuitGraph:
    """Trace the attention pathway into the answer; returns a CircuitGraph.

    Arguments:
        model: a TransformerLens model.
        task: a Task (its first prompt pair is traced), or a prompt string (see ``pathway_task``).
        target: with a prompt string, the token to explain (default: the model's top prediction).
        depth: levels of heads to trace back from the logits (1: only heads into the logits).
        top_heads: at most this many heads per receiver.
        top_sources: at most this many source positions per head.
        min_effect: drop heads and sources whose effect is below this fraction of the
            clean-minus-corrupted metric.
    """
    if isinstance(task, str):
        task = pathway_task(model, task, target)
    batch = task.tokens(model) if isinstance(task, Task) else task
    if not (isinstance(depth, int) and depth >= 1):
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    for name, v in (("top_heads", top_heads), ("top_sources", top_sources)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not 0.0 <= min_effect <= 1.0:
        raise ValueError(f"min_effect must be in [0, 1], got {min_effect!r}")
    batch = batch.subset(slice(0, 1))
    if not isinstance(batch.answer_pos, int):
        raise ValueError(
            "attention_pathways traces one answer position; the task's first pair has "
            f"{batch.answer_pos.shape[-1]} (a multi-token answer)"
        )
    clean, corrupted = batch.baseline(model)
    scale = clean - corrupted
    if abs(scale) < 1e-6:
        raise ValueError(
            "the clean and corrupted prompts give the same metric, so no pathway carries the "
            "difference; choose a corrupted prompt that changes the answer"
        )
    dest = batch.answer_pos
    strings = model.to_str_tokens(batch.clean[0]) if model.tokenizer is not None else None
    answer = int(batch.answers[0].flatten()[0])  # the first, if several
    with torch.no_grad():
        prob = float(model(batch.clean)[0, dest].float().softmax(-1)[answer])
    graph = CircuitGraph(
        provenance={
            "name": "attention pathway",
            "method": "attention_pathways",
            "model": provenance(model),
            "n_layers": model.cfg.n_layers,
            "prompt_tokens": strings or batch.clean[0].tolist(),
            "prompt": "".join(strings) if strings else "",
            "target": answer,
            "clean_metric": clean,
            "corrupted_metric": corrupted,
            "settings": {"depth": depth, "top_heads": top_heads, "top_sources": top_sources},
        }
    )
    label = repr(model.to_string([answer])) if model.tokenizer is not None else ""
    logit = Node("logit", model.cfg.n_layers, dest, answer, label, prob)

    def token(pos: int) -> Node:
        text = strings[pos] if strings else str(int(batch.clean[0, pos]))
        return Node("token", None, pos, int(batch.clean[0, pos]), text)

    def strongest(values: torch.Tensor, k: int) -> list[tuple[int, float]]:
        rel = values / scale
        order = rel.abs().flatten().argsort(descending=True)[:k].tolist()
        return [(i, float(rel.flatten()[i])) for i in order if abs(rel.flatten()[i]) >= min_effect]

    def head_node(layer: int, head: int, pos: int) -> Node:
        return Node("head", layer, pos, head, f"L{layer}H{head}")

    n_heads = model.cfg.n_heads
    into_logits = path_patch_sweep(model, batch, "logits", "noise", progress=False).values
    frontier = []
    for i, w in strongest(clean - into_logits, top_heads):
        node = head_node(i // n_heads, i % n_heads, dest)
        graph.add_edge(node, logit, w, "path_patching")
        frontier.append(node)
    traced: set[str] = set()
    for level in range(depth):
        next_frontier = []
        for node in frontier:
            if node.node_id in traced:
                continue
            traced.add(node.node_id)
            effects = source_effects(model, batch, node.layer, node.index, node.pos)
            sources = strongest(effects, top_sources)
            for pos, w in sources:
                graph.add_edge(token(pos), node, w, "attention_knockout")
            if level == depth - 1 or node.layer == 0:
                continue
            helping = [pos for pos, w in sources if w > 0]
            src_pos = helping[0] if helping else node.pos  # where key/value senders act
            for kind in ("q", "k", "v"):
                recv = [(kind, node.layer, node.index)]
                patched = path_patch_sweep(model, batch, recv, "noise", progress=False).values
                pos = node.pos if kind == "q" else src_pos
                for i, w in strongest(clean - patched, top_heads):
                    sender = head_node(i // n_heads, i % n_heads, pos)
                    graph.add_edge(sender, node, w, f"path_patching:{kind}")
                    next_frontier.append(sender)
        frontier = next_frontier
    return graph
