"""Tests of what every kerazoo tokenizer shares: special ids, the TF-only API, configs."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kerazoo import text as tk
from tests.text.common import CHINESE, CORPUS, VOCAB_SIZES, ids_of, round_trip, squash, text_of


def test_special_token_constants():
    assert tk.SPECIAL_TOKENS == ("<pad>", "<unk>", "<s>", "</s>", "<mask>")
    assert (tk.PAD_ID, tk.UNK_ID, tk.BOS_ID, tk.EOS_ID, tk.MASK_ID) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert tk.KINDS == ("byte", "char", "wordpiece", "unigram", "bpe")


@pytest.mark.parametrize("kind", tk.KINDS)
def test_special_ids_are_fixed(trained, kind):
    tokenizer = trained[kind]
    assert tokenizer.kind == kind
    ids = (
        tokenizer.pad_id,
        tokenizer.unk_id,
        tokenizer.bos_id,
        tokenizer.eos_id,
        tokenizer.mask_id,
    )
    assert ids == (0, 1, 2, 3, 4)
    assert all(type(i) is int for i in ids)
    assert tokenizer.get_vocabulary()[:5] == list(tk.SPECIAL_TOKENS)
    for i, token in enumerate(tk.SPECIAL_TOKENS):
        assert tokenizer.token_to_id(token) == i
        assert tokenizer.id_to_token(i) == token
    # keras_hub's own names for them, read by keras_hub preprocessors.
    assert sorted(tokenizer.special_token_ids) == [0, 1, 2, 3, 4]
    assert sorted(tokenizer.special_tokens) == sorted(tk.SPECIAL_TOKENS)
    assert tokenizer.start_token_id == 2
    assert tokenizer.end_token_id == 3
    assert tokenizer.pad_token_id == 0


@pytest.mark.parametrize("kind", tk.KINDS)
def test_vocabulary_size_matches_vocabulary(trained, kind):
    tokenizer = trained[kind]
    size = tokenizer.vocabulary_size()
    assert len(tokenizer.get_vocabulary()) == size
    if VOCAB_SIZES[kind] is not None and kind != "wordpiece":
        assert size == VOCAB_SIZES[kind]
    last = tokenizer.get_vocabulary()[-1]
    assert tokenizer.id_to_token(size - 1) == last
    with pytest.raises(ValueError, match="range"):
        tokenizer.id_to_token(size)


@pytest.mark.parametrize("kind", tk.KINDS)
def test_tokenize_single_and_batch(trained, kind):
    tokenizer = trained[kind]
    single = tokenizer.tokenize("hello world")
    assert isinstance(single, tf.Tensor)
    assert single.dtype == tf.int32 and single.shape.rank == 1
    batch = tokenizer.tokenize(["hello world", "a", ""])
    assert isinstance(batch, tf.RaggedTensor)
    assert batch.dtype == tf.int32 and batch.shape.rank == 2
    assert batch[0].numpy().tolist() == single.numpy().tolist()
    assert batch[2].numpy().tolist() == []
    # A 1-D string tensor and a NumPy array batch the same way.
    same = tokenizer.tokenize(tf.constant(["hello world", "a", ""]))
    assert same.to_list() == batch.to_list()
    assert tokenizer.tokenize(np.array(["hello world"])).to_list() == [
        single.numpy().tolist()
    ]
    # Calling the layer tokenizes.
    assert tokenizer("hello world").numpy().tolist() == single.numpy().tolist()


@pytest.mark.parametrize("kind", tk.KINDS)
def test_tokenize_inside_tf_data_map(trained, kind):
    tokenizer = trained[kind]
    texts = ["hello world", CHINESE[:20], "x"]
    eager = [ids_of(tokenizer, text) for text in texts]
    unbatched = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.tokenize)
    assert [ids.numpy().tolist() for ids in unbatched] == eager
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(tokenizer)
    assert next(iter(batched)).to_list() == eager
    # And back to text, in the same pipeline.
    texts_back = batched.map(tokenizer.detokenize)
    expected = [text_of(tokenizer.detokenize(ids)) for ids in eager]
    assert [t.decode("utf-8") for t in next(iter(texts_back)).numpy()] == expected


@pytest.mark.parametrize("kind", tk.KINDS)
def test_detokenize_drops_special_ids(trained, kind):
    tokenizer = trained[kind]
    ids = ids_of(tokenizer, "hello world")
    plain = text_of(tokenizer.detokenize(ids))
    noisy = [2, 4] + ids[:2] + [1, 4] + ids[2:] + [3, 0, 0]
    assert text_of(tokenizer.detokenize(noisy)) == plain
    # Ids past the vocabulary (a padded output layer) are dropped too.
    beyond = ids + [tokenizer.vocabulary_size() + 3]
    assert text_of(tokenizer.detokenize(beyond)) == plain


@pytest.mark.parametrize("kind", tk.KINDS)
def test_detokenize_batches(trained, kind):
    tokenizer = trained[kind]
    texts = ["hello world", "the end"]
    ragged = tokenizer.tokenize(texts)
    expected = [text_of(tokenizer.detokenize(row)) for row in ragged]
    from_ragged = tokenizer.detokenize(ragged)
    assert from_ragged.shape == (2,)
    assert [t.decode("utf-8") for t in from_ragged.numpy()] == expected
    padded = ragged.to_tensor(default_value=tk.PAD_ID)
    from_dense = tokenizer.detokenize(padded.numpy())
    assert [t.decode("utf-8") for t in from_dense.numpy()] == expected
    from_lists = tokenizer.detokenize(ragged.to_list())
    assert [t.decode("utf-8") for t in from_lists.numpy()] == expected


def with_sequence_length(tokenizer, length, folder):
    """A copy of ``tokenizer`` (config + assets) with ``sequence_length``."""
    config = {**tokenizer.get_config(), "sequence_length": length}
    clone = type(tokenizer).from_config(config)
    tokenizer.save_assets(folder)
    clone.load_assets(folder)
    return clone


@pytest.mark.parametrize("kind", tk.KINDS)
def test_sequence_length_pads_with_pad_id(trained, kind, tmp_path):
    tokenizer = trained[kind]
    dense = with_sequence_length(tokenizer, 8, str(tmp_path))
    batch = dense.tokenize(["a", "hello world " * 5])
    assert isinstance(batch, tf.Tensor) and batch.shape == (2, 8)
    short = ids_of(tokenizer, "a")
    assert batch[0].numpy().tolist() == short + [tk.PAD_ID] * (8 - len(short))
    assert batch[1].numpy().tolist() == ids_of(tokenizer, "hello world " * 5)[:8]
    assert dense.tokenize("a").numpy().tolist() == batch[0].numpy().tolist()


@pytest.mark.parametrize("kind", ["byte", "char", "wordpiece", "bpe"])
def test_lowercase(kind):
    size = {"byte": None, "char": None, "wordpiece": 300, "bpe": 600}[kind]
    tokenizer = tk.train_tokenizer(CORPUS, kind, size, lowercase=True)
    assert tokenizer.lowercase
    assert ids_of(tokenizer, "Hello WORLD") == ids_of(tokenizer, "hello world")
    assert squash(round_trip(tokenizer, "Hello WORLD")) == "helloworld"


@pytest.mark.parametrize("kind", tk.KINDS)
def test_config_holds_no_vocabulary(trained, kind):
    config = trained[kind].get_config()
    assert len(json.dumps(config)) < 2000
    assert config.get("vocabulary") is None and config.get("proto") is None


def test_tokenize_mistakes(trained):
    tokenizer = trained["char"]
    with pytest.raises(ValueError, match="string"):
        tokenizer.tokenize(123)
    with pytest.raises(ValueError, match="1-D batch"):
        tokenizer.tokenize([["a", "b"]])
    with pytest.raises(ValueError, match="2-D batch"):
        tokenizer.detokenize([[[5]]])


def test_constructor_mistakes():
    with pytest.raises(ValueError, match="must start with"):
        tk.CharTokenizer(vocabulary=["a", "b"])
    with pytest.raises(ValueError, match="single characters"):
        tk.CharTokenizer(vocabulary=[*tk.SPECIAL_TOKENS, "ab"])
    with pytest.raises(ValueError, match="int32"):
        tk.ByteTokenizer(dtype="string")
    with pytest.raises(ValueError, match="oov_token"):
        tk.WordPieceTokenizer(oov_token="[UNK]")
