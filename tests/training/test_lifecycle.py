"""The one run lifecycle: every task kind goes through it, resumes from its step, and prints through its task."""

import json
import os

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo.commands.train import print_result
from kerazoo.training import checkpointing, lifecycle
from kerazoo.training.lifecycle import RunResult
from kerazoo.training.tasks import TASKS, get_task
from kerazoo.training.tasks.base import Task
from tests.conftest import tiny_recipe_text

QUIET = dict(verbose=0, log=lambda *_: None)
WORDS = "the cat sat on a mat and dog ran to big red house".split()
# The files every finished run folder holds, whatever its task.
CONTRACT = ("model.keras", "metrics.json", "history.json", "recipe.toml", "tokenizer/config.json",
            "checkpoints/best.keras")


def _seq2seq_recipe(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(80):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 5))))
        rows.append(json.dumps({"en": " ".join(words), "rev": " ".join(reversed(words))}) + "\n")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(rows), encoding="utf-8")
    path = tmp_path / "s2s.toml"
    path.write_text(f"""
name = "life_seq2seq"
[data]
source = "{data}"
source_column = "en"
target_column = "rev"
val_fraction = 0.0125
[tokenizer]
kind = "byte"
[model]
arch = "seq2seq"
max_source_length = 24
max_length = 16
num_encoder_layers = 1
num_decoder_layers = 1
num_heads = 2
hidden_dim = 16
dropout = 0.0
[train]
batch_size = 8
steps = 4
eval_every = 2
eval_batches = 1
warmup_steps = 1
sample_prompt = "the cat"
sample_tokens = 6
""")
    return str(path)


def _masked_lm_recipe(tmp_path, text_file):
    path = tmp_path / "mlm.toml"
    path.write_text(tiny_recipe_text(text_file, "bert", "byte").replace('name = "tiny_bert"', 'name = "life_mlm"'))
    return str(path)


def _classify_recipe(tmp_path):
    rng = np.random.default_rng(0)
    good, bad = ["good", "great", "fun"], ["bad", "dull", "awful"]
    lines = ["sentence\tlabel"]
    for _ in range(120):
        label = ["neg", "pos"][rng.integers(2)]
        lines.append(" ".join(rng.choice(good if label == "pos" else bad, 3)) + f"\t{label}")
    data = tmp_path / "labelled.tsv"
    data.write_text("\n".join(lines) + "\n")
    path = tmp_path / "cls.toml"
    path.write_text(f"""
name = "life_classify"
[data]
source = "{data}"
column = "sentence"
[tokenizer]
kind = "char"
[model]
arch = "bilstm"
embed_dim = 8
hidden_dim = 8
num_layers = 1
dropout = 0.0
[task]
kind = "classify"
[train]
seq_len = 24
batch_size = 8
steps = 4
eval_every = 2
eval_batches = 1
warmup_steps = 1
""")
    return str(path)


