"""Next-token samplers: masks keep the right candidates; noise is a function of (seed, position)."""

import numpy as np
import pytest
from keras import ops

from kerazoo.decoding import sampling
from kerazoo.decoding.sampling import SamplerSpec, next_token

LOGITS = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float32))


def _np(x):
    return ops.convert_to_numpy(x)


def test_top_k_mask_keeps_k_largest():
    masked = _np(sampling._mask_top_k(ops.convert_to_tensor(LOGITS), 2))
    assert np.isfinite(masked[0, :2]).all() and (masked[0, 2:] < -1e8).all()


@pytest.mark.parametrize("top_p, kept", [(0.4, 1), (0.6, 2), (0.9, 3), (1.0, 4)])
def test_top_p_mask_keeps_the_smallest_set_reaching_p(top_p, kept):
    masked = _np(sampling._mask_top_p(ops.convert_to_tensor(LOGITS), top_p))
    assert int((masked[0] > -1e8).sum()) == kept


def test_noise_depends_only_on_seed_and_position():
    a = _np(sampling.uniform_noise((2, 5), np.int32(1), np.int32(7)))
    assert np.array_equal(a, _np(sampling.uniform_noise((2, 5), np.int32(1), np.int32(7))))
    assert not np.array_equal(a, _np(sampling.uniform_noise((2, 5), np.int32(1), np.int32(8))))
    assert ((a > 0) & (a < 1)).all()


def test_sampling_follows_the_distribution():
    """Gumbel-max draws from softmax(logits): frequencies match the probabilities."""
    spec = SamplerSpec("temperature")
    logits = ops.convert_to_tensor(np.repeat(LOGITS, 2000, axis=0))
    draws = _np(next_token(logits, spec, np.float32(1.0), np.float32(1.0), np.int32(0), np.int32(3)))
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.04)


def test_greedy_is_argmax():
    out = _np(next_token(ops.convert_to_tensor(LOGITS), SamplerSpec(), np.float32(1), np.float32(1), np.int32(0), np.int32(0)))
    assert out.tolist() == [0]


@pytest.mark.parametrize(
    "spec, message",
    [
        (SamplerSpec("nucleus"), "unknown sampler"),
        (SamplerSpec("temperature", temperature=0.0), "temperature must be > 0"),
        (SamplerSpec("top_k", top_k=0), "top_k must be at least 1"),
        (SamplerSpec("top_p", top_p=0.0), "top_p must be in"),
        (SamplerSpec("beam", num_beams=0), "num_beams must be at least 1"),
    ],
)
def test_invalid_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        spec.validate()
