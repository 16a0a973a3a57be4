"""Cached decoding: exactness against full recomputation, batching, samplers, stops, streaming."""

import numpy as np
import keras
import pytest

import kerazoo as kz
from kerazoo.decoding import compiler
from kerazoo.decoding import loop as decoding
from kerazoo.decoding.sampling import SamplerSpec
from kerazoo.inference.generate import stream
from kerazoo.models import build
from kerazoo.text.special import EOS_ID, PAD_ID

ARCH_HPARAMS = {
    "gpt": dict(max_length=128, num_layers=2, num_heads=2, hidden_dim=16),
    "lstm": dict(embed_dim=8, hidden_dim=16, num_layers=2),
    "gru": dict(embed_dim=8, hidden_dim=16, num_layers=1),
    "rnn": dict(embed_dim=8, hidden_dim=16, num_layers=1),
}
PROMPTS = ["hello", "a much longer prompt, 你好", ""]


@pytest.fixture(scope="module")
def tokenizer():
    return kz.train_tokenizer(["hello world, 你好世界 abc"], "byte")


@pytest.fixture(scope="module", params=list(ARCH_HPARAMS))
def model(request, tokenizer):
    keras.utils.set_random_seed(0)
    return build(request.param, tokenizer=tokenizer, **ARCH_HPARAMS[request.param])


