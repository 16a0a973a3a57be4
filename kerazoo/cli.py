"""The ``kerazoo`` command.

    kerazoo train RECIPE.toml [--set section.key=value ...] [--resume]
    kerazoo compare RECIPE.toml ... [--out table.md]
    kerazoo report RUN_DIR ...
    kerazoo generate RUN_DIR --prompt TEXT [--temperature T]
    kerazoo translate RUN_DIR --text TEXT | --file FILE [--num-beams N]
    kerazoo export RUN_DIR [--name NAME] [--base-dir saved_models]
    kerazoo predict EXPORT_DIR BODY_JSON
    kerazoo bench train|generate|serve|all [--backend ...] [--out DIR]
    kerazoo leaderboard [--source builtin:pydocs] [--tokenizer unigram] [--tokens N] [--out DIR]
    kerazoo soak EXPORT_DIR [--minutes M | --seconds S] [--concurrency N] [--out FILE]
    kerazoo curves RECIPE.toml [--backends tensorflow,jax,torch] [--out plot.png]
    kerazoo import-hf CHECKPOINT_DIR --name NAME [--runs-dir runs]
    kerazoo classify RUN_DIR --text TEXT [--text TEXT ...]
    kerazoo models

A user's mistake prints one line on stderr and exits with status 2, with no
traceback (set KERAZOO_DEBUG=1 to see one).
"""

import argparse
import os
import sys

# Framework log defaults before any framework loads (also done by kerazoo/__init__.py).
from kerazoo import quiet  # noqa: F401

USER_ERROR = 2
SAMPLERS = ("greedy", "temperature", "top_k", "top_p", "beam")


def _add_train_args(p):
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")


