"""``kerazoo bench data``: prepare throughput and peak memory beside the raw tokenizer library.

For each corpus size, a corpus is made by repeating real text (the files of
``KERAZOO_BENCH_TEXT``, by default the reference data of ``/work/shared/data``;
CPython's documentation when that is absent), one SentencePiece unigram
tokenizer is trained once on the unrepeated text, and then, each in its own
process so that peak RSS is that process's own:

- ``kerazoo prepare`` builds the token store from scratch (read, split,
  encode on every core, write shards);
- SentencePiece's own encoder (``SentencePieceProcessor.encode`` with a
  thread per core) encodes the same text in 1 MB pieces: the ceiling any
  pipeline on top of that library can reach;
- optionally (``steps``), ``kerazoo train`` runs a few steps of a small gpt
  from the store.

The ratio is measured side by side in one run, so the machine's load mostly
cancels; absolute MB/s depend on it.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

DEFAULT_TEXT = "/work/shared/data"
VOCAB_SIZE = 4096
_UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9}


def parse_sizes(text):
    """``"10MB,100MB,1GB"`` -> byte counts.

    Raises:
        ValueError: a size that is not a number with KB, MB or GB.
    """
    sizes = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB)\s*", part, re.IGNORECASE)
        if not m:
            raise ValueError(f"--sizes: '{part}' is not a size such as 10MB or 1GB")
        sizes.append(int(float(m.group(1)) * _UNITS[m.group(2).upper()]))
    return sizes


def base_text():
    """The real text the corpora repeat, and where it came from."""
    root = os.environ.get("KERAZOO_BENCH_TEXT", DEFAULT_TEXT)
    paths = sorted(glob.glob(os.path.join(root, "*.txt")) + glob.glob(os.path.join(root, "*.tsv"))) \
        if os.path.isdir(root) else ([root] if os.path.isfile(root) else [])
    if paths:
        return "".join(open(p, encoding="utf-8", errors="replace").read() for p in paths), ", ".join(
            os.path.basename(p) for p in paths)
    from pydoc_data import topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics)), "builtin:pydocs"


def write_corpus(path, text, size):
    """Writes ``size`` bytes (about) of ``text`` repeated, cut at a line end."""
    data = text.encode("utf-8")
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = data[: size - written]
            if len(chunk) < len(data):
                chunk = chunk[: chunk.rfind(b"\n") + 1] or chunk
            f.write(chunk)
            written += len(chunk)
            if len(chunk) < len(data):
                break
    return os.path.getsize(path)


def measure(cmd, env):
    """Runs a command; returns ``(seconds, peak RSS in MB, stdout)`` of that process alone.

    Raises:
        RuntimeError: when it fails, with its last lines.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {out.strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1024, out


RAW_ENCODER = r"""
import sys, time, sentencepiece as spm, os
sp = spm.SentencePieceProcessor(model_proto=open(sys.argv[1], "rb").read())
threads, total, tokens, started = os.cpu_count(), 0, 0, time.perf_counter()
with open(sys.argv[2], encoding="utf-8", newline="") as f:
    while True:
        pieces = [p for p in (f.read(1 << 20) for _ in range(threads * 4)) if p]
        if not pieces:
            break
        total += sum(len(p.encode()) for p in pieces)
        tokens += sum(len(ids) for ids in sp.encode(pieces, num_threads=threads))
print(total, tokens, time.perf_counter() - started)
"""


def _recipe(folder, corpus, tokenizer_dir, steps):
    path = os.path.join(folder, "bench_data.toml")
    with open(path, "w") as f:
        f.write(f"""name = "bench_data"
[data]
source = "{corpus}"
boundary = "blank_line"
[tokenizer]
kind = "unigram"
path = "{tokenizer_dir}"
[model]
arch = "gpt"
max_length = 128
num_layers = 2
num_heads = 2
hidden_dim = 64
[train]
seq_len = 128
batch_size = 16
steps = {max(steps, 2)}
eval_every = {max(steps, 2)}
eval_batches = 2
eval_tokens = 20000
warmup_steps = 1
sample_tokens = 8
""")
    return path


def run_one(size, text, tokenizer_dir, proto_path, folder, steps=0):
    """Measures prepare, the raw encoder (and optionally train) on one corpus size."""
    corpus = os.path.join(folder, f"corpus-{size}.txt")
    actual = write_corpus(corpus, text, size)
    env = dict(os.environ, KERAZOO_CACHE=os.path.join(folder, f"cache-{size}"))
    recipe = _recipe(folder, corpus, tokenizer_dir, steps)
    prep_s, prep_rss, prep_out = measure([sys.executable, "-m", "kerazoo.cli", "prepare", recipe], env)
    encode = re.search(r"encoded [\d.]+ MB in [\d.]+s \(([\d.]+) MB/s", prep_out)
    raw_s, raw_rss, raw_out = measure([sys.executable, "-c", RAW_ENCODER, proto_path, corpus], env)
    raw_bytes, raw_tokens, raw_encode_s = raw_out.split()[-3:]
    row = {
        "corpus_mb": round(actual / 1e6, 1),
        "prepare_seconds": round(prep_s, 1),
        "prepare_mb_per_s": round(actual / 1e6 / prep_s, 2),
        "prepare_peak_rss_mb": round(prep_rss),
        # The encoding stage alone, as prepare's own log line reports it
        # (without the process start, the framework import and the split pass).
        "prepare_encode_mb_per_s": float(encode.group(1)) if encode else None,
        "raw_encode_seconds": round(float(raw_encode_s), 1),
        "raw_mb_per_s": round(int(raw_bytes) / 1e6 / float(raw_encode_s), 2),
        "raw_peak_rss_mb": round(raw_rss),
        "raw_tokens": int(raw_tokens),
    }
    row["prepare_vs_raw"] = round(row["prepare_mb_per_s"] / row["raw_mb_per_s"], 2)
    if steps:
        train_s, train_rss, _ = measure([sys.executable, "-m", "kerazoo.cli", "train", recipe, "--quiet",
                                         "--runs-dir", os.path.join(folder, f"runs-{size}")], env)
        row.update(train_steps=steps, train_seconds=round(train_s, 1), train_peak_rss_mb=round(train_rss))
    os.unlink(corpus)
    shutil.rmtree(env["KERAZOO_CACHE"], ignore_errors=True)
    return row


def run_all(sizes, out, steps=0, log=print):
    """Runs every size; returns the rows (one per size)."""
    from kerazoo import text as tokenizers

    text, origin = base_text()
    log(f"bench data: corpora repeat {len(text.encode()) / 1e6:.1f} MB of {origin}")
    # The system temp folder, never --out: the corpora and stores there are large and transient.
    folder = tempfile.mkdtemp(prefix="kerazoo-bench-data-")
    try:
        tokenizer = tokenizers.train_tokenizer([text[:20_000_000]], "unigram", VOCAB_SIZE, max_size=True)
        tokenizer_dir = os.path.join(folder, "tokenizer")
        tokenizers.save_tokenizer(tokenizer, tokenizer_dir)
        proto_path = os.path.join(folder, "tokenizer.model")
        with open(proto_path, "wb") as f:
            f.write(tokenizer.proto)
        rows = []
        for size in sizes:
            rows.append(dict(run_one(size, text, tokenizer_dir, proto_path, folder, steps), text=origin,
                             tokenizer=f"unigram {tokenizer.vocabulary_size()}", cpus=os.cpu_count()))
            log(json.dumps(rows[-1]))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def markdown(rows):
    """The results as a Markdown table."""
    head = ("| corpus MB | prepare MB/s (end to end) | prepare encode stage MB/s | SentencePiece encode MB/s | "
            "ratio (end to end) | prepare peak RSS MB | encoder peak RSS MB | train peak RSS MB (steps) |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['corpus_mb']} | {r['prepare_mb_per_s']} | {r['prepare_encode_mb_per_s']} | {r['raw_mb_per_s']} | "
             f"{r['prepare_vs_raw']} | "
             f"{r['prepare_peak_rss_mb']} | {r['raw_peak_rss_mb']} | "
             + (f"{r['train_peak_rss_mb']} ({r['train_steps']})" if "train_peak_rss_mb" in r else "–") + " |"
             for r in rows]
    return head + "\n".join(lines) + "\n"