class _CrashAfterFirstCheck(keras.callbacks.Callback):
    """Stands in for a crash: raises once the first eval_every block is committed."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash")


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_every_task_kind_is_a_plug_in_of_the_lifecycle():
    assert set(TASKS) == {"causal_lm", "masked_lm", "classify", "seq2seq", "ngram", "sft"}
    for kind, task in TASKS.items():
        assert isinstance(task, Task) and task.kind == kind and get_task(kind) is task
    with pytest.raises(ValueError, match="no runner"):
        get_task("summarize")


@pytest.mark.parametrize("kind", ["seq2seq", "masked_lm", "classify"])
def test_interrupted_run_resumes_from_its_step_with_the_optimizer_built_before_restore(
        kind, tmp_path, text_file, monkeypatch):
    path = {"seq2seq": lambda: _seq2seq_recipe(tmp_path), "masked_lm": lambda: _masked_lm_recipe(tmp_path, text_file),
            "classify": lambda: _classify_recipe(tmp_path)}[kind]()
    recipe = kz.load_recipe(path)
    assert recipe.task_kind == kind
    claims, restores = [], []
    claim = lifecycle.claim_workdir
    monkeypatch.setattr(lifecycle, "claim_workdir", lambda *a: claims.append(a[2]) or claim(*a))
    restore = checkpointing.AtomicBackupAndRestore.on_train_begin

    def spied_restore(self, logs=None):
        built = self.model.optimizer.built
        restore(self, logs)
        restores.append((built, int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))))

    monkeypatch.setattr(checkpointing.AtomicBackupAndRestore, "on_train_begin", spied_restore)
    runs = str(tmp_path / "runs")
    with pytest.raises(KeyboardInterrupt):
        kz.run_recipe(recipe, runs, callbacks=[_CrashAfterFirstCheck()], **QUIET)
    partial = os.path.join(runs, f".{recipe.name}.partial")
    assert checkpointing.read_metadata(os.path.join(partial, "backup"))["epoch"] == 1
    assert not os.path.exists(os.path.join(runs, recipe.name))

    epochs = _Epochs()
    result = kz.run_recipe(recipe, runs, resume=True, callbacks=[epochs], **QUIET)
    assert claims == [False, True], "the folder is claimed once, then resumed"
    # Built before BackupAndRestore restored into it, on the first run and the resumed one;
    # the resumed optimizer continues at step 2 (one eval_every block), not at 0.
    assert restores == [(True, 0), (True, recipe.train.eval_every)]
    assert epochs.seen == [1], "only the unfinished block is trained again"
    assert result.path == os.path.join(runs, recipe.name) and not os.path.exists(partial)
    for name in CONTRACT:
        assert os.path.exists(os.path.join(result.path, name)), name
    assert not os.path.exists(os.path.join(result.path, "backup"))
    m = json.load(open(os.path.join(result.path, "metrics.json")))
    assert m["task"] == kind and m["steps"] == 4 and m == result.metrics
    assert len(json.load(open(os.path.join(result.path, "history.json")))) == 2


def _fake_result(kind):
    """A RunResult with the metrics each task writes (no training needed)."""
    m = {"task": kind, "steps": 4, "wall_seconds": 3.0, "val_loss": 1.5, "val_perplexity": 4.48}
    if kind == "causal_lm":
        m.update(tokens_seen=512, tokens_per_sec=100.0, val_bits_per_byte=2.0)
    elif kind == "masked_lm":
        m.update(tokens_seen=512, tokens_per_sec=100.0, val_masked_accuracy=0.25)
    elif kind == "classify":
        m.update(texts_seen=64, texts_per_sec=10.0, val_accuracy=0.75, val_macro_f1=0.7, val_rows=40)
    else:
        m.update(pairs_seen=32, pairs_per_sec=5.0, val_pairs=1, val_bleu=12.0, val_rouge1=0.5, val_rouge2=0.25,
                 val_rougeL=0.5)
    return RunResult(f"runs/{kind}", m, "a sample" if kind in ("causal_lm", "seq2seq") else "")


@pytest.mark.parametrize("kind,words", [
    ("causal_lm", ["bits/byte", "512 tokens", "sample: 'a sample'"]),
    ("masked_lm", ["masked-token accuracy 25.00%", "512 tokens"]),
    ("classify", ["macro-F1 0.7000", "64 texts"]),
    ("seq2seq", ["BLEU 12.00", "32 pairs", "sample: 'a sample'"]),
])
def test_the_cli_prints_a_result_through_its_task(kind, words, capsys, monkeypatch):
    result = _fake_result(kind)
    print_result(result)
    out = capsys.readouterr().out
    assert out.splitlines() == get_task(kind).summary(result)
    assert out.splitlines()[-1] == f"run folder: runs/{kind}"
    for word in words:
        assert word in out, (word, out)
    monkeypatch.setattr(type(get_task(kind)), "summary", lambda self, r: [f"{self.kind} says {r.path}"])
    print_result(result)
    assert capsys.readouterr().out == f"{kind} says runs/{kind}\n"


def test_training_and_cli_modules_are_short_and_share_no_private_names():
    """No module of training/, commands/ or cli.py over 400 lines; none imports another's ``_name``."""
    import ast
    import glob

    import kerazoo

    root = os.path.dirname(kerazoo.__file__)
    files = (glob.glob(os.path.join(root, "training", "**", "*.py"), recursive=True)
             + glob.glob(os.path.join(root, "commands", "*.py")) + [os.path.join(root, "cli.py")])
    for path in files:
        source = open(path, encoding="utf-8").read()
        assert source.count("\n") <= 400, f"{path}: {source.count(chr(10))} lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kerazoo"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path}: imports {private} from {node.module}"
