"""Instruction tuning: loss on responses only, replies that end at the end of the turn, kerazoo chat, bad rows."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo import cli
from kerazoo.data import rows
from kerazoo.data.sft import exchange_arrays
from kerazoo.inference import chat as chat_inference
from kerazoo.models import build
from kerazoo.text import train_tokenizer
from kerazoo.text.chat import ChatTokenizer
from kerazoo.text.special import EOS_ID, PAD_ID
from kerazoo.training.recipes import TrainSection
from kerazoo.training.tasks.sft import compile_sft, masked_loss

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = [("hi", "yo"), ("cat", "chat"), ("dog", "chien"), ("sun", "soleil"), ("red", "rouge"), ("one", "un")] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return ChatTokenizer(train_tokenizer(["x"], "byte"))


def test_labels_are_the_response_and_the_end_of_turn_only(tokenizer):
    x, y, cut = exchange_arrays(tokenizer, [("hi", "yo")], seq_len=10)
    h, i, yy, o = (ord(c) + 5 for c in "hiyo")
    assert x[0].tolist() == [EOS_ID, 261, h, i, 262, yy, o, PAD_ID, PAD_ID, PAD_ID]
    assert y[0].tolist() == [PAD_ID] * 4 + [yy, o, EOS_ID] + [PAD_ID] * 3
    assert cut == 0
    x, y, cut = exchange_arrays(tokenizer, [("a long prompt", "ok")], seq_len=8)  # the prompt's start is cut
    assert cut == 1 and x[0, 0] == EOS_ID and x[0, 1] == 261 and y[0].tolist()[-3:] == [ord("o") + 5, ord("k") + 5, EOS_ID]


def test_the_compiled_loss_is_the_mean_over_response_tokens(tokenizer):
    keras.utils.set_random_seed(0)
    model = build("gpt", tokenizer=tokenizer, max_length=16, num_layers=1, num_heads=2, hidden_dim=16)
    compile_sft(model, TrainSection(jit_compile=False))
    x, y, _ = exchange_arrays(tokenizer, ROWS[:6], seq_len=16)
    keras_loss = model.evaluate(x, y, batch_size=6, verbose=0)
    response_loss, n = masked_loss(model, x, y)
    assert n == int((y != PAD_ID).sum()) and n < int((x != PAD_ID).sum())
    np.testing.assert_allclose(keras_loss, response_loss, rtol=1e-4)
    logits = np.asarray(model.predict_on_batch(x), np.float64)
    every = -np.log(np.exp(logits - logits.max(-1, keepdims=True)) / np.exp(logits - logits.max(-1, keepdims=True))
                    .sum(-1, keepdims=True))
    full = np.take_along_axis(every, np.roll(x, -1, 1)[..., None], -1)[..., 0][x != PAD_ID].mean()
    assert abs(full - response_loss) > 1e-3  # the prompt positions would have changed it


def test_a_tuned_model_answers_and_stops_at_the_end_of_the_turn_also_in_kerazoo_chat(tokenizer, tmp_path):
    keras.utils.set_random_seed(0)
    model = build("gpt", tokenizer=tokenizer, max_length=16, num_layers=1, num_heads=2, hidden_dim=32, dropout=0.0)
    compile_sft(model, TrainSection(learning_rate=1e-2, warmup_steps=1, steps=150, jit_compile=False))
    x, y, _ = exchange_arrays(tokenizer, ROWS[:6], seq_len=16)
    model.fit(np.tile(x, (4, 1)), np.tile(y, (4, 1)), batch_size=8, epochs=50, verbose=0)
    assert chat_inference.answers(model, ["hi", "dog"], max_new_tokens=8) == ["yo", "chien"]
    pieces = list(chat_inference.stream_reply(model, [("cat", "chat")], "one", max_new_tokens=8))
    assert "".join(pieces) == "un"
    # kerazoo chat, turns piped on stdin: each reply streams and ends at the end of its turn.
    model.save(str(tmp_path / "tuned.keras"))
    proc = subprocess.run([sys.executable, "-m", "kerazoo.cli", "chat", str(tmp_path / "tuned.keras"),
                           "--max-new-tokens", "8"], input="hi\ndog\n", capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, "PYTHONPATH": REPO})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "yo\nchien\n"


def test_history_is_dropped_oldest_first_to_fit_the_context(tokenizer):
    model = build("gpt", tokenizer=tokenizer, max_length=24, num_layers=1, num_heads=2, hidden_dim=8)
    turns = [("aaaa", "bbbb"), ("cc", "dd")]
    ids, kept = chat_inference.history_ids(model, tokenizer, turns, "e", max_new_tokens=8)
    assert kept == [("cc", "dd")] and len(ids) + 8 <= 24


def _sft_recipe(tmp_path, rows, extra=""):
    data = tmp_path / "pairs.tsv"
    data.write_text("prompt\tresponse\n" + "".join(f"{p}\t{r}\n" for p, r in rows), encoding="utf-8")
    recipe = tmp_path / "sft.toml"
    recipe.write_text(
        f'name = "tiny_sft"\n[task]\nkind = "sft"\nprompt_format = "Say: {{}}"\n'
        f'[data]\nsource = "{data}"\nsource_column = "prompt"\ntarget_column = "response"\nval_fraction = 0.25\n'
        '[tokenizer]\nkind = "byte"\n'
        '[model]\narch = "gpt"\nmax_length = 32\nnum_layers = 1\nnum_heads = 2\nhidden_dim = 16\n'
        '[train]\nseq_len = 24\nbatch_size = 4\nsteps = 4\neval_every = 2\nwarmup_steps = 1\nsample_tokens = 6\n'
        f'jit_compile = false\n{extra}')
    return str(recipe)


def test_sft_run_scores_held_out_replies(tmp_path):
    runs = tmp_path / "runs"
    assert cli.main(["train", _sft_recipe(tmp_path, ROWS), "--runs-dir", str(runs), "--quiet"]) == 0
    run = runs / "tiny_sft"
    m = json.loads((run / "metrics.json").read_text())
    held_out = sum(rows.row_side(i, 0, 0.25) == rows.VAL for i in range(len(ROWS)))  # the row store's split
    assert m["task"] == "sft" and m["val_pairs"] == m["val_pairs_total"] == held_out
    assert {"val_bleu", "val_rouge1", "val_rougeL"} <= set(m) and m["train_pairs"] == len(ROWS) - held_out
    replies = [json.loads(line) for line in (run / "replies.jsonl").read_text().splitlines()]
    assert len(replies) == held_out and replies[0]["prompt"].startswith("Say: ")


def test_sft_from_a_pretrained_run_grows_the_vocabulary_and_takes_lora(tmp_path, tiny_recipe):
    quiet = dict(verbose=0, log=lambda *_: None)
    # A char tokenizer: its vocabulary is a file, which a rebuilt model must not lose.
    base = kz.run_recipe(kz.load_recipe(tiny_recipe("gpt", "char")), str(tmp_path / "runs"), **quiet)
    path = _sft_recipe(tmp_path, ROWS, "lora_rank = 2\n")
    text = open(path).read().split("[model]")
    tail = text[1].split("[train]")[1]
    open(path, "w").write(f'{text[0]}[model]\narch = "gpt"\ninit_from = "{base.path}"\n[train]{tail}')
    result = kz.run_recipe(kz.load_recipe(path), str(tmp_path / "runs"), **quiet)
    tuned, pre = kz.load_run(result.path), kz.load_run(base.path)
    assert tuned.tokenizer.vocabulary_size() == pre.tokenizer.vocabulary_size() + 2
    old = keras.ops.convert_to_numpy(pre.token_embedding.embeddings)
    new = keras.ops.convert_to_numpy(tuned.token_embedding.embeddings)
    np.testing.assert_array_equal(new[: len(old)], old)  # frozen under LoRA, kept by the growth
    assert result.metrics["lora_layers"] == 2
    assert np.asarray(tuned.tokenizer.tokenize("The")).tolist() == np.asarray(pre.tokenizer.tokenize("The")).tolist()


@pytest.mark.parametrize("rows, message", [
    ([("hi", "yo"), ("cat", " ")] * 3, "row 2 has an empty response"),
])
def test_bad_rows_exit_2_and_write_nothing(tmp_path, capsys, rows, message):
    runs = tmp_path / "runs"
    assert cli.main(["train", _sft_recipe(tmp_path, rows), "--runs-dir", str(runs)]) == cli.USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kerazoo: error:") and message in err[0]
    assert not runs.exists() or not os.listdir(runs)


def test_a_template_token_in_the_vocabulary_exits_2(tmp_path, capsys):
    from kerazoo.text import WordPieceTokenizer, save_tokenizer
    from kerazoo.text.special import SPECIAL_TOKENS

    folder = tmp_path / "tok"
    save_tokenizer(WordPieceTokenizer(vocabulary=[*SPECIAL_TOKENS, "<|assistant|>", *"abcdefghijklmnopqrstuvwxyz"]), folder)
    path = _sft_recipe(tmp_path, ROWS)
    text = open(path).read().replace('kind = "byte"', f'kind = "wordpiece"\npath = "{folder}"')
    open(path, "w").write(text)
    runs = tmp_path / "runs"
    assert cli.main(["train", path, "--runs-dir", str(runs)]) == cli.USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "<|assistant|> is already in the tokenizer's vocabulary" in err[0]
    assert not runs.exists() or not os.listdir(runs)