def _parser():
    parser = argparse.ArgumentParser(prog="kerazoo", description="A Keras 3 model zoo of language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe end to end and leave a run folder")
    p.add_argument("recipe", help="a recipe .toml file")
    _add_train_args(p)
    p.add_argument("--resume", action="store_true", help="continue the unfinished run of this recipe")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("compare", help="train several recipes with one shared tokenizer and print a table")
    p.add_argument("recipes", nargs="+", help="recipe .toml files")
    _add_train_args(p)
    p.add_argument("--out", help="also write the Markdown table to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("translate", help="translate texts with a trained seq2seq model (cached greedy or beam decoding)")
    p.add_argument("run", help="a seq2seq run folder or .keras file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to translate (repeatable; decoded as one batch)")
    source.add_argument("--file", help="a file with one text per line; prints JSON lines")
    p.add_argument("--max-new-tokens", type=int, default=None, help="output tokens at most (default: the model's target context - 1)")
    p.add_argument("--num-beams", type=int, default=1, help="1: greedy decoding; more: beam search")

    p = sub.add_parser("report", help="print the Markdown table of finished runs")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--out", help="also write the table to this file")

    p = sub.add_parser("generate", help="continue prompts with a trained model (cached, compiled decoding)")
    p.add_argument("run", help="a run folder or a .keras file")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompt", default="", help="text to continue, streamed as it is decoded (default: empty)")
    source.add_argument("--prompts-file", help="a file with one prompt per line, decoded as one batch; prints JSON lines")
    source.add_argument("--interactive", action="store_true", help="read prompts from the terminal, one per line")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="default: greedy, or temperature sampling when --temperature is given")
    p.add_argument("--temperature", type=float, default=None, help="softmax temperature of the sampling kinds (default 1)")
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--num-beams", type=int, default=4)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable); output ends before it")
    p.add_argument("--seed", type=int, default=None, help="sampler seed, for reproducible samples")
    p.add_argument("--no-stream", action="store_true", help="print the whole continuation at the end")

    p = sub.add_parser("export", help="write a TF Serving SavedModel (text in, text out) to saved_models/NAME/VERSION")
    p.add_argument("run", help="a run folder or a .keras file")
    p.add_argument("--name", help="the served model's name (default: the run folder's name)")
    p.add_argument("--base-dir", default="saved_models", help="the models' base folder (default: saved_models)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="new tokens of the 'greedy' signature (default 64)")
    p.add_argument("--max-new-tokens-cap", type=int, default=None,
                   help="most new tokens a request may ask for (default: context - 1; 1024 for RNNs)")

    p = sub.add_parser("predict", help="answer a TF Serving REST :predict JSON body with an export, in-process")
    p.add_argument("export_dir", help="a version folder, e.g. saved_models/pydocs_gpt/1")
    p.add_argument("body", help='the JSON body, e.g. \'{"instances": [{"prompts": "def"}], "signature_name": "greedy"}\'')

    p = sub.add_parser("soak", help="send continuous generate requests to an export for a while and watch its memory")
    p.add_argument("export_dir", help="a version folder, e.g. saved_models/pydocs_gpt/1")
    span = p.add_mutually_exclusive_group()
    span.add_argument("--minutes", type=float, help="how long to run (default: 20 minutes)")
    span.add_argument("--seconds", type=float, help="how long to run, in seconds (for a quick check)")
    p.add_argument("--concurrency", type=int, default=1, help="threads sending requests at once (default 1)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between memory samples (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=16, help="most new tokens a request asks for (default 16)")
    p.add_argument("--tolerance-mb", type=float, default=16.0,
                   help="RSS growth after warm-up still counted as none (default 16 MB, and at least 2%%)")
    p.add_argument("--out", help="also write the report (with every RSS sample) to this JSON file")

    p = sub.add_parser("bench", help="measure speed side by side with a peer, in one run")
    p.add_argument("suite", choices=["train", "generate", "serve", "all"],
                   help="train: model.fit tokens/s and MFU vs keras_hub GPT2 and a plain Keras LSTM; "
                        "generate: cached decoding vs keras_hub GPT2CausalLM.generate; "
                        "serve: the exported SavedModel vs in-process generation; all: the three in turn")
    p.add_argument("--backend", default="all",
                   help="tensorflow, jax, torch, a comma-separated list, or all (default; skips backends not installed)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per setting; the best is kept (default: 2 for generate, 3 for train)")
    p.add_argument("--steps", type=int, default=20, help="train: optimizer steps per timed fit (default: 20)")
    p.add_argument("--out", default="bench", help="folder for the JSON and Markdown results (default: bench)")

    p = sub.add_parser("curves", help="train one recipe on several backends and plot their loss curves side by side")
    p.add_argument("recipe", help="a recipe .toml file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value on every backend (repeatable)")
    p.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated (default: all three)")
    p.add_argument("--out", default="backends_curves.png", help="the image to write (default: backends_curves.png)")
    p.add_argument("--json", help="also write the histories and metrics to this JSON file")

    p = sub.add_parser("import-hf", help="import a local Hugging Face checkpoint folder (BERT, GPT-2) into a run folder")
    p.add_argument("checkpoint", help="a folder with config.json, model.safetensors or pytorch_model.bin, vocab.txt")
    p.add_argument("--name", help="the run name (default: the folder's name)")
    p.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")

    p = sub.add_parser("classify", help="classify texts with a classifier run; prints JSON lines")
    p.add_argument("run", help="a classifier run folder or .keras file")
    p.add_argument("--text", action="append", required=True, help="a text to classify (repeatable)")

    p = sub.add_parser("leaderboard", help="train every causal arch on one corpus, one tokenizer, one token budget; rank and plot")
    p.add_argument("--source", default="builtin:pydocs", help="the corpus, as data.source of a recipe (default: builtin:pydocs)")
    p.add_argument("--archs", default="", help="comma-separated causal archs (default: all of them)")
    p.add_argument("--tokenizer", default="unigram", help="the shared tokenizer's kind (default: unigram)")
    p.add_argument("--vocab-size", type=int, default=None, help="its vocabulary size (default: the kind's)")
    p.add_argument("--tokens", type=int, default=None, help="training tokens per arch (default: 300 steps of 16x128)")
    _add_train_args(p)
    p.add_argument("--out", default="leaderboard", help="folder for leaderboard.json, .md and .png (default: leaderboard)")

    sub.add_parser("models", help="list the architectures and their hyper-parameters")
    return parser


def _cmd_train(args):
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.runner import run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    result = run_recipe(recipe, args.runs_dir, resume=args.resume, verbose=0 if args.quiet else 1)
    _print_result(result)
    return 0


def _print_result(result):
    m = result.metrics
    task = m.get("task", "causal_lm")
    if task == "seq2seq":
        print(f"held out ({m['val_pairs']:,} pairs): loss {m['val_loss']:.4f} nats/token | "
              f"BLEU {m['val_bleu']:.2f} | ROUGE-1 {m['val_rouge1']:.4f} | ROUGE-2 {m['val_rouge2']:.4f} | "
              f"ROUGE-L {m['val_rougeL']:.4f}")
        print(f"training: {m['steps']} steps, {m['pairs_seen']:,} pairs, {(m['pairs_per_sec'] or 0):,.0f} pairs/s, "
              f"{m['wall_seconds']:.0f}s")
        print(f"sample: {result.sample!r}")
        print(f"run folder: {result.path}")
        return
    if task == "masked_lm":
        print(f"validation: masked-token loss {m['val_loss']:.4f} nats | perplexity {m['val_perplexity']:.2f} | "
              f"masked-token accuracy {m['val_masked_accuracy']:.2%}")
    elif task == "classify":
        print(f"validation: accuracy {m['val_accuracy']:.2%} | macro-F1 {m['val_macro_f1']:.4f} "
              f"over {m['val_rows']:,} rows")
    elif "val_bits_per_byte" in m:
        print(f"validation: loss {m['val_loss']:.4f} nats/token | perplexity {m['val_perplexity']:.2f} | "
              f"{m['val_bits_per_byte']:.4f} bits/byte")
    if "texts_seen" in m:
        print(f"training: {m['steps']} steps, {m['texts_seen']:,} texts, "
              f"{(m['texts_per_sec'] or 0):,.1f} texts/s, {m['wall_seconds']:.0f}s")
    else:
        print(f"training: {m['steps']} steps, {m['tokens_seen']:,} tokens, "
              f"{(m['tokens_per_sec'] or 0):,.0f} tokens/s, {m['wall_seconds']:.0f}s")
    if task == "causal_lm":
        print(f"sample: {result.sample!r}")
    print(f"run folder: {result.path}")


def _cmd_compare(args):
    from kerazoo.lab import report
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.runner import run_recipe

    _check_out(args.out)
    recipes = [load_recipe(path, args.overrides) for path in args.recipes]  # validate all first
    shared, key, paths = None, None, []
    for recipe in recipes:
        this_key = (recipe.data, recipe.tokenizer)
        tokenizer = shared if this_key == key else None
        print(f"== {recipe.name} ({recipe.arch})")
        result = run_recipe(recipe, args.runs_dir, tokenizer=tokenizer, verbose=0 if args.quiet else 1)
        _print_result(result)
        from kerazoo.training.runner import load_run

        shared, key = load_run(result.path).tokenizer, this_key
        paths.append(result.path)
    return _emit_table(report.markdown_table(paths), args.out)


def _emit_table(table, out):
    print(table)
    if out:
        from kerazoo.training.runs import write_text

        write_text(out, table)
    return 0


def _check_out(out):
    """Fails early when --out points into a folder that does not exist."""
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ValueError(f"--out {out}: folder {os.path.dirname(os.path.abspath(out))} does not exist")


def _cmd_report(args):
    from kerazoo.lab import report

    _check_out(args.out)
    return _emit_table(report.markdown_table(args.runs), args.out)


def _sampling_kwargs(args):
    """generate()/stream() keyword arguments from the command line."""
    return dict(
        max_new_tokens=args.max_new_tokens, sampler=args.sampler, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, stop=args.stop, seed=args.seed,
    )


def _stream_one(model, prompt, kwargs, no_stream):
    """Prints a prompt and its continuation, piece by piece as decoded.

    The first piece is produced before anything is printed, so bad settings
    fail without leaving the prompt half-printed on stdout.
    """
    from kerazoo.inference.generate import generate, stream

    if no_stream or kwargs["sampler"] == "beam":
        text = generate(model, prompt, **kwargs)
        print(prompt + text, flush=True)
        return
    pieces = stream(model, prompt, **{k: v for k, v in kwargs.items() if k != "num_beams"})
    first = next(pieces, "")
    print(prompt + first, end="", flush=True)
    for piece in pieces:
        print(piece, end="", flush=True)
    print(flush=True)


def _read_prompts(path):
    if not os.path.isfile(path):
        raise ValueError(f"prompts file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            prompts = [line.rstrip("\n") for line in f]
    except UnicodeDecodeError:
        raise ValueError(f"prompts file {path} is not UTF-8 text") from None
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise ValueError(f"prompts file {path} holds no prompts")
    return prompts


def _cmd_generate(args):
    import json

    from kerazoo.inference.generate import generate
    from kerazoo.training.runner import load_run

    model = load_run(args.run)
    kwargs = _sampling_kwargs(args)
    kwargs["num_beams"] = args.num_beams
    if args.prompts_file:
        prompts = _read_prompts(args.prompts_file)
        for prompt, text in zip(prompts, generate(model, prompts, **kwargs)):
            print(json.dumps({"prompt": prompt, "completion": text}, ensure_ascii=False))
        return 0
    if args.interactive:
        print("kerazoo: type a prompt and press Enter; an empty line or Ctrl-D quits.", file=sys.stderr)
        while True:
            try:
                prompt = input("> ")
            except EOFError:
                break
            if not prompt:
                break
            _stream_one(model, prompt, kwargs, args.no_stream)
        return 0
    _stream_one(model, args.prompt, kwargs, args.no_stream)
    return 0


def _cmd_translate(args):
    import json

    from kerazoo.training.runner import load_run
    from kerazoo.inference.translate import translate

    model = load_run(args.run)
    texts = _read_prompts(args.file) if args.file else args.text
    if not texts:
        raise ValueError(f"{args.file} holds no texts")
    max_new_tokens = args.max_new_tokens or getattr(model, "max_length", 2) - 1
    outputs = translate(model, texts, max_new_tokens=max_new_tokens, num_beams=args.num_beams)
    for text, output in zip(texts, outputs):
        print(json.dumps({"text": text, "translation": output}, ensure_ascii=False) if args.file else output)
    return 0


def _installed_backends():
    import importlib.util

    modules = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    return [b for b, m in modules.items() if importlib.util.find_spec(m) is not None]


def _cmd_export(args):
    from kerazoo.serving import export

    path = export(args.run, name=args.name, base_dir=args.base_dir, max_new_tokens=args.max_new_tokens,
                  max_new_tokens_cap=args.max_new_tokens_cap)
    print(f"exported: {path}")
    print(f"inspect:  saved_model_cli show --dir {path} --all")
    return 0


def _cmd_predict(args):
    import json

    from kerazoo.serving.rest import predict

    print(json.dumps(predict(args.export_dir, args.body), ensure_ascii=False, indent=1))
    return 0


def _cmd_soak(args):
    from kerazoo.training.runs import write_json
    from kerazoo.serving.soak import soak

    _check_out(args.out)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None else 20)
    report = soak(args.export_dir, seconds, concurrency=args.concurrency, interval=args.interval,
                  tolerance_mb=args.tolerance_mb, max_new_tokens=args.max_new_tokens)
    if args.out:
        write_json(args.out, report)
    print(f"soak: {report['requests']:,} requests in {seconds:.0f}s x {report['concurrency']} threads, "
          f"{report['errors']} errors; latency p50 {report['latency_ms_p50'] or 0:.1f} ms, "
          f"p95 {report['latency_ms_p95'] or 0:.1f} ms")
    print(f"RSS: start {report['rss_start_mb']:.1f} MB, after warm-up (half the run) {report['rss_after_warmup_mb']:.1f} MB, "
          f"end {report['rss_end_mb']:.1f} MB, peak {report['rss_peak_mb']:.1f} MB; "
          f"growth {report['growth_mb']:+.1f} MB, slope {report['slope_mb_per_min']:+.2f} MB/min")
    verdict = "memory GREW" if report["grew"] else "no memory growth"
    print(f"verdict: {verdict} (tolerance {report['tolerance_mb']:.0f} MB or 2%)")
    if report["errors"]:
        print(f"first error: {report['first_error']}", file=sys.stderr)
    return 1 if report["grew"] or report["errors"] else 0


def _cmd_bench(args):
    backends = _installed_backends() if args.backend == "all" else args.backend.split(",")
    unknown = [b for b in backends if b not in ("tensorflow", "jax", "torch")]
    if unknown:
        raise ValueError(f"unknown backend '{unknown[0]}'; valid: tensorflow, jax, torch, all")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    suites = ["train", "generate", "serve"] if args.suite == "all" else [args.suite]
    for suite in suites:
        BENCH_SUITES[suite](args, backends)
    return 0


def _bench_train(args, backends):
    from kerazoo.lab import train_suite

    rows = train_suite.run_all(backends, args.steps, args.repeats or 3)
    _write_bench(args.out, "train", rows, train_suite.markdown(rows))
    print(f"plot: {train_suite.plot(rows, os.path.join(args.out, 'train.png'))}")


def _bench_generate(args, backends):
    from kerazoo.lab import generate_suite

    rows = generate_suite.run_all(backends, args.repeats or 2)
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

    rows = serve_suite.run()
    _write_bench(args.out, "serve", rows, serve_suite.markdown(rows))


BENCH_SUITES = {"train": _bench_train, "generate": _bench_generate, "serve": _bench_serve}


def _cmd_curves(args):
    from kerazoo.lab import curves
    from kerazoo.training.runs import write_json

    backends = curves.parse_backends(args.backends)
    _check_out(args.out)
    _check_out(args.json)
    results = curves.run(args.recipe, backends, args.overrides, args.out)
    if args.json:
        write_json(args.json, results)
    print(f"plot: {args.out}")
    return 0


def _cmd_leaderboard(args):
    from kerazoo.lab import leaderboard
    from kerazoo.training.runs import write_json, write_text

    archs = leaderboard.parse_archs(args.archs) if args.archs else None
    budget = args.tokens if args.tokens is not None else leaderboard.DEFAULT_TOKENS
    _check_out(args.out)  # fails before training, not after it
    rows = leaderboard.run(args.source, archs, args.tokenizer, args.vocab_size, budget, args.runs_dir, args.overrides)
    os.makedirs(args.out, exist_ok=True)
    table = leaderboard.markdown(rows, args.source)
    write_json(os.path.join(args.out, "leaderboard.json"), rows)
    write_text(os.path.join(args.out, "leaderboard.md"), table)
    png = leaderboard.plot(rows, os.path.join(args.out, "leaderboard.png"), f"zoo leaderboard: {args.source}")
    print(table)
    print(f"results: {args.out}/leaderboard.json, .md; plot: {png}")
    return 0


def _cmd_models(args):
    from kerazoo.models import list_archs

    for name, summary, rows in list_archs():
        print(f"{name}: {summary}")
        for hp, type_name, default, help_text in rows:
            print(f"    {hp:<20} {type_name:<9} default {default!r:<8} {help_text}")
    return 0


def _cmd_import_hf(args):
    from kerazoo.interop.hf import import_checkpoint

    import_checkpoint(args.checkpoint, name=args.name, runs_dir=args.runs_dir)
    return 0


def _cmd_classify(args):
    import json

    from kerazoo.training.tasks.classify import classify

    for text, result in zip(args.text, classify(args.run, args.text)):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))
    return 0


