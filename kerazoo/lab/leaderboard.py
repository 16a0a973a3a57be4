"""The zoo leaderboard: every causal arch on one corpus, one tokenizer, one token budget.

``kerazoo leaderboard --source builtin:pydocs`` trains ``rnn``, ``gru``,
``lstm`` and ``gpt`` with the shipped ``pydocs_<arch>`` model settings, and
counts the ``ngram`` baseline (Kneser-Ney, the floor to beat), with one
shared tokenizer (trained once, on the first run) and the same number of
training tokens each, then ranks them by validation bits per byte: the one
figure that compares models across tokenizers and corpora.
"""

import dataclasses
import os

from kerazoo.training import recipes as recipes_lib
from kerazoo.training import runs
from kerazoo.models.registry import ARCHS

# Model and optimiser settings per arch: those of the shipped recipes
# (recipes/pydocs_<arch>.toml), so the leaderboard ranks what users train.
_RECURRENT = {"model": dict(embed_dim=128, hidden_dim=256, num_layers=1, dropout=0.0), "learning_rate": 3e-3}
ARCH_SETTINGS = {
    "rnn": _RECURRENT,
    "gru": _RECURRENT,
    "lstm": _RECURRENT,
    "gpt": {"model": dict(num_layers=4, num_heads=4, hidden_dim=128, max_length=128, dropout=0.0), "learning_rate": 2e-3},
    # gpt's size and schedule, with 2 key/value heads (no shipped pydocs recipe).
    "llama": {"model": dict(num_layers=4, num_heads=4, num_kv_heads=2, hidden_dim=128, max_length=128, dropout=0.0),
              "learning_rate": 2e-3},
    # The floor: Kneser-Ney counts of the same training tokens (its learning rate is unused).
    "ngram": {"model": dict(order=3), "learning_rate": 1e-3},
}
# Archs that are baselines to beat rather than models to pick; marked in the table.
FLOORS = ("ngram",)
SEQ_LEN = 128
BATCH_SIZE = 16
DEFAULT_TOKENS = 300 * BATCH_SIZE * SEQ_LEN  # the shipped recipes' 300 steps
CHECKS = 3  # validation checks per run


def causal_archs():
    """The registry's next-token archs that have leaderboard settings."""
    return [name for name, arch in ARCHS.items() if arch.causal and name in ARCH_SETTINGS]


def parse_archs(text):
    """``"lstm,gpt"`` -> ``["lstm", "gpt"]``, or a clear error."""
    archs = [a.strip() for a in text.split(",") if a.strip()]
    valid = causal_archs()
    bad = [a for a in archs if a not in valid]
    if bad or not archs:
        raise ValueError(f"--archs: unknown or non-causal arch '{(bad or [text])[0]}'; valid: {', '.join(valid)}")
    return archs


