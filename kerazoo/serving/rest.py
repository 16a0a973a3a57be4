"""TF Serving's REST ``:predict`` JSON, answered by a SavedModel in-process.

``kerazoo predict EXPORT_DIR BODY`` takes the very JSON body a client POSTs to
``http://host:8501/v1/models/<name>:predict`` and prints what TF Serving
would answer, so request bodies can be tried without a server:

- row format: ``{"signature_name": ..., "instances": [{input: value, ...}, ...]}``
  -> ``{"predictions": [{output: value, ...}, ...]}``
- columnar format: ``{"signature_name": ..., "inputs": {input: [values], ...}}``
  -> ``{"outputs": {output: [values], ...}}``

(TF Serving's rules: a missing ``signature_name`` means ``serving_default``;
strings are UTF-8 text.)
"""

import json
import os

import numpy as np
import tensorflow as tf

# The largest request body taken, as TF Serving's default gRPC message limit:
# a bigger batch belongs in several requests.
MAX_BODY_BYTES = 4 << 20


def load_saved_model(export_dir):
    """Loads a SavedModel folder, turning a damaged one into a clear ValueError.

    Args:
        export_dir: a version folder written by ``kerazoo export``.

    Returns:
        The loaded object (``tf.saved_model.load``), its ``signatures`` ready.

    Raises:
        ValueError: no ``saved_model.pb``, or the graph or the variables
            cannot be read (a truncated file, a missing ``variables/``).
    """
    from google.protobuf.message import DecodeError

    from kerazoo.training.inputs import check_saved_model

    check_saved_model(export_dir)
    try:
        return tf.saved_model.load(export_dir)
    except (OSError, RuntimeError, ValueError, DecodeError, tf.errors.OpError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load the SavedModel at {export_dir} (incomplete or damaged): {first_line}") from None


def signature_defaults(export_dir):
    """The default values a SavedModel's signatures store for their optional inputs.

    TF Serving fills an input a request leaves out from its SignatureDef's
    ``defaults``; TensorFlow's Python loader does not, so Python callers
    (``predict``, the export's own replay) fill them from here.

    Args:
        export_dir: a SavedModel folder.

    Returns:
        ``{signature name: {input name: numpy array}}``.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return {name: {k: tf.make_ndarray(v) for k, v in sig.defaults.items()}
            for name, sig in proto.meta_graphs[0].signature_def.items()}


def _signature(loaded, body):
    name = body.get("signature_name", "serving_default")
    if not isinstance(name, str):
        raise ValueError(f'"signature_name" must be a string, got {json.dumps(name)[:80]}')
    if name not in loaded.signatures:
        raise ValueError(f"signature '{name}' not found; the export has: {', '.join(sorted(loaded.signatures))}")
    return loaded.signatures[name]


def _columns(body, specs, defaults):
    """The request's inputs as one column per input name (left-out inputs from ``defaults``)."""
    if ("instances" in body) == ("inputs" in body):
        raise ValueError('the body needs exactly one of "instances" (row format) or "inputs" (columnar format)')
    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            columns = {next(iter(specs)): columns}
    else:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ValueError('"instances" must be a non-empty list')
        if not all(isinstance(r, dict) for r in rows):
            rows = [{next(iter(specs)): r} for r in rows]
        columns = {k: [r.get(k) for r in rows] for k in specs if any(k in r for r in rows) or k not in defaults}
    columns.update({k: v.tolist() for k, v in defaults.items() if k not in columns})
    missing = sorted(set(specs) - set(columns))
    if missing or any(v is None for c in columns.values() for v in (c if isinstance(c, list) else [c])):
        raise ValueError(f"input size does not match signature: needs {', '.join(sorted(specs))}")
    tensors = {}
    for k, spec in specs.items():
        check_values(k, spec, columns[k])
        try:
            tensors[k] = tf.constant(columns[k], dtype=spec.dtype)
        except (TypeError, ValueError):
            raise ValueError(f"input '{k}' must be {_describe(spec)}, got {json.dumps(columns[k])[:80]}") from None
        if tensors[k].shape.rank != spec.shape.rank:
            raise ValueError(f"input '{k}' must be {_describe(spec)}, got shape {tensors[k].shape.as_list()}")
    return tensors


def _leaves(value):
    """The scalars of a JSON value (nested lists flattened)."""
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _depth(value):
    """How deep lists nest in a JSON value (a scalar: 0, [] or [1]: 1)."""
    return 1 + max((_depth(v) for v in value), default=0) if isinstance(value, list) else 0


def check_values(name, spec, column):
    """Range-checks one input column before it becomes a tensor.

    ``tf.constant`` wraps an integer that does not fit the input's dtype
    without a word (2**31 becomes -2**31, 2**32 + 3 becomes 3), so each
    integer is checked against the dtype's range; a JSON ``true`` is not a
    number here; floats must be finite (Python's JSON reads ``NaN`` and
    ``Infinity``) and within the dtype's range (1e39 becomes inf in float32).

    Args:
        name: the input's name, for the message.
        spec: its ``tf.TensorSpec``.
        column: the request's values for it (JSON data).

    Raises:
        ValueError: naming the input and the value.
    """
    import math

    rank = spec.shape.rank
    if rank is not None and _depth(column) > rank:
        # tf.constant turns some ragged nestings ([[], 0]) into an empty tensor without a word.
        raise ValueError(f"input '{name}' must be {_describe(spec)}, got lists nested {_depth(column)} deep")
    if spec.dtype.is_integer:
        low, high = spec.dtype.min, spec.dtype.max
        for v in _leaves(column):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"input '{name}' must be {_describe(spec)}, got {json.dumps(v)[:80]}")
            if not low <= v <= high:
                raise ValueError(f"input '{name}' is out of range: {v} (must be from {low} to {high})")
    elif spec.dtype.is_floating:
        for v in _leaves(column):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"input '{name}' must be {_describe(spec)}, got {json.dumps(v)[:80]}")
            # Beyond the dtype's largest value, the conversion itself gives inf.
            if (isinstance(v, float) and not math.isfinite(v)) or abs(v) > float(spec.dtype.max):
                raise ValueError(f"input '{name}' must be a finite {spec.dtype.name} number, got {v}")


