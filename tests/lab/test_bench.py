"""``kerazoo bench``: the FLOP counts behind MFU, the train suite's rows, bad input.

Speed itself is never asserted here (timed tests are flaky on shared
machines); ``kerazoo bench`` measures it.
"""

import math

import keras
import numpy as np
import pytest

from kerazoo import cli
from kerazoo.lab import generate_suite
from kerazoo.lab import flops, train_suite
from kerazoo.models import build


def _kernel_sizes(model):
    """Multiply-accumulates per token of every dense matmul weight (kernels only)."""
    return sum(int(np.prod(w.shape)) for w in model.weights if "kernel" in w.path and len(w.shape) >= 2)


def test_gpt_flops_count_every_matmul_weight_and_attention():
    model = build("gpt", vocab_size=97, max_length=32, num_layers=2, num_heads=2, hidden_dim=16, dropout=0.0)
    matmul_weights = _kernel_sizes(model) + 97 * 16  # + the tied output head
    attention = 2 * 4 * 32 * 16  # per layer: scores and weighted sum over the context
    assert flops.gpt_flops_per_token(2, 16, 32, 97) == 3 * (2 * matmul_weights + attention)


def test_lstm_flops_count_every_matmul_weight():
    model = build("lstm", vocab_size=97, embed_dim=8, hidden_dim=16, num_layers=2, dropout=0.0)
    assert flops.lstm_flops_per_token(8, 16, 2, 97) == 3 * 2 * _kernel_sizes(model)


def test_matmul_floor_shapes_are_exactly_the_counted_flops():
    """The floor's products (forward + two backward each) are the FLOPs gpt_flops_per_token counts."""
    layers, dim, heads, batch, seq, vocab = 2, 16, 4, 3, 8, 97
    shapes = flops.gpt_matmul_shapes(layers, dim, heads, batch, seq, vocab)
    forward = sum(2 * math.prod(lhs) * rhs[-1] for lhs, rhs in shapes)
    assert 3 * forward == flops.gpt_flops_per_token(layers, dim, seq, vocab) * batch * seq


@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True)])
def test_floor_matmul_transposes_as_stored(transpose_a, transpose_b):
    from keras import ops

    from kerazoo.models.gpt.step import matmul

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4), dtype=np.float32), rng.standard_normal((2, 4, 5), dtype=np.float32)
    a_in = np.swapaxes(a, -1, -2).copy() if transpose_a else a
    b_in = np.swapaxes(b, -1, -2).copy() if transpose_b else b
    out = matmul(ops.convert_to_tensor(a_in), ops.convert_to_tensor(b_in), transpose_a, transpose_b)
    np.testing.assert_allclose(ops.convert_to_numpy(out), a @ b, rtol=1e-5, atol=1e-5)


def test_side_by_side_flips_the_order_every_repeat(monkeypatch):
    calls, times = [], {"ours": iter([9.0, 5.0, 7.0, 6.0, 8.0]), "peer": iter([9.0, 4.0, 3.0, 6.0, 5.0])}

    def fake_fit(model, data, steps):
        calls.append((model, steps))
        return next(times[model])

    monkeypatch.setattr(train_suite, "_fit_seconds", fake_fit)
    best, pair_ratios = train_suite._side_by_side(("ours", None), ("peer", None), steps=8, warmup=2, repeats=4)
    assert calls == [("ours", 2), ("peer", 2),  # compiling warm-ups, then ABBA
                     ("ours", 8), ("peer", 8), ("peer", 8), ("ours", 8), ("ours", 8), ("peer", 8), ("peer", 8), ("ours", 8)]
    assert best == [5.0, 3.0]
    assert pair_ratios == [4.0 / 5.0, 3.0 / 7.0, 6.0 / 6.0, 5.0 / 8.0]  # peer ÷ ours within each back-to-back pair