def _greedy_by_recomputation(model, ids, n, stop_at_eos=True, pad_to=None):
    """Reference: rerun the whole sequence for every new token, no cache.

    Args:
        pad_to: right-pad each rerun to a multiple of this. The model is
            causal, so padding after the last position leaves its logits
            alone; it keeps long references from running (and, on JAX,
            compiling every op for) a new shape per token: a 160-token
            reference took 7 minutes on JAX that way.
    """
    seq = list(ids)
    new = []
    for _ in range(n):
        width = len(seq) if pad_to is None else -(-len(seq) // pad_to) * pad_to
        padded = np.array([seq + [PAD_ID] * (width - len(seq))], np.int32)
        logits = keras.ops.convert_to_numpy(keras.ops.stop_gradient(model(padded)))[0, len(seq) - 1]
        token = int(np.argmax(logits))
        if token == EOS_ID and stop_at_eos:
            break
        new.append(token)
        seq.append(token)
    return new


def test_cached_greedy_matches_full_recomputation(model, tokenizer):
    ids = [EOS_ID] + [int(i) for i in np.asarray(tokenizer.tokenize("hello"))]
    state = decoding.DecodeState(model, [ids], 12, SamplerSpec("greedy"))
    state.advance()
    assert state.new_ids()[0] == _greedy_by_recomputation(model, ids, 12)


def test_long_cached_greedy_crosses_chunks_and_visible_widths(tokenizer):
    """Past several decoding chunks and a visible-cache bucket, decoding still equals recomputation."""
    keras.utils.set_random_seed(2)
    model = build("gpt", tokenizer=tokenizer, max_length=256, num_layers=1, num_heads=2, hidden_dim=16)
    ids, n = [EOS_ID, 70, 71], decoding.VISIBLE_BUCKET + decoding.CHUNK
    state = decoding.DecodeState(model, [ids], n, SamplerSpec("greedy"), stop_at_eos=False)
    state.advance()
    decoded = keras.ops.convert_to_numpy(state.tokens)[0, len(ids):len(ids) + n].tolist()
    assert decoded == _greedy_by_recomputation(model, ids, n, stop_at_eos=False, pad_to=64)


def test_many_ragged_rows_cross_exact_visible_widths_and_skip_the_prefill(tokenizer):
    """From FINE_VISIBLE_MIN_ROWS rows each chunk attends over exactly the positions before it.

    A one-token row means no prefill at all: the loop runs every position,
    copying the longer rows' prompts. Each row must still equal
    recomputation, across several chunks and widths.
    """
    keras.utils.set_random_seed(3)
    model = build("gpt", tokenizer=tokenizer, max_length=192, num_layers=1, num_heads=2, hidden_dim=16)
    rows = decoding.FINE_VISIBLE_MIN_ROWS
    assert decoding.visible_widths(192, rows)[:3] == [decoding.CHUNK, 2 * decoding.CHUNK, 3 * decoding.CHUNK]
    prompts = [[EOS_ID] + [70 + i % 5] * length for i, length in enumerate([0, 2, 40, 70][:rows])]
    prompts += [[EOS_ID, 71]] * (rows - len(prompts))
    n = 3 * decoding.CHUNK + 5
    state = decoding.DecodeState(model, prompts, n, SamplerSpec("greedy"), stop_at_eos=False)
    assert state.prompt_width == 0, "a one-token prompt leaves nothing to prefill"
    state.advance()
    tokens = keras.ops.convert_to_numpy(state.tokens)
    for row, ids in enumerate(prompts):
        decoded = tokens[row, len(ids):len(ids) + n].tolist()
        assert decoded == _greedy_by_recomputation(model, ids, n, stop_at_eos=False, pad_to=64), f"row {row}"


@pytest.mark.parametrize(
    "cache_width, rows, expected",
    [(192, 1, [128, 192]), (192, 4, [32, 64, 96, 128, 160, 192]), (512, 16, list(range(32, 513, 32))),
     (1024, 16, list(range(64, 1025, 64))), (4096, 1, list(range(256, 4097, 256)))],
)
def test_visible_widths_step_by_chunk_from_four_rows_and_stay_few(cache_width, rows, expected):
    assert decoding.visible_widths(cache_width, rows) == expected


@pytest.mark.parametrize(
    "lengths, width, expected",
    [([1], 192, 0), ([1, 90], 192, 0), ([2, 90], 192, 64), ([65], 192, 64), ([66], 192, 128), ([200], 128, 128)],
)
def test_prefill_runs_only_positions_before_the_shortest_prompts_last(lengths, width, expected):
    assert decoding.prefill_width(lengths, width) == expected


def test_batch_of_ragged_prompts_equals_one_at_a_time(model):
    together = kz.generate(model, PROMPTS, max_new_tokens=10)
    alone = [kz.generate(model, p, max_new_tokens=10) for p in PROMPTS]
    assert together == alone


def test_beam_with_one_beam_is_greedy(model):
    assert kz.generate(model, PROMPTS[:2], 8, sampler="beam", num_beams=1) == kz.generate(model, PROMPTS[:2], 8)


def test_beam_search_returns_text_per_prompt(model):
    out = kz.generate(model, PROMPTS[:2], 8, sampler="beam", num_beams=3)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


@pytest.mark.parametrize("sampler", ["temperature", "top_k", "top_p"])
def test_seeded_sampling_is_reproducible(model, sampler):
    a = kz.generate(model, "hello", 16, sampler=sampler, temperature=1.5, top_k=20, top_p=0.95, seed=3)
    b = kz.generate(model, "hello", 16, sampler=sampler, temperature=1.5, top_k=20, top_p=0.95, seed=3)
    c = [kz.generate(model, "hello", 16, sampler=sampler, temperature=1.5, top_k=20, top_p=0.95, seed=s)
         for s in range(4, 8)]
    assert a == b and any(x != a for x in c)


def test_top_k_one_is_greedy(model):
    assert kz.generate(model, "hello", 10, sampler="top_k", top_k=1, seed=5) == kz.generate(model, "hello", 10)


def test_tiny_top_p_is_greedy(model):
    assert kz.generate(model, "hello", 10, sampler="top_p", top_p=1e-6, seed=5) == kz.generate(model, "hello", 10)


def test_never_returns_text_past_a_stop_string(model):
    full = kz.generate(model, "hello", 20)
    assert len(full) >= 4, "the seeded test model writes enough text to cut"
    stop = full[2:4]
    out = kz.generate(model, "hello", 20, stop=[stop])
    assert stop not in out and full.startswith(out)
    assert "".join(stream(model, "hello", 20, stop=[stop])) == out


def test_stream_pieces_join_to_generate(model):
    pieces = list(stream(model, "hello", 20))
    assert "".join(pieces) == kz.generate(model, "hello", 20)


def test_prompt_longer_than_the_context_keeps_its_end(tokenizer):
    model = build("gpt", tokenizer=tokenizer, max_length=32, num_layers=1, num_heads=2, hidden_dim=8)
    assert isinstance(kz.generate(model, "x" * 100, 8), str)
    with pytest.raises(ValueError, match="does not fit the model's context"):
        kz.generate(model, "x", 32)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="counts tf.function traces")
