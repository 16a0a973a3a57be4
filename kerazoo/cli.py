"""The ``kerazoo`` command.

    kerazoo train RECIPE.toml [--set section.key=value ...] [--resume]
    kerazoo prepare RECIPE.toml [--set section.key=value ...]
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
    kerazoo chat RUN_DIR [--temperature T] [--max-new-tokens N]
    kerazoo models

Each command lives in ``kerazoo.commands``; this module parses the command
line and imports it only then, so ``--help`` loads no framework.

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

    p = sub.add_parser("prepare", help="tokenize a recipe's corpus once into its token store (train does it when needed)")
    p.add_argument("recipe", help="a recipe .toml file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value, e.g. --set data.source=corpus.txt.gz (repeatable)")

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
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="decode with int8 weights (gpt, llama; Keras' weight-only model.quantize)")

    p = sub.add_parser("chat", help="talk with an instruction-tuned (sft) model: one line a turn, replies streamed")
    p.add_argument("run", help="an sft run folder or .keras file")
    p.add_argument("--max-new-tokens", type=int, default=None, help="reply length at most (default: 64, at most half the context)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); more: sampling")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--prompt-format", default="{}", help='wrap each message, e.g. "Translate to French: {}"')
    p.add_argument("--no-history", action="store_true", help="answer each line on its own, without the earlier turns")

    p = sub.add_parser("export", help="write a TF Serving SavedModel (text in, text out) to saved_models/NAME/VERSION")
    p.add_argument("run", help="a run folder or a .keras file")
    p.add_argument("--name", help="the served model's name (default: the run folder's name)")
    p.add_argument("--base-dir", default="saved_models", help="the models' base folder (default: saved_models)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="new tokens of the 'greedy' signature (default 64)")
    p.add_argument("--max-new-tokens-cap", type=int, default=None,
                   help="most new tokens a request may ask for (default: context - 1; 1024 for RNNs)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="export int8 weights (gpt, llama; Keras' weight-only model.quantize)")
    p.add_argument("--serving-default", choices=["portable", "xla"], default="portable",
                   help="which decoding signature is serving_default: portable (default; any TF Serving) or xla "
                        "(generate_xla; needs --xla_cpu_compilation_enabled / --xla_gpu_compilation_enabled)")
    p.add_argument("--warmup-xla", action=argparse.BooleanOptionalAction, default=None,
                   help="warm-up records also call generate_xla (default: only with --serving-default xla; "
                        "a server without an XLA flag then fails to load the version)")

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
    p.add_argument("suite", choices=["train", "generate", "serve", "data", "quantize", "nanogpt", "all"],
                   help="train: model.fit tokens/s and MFU vs keras_hub GPT2 and a plain Keras LSTM; "
                        "generate: cached decoding vs keras_hub GPT2CausalLM / LlamaCausalLM.generate; "
                        "serve: the exported SavedModel vs in-process generation; all: the three in turn; "
                        "data: prepare MB/s and peak RSS vs the raw tokenizer library; "
                        "quantize: int8 vs float32 decoding (and bits per byte with --run); "
                        "nanogpt: recipes/shakespeare_char.toml vs nanoGPT's train.py (--nanogpt DIR)")
    p.add_argument("--backend", default="all",
                   help="tensorflow, jax, torch, a comma-separated list, or all (default; skips backends not installed)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per setting; the best is kept (default: 2 for generate, 3 for train)")
    p.add_argument("--steps", type=int, default=None,
                   help="train: optimizer steps per timed fit (default: 20); nanogpt: steps per run (default: 2000)")
    p.add_argument("--models", default="gpt,llama,lstm", help="generate: which decoders to time (default: gpt,llama,lstm)")
    p.add_argument("--out", default="bench", help="folder for the JSON and Markdown results (default: bench)")
    p.add_argument("--sizes", default="10MB,100MB,1GB", help="data: corpus sizes to prepare (default: 10MB,100MB,1GB)")
    p.add_argument("--run", help="quantize: also score this trained run's validation split, float32 and int8")
    p.add_argument("--train-steps", type=int, default=0, help="data: also train a small gpt this many steps per size")
    p.add_argument("--kinds", default="unigram,bpe", help="data: tokenizer kinds to prepare with (default: unigram,bpe)")
    p.add_argument("--nanogpt", help="nanogpt: a checkout of github.com/karpathy/nanoGPT to run beside kerazoo")
    p.add_argument("--baseline", help="nanogpt: another kerazoo source tree to run beside this one (before/after)")

    p = sub.add_parser("curves", help="train one recipe on several backends and plot their loss curves side by side")
    p.add_argument("recipe", help="a recipe .toml file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value on every backend (repeatable)")
    p.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated (default: all three)")
    p.add_argument("--out", default="backends_curves.png", help="the image to write (default: backends_curves.png)")
    p.add_argument("--json", help="also write the histories and metrics to this JSON file")

    p = sub.add_parser("import-hf", help="import a local Hugging Face checkpoint folder (BERT, GPT-2, Llama, Qwen2) into a run folder")
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


# Failures of the machine, not of the user's input: (errno, what to call it).
_ENVIRONMENT_ERRNOS = {28: "disk full", 122: "disk quota exceeded", 30: "read-only file system",
                       12: "out of memory", 5: "input/output error"}
_NAME_TOO_LONG = 36


def environment_problem(error):
    """The one line (and exit status) for an exception that is not a bug, or None.

    The environment (disk full, read-only filesystem, out of memory) gets
    exit 1 and a line naming the resource and the path; a file name too long
    for the filesystem and input nested too deeply to parse are the user's
    (exit 2). Anything else is a bug and keeps its traceback.

    Args:
        error: the exception that escaped a command.

    Returns:
        ``(status, line)`` or None.
    """
    if isinstance(error, MemoryError):
        return 1, "kerazoo: out of memory: the process could not allocate memory (lower the batch or the model size)"
    if isinstance(error, RecursionError):
        return USER_ERROR, "kerazoo: error: the input is nested too deeply to read"
    if not isinstance(error, OSError):
        return _wrapped_os_error(str(error))
    path = " ".join(repr(p) for p in (error.filename, error.filename2) if p) or "(no path given)"
    if error.errno == _NAME_TOO_LONG:
        return USER_ERROR, f"kerazoo: error: a file name is too long for the filesystem: {path}"
    what = _ENVIRONMENT_ERRNOS.get(error.errno)
    if what is None:
        return None
    return 1, f"kerazoo: {what}: {error.strerror} (path {path})"


# Integers from the command line end in int32 tensors and counters: larger ones would wrap.
_INT32 = (-2**31, 2**31 - 1)
# Token counts: at most 2**20 (kerazoo.serving.exporter.MAX_NEW_TOKENS_LIMIT, the same bound).
_MAX_TOKENS = 1 << 20


def check_int_args(args):
    """Range-checks every integer option where it enters (see ``_INT32``).

    Args:
        args: the parsed command line.

    Raises:
        ValueError: naming the option and its range.
    """
    for key, value in vars(args).items():
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        flag = "--" + key.replace("_", "-")
        # Only the bounds that stop a wrap here; each command words its own
        # lower bounds (max_new_tokens must be positive, ...).
        low, high = _INT32
        if key.startswith("max_new_tokens"):
            high = _MAX_TOKENS
        if not low <= value <= high:
            raise ValueError(f"{flag} {value} is out of range (from {low:,} to {high:,})")


def _wrapped_os_error(message):
    """An OS error that a library re-raised as its own exception (h5py's RuntimeError, TF's errors).

    h5py reports a full disk as ``RuntimeError: ... filename = '...', errno = 28,
    error message = 'No space left on device' ...`` over several lines.
    """
    import re

    for errno_value, what in _ENVIRONMENT_ERRNOS.items():
        strerror = os.strerror(errno_value)
        if strerror in message or f"errno = {errno_value}," in message:
            found = (re.search(r"filename = '([^']+)'", message) or re.search(r"'(/[^']+)'", message)
                     or re.search(r"(/[^\s;,']+)", message))
            path = repr(found.group(1)) if found else "(no path given)"
            return 1, f"kerazoo: {what}: {strerror} (path {path})"
    return None


def _out_of_memory(error):
    return type(error).__name__ in ("ResourceExhaustedError", "OutOfMemoryError") or "RESOURCE_EXHAUSTED" in str(error)[:500]


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
        check_int_args(args)
        from kerazoo.commands import COMMANDS

        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
        if os.environ.get("KERAZOO_DEBUG"):
            raise
        print(f"kerazoo: error: {e}", file=sys.stderr)
        return USER_ERROR
    except (OSError, MemoryError, RecursionError) as e:
        problem = environment_problem(e)
        if problem is None or os.environ.get("KERAZOO_DEBUG"):
            raise
        status, line = problem
        print(line, file=sys.stderr)
        return status
    except RuntimeError as e:
        if os.environ.get("KERAZOO_DEBUG"):
            raise
        problem = environment_problem(e)
        print(problem[1] if problem else f"kerazoo: run failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        # The frameworks' own out-of-memory errors (TensorFlow's
        # ResourceExhaustedError, XLA's RESOURCE_EXHAUSTED) are no OSError.
        problem = environment_problem(e)
        if problem and not os.environ.get("KERAZOO_DEBUG"):
            print(problem[1], file=sys.stderr)
            return problem[0]
        if os.environ.get("KERAZOO_DEBUG") or not _out_of_memory(e):
            raise
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        print(f"kerazoo: out of memory: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kerazoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
