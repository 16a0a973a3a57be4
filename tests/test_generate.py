"""Simple generation: greedy is deterministic, sampling is seeded, stops at end of text."""

import numpy as np
import pytest

from kerazoo.generate import generate, generate_ids
from kerazoo.models import build
from kerazoo.tokenizers import train_tokenizer


@pytest.fixture(scope="module")
def model():
    tok = train_tokenizer(["hello world, 你好世界"], "byte")
    return build("gpt", tokenizer=tok, max_length=16, num_layers=1, num_heads=2, hidden_dim=8)


def test_greedy_is_deterministic_and_matches_argmax(model):
    prompt = [3, 10, 11]
    new = generate_ids(model, prompt, 3, temperature=0.0)
    seq = list(prompt)
    for token in new:
        logits = np.asarray(model.predict_on_batch(np.array([seq], np.int32)))[0, -1]
        assert token == int(np.argmax(logits))
        seq.append(token)


def test_sampling_is_seeded(model):
    a = generate(model, "hello", 8, temperature=1.0, seed=7)
    assert a == generate(model, "hello", 8, temperature=1.0, seed=7)


def test_long_prompts_slide_past_the_context(model):
    new = generate_ids(model, list(range(5, 40)), 4, temperature=0.0)
    assert len(new) <= 4


def test_empty_and_chinese_prompts(model):
    assert isinstance(generate(model, "", 4), str)
    assert isinstance(generate(model, "你好", 4), str)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, "x", 0)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, "x", 4, temperature=-1)
