"""TF Serving warm-up requests: ``assets.extra/tf_serving_warmup_requests``.

TF Serving replays these ``PredictionLog`` records when it loads a version,
before it is marked available, so the first real request does not pay for
graph initialisation. The records are ``PredictRequest`` protos from
``tensorflow-serving-api``, written as a TFRecord file.
"""

import os

import numpy as np
import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

SAMPLE_PROMPTS = ["The", "def main():", "你好", ""]


def causal_lm_requests(new_tokens=4, xla=False, default_is_xla=False, only_xla=False):
    """Warm-up inputs of a causal LM: ``[(signature, {input: array})]``.

    One request per signature and batch shape a server commonly sees: a
    single prompt, and a batch of prompts of different lengths.

    A failed warm-up request fails the load of the version in TF Serving
    (``saved_model_warmup_util.cc`` returns the request's error), and a
    server started without an XLA flag fails every XLA-compiled call. So the
    portable records name the portable signature (``generate`` when
    ``serving_default`` is the XLA one), and ``generate_xla`` is called only
    when ``xla`` is set.

    Args:
        new_tokens: new tokens per warm-up prompt.
        xla: add records for ``generate_xla`` (one per batch shape: XLA
            compiles each shape once, which the warm-up pays).
        default_is_xla: ``serving_default`` is ``generate_xla``.
        only_xla: just the ``generate_xla`` records.
    """
    def settings(rows):
        return {
            "max_new_tokens": np.full([rows], new_tokens, np.int32),
            "temperature": np.zeros([rows], np.float32),
            "top_k": np.zeros([rows], np.int32),
            "top_p": np.ones([rows], np.float32),
            "seed": np.zeros([rows], np.int32),
        }

    prompts = np.array([p.encode("utf-8") for p in SAMPLE_PROMPTS], dtype=object)
    portable = "generate" if default_is_xla else "serving_default"
    shapes = [{"prompts": prompts[:1], **settings(1)}, {"prompts": prompts, **settings(len(prompts))}]
    xla_records = [("generate_xla", inputs) for inputs in shapes] if xla or only_xla else []
    if only_xla:
        return xla_records
    return [(portable, inputs) for inputs in shapes] + xla_records + [
        ("greedy", {"prompts": prompts[:1]}),
        ("score", {"texts": prompts}),
    ]


def classify_requests(**_):
    """Warm-up inputs of a classifier: one text, and a batch of different lengths."""
    texts = np.array([p.encode("utf-8") for p in SAMPLE_PROMPTS], dtype=object)
    return [("serving_default", {"texts": texts[:1]}), ("classify", {"texts": texts})]


def seq2seq_requests(new_tokens=4, **_):
    """Warm-up inputs of a seq2seq model: one text, and a batch of different lengths."""
    texts = np.array([p.encode("utf-8") for p in SAMPLE_PROMPTS], dtype=object)
    return [
        ("serving_default", {"texts": texts[:1], "max_new_tokens": np.full([1], new_tokens, np.int32)}),
        ("serving_default", {"texts": texts, "max_new_tokens": np.full([len(texts)], new_tokens, np.int32)}),
        ("translate", {"texts": texts[:1]}),
    ]


REQUESTS = {"causal_lm": causal_lm_requests, "classify": classify_requests, "seq2seq": seq2seq_requests}


def write(export_dir, model_name, requests):
    """Writes warm-up records into an export folder.

    Args:
        export_dir: the SavedModel folder.
        model_name: the model name TF Serving serves it under.
        requests: ``[(signature name, {input name: numpy array})]``.

    Returns:
        The path of the records file.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read(export_dir):
    """Reads the warm-up records of an export back.

    Returns:
        ``[(signature name, {input name: numpy array})]``.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        out.append((request.model_spec.signature_name, inputs))
    return out
