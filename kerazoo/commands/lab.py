"""``kerazoo bench``, ``curves``, ``leaderboard``, ``models`` and ``import-hf``: measuring and importing."""

import os

from kerazoo.commands.output import check_out


def _installed_backends():
    import importlib.util

    modules = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    return [b for b, m in modules.items() if importlib.util.find_spec(m) is not None]




def cmd_bench(args):
    """Runs ``kerazoo bench``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    backends = _installed_backends() if args.backend == "all" else args.backend.split(",")
    unknown = [b for b in backends if b not in ("tensorflow", "jax", "torch")]
    if unknown:
        raise ValueError(f"unknown backend '{unknown[0]}'; valid: tensorflow, jax, torch, all")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    suites = ["train", "generate", "serve"] if args.suite == "all" else [args.suite]
    for suite in suites:
        BENCH_SUITES[suite](args, backends)
    return 0


def _bench_train(args, backends):
    from kerazoo.lab import train_suite

    rows = train_suite.run_all(backends, args.steps or 20, args.repeats or 3)
    _write_bench(args.out, "train", rows, train_suite.markdown(rows))
    print(f"plot: {train_suite.plot(rows, os.path.join(args.out, 'train.png'))}")


def _bench_generate(args, backends):
    from kerazoo.lab import generate_suite

    models = [m for m in getattr(args, "models", ",".join(generate_suite.MODELS)).split(",") if m]
    unknown = [m for m in models if m not in generate_suite.MODELS]
    if unknown or not models:
        raise ValueError(f"unknown --models '{','.join(unknown)}'; valid: {','.join(generate_suite.MODELS)}")
    rows = generate_suite.run_all(backends, args.repeats or 2, models)
    _write_bench(args.out, "generate", rows, generate_suite.markdown(rows))


def _write_bench(out, suite, rows, table):
    """Writes a suite's JSON rows and Markdown table to ``out`` and prints the table."""
    from kerazoo.training.runs import write_json, write_text

    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"{suite}.{ext}") for ext in ("json", "md")]
    write_json(paths[0], rows)
    write_text(paths[1], table)
    print(table)
    print(f"results: {', '.join(paths)}")
    return 0


def _bench_serve(args, backends):
    # The SavedModel is TensorFlow's: this suite runs on the TensorFlow backend only.
    from kerazoo.lab import serve_suite

    rows = serve_suite.run({b: args.repeats for b in serve_suite.BATCHES} if args.repeats else None)
    _write_bench(args.out, "serve", rows, serve_suite.markdown(rows))


def _bench_data(args, backends):
    from kerazoo.commands.prepare import bench_data

    bench_data(args, backends)


def _bench_quantize(args, backends):
    from kerazoo.lab import quantize_suite

    quality = quantize_suite.quality(args.run) if args.run else None
    rows = quantize_suite.run_all(backends, args.repeats or 2)
    _write_bench(args.out, "quantize", rows + ([quality] if quality else []), quantize_suite.markdown(rows, quality))


def _bench_nanogpt(args, backends):
    from kerazoo.lab import nanogpt_suite

    if not args.nanogpt:
        raise ValueError("bench nanogpt needs --nanogpt DIR, a checkout of github.com/karpathy/nanoGPT")
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "..", "shared", "data", "tinyshakespeare.txt")
    source = os.environ.get("KERAZOO_SHAKESPEARE", source)
    rows = nanogpt_suite.run(args.nanogpt, backends, args.steps or 2000, args.repeats or 1, source, args.baseline)
    _write_bench(args.out, "nanogpt", rows, nanogpt_suite.markdown(rows))


BENCH_SUITES = {"train": _bench_train, "generate": _bench_generate, "serve": _bench_serve, "data": _bench_data,
                "quantize": _bench_quantize, "nanogpt": _bench_nanogpt}


def cmd_curves(args):
    """Runs ``kerazoo curves``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.lab import curves
    from kerazoo.training.runs import write_json

    backends = curves.parse_backends(args.backends)
    check_out(args.out)
    check_out(args.json)
    results = curves.run(args.recipe, backends, args.overrides, args.out)
    if args.json:
        write_json(args.json, results)
    print(f"plot: {args.out}")
    return 0


def cmd_leaderboard(args):
    """Runs ``kerazoo leaderboard``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.lab import leaderboard
    from kerazoo.training.runs import write_json, write_text

    archs = leaderboard.parse_archs(args.archs) if args.archs else None
    budget = args.tokens if args.tokens is not None else leaderboard.DEFAULT_TOKENS
    check_out(args.out)  # fails before training, not after it
    rows = leaderboard.run(args.source, archs, args.tokenizer, args.vocab_size, budget, args.runs_dir, args.overrides)
    os.makedirs(args.out, exist_ok=True)
    table = leaderboard.markdown(rows, args.source)
    write_json(os.path.join(args.out, "leaderboard.json"), rows)
    write_text(os.path.join(args.out, "leaderboard.md"), table)
    png = leaderboard.plot(rows, os.path.join(args.out, "leaderboard.png"), f"zoo leaderboard: {args.source}")
    print(table)
    print(f"results: {args.out}/leaderboard.json, .md; plot: {png}")
    return 0


def cmd_models(args):
    """Runs ``kerazoo models``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.models import list_archs

    for name, summary, rows in list_archs():
        print(f"{name}: {summary}")
        for hp, type_name, default, help_text in rows:
            print(f"    {hp:<20} {type_name:<9} default {default!r:<8} {help_text}")
    return 0


def cmd_import_hf(args):
    """Runs ``kerazoo import-hf``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.interop.hf import import_checkpoint

    import_checkpoint(args.checkpoint, name=args.name, runs_dir=args.runs_dir)
    return 0
