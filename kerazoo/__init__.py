"""kerazoo: a Keras 3 model zoo of language models.

The package reads as the pipeline: ``text`` (tokenizers) → ``data`` (corpora,
splits, windows) → ``models`` (the zoo) → ``training`` (recipes, one run
lifecycle, tasks) → ``decoding`` (the cached-LM protocol and its loops) →
``inference`` (generate, translate, score, classify) → ``serving`` (SavedModel
export); ``interop`` imports Hugging Face checkpoints and ``lab`` measures.

``import kerazoo`` is cheap: each public name (``kz.build``, ``kz.run_recipe``,
...) loads its module on first use, so the ``kerazoo`` command answers
``--help`` without a framework. The zoo's Keras classes register with Keras
when ``kerazoo`` is imported after ``keras`` or a ``kz.*`` name is first
used; in a script that imports ``kerazoo`` first and only loads a zoo file,
use ``kz.load_run`` (or ``import kerazoo.models``) rather than a bare
``keras.saving.load_model``.

Example:
    >>> import kerazoo as kz
    >>> tok = kz.train_tokenizer(kz.data.read_corpus("builtin:pydocs"), "unigram", 2048)
    >>> model = kz.models.build("gpt", tokenizer=tok, num_layers=2)
"""

import os
import sys

# Quieten TensorFlow's C++ start-up logging before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib
import importlib.abc
import importlib.util

# The public names, each loaded from its module on first use (PEP 562), so
# that ``import kerazoo.cli`` (``kerazoo --help``) imports no framework.
_EXPORTS = {
    "build": ("kerazoo.models", "build"),
    "classify": ("kerazoo.training.tasks.classify", "classify"),
    "export": ("kerazoo.serving", "export"),
    "generate": ("kerazoo.inference.generate", "generate"),
    "load_recipe": ("kerazoo.training.recipes", "load_recipe"),
    "load_run": ("kerazoo.training.runs", "load_run"),
    "load_tokenizer": ("kerazoo.text", "load_tokenizer"),
    "run_recipe": ("kerazoo.training.runner", "run_recipe"),
    "save_tokenizer": ("kerazoo.text", "save_tokenizer"),
    "score": ("kerazoo.inference.metrics", "score"),
    "stream": ("kerazoo.inference.generate", "stream"),
    "train_tokenizer": ("kerazoo.text", "train_tokenizer"),
    "translate": ("kerazoo.inference.translate", "translate"),
}
_SUBMODULES = {"data": "kerazoo.data", "models": "kerazoo.models", "text": "kerazoo.text"}
# The flat layout's module names, kept so that scripts written against it
# (``kz.tokenizers.train_tokenizer``, ``import kerazoo.pairs``) keep working.
LEGACY_MODULES = {
    "tokenizers": "kerazoo.text",
    "pairs": "kerazoo.data.pairs",
    "attention": "kerazoo.inference.attention",
    "metrics": "kerazoo.inference.metrics",
    "hf": "kerazoo.interop.hf",
    "sampling": "kerazoo.decoding.sampling",
}


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _SUBMODULES or name in LEGACY_MODULES:
        value = importlib.import_module(_SUBMODULES.get(name) or LEGACY_MODULES[name])
    else:
        raise AttributeError(f"module 'kerazoo' has no attribute '{name}'")
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES) | set(LEGACY_MODULES))


class LegacyModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import kerazoo.<old name>`` with the module of the new layout (the same object)."""

    def __init__(self):
        self.real_specs = {}

    def find_spec(self, fullname, path=None, target=None):
        """A spec for ``kerazoo.<old name>``; None for every other module."""
        prefix, _, short = fullname.partition(".")
        if prefix != __name__ or short not in LEGACY_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        """The new layout's module itself, not a copy."""
        module = importlib.import_module(LEGACY_MODULES[spec.name.partition(".")[2]])
        self.real_specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module):
        """Nothing to run: the module is loaded; its own spec (which the import replaced) is put back."""
        module.__spec__ = self.real_specs[module.__name__]


if not any(isinstance(f, LegacyModuleFinder) for f in sys.meta_path):
    # Ahead of the path finders: a left-over folder of an old name (say kerazoo/hf/
    # holding only __pycache__) would otherwise import as an empty namespace package.
    sys.meta_path.insert(0, LegacyModuleFinder())

if "keras" in sys.modules:
    # Keras is loaded already (``import keras`` came first): register the zoo's
    # models and tokenizers now, so ``keras.saving.load_model`` finds them.
    from kerazoo import models, text  # noqa: E402,F401

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
    "text",
    "tokenizers",
    "train_tokenizer",
    "translate",
]
