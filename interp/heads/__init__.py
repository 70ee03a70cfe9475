"""Head analysis: detectors from attention patterns, and head circuits read from the weights."""

from ._copy_suppression import copy_suppression_effect as copy_suppression_effect
from ._detectors import DETECTION_KINDS as DETECTION_KINDS
from ._detectors import attention_entropy as attention_entropy
from ._detectors import bos_scores as bos_scores
from ._detectors import detection_pattern as detection_pattern
from ._detectors import detection_scores as detection_scores
from ._detectors import duplicate_token_scores as duplicate_token_scores
from ._detectors import induction_scores as induction_scores
from ._detectors import previous_token_scores as previous_token_scores
from ._detectors import repeated_random_tokens as repeated_random_tokens
from ._detectors import repeated_token_loss as repeated_token_loss
from ._detectors import repeated_token_loss_by_position as repeated_token_loss_by_position
from ._neurons import neuron_in_out_cosine as neuron_in_out_cosine
from ._neurons import neuron_top_contexts as neuron_top_contexts
from ._neurons import neuron_vocab_projection as neuron_vocab_projection
from ._neurons import top_activations as top_activations
from ._pathways import attention_pathways as attention_pathways
from ._pathways import pathway_task as pathway_task
from ._pathways import source_effects as source_effects
from ._scores import HEAD_SCORES as HEAD_SCORES
from ._scores import HeadScore as HeadScore
from ._scores import score_heads as score_heads
from ._weights import COMPOSITION_MODES as COMPOSITION_MODES
from ._weights import composition_scores as composition_scores
from ._weights import ov_copying_scores as ov_copying_scores
