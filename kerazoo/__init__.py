"""kerazoo: a Keras 3 model zoo of language models.

The package reads as the pipeline: ``text`` (tokenizers) → ``data`` (corpora,
splits, windows) → ``models`` (the zoo) → ``training`` (recipes, one run
lifecycle, tasks) → ``decoding`` (the cached-LM protocol and its loops) →
``inference`` (generate, translate, score, classify) → ``serving`` (SavedModel
export); ``interop`` imports Hugging Face checkpoints and ``lab`` measures.

``import kerazoo`` registers the zoo's Keras classes (models and tokenizers),
so a zoo ``.keras`` file loads with plain ``keras.saving.load_model``; only
``kerazoo --help`` skips those imports, so that it answers without a framework.

Example:
    >>> import kerazoo as kz
    >>> tok = kz.train_tokenizer(kz.data.read_corpus("builtin:pydocs"), "unigram", 2048)
    >>> model = kz.models.build("gpt", tokenizer=tok, num_layers=2)
"""

import sys

# First: the framework log defaults, before any framework loads (see quiet.py).
from kerazoo import quiet

# `kerazoo --help` answers from argparse alone; everything below loads a framework.
if not quiet.cli_help_only():
    quiet.import_tensorflow()

    # Importing the tokenizers registers their classes with Keras, so that a
    # `.keras` file holding one loads in a fresh process after `import kerazoo`.
    from kerazoo import data, models, text
    from kerazoo.data import pairs
    from kerazoo.decoding import sampling
    from kerazoo.inference import attention, metrics
    from kerazoo.inference.generate import generate, stream
    from kerazoo.inference.metrics import score
    from kerazoo.inference.translate import translate
    from kerazoo.interop import hf
    from kerazoo.models import build
    from kerazoo.models.quantize import quantize
    from kerazoo.serving import export
    from kerazoo.text import load_tokenizer, save_tokenizer, train_tokenizer
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.runner import run_recipe
    from kerazoo.training.runs import load_run
    from kerazoo.training.tasks.classify import classify

    # The flat layout's module names, kept so that scripts written against it
    # (``kz.tokenizers.train_tokenizer``, ``import kerazoo.pairs``) keep working.
    tokenizers = text
    for _old, _new in {"tokenizers": text, "pairs": pairs, "sampling": sampling, "attention": attention, "metrics": metrics, "hf": hf}.items():
        sys.modules.setdefault(f"{__name__}.{_old}", _new)

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
    "quantize",
    "run_recipe",
    "sampling",
    "save_tokenizer",
    "score",
    "stream",
    "text",
    "tokenizers",
    "train_tokenizer",
    "translate",
]