def test_no_retrace_within_a_shape_bucket(tokenizer):
    model = build("gpt", tokenizer=tokenizer, max_length=128, num_layers=1, num_heads=2, hidden_dim=8)
    for prompt in ["a", "abc", "abcdefgh"]:
        kz.generate(model, prompt, 10)
    loops = [fns[1] for fns in compiler.COMPILED[model].values()]
    assert len(loops) == 1 and loops[0].experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(sampler="nucleus"), "unknown sampler 'nucleus'"),
        (dict(sampler="temperature", temperature=0), "temperature must be > 0"),
        (dict(sampler="top_p", top_p=1.5), "top_p must be in"),
        (dict(sampler="top_k", top_k=0), "top_k must be at least 1"),
        (dict(stop="end"), "stop must be a list"),
    ],
)
def test_bad_arguments(tokenizer, kwargs, message):
    model = build("rnn", tokenizer=tokenizer, embed_dim=4, hidden_dim=4, num_layers=1)
    with pytest.raises(ValueError, match=message):
        kz.generate(model, "x", **{"max_new_tokens": 4, **kwargs})


def test_bad_prompts(tokenizer):
    model = build("rnn", tokenizer=tokenizer, embed_dim=4, hidden_dim=4, num_layers=1)
    for prompts in ([], [1, 2], None):
        with pytest.raises(ValueError, match="prompts"):
            kz.generate(model, prompts, 4)


@pytest.mark.parametrize("tie", [True, False])
def test_gpt_cached_logits_equal_the_forward_pass(tie):
    keras.utils.set_random_seed(1)
    model = build("gpt", vocab_size=40, max_length=16, num_layers=2, num_heads=2, hidden_dim=8, tie_embeddings=tie)
    x = np.random.default_rng(0).integers(0, 40, (2, 9)).astype("int32")
    full = keras.ops.convert_to_numpy(keras.ops.stop_gradient(model(x)))
    cache = model.init_cache(2, 16)
    _, cache = model.call_with_cache(x[:, :4], cache, 0)  # prefill 4, then step
    steps = []
    for t in range(4, 9):
        logits, cache = model.call_with_cache(x[:, t:t + 1], cache, t)
        steps.append(keras.ops.convert_to_numpy(keras.ops.stop_gradient(logits))[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), full[:, 4:], atol=1e-5)


