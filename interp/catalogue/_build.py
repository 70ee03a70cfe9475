"""Building an entry from its recipe, and re-measuring a stored entry's faithfulness.

:func:`build` runs the recipe's discovery method, measures the circuit's faithfulness and writes
the entry; :func:`recheck` measures it again from the stored graph, so a test (or ``interp
circuits check``) can hold every shipped figure to what the circuit really does. Models,
discovery and transcoders are imported inside the functions: reading the catalogue needs none.
"""

from __future__ import annotations

import os

from ._entry import Entry, Faithfulness
from ._recipes import FEATURE_RECIPES, PROMPT_RECIPES, RECIPES, FeatureRecipe
from ._store import write_entry


def _measured(result) -> Faithfulness:
    """The faithfulness ``Result`` (one value per ablation) as a :class:`Faithfulness`."""
    return Faithfulness(**dict(zip(result.labels["ablation"], result.values.tolist(), strict=True)))


def _induction_prompt(model, recipe: FeatureRecipe):
    from ..heads import repeated_random_tokens

    toks = repeated_random_tokens(model, n=2, period=recipe.period, seed=recipe.seed)
    clean, corrupted = toks[0], toks[0].clone()
    corrupted[1 : recipe.period + 1] = toks[1, 1 : recipe.period + 1]  # first copy replaced
    return clean, corrupted


def _build_features(name: str, root, model, device) -> Entry:
    from ..attribution_graph import attribution_graph, feature_faithfulness
    from ..dictionaries import held_out_tokens, load_transcoders
    from ..models import load_model, provenance

    recipe = FEATURE_RECIPES[name]
    model = model if model is not None else load_model(recipe.model, device=device)
    tcs = load_transcoders(recipe.model, device=str(model.cfg.device))
    clean, corrupted = _induction_prompt(model, recipe)
    graph = attribution_graph(
        model,
        tcs,
        clean,
        node_threshold=recipe.node_threshold,
        edge_threshold=recipe.edge_threshold,
    )
    graph.provenance.update(name=recipe.title)
    faith = feature_faithfulness(
        model, tcs, graph, corrupted=corrupted, reference_tokens=held_out_tokens(model, 8, 64)
    )
    measured = _measured(faith)
    info = {
        "name": name,
        "title": recipe.title,
        "model": recipe.model,
        "level": "features",
        "task": {
            "name": "induction-prompt",
            "args": {"period": recipe.period, "seed": recipe.seed},
        },
        "example": {"clean": model.to_string(clean), "corrupted": model.to_string(corrupted)},
        "method": {
            "name": "attribution graph (transcoders)",
            "node_threshold": recipe.node_threshold,
            "edge_threshold": recipe.edge_threshold,
        },
        "nodes": len(graph.nodes),
        "edges": graph.n_edges,
        "faithfulness": measured.as_dict(),
        "clean_metric": faith.provenance["clean_metric"],
        "circuit_features": faith.provenance["circuit_features"],
        "model_provenance": provenance(model),
        "notes": recipe.notes,
    }
    return write_entry(name, info, graph, root)


def _build_prompt(name: str, root, model, device) -> Entry:
    from ..dictionaries import load_transcoders
    from ..models import load_model

    recipe = PROMPT_RECIPES[name]
    model = model if model is not None else load_model(recipe.model, device=device)
    tcs = load_transcoders(recipe.model, device=str(model.cfg.device))
    info, graph = recipe.graph_entry(model, tcs)
    return write_entry(name, {**info, "name": name}, graph, root)


