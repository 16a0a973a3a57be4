"""Versioned, atomic SavedModel export for TF Serving.

    kerazoo export runs/pydocs_gpt            -> saved_models/pydocs_gpt/1/
    kerazoo export runs/pydocs_gpt            -> saved_models/pydocs_gpt/2/

TF Serving polls ``saved_models/<name>/`` and loads the highest integer
version it finds, so a version folder must appear complete or not at all.
The export is written into a hidden ``.export-*`` folder next to the versions
(TF Serving ignores names that are not integers), checked (no XLA op, every
signature answers its warm-up requests after a reload), and only then
renamed to the next free version under a lock. An existing version is never
overwritten; a failed export leaves nothing behind.

A causal LM gets two decoding signatures with the same inputs and outputs:
``generate`` (portable: plain TF ops, no XLA op) and ``generate_xla``
(compiled with ``jit_compile=True``, which TF Serving runs only when started
with ``--xla_cpu_compilation_enabled`` / ``--xla_gpu_compilation_enabled``).
``serving_default`` is the portable one unless the export asks for XLA. TF
Serving fails to load a version whose warm-up request fails, so the warm-up
records call ``generate_xla`` only when asked (``warmup_xla``).

The graph is traced on the TensorFlow backend. A model trained on JAX or
PyTorch is exported by a TensorFlow subprocess that reloads its ``.keras``
file (the weights are backend-neutral).
"""

import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import keras

from kerazoo.models.quantize import MODES as QUANTIZE_MODES
from kerazoo.models.quantize import quantize as quantize_model
from kerazoo.models.weights import is_quantized
from kerazoo.training import locks
from kerazoo.serving import signatures, warmup
from kerazoo.training.checkpointing import fault_point

DEFAULT_BASE_DIR = "saved_models"
METADATA_FILE = os.path.join("assets.extra", "kerazoo_export.json")
# ``\Z``, not ``$`` (which matches before a final newline); 200 characters at most,
# so the name and its hidden staging and lock files fit a file name's 255 bytes.
NAME_MAX = 200
# The most new tokens an export may default to or allow (the graph counts in
# int32; a million tokens is far beyond any context kerazoo trains).
MAX_NEW_TOKENS_LIMIT = 1 << 20
_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}\Z" % (NAME_MAX - 1))


def check_name(name):
    """Raises ValueError unless ``name`` is a plain folder name (no path tricks)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"invalid export name {name if not isinstance(name, str) or len(name) < 60 else name[:40] + '...'!r}: "
            f"use at most {NAME_MAX} letters, digits, '_', '-' and '.', not starting with '.' or '-'"
        )
    return name


def versions(model_dir):
    """The published integer versions under a model folder, ascending."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit())


@contextlib.contextmanager
def locked(model_dir, name):
    """Holds the export lock of a model name for a block (``kerazoo.training.locks``).

    One export of a name at a time: a second one stops with the holder's PID.
    Under the lock, every ``.export-*`` staging folder in ``model_dir`` was
    left by a dead export (a live one would hold the lock), so it is removed.
    The lock file stays (TF Serving ignores it).

    Args:
        model_dir: ``<base_dir>/<name>``.
        name: the export name, for the message.

    Raises:
        ValueError: another process is exporting to this name.
    """
    base_dir = os.path.dirname(model_dir) or "."
    for folder in (base_dir, model_dir):
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise ValueError(f"{folder} exists and is not a folder")
    os.makedirs(model_dir, exist_ok=True)
    with locks.holding(os.path.join(model_dir, ".lock"), f"the export name {name!r} in {base_dir}", remove=False):
        for entry in os.listdir(model_dir):
            if entry.startswith(".export-"):
                shutil.rmtree(os.path.join(model_dir, entry), ignore_errors=True)
        yield


