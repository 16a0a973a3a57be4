"""The bad-input suite: a user's mistake gets one clear line, exit code 2, no traceback.

Every case runs the real ``kerazoo`` command line (``kerazoo.cli.main``, in
this process) and must return 2 with ``kerazoo: error: ...`` on stderr; an
exception escaping ``main`` (a traceback for the user) fails the test. A few
cases also run as a subprocess to check stderr for a traceback. Hypothesis
properties add generated recipes and prompts on top of the named cases.

The named cases are the module-level lists below; ``python -m tests.test_bad_inputs``
prints how many there are (docs/reliability.md quotes that number).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kerazoo.training import recipes
from kerazoo.cli import USER_ERROR, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MODEL = '[model]\narch = "gpt"\nmax_length = 32\nnum_layers = 1\nnum_heads = 2\nhidden_dim = 16\n'
TINY_TRAIN = "[train]\nseq_len = 16\nbatch_size = 2\nsteps = 2\neval_every = 1\nwarmup_steps = 0\nsample_tokens = 4\n"

# ---------------------------------------------------------------------------
# The cases. Each: (id, what to write or pass, the message stderr must match).
# ---------------------------------------------------------------------------

# Corpora for data.source: (id, file name, content bytes, message).
CORPORA = [
    ("empty file", "c.txt", b"", r"too little|empty|no text"),
    ("whitespace only", "c.txt", b" \n\t\n  \n", r"too little|empty|no text"),
    ("binary with NUL bytes", "c.txt", bytes(range(256)) * 64, r"looks binary"),
    ("non-UTF-8 (Latin-1)", "c.txt", "caf\xe9 na\xefve ".encode("latin-1") * 200, r"not valid UTF-8"),
    ("UTF-16 with BOM", "c.txt", "hello world ".encode("utf-16") * 200, r"binary|UTF-8"),
    ("truncated UTF-8 sequence", "c.txt", "日本語".encode("utf-8")[:-1], r"not valid UTF-8"),
    ("too small for one batch", "c.txt", b"tiny", r"too little|too small"),
    ("JSONL with a broken line", "c.jsonl", b'{"text": "ok"}\n{"text": \n', r"invalid JSON"),
    ("JSONL without the column", "c.jsonl", b'{"body": "ok"}\n' * 50, r"column 'text' not found"),
    ("JSONL of arrays", "c.jsonl", b'["a", "b"]\n' * 50, r"expected a JSON object"),
    ("JSONL of bare strings", "c.jsonl", b'"just a string"\n' * 50, r"expected a JSON object"),
    ("JSONL that is empty", "c.jsonl", b"", r"too little|empty|no text|no documents"),
    ("CSV that is empty", "c.csv", b"", r"empty"),
    ("CSV without the text column", "c.csv", b"body,label\nhello,1\n" * 30, r"column 'text' not found"),
    ("CSV with ragged rows", "c.csv", b"text,label\nhello,1\nworld\n", r"row has 1 fields"),
    ("CSV with an extra field", "c.csv", b"text,label\nhello,1,extra\n", r"row has 3 fields"),
    ("CSV with an unterminated quote", "c.csv", b'text\n"never closed\n', r"unterminated|quote|row|too little|CSV"),
    ("TSV with ragged rows", "c.tsv", b"text\tlabel\na\t1\nb\n", r"row has 1 fields"),
    # Round two (issue 26): silent corruption that the streaming readers now refuse, naming the line.
    ("CSV with one stray quote in 400 rows", "c.csv",
     b"text\n" + b"".join(b'"' * (i == 5) + b"row %d of the corpus\n" % i for i in range(400)), r"c\.csv:401: malformed CSV"),
    ("JSONL text that is null", "c.jsonl", b'{"text": "ok ok ok"}\n' * 50 + b'{"text": null}\n', r":51: .*holds null"),
    ("JSONL text that is NaN", "c.jsonl", b'{"text": "ok ok ok"}\n' * 50 + b'{"text": NaN}\n', r":51: .*holds NaN"),
    ("JSONL text that is 1e400", "c.jsonl", b'{"text": "ok ok ok"}\n' * 50 + b'{"text": 1e400}\n', r":51: .*holds Infinity"),
    # Corpora stream (no size cap): a sparse 1 GiB file of NUL bytes is refused as binary.
    ("huge: a sparse file of NUL bytes", "c.txt", None, r"too large|looks binary"),
]
# Sources that are not files: (id, data.source value (``{tmp}`` is the test's folder), message).
SOURCES = [
    ("missing file", "{tmp}/nope.txt", r"does not exist|not found|no such"),
    ("folder without text files", "{tmp}/emptydir", r"holds no text files"),
    ("glob matching nothing", "{tmp}/*.nomatch", r"matches no files|does not exist|not found"),
    ("unknown builtin corpus", "builtin:nope", r"unknown built-in"),
    # Round two (issue 26): special files, refused by name before any read (a fifo used to hang).
    ("a fifo", "{tmp}/fifo.txt", r"fifo.txt is a fifo"),
    ("/dev/zero", "/dev/zero", r"/dev/zero is a device"),
    ("/dev/urandom", "/dev/urandom", r"/dev/urandom is a device"),
]
# Classifier data: (id, train TSV, validation TSV or None, message). Labels
# of the validation file that training never saw are the classic mistake.
GOOD_ROWS = "".join(f"{w} film\t{l}\n" for w, l in [("good", "pos"), ("bad", "neg")] * 30)
CLASSIFY_DATA = [
    ("validation label unseen at training", "text\tlabel\n" + GOOD_ROWS,
     "text\tlabel\nmeh film\tneutral\ngood film\tpos\n", r"unknown label 'neutral'"),
    ("no label column", "text\tscore\n" + GOOD_ROWS.replace("pos", "1").replace("neg", "0"), None,
     r"column 'label' not found"),
    ("only one label", "text\tlabel\n" + "good film\tpos\n" * 40, None, r"at least 2|one label|2 distinct"),
    ("ragged row in the validation file", "text\tlabel\n" + GOOD_ROWS, "text\tlabel\ngood film\n",
     r"row has 1 fields"),
    ("empty label", "text\tlabel\n" + GOOD_ROWS + "odd film\t\n", None, r"empty label|label"),
    # Issue 23: labels are found in one streaming pass, capped (a text column named as the label column).
    ("more distinct labels than the cap", "text\tlabel\n" + "".join(f"film {i}\tfilm {i}\n" for i in range(1001)),
     None, r"more than 1,000 distinct labels"),
]


def _wrong_type_value(hint):
    """A TOML value of the wrong type for a field annotation."""
    types = set(typing.get_args(hint) or (hint,))
    if str in types:
        return 12345
    if bool in types:
        return "yes"
    return "not a number"


# Recipes: every field of every section with a value of the wrong type, an
# unknown key in every section, and impossible values; (id, TOML, message).
RECIPE_WRONG_TYPES = [
    (f"{section}.{f.name} of the wrong type",
     f"{TINY_MODEL}[{section}]\n{f.name} = {json.dumps(_wrong_type_value(f.type))}\n", rf"'{section}\.{f.name}' must be")
    for section, cls in recipes.SECTIONS.items()
    for f in dataclasses.fields(cls)
]
RECIPE_UNKNOWN_KEYS = [
    (f"unknown key in [{section}]", f"{TINY_MODEL}[{section}]\nnot_a_key = 1\n", rf"unknown key '{section}\.not_a_key'")
    for section in recipes.SECTIONS
] + [
    ("unknown top-level key", f"colour = 'red'\n{TINY_MODEL}", r"unknown key 'colour'"),
    ("unknown model hyper-parameter", f"{TINY_MODEL}hidden_sz = 3\n", r"unknown hyper-parameter 'hidden_sz'"),
    ("a section that is a value", f"train = 3\n{TINY_MODEL}", r"\[train\] must be a table"),
]
RECIPE_BAD_VALUES = [
    ("not TOML at all", "this is = = not toml", r"not valid TOML"),
    ("TOML that is not UTF-8", None, r"not valid TOML"),
    ("empty recipe", "", r"missing section \[model\]"),
    ("no model.arch", "[model]\nnum_layers = 2\n", r"missing key 'model.arch'"),
    ("unknown arch", '[model]\narch = "transformerxl"\n', r"unknown arch 'transformerxl'"),
    ("arch of the wrong type", "[model]\narch = 3\n", r"'model.arch' must be a string"),
    ("negative layers", f"{TINY_MODEL}".replace("num_layers = 1", "num_layers = -1"), r"'num_layers' must be positive"),
    ("heads that do not divide the width", TINY_MODEL.replace("num_heads = 2", "num_heads = 3"), r"must divide"),
    ("dropout above 1", f"{TINY_MODEL}dropout = 1.5\n", r"'dropout' must be in"),
    ("zero steps", f"{TINY_MODEL}[train]\nsteps = 0\n", r"'train.steps' must be positive"),
    ("steps not a multiple of eval_every", f"{TINY_MODEL}[train]\nsteps = 10\neval_every = 3\nwarmup_steps = 1\n",
     r"must be a multiple"),
    ("warm-up longer than training", f"{TINY_MODEL}[train]\nsteps = 10\neval_every = 5\nwarmup_steps = 10\n",
     r"'train.warmup_steps'"),
    ("negative learning rate", f"{TINY_MODEL}[train]\nlearning_rate = -0.1\n", r"'train.learning_rate' must be positive"),
    ("NaN learning rate", f"{TINY_MODEL}[train]\nlearning_rate = nan\n", r"'train.learning_rate'"),
    ("infinite learning rate", f"{TINY_MODEL}[train]\nlearning_rate = inf\n", r"'train.learning_rate'"),
    ("NaN hyper-parameter", f"{TINY_MODEL}layer_norm_epsilon = nan\n", r"'layer_norm_epsilon' must be a finite"),
    ("val_fraction of 1", f"{TINY_MODEL}[data]\nval_fraction = 1.0\n", r"'data.val_fraction' must be in"),
    ("empty data source", f'{TINY_MODEL}[data]\nsource = ""\n', r"'data.source' must not be empty"),
    ("unknown split", f'{TINY_MODEL}[data]\nsplit = "random"\n', r"'data.split' must be one of"),
    ("unknown tokenizer kind", f'{TINY_MODEL}[tokenizer]\nkind = "sentencepiece2"\n', r"'tokenizer.kind' must be one of"),
    ("vocab of 3", f'{TINY_MODEL}[tokenizer]\nkind = "bpe"\nvocab_size = 3\n', r"'tokenizer.vocab_size' must be larger"),
    ("byte vocab size set", f'{TINY_MODEL}[tokenizer]\nkind = "byte"\nvocab_size = 300\n', r"is fixed at"),
    ("seq_len over the context", f"{TINY_MODEL}[train]\nseq_len = 64\n", r"exceeds the model's context"),
    ("unknown precision", f'{TINY_MODEL}[train]\nprecision = "float8"\n', r"'train.precision' must be one of"),
    ("jit_compile that is neither a bool nor auto", f'{TINY_MODEL}[train]\njit_compile = "yes"\n',
     r"'train.jit_compile' must be true, false or \"auto\""),
    ("unknown strategy", f'{TINY_MODEL}[distribute]\nstrategy = "magic"\n', r"'distribute.strategy' must be one of"),
    ("task the arch cannot train", f'{TINY_MODEL}[task]\nkind = "seq2seq"\n', r"is not a task of arch"),
    ("name with a path", f'name = "../../etc"\n{TINY_MODEL}', r"'name' must be"),
    ("name that is absolute", f'name = "/tmp/x"\n{TINY_MODEL}', r"'name' must be"),
    ("--set without a value", None, r"expected section.key=value"),
    ("recipe file missing", None, r"does not exist"),
    ("recipe is a folder", None, r"is a folder"),
]
RECIPES = RECIPE_WRONG_TYPES + RECIPE_UNKNOWN_KEYS + RECIPE_BAD_VALUES

# kerazoo generate: (id, arguments after the run folder, message).
GENERATE_ARGS = [
    ("zero new tokens", ["--max-new-tokens", "0"], r"max_new_tokens must be a positive"),
    ("negative new tokens", ["--max-new-tokens", "-3"], r"max_new_tokens must be a positive"),
    ("more new tokens than the context", ["--max-new-tokens", "500"], r"does not fit the model's context"),
    ("negative temperature", ["--temperature", "-1"], r"temperature must be > 0"),
    ("zero temperature", ["--temperature", "0"], r"temperature must be > 0"),
    ("temperature with greedy", ["--sampler", "greedy", "--temperature", "0.5"], r"has no effect"),
    ("top_p above 1", ["--sampler", "top_p", "--top-p", "1.5"], r"top_p must be in"),
    ("top_p of 0", ["--sampler", "top_p", "--top-p", "0"], r"top_p must be in"),
    ("top_k of 0", ["--sampler", "top_k", "--top-k", "0"], r"top_k must be at least 1"),
    ("zero beams", ["--sampler", "beam", "--num-beams", "0"], r"num_beams must be at least 1"),
    ("prompts file missing", ["--prompts-file", "{tmp}/none.txt"], r"does not exist"),
    ("prompts file empty", ["--prompts-file", "{tmp}/empty.txt"], r"holds no prompts"),
    ("prompts file not UTF-8", ["--prompts-file", "{tmp}/latin1.txt"], r"not UTF-8"),
    ("prompts file is a folder", ["--prompts-file", "{tmp}"], r"does not exist|folder"),
    ("unknown sampler", ["--sampler", "nucleus"], r"invalid choice"),
    ("new tokens not a number", ["--max-new-tokens", "many"], r"invalid int value"),
]
# kerazoo predict bodies against the exported model: (id, JSON body text, message).
SERVING_BODIES = [
    ("not JSON", "{prompts: def", r"not JSON"),
    ("a JSON array", '["def"]', r"must be a JSON object"),
    ("a JSON string", '"def"', r"must be a JSON object"),
    ("neither instances nor inputs", '{"signature_name": "greedy"}', r"exactly one of"),
    ("both instances and inputs", '{"instances": ["a"], "inputs": ["a"]}', r"exactly one of"),
    ("empty instances", '{"instances": [], "signature_name": "greedy"}', r"non-empty list"),
    ("instances not a list", '{"instances": "def", "signature_name": "greedy"}', r"non-empty list"),
    ("unknown signature", '{"instances": ["a"], "signature_name": "nope"}', r"signature 'nope' not found"),
    ("prompt that is a number", '{"instances": [{"prompts": 3}], "signature_name": "greedy"}', r"prompts|string|type"),
    ("prompt that is null", '{"instances": [{"prompts": null}], "signature_name": "greedy"}', r"does not match"),
    ("prompt that is a list", '{"instances": [{"prompts": ["a", "b"]}], "signature_name": "greedy"}', r"shape|rank|prompts"),
    ("missing input", '{"instances": [{"text": "a"}], "signature_name": "greedy"}', r"does not match"),
    ("ragged columnar inputs", '{"inputs": {"prompts": ["a", ["b"]]}, "signature_name": "greedy"}', r"shape|rank|prompts|type"),
    ("max_new_tokens as text", '{"instances": [{"prompts": "a", "max_new_tokens": "ten", "temperature": 1.0, '
     '"top_k": 1, "top_p": 1.0, "seed": 0}]}', r"max_new_tokens|int|type"),
    ("body of several MB", None, r"too large"),
    # Round two (issue 26): values that used to wrap or crash.
    ("signature_name given as a list", '{"instances": ["a"], "signature_name": ["greedy"]}', r"must be a string"),
    ("max_new_tokens of 2**31", '{"instances": [{"prompts": "a", "max_new_tokens": 2147483648, "temperature": 1.0, '
     '"top_k": 1, "top_p": 1.0, "seed": 0}]}', r"'max_new_tokens' is out of range"),
    ("max_new_tokens of 2**32 + 3", '{"instances": [{"prompts": "a", "max_new_tokens": 4294967299, "temperature": 1.0, '
     '"top_k": 1, "top_p": 1.0, "seed": 0}]}', r"'max_new_tokens' is out of range"),
    ("max_new_tokens that is true", '{"instances": [{"prompts": "a", "max_new_tokens": true, "temperature": 1.0, '
     '"top_k": 1, "top_p": 1.0, "seed": 0}]}', r"'max_new_tokens' must be"),
    ("temperature NaN", '{"instances": [{"prompts": "a", "max_new_tokens": 2, "temperature": NaN, '
     '"top_k": 1, "top_p": 1.0, "seed": 0}]}', r"'temperature' must be a finite"),
    ("seed of -2**31 - 1", '{"instances": [{"prompts": "a", "max_new_tokens": 2, "temperature": 1.0, '
     '"top_k": 1, "top_p": 1.0, "seed": -2147483649}]}', r"'seed' is out of range"),
    ("body nested 100,000 deep", '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}", r"nested too deeply"),
]
# Model files: (id, how to damage a copy of a good model.keras, message).
MODEL_FILES = [
    ("empty .keras file", "empty", r"cannot load"),
    ("random bytes", "random", r"cannot load"),
    ("truncated zip", "truncate", r"cannot load"),
    ("zip without config.json", "no_config", r"cannot load"),
    ("config.json that is not JSON", "bad_config", r"cannot load"),
    ("weights file missing", "no_weights", r"cannot load"),
    ("a .keras path that is a folder", "folder", r"no model found|cannot load"),
]
# Commands that read a model file: each damaged file goes through each one.
MODEL_COMMANDS = [
    ("generate", lambda p: ["generate", p, "--prompt", "a", "--max-new-tokens", "2"]),
    ("classify", lambda p: ["classify", p, "--text", "a"]),
    ("translate", lambda p: ["translate", p, "--text", "a"]),
]
# SavedModel folders: (id, damage to a copy of a good export, message).
SAVED_MODELS = [
    ("variables data file missing", "no_variables_data", r"cannot load the SavedModel|incomplete"),
    ("variables folder missing", "no_variables_dir", r"cannot load the SavedModel|incomplete"),
    ("saved_model.pb truncated", "truncate_pb", r"cannot load the SavedModel|not a SavedModel"),
    ("saved_model.pb missing", "no_pb", r"not a SavedModel"),
]

# Round two (issue 26): names, integer ranges, special files, bombs, shapes and
# locks, through whichever command reads them: (id, setup(tmp, run, export) -> argv, message).
# The setups are defined below the lists (``ROUND_TWO_SETUPS``); ids are their keys.
ROUND_TWO = [
    ("recipe name of 250 characters", r"'name' must be"),
    ("recipe name ending in a newline", r"'name' must be"),
    ("model.max_length of 2**31", r"'model.max_length' .* too large"),
    ("train.seed of 2**40", r"'train.seed' .* out of range"),
    ("recipe that is a fifo", r"named pipe"),
    ("recipe that is /dev/zero", r"a device"),
    ("recipe over 1 MiB", r"too large"),
    ("recipe nested 100,000 deep", r"nested too deeply|not valid TOML"),
    ("runs directory that is a file", r"is not a folder"),
    ("runs/NAME that is a dangling symlink", r"symbolic link"),
    ("train while another process holds the run", r"in use by another kerazoo process \(PID \d+"),
    ("--resume while another process holds the run", r"in use by another kerazoo process \(PID \d+"),
    ("export name of 250 characters", r"invalid export name"),
    ("export name ending in a newline", r"invalid export name"),
    ("export --max-new-tokens-cap 2**31", r"--max-new-tokens-cap 2147483648 is out of range"),
    ("export base dir that is a file", r"is not a folder"),
    ("export while another process holds the name", r"in use by another kerazoo process \(PID \d+"),
    ("generate on a classifier run", r"does not generate text"),
    ("generate --max-new-tokens 2**31", r"--max-new-tokens 2147483648 is out of range"),
    ("generate --prompts-file that is a fifo", r"named pipe"),
    ("generate --prompts-file /dev/zero", r"a device"),
    ("translate --max-new-tokens 2**31", r"out of range"),
    (".keras zip bomb (a config.json of 80 MB)", r"would inflate to"),
    (".keras naming a class that is not a Keras object", r"cannot load"),
    (".keras that is a fifo", r"named pipe"),
    ("report on a list-shaped metrics.json", r"must hold a JSON object"),
    ("report on a metrics.json nested 100,000 deep", r"nested too deeply"),
    ("import-hf with a list-shaped model_type", r"model_type .* is not supported"),
    ("import-hf with a config.json nested 100,000 deep", r"nested too deeply"),
    ("predict on a SavedModel whose graph is a fifo", r"named pipe"),
    ("import-hf whose config.json is a fifo", r"config.json is a named pipe"),
    ("import-hf whose vocab.json is a fifo", r"checkpoint file .*vocab.json is a named pipe"),
    ("import-hf while another process holds the run", r"in use by another kerazoo process \(PID \d+"),
    ("import-hf --runs-dir that is a file", r"is not a folder"),
    ("import-hf with n_layer 2**31 (built layers until memory ran out)", r"'n_layer' must be an integer from 1 to 1,048,576"),
    ("import-hf with n_embd 1e400 (a traceback)", r"'n_embd' must be an integer from 1 to"),
    ("import-hf with n_layer beyond its weights", r"'n_layer' is 1,000 but the weights hold 2 layer"),
    ("import-hf with n_positions beyond its position table", r"'n_positions' is 1,000 but 'wpe.weight' has 64 rows"),
    ("import-hf with resid_pdrop of 5", r"'resid_pdrop' must be a finite number"),
    ("import-hf with an empty merges.txt (a TensorFlow traceback)", r"merges.txt holds no merges"),
    ("--resume whose backup metadata names a file outside the run", r"backup metadata .* is damaged \(weights '/"),
    ("--resume whose backup metadata has a text epoch", r"backup metadata .* is damaged \(epoch 'one'"),
    ("soak --concurrency 10**6 (threads until creation failed)", r"--concurrency 1,000,000 is too many"),
    ("soak --interval nan", r"--interval must be a positive number"),
    ("soak --tolerance-mb nan (never saw growth)", r"--tolerance-mb must be a finite number"),
]

CASE_LISTS = {
    "corpora": CORPORA, "sources": SOURCES, "classify data": CLASSIFY_DATA, "recipes": RECIPES,
    "generate arguments": GENERATE_ARGS, "serving bodies": SERVING_BODIES,
    "model files x commands": [(f, c) for f in MODEL_FILES for c in MODEL_COMMANDS], "saved models": SAVED_MODELS,
    "round two (issue 26)": ROUND_TWO,
}


def count_cases():
    """The number of distinct named bad inputs, per list and in all."""
    per_list = {name: len(cases) for name, cases in CASE_LISTS.items()}
    return per_list, sum(per_list.values())


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------


def _expect_user_error(argv, message, capsys):
    """Runs the CLI and checks: exit 2, one clear line matching ``message``."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own usage errors exit 2 as well
        code = e.code
    err = capsys.readouterr().err
    assert code == USER_ERROR, f"exit {code} for {str(argv)[:300]}; stderr:\n{err[-2000:]}"
    assert "Traceback" not in err
    import re

    assert re.search(message, err), f"stderr does not match {message!r}:\n{err}"


