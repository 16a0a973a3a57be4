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

import numpy as np
import tensorflow as tf


def _signature(loaded, body):
    name = body.get("signature_name", "serving_default")
    if name not in loaded.signatures:
        raise ValueError(f"signature '{name}' not found; the export has: {', '.join(sorted(loaded.signatures))}")
    return loaded.signatures[name]


def _columns(body, specs):
    """The request's inputs as one column per input name."""
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
        columns = {k: [r.get(k) for r in rows] for k in specs}
    missing = sorted(set(specs) - set(columns))
    if missing or any(v is None for c in columns.values() for v in (c if isinstance(c, list) else [c])):
        raise ValueError(f"input size does not match signature: needs {', '.join(sorted(specs))}")
    return {k: tf.constant(columns[k], dtype=specs[k].dtype) for k in specs}


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
        try:
            body = json.loads(body)
        except json.JSONDecodeError as e:
            raise ValueError(f"the request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    signature = _signature(tf.saved_model.load(export_dir), body)
    specs = signature.structured_input_signature[1]
    outputs = {k: _to_json(v) for k, v in signature(**_columns(body, specs)).items()}
    if "inputs" in body:
        return {"outputs": outputs}
    n = len(next(iter(outputs.values())))
    return {"predictions": [{k: v[i] for k, v in sorted(outputs.items())} for i in range(n)]}
