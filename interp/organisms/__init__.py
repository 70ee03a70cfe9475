"""Model organisms: small transformers that ship with the package and have known circuits.

Each is an ordinary Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer,
model card) trained by this package's own code from data every Python installation carries.
"""

from ._data import DIGITS as DIGITS
from ._data import repeated_random_batch as repeated_random_batch
from ._data import text_batch as text_batch
from ._data import variable_chain as variable_chain
from ._recipes import ORGANISMS as ORGANISMS
from ._recipes import Organism as Organism
from ._recipes import checkpoint_dir as checkpoint_dir
from ._recipes import train as train
from ._train import cache_dir as cache_dir
from ._train import chain_accuracy as chain_accuracy
from ._train import corpus_stream as corpus_stream
from ._train import held_out_stream as held_out_stream
from ._train import held_out_text as held_out_text
from ._train import save_folder as save_folder
from ._train import shared_tokenizer as shared_tokenizer

__all__ = [
    "DIGITS",
    "ORGANISMS",
    "Organism",
    "cache_dir",
    "chain_accuracy",
    "checkpoint_dir",
    "corpus_stream",
    "held_out_stream",
    "held_out_text",
    "repeated_random_batch",
    "save_folder",
    "shared_tokenizer",
    "text_batch",
    "train",
    "variable_chain",
]
