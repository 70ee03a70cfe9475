"""How every shipped catalogue entry is made, so that ``build(name)`` reproduces it.

A :class:`Recipe` finds a component-level circuit (heads and MLPs) for a shipped task; a
:class:`FeatureRecipe` prunes the attribution graph of one prompt through the model's
transcoders; a :class:`PromptRecipe` does so for a real prompt beside a counterfactual one. The recipes are data: the builders (``_build``) read them, and the catalogue's tests
check that every shipped entry has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

RecipeMethod = Literal["EAP-IG", "EAP", "edge-pruning", "head-patching"]
"""How a component-level circuit is found: edge attribution patching (with integrated gradients
or without), learned edge masks, or the heads that move the metric most when patched alone."""


@dataclass
class Recipe:
    """How a catalogue entry is made: model, task (a shipped task with arguments), method."""

    model: str
    task: str
    task_args: dict[str, Any]
    title: str
    method: RecipeMethod = "EAP-IG"
    ig_steps: int = 5  # EAP-IG
    top_n: int = 30  # edges kept (edge-pruning: its target size; head-patching: heads kept)
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
        title="Induction in SmolLM2-135M (100 heads, every MLP)",
        method="head-patching",
        top_n=100,
        notes=(
            "Induction in SmolLM2 is spread over many heads: L16H0 (-4.0), L18H6 (-1.7) and "
            "L17H3 (-1.2) matter most alone, but under resample ablation (the first copy's "
            "tokens replaced) a node circuit needs about 100 of the 270 heads: resample "
            "faithfulness 0.05 at 10 heads, 0.23 at 30, 0.56 at 60, 0.70 at 80, 0.87 at 100 "
            "(mean ablation: 0.37, 0.89, 0.90, 0.92, 1.00). Edge-level circuits (EAP, EAP-IG) "
            "stay below 0.1 up to 3,000 of 70,651 edges."
        ),
    ),
    "ioi-smollm2": Recipe(
        model="smollm2-135m",
        task="ioi",
        task_args={"n": 16},
        title="Indirect object identification in SmolLM2-135M (30 heads, every MLP)",
        method="head-patching",
        top_n=30,
        notes=(
            "Wang et al.'s unit: the 30 heads whose output, patched alone from the corrupted run, "
            "moves the logit difference most (either sign), with every MLP and all edges between "
            "them. Largest: L23H3 (-2.0), L29H1 (-1.3), L20H0 (-1.2, S-inhibition), L29H0 (+1.0) "
            "and L24H4 (+0.4) working against the answer (negative name movers), L17H4 (-1.0, an "
            "induction head). Resample faithfulness by size: 0.66 at 10 heads, 0.75 at 20, 0.90 "
            "at 30. Edge-level circuits (EAP) reach only 0.67 at 2,914 of 70,651 edges."
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


@dataclass
class PromptRecipe:
    """A feature-level entry for one real prompt: its pruned attribution graph through the
    shipped transcoders, with faithfulness against a counterfactual prompt of the same length
    (``interp.attribution_graph.prompt_graph_entry``; the rival token is that prompt's answer)."""

    model: str
    title: str
    prompt: str
    corrupted: str
    rival: str | None = None
    node_threshold: float = 0.8
    edge_threshold: float = 0.98
    notes: str = ""

    def graph_entry(self, model, transcoders, *, n_described: int = 8):
        """The entry's figures and pruned graph, as ``prompt_graph_entry`` makes them from this
        recipe (``build`` writes them; a test rebuilds them to check the stored figures)."""
        from ..attribution_graph import prompt_graph_entry

        return prompt_graph_entry(
            model,
            transcoders,
            self.prompt,
            self.corrupted,
            rival=self.rival,
            model_name=self.model,
            title=self.title,
            node_threshold=self.node_threshold,
            edge_threshold=self.edge_threshold,
            n_described=n_described,
            notes=self.notes,
        )


PROMPT_RECIPES: dict[str, PromptRecipe] = {
    "capital-france-smollm2-features": PromptRecipe(
        model="smollm2-135m",
        title="The capital of France is -> Paris, in SmolLM2-135M (transcoder features)",
        prompt="The capital of France is",
        corrupted="The capital of Italy is",
        rival=" Rome",
        notes=(
            "Every MLP has a transcoder, and keeps an error node per position for what the "
            "transcoder misses. Replacement score 0.34: a third of the influence on the logit "
            "comes from the tokens through features, two thirds pass through error nodes. Ablating every feature moves the Paris-vs-Rome logit difference by "
            "3.9 (resample) to 8.5 (zero), so the ratios are meaningful, and the kept features "
            "do not recover it: 452 features recover 0.30 (resample). Faithfulness grows "
            "slowly with size (node threshold, features kept, resample / mean): 0.9, 1,004, "
            "0.49 / 0.29; 0.95, 1,571, 0.62 / 0.31; 0.98, 2,233, 0.65 / 0.31. The answer is "
            "spread over many weak features in these transcoders; read the graph as a sketch."
        ),
    ),
}
