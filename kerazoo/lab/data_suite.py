"""``kerazoo bench data``: prepare throughput and peak memory beside the raw tokenizer library.

For each corpus size, a corpus is made by repeating real text (the files of
``KERAZOO_BENCH_TEXT``, by default the reference data of ``/work/shared/data``;
CPython's documentation when that is absent), one SentencePiece unigram
tokenizer is trained once on the unrepeated text, and then, each in its own
process so that peak RSS is that process's own:

- ``kerazoo prepare`` builds the token store from scratch (read, split,
  encode on every core, write shards);
- the two floors, on the same text (its first ``FLOOR_BYTES``) in 1 MB
  pieces with a thread per core: SentencePiece's own encoder
  (``SentencePieceProcessor.encode``), the ceiling any pipeline on top of
  that library can reach, and the tokenizer layer's TensorFlow op alone,
  the ceiling for ids identical to the layer's (what ``prepare`` runs for
  unigram, see ``kerazoo.data.encoders``), on the 1 MB pieces and on them
  cut as prepare cuts them (``op_mb_per_s``);
- optionally (``steps``), ``kerazoo train`` runs a few steps of a small gpt
  from the store.

Each tokenizer kind of ``kinds`` (default unigram and bpe) is one row per
size. The ratio is measured side by side in one run, so the machine's load
mostly cancels; absolute MB/s depend on it. Peak RSS is read by a small
launcher process (``LAUNCHER``): a child forked straight from this process
would count this process's own memory in its peak.
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
KINDS = ("unigram", "bpe")
# The floors are rates: they are measured on at most this much of each corpus.
FLOOR_BYTES = 300_000_000
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


# Runs a command and prints its peak RSS (KiB) last. Started from this small
# process, the command's peak is its own: a child of the (large) bench process
# would carry the parent's resident pages into its ru_maxrss across exec.
LAUNCHER = r"""
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
sys.stdout.flush()
print("kerazoo-bench-peak-rss-kb", usage.ru_maxrss, flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(cmd, env):
    """Runs a command; returns ``(seconds, peak RSS in MB, stdout)`` of that process alone.

    Raises:
        RuntimeError: when it fails, with its last lines.
    """
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    out = proc.stdout
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {out.strip()[-500:]}")
    peak = re.findall(r"kerazoo-bench-peak-rss-kb (\d+)", out)
    return seconds, int(peak[-1]) / 1024, out


RAW_ENCODER = r"""
import sys, time, sentencepiece as spm, os
sp = spm.SentencePieceProcessor(model_proto=open(sys.argv[1], "rb").read())
threads, limit, total, tokens, started = os.cpu_count(), int(sys.argv[3]), 0, 0, time.perf_counter()
with open(sys.argv[2], encoding="utf-8", newline="") as f:
    while total < limit:
        pieces = [p for p in (f.read(1 << 20) for _ in range(threads * 4)) if p]
        if not pieces:
            break
        total += sum(len(p.encode()) for p in pieces)
        tokens += sum(len(ids) for ids in sp.encode(pieces, num_threads=threads))
print(total, tokens, time.perf_counter() - started)
"""

# The tokenizer layer's own op (TF Text's SentencePiece kernel), one thread per
# core, on the same 1 MB pieces as the library and then on those pieces cut as
# prepare cuts them for the op (``encoders.cut_after_newlines``).
OP_ENCODER = r"""
import concurrent.futures, os, sys, time
import tensorflow as tf
from kerazoo import text
from kerazoo.data import encoders
tokenizer = text.load_tokenizer(sys.argv[1])
tokenizer.tokenize(tf.constant(["warm up"]))
threads, limit = os.cpu_count(), int(sys.argv[3])
count = lambda pieces: int(tokenizer.tokenize(tf.constant(pieces)).flat_values.shape[0])
for cut in (0, encoders.CUT_CHARS):
    total, tokens, started = 0, 0, time.perf_counter()
    with open(sys.argv[2], encoding="utf-8", newline="") as f, concurrent.futures.ThreadPoolExecutor(threads) as pool:
        while total < limit:
            pieces = [p for p in (f.read(1 << 20) for _ in range(threads * 4)) if p]
            if not pieces:
                break
            total += sum(len(p.encode()) for p in pieces)
            calls = [encoders.cut_after_newlines(p, cut) if cut else [p] for p in pieces]
            tokens += sum(pool.map(count, calls))
    print(total, tokens, time.perf_counter() - started)
"""


def _floor(script, model, corpus, env):
    """A floor's ``([MB/s per measurement], peak RSS MB, tokens)`` on the first ``FLOOR_BYTES`` of the corpus."""
    _, rss, out = measure([sys.executable, "-c", script, model, corpus, str(FLOOR_BYTES)], env)
    lines = [line.split() for line in out.split("kerazoo-bench-peak-rss-kb")[0].splitlines()]
    figures = [(int(n), int(t), float(sec)) for n, t, sec in (line for line in lines if len(line) == 3
                                                              and line[0].isdigit() and line[1].isdigit())]
    return [round(n / 1e6 / sec, 2) for n, _, sec in figures], round(rss), figures[0][1]


def _recipe(folder, corpus, tokenizer_dir, steps, kind="unigram"):
    path = os.path.join(folder, f"bench_data_{kind}.toml")
    with open(path, "w") as f:
        f.write(f"""name = "bench_data"
[data]
source = "{corpus}"
boundary = "blank_line"
[tokenizer]
kind = "{kind}"
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


def run_one(size, text, tokenizers_dirs, folder, steps=0):
    """Measures prepare and the two floors (and optionally train) on one corpus size, per tokenizer kind.

    Args:
        tokenizers_dirs: ``{kind: (tokenizer folder, SentencePiece model file)}``.

    Returns:
        One row per kind; ``train_*`` on the first kind's row only.
    """
    corpus = os.path.join(folder, f"corpus-{size}.txt")
    actual = write_corpus(corpus, text, size)
    rows = []
    try:
        for kind, (tokenizer_dir, proto_path) in tokenizers_dirs.items():
            env = dict(os.environ, KERAZOO_CACHE=os.path.join(folder, f"cache-{size}-{kind}"))
            recipe = _recipe(folder, corpus, tokenizer_dir, steps, kind)
            prep_s, prep_rss, prep_out = measure([sys.executable, "-m", "kerazoo.cli", "prepare", recipe], env)
            encode = re.search(r"encoded [\d.]+ MB in [\d.]+s \(([\d.]+) MB/s, (\w+) on", prep_out)
            (raw_mb_s,), raw_rss, raw_tokens = _floor(RAW_ENCODER, proto_path, corpus, env)
            (op_whole_mb_s, op_mb_s), op_rss, _ = _floor(OP_ENCODER, tokenizer_dir, corpus, env)
            row = {
                "kind": kind,
                "corpus_mb": round(actual / 1e6, 1),
                "prepare_seconds": round(prep_s, 1),
                "prepare_mb_per_s": round(actual / 1e6 / prep_s, 2),
                "prepare_peak_rss_mb": round(prep_rss),
                # The encoding stage alone, as prepare's own log line reports it
                # (without the process start, the framework import and the split pass).
                "prepare_encode_mb_per_s": float(encode.group(1)) if encode else None,
                "prepare_engine": encode.group(2) if encode else None,
                "raw_mb_per_s": raw_mb_s,
                "raw_peak_rss_mb": raw_rss,
                "raw_tokens_in_floor": raw_tokens,
                "op_mb_per_s": op_mb_s,
                "op_1mb_pieces_mb_per_s": op_whole_mb_s,
                "op_peak_rss_mb": op_rss,
                "floor_mb": round(min(actual, FLOOR_BYTES) / 1e6, 1),
            }
            row["prepare_vs_raw"] = round(row["prepare_mb_per_s"] / raw_mb_s, 2)
            if encode:
                row["encode_vs_raw"] = round(row["prepare_encode_mb_per_s"] / raw_mb_s, 2)
            if steps and not rows:
                train_s, train_rss, _ = measure([sys.executable, "-m", "kerazoo.cli", "train", recipe, "--quiet",
                                                 "--runs-dir", os.path.join(folder, f"runs-{size}")], env)
                row.update(train_steps=steps, train_seconds=round(train_s, 1), train_peak_rss_mb=round(train_rss))
            shutil.rmtree(env["KERAZOO_CACHE"], ignore_errors=True)
            rows.append(row)
    finally:
        os.unlink(corpus)
    return rows


def run_all(sizes, out, steps=0, log=print, kinds=KINDS):
    """Runs every size and tokenizer kind; returns the rows (one per size and kind)."""
    from kerazoo import text as tokenizers

    text, origin = base_text()
    log(f"bench data: corpora repeat {len(text.encode()) / 1e6:.1f} MB of {origin}")
    # The system temp folder, never --out: the corpora and stores there are large and transient.
    folder = tempfile.mkdtemp(prefix="kerazoo-bench-data-")
    try:
        dirs, names = {}, {}
        for kind in kinds:
            tokenizer = tokenizers.train_tokenizer([text[:20_000_000]], kind, VOCAB_SIZE, max_size=True)
            dirs[kind] = (os.path.join(folder, f"tokenizer-{kind}"), os.path.join(folder, f"{kind}.model"))
            tokenizers.save_tokenizer(tokenizer, dirs[kind][0])
            with open(dirs[kind][1], "wb") as f:
                f.write(tokenizer.proto)
            names[kind] = f"{kind} {tokenizer.vocabulary_size()}"
        rows = []
        for size in sizes:
            for row in run_one(size, text, dirs, folder, steps):
                rows.append(dict(row, text=origin, tokenizer=names[row["kind"]], cpus=os.cpu_count()))
                log(json.dumps(rows[-1]))
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def markdown(rows):
    """The results as a Markdown table."""
    head = ("| tokenizer | corpus MB | prepare MB/s (end to end) | encode stage MB/s (engine) | "
            "SentencePiece library MB/s | layer's op MB/s (on 1 MB pieces) | end to end / library | encode stage / library | "
            "prepare peak RSS MB | library peak RSS MB | train peak RSS MB (steps) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r.get('tokenizer', '')} | {r['corpus_mb']} | {r['prepare_mb_per_s']} | "
             f"{r['prepare_encode_mb_per_s']} ({r.get('prepare_engine', '')}) | {r['raw_mb_per_s']} | "
             f"{r.get('op_mb_per_s', '–')} ({r.get('op_1mb_pieces_mb_per_s', '–')}) | {r['prepare_vs_raw']} | {r.get('encode_vs_raw', '–')} | "
             f"{r['prepare_peak_rss_mb']} | {r['raw_peak_rss_mb']} | "
             + (f"{r['train_peak_rss_mb']} ({r['train_steps']})" if "train_peak_rss_mb" in r else "–") + " |"
             for r in rows]
    return head + "\n".join(lines) + "\n"