def _recipe(tmp_path, source, extra=""):
    path = tmp_path / "r.toml"
    path.write_text(f'name = "bad"\n[data]\nsource = "{source}"\nsplit = "tail"\n'
                    f'[tokenizer]\nkind = "byte"\n{TINY_MODEL}{TINY_TRAIN}{extra}')
    return str(path)


# ---------------------------------------------------------------------------
# Corpora and data.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CORPORA, ids=[c[0] for c in CORPORA])
def test_bad_corpus(case, tmp_path, capsys, monkeypatch):
    name, filename, content, message = case
    path = tmp_path / filename
    if content is None:  # huge: a sparse file past the limit, so the test stays small on disk
        from kerazoo import data as data

        with open(path, "wb") as f:
            f.truncate(data.MAX_CORPUS_BYTES + 1)
    else:
        path.write_bytes(content)
    runs = tmp_path / "runs"
    _expect_user_error(["train", _recipe(tmp_path, path), "--runs-dir", str(runs), "--quiet"], message, capsys)
    assert not runs.exists() or not os.listdir(runs), "a bad corpus leaves nothing behind"


@pytest.mark.parametrize("case", SOURCES, ids=[c[0] for c in SOURCES])
def test_bad_source(case, tmp_path, capsys):
    name, source, message = case
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "emptydir" / "image.png").write_bytes(b"\x89PNG")
    os.mkfifo(tmp_path / "fifo.txt")
    recipe = _recipe(tmp_path, source.format(tmp=tmp_path))
    _expect_user_error(["train", recipe, "--runs-dir", str(tmp_path / "runs"), "--quiet"], message, capsys)


