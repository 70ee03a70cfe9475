"""interp: a mechanistic-interpretability workbench on TransformerLens.

The public API, re-exported from the modules that define it.
"""

from .models import ModelNotAvailableOffline as ModelNotAvailableOffline
from .models import ModelSpecError as ModelSpecError
from .models import load_model as load_model
from .organisms import ORGANISMS as ORGANISMS

__version__ = "0.1.0"