def publish(staged, model_dir):
    """Renames a complete staged export to the next free version.

    The caller holds the name's lock (``locked``), so no other export picks
    the same version.

    Args:
        staged: the finished export folder (inside ``model_dir``).
        model_dir: ``saved_models/<name>``.

    Returns:
        The version folder.
    """
    target = os.path.join(model_dir, str((versions(model_dir) or [0])[-1] + 1))
    os.rename(staged, target)
    return target


def _default_name(model, source):
    if source:
        base = os.path.basename(os.path.normpath(source))
        return base[: -len(".keras")] if base.endswith(".keras") else base
    return model.name


def _write_saved_model(model, tokenizer, path, default_new_tokens, cap, serving_default="portable"):
    """Traces the signatures and writes the SavedModel.

    Plain ``tf.saved_model.save`` on a ``tf.Module`` that holds the model and
    its tokenizer (so their variables and lookup resources are tracked), with
    the concrete signatures traced once. Keras' ``ExportArchive`` does the
    same but traces every endpoint a second time while saving, which doubles
    the export time of a graph holding a decoding loop. The XLA signatures
    are traced outside ``portable_ops`` so that they keep XLA's in-place
    cache update.

    Returns:
        ``(kind, signature names, XLA signature names)``.
    """
    import tensorflow as tf

    from kerazoo.serving.portable_ops import portable_ops

    kind = signatures.model_kind(model)
    holder = tf.Module()
    holder.model, holder.tokenizer = model, tokenizer
    endpoints = signatures.BUILDERS[kind](model, tokenizer, default_new_tokens, cap, serving_default=serving_default)
    xla = signatures.xla_signatures(endpoints)
    concrete = {name: endpoints[name].get_concrete_function() for name in xla}
    with portable_ops():
        concrete.update({name: fn.get_concrete_function() for name, fn in endpoints.items() if name not in xla})
        tf.saved_model.save(holder, path, signatures=concrete)
    _write_input_defaults(path)
    return kind, sorted(concrete), xla


def _write_input_defaults(path):
    """Stores the optional inputs' defaults (``request.DEFAULTS``) in the SignatureDefs.

    TF Serving fills an input a request leaves out from its SignatureDef's
    ``defaults``. ``tf.saved_model.save`` records them only when given the
    ``tf.function``s, which it then traces again, outside the portable-ops
    swap that the traces above were made in; so they are written here.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    from kerazoo.serving.request import DEFAULTS

    file = os.path.join(path, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(file, "rb") as f:
        proto.ParseFromString(f.read())
    for signature in proto.meta_graphs[0].signature_def.values():
        for name, value in DEFAULTS.items():
            if name in signature.inputs:
                signature.defaults[name].CopyFrom(tf.make_tensor_proto(value, dtype=signature.inputs[name].dtype))
    with open(file, "wb") as f:
        f.write(proto.SerializeToString())


def _check_graph(path, portable):
    """Raises ValueError if the portable signatures' graph contains XLA-only ops.

    Args:
        path: the SavedModel folder.
        portable: the signatures that must run without XLA.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    from kerazoo.serving.portable_ops import signature_functions, xla_ops

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    found = sorted({op for graph in proto.meta_graphs
                    for op in xla_ops(graph.graph_def, signature_functions(graph, portable))})
    if found:
        raise ValueError(f"the exported graph needs XLA (ops {', '.join(found)}); TF Serving runs without it")


def _replay(path, requests):
    """Loads the SavedModel afresh and runs every warm-up request through it.

    Inputs a record leaves out take the signature's defaults, as TF Serving
    fills them.
    """
    import tensorflow as tf

    from kerazoo.serving.rest import signature_defaults

    loaded, defaults = tf.saved_model.load(path), signature_defaults(path)
    for name, inputs in requests:
        inputs = {**defaults.get(name, {}), **inputs}
        loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})


