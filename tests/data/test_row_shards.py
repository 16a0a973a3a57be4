"""Row stores cut into shards at rows: read back across shards, and a SIGKILLed build resumes byte for byte."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from kerazoo.training.recipes import load_recipe
from kerazoo.training.tasks import classify, seq2seq

WORDS = "the cat sat on a mat and dog ran to big red house good bad dull fun".split()


def _write_rows(path, n, labelled, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write("text\tlabel\n" if labelled else "")
        for _ in range(n):
            words = list(rng.choice(WORDS, size=int(rng.integers(1, 9))))
            second = ["neg", "pos"][int(rng.integers(2))] if labelled else " ".join(reversed(words))
            f.write(f"{' '.join(words)}\t{second}\n")


def _recipe(tmp_path, source, kind):
    path = tmp_path / f"{kind}.toml"
    if kind == "classify":
        data = "val_fraction = 0.25"
        model = 'arch = "bilstm"\nembed_dim = 8\nhidden_dim = 8\nnum_layers = 1\n[task]\nkind = "classify"'
    else:
        data = 'header = false\nsource_column = "1"\ntarget_column = "2"\nval_fraction = 0.2'
        model = ('arch = "seq2seq"\nmax_source_length = 8\nmax_length = 6\nnum_encoder_layers = 1\n'
                 'num_decoder_layers = 1\nnum_heads = 2\nhidden_dim = 16\n[task]\nkind = "seq2seq"')
    path.write_text(f"""
name = "rows_{kind}"
[data]
source = "{source}"
{data}
[tokenizer]
kind = "char"
[model]
{model}
[train]
seq_len = 16
batch_size = 8
steps = 2
eval_every = 2
warmup_steps = 1
""")
    return str(path)


def _files(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def test_a_store_in_many_shards_reads_the_same_rows_as_one_in_a_single_shard(tmp_path, monkeypatch):
    source = tmp_path / "pairs.tsv"
    _write_rows(source, 300, labelled=False)
    recipe = load_recipe(_recipe(tmp_path, source, "seq2seq"))
    built = {}
    for shard_tokens in ("400", str(1 << 26)):
        monkeypatch.setenv("KERAZOO_CACHE", str(tmp_path / f"cache{shard_tokens}"))
        monkeypatch.setenv("KERAZOO_SHARD_TOKENS", shard_tokens)
        built[shard_tokens] = seq2seq.prepare_pairs(recipe, None, lambda *_: None)
    many, one = built["400"], built[str(1 << 26)]
    with open(os.path.join(many["store"].path, "source", "manifest.json")) as f:
        assert f.read().count('"end_doc"') > 10  # many shards
    for split in ("train", "val"):
        for side in (0, 1):
            a, b = many[split][side], one[split][side]
            assert len(a) == len(b) > 0
            assert [r.tolist() for r in a.rows(0, len(a))] == [r.tolist() for r in b.rows(0, len(b))]
            # Windows across shard boundaries, and single rows.
            for start, stop in ((3, 41), (17, 18), (len(a) - 5, len(a) + 3)):
                assert [r.tolist() for r in a.rows(start, stop)] == [r.tolist() for r in b.rows(start, stop)]
            np.testing.assert_array_equal(np.concatenate(list(a.lengths(chunk=7))), np.concatenate(list(b.lengths())))
    n_val = len(one["val"][1])
    assert many["store"].texts("target", "val", 0, n_val) == one["store"].texts("target", "val", 0, n_val)


def test_sigkill_during_a_row_store_build_then_resume_gives_the_same_bytes(tmp_path, monkeypatch):
    source = tmp_path / "labelled.tsv"
    _write_rows(source, 10_000, labelled=True)
    path = _recipe(tmp_path, source, "classify")
    env = dict(os.environ, KERAZOO_CACHE=str(tmp_path / "cache"), KERAZOO_SHARD_TOKENS="5000")
    proc = subprocess.Popen([sys.executable, "-m", "kerazoo.cli", "prepare", path], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = tmp_path / "cache" / "rows"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        partial = list(root.glob("*.partial")) if root.exists() else []
        if partial and (partial[0] / "label" / "shard-00002.json").exists():  # "label" closes last
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed: " + proc.stdout.read()
    assert not [p for p in root.iterdir() if not p.name.endswith((".partial", ".lock"))], "no store is readable yet"
    # Damage the last shard every folder finished: the resume checks them and drops it.
    partial = list(root.glob("*.partial"))[0]
    last = 0
    while all((partial / d / f"shard-{last + 1:05d}.json").exists() for d in ("text", "label")):
        last += 1
    with open(partial / "text" / f"shard-{last:05d}.train.bin", "r+b") as f:
        f.truncate(3)

    monkeypatch.setenv("KERAZOO_CACHE", env["KERAZOO_CACHE"])
    monkeypatch.setenv("KERAZOO_SHARD_TOKENS", "5000")
    logs = []
    resumed = classify.row_store(load_recipe(path), None, logs.append)
    assert resumed.built
    assert any(f"dropping text/shard-{last:05d}" in line for line in logs), logs
    assert any(f"resuming a killed build after {last} finished shards" in line for line in logs), logs
    monkeypatch.setenv("KERAZOO_CACHE", str(tmp_path / "fresh"))
    fresh = classify.row_store(load_recipe(path), None, lambda *_: None)
    a, b = _files(resumed.path), _files(fresh.path)
    assert sorted(a) == sorted(b) and len([n for n in a if n.startswith("label/shard-")]) > 3 * 5
    assert [n for n in a if a[n] != b[n]] == []
