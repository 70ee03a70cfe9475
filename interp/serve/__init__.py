"""Serve the workbench from the machine with the GPU; use it from a laptop.

``interp serve MODEL...`` loads each model once and answers HTTP(S) requests that name an
analysis and its arguments (never code). Jobs on one model wait in a first-in-first-out queue
and run one at a time, so several users share one loaded model; a client sees its job's place
in the queue, then its progress, then reads back the ``Result`` or ``CircuitGraph`` (sent as the
files they save themselves as: JSON and safetensors, no pickle). Requests carry a bearer token;
a request over the server's limits (``--max-passes``, ``--max-prompts``, judged by the
``interp.cost`` estimate) is refused with HTTP 413 before it is queued.

Example:
    >>> from interp.serve import Client
    >>> client = Client("http://localhost:8765", token)  # or INTERP_REMOTE, INTERP_TOKEN
    >>> result = client.run("patch", model="induction-2l", task="induction", by=["layer", "head"])
"""

from ._analyses import Analysis as Analysis
from ._analyses import prepare as prepare
from ._client import Client as Client
from ._client import RemoteError as RemoteError
from ._http import Server as Server
from ._http import read_token as read_token
from ._registry import ANALYSES as ANALYSES
from ._wire import pack as pack
from ._wire import unpack as unpack
from ._workbench import Limits as Limits
from ._workbench import RequestError as RequestError
from ._workbench import Workbench as Workbench
