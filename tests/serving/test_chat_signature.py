"""An sft model's export gets a ``chat`` signature: past exchanges and a new message in, the reply out."""

import keras
import numpy as np
import pytest

from kerazoo.models import build
from kerazoo.text import chat
from tests.models.test_gpt_step import spread

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TF Serving graphs")

HISTORY = [[("hi", "yo"), ("cat", "chat")], [("", ""), ("", "")], [("dog", "chien"), ("", "")]]
PROMPTS = ["one", "sun", "héllo 😀"]


@pytest.fixture(scope="module")
def model():
    from kerazoo import train_tokenizer

    tokenizer = chat.ChatTokenizer(train_tokenizer(["x"], "byte"))
    keras.utils.set_random_seed(0)
    return spread(build("llama", tokenizer=tokenizer, max_length=64, num_layers=1, num_heads=2, num_kv_heads=1,
                        hidden_dim=16, dropout=0.0), seed=2)


def _turns(row):
    return [pair for pair in row if pair != ("", "")]


def test_the_graph_template_gives_the_ids_kerazoo_chat_decodes(model):
    import tensorflow as tf

    from kerazoo.serving import chat_template

    ids = chat_template.conversation_ids(model.tokenizer, tf.constant(HISTORY), tf.constant(PROMPTS))
    for row, prompt, got in zip(HISTORY, PROMPTS, ids.to_list()):
        assert got == chat.conversation_ids(model.tokenizer, _turns(row), prompt)


def test_the_chat_signature_replies_as_kerazoo_chat(model):
    import tensorflow as tf

    from kerazoo.inference import chat as chat_inference
    from kerazoo.serving import signatures

    endpoints = signatures.causal_lm(model, model.tokenizer)
    rows, new = len(PROMPTS), 6
    out = endpoints["chat"](
        prompts=tf.constant(PROMPTS), history=tf.constant(HISTORY), max_new_tokens=tf.fill([rows], new),
        temperature=tf.fill([rows], 0.0), top_k=tf.fill([rows], 0), top_p=tf.fill([rows], 1.0),
        seed=tf.fill([rows], 0))
    expected = ["".join(chat_inference.stream_reply(model, _turns(row), prompt, new))
                for row, prompt in zip(HISTORY, PROMPTS)]
    assert [t.decode("utf-8") for t in out["texts"].numpy()] == expected
    assert len(set(expected)) > 1  # the history and the message change the reply
    # A model without the chat tokens has no chat signature.
    plain = build("gpt", vocab_size=40, max_length=16, num_layers=1, num_heads=2, hidden_dim=8)
    assert "chat" not in signatures.causal_lm(plain, None)
    np.testing.assert_array_equal(out["token_counts"].numpy() <= new, True)
