"""sft reads its exchanges from a row store: streamed, split per row, tokenized once, never a whole list."""

import numpy as np

from kerazoo.data import readers, row_datasets, rows
from kerazoo.data import sft as sft_data
from kerazoo.text import train_tokenizer
from kerazoo.text.chat import with_chat_tokens
from kerazoo.training.recipes import load_recipe
from kerazoo.training.tasks import sft

WORDS = "the cat sat on a mat and dog ran to big red house".split()


def _exchanges(n=90, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 7))))
        out.append((" ".join(words), " ".join(reversed(words))))
    return out


def _recipe(tmp_path, extra=""):
    data = tmp_path / "ex.tsv"
    data.write_text("prompt\tresponse\n" + "".join(f"{p}\t{r}\n" for p, r in _exchanges()))
    path = tmp_path / "sft_store.toml"
    path.write_text(f"""
name = "sft_store"
[task]
kind = "sft"
prompt_format = "Reverse: {{}}"
[data]
source = "{data}"
source_column = "prompt"
target_column = "response"
val_fraction = 0.2
[tokenizer]
kind = "char"
[model]
arch = "gpt"
max_length = 24
num_layers = 1
num_heads = 2
hidden_dim = 16
[train]
seq_len = 24
batch_size = 8
steps = 2
eval_every = 2
eval_batches = 2
warmup_steps = 1
sample_tokens = 6
{extra}
""")
    return load_recipe(str(path)), str(data)


def _no_whole_file(*args, **kwargs):
    raise AssertionError("sft read a whole file into memory")


def test_exchanges_stream_from_the_store_and_batches_equal_the_in_memory_path(tmp_path, monkeypatch, capsys):
    recipe, source = _recipe(tmp_path, "eval_tokens = 40")
    # The in-memory path on the row store's split (a seeded hash per row), read before the guard.
    everything = sft_data.read_exchanges(source, "prompt", "response", prompt_format="Reverse: {}")
    sides = [rows.row_side(i, 0, 0.2) for i in range(len(everything))]
    train = [e for e, s in zip(everything, sides) if s == rows.TRAIN]
    val = [e for e, s in zip(everything, sides) if s == rows.VAL]
    for name in ("read_table", "read_jsonl", "read_text_file"):
        monkeypatch.setattr(readers, name, _no_whole_file)
    for name in ("read_exchanges", "exchange_arrays"):
        monkeypatch.setattr(sft_data, name, _no_whole_file)
    logs = []
    data = sft.SFT().prepare(recipe, None, logs.append)
    assert data.extra["store"].built and (len(data.extra["train"][0]), len(data.extra["val"][0])) == (len(train), len(val))
    # The tokenizer is the one the in-memory path trains on the train rows (prompts, then responses).
    reference = with_chat_tokens(train_tokenizer([p for p, _ in train] + [r for _, r in train], "char"))
    assert data.tokenizer.get_vocabulary() == reference.get_vocabulary()
    monkeypatch.undo()
    x, y, _ = sft_data.exchange_arrays(data.tokenizer, train, 24)
    vx, vy, _ = sft_data.exchange_arrays(data.tokenizer, val, 24)
    assert any(f"tokens: {int((y != 0).sum()):,} train response tokens" in line for line in logs)
    memory = sft_data.sft_dataset(x, y, 8, shuffle=True, seed=0, repeat=True)
    for (a, b), (c, d) in zip(data.train_ds.take(12), memory.take(12)):  # past one pass: reshuffled alike
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    checks = list(data.val_ds)
    assert len(checks) == data.val_steps == min(2, len(val) // 8) >= 1
    for (a, b), (c, d) in zip(checks, sft_data.sft_dataset(vx, vy, 8, shuffle=False).take(data.val_steps)):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
    # The final evaluation's rows: the first held-out rows within train.eval_tokens response tokens.
    target = data.extra["val"][1]
    n = row_datasets.rows_within(target, 40, lambda lengths: lengths + 1)
    assert 1 <= n < len(val)
    ex, ey = sft_data.store_arrays(*data.extra["val"], data.tokenizer, 24, 0, n)
    np.testing.assert_array_equal(ex, vx[:n])
    np.testing.assert_array_equal(ey, vy[:n])
    assert data.extra["store"].texts("source", "val", 0, n) == [p for p, _ in val[:n]]
    # kerazoo prepare finds the same store.
    from kerazoo.cli import main

    assert main(["prepare", recipe.path]) == 0
    out = capsys.readouterr().out
    assert "row store: reusing" in out and f"{data.extra['store'].path} (reused)" in out
