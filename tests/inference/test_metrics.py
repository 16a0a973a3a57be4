"""Loss, perplexity and bits per byte."""

import math

import numpy as np
import keras

from kerazoo.inference import metrics
from kerazoo.models import build


def test_eval_windows_score_every_token_once():
    ids = np.arange(1, 12, dtype=np.int32)  # 11 ids -> 10 targets
    x, y = metrics.eval_windows(ids, seq_len=4)
    assert x.shape == (3, 4)
    targets = y[y != 0]
    np.testing.assert_array_equal(targets, ids[1:])


def test_total_nll_matches_keras_crossentropy():
    model = build("gpt", vocab_size=20, max_length=8, num_layers=1, num_heads=2, hidden_dim=8)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 20, 8 * 5 + 1).astype(np.int32)  # exactly 5 full windows
    nats, count = metrics.total_nll(model, ids, seq_len=8, batch_size=2)
    x, y = ids[:-1].reshape(5, 8), ids[1:].reshape(5, 8)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model.predict(x, verbose=0))
    assert count == 40
    assert math.isclose(nats / count, float(expected), rel_tol=1e-5)


def test_uniform_model_costs_log2_vocab_bits_per_token():
    m = metrics.lm_metrics(total_nats=100 * math.log(256), n_tokens=100, n_bytes=100)
    assert math.isclose(m["bits_per_byte"], 8.0)
    assert math.isclose(m["perplexity"], 256.0)


def test_bits_per_byte_counts_utf8_bytes():
    assert metrics.text_bytes(["ab", "中"]) == 5
    m = metrics.lm_metrics(total_nats=math.log(2) * 10, n_tokens=3, n_bytes=5)
    assert math.isclose(m["bits_per_byte"], 2.0)
