"""Model organisms: small transformers that ship with the package and have known circuits.

Each is an ordinary Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer,
model card) trained by this package's own code from data every Python installation carries.
"""

from ._recipes import ORGANISMS as ORGANISMS
from ._recipes import Organism as Organism
from ._recipes import checkpoint_dir as checkpoint_dir
from ._recipes import train as train
from ._train import cache_dir as cache_dir

__all__ = ["ORGANISMS", "Organism", "cache_dir", "checkpoint_dir", "train"]
