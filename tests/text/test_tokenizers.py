"""Tests of the kerazoo.text tokenizers: every kind, saving, loading and errors."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from pydoc_data.topics import topics

from kerazoo import text as tk

# A few KB of English (Python's own reference text) and some Chinese.
ENGLISH_DOCS = [topics[name] for name in sorted(topics)][:40]
ENGLISH = "".join(ENGLISH_DOCS)[:30000]
CHINESE = (
    "语言模型根据前面的文字预测下一个词。我们今天学习中文，明天学习英文。"
    "北京是中国的首都，上海是一个很大的城市。\n"
    "你好，世界！今天天气很好，我们去公园散步吧。学而时习之，不亦说乎？"
)
CORPUS = [ENGLISH[i : i + 3000] for i in range(0, len(ENGLISH), 3000)]
CORPUS += [CHINESE] * 3
# Trained sizes the corpus supports for each kind (None: the kind's own).
VOCAB_SIZES = {
    "byte": None,
    "char": None,
    "wordpiece": 400,
    "unigram": 800,
    "bpe": 800,
}
TRAINED_KINDS = ("char", "wordpiece", "unigram", "bpe")

# Mixed text with newlines, tabs, double spaces, CJK and an emoji.
MIXED = (
    "The quick brown fox jumps over the lazy dog.\n"
    "\tdef f(x):  return x ** 2  # 42\n\n"
    "语言模型可以生成文本。你好，世界！ 😀\n"
)


@pytest.fixture(scope="module")
def trained():
    """One tokenizer of every kind, trained once for the whole module."""
    return {
        kind: tk.train_tokenizer(CORPUS, kind, VOCAB_SIZES[kind])
        for kind in tk.KINDS
    }


def ids_of(tokenizer, text):
    """The token ids of one text as a Python list."""
    return tokenizer.tokenize(text).numpy().tolist()


def text_of(tokens):
    """A scalar string tensor as str."""
    return tokens.numpy().decode("utf-8")


def round_trip(tokenizer, text):
    """Tokenizes then detokenizes ``text``."""
    return text_of(tokenizer.detokenize(tokenizer.tokenize(text)))


def squash(text):
    """``text`` without any whitespace."""
    return "".join(text.split())


# ---------------------------------------------------------------------------
# Special tokens and the common API.
# ---------------------------------------------------------------------------


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


def test_byte_vocabulary():
    tokenizer = tk.train_tokenizer(CORPUS, "byte")
    assert tokenizer.vocabulary_size() == 261
    assert ids_of(tokenizer, "A") == [ord("A") + 5]
    assert ids_of(tokenizer, "é") == [0xC3 + 5, 0xA9 + 5]
    assert tokenizer.token_to_id("A") == ord("A") + 5


def test_char_vocabulary_is_most_frequent_first():
    tokenizer = tk.train_tokenizer(["aab", "bbc", "d"], "char", 8)
    # b: 3, a: 2, then c and d tie at 1 and break by codepoint: c wins.
    assert tokenizer.get_vocabulary() == [*tk.SPECIAL_TOKENS, "b", "a", "c"]
    assert ids_of(tokenizer, "abcd") == [6, 5, 7, tk.UNK_ID]


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


# ---------------------------------------------------------------------------
# Round trips.
# ---------------------------------------------------------------------------


def test_byte_round_trips_any_text(trained):
    tokenizer = trained["byte"]
    for text in (MIXED, ENGLISH[:2000], CHINESE, "a\x00b", "", "\r\n  \t"):
        assert round_trip(tokenizer, text) == text


def test_char_round_trips_text_within_its_vocabulary(trained):
    tokenizer = trained["char"]
    # Every character of the corpus is in the (unlimited) vocabulary.
    for text in (ENGLISH[5000:8000], CHINESE, ENGLISH[:300] + "\n\n" + CHINESE):
        assert round_trip(tokenizer, text) == text


def test_char_unknown_characters_become_unk(trained):
    tokenizer = trained["char"]
    assert ids_of(tokenizer, "😀")[0] == tk.UNK_ID
    assert round_trip(tokenizer, "a😀b") == "ab"


def test_char_vocab_size_keeps_the_most_frequent(trained):
    small = tk.train_tokenizer(CORPUS, "char", 30)
    assert small.vocabulary_size() == 30
    full = trained["char"].get_vocabulary()
    assert small.get_vocabulary() == full[:30]


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_sentencepiece_round_trips_exactly_with_byte_fallback(trained, kind):
    tokenizer = trained[kind]
    assert "<0x0A>" in tokenizer.get_vocabulary()  # byte fallback is on
    for text in (MIXED, ENGLISH[10000:13000], CHINESE, "  lead and trail  "):
        assert round_trip(tokenizer, text) == text
    # Characters never seen in training still round-trip, as bytes.
    assert round_trip(tokenizer, "Ωμέγα ☃ 🎉") == "Ωμέγα ☃ 🎉"


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_sentencepiece_newlines_without_byte_fallback(kind):
    corpus = [ENGLISH[:6000]]
    tokenizer = tk.train_tokenizer(corpus, kind, 150)
    assert "<0x0A>" not in tokenizer.get_vocabulary()  # too small for bytes
    assert tokenizer.token_to_id("\n") == 5  # the user-defined newline piece
    text = ENGLISH[:400] + "\n\n" + ENGLISH[600:800] + "\n"
    assert round_trip(tokenizer, text) == text


def test_sentencepiece_mask_piece_is_id_4(trained):
    for kind in ("unigram", "bpe"):
        tokenizer = trained[kind]
        assert tokenizer.id_to_token(4) == "<mask>"
        assert tokenizer.id_to_token(5) == "\n"


def test_sentencepiece_reads_mask_written_in_text(trained):
    # "<mask>" is a user-defined piece, so SentencePiece matches it in raw
    # text; the other special tokens are plain text.
    tokenizer = trained["bpe"]
    assert tk.MASK_ID in ids_of(tokenizer, "a <mask> b")
    assert round_trip(tokenizer, "a <mask> b") == "a  b"
    assert round_trip(tokenizer, "<s> hi </s>") == "<s> hi </s>"


def test_wordpiece_round_trips_up_to_whitespace(trained):
    tokenizer = trained["wordpiece"]
    text = ENGLISH[2000:2600] + "\n" + CHINESE
    assert tk.UNK_ID not in ids_of(tokenizer, text)
    assert squash(round_trip(tokenizer, text)) == squash(text)


def test_wordpiece_uses_word_pieces(trained):
    tokenizer = trained["wordpiece"]
    assert any(token.startswith("##") for token in tokenizer.get_vocabulary())
    # Most words are single tokens: far fewer ids than characters.
    assert len(ids_of(tokenizer, ENGLISH[:3000])) < 3000 / 2


@pytest.mark.parametrize("kind", ["byte", "char", "wordpiece", "bpe"])
def test_lowercase(kind):
    size = {"byte": None, "char": None, "wordpiece": 300, "bpe": 600}[kind]
    tokenizer = tk.train_tokenizer(CORPUS, kind, size, lowercase=True)
    assert tokenizer.lowercase
    assert ids_of(tokenizer, "Hello WORLD") == ids_of(tokenizer, "hello world")
    assert squash(round_trip(tokenizer, "Hello WORLD")) == "helloworld"


# ---------------------------------------------------------------------------
# Determinism, saving and loading.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_training_is_deterministic(trained, kind):
    again = tk.train_tokenizer(list(CORPUS), kind, VOCAB_SIZES[kind])
    assert again.get_vocabulary() == trained[kind].get_vocabulary()
    assert ids_of(again, MIXED) == ids_of(trained[kind], MIXED)


def test_training_accepts_generators_and_bytes():
    from_list = tk.train_tokenizer(CORPUS, "char")
    from_bytes = tk.train_tokenizer((t.encode("utf-8") for t in CORPUS), "char")
    assert from_bytes.get_vocabulary() == from_list.get_vocabulary()


@pytest.mark.parametrize("kind", tk.KINDS)
def test_config_holds_no_vocabulary(trained, kind):
    config = trained[kind].get_config()
    assert len(json.dumps(config)) < 2000
    assert config.get("vocabulary") is None and config.get("proto") is None


@pytest.mark.parametrize("kind", tk.KINDS)
def test_save_and_load_tokenizer(trained, kind, tmp_path):
    tokenizer = trained[kind]
    path = tmp_path / "tok"
    tk.save_tokenizer(tokenizer, path)
    assert sorted(os.listdir(path)) == ["assets", "config.json"]
    loaded = tk.load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.kind == kind
    assert loaded.get_vocabulary() == tokenizer.get_vocabulary()
    assert ids_of(loaded, MIXED) == ids_of(tokenizer, MIXED)
    assert text_of(loaded.detokenize(ids_of(loaded, MIXED))) == round_trip(
        tokenizer, MIXED
    )


def test_save_tokenizer_replaces_an_existing_folder(trained, tmp_path):
    path = tmp_path / "tok"
    tk.save_tokenizer(trained["char"], path)
    (path / "stale.txt").write_text("old")
    tk.save_tokenizer(trained["unigram"], str(path))
    assert tk.load_tokenizer(path).kind == "unigram"
    assert not (path / "stale.txt").exists()
    # No temporary folders are left next to it.
    assert os.listdir(tmp_path) == ["tok"]


def test_save_tokenizer_rejects_bad_arguments(trained, tmp_path):
    with pytest.raises(ValueError, match="kerazoo tokenizer"):
        tk.save_tokenizer(keras.layers.Dense(2), tmp_path / "x")
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        tk.save_tokenizer(trained["byte"], target)


def test_load_tokenizer_errors(trained, tmp_path):
    with pytest.raises(ValueError, match="no tokenizer folder"):
        tk.load_tokenizer(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        tk.load_tokenizer(empty)
    (empty / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tk.load_tokenizer(empty)
    dense = keras.saving.serialize_keras_object(keras.layers.Dense(2))
    (empty / "config.json").write_text(json.dumps(dense))
    with pytest.raises(ValueError, match="not a kerazoo tokenizer"):
        tk.load_tokenizer(empty)
    broken = tmp_path / "broken"
    tk.save_tokenizer(trained["char"], broken)
    os.remove(broken / "assets" / tk.CHARS_FILENAME)
    with pytest.raises(ValueError, match="incomplete"):
        tk.load_tokenizer(broken)


# A tiny model that holds a tokenizer, imported by this process and by a
# fresh one.
HOLDER_MODULE = textwrap.dedent(
    '''
    import keras


    @keras.saving.register_keras_serializable(package="kerazoo_tests")
    class TokenizerModel(keras.Model):
        """An embedding that carries its tokenizer, as the zoo's models do."""

        def __init__(self, tokenizer, vocab_size, **kwargs):
            super().__init__(**kwargs)
            self.tokenizer = tokenizer
            self.vocab_size = vocab_size
            self.embedding = keras.layers.Embedding(vocab_size, 4)

        def call(self, ids):
            return self.embedding(ids)

        def get_config(self):
            config = super().get_config()
            config["tokenizer"] = keras.saving.serialize_keras_object(
                self.tokenizer
            )
            config["vocab_size"] = self.vocab_size
            return config

        @classmethod
        def from_config(cls, config):
            tokenizer = keras.saving.deserialize_keras_object(
                config.pop("tokenizer")
            )
            return cls(tokenizer=tokenizer, **config)
    '''
)

FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    folder, text = sys.argv[1], sys.argv[2]
    sys.path.insert(0, folder)
    import keras
    import holder_model  # registers TokenizerModel
    import kerazoo.text  # registers the tokenizers
    result = {}
    for kind in sys.argv[3:]:
        model = keras.saving.load_model(f"{folder}/{kind}.keras", safe_mode=True)
        tokenizer = model.tokenizer
        ids = tokenizer.tokenize(text)
        result[kind] = {
            "kind": tokenizer.kind,
            "ids": ids.numpy().tolist(),
            "text": tokenizer.detokenize(ids).numpy().decode("utf-8"),
        }
    print(json.dumps(result))
    """
)


def test_model_holding_a_tokenizer_reloads_in_a_fresh_process(
    trained, tmp_path, monkeypatch
):
    (tmp_path / "holder_model.py").write_text(HOLDER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import holder_model

    expected = {}
    for kind, tokenizer in trained.items():
        model = holder_model.TokenizerModel(tokenizer, tokenizer.vocabulary_size())
        model(tf.constant([[1, 2]]))
        model.save(tmp_path / f"{kind}.keras")
        ids = ids_of(tokenizer, MIXED)
        expected[kind] = {
            "kind": kind,
            "ids": ids,
            "text": text_of(tokenizer.detokenize(ids)),
        }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(tmp_path), MIXED]
        + list(trained),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == expected


# ---------------------------------------------------------------------------
# Mistakes raise ValueError with a message that names the problem.
# ---------------------------------------------------------------------------

SMALL_CORPUS = [ENGLISH[:4000]]


@pytest.mark.parametrize(
    "texts, kind, vocab_size, message",
    [
        (SMALL_CORPUS, "sentencepiece", 100, "unknown tokenizer kind.*byte, char"),
        (SMALL_CORPUS, "byte", 300, "vocab_size=300.*byte.*261"),
        (SMALL_CORPUS, "char", 5, "vocab_size=5 is too small"),
        (SMALL_CORPUS, "char", 10_000, "vocab_size=10000 is too large.*distinct"),
        (SMALL_CORPUS, "char", "100", "vocab_size must be an integer"),
        (SMALL_CORPUS, "wordpiece", None, "vocab_size is required"),
        (SMALL_CORPUS, "unigram", None, "vocab_size is required"),
        (SMALL_CORPUS, "wordpiece", 50_000, "too large.*found only \\d+ tokens"),
        (SMALL_CORPUS, "wordpiece", 40, "vocab_size=40 is too small.*##"),
        (SMALL_CORPUS, "unigram", 50_000, "too large.*at most \\d+ tokens"),
        (SMALL_CORPUS, "bpe", 50_000, "too large.*at most \\d+ tokens"),
        (SMALL_CORPUS, "unigram", 30, "vocab_size=30 is too small.*at least"),
        (SMALL_CORPUS, "bpe", 30, "vocab_size=30 is too small.*at least"),
        ([], "char", None, "empty corpus"),
        (["", "  \n"], "unigram", 100, "empty corpus"),
        ("one document", "char", None, "not a single string"),
        ([1, 2], "char", None, "strings"),
    ],
)
def test_training_mistakes(texts, kind, vocab_size, message):
    with pytest.raises(ValueError, match=message):
        tk.train_tokenizer(texts, kind, vocab_size)


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


def test_sentencepiece_survives_set_random_seed():
    """keras.utils.set_random_seed clears TF's eager kernel cache, which held
    tf-text's SentencePiece resource; the tokenizer must keep working."""
    import keras

    from kerazoo.text import train_tokenizer

    docs = ENGLISH_DOCS[:30]
    tok = train_tokenizer(docs, "unigram", 600)
    before = tok.tokenize(["hello world"]).to_list()
    keras.utils.set_random_seed(1)
    assert tok.tokenize(["hello world"]).to_list() == before
    assert tok.detokenize(tok.tokenize(["hello world"])).numpy().tolist() == [b"hello world"]
