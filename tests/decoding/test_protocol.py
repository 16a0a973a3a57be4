"""The cached-LM protocol is declared, and the loops decode any model that declares it."""

import keras
import numpy as np
import pytest
from keras import ops

from kerazoo.decoding import plan, positions
from kerazoo.decoding.loop import DecodeState
from kerazoo.decoding.protocol import CachedLM, ChunkedLM
from kerazoo.decoding.sampling import SamplerSpec
from kerazoo.models import build
from kerazoo.text.special import EOS_ID, PAD_ID

VOCAB = 12


class Bigram(CachedLM, keras.Model):
    """A toy state-free LM: the next token's logits are a row of a table."""

    prefills_prompt = False

    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = self.add_weight(shape=table.shape, initializer=keras.initializers.Constant(table), name="table")

    def init_cache(self, batch_size, length=None):
        return ops.zeros((batch_size, 1))

    def call_with_cache(self, token_ids, cache, index=None):
        return ops.take(self.table, token_ids, axis=0), cache


def _chain(*pairs):
    """A table whose argmax follows ``a -> b`` for each pair."""
    table = np.zeros((VOCAB, VOCAB), np.float32)
    for a, b in pairs:
        table[a, b] = 5.0
    return table


@pytest.mark.core
def test_a_model_declaring_the_protocol_decodes():
    """No attribute probing: a new architecture needs only the protocol's methods."""
    model = Bigram(_chain((EOS_ID, 9), (5, 6), (6, 7), (7, EOS_ID), (8, 5), (9, 9)))
    state = DecodeState(model, [[EOS_ID, 5], [EOS_ID, 8, 6, 9]], 6, SamplerSpec("greedy"))
    state.advance()
    # Row 0 stops at the end token; row 1 copies its prompt (8, 6, 9), then follows 9 -> 9.
    assert state.new_ids() == [[6, 7], [9] * 6]


def test_the_zoo_declares_the_protocol():
    gpt = build("gpt", vocab_size=20, max_length=16, num_layers=1, num_heads=2, hidden_dim=8)
    assert isinstance(gpt, ChunkedLM) and gpt.prefills_prompt
    llama = build("llama", vocab_size=20, max_length=16, num_layers=1, num_heads=2, num_kv_heads=1, hidden_dim=8)
    assert isinstance(llama, ChunkedLM) and llama.prefills_prompt
    for cell in ("rnn", "gru", "lstm"):
        model = build(cell, vocab_size=20, embed_dim=4, hidden_dim=8, num_layers=1)
        assert isinstance(model, CachedLM) and not isinstance(model, ChunkedLM) and not model.prefills_prompt
    seq2seq = build("seq2seq", vocab_size=20, max_source_length=8, max_length=8, num_encoder_layers=1,
                    num_decoder_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    assert isinstance(seq2seq, CachedLM) and seq2seq.prefills_prompt


def test_position_rule():
    chosen = np.array([4, 4, 4, 4], np.int32)
    current = np.array([9, 9, 9, 9], np.int32)
    forced = np.array([True, False, False, False])
    done = np.array([False, True, False, False])
    row_end = np.array([8, 8, 8, 4], np.int32)
    tokens, finished = positions.choose(chosen, current, forced, done, 3, row_end, 4, where=np.where)
    # forced keeps its prompt token; a done row pads; the end token ends a row; so does its last position.
    assert tokens.tolist() == [9, PAD_ID, 4, 4]
    assert finished.tolist() == [False, True, True, True]
    _, finished = positions.choose(chosen, current, forced, np.zeros(4, bool), 3, row_end, -1, where=np.where)
    assert finished.tolist() == [False, False, False, True]  # eos_id -1: only the last position ends a row


def test_end_token_cut():
    tokens = np.array([[1, 2, 7, EOS_ID, 8], [1, 7, 7, 7, 7], [1, 7, 8, PAD_ID, 9]], np.int32)
    ids = positions.new_ids(tokens, np.array([2, 1, 1]), np.array([5, 3, 5]), EOS_ID)
    assert ids == [[7], [7, 7], [7, 8, 9]]


def test_prefill_plan():
    assert plan.prefill_positions(5) == 4
    assert plan.prefill_width([5, 9], 256) == plan.LENGTH_BUCKET
    assert plan.prefill_width([1, 9], 256) == 0
    gpt = build("gpt", vocab_size=20, max_length=16, num_layers=1, num_heads=2, hidden_dim=8)
    lstm = build("lstm", vocab_size=20, embed_dim=4, hidden_dim=8, num_layers=1)
    assert plan.first_index(gpt, 4) == 5 and plan.first_index(lstm, 4) == 1