@pytest.mark.parametrize("case", CLASSIFY_DATA, ids=[c[0] for c in CLASSIFY_DATA])
def test_bad_classifier_data(case, tmp_path, capsys):
    name, train, val, message = case
    (tmp_path / "train.tsv").write_text(train)
    val_line = ""
    if val is not None:
        (tmp_path / "val.tsv").write_text(val)
        val_line = f'val_source = "{tmp_path / "val.tsv"}"\n'
    path = tmp_path / "cls.toml"
    path.write_text(f'name = "cls"\n[data]\nsource = "{tmp_path / "train.tsv"}"\n{val_line}'
                    '[tokenizer]\nkind = "char"\n[model]\narch = "bilstm"\nembed_dim = 8\nhidden_dim = 8\n'
                    "[train]\nseq_len = 16\nbatch_size = 4\nsteps = 2\neval_every = 1\nwarmup_steps = 0\n")
    _expect_user_error(["train", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet"], message, capsys)


# ---------------------------------------------------------------------------
# Recipes.
# ---------------------------------------------------------------------------


def _write_bad_recipe(tmp_path, name, toml):
    path = tmp_path / "bad.toml"
    if name == "TOML that is not UTF-8":
        path.write_bytes(b'name = "caf\xe9"\n')
    elif name == "recipe is a folder":
        path = tmp_path / "folder.toml"
        path.mkdir()
    elif name == "recipe file missing":
        path = tmp_path / "missing.toml"
    else:
        path.write_text(TINY_MODEL if toml is None else toml)
    return str(path)


@pytest.mark.parametrize("case", RECIPES, ids=[c[0] for c in RECIPES])
def test_bad_recipe(case, tmp_path, capsys):
    name, toml, message = case
    argv = ["train", _write_bad_recipe(tmp_path, name, toml), "--runs-dir", str(tmp_path / "runs")]
    if name == "--set without a value":
        argv += ["--set", "train.steps"]
    _expect_user_error(argv, message, capsys)
    assert not (tmp_path / "runs").exists()


def test_every_recipe_field_has_a_wrong_type_case():
    fields = {(s, f.name) for s, cls in recipes.SECTIONS.items() for f in dataclasses.fields(cls)}
    assert len(RECIPE_WRONG_TYPES) == len(fields)


_toml_scalar = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.booleans(),
                         st.text(max_size=12), st.lists(st.integers(), max_size=3))
_section_key = st.sampled_from([f.name for cls in recipes.SECTIONS.values() for f in dataclasses.fields(cls)]
                               + ["arch", "num_layers", "hidden_dim", "bogus"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(list(recipes.SECTIONS) + ["model", "name", "extra"]),
                       st.one_of(_toml_scalar, st.dictionaries(_section_key, _toml_scalar, max_size=4)), max_size=5))
def test_generated_recipes_are_valid_or_a_recipe_error(raw):
    """Whatever data a recipe holds, parsing returns a Recipe or raises RecipeError, nothing else."""
    try:
        recipes.parse_recipe(raw, "gen.toml")
    except recipes.RecipeError:
        pass


# ---------------------------------------------------------------------------
# Prompts: generate time and serving time.
# ---------------------------------------------------------------------------


@pytest.fixture
def prompt_files(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    return tmp_path


@pytest.fixture
def shared_loads(monkeypatch):
    """Loads the tiny model and export once for all argument and body cases.

    Those cases test what the command does with bad arguments; loading is
    tested by the damaged-file cases, which load for real.
    """
    from kerazoo.training import runner
    from kerazoo.serving import rest

    monkeypatch.setattr(runner, "load_run", _loaded_model)
    monkeypatch.setattr(rest, "load_saved_model", _loaded_export)


@pytest.mark.parametrize("case", GENERATE_ARGS, ids=[c[0] for c in GENERATE_ARGS])
def test_bad_generate_arguments(case, tiny_run_and_export, prompt_files, shared_loads, capsys):
    name, args, message = case
    run, _ = tiny_run_and_export
    _expect_user_error(["generate", run, "--no-stream"] + [a.format(tmp=prompt_files) for a in args], message, capsys)


_prompt = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompts=st.lists(_prompt, min_size=1, max_size=3))
def test_any_prompt_generates_text(tiny_run_and_export, prompts):
    """Prompts of every shape (empty, NUL, emoji, RTL, long) give text, never an error."""
    import kerazoo as kz

    model = _loaded_model(tiny_run_and_export[0])
    out = kz.generate(model, prompts, max_new_tokens=2)
    assert isinstance(out, list) and len(out) == len(prompts) and all(isinstance(t, str) for t in out)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompts=st.lists(_prompt, min_size=1, max_size=3))
