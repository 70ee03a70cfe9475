"""The circuit catalogue: tasks and the circuits found for them, kept in ``circuits/``.

Each entry is a folder ``circuits/<name>/`` holding ``entry.json`` (the model, the task as data,
how the circuit was found, its faithfulness under zero, mean and resample ablation, notes) and
``graph/`` (the saved :class:`~interp.graph.CircuitGraph`). ``RECIPES`` says how every
shipped entry is made, so ``build(name)`` reproduces it and ``recheck(entry)`` re-measures its
faithfulness against the stored figure.

Component-level entries (heads and MLPs) are found by EAP / EAP-IG, Edge Pruning, or (whole heads,
every MLP kept) by activation patching of each head, and checked by ablating every edge outside
the circuit (``interp.discovery.faithfulness``). Feature-level entries are pruned
attribution graphs through the shipped transcoders, checked by holding every feature outside the
circuit at a reference value (``interp.attribution_graph.feature_faithfulness``).

- the typed entry (``_entry``): :class:`Entry` with its :class:`Faithfulness`,
  :class:`TaskSpec`, :class:`MethodSpec`, parsed once from ``entry.json``;
- the recipes (``_recipes``): :data:`RECIPES`, :data:`FEATURE_RECIPES` and
  :data:`PROMPT_RECIPES`;
- the store (``_store``): where the catalogue is, reading and writing entries whole;
- the builders (``_build``): :func:`build` and :func:`recheck`.

Example:
    >>> from interp.catalogue import load_entry
    >>> entry = load_entry("induction-2l-heads")
    >>> entry.faithful, entry.faithfulness.resample > 0.8, entry.task_spec.name
    (True, True, 'induction')
"""

from ._build import build as build
from ._build import recheck as recheck
from ._entry import ABLATIONS as ABLATIONS
from ._entry import FAITHFUL as FAITHFUL
from ._entry import LEVELS as LEVELS
from ._entry import Ablation as Ablation
from ._entry import Entry as Entry
from ._entry import Example as Example
from ._entry import Faithfulness as Faithfulness
from ._entry import HeadEffect as HeadEffect
from ._entry import Level as Level
from ._entry import MethodSpec as MethodSpec
from ._entry import TaskSpec as TaskSpec
from ._entry import parse_entry as parse_entry
from ._recipes import FEATURE_RECIPES as FEATURE_RECIPES
from ._recipes import PROMPT_RECIPES as PROMPT_RECIPES
from ._recipes import RECIPES as RECIPES
from ._recipes import FeatureRecipe as FeatureRecipe
from ._recipes import PromptRecipe as PromptRecipe
from ._recipes import Recipe as Recipe
from ._recipes import RecipeMethod as RecipeMethod
from ._store import ROOT_ENV as ROOT_ENV
from ._store import SHIPPED_PACKAGE as SHIPPED_PACKAGE
from ._store import catalogue_dir as catalogue_dir
from ._store import entries as entries
from ._store import load_entry as load_entry
from ._store import portable as portable
from ._store import save_graph as save_graph
from ._store import write_entry as write_entry
