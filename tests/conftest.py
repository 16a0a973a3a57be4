"""Shared fixtures: tiny corpora and tiny recipes, so every test is fast."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Token stores and cached tokenizers of the test session go to a temporary
# folder, never the user's ~/.cache/kerazoo (subprocesses inherit it).
if "KERAZOO_CACHE" not in os.environ:
    import tempfile

    os.environ["KERAZOO_CACHE"] = tempfile.mkdtemp(prefix="kerazoo-test-cache-")

import pytest  # noqa: E402

ENGLISH = (
    "The quick brown fox jumps over the lazy dog. "
    "A journey of a thousand miles begins with a single step.\n"
    "To be, or not to be, that is the question.\n"
)
CHINESE = "学而时习之，不亦说乎？有朋自远方来，不亦乐乎？\n"


@pytest.fixture
def text_file(tmp_path):
    """A small UTF-8 text file with English and Chinese."""
    path = tmp_path / "corpus.txt"
    path.write_text((ENGLISH + CHINESE) * 40, encoding="utf-8")
    return str(path)


def tiny_recipe_text(source, arch="gpt", kind="byte", extra=""):
    """TOML of a recipe that trains in seconds."""
    if arch in ("gpt", "bert", "llama"):
        model = 'max_length = 32\nnum_layers = 1\nnum_heads = 2\nhidden_dim = 16\ndropout = 0.0'
    else:
        model = "embed_dim = 8\nhidden_dim = 16\nnum_layers = 1\ndropout = 0.0"
    vocab = "" if kind in ("byte", "char") else "vocab_size = 300\n"
    # On TensorFlow, XLA compiles a train step in seconds, more than these
    # 4-step runs take to train; test_runner checks the default ("auto": XLA
    # on TF and JAX). On JAX, false would mean an eager, op-by-op step.
    on_tf = os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
    jit = "jit_compile = false\n" if on_tf and "jit_compile" not in extra else ""
    return f"""
name = "tiny_{arch}"
[data]
source = "{source}"
split = "tail"
[tokenizer]
kind = "{kind}"
{vocab}
[model]
arch = "{arch}"
{model}
[train]
seq_len = 32
batch_size = 4
steps = 4
eval_every = 2
eval_batches = 2
warmup_steps = 1
sample_tokens = 5
{jit}{extra}
"""


@pytest.fixture
def tiny_recipe(tmp_path, text_file):
    """Writes a tiny recipe file; call it with arch / kind / extra TOML."""

    def write(arch="gpt", kind="byte", extra="", source=None):
        path = tmp_path / f"tiny_{arch}_{kind}.toml"
        path.write_text(tiny_recipe_text(source or text_file, arch, kind, extra))
        return str(path)

    return write


@pytest.fixture(scope="session")
def tiny_run_and_export(tmp_path_factory):
    """A trained tiny GPT run folder and its SavedModel export: ``(run_dir, export_dir)``.

    Shared by the tests that need a real model on disk (bad inputs, soak).
    """
    import kerazoo as kz

    root = tmp_path_factory.mktemp("tiny_export")
    corpus = root / "corpus.txt"
    corpus.write_text((ENGLISH + CHINESE) * 40, encoding="utf-8")
    recipe_file = root / "tiny_gpt.toml"
    recipe_file.write_text(tiny_recipe_text(str(corpus), "gpt"))
    result = kz.run_recipe(kz.load_recipe(str(recipe_file)), str(root / "runs"), verbose=0, log=lambda *_: None)
    export_dir = kz.export(result.path, base_dir=str(root / "saved_models"), max_new_tokens=4)
    return result.path, export_dir