@pytest.mark.core  # CI's PyTorch run is the core suite
@pytest.mark.parametrize("rows", [1, 2])
def test_torch_step_with_packed_products_equals_the_forward_pass(rows):
    """The eager PyTorch decoding step, its weights packed for ``rows`` rows, gives the model's logits."""
    if keras.backend.backend() != "torch":
        pytest.skip("the plain-torch step")
    import torch

    from kerazoo.models.gpt import step_torch as gpt_decode_torch

    keras.utils.set_random_seed(1)
    model = build("gpt", vocab_size=40, max_length=16, num_layers=2, num_heads=2, hidden_dim=8, logit_bias=True)
    x = np.random.default_rng(0).integers(0, 40, (2, 9)).astype("int32")
    full = keras.ops.convert_to_numpy(keras.ops.stop_gradient(model(x)))
    step = gpt_decode_torch.TorchStep(model, rows)
    packed = step.blocks[0].ff1.packed is not None
    onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    on_cpu = step.blocks[0].ff1.kernel.device.type == "cpu"
    assert packed == (rows > 1 and onednn and on_cpu), "packs exactly when it pays"
    cache = model.init_cache(2, 16)
    with torch.inference_mode():
        step(torch.as_tensor(x[:, :4]).long(), cache, 0)  # a 4-position prefill: 8 rows
        logits = [step(torch.as_tensor(x[:, t:t + 1]).long(), cache, t)[:, 0].numpy() for t in range(4, 9)]
    np.testing.assert_allclose(np.stack(logits, 1), full[:, 4:], atol=1e-5)


def test_no_seed_means_fresh_samples(model):
    outs = {kz.generate(model, "hello", 16, sampler="temperature", temperature=2.0) for _ in range(4)}
    assert len(outs) > 1


def test_temperature_alone_means_sampling_and_greedy_refuses_it(model):
    a = kz.generate(model, "hello", 12, temperature=2.0, seed=1)
    assert a == kz.generate(model, "hello", 12, sampler="temperature", temperature=2.0, seed=1)
    with pytest.raises(ValueError, match="temperature has no effect with sampler='greedy'"):
        kz.generate(model, "hello", 4, sampler="greedy", temperature=0.5)


def test_stream_is_exported(model):
    assert "".join(kz.stream(model, "hello", 8)) == kz.generate(model, "hello", 8)


@pytest.mark.core  # every backend: each has its own product
@pytest.mark.parametrize("a_shape, b_shape", [((2, 3, 5), (7, 5)), ((2, 4, 1, 8), (2, 4, 6, 8))])
def test_matmul_t_is_a_times_b_transposed(a_shape, b_shape):
    from kerazoo.models.gpt import step as gpt_decode

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape).astype("float32"), rng.standard_normal(b_shape).astype("float32")
    out = gpt_decode.matmul_t(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), a @ np.swapaxes(b, -1, -2), rtol=1e-5, atol=1e-5)


@pytest.mark.core  # CI's JAX run is the core suite
def test_matmul_t_reads_b_as_stored_on_jax():
    """No transpose op in the lowered product: in the decoding loop XLA made it a copy of every cached key per token."""
    if keras.backend.backend() != "jax":
        pytest.skip("checks the JAX lowering")
    import jax

    from kerazoo.models.gpt import step as gpt_decode

    q, keys = np.zeros((1, 4, 1, 8), "float32"), np.zeros((1, 4, 32, 8), "float32")
    lowered = jax.jit(gpt_decode.matmul_t).lower(q, keys).as_text()
    assert "dot_general" in lowered and "transpose" not in lowered


@pytest.mark.core  # CI's JAX run is the core suite
def test_jax_decoding_of_several_rows_keeps_products_out_of_ynnpack():
    """From two rows up, JAX decoding on CPU compiles its products with XLA's own kernels, one row with the defaults."""
    if keras.backend.backend() != "jax":
        pytest.skip("checks the JAX compiler options")
    import jax

    if jax.default_backend() != "cpu":
        pytest.skip("a CPU option")
    assert compiler.jax_cpu_options(1) is None
    if jax.__version_info__ < (0, 10):
        pytest.skip("the option is set from jax 0.10 on")

    def product(x, w):
        return x @ w

    args = (np.ones((16, 256), np.float32), np.ones((256, 768), np.float32))
    hlo = {
        rows: jax.jit(product, compiler_options=compiler.jax_cpu_options(rows)).lower(*args).compile().as_text()
        for rows in (1, 16)
    }
    if "__ynn_fusion" not in hlo[1]:
        pytest.skip("this XLA build does not hand the product to YNNPACK by default")
    assert "__ynn_fusion" not in hlo[16]
