"""A catalogue entry for one real prompt: its attribution graph, faithfulness and features.

A feature-level catalogue entry for a model with natural-text transcoders (SmolLM2-135M) explains
one prompt, such as ``"The capital of France is"`` -> ``" Paris"``, beside a counterfactual
prompt of the same length (``"The capital of Italy is"``) whose answer is the rival token. The
builder runs the whole path once and records every figure a reader needs to judge the graph:

* the model's top next tokens and the graph's logit targets;
* the unpruned graph's replacement and completeness scores (``graph_scores``): how much of the
  influence on the logits runs through features rather than error nodes (an MLP without a
  transcoder is one error node per position, carrying its whole output);
* the pruned graph's size and its feature faithfulness under zero, mean and resample ablation
  (``feature_faithfulness``, target against the rival), *and* the size of the denominator: how
  far the logit difference moves when every feature is ablated. When that is small the features
  carry little of the answer and the ratio says little;
* the pruned graph's most influential features, each with its top context on held-out text;
* the time each step took.

``prompt_graph_entry`` returns ``(info, graph)``: ``info`` is an ``entry.json`` object in the
catalogue's format (``interp.catalogue.write_entry(name, info, graph)`` stores it), and
``prompt_graph_faithfulness`` re-measures a stored graph from ``info["task"]["args"]``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..graph import CircuitGraph
from ._core import attribution_graph, prompt_tokens
from ._faithfulness import FEATURE_ABLATIONS, feature_faithfulness
from ._scores import graph_scores

TASK_NAME = "prompt-pair"  # the task of a feature entry that explains one prompt pair


def default_reference_tokens(model) -> Tensor:
    """``[8, 64]`` held-out windows of the English corpus: the mean-ablation reference."""
    from ..dictionaries import natural_held_out_tokens

    return natural_held_out_tokens(model, 8, 64)


def prompt_graph_faithfulness(
    model,
    transcoders: Mapping[int, object],
    graph: CircuitGraph,
    task_args: Mapping[str, Any],
    reference_tokens: Tensor | None = None,
    ablations: tuple[str, ...] = FEATURE_ABLATIONS,
):
    """``feature_faithfulness`` of ``graph`` with the prompt pair of an entry's task arguments.

    Arguments:
        task_args: ``{"prompt", "corrupted", "rival"}`` as ``prompt_graph_entry`` stores them.
        reference_tokens: mean-ablation text (default: ``default_reference_tokens(model)``).

    Returns:
        The ``Result`` of ``feature_faithfulness`` (one value per ablation).
    """
    missing = [k for k in ("prompt", "corrupted") if k not in task_args]
    if missing:
        raise ValueError(f"task_args lacks {missing}: give the entry's task arguments")
    ref = default_reference_tokens(model) if reference_tokens is None else reference_tokens
    return feature_faithfulness(
        model,
        transcoders,
        graph,
        corrupted=task_args["corrupted"],
        reference_tokens=ref,
        ablations=ablations,
        rival=task_args.get("rival"),
    )


def top_tokens(model, logits: Tensor, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` most probable next tokens: ``[{"token", "id", "prob"}]``."""
    probs = torch.softmax(logits.float(), -1)
    p, i = probs.topk(k)
    return [
        {"token": model.to_string(t[None]), "id": int(t), "prob": round(float(q), 4)}
        for q, t in zip(p, i, strict=True)
    ]


def top_features(graph: CircuitGraph, n: int) -> list[tuple[int, int, int, float]]:
    """The ``n`` feature nodes of ``graph`` with most influence on its logits:
    ``[(layer, pos, feature, influence)]``, strongest first."""
    influence = graph.influence()
    feats = [(i, node) for i, node in enumerate(graph.nodes) if node.kind == "feature"]
    feats.sort(key=lambda item: -float(influence[item[0]]))
    return [(nd.layer, nd.pos, nd.index, float(influence[i])) for i, nd in feats[: max(0, n)]]


def describe_features(
    model, transcoders, features, tokens: Tensor | None = None, width: int = 8
) -> list[dict[str, Any]]:
    """One line per feature: its top context on held-out text, peak token in ``[[ ]]``.

    Arguments:
        features: ``[(layer, pos, feature, influence)]`` (``top_features``).
        tokens: text for the feature pages (default: ``feature_pages``'s held-out windows).
        width: tokens of context shown before the peak.
    """
    from ..dictionaries import feature_pages

    by_layer: dict[int, list[int]] = {}
    for layer, _, f, _ in features:
        by_layer.setdefault(layer, []).append(f)
    pages = {
        layer: feature_pages(model, transcoders, layer, sorted(set(fs)), tokens, k=3, after=1)
        for layer, fs in by_layer.items()
    }
    out = []
    for layer, pos, f, infl in features:
        page = pages[layer][f]
        line = "(never fires on the held-out text)"
        if page["contexts"]:
            ctx = page["contexts"][0]
            toks = list(ctx["tokens"])
            toks[ctx["peak"]] = f"[[{toks[ctx['peak']]}]]"
            line = "".join(toks[max(0, ctx["peak"] - width) :]).replace("\n", " ")
        out.append(
            {
                "node": f"feature.{layer}.{f}@{pos}",
                "influence": round(infl, 4),
                "density": round(page["density"], 4),
                "top_context": line,
                "promotes": [token for token, _ in page["logits"]["top"][:5]],
            }
        )
    return out


