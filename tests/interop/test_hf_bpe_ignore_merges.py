"""``tokenizer.json``'s ``ignore_merges`` (Llama 3's BPE): a whole-word token wins over the merges."""

import json
import os

import pytest

from kerazoo.interop.hf.bpe_tokenizer import ByteLevelBPETokenizer
from kerazoo.interop.hf.llama import read_tokenizer, zoo_vocabulary

tokenizers = pytest.importorskip("tokenizers")

# "abc" is a token the merges never build: "b c" ranks first, and no rule joins "a" and "bc".
EXTRA = ["ab", "bc", "abc", "Ġab", "<|endoftext|>"]
MERGES = [("b", "c"), ("a", "b"), ("Ġ", "ab")]
TEXTS = ["abc", "abc abc", "abcabc ab bc", "cab abcd"]


def _tokenizer_json(folder, ignore_merges):
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    vocab.update({t: len(vocab) + i for i, t in enumerate(EXTRA)})
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=MERGES, ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.save(os.path.join(folder, "tokenizer.json"))
    return tok


def _zoo_tokenizer(folder, eos):
    hf_vocabulary, merges, pattern, nfc, ignore_merges = read_tokenizer(folder)
    vocabulary, source_ids = zoo_vocabulary(hf_vocabulary, eos)
    return ByteLevelBPETokenizer(vocabulary=vocabulary, merges=merges, split_pattern=pattern, nfc=nfc,
                                 ignore_merges=ignore_merges), source_ids


@pytest.mark.parametrize("ignore_merges", [True, False])
def test_ids_equal_the_tokenizers_library_with_and_without_ignore_merges(tmp_path, ignore_merges):
    tok = _tokenizer_json(str(tmp_path), ignore_merges)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["ignore_merges"] is ignore_merges
    ours, source_ids = _zoo_tokenizer(str(tmp_path), tok.token_to_id("<|endoftext|>"))
    assert ours.ignore_merges is ignore_merges
    for text in TEXTS:
        expected = tok.encode(text).ids
        got = [source_ids[i] for i in ours(text).numpy().tolist()]
        assert got == expected, text
        assert ours.detokenize(ours(text)).numpy().decode() == text
    # The setting changes the ids: "abc" is one token only when merges are ignored.
    abc = tok.token_to_id("abc")
    assert (abc in tok.encode("abc").ids) is ignore_merges


def test_the_setting_survives_the_config(tmp_path):
    tok = _tokenizer_json(str(tmp_path), True)
    ours, _ = _zoo_tokenizer(str(tmp_path), tok.token_to_id("<|endoftext|>"))
    again = ByteLevelBPETokenizer.from_config(ours.get_config())
    again.set_vocabulary_and_merges(dict(ours.vocabulary), list(ours.merges))
    assert again.ignore_merges and again("abc abc").numpy().tolist() == ours("abc abc").numpy().tolist()


def test_a_malformed_ignore_merges_is_refused(tmp_path):
    _tokenizer_json(str(tmp_path), True)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    spec["model"]["ignore_merges"] = "yes"
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="ignore_merges must be true or false"):
        read_tokenizer(str(tmp_path))
