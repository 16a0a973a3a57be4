"""kerazoo: a Keras 3 model zoo of language models.

Example:
    >>> import kerazoo as kz
    >>> tok = kz.tokenizers.train_tokenizer(kz.data.read_corpus("builtin:pydocs"), "unigram", 2048)
    >>> model = kz.models.build("gpt", tokenizer=tok, num_layers=2)
"""

import os

# Quieten TensorFlow's C++ start-up logging before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Importing the tokenizers registers their classes with Keras, so that a
# `.keras` file holding one loads in a fresh process after `import kerazoo`.
from kerazoo import attention, data, hf, metrics, models, pairs, tokenizers
from kerazoo.generate import generate, stream
from kerazoo.models import build
from kerazoo.metrics import score
from kerazoo.recipes import load_recipe
from kerazoo.runner import load_run, run_recipe
from kerazoo.serving import export
from kerazoo.tasks.classify import classify
from kerazoo.tokenizers import load_tokenizer, save_tokenizer, train_tokenizer
from kerazoo.translate import translate

__version__ = "0.1.0"

__all__ = [
    "attention",
    "build",
    "classify",
    "data",
    "export",
    "generate",
    "hf",
    "load_recipe",
    "load_run",
    "load_tokenizer",
    "metrics",
    "models",
    "pairs",
    "run_recipe",
    "save_tokenizer",
    "score",
    "stream",
    "tokenizers",
    "train_tokenizer",
    "translate",
]