def prompt_graph_entry(
    model,
    transcoders: Mapping[int, object],
    prompt: str,
    corrupted: str,
    *,
    rival: str | None = None,
    model_name: str,
    title: str,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    n_described: int = 8,
    page_tokens: Tensor | None = None,
    reference_tokens: Tensor | None = None,
    notes: str = "",
) -> tuple[dict[str, Any], CircuitGraph]:
    """Build the pruned attribution graph of ``prompt`` and every figure of its catalogue entry.

    Arguments:
        model, transcoders: the model and ``{layer: transcoder}`` (layers without one are error
            nodes carrying the whole MLP output).
        prompt: the prompt explained; its top next token is the answer.
        corrupted: a prompt with the same number of tokens for resample ablation.
        rival: the token the answer is measured against (the corrupted prompt's answer; default
            the clean run's second token).
        model_name: the catalogue's name for the model (``"smollm2-135m"``).
        node_threshold, edge_threshold: pruning (``CircuitGraph.prune``).
        n_described: features of the pruned graph described by their top context (0: none).
        page_tokens, reference_tokens: text for feature pages and for mean ablation.

    Returns:
        ``(info, graph)``: ``info`` in ``entry.json``'s format, ``graph`` the pruned graph.

    Example::

        info, graph = prompt_graph_entry(model, tcs, "The capital of France is",
                                         "The capital of Italy is", rival=" Rome",
                                         model_name="smollm2-135m", title="France -> Paris")
        interp.catalogue.write_entry("capital-france-smollm2", info, graph)
    """
    from ..models import provenance

    clean_ids, other_ids = prompt_tokens(model, prompt), prompt_tokens(model, corrupted)
    if clean_ids.numel() != other_ids.numel():
        raise ValueError(
            f"corrupted has {other_ids.numel()} tokens but prompt has {clean_ids.numel()}: "
            "resample ablation needs prompts of the same length"
        )
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    full = attribution_graph(model, transcoders, clean_ids)
    seconds["graph"] = time.perf_counter() - t0
    scores = graph_scores(full)
    graph = full.prune(node_threshold, edge_threshold)
    graph.provenance = {**full.provenance, **graph.provenance, "name": title, "model": model_name}
    with torch.no_grad():
        clean_logits = model(clean_ids[None])[0, -1]
        other_logits = model(other_ids[None])[0, -1]
    task_args = {"prompt": prompt, "corrupted": corrupted, "rival": rival}
    t1 = time.perf_counter()
    faith = prompt_graph_faithfulness(model, transcoders, graph, task_args, reference_tokens)
    seconds["faithfulness"] = time.perf_counter() - t1
    prov = faith.provenance
    t2 = time.perf_counter()
    described = describe_features(model, transcoders, top_features(graph, n_described), page_tokens)
    seconds["feature_pages"] = time.perf_counter() - t2
    kinds = [node.kind for node in graph.nodes]
    info = {
        "name": title,
        "title": title,
        "model": model_name,
        "level": "features",
        "task": {"name": TASK_NAME, "args": task_args},
        "example": {
            "clean": prompt,
            "corrupted": corrupted,
            "answer": model.to_string(clean_logits.argmax()[None]),
        },
        "method": {
            "name": "attribution graph (transcoders)",
            "node_threshold": node_threshold,
            "edge_threshold": edge_threshold,
            "transcoder_layers": sorted(int(la) for la in transcoders),
        },
        "nodes": len(graph.nodes),
        "edges": graph.n_edges,
        "faithfulness": dict(zip(faith.labels["ablation"], faith.values.tolist(), strict=True)),
        "clean_metric": prov["clean_metric"],
        "circuit_metric": prov["circuit_metric"],
        "empty_circuit_metric": prov["empty_circuit_metric"],
        "features_move_metric_by": {
            how: prov["clean_metric"] - prov["empty_circuit_metric"][how]
            for how in faith.labels["ablation"]
        },
        "circuit_features": prov["circuit_features"],
        "top_tokens": top_tokens(model, clean_logits),
        "corrupted_top_tokens": top_tokens(model, other_logits),
        "graph_scores": scores,
        "full_graph": {
            "nodes": len(full.nodes),
            "edges": full.n_edges,
            "active_features": full.provenance["n_active_features"],
        },
        "pruned_graph": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
        "features": described,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "torch_threads": torch.get_num_threads(),
        "model_provenance": provenance(model),
        "notes": notes,
    }
    return info, graph
