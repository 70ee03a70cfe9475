"""Component circuits: which attention heads and MLPs, wired how, carry a task.

A transformer's components talk through the residual stream: every head and MLP reads the sum
of what the input and every earlier component wrote. Seen as a graph, each (writer, reader) pair
is an edge, and a circuit is a small set of edges that carries the task on its own. ``eap``
scores every edge at once by edge attribution patching (or EAP-IG), ``extract`` keeps the
strongest edges that connect the input to the logits, ``acdc`` prunes edges one at a time by
their measured effect (Conmy et al., 2023), and ``faithfulness`` checks a circuit by ablating
every edge outside it (zero, mean and resample ablation, side by side). ``edge_pruning`` learns
a mask per edge under a sparsity target (Bhaskar et al., 2024), and ``faithfulness_curve``
measures any method's ranking at many circuit sizes; ``discover_circuit`` picks a method by
name and measures the circuit's faithfulness. ``head_circuit`` keeps whole components
instead (the top heads by activation patching, every MLP, all edges between them: Wang et al.'s
unit). Under grouped-query attention (Llama, SmolLM2) each key/value head is one receiver, shared
by its query heads. Position-aware circuits (an edge at one token position:
``edge_scores(..., by_position=True)``, ``extract_positional``) are described in ``_positions``.

Example:
    >>> from interp.discovery import eap, extract, faithfulness
    >>> graph = eap(model, task, method="EAP-IG")
    >>> circuit = extract(graph, top_n=30)
    >>> faithfulness(model, task, circuit)
"""

from ._acdc import acdc as acdc
from ._curves import FaithfulnessCurve as FaithfulnessCurve
from ._curves import faithfulness_curve as faithfulness_curve
from ._discover import DISCOVERY_METHODS as DISCOVERY_METHODS
from ._discover import discover_circuit as discover_circuit
from ._eap import METHODS as METHODS
from ._eap import eap as eap
from ._eap import edge_scores as edge_scores
from ._edge_mask import masked_answer_logits as masked_answer_logits
from ._edge_mask import sender_reference as sender_reference
from ._edge_pruning import edge_pruning as edge_pruning
from ._edge_pruning import edge_pruning_scores as edge_pruning_scores
from ._edges import EdgeSpace as EdgeSpace
from ._edges import edge_space as edge_space
from ._edges import sender_hooks as sender_hooks
from ._edges import sender_outputs as sender_outputs
from ._faithfulness import ABLATIONS as ABLATIONS
from ._faithfulness import ablated_metric as ablated_metric
from ._faithfulness import faithfulness as faithfulness
from ._graph import extract as extract
from ._graph import graph_edges_to_mask as graph_edges_to_mask
from ._graph import to_graph as to_graph
from ._nodes import head_circuit as head_circuit
from ._nodes import head_effects as head_effects
from ._nodes import node_mask as node_mask
from ._positions import extract_positional as extract_positional
from ._positions import positional_edges_to_mask as positional_edges_to_mask
