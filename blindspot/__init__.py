"""blindspot: where label supervision is locally blind in attention-score space.

Importing the package changes no JAX configuration; entry points enable float64 themselves.
"""

from blindspot.config import ModelConfig
from blindspot.model import Params, init

__all__ = ["ModelConfig", "Params", "init"]
__version__ = "0.1.0"