def test_any_prompt_is_served(tiny_run_and_export, prompts):
    """The exported signature answers prompts of every shape like TF Serving would."""
    import tensorflow as tf

    fn = _loaded_export(tiny_run_and_export[1]).signatures["greedy"]
    out = fn(prompts=tf.constant(prompts))
    assert out["texts"].shape[0] == len(prompts)


_cache = {}


def _loaded_model(run):
    if run not in _cache:
        import kerazoo as kz

        _cache[run] = kz.load_run(run)
    return _cache[run]


def _loaded_export(path):
    if path not in _cache:
        import tensorflow as tf

        _cache[path] = tf.saved_model.load(path)
    return _cache[path]


@pytest.mark.parametrize("case", SERVING_BODIES, ids=[c[0] for c in SERVING_BODIES])
def test_bad_serving_request(case, tiny_run_and_export, shared_loads, capsys):
    name, body, message = case
    if body is None:
        from kerazoo.serving.rest import MAX_BODY_BYTES

        body = json.dumps({"instances": ["x" * 1024] * (MAX_BODY_BYTES // 1024 + 1), "signature_name": "greedy"})
    _expect_user_error(["predict", tiny_run_and_export[1], body], message, capsys)


# ---------------------------------------------------------------------------
# Damaged model files and SavedModel folders.
# ---------------------------------------------------------------------------


def _damage_keras(good, target, how):
    if how == "folder":
        target.mkdir()
        return
    data = open(good, "rb").read()
    if how == "empty":
        data = b""
    elif how == "random":
        data = os.urandom(4096)
    elif how == "truncate":
        data = data[: len(data) // 2]
    if how in ("no_config", "bad_config", "no_weights"):
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(target, "w") as dst:
            for item in src.infolist():
                if (how == "no_config" and item.filename == "config.json") or (
                        how == "no_weights" and item.filename.endswith(".h5")):
                    continue
                content = b"{not json" if how == "bad_config" and item.filename == "config.json" else src.read(item)
                dst.writestr(item, content)
        return
    target.write_bytes(data)


@pytest.mark.parametrize("command", MODEL_COMMANDS, ids=[c[0] for c in MODEL_COMMANDS])
@pytest.mark.parametrize("case", MODEL_FILES, ids=[c[0] for c in MODEL_FILES])
def test_damaged_keras_file(case, command, tiny_run_and_export, tmp_path, capsys):
    name, how, message = case
    target = tmp_path / "damaged.keras"
    _damage_keras(os.path.join(tiny_run_and_export[0], "model.keras"), target, how)
    _expect_user_error(command[1](str(target)), message, capsys)


def _damage_saved_model(good, target, how):
    shutil.copytree(good, target)
    variables = os.path.join(target, "variables")
    if how == "no_variables_data":
        for name in os.listdir(variables):
            if name.startswith("variables.data"):
                os.unlink(os.path.join(variables, name))
    elif how == "no_variables_dir":
        shutil.rmtree(variables)
    elif how == "truncate_pb":
        pb = os.path.join(target, "saved_model.pb")
        data = open(pb, "rb").read()
        open(pb, "wb").write(data[: len(data) // 3])
    elif how == "no_pb":
        os.unlink(os.path.join(target, "saved_model.pb"))


@pytest.mark.parametrize("case", SAVED_MODELS, ids=[c[0] for c in SAVED_MODELS])
def test_damaged_saved_model(case, tiny_run_and_export, tmp_path, capsys):
    name, how, message = case
    target = tmp_path / "1"
    _damage_saved_model(tiny_run_and_export[1], str(target), how)
    _expect_user_error(["predict", str(target), '{"instances": ["a"], "signature_name": "greedy"}'], message, capsys)


# ---------------------------------------------------------------------------
# Round two (issue 26).
# ---------------------------------------------------------------------------

DEEP_JSON = "[" * 100_000 + "]" * 100_000
# Holds an flock on argv[1] and writes its PID there, as a kerazoo process does.
LOCK_HOLDER = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
               "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); "
               "print('locked', flush=True); time.sleep(120)")


@pytest.fixture
def lock_holder():
    """Starts a process that holds the lock file it is given, until the test ends."""
    procs = []

    def hold(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, path], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "locked"
        procs.append(proc)

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def _recipe_text(tmp, text):
    path = tmp / "r.toml"
    path.write_text(text)
    return str(path)


def _fifo(path):
    os.mkfifo(path)
    return str(path)


def _classifier_file(tmp, run):
    from kerazoo.models.classifier import Classifier
    from kerazoo.training.runs import load_run

    tokenizer = load_run(run).tokenizer
    config = dict(vocab_size=int(tokenizer.vocabulary_size()), embed_dim=8, hidden_dim=8, num_layers=1)
    model = Classifier("rnn", config, ["a", "b"], pooling="last", max_length=16, tokenizer=tokenizer)
    path = str(tmp / "classifier.keras")
    model.save(path)
    return path


def _rewritten_keras(run, target, config):
    with zipfile.ZipFile(os.path.join(run, "model.keras")) as src, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, config if item.filename == "config.json" else src.read(item))
    return str(target)


def _hf_folder(tmp, config_text):
    folder = tmp / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(config_text)
    return str(folder)


def _gpt2_folder(tmp, merges=True, **config):
    """A GPT-2 checkpoint folder of two layers and 64 positions (weights only as far as the checks read)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp / "gpt2"
    folder.mkdir()
    base = {"model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 64}
    (folder / "config.json").write_text(json.dumps({**base, **config}))
    (folder / "vocab.json").write_text(json.dumps({"a": 0, "aa": 1, "<|endoftext|>": 2}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "a a\n" * bool(merges))
    tensors = {"wte.weight": (3, 32), "wpe.weight": (64, 32), "h.0.ln_1.weight": (32,), "h.1.ln_1.weight": (32,)}
    save_file({k: np.zeros(v, np.float32) for k, v in tensors.items()}, str(folder / "model.safetensors"))
    return ["import-hf", str(folder), "--runs-dir", str(tmp / "runs")]


def _damaged_backup(tmp, meta):
    """``train --resume`` of an unfinished run (in its own runs folder) whose committed backup metadata is ``meta``."""
    backup = tmp / "resumed" / ".bad.partial" / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text(json.dumps(meta))
    return ["train", _good_recipe(tmp), "--runs-dir", str(tmp / "resumed"), "--quiet", "--resume"]


def _export_with_fifo_graph(tmp, export):
    target = tmp / "1"
    shutil.copytree(export, target)
    os.unlink(target / "saved_model.pb")
    _fifo(target / "saved_model.pb")
    return str(target)


def _good_recipe(tmp):
    """A valid tiny recipe named "bad" whose corpus exists."""
    corpus = tmp / "corpus.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog.\n" * 40)
    return _recipe(tmp, str(corpus))


def _train_args(tmp, recipe, *extra):
    return ["train", recipe, "--runs-dir", str(tmp / "runs"), "--quiet", *extra]


BODY = '{"instances": [{"prompts": "a"}]}'
ROUND_TWO_SETUPS = {
    "recipe name of 250 characters": lambda t, r, e, h: _train_args(t, _recipe_text(t, f'name = "{"n" * 250}"\n{TINY_MODEL}')),
    "recipe name ending in a newline": lambda t, r, e, h: _train_args(t, _recipe_text(t, f'name = "bad\\n"\n{TINY_MODEL}')),
    "model.max_length of 2**31": lambda t, r, e, h: _train_args(
        t, _recipe_text(t, TINY_MODEL.replace("max_length = 32", "max_length = 2147483648"))),
    "train.seed of 2**40": lambda t, r, e, h: _train_args(t, _recipe_text(t, f"{TINY_MODEL}[train]\nseed = {2**40}\n")),
    "recipe that is a fifo": lambda t, r, e, h: _train_args(t, _fifo(t / "fifo.toml")),
    "recipe that is /dev/zero": lambda t, r, e, h: _train_args(t, "/dev/zero"),
    "recipe over 1 MiB": lambda t, r, e, h: _train_args(t, _recipe_text(t, TINY_MODEL + "#" * (1 << 20) + "\n")),
    "recipe nested 100,000 deep": lambda t, r, e, h: _train_args(t, _recipe_text(t, f"a = {DEEP_JSON}\n{TINY_MODEL}")),
    "runs directory that is a file": lambda t, r, e, h: ["train", _good_recipe(t), "--runs-dir", _good_recipe(t)],
    "runs/NAME that is a dangling symlink": lambda t, r, e, h: (
        os.makedirs(t / "runs"), os.symlink(t / "nowhere", t / "runs" / "bad"), _train_args(t, _good_recipe(t)))[-1],
    "train while another process holds the run": lambda t, r, e, h: (
        h(str(t / "runs" / ".bad.lock")), _train_args(t, _good_recipe(t)))[-1],
    "--resume while another process holds the run": lambda t, r, e, h: (
        h(str(t / "runs" / ".bad.lock")), _train_args(t, _good_recipe(t), "--resume"))[-1],
    "export name of 250 characters": lambda t, r, e, h: ["export", r, "--name", "x" * 250, "--base-dir", str(t)],
    "export name ending in a newline": lambda t, r, e, h: ["export", r, "--name", "x\n", "--base-dir", str(t)],
    "export --max-new-tokens-cap 2**31": lambda t, r, e, h: [
        "export", r, "--max-new-tokens-cap", "2147483648", "--base-dir", str(t)],
    "export base dir that is a file": lambda t, r, e, h: ["export", r, "--base-dir", _good_recipe(t)],
    "export while another process holds the name": lambda t, r, e, h: (
        h(str(t / "saved" / "x" / ".lock")), ["export", r, "--name", "x", "--base-dir", str(t / "saved")])[-1],
    "generate on a classifier run": lambda t, r, e, h: ["generate", _classifier_file(t, r), "--prompt", "a"],
    "generate --max-new-tokens 2**31": lambda t, r, e, h: ["generate", r, "--max-new-tokens", "2147483648"],
    "generate --prompts-file that is a fifo": lambda t, r, e, h: ["generate", r, "--prompts-file", _fifo(t / "p")],
    "generate --prompts-file /dev/zero": lambda t, r, e, h: ["generate", r, "--prompts-file", "/dev/zero"],
    "translate --max-new-tokens 2**31": lambda t, r, e, h: ["translate", r, "--text", "a", "--max-new-tokens", str(2**31)],
    ".keras zip bomb (a config.json of 80 MB)": lambda t, r, e, h: [
        "generate", _rewritten_keras(r, t / "bomb.keras", b" " * (80 << 20)), "--prompt", "a"],
    ".keras naming a class that is not a Keras object": lambda t, r, e, h: ["generate", _rewritten_keras(
        r, t / "zeros.keras", json.dumps({"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                          "registered_name": None})), "--prompt", "a"],
    ".keras that is a fifo": lambda t, r, e, h: ["generate", _fifo(t / "f.keras"), "--prompt", "a"],
    "report on a list-shaped metrics.json": lambda t, r, e, h: (
        os.makedirs(t / "run"), (t / "run" / "metrics.json").write_text("[1, 2]"), ["report", str(t / "run")])[-1],
    "report on a metrics.json nested 100,000 deep": lambda t, r, e, h: (
        os.makedirs(t / "run"), (t / "run" / "metrics.json").write_text(DEEP_JSON), ["report", str(t / "run")])[-1],
    "import-hf with a list-shaped model_type": lambda t, r, e, h: [
        "import-hf", _hf_folder(t, '{"model_type": ["bert"]}'), "--runs-dir", str(t / "runs")],
    "import-hf with a config.json nested 100,000 deep": lambda t, r, e, h: [
        "import-hf", _hf_folder(t, '{"model_type": ' + DEEP_JSON + "}"), "--runs-dir", str(t / "runs")],
    "predict on a SavedModel whose graph is a fifo": lambda t, r, e, h: [
        "predict", _export_with_fifo_graph(t, e), BODY],
    "import-hf whose config.json is a fifo": lambda t, r, e, h: (
        os.makedirs(t / "hf"), _fifo(t / "hf" / "config.json"), ["import-hf", str(t / "hf"), "--runs-dir", str(t / "runs")])[-1],
    "import-hf whose vocab.json is a fifo": lambda t, r, e, h: (
        _hf_folder(t, '{"model_type": "gpt2"}'), _fifo(t / "hf" / "vocab.json"),
        ["import-hf", str(t / "hf"), "--runs-dir", str(t / "runs")])[-1],
    "import-hf while another process holds the run": lambda t, r, e, h: (
        h(str(t / "runs" / ".hf.lock")), ["import-hf", _hf_folder(t, '{"model_type": "gpt2"}'), "--runs-dir", str(t / "runs")])[-1],
    "import-hf with n_layer 2**31 (built layers until memory ran out)": lambda t, r, e, h: _gpt2_folder(t, n_layer=2**31),
    "import-hf with n_embd 1e400 (a traceback)": lambda t, r, e, h: _gpt2_folder(t, n_embd=float("inf")),
    "import-hf with n_layer beyond its weights": lambda t, r, e, h: _gpt2_folder(t, n_layer=1000),
    "import-hf with n_positions beyond its position table": lambda t, r, e, h: _gpt2_folder(t, n_positions=1000),
    "import-hf with resid_pdrop of 5": lambda t, r, e, h: _gpt2_folder(t, resid_pdrop=5),
    "import-hf with an empty merges.txt (a TensorFlow traceback)": lambda t, r, e, h: _gpt2_folder(t, merges=False),
    "--resume whose backup metadata names a file outside the run": lambda t, r, e, h: _damaged_backup(
        t, {"epoch": 1, "weights": "/etc/passwd", "rng": "state-000001.rng.npz", "history": [{"loss": 1.0}]}),
    "--resume whose backup metadata has a text epoch": lambda t, r, e, h: _damaged_backup(
        t, {"epoch": "one", "weights": "state-000001.weights.h5", "rng": "state-000001.rng.npz", "history": []}),
    "soak --concurrency 10**6 (threads until creation failed)": lambda t, r, e, h: [
        "soak", e, "--seconds", "1", "--concurrency", str(10**6)],
    "soak --interval nan": lambda t, r, e, h: ["soak", e, "--seconds", "1", "--interval", "nan"],
    "soak --tolerance-mb nan (never saw growth)": lambda t, r, e, h: ["soak", e, "--seconds", "1", "--tolerance-mb", "nan"],
    "import-hf --runs-dir that is a file": lambda t, r, e, h: [
        "import-hf", _hf_folder(t, '{"model_type": "gpt2"}'), "--runs-dir", _good_recipe(t)],
}


def test_every_round_two_case_has_a_setup():
    assert sorted(ROUND_TWO_SETUPS) == sorted(c[0] for c in ROUND_TWO)


@pytest.mark.parametrize("case", ROUND_TWO, ids=[c[0] for c in ROUND_TWO])
def test_round_two_case(case, tiny_run_and_export, lock_holder, tmp_path, capsys):
    name, message = case
    run, export = tiny_run_and_export
    argv = ROUND_TWO_SETUPS[name](tmp_path, run, export, lock_holder)
    _expect_user_error(argv, message, capsys)
    # Nothing half-written: no run folder, no export version.
    assert not [p for p in (tmp_path / "runs").glob("*") if not p.name.endswith(".lock") and not p.is_symlink()]
    assert not list(tmp_path.glob("saved/*/[0-9]*"))


# What the machine lacks, not the user's mistake: (exception, exit status, line).
ENVIRONMENT = [
    (OSError(28, "No space left on device", "/runs/.x.partial/model.keras"), 1,
     r"^kerazoo: disk full: No space left on device \(path '/runs/.x.partial/model.keras'\)$"),
    (OSError(30, "Read-only file system", "/ro/runs"), 1, r"^kerazoo: read-only file system: .*'/ro/runs'"),
    (OSError(122, "Disk quota exceeded", "/home/u/runs"), 1, r"^kerazoo: disk quota exceeded: .*'/home/u/runs'"),
    (MemoryError(), 1, r"^kerazoo: out of memory"),
    (type("ResourceExhaustedError", (Exception,), {})("OOM when allocating tensor of shape [2147483648,16]"), 1,
     r"^kerazoo: out of memory: OOM when allocating"),
    # As h5py (training) and TensorFlow (export) re-raise a full disk, seen on a full tmpfs.
    (RuntimeError("Disable slist on flush dest failure failed (file write failed: time = Fri Dec  4 03:10:29 2026\n"
                  ", filename = '/r/.x.partial/backup/state-000001.weights.h5', file descriptor = 5, errno = 28, "
                  "error message = 'No space left on device', buf = 0x5, total write size = 2360)"), 1,
     r"^kerazoo: disk full: No space left on device \(path '/r/.x.partial/backup/state-000001.weights.h5'\)$"),
    (type("ResourceExhaustedError", (Exception,), {})("/s/x/.export-9e/saved_model.pb.tmpf7; No space left on device"),
     1, r"^kerazoo: disk full: .*'/s/x/.export-9e/saved_model.pb.tmpf7'"),
    (OSError(36, "File name too long", "/runs/" + "x" * 300), 2, r"^kerazoo: error: a file name is too long"),
    (RecursionError("maximum recursion depth exceeded"), 2, r"^kerazoo: error: the input is nested too deeply"),
]


@pytest.mark.parametrize("error, status, line", ENVIRONMENT, ids=[type(e).__name__ + str(getattr(e, "errno", "") or "")
                                                                   for e, _, _ in ENVIRONMENT])
def test_environment_failures_are_one_line(error, status, line, monkeypatch, capsys):
    import re

    from kerazoo import commands

    def fail(args):
        raise error

    monkeypatch.setitem(commands.COMMANDS, "models", fail)
    monkeypatch.delenv("KERAZOO_DEBUG", raising=False)
    assert main(["models"]) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(line, err), err


def test_an_unexpected_error_still_shows_its_traceback(monkeypatch):
    from kerazoo import commands

    def fail(args):
        raise OSError(9, "Bad file descriptor")  # a bug, not the environment

    monkeypatch.setitem(commands.COMMANDS, "models", fail)
    with pytest.raises(OSError):
        main(["models"])


# ---------------------------------------------------------------------------
# The real command, as a user runs it: no traceback on stderr.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["generate", "{tmp}/damaged.keras"], ["predict", "{tmp}/sm", '{"instances": ["a"]}']])
def test_subprocess_prints_no_traceback(argv, tiny_run_and_export, tmp_path):
    (tmp_path / "damaged.keras").write_bytes(b"PK\x03\x04 not really a zip")
    _damage_saved_model(tiny_run_and_export[1], str(tmp_path / "sm"), "no_variables_data")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("KERAZOO_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "kerazoo.cli"] + [a.replace("{tmp}", str(tmp_path)) for a in argv],
                          env=env, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == USER_ERROR, done.stderr
    assert "Traceback" not in done.stderr and "kerazoo: error:" in done.stderr


def test_case_count_is_the_documented_number():
    per_list, total = count_cases()
    page = open(os.path.join(REPO, "docs", "reliability.md"), encoding="utf-8").read()
    assert f"{total} distinct bad inputs" in page, f"docs/reliability.md must say '{total} distinct bad inputs' ({per_list})"


if __name__ == "__main__":
    lists, total = count_cases()
    for list_name, n in lists.items():
        print(f"{n:4d}  {list_name}")
    print(f"{total:4d}  distinct bad inputs in all")