def _export_here(model, name, base_dir, default_new_tokens, cap, source, serving_default="portable", warmup_xla=None,
                 quantize=None):
    """Exports a model on the TensorFlow backend (see ``export``)."""
    if quantize is not None:
        model = quantize_model(model, quantize)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("the model carries no tokenizer; a served model needs one to take text")
    model_dir = os.path.join(base_dir, name)
    staged = tempfile.mkdtemp(dir=model_dir, prefix=".export-")
    try:
        kind, names, xla = _write_saved_model(model, tokenizer, staged, default_new_tokens, cap, serving_default)
        _check_graph(staged, [n for n in names if n not in xla])
        warm_xla = bool(xla) and (serving_default == "xla" if warmup_xla is None else warmup_xla)
        requests = warmup.REQUESTS[kind](xla=warm_xla, default_is_xla=serving_default == "xla")
        warmup.write(staged, name, requests)
        _write_metadata(staged, model, kind, names, default_new_tokens, cap, source,
                        {"serving_default": serving_default, "xla_signatures": xla, "warmup_xla": warm_xla,
                         "quantize": quantize or (is_quantized(model) and "int8") or None})
        # The export checks every signature, XLA ones too, whatever the records hold.
        checks = requests if warm_xla or not xla else requests + warmup.REQUESTS[kind](xla=True, only_xla=True)
        _replay(staged, checks)
        os.chmod(staged, 0o755)  # mkdtemp makes it private; servers run as other users
        fault_point("export.staged")
        return publish(staged, model_dir)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _write_metadata(path, model, kind, names, default_new_tokens, cap, source, options):
    # From the installed distribution, not ``kerazoo.__version__``: importing
    # the package facade from inside it would close an import circle.
    meta = {
        "kerazoo_version": importlib.metadata.version("kerazoo"),
        "kind": kind,
        "model_class": type(model).__name__,
        "model_config": {k: v for k, v in model.get_config().items() if k != "tokenizer"},
        "tokenizer": getattr(model.tokenizer, "kind", None),
        "signatures": names,
        "defaults": dict(signatures.DEFAULTS, max_new_tokens=min(default_new_tokens, signatures.new_token_cap(model, cap))),
        "max_new_tokens_cap": signatures.new_token_cap(model, cap),
        "source": os.path.abspath(source) if source else None,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **options,
    }
    if kind == "classify":
        meta["label_names"] = list(model.label_names)
    with open(os.path.join(path, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True, default=str)


def _export_in_subprocess(source, name, base_dir, default_new_tokens, cap, options):
    """Runs the export in a TensorFlow-backend process (for JAX / PyTorch models).

    This process holds the name's lock; the child works under it. The child
    dies with this process: Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` set in
    the child (``locks.die_with_parent``) covers a SIGKILL of this process,
    and ``subprocess.run`` kills the child on any exception here (Ctrl-C).
    """
    args = json.dumps({"source": source, "name": name, "base_dir": base_dir,
                       "max_new_tokens": default_new_tokens, "max_new_tokens_cap": cap,
                       "parent_locked": True, **options})
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    done = subprocess.run([sys.executable, "-m", "kerazoo.serving.exporter", args],
                          env=env, capture_output=True, text=True, preexec_fn=locks.die_with_parent(os.getpid()))
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        message = f"export under TensorFlow failed: {lines[-1] if lines else f'exit status {done.returncode}'}"
        # 2: the child refused the input; anything else (disk full, a crash) is no user's mistake.
        raise (ValueError if done.returncode == 2 else RuntimeError)(message)
    return json.loads(done.stdout.strip().splitlines()[-1])["path"]


def export(model, name=None, base_dir=DEFAULT_BASE_DIR, max_new_tokens=signatures.DEFAULTS["max_new_tokens"],
           max_new_tokens_cap=None, serving_default="portable", warmup_xla=None, quantize=None, parent_locked=False):
    """Exports a model as a TF Serving SavedModel, text in, text out.

    Args:
        model: a run folder, a ``.keras`` file, or a model of the zoo.
        name: the served model's name (default: the run folder's name).
        base_dir: the models' base folder; the export goes to
            ``<base_dir>/<name>/<next version>/``.
        max_new_tokens: new tokens of the ``greedy`` signature.
        max_new_tokens_cap: most new tokens a request may ask for
            (Transformers: at most their context minus one; recurrent
            models: 1024 unless set).
        serving_default: ``"portable"`` (default: every TF Serving runs it)
            or ``"xla"`` (``generate_xla``: in-process speed, for servers
            started with an XLA flag); causal LMs only.
        warmup_xla: whether the warm-up records call ``generate_xla`` (a
            server without the XLA flag then fails to load the version);
            default: only when ``serving_default`` is ``"xla"``.
        quantize: ``"int8"`` exports int8 weights (Keras' weight-only
            ``model.quantize``, see ``kerazoo.models.quantize``) of a float
            ``gpt`` or ``llama``; None exports the weights as they are.
        parent_locked: the parent process holds the name's lock (the
            TensorFlow child of a JAX / PyTorch export).

    Returns:
        The path of the new version folder.

    Example:
        >>> kerazoo.export("runs/pydocs_gpt")
        'saved_models/pydocs_gpt/1'
    """
    # The graph holds these as int32: a larger value would wrap (2**31 becomes negative).
    for key, value in (("max_new_tokens", max_new_tokens), ("max_new_tokens_cap", max_new_tokens_cap)):
        if value is None and key == "max_new_tokens_cap":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_NEW_TOKENS_LIMIT:
            raise ValueError(f"{key} must be an integer from 1 to {MAX_NEW_TOKENS_LIMIT:,}, got {value!r}")
    if serving_default not in ("portable", "xla"):
        raise ValueError(f"serving_default must be 'portable' or 'xla', got {serving_default!r}")
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantization mode {quantize!r}; choose one of: {', '.join(QUANTIZE_MODES)}")
    options = {"serving_default": serving_default, "warmup_xla": warmup_xla, "quantize": quantize}
    source = str(model) if isinstance(model, (str, os.PathLike)) else None
    name = check_name(name if name is not None else _default_name(model, source))
    if parent_locked:
        return _export_locked(model, source, name, base_dir, max_new_tokens, max_new_tokens_cap, options)
    with locked(os.path.join(base_dir, name), name):
        return _export_locked(model, source, name, base_dir, max_new_tokens, max_new_tokens_cap, options)


def _export_locked(model, source, name, base_dir, max_new_tokens, max_new_tokens_cap, options):
    """``export`` under the name's lock: here on TensorFlow, else in a TensorFlow child."""
    if keras.backend.backend() != "tensorflow":
        if source is None and is_quantized(model):
            # The TensorFlow child reloads a saved copy, and a quantized model
            # does not reload (see kerazoo.models.quantize): quantize there.
            raise ValueError("export the float model with quantize='int8' (the export quantizes it); "
                             "a model quantized in a JAX or PyTorch process cannot be handed to the TensorFlow export")
        if source is None:
            with tempfile.TemporaryDirectory() as tmp:
                file = os.path.join(tmp, "model.keras")
                model.save(file)
                return _export_in_subprocess(file, name, base_dir, max_new_tokens, max_new_tokens_cap, options)
        return _export_in_subprocess(source, name, base_dir, max_new_tokens, max_new_tokens_cap, options)
    if source is not None:
        from kerazoo.training.runner import load_run

        model = load_run(source)
    elif options.get("quantize") is not None:
        # Quantize a copy: the caller's model keeps its float weights.
        with tempfile.TemporaryDirectory() as tmp:
            file = os.path.join(tmp, "model.keras")
            model.save(file)
            from kerazoo.training.runner import load_run

            model = load_run(file)
    return _export_here(model, name, base_dir, max_new_tokens, max_new_tokens_cap, source, **options)


def _main(argv):
    """Entry point of the TensorFlow export subprocess: JSON args in, JSON path out."""
    args = json.loads(argv[0])
    try:
        path = export(args["source"], args["name"], args["base_dir"], args["max_new_tokens"],
                      args["max_new_tokens_cap"], args.get("serving_default", "portable"),
                      args.get("warmup_xla"), args.get("quantize"), parent_locked=args.get("parent_locked", False))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"path": path}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
