"""The interpolated Kneser-Ney n-gram baseline: hand-computed probabilities, saving, the run and the leaderboard."""

import json
import os

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo.lab import leaderboard
from kerazoo.models.ngram import NGramLM, count_ngrams


def test_bigram_probabilities_by_hand():
    """Stream 0 1 0 1 2, vocabulary 3, order 2.

    Bigrams: (0,1) x2, (1,0), (1,2): D2 = n1 / (n1 + 2 n2) = 2 / 4 = 0.5.
    Continuation counts of the unigrams are 1, 1, 1 (one distinct left
    neighbour each): D1 = 1, so P1 is uniform, 1/3.
    After 0 (count 2, one follower):  P(1|0) = 1.5/2 + 0.5*1/2 * 1/3 = 5/6, the others 1/12.
    After 1 (count 2, two followers): P(0|1) = P(2|1) = 0.5/2 + 0.5*2/2 * 1/3 = 5/12, P(1|1) = 1/6.
    After 2 (never seen as a context): P1, 1/3 each.
    """
    model = NGramLM.from_counts(np.array([0, 1, 0, 1, 2]), vocab_size=3, order=2)
    probs = model.distributions(np.array([[0], [1], [2]]))
    np.testing.assert_allclose(probs, [[1 / 12, 5 / 6, 1 / 12], [5 / 12, 1 / 6, 5 / 12], [1 / 3] * 3], atol=1e-6)


def test_probabilities_sum_to_one_and_short_contexts_back_off():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 11, size=400)
    model = NGramLM.from_counts(ids, vocab_size=11, order=4)
    probs = model.distributions(rng.integers(0, 11, size=(50, 3)), rng.integers(0, 4, size=(50,)))
    assert probs.min() > 0
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # A context of length 0 is the unigram distribution whatever tokens sit in the unused slots.
    a, b = model.distributions(np.array([[1, 2, 3], [4, 5, 6]]), np.array([0, 0]))
    np.testing.assert_allclose(a, b)
    logp = model.predict_on_batch(ids[None, :20])
    assert logp.shape == (1, 20, 11)
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, atol=1e-5)


def test_chunked_counting_equals_one_pass():
    ids = np.random.default_rng(1).integers(0, 7, size=300)
    whole, chunked = count_ngrams(ids, 3, 7), count_ngrams(ids, 3, 7, chunk=17)
    for (k1, c1), (k2, c2) in zip(whole, chunked):
        np.testing.assert_array_equal(k1, k2)
        np.testing.assert_array_equal(c1, c2)
    assert sum(whole[2][1]) == len(ids) - 2


def test_saves_and_loads_in_safe_mode_and_samples(tmp_path):
    ids = np.random.default_rng(2).integers(0, 9, size=300)
    model = NGramLM.from_counts(ids, vocab_size=9, order=3)
    path = str(tmp_path / "ngram.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(again.predict_on_batch(ids[None, :30]), model.predict_on_batch(ids[None, :30]))
    assert again.count_params() == model.count_params() > 0
    assert model.sample([3], 8, temperature=0, seed=0) == again.sample([3], 8, temperature=0, seed=0)
    assert len(model.sample([3], 8, temperature=1.0, seed=0)) == 8


def test_order_too_large_for_the_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="too large"):
        NGramLM(vocab_size=50000, order=5)


def test_run_reports_bits_per_byte_and_generates(tmp_path, text_file):
    recipe = tmp_path / "ng.toml"
    recipe.write_text(f'name = "ng"\n[data]\nsource = "{text_file}"\nsplit = "tail"\n[tokenizer]\nkind = "byte"\n'
                      '[model]\narch = "ngram"\norder = 3\n[train]\nseq_len = 32\nbatch_size = 4\nsteps = 10\n'
                      'eval_every = 5\nwarmup_steps = 1\nsample_prompt = "The "\n')
    result = kz.run_recipe(kz.load_recipe(str(recipe)), str(tmp_path / "runs"), verbose=0, log=lambda *_: None)
    m = json.loads(open(os.path.join(result.path, "metrics.json")).read())
    assert m["arch"] == "ngram" and m["task"] == "ngram"
    assert m["tokens_seen"] == 10 * 4 * 32  # the neural archs' budget of steps x batch x seq_len
    assert 0 < m["val_bits_per_byte"] < 8  # well below a uniform guess over 261 byte ids (8.03)
    text = kz.generate(result.path, "The ", max_new_tokens=5, temperature=0.7, seed=0)
    assert isinstance(text, str)


def test_the_leaderboard_ranks_the_ngram_as_the_floor():
    assert "ngram" in leaderboard.causal_archs()
    # --set values for the neural archs leave the n-gram's recipe alone; its own apply.
    recipe = leaderboard.recipe_for("ngram", "builtin:pydocs", "byte", None, 10**5,
                                    ["model.hidden_dim=16", "model.order=2", "train.seq_len=32"])
    assert recipe.model == {"arch": "ngram", "order": 2} and recipe.train.seq_len == 32
    rows = [{"arch": a, "params": 10, "val_bits_per_byte": b, "val_loss": 1.0, "train_seconds": 1.0,
             "tokens_per_sec": 5.0, "tokenizer": "byte", "tokens_seen": 5, "backend": "jax"}
            for a, b in (("gpt", 2.0), ("ngram", 3.0))]
    assert "| 2 | ngram (floor) |" in leaderboard.markdown(rows)
