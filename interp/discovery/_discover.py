"""One call from a method's name to a circuit with its faithfulness measured.

``interp discover``, the server's ``discover`` analysis and anything else that lets a user pick
the method by name go through :func:`discover_circuit`, so a circuit found on a server equals
one found here with the same settings.
"""

from __future__ import annotations

from ._acdc import acdc
from ._eap import eap
from ._edge_pruning import edge_pruning
from ._faithfulness import faithfulness
from ._graph import extract
from ._nodes import head_circuit

DISCOVERY_METHODS = ("EAP", "EAP-IG", "EAP-IG-activations", "ACDC", "edge-pruning", "head-patching")
LEVELS = ("edge", "node")


def discover_circuit(
    model,
    task,
    method: str = "EAP-IG",
    *,
    top_n: int = 40,
    threshold: float = 0.01,
    steps: int = 300,
    level: str = "edge",
    progress: bool = False,
):
    """A circuit found by ``method``, with ``provenance["faithfulness"]`` under every ablation.

    Arguments:
        model: a HookedTransformer (or TransformerBridge in compatibility mode).
        task: clean/corrupted prompts and the metric (a Task or its TaskBatch).
        method: ``"EAP"``, ``"EAP-IG"`` or ``"EAP-IG-activations"`` (scores every edge, keeps the ``top_n`` strongest on a
            path to the logits), ``"ACDC"`` (prunes edges below ``threshold``) or
            ``"edge-pruning"`` (learned masks, ``top_n`` edges targeted in ``steps`` steps, on
            edges or on nodes by ``level``) or ``"head-patching"`` (the ``top_n`` heads by
            activation patching, every MLP, all edges between them).
        top_n, threshold, steps, level: as above; each is read only by the methods named.
        progress: show progress bars.

    Returns:
        A CircuitGraph whose ``provenance["faithfulness"]`` maps each ablation (zero, mean,
        resample) to the share of the clean-vs-corrupted metric the circuit recovers.

    Example:
        >>> circuit = discover_circuit(model, task, "EAP", top_n=20)
        >>> circuit.provenance["faithfulness"]["resample"]
    """
    if method not in DISCOVERY_METHODS:
        raise ValueError(f"method={method!r} is not accepted; use one of "
                         f"{', '.join(DISCOVERY_METHODS)}")  # fmt: skip
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not accepted; use edge or node")
    if method == "ACDC":
        circuit = acdc(model, task, threshold, progress=progress)
    elif method in ("EAP", "EAP-IG", "EAP-IG-activations"):
        circuit = extract(eap(model, task, method=method, progress=progress), top_n=top_n)
    elif method == "head-patching":
        circuit = head_circuit(model, task, top_n=top_n, progress=progress)
    else:
        circuit = edge_pruning(
            model, task, target_edges=top_n, steps=steps, level=level, progress=progress
        )
    if "faithfulness" not in circuit.provenance:  # edge-pruning has measured it already
        faith = faithfulness(model, task, circuit, progress=progress)
        circuit.provenance["faithfulness"] = dict(
            zip(faith.labels["ablation"], faith.values.tolist(), strict=True)
        )
    return circuit