def test_train_suite_rows(monkeypatch, tmp_path):
    monkeypatch.setattr(train_suite, "GPT_CONFIG", dict(vocab_size=64, num_layers=1, num_heads=2, hidden_dim=16, max_length=16))
    monkeypatch.setattr(train_suite, "GPT_SEQ", 16)
    monkeypatch.setattr(train_suite, "GPT_BATCH", 2)
    monkeypatch.setattr(train_suite, "LSTM_CONFIG", dict(vocab_size=64, embed_dim=8, hidden_dim=16, num_layers=1))
    monkeypatch.setattr(train_suite, "LSTM_SEQ", 16)
    monkeypatch.setattr(train_suite, "LSTM_BATCH", 2)
    monkeypatch.setattr(flops, "PEAK_SIZES", (128,))
    rows = train_suite.run_current_backend(steps=2, warmup=1, repeats=1)
    on_tf = keras.backend.backend() == "tensorflow"
    if on_tf:
        import tensorflow as tf

        on_tf = not tf.config.list_physical_devices("GPU")
    # On TensorFlow on a CPU, a third row: keras_hub as Keras compiles it by default (no XLA there).
    assert [r["model"] for r in rows] == (["gpt", "gpt", "lstm"] if on_tf else ["gpt", "lstm"])
    xla = keras.backend.backend() != "torch"
    assert [(r["kerazoo_xla"], r["peer_xla"]) for r in rows] == [(xla, xla)] + [(True, False)] * on_tf + [(xla, xla)]
    all_rows, rows = rows, [rows[0], rows[-1]]
    for r in rows:
        assert r["kerazoo_tokens_per_s"] > 0 and r["peer_tokens_per_s"] > 0 and r["peak_flops"] > 0
        assert math.isclose(r["ratio"], r["kerazoo_tokens_per_s"] / r["peer_tokens_per_s"])
        assert math.isclose(r["kerazoo_mfu"], r["kerazoo_tokens_per_s"] * r["flops_per_token"] / r["peak_flops"])
        assert len(r["pair_ratios"]) == 1 and r["median_pair_ratio"] == r["pair_ratios"][0]
    assert rows[0]["floor_mfu"] > 0 and rows[1]["floor_mfu"] is None  # the gpt's matmul-only floor
    table = train_suite.markdown(all_rows)
    assert "| gpt | keras_hub GPT2CausalLM |" in table and "| lstm | Keras Sequential LSTM |" in table
    assert "matmul-only MFU" in table
    assert ("| keras_hub GPT2CausalLM, Keras' default compile | yes / no |" in table) is on_tf
    pytest.importorskip("matplotlib")
    png = train_suite.plot(all_rows, str(tmp_path / "train.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_generate_suite_rows_with_the_matmul_floor(monkeypatch):
    """Every row has both decoders' rates; under XLA also the weights-only floor, which no decoder beats by much."""
    monkeypatch.setattr(generate_suite, "CONFIG", dict(vocab_size=64, num_layers=1, num_heads=2, hidden_dim=16, max_length=64))
    monkeypatch.setattr(generate_suite, "run_lstm", lambda repeats: {
        "backend": "x", "model": "lstm", "batch": 1, "new_tokens": 8,
        "cached_tokens_per_s": 2.0, "rerun_tokens_per_s": 1.0, "speedup": 2.0,
    })
    rows = generate_suite.run_current_backend(repeats=1, batches=(1, 2), new_tokens=(8, 16))
    gpt = [r for r in rows if r["model"] == "gpt"]
    assert [(r["batch"], r["new_tokens"]) for r in gpt] == [(1, 8), (1, 16), (2, 8), (2, 16)]
    for r in gpt:
        assert r["kerazoo_tokens_per_s"] > 0 and r["keras_hub_tokens_per_s"] > 0
        assert math.isclose(r["speedup"], r["kerazoo_tokens_per_s"] / r["keras_hub_tokens_per_s"])
        assert r["median_pair_speedup"] > 0  # the pairs' own ratio, timed in turns
        if r["floor_tokens_per_s"] is not None:
            assert math.isclose(r["floor_speedup"], r["floor_tokens_per_s"] / r["keras_hub_tokens_per_s"])
    llama = [r for r in rows if r["model"] == "llama"]  # against keras_hub's LlamaCausalLM
    assert len(llama) == 4 and all(r["speedup"] > 0 and r["floor_tokens_per_s"] is None for r in llama)
    table = generate_suite.markdown(rows)
    assert "| median pair speed-up | matmul floor tokens/s | floor ÷ keras_hub |" in table and table.count("\n| ") >= 9
    assert "| llama vs LlamaCausalLM |" in table


@pytest.mark.parametrize("argv, message", [
    (["bench", "train", "--backend", "tf"], "unknown backend 'tf'"),
    (["bench", "train", "--steps", "0"], "--steps must be at least 1"),
    (["bench", "all", "--repeats", "0"], "--repeats must be at least 1"),
    (["bench", "generate", "--models", "bert"], "unknown --models 'bert'"),
])
def test_bad_bench_arguments_are_user_errors(argv, message, capsys):
    assert cli.main(argv) == cli.USER_ERROR
    assert message in capsys.readouterr().err


def test_quantize_suite_rows_and_a_runs_bits_per_byte(monkeypatch, tiny_recipe, tmp_path):
    import kerazoo as kz
    from kerazoo.lab import quantize_suite

    monkeypatch.setattr(quantize_suite, "CONFIG", dict(vocab_size=64, num_layers=1, num_heads=2, hidden_dim=16, max_length=64))
    rows = quantize_suite.run_current_backend(repeats=1, batches=(1,), new_tokens=4, archs=("gpt",))
    assert [(r["model"], r["batch"]) for r in rows] == [("gpt", 1)]
    assert set(rows[0]["floor_tokens_per_s"]) == set(quantize_suite.FLOORS)
    for r in rows:
        assert r["int8_tokens_per_s"] > 0 and r["float32_tokens_per_s"] > 0
        assert r["int8_weight_mb"] < 0.6 * r["float32_weight_mb"]
    result = kz.run_recipe(kz.load_recipe(tiny_recipe("gpt", "byte")), str(tmp_path / "runs"), verbose=0)
    quality = quantize_suite.quality(result.path)
    assert quality["documents"] > 0 and quality["bytes"] > 0
    assert abs(quality["relative_change"]) < 0.05
    table = quantize_suite.markdown(rows, quality)
    assert "| gpt |" in table and "int8" in table and f"{quality['documents']:,} documents" in table
