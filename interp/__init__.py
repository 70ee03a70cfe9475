"""interp: a mechanistic-interpretability workbench on TransformerLens.

The public API, re-exported from the modules that define it.
"""

from .attribution import attribution_patch as attribution_patch
from .attribution import direct_logit_attribution as direct_logit_attribution
from .attribution import logit_lens as logit_lens
from .models import ModelNotAvailableOffline as ModelNotAvailableOffline
from .models import ModelSpecError as ModelSpecError
from .models import load_model as load_model
from .organisms import ORGANISMS as ORGANISMS
from .patching import patch_sweep as patch_sweep
from .path_patching import path_patch_sweep as path_patch_sweep
from .result import Result as Result
from .tasks import Task as Task

__version__ = "0.1.0"
