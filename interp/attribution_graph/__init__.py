"""Attribution graphs over transcoder features, and feature interventions.

``attribution_graph(model, transcoders, prompt)`` explains a next-token prediction as a graph of
direct, linear effects between tokens, transcoder features, error nodes and logits, in the
local replacement model (MLPs replaced by transcoders plus errors, attention patterns and norm
scales frozen); ``intervene`` clamps or scales features and returns the new logits. Wherever
per-layer transcoders go, a ``CrossLayerTranscoder`` may go instead; ``graph_scores`` gives a
graph's replacement and completeness scores (circuit-tracer's), to compare the two.
``prompt_graph_entry`` builds a catalogue entry for one real prompt (its graph, scores,
faithfulness against a counterfactual prompt and its features' top contexts).
"""

from ._core import attribution_graph as attribution_graph
from ._core import prepare as prepare
from ._core import prompt_tokens as prompt_tokens
from ._core import salient_logits as salient_logits
from ._faithfulness import FEATURE_ABLATIONS as FEATURE_ABLATIONS
from ._faithfulness import circuit_logits as circuit_logits
from ._faithfulness import feature_faithfulness as feature_faithfulness
from ._intervene import intervene as intervene
from ._prompt_entry import describe_features as describe_features
from ._prompt_entry import prompt_graph_entry as prompt_graph_entry
from ._prompt_entry import prompt_graph_faithfulness as prompt_graph_faithfulness
from ._prompt_entry import top_features as top_features
from ._scores import graph_scores as graph_scores

__all__ = [
    "attribution_graph",
    "graph_scores",
    "intervene",
    "prepare",
    "prompt_tokens",
    "salient_logits",
]
