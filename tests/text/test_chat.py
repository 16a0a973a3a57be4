"""The chat template: role tokens after the base vocabulary, ids only from the template, saved with the model."""

import keras
import numpy as np
import pytest

from kerazoo.models import build
from kerazoo.text import WordPieceTokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from kerazoo.text.chat import ChatTokenizer, conversation_ids, exchange_ids, with_chat_tokens
from kerazoo.text.special import EOS_ID, SPECIAL_TOKENS


@pytest.fixture(scope="module")
def chat():
    return ChatTokenizer(train_tokenizer(["hello there, 你好"] * 3, "byte"))


def test_role_tokens_follow_the_base_vocabulary(chat):
    assert (chat.user_id, chat.assistant_id, chat.vocabulary_size()) == (261, 262, 263)
    assert chat.get_vocabulary()[-2:] == ["<|user|>", "<|assistant|>"]
    assert chat.token_to_id("<|assistant|>") == 262 and chat.id_to_token(261) == "<|user|>"
    assert chat.base.vocabulary_size() == 261  # the wrapped tokenizer is unchanged


def test_text_never_yields_a_role_token_and_detokenize_drops_them(chat):
    ids = np.asarray(chat.tokenize("<|user|> 你好")).tolist()
    assert chat.user_id not in ids and chat.assistant_id not in ids
    assert chat.detokenize([chat.user_id, *ids, chat.assistant_id, EOS_ID]).numpy().decode() == "<|user|> 你好"


def test_template_layout(chat):
    ids, is_response = exchange_ids(chat, [10, 11], [20])
    assert ids.tolist() == [261, 10, 11, 262, 20, EOS_ID]
    assert is_response.tolist() == [False, False, False, False, True, True]
    open_turn = conversation_ids(chat, [("a", "b")], "c")
    a, b, c = (np.asarray(chat.tokenize(t)).tolist() for t in "abc")
    assert open_turn == [EOS_ID, 261, *a, 262, *b, EOS_ID, 261, *c, 262]


def test_saves_as_a_folder_and_inside_a_model(chat, tmp_path):
    save_tokenizer(chat, tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    assert isinstance(again, ChatTokenizer) and again.vocabulary_size() == 263
    assert np.asarray(again.tokenize("hello")).tolist() == np.asarray(chat.tokenize("hello")).tolist()
    model = build("gpt", tokenizer=chat, max_length=8, num_layers=1, num_heads=2, hidden_dim=8)
    model.save(str(tmp_path / "m.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "m.keras"), safe_mode=True)
    assert isinstance(loaded.tokenizer, ChatTokenizer) and loaded.tokenizer.vocabulary_size() == 263


def test_a_role_token_already_in_the_vocabulary_is_refused():
    base = WordPieceTokenizer(vocabulary=[*SPECIAL_TOKENS, "<|user|>", "a", "b"])
    with pytest.raises(ValueError, match=r"chat template token <\|user\|> is already in the tokenizer's vocabulary"):
        with_chat_tokens(base)
    with pytest.raises(ValueError, match="already has the chat tokens"):
        ChatTokenizer(ChatTokenizer(train_tokenizer(["x"], "byte")))
