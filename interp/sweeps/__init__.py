"""Sweeps: one analysis over many prompt sets, checkpoints or models, run on a Ray cluster.

A sweep is a grid of *shards*: each names an analysis (activation patching, EAP edge scores, a
head score), a model spec and JSON-like arguments, so that any process can compute it from the
names alone. :func:`plan` lays the grid out, :func:`sweep` runs it as Ray tasks (a dead worker's
task is retried; every finished shard is stored in the sweep folder, so a rerun skips it) and
returns ONE Result with a leading axis per grid dimension (``model``/``checkpoint``,
``prompt_set``). :func:`run_shard` and :func:`gather` compute the same Result in a plain loop.
Ray is optional: ``pip install 'interp[cluster]'``.

Example:
    >>> from interp.sweeps import plan, sweep
    >>> p = plan("patch", "induction-2l", task="induction", seeds=[0, 1, 2, 3], normalize=True)
    >>> r = sweep(p, out="sweeps/induction", workers=2)
    >>> r.axes
    ('prompt_set', 'layer', 'pos', 'head')
"""

from ._folder import SweepFolder as SweepFolder
from ._ray import connect as connect
from ._ray import sweep as sweep
from ._shards import ANALYSES as ANALYSES
from ._shards import Analysis as Analysis
from ._shards import Plan as Plan
from ._shards import Shard as Shard
from ._shards import gather as gather
from ._shards import plan as plan
from ._shards import run_shard as run_shard
