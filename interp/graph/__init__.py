"""Circuit graphs as plain data: nodes, sparse weighted edges, pruning, the viewer JSON, drawing.

- :class:`Node` and :class:`CircuitGraph` (``_node``, ``_graph``): the data and what can be done
  to it without a model (influence, pruning, comparing, saving);
- the viewer JSON schema (``_viewer``): :class:`ViewerGraph` as Neuronpedia's and
  circuit-tracer's viewers read it;
- drawing (``_plot``): the layout and a plotly figure.
"""

from ._graph import FORMAT as FORMAT
from ._graph import GRAPH_FILE as GRAPH_FILE
from ._graph import CircuitGraph as CircuitGraph
from ._graph import graph_file as graph_file
from ._graph import saved_provenance as saved_provenance
from ._node import NODE_KINDS as NODE_KINDS
from ._node import Node as Node
from ._node import NodeKind as NodeKind
from ._plot import layout as layout
from ._viewer import ViewerGraph as ViewerGraph
from ._viewer import ViewerLink as ViewerLink
from ._viewer import ViewerNode as ViewerNode
