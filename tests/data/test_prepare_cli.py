"""``kerazoo prepare`` as a user runs it: a real subprocess, killed and resumed; train reuses the store."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kerazoo.data import store

WORDS = "the of and to in is was for on that with as by at from his her it an were".split()


MODELS = {"gpt": "max_length = 16\nnum_layers = 1\nnum_heads = 2\nhidden_dim = 16",
          "gru": "embed_dim = 8\nhidden_dim = 16\nnum_layers = 1"}


def recipe(tmp_path, source, arch="gpt", boundary="file"):
    path = tmp_path / f"{arch}.toml"
    path.write_text(f"""
name = "prep_{arch}"
[data]
source = "{source}"
boundary = "{boundary}"
[tokenizer]
kind = "unigram"
vocab_size = 200
sample_bytes = 100000
[model]
arch = "{arch}"
{MODELS[arch]}
[train]
seq_len = 16
batch_size = 4
steps = 4
eval_every = 2
warmup_steps = 1
eval_tokens = 2000
sample_tokens = 8
jit_compile = false
""")
    return str(path)


def run(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "kerazoo.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kw)


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, KERAZOO_CACHE=str(tmp_path / "cache"), KERAZOO_SHARD_TOKENS="20000")


def test_sigkill_during_prepare_then_resume(tmp_path, env):
    rng = np.random.default_rng(0)
    corpus = tmp_path / "big.txt"
    with open(corpus, "w") as f:
        for _ in range(120_000):  # about 3 MB, hundreds of thousands of tokens
            f.write(" ".join(rng.choice(WORDS, 6)) + "\n")
    path = recipe(tmp_path, corpus, boundary="line")
    proc = subprocess.Popen([sys.executable, "-m", "kerazoo.cli", "prepare", path], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stores = tmp_path / "cache" / "stores"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        partial = [p for p in stores.glob("*.partial")] if stores.exists() else []
        if partial and (partial[0] / "shard-00001.json").exists():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "prepare finished before it could be killed: " + proc.stdout.read()
    assert not [p for p in stores.iterdir() if not p.name.endswith((".partial", ".lock"))], "no store is readable yet"
    resumed = run(["prepare", path], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming a killed prepare after" in resumed.stdout
    folder = resumed.stdout.strip().splitlines()[-1].split()[2]
    assert store.verify(folder) is None
    # The resumed store holds the same ids as one built in one go.
    fresh_env = dict(env, KERAZOO_CACHE=str(tmp_path / "cache2"))
    fresh = run(["prepare", path], fresh_env)
    fresh_folder = fresh.stdout.strip().splitlines()[-1].split()[2]
    from kerazoo.data import open_stream

    for split in ("train", "val"):
        a, b = open_stream(folder, split), open_stream(fresh_folder, split)
        assert (a.n_tokens, a.n_bytes, a.n_docs) == (b.n_tokens, b.n_bytes, b.n_docs)
        np.testing.assert_array_equal(a.read(0, len(a)), b.read(0, len(b)))
    with open(os.path.join(folder, "manifest.json")) as f:
        assert len(json.load(f)["shards"]) > 2


def test_train_reuses_the_store_across_runs_and_archs(tmp_path, env):
    corpus = tmp_path / "c.txt.gz"
    import gzip

    rng = np.random.default_rng(1)
    corpus.write_bytes(gzip.compress("".join(" ".join(rng.choice(WORDS, 8)) + "\n" for _ in range(3000)).encode()))
    path = recipe(tmp_path, corpus)
    first = run(["prepare", path], env)
    assert first.returncode == 0 and "(built)" in first.stdout, first.stderr
    runs = str(tmp_path / "runs")
    gpt = run(["train", path, "--runs-dir", runs, "--quiet"], env)
    assert gpt.returncode == 0, gpt.stderr
    assert "token store: reusing" in gpt.stdout and "tokenizer: unigram with" in gpt.stdout
    assert "evaluating on 2,000 of" in gpt.stdout
    gru = run(["train", recipe(tmp_path, corpus, "gru"), "--runs-dir", runs, "--quiet"], env)
    assert gru.returncode == 0, gru.stderr
    assert "token store: reusing" in gru.stdout
    assert len([p for p in (tmp_path / "cache" / "stores").iterdir() if not p.name.endswith(".lock")]) == 1
