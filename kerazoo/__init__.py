"""kerazoo: a Keras 3 model zoo of language models."""

from kerazoo import models

__version__ = "0.1.0"
