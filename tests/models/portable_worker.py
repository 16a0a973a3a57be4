"""Subprocess side of ``test_portable.py``: ``KERAS_BACKEND`` is fixed per process.

    python tests/models/portable_worker.py train OUT_DIR          # train, save, record
    python tests/models/portable_worker.py load OUT_DIR IN_DIR... # load, record
    python tests/models/portable_worker.py                        # the same commands, one per stdin line

Without arguments it reads one command a line from stdin (a JSON list, as the
arguments above) and answers ``portable_worker: done`` after each, so the
test's train and load phases share one process per backend (one start-up of
the backend, Keras and kerazoo instead of two).

Each records, per arch, the logits of fixed inputs and a greedy continuation
(``load`` also: the losses of a few training steps from the loaded weights)
in ``OUT_DIR/<arch>.<backend>.npz`` (for ``load``: the model's origin backend
is in the file name it loaded).
"""

import json
import os
import sys

import keras
import numpy as np

import kerazoo as kz
from kerazoo import data as data_lib
from kerazoo.training.recipes import parse_recipe
from kerazoo.training.runner import compile_model

TEXT = ("The quick brown fox jumps over the lazy dog. To be, or not to be, that is the question.\n" * 30)
# The two families: the functional Transformer (keras_hub blocks, its own
# cached step) and the Sequential recurrent stack (rnn and gru build through
# the same RecurrentLM as lstm, whose cell carries two states). Each arch costs
# a compile per process, and this test starts six processes.
HPARAMS = {
    "gpt": dict(max_length=32, num_layers=1, num_heads=2, hidden_dim=16),
    "llama": dict(max_length=32, num_layers=1, num_heads=2, num_kv_heads=1, hidden_dim=16),
    "lstm": dict(embed_dim=8, hidden_dim=16, num_layers=1),
}
INPUTS = np.array([[3] + [ord(c) + 5 for c in "To be, or not to be"]] * 2, np.int32)  # byte ids: byte + 5
PROMPT = "The quick"


def _recipe_train(arch):
    return parse_recipe({"model": {"arch": arch}, "train": {"steps": 6, "eval_every": 6, "warmup_steps": 1,
                                                           "learning_rate": 1e-2}}).train


def _training_losses(model, arch):
    """Losses of a few AdamW steps (the recipe optimizer) on fixed batches, from the model's weights."""
    compile_model(model, _recipe_train(arch))
    batches = np.random.default_rng(0).integers(5, 120, size=(4, 4, 17)).astype("int32")
    return np.array([float(model.train_on_batch(b[:, :-1], b[:, 1:])) for b in batches])


def _record(model, path, arch=None):
    logits = keras.ops.convert_to_numpy(model(INPUTS, training=False))
    greedy = kz.generate(model, PROMPT, 12)
    losses = _training_losses(model, arch) if arch else np.zeros([0])
    np.savez(path, logits=logits, greedy=np.array(greedy), losses=losses)


def train(out_dir):
    backend = keras.backend.backend()
    tokenizer = kz.train_tokenizer([TEXT], "byte")
    ids = data_lib.tokenize_documents(tokenizer, [TEXT])
    for arch in HPARAMS:
        keras.utils.set_random_seed(0)
        model = kz.build(arch, tokenizer=tokenizer, dropout=0.0, **HPARAMS[arch])
        compile_model(model, _recipe_train(arch))
        model.fit(data_lib.lm_dataset(ids, 16, 4, seed=0, repeat=True), steps_per_epoch=6, epochs=1,
                  verbose=0, shuffle=False)
        model.save(os.path.join(out_dir, f"{arch}.{backend}.keras"))
        _record(model, os.path.join(out_dir, f"{arch}.{backend}.npz"))


def load(out_dir, in_dirs):
    for in_dir in in_dirs:
        for name in sorted(os.listdir(in_dir)):
            if name.endswith(".keras"):
                model = keras.saving.load_model(os.path.join(in_dir, name), safe_mode=True, compile=False)
                _record(model, os.path.join(out_dir, name[: -len(".keras")] + ".npz"), arch=name.split(".")[0])


def run(command, out, *rest):
    """One command: ``train OUT_DIR`` or ``load OUT_DIR IN_DIR...``."""
    train(out) if command == "train" else load(out, rest)


if __name__ == "__main__":
    if sys.argv[1:]:
        run(*sys.argv[1:])
    else:
        for line in sys.stdin:
            run(*json.loads(line))
            print("portable_worker: done", flush=True)
