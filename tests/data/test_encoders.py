"""The store's encoders give the tokenizer layer's ids (kerazoo.data.encoders)."""

import numpy as np
import pytest

from kerazoo import data
from kerazoo import text as tokenizers
from kerazoo.data import encoders
from kerazoo.data import prepare as prep


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def pydocs():
    return data.read_corpus("builtin:pydocs")


def layer_ids(tokenizer, texts):
    return [r.numpy() for r in tokenizer.tokenize(texts)]


@pytest.mark.parametrize("lowercase", [False, True])
def test_bpe_store_ids_equal_the_layer(tmp_path, cache, pydocs, lowercase):
    tokenizer = tokenizers.train_tokenizer(pydocs, "bpe", 700, lowercase=lowercase, max_size=True)
    encoder = encoders.Encoder(tokenizer, 2)
    assert encoder.engine == "sentencepiece"
    # One batch of every document (the library spreads it over its threads), against the layer's op.
    flat, lengths = encoder.encode(pydocs)
    np.testing.assert_array_equal(flat, np.concatenate(layer_ids(tokenizer, pydocs)))
    np.testing.assert_array_equal(lengths, [len(ids) for ids in layer_ids(tokenizer, pydocs)])
    # Through prepare, with shards closing inside batches: the store equals the in-memory path.
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join(pydocs[:40]) + "\n", encoding="utf-8")
    got = prep.prepare_store(prep.CorpusSpec(str(corpus), boundary="blank_line"), tokenizer,
                             log=lambda *_: None, shard_tokens=2000)
    assert got.manifest["encoder"] == "sentencepiece" and len(got.manifest["shards"]) > 3
    docs = data.read_corpus(str(corpus), boundary="blank_line")
    train, val = data.split_corpus(docs, 0.1, 0, "auto")
    for name, split_docs in (("train", train), ("val", val)):
        s = got.stream(name)
        np.testing.assert_array_equal(s.read(0, len(s)), data.tokenize_documents(tokenizer, split_docs))
        assert s.n_bytes == sum(len(d.encode()) for d in split_docs) and s.n_docs == len(split_docs)


def test_unigram_and_char_keep_the_layers_op(pydocs):
    # Unigram: TF Text's copy of SentencePiece and the library break ties between equal-score
    # segmentations differently (docs/data.md), so the store keeps the layer's own op.
    for tokenizer in (tokenizers.train_tokenizer(pydocs, "unigram", 700, max_size=True),
                      tokenizers.train_tokenizer(pydocs, "char")):
        encoder = encoders.Encoder(tokenizer, 2)
        assert encoder.engine == "tf_text"
        flat, lengths = encoder.encode(pydocs[:5])
        np.testing.assert_array_equal(flat, np.concatenate(layer_ids(tokenizer, pydocs[:5])))


@pytest.mark.parametrize("kind,vocab_size", [("unigram", 700), ("bpe", 700), ("char", None), ("byte", None),
                                             ("wordpiece", 600)])
def test_long_pieces_cut_after_newlines_give_the_layers_ids(pydocs, kind, vocab_size):
    tokenizer = tokenizers.train_tokenizer(pydocs, kind, vocab_size, **({"max_size": True} if kind != "wordpiece" else {}))
    encoder = encoders.Encoder(tokenizer, 2)
    assert encoder.cut_chars and encoder.engine == ("sentencepiece" if kind == "bpe" else "tf_text")
    joined = "".join(pydocs)
    texts = [joined[:80_000], "short one\n", joined[:encoder.cut_chars - 100]]
    parts = encoders.cut_after_newlines(texts[0], encoder.cut_chars)
    assert len(parts) > 1 and "".join(parts) == texts[0]
    flat, lengths = encoder.encode(texts)
    expected = layer_ids(tokenizer, texts)
    if kind == "unigram":
        # Between segmentations of equal score the op's choice depends on where the text starts
        # (docs/data.md): a long text's ids are the layer's ids of its parts.
        expected[0] = np.concatenate(layer_ids(tokenizer, parts))
    np.testing.assert_array_equal(lengths, [len(ids) for ids in expected])
    np.testing.assert_array_equal(flat, np.concatenate(expected))
