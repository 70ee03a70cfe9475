"""Node: one typed node of a circuit graph (a token, head, MLP, neuron, feature, error or logit).

A node knows its kind, layer, position and index, and nothing about any model: graphs are plain
data that a model-free reader (the app, a notebook, a viewer) can hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NodeKind = Literal["token", "head", "mlp", "neuron", "feature", "error", "logit"]
NODE_KINDS: tuple[str, ...] = ("token", "head", "mlp", "neuron", "feature", "error", "logit")


@dataclass(frozen=True)
class Node:
    """One node of a circuit.

    Arguments:
        kind: one of ``NODE_KINDS``.
        layer: the layer it belongs to; ``None`` for tokens; logit nodes use ``n_layers``.
        pos: its position in the prompt; ``None`` for a node that stands for every position.
        index: head, neuron or feature index; the token id for token and logit nodes.
        label: a human name, e.g. ``"L1H0"`` or ``"' 7'"``.
        activation: the feature's activation; for a logit node, the token's probability.
    """

    kind: str
    layer: int | None = None
    pos: int | None = None
    index: int | None = None
    label: str = ""
    activation: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in NODE_KINDS:
            raise ValueError(f"node kind {self.kind!r} is not one of {NODE_KINDS}")

    @property
    def node_id(self) -> str:
        parts = [self.kind]
        if self.layer is not None:
            parts.append(str(self.layer))
        if self.index is not None:
            parts.append(str(self.index))
        where = "" if self.pos is None else f"@{self.pos}"
        return ".".join(parts) + where

    @property
    def name(self) -> str:
        """The label, or a readable name built from kind, layer and index (``L1H0``, ``MLP3``,
        ``L1F993@30`` for feature 993 of layer 1 at position 30)."""
        if self.label:
            return self.label
        if self.kind == "head":
            return f"L{self.layer}H{self.index}"
        if self.kind == "mlp":
            return f"MLP{self.layer}"
        where = "" if self.pos is None else f"@{self.pos}"
        if self.kind == "feature":
            return f"L{self.layer}F{self.index}{where}"
        if self.kind == "neuron":
            return f"L{self.layer}N{self.index}{where}"
        if self.kind == "error":
            return f"L{self.layer} error{where}"
        return self.node_id
