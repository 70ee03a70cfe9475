"""interp: a mechanistic-interpretability workbench on TransformerLens.

The public API, re-exported from the modules that define it.
"""

from .adapter import ModelAdapter as ModelAdapter
from .adapter import adapter as adapter
from .attribution import attribution_patch as attribution_patch
from .attribution import direct_logit_attribution as direct_logit_attribution
from .attribution import logit_lens as logit_lens
from .attribution_graph import attribution_graph as attribution_graph
from .attribution_graph import intervene as intervene
from .dictionaries import load_transcoders as load_transcoders
from .discovery import acdc as acdc
from .discovery import eap as eap
from .discovery import edge_scores as edge_scores
from .discovery import extract as extract
from .discovery import faithfulness as faithfulness
from .graph import CircuitGraph as CircuitGraph
from .graph import Node as Node
from .models import ModelNotAvailableOffline as ModelNotAvailableOffline
from .models import ModelSpecError as ModelSpecError
from .models import load_model as load_model
from .organisms import ORGANISMS as ORGANISMS
from .patching import patch_sweep as patch_sweep
from .path_patching import path_patch_sweep as path_patch_sweep
from .result import Result as Result
from .tasks import Task as Task

__version__ = "0.1.0"