def _describe(spec):
    """A signature input in words: ``one string per instance``."""
    kind = "string" if spec.dtype == tf.string else spec.dtype.name
    return f"one {kind} per instance" if spec.shape.rank == 1 else f"a {kind} tensor of shape {spec.shape}"


def _to_json(value):
    value = value.numpy()
    if value.dtype == object:
        return [v.decode("utf-8") for v in value.reshape(-1)]
    return np.asarray(value).tolist()


def predict(export_dir, body):
    """Answers a TF Serving REST predict body with a SavedModel.

    Args:
        export_dir: a version folder written by ``kerazoo export``.
        body: the request body (a dict, or its JSON text).

    Returns:
        The response body TF Serving sends, as a dict.
    """
    if isinstance(body, str):
        if len(body.encode("utf-8")) > MAX_BODY_BYTES:
            raise ValueError(f"the request body is too large ({len(body.encode('utf-8')):,} bytes; "
                             f"the limit is {MAX_BODY_BYTES:,}); split the batch into several requests")
        try:
            body = json.loads(body)
        except json.JSONDecodeError as e:
            raise ValueError(f"the request body is not JSON: {e}") from None
        except RecursionError:
            raise ValueError("the request body is nested too deeply to be a request") from None
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    signature = _signature(load_saved_model(export_dir), body)
    specs = signature.structured_input_signature[1]
    defaults = signature_defaults(export_dir).get(body.get("signature_name", "serving_default"), {})
    try:
        results = signature(**_columns(body, specs, defaults))
    except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"the request does not fit the signature: {e.message.strip().splitlines()[0]}") from None
    outputs = {k: _to_json(v) for k, v in results.items()}
    if "inputs" in body:
        return {"outputs": outputs}
    n = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i] for k, v in sorted(outputs.items())} for i in range(n)]}