def steps_for(token_budget, batch_size=BATCH_SIZE, seq_len=SEQ_LEN):
    """Optimizer steps that spend ``token_budget`` training tokens, a multiple of ``CHECKS``.

    Raises:
        ValueError: the budget is smaller than ``CHECKS`` batches.
    """
    per_step = batch_size * seq_len
    steps = (token_budget // per_step) // CHECKS * CHECKS
    if steps < CHECKS:
        raise ValueError(f"--tokens {token_budget:,} is less than {CHECKS} batches of {batch_size}x{seq_len} tokens")
    return steps


def recipe_for(arch, source, tokenizer_kind, vocab_size, token_budget, overrides=(), tag=""):
    """The leaderboard recipe of one arch.

    ``--set train.seq_len=...`` / ``train.batch_size=...`` overrides change the
    window shape; the step count is then worked out from the token budget, so
    every arch still trains on the same number of tokens.

    Args:
        arch: a causal arch name.
        source: the corpus (``data.source``).
        tokenizer_kind: the shared tokenizer's kind.
        vocab_size: its vocabulary size (None: the kind's default).
        token_budget: training tokens.
        overrides: ``--set`` values applied to every arch's recipe.
        tag: name prefix of the runs.

    Returns:
        A validated ``Recipe``.
    """
    settings = ARCH_SETTINGS[arch]
    tokenizer = {"kind": tokenizer_kind}
    if vocab_size:
        tokenizer["vocab_size"] = vocab_size
    raw = {
        "name": f"{tag or 'leaderboard'}_{arch}",
        "data": {"source": source, "val_fraction": 0.1, "split": "auto", "seed": 0},
        "tokenizer": tokenizer,
        "model": {"arch": arch, **settings["model"]},
        "train": {
            "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "eval_batches": 10,
            "learning_rate": settings["learning_rate"], "min_lr_ratio": 0.1, "weight_decay": 0.01, "seed": 0,
            "sample_tokens": 16,
        },
    }
    if arch in FLOORS:
        # Neural settings (model.hidden_dim, ...) passed for every arch do not apply to a count baseline.
        own = {f"model.{f.name}" for f in dataclasses.fields(ARCHS[arch].config_cls)}
        overrides = [o for o in overrides if not o.startswith("model.") or o.split("=", 1)[0].strip() in own]
    raw = recipes_lib.apply_overrides(raw, list(overrides))
    train = raw["train"]
    if "steps" in train:
        raise recipes_lib.RecipeError("--set train.steps: the leaderboard sets steps from the token budget; use --tokens")
    steps = steps_for(token_budget, train["batch_size"], train["seq_len"])
    train.update(steps=steps, eval_every=steps // CHECKS)
    train.setdefault("warmup_steps", max(1, steps // 10))
    return recipes_lib.parse_recipe(raw, where=f"<leaderboard {arch}>")


def _row(metrics, path):
    keys = ("arch", "params", "tokenizer", "val_bits_per_byte", "val_loss", "train_seconds", "tokens_seen",
            "tokens_per_sec", "backend")
    return {**{k: metrics.get(k) for k in keys}, "run": path}


def run(source="builtin:pydocs", archs=None, tokenizer_kind="unigram", vocab_size=None, token_budget=DEFAULT_TOKENS,
        runs_dir="runs", overrides=(), log=print):
    """Trains every arch on one corpus with one tokenizer and one token budget.

    Args:
        source: the corpus, as ``data.source`` of a recipe.
        archs: arch names (default: every causal arch).
        tokenizer_kind: the shared tokenizer's kind (byte, char, unigram, ...).
        vocab_size: its vocabulary size (None: the kind's default).
        token_budget: training tokens per arch.
        runs_dir: where the run folders go.
        overrides: ``--set`` values applied to every recipe.
        log: where progress lines go.

    Returns:
        One dict per arch, best validation bits per byte first: ``arch,
        params, tokenizer, val_bits_per_byte, val_loss, train_seconds,
        tokens_seen, tokens_per_sec, backend, run``.
    """
    from kerazoo.training.runner import load_run, run_recipe

    archs = list(archs or causal_archs())
    tag = "lb_" + _slug(source)
    recipes = [recipe_for(a, source, tokenizer_kind, vocab_size, token_budget, overrides, tag) for a in archs]  # validate all first
    rows, tokenizer = [], None
    for recipe in recipes:
        t = recipe.train
        log(f"== {recipe.arch}: {t.steps} steps of {t.batch_size}x{t.seq_len} tokens on {source}")
        result = run_recipe(recipe, runs_dir, tokenizer=tokenizer, verbose=0, log=log)
        if tokenizer is None:
            tokenizer = load_run(result.path).tokenizer  # trained once, shared by the rest
        rows.append(_row(result.metrics, result.path))
    return sorted(rows, key=lambda r: r["val_bits_per_byte"])


def _slug(source):
    """A run-name-safe short form of a corpus source."""
    stem = os.path.splitext(os.path.basename(source.rstrip("/")))[0] or "corpus"
    stem = stem.split(":")[-1]
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in stem)[:40]


def markdown(rows, source=""):
    """The leaderboard as a Markdown table.

    Args:
        rows: ``run`` output.
        source: the corpus, for the caption.

    Returns:
        The table text.
    """
    lines = []
    if source and rows:
        lines += [f"{source}, {rows[0]['tokenizer']} tokenizer, {rows[0]['tokens_seen']:,} training tokens per arch, "
                  f"{rows[0]['backend']} backend:", ""]
    lines += [
        "| rank | arch | params | val bits/byte | val loss (nats/token) | train time (s) | train tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | {r['arch'] + (' (floor)' if r['arch'] in FLOORS else '')} | {r['params']:,} | {r['val_bits_per_byte']:.4f} | {r['val_loss']:.4f} | "
            f"{r['train_seconds']:.0f} | {r['tokens_per_sec']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, path, title="zoo leaderboard"):
    """Plots validation bits per byte against parameters and against training time.

    Args:
        rows: ``run`` output.
        path: the PNG file to write.
        title: the figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "train_seconds", "training time (s)")):
        for r in rows:
            ax.scatter(r[key], r["val_bits_per_byte"], s=40)
            ax.annotate(r["arch"], (r[key], r["val_bits_per_byte"]), textcoords="offset points", xytext=(5, 5))
        ax.set_xscale("log")
        ax.margins(0.15)  # room for the labels at the edges
        ax.set_xlabel(label + " (log scale)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("validation bits per byte (lower is better)")
    fig.suptitle(title)
    fig.tight_layout()
    return runs.save_figure(fig, path, dpi=110)