COMMANDS = {
    "import-hf": _cmd_import_hf,
    "classify": _cmd_classify,
    "train": _cmd_train,
    "compare": _cmd_compare,
    "report": _cmd_report,
    "generate": _cmd_generate,
    "translate": _cmd_translate,
    "models": _cmd_models,
    "bench": _cmd_bench,
    "export": _cmd_export,
    "predict": _cmd_predict,
    "soak": _cmd_soak,
    "curves": _cmd_curves,
    "leaderboard": _cmd_leaderboard,
}


# The module each Keras backend imports, and the extra that installs it.
_BACKEND_MODULES = {"tensorflow": ("tensorflow", ""), "jax": ("jax", "jax"), "torch": ("torch", "torch")}


def _missing_backend():
    """The error for a ``KERAS_BACKEND`` whose framework is not installed, or None.

    Keras would fail on its first import with a bare ``ModuleNotFoundError``
    traceback; this names the variable and the install command instead.
    """
    import importlib.util

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    module, extra = _BACKEND_MODULES.get(backend, (None, None))
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    install = f"pip install -e '.[{extra}]'" if extra else "pip install -e ."
    return f"KERAS_BACKEND={backend} needs the '{module}' package, which is not installed: {install}"


def main(argv=None):
    """Entry point of the ``kerazoo`` console script.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 on a user's mistake, 1 on a failed run.
    """
    args = _parser().parse_args(argv)
    missing = _missing_backend()
    if missing:
        print(f"kerazoo: error: {missing}", file=sys.stderr)
        return USER_ERROR
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if os.environ.get("KERAZOO_DEBUG"):
            raise
        print(f"kerazoo: error: {e}", file=sys.stderr)
        return USER_ERROR
    except RuntimeError as e:
        if os.environ.get("KERAZOO_DEBUG"):
            raise
        print(f"kerazoo: run failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kerazoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