def build(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    model=None,
    device: str | None = "cpu",
) -> Entry:
    """Find the circuit of recipe ``name`` (EAP / EAP-IG, then the top edges), measure its
    faithfulness and write the entry (folder built under a temporary name, then swapped in)."""
    from ..discovery import eap, edge_pruning, extract, faithfulness, head_circuit
    from ..models import load_model, provenance
    from ..tasks import make_task

    if name in FEATURE_RECIPES:
        return _build_features(name, root, model, device)
    if name in PROMPT_RECIPES:
        return _build_prompt(name, root, model, device)
    if name not in RECIPES:
        known = ", ".join([*RECIPES, *FEATURE_RECIPES, *PROMPT_RECIPES])
        raise ValueError(f"no recipe {name!r}; recipes: {known}")
    recipe = RECIPES[name]
    model = model if model is not None else load_model(recipe.model, device=device)
    task = make_task(recipe.task, model, **recipe.task_args)
    if recipe.method == "edge-pruning":
        circuit = edge_pruning(model, task, target_edges=recipe.top_n, steps=recipe.steps)
    elif recipe.method == "head-patching":
        circuit = head_circuit(model, task, top_n=recipe.top_n)
    else:
        scored = eap(model, task, method=recipe.method, ig_steps=recipe.ig_steps)
        circuit = extract(scored, top_n=recipe.top_n)
    circuit.provenance.update(name=recipe.title, model=recipe.model, task=recipe.task)
    faith = faithfulness(model, task, circuit)
    measured = _measured(faith)
    batch = task.tokens(model)
    info = {
        "name": name,
        "title": recipe.title,
        "model": recipe.model,
        "level": "heads",
        "task": {"name": recipe.task, "args": recipe.task_args, "metric": batch.metric},
        "example": {
            "clean": model.to_string(batch.clean[0]),
            "corrupted": model.to_string(batch.corrupted[0]),
            "answer": model.to_string(batch.answers[:1]),
        },
        "method": {
            "name": recipe.method,
            **({"ig_steps": recipe.ig_steps} if recipe.method == "EAP-IG" else {}),
            **({"steps": recipe.steps} if recipe.method == "edge-pruning" else {}),
            "top_n": recipe.top_n,
            **({"unit": "heads", "mlps": "all"} if recipe.method == "head-patching" else {}),
        },
        **({"heads": circuit.provenance["heads"]} if recipe.method == "head-patching" else {}),
        "nodes": len(circuit.nodes),
        "edges": circuit.n_edges,
        "faithfulness": measured.as_dict(),
        "clean_metric": faith.provenance["clean_metric"],
        "corrupted_metric": faith.provenance["corrupted_metric"],
        "model_provenance": provenance(model),
        "notes": recipe.notes,
    }
    return write_entry(name, info, circuit, root)


def recheck(entry: Entry, *, model=None, device: str | None = "cpu") -> Faithfulness:
    """Re-measure the entry's faithfulness (zero, mean, resample) from its stored graph.

    Arguments:
        entry: a catalogue entry (:func:`~interp.catalogue.load_entry`).
        model: the entry's model, already loaded (else it is loaded on ``device``).
        device: where to load the model when ``model`` is not given.

    Returns:
        The measured :class:`Faithfulness`, to compare with ``entry.faithfulness``.
    """
    from ..discovery import faithfulness
    from ..models import load_model

    model = model if model is not None else load_model(entry.model, device=device)
    if entry.level == "features" and entry.task_spec.name == "prompt-pair":
        from ..attribution_graph import prompt_graph_faithfulness
        from ..dictionaries import load_transcoders

        tcs = load_transcoders(entry.model, device=str(model.cfg.device))
        args = entry.task_spec.args
        return _measured(prompt_graph_faithfulness(model, tcs, entry.graph(), args))
    if entry.level == "features":
        from ..attribution_graph import feature_faithfulness
        from ..dictionaries import held_out_tokens, load_transcoders

        _, corrupted = _induction_prompt(model, FEATURE_RECIPES[entry.name])
        tcs = load_transcoders(entry.model, device=str(model.cfg.device))
        ref = held_out_tokens(model, 8, 64)
        result = feature_faithfulness(
            model, tcs, entry.graph(), corrupted=corrupted, reference_tokens=ref
        )
        return _measured(result)
    return _measured(faithfulness(model, entry.task(model), entry.graph()))
