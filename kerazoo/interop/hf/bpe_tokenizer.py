"""``ByteLevelBPETokenizer``: a Hugging Face ``tokenizer.json`` byte-level BPE on the zoo's ids.

Llama 3, Qwen2 and GPT-2 tokenize the same way: a regular expression splits
the text into pre-tokens, each pre-token's UTF-8 bytes become GPT-2's
printable byte alphabet, and BPE merges them. Only the expression differs
(Qwen2 keeps a punctuation mark with the word after it and splits numbers
into digits; Llama 3 into runs of up to three). keras_hub's
``BytePairTokenizer`` runs the byte mapping and the merges as TensorFlow
ops (so the tokenizer works inside ``tf.data`` and the exported serving
graph) but hard-codes GPT-2's split; this class gives it the checkpoint's.

TensorFlow's regular expressions (RE2) have no lookahead, and every one of
these expressions ends in ``\\s+(?!\\S)|\\s+``: a run of whitespace before a
non-space keeps its last character for the next pre-token. ``split`` first
cuts such runs before their last character (no pre-token of the expression
spans that point, see ``_cut_pattern``), then matches the expression with
that ending replaced by ``\\s+``. ``\\s`` becomes Unicode's white space, as
in the ``tokenizers`` library's Oniguruma, not RE2's ASCII one.
"""

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from kerazoo.interop.hf.gpt2_tokenizer import GPT2Tokenizer

# GPT-2's expression (the ``tokenizers`` library's ByteLevel(use_regex=True)).
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LOOKAHEAD_END = r"|\s+(?!\S)|\s+"
# Unicode's White_Space characters, as RE2 class contents.
_WHITE_SPACE = r"\t\n\x{0b}\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
# Cuts text into independently split parts (a private-use character).
_CUT = "\ue000"


def _to_re2(pattern):
    """``pattern`` with ``\\s`` / ``\\S`` spelled as Unicode white space (RE2's are ASCII)."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "s":
                out.append(_WHITE_SPACE if in_class else f"[{_WHITE_SPACE}]")
            elif nxt == "S" and not in_class:
                out.append(f"[^{_WHITE_SPACE}]")
            elif nxt == "S":
                raise ValueError(r"a '\S' inside a character class is not supported")
            else:
                out.append(c + nxt)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def compile_split(pattern):
    """The RE2 forms of a pre-tokenizer expression: ``(cut, match)``.

    Args:
        pattern: the ``tokenizers`` library's expression; it must end in
            ``|\\s+(?!\\S)|\\s+`` and hold no other lookaround.

    Returns:
        ``(cut, match)``: ``cut`` finds the point before the last
        character of a whitespace run followed by a non-space (as
        ``(run)(last)(next)``); ``match`` is the expression with its
        lookahead ending replaced by ``\\s+``.

    Raises:
        ValueError: an expression this cannot reproduce.
    """
    if not pattern.endswith(_LOOKAHEAD_END):
        raise ValueError(f"pre-tokenizer expression {pattern!r} does not end in '\\s+(?!\\S)|\\s+'")
    head = pattern[: -len(_LOOKAHEAD_END)]
    if "(?=" in head or "(?!" in head or "(?<" in head:
        raise ValueError(f"pre-tokenizer expression {pattern!r} has a lookaround TensorFlow cannot run")
    # An expression with a "\s*[\r\n]+" alternative (Qwen2, Llama 3) keeps a
    # run that ends in a line break whole, so only a run ending in another
    # space is cut; GPT-2's cuts any run.
    newline_runs = r"\s*[\r\n]+" in head
    last = _WHITE_SPACE.replace(r"\n", "").replace(r"\r", "") if newline_runs else _WHITE_SPACE
    cut = f"([{_WHITE_SPACE}])([{last}])([^{_WHITE_SPACE}])"
    return cut, _to_re2(head) + f"|[{_WHITE_SPACE}]+"


def split(texts, pattern):
    """Splits strings into pre-tokens as the ``tokenizers`` library's ``Split(pattern)`` does.

    Why no match of the expression spans a cut point (between whitespace
    ``w1`` and ``w2``, ``w2`` followed by a non-space): an alternative that
    starts with an optional character and then letters, digits or
    punctuation would need ``w2`` to be one; ``\\s*[\\r\\n]+`` must end in a
    line break, which ``w2`` is not when that alternative exists; and
    ``\\s+(?!\\S)`` stops before ``w2`` by definition.

    Args:
        texts: 1-D string tensor.
        pattern: the expression (see ``compile_split``).

    Returns:
        A ragged string tensor ``(batch, pre_tokens)``.
    """
    cut, match = compile_split(pattern)
    texts = tf.strings.regex_replace(texts, cut, "\\1" + _CUT + "\\2\\3")
    parts = tf_text.regex_split(texts, _CUT, "")
    tokens = tf_text.regex_split(parts, match, match)
    return tokens.merge_dims(1, 2)


@keras.saving.register_keras_serializable(package="kerazoo")
class ByteLevelBPETokenizer(GPT2Tokenizer):
    """A ``tokenizer.json`` byte-level BPE (Llama 3, Qwen2, ...) on the zoo's id layout.

    Args:
        vocabulary: ``{token: zoo id}``, starting with the 5 special tokens
            (see ``kerazoo.interop.hf.llama.zoo_vocabulary``).
        merges: the BPE merge rules, ``"a b"`` strings in rank order.
        split_pattern: the pre-tokenizer's expression (``GPT2_SPLIT`` for
            ``ByteLevel(use_regex=True)``).
        nfc: normalise text to Unicode NFC first (Qwen2's normalizer).
        ignore_merges: a pre-token that is itself in the vocabulary becomes
            that one token without running the merges (the ``tokenizers``
            library's ``BPE(ignore_merges=True)``, Llama 3's setting; the
            merges alone may split such a word differently).
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "bpe_json"

    def __init__(self, vocabulary=None, merges=None, split_pattern=GPT2_SPLIT, nfc=False, sequence_length=None,
                 ignore_merges=False, **kwargs):
        compile_split(split_pattern)  # fails early on an expression it cannot run
        self.split_pattern, self.nfc, self.ignore_merges = split_pattern, nfc, ignore_merges
        super().__init__(vocabulary=vocabulary, merges=merges, sequence_length=sequence_length, **kwargs)

    def _bpe_merge_and_update_cache_tf(self, tokens):
        """Caches the BPE of unseen pre-tokens; with ``ignore_merges``, a whole-word token as itself."""
        if not self.ignore_merges:
            return super()._bpe_merge_and_update_cache_tf(tokens)
        # The pre-token in GPT-2's printable byte alphabet: the form the
        # vocabulary's tokens are written in (it holds no space).
        words = tf.strings.reduce_join(self.byte2unicode.lookup(tf.strings.bytes_split(tokens)), axis=1)
        whole = self.token_to_id_map.lookup(words) >= 0
        self.cache.insert(tf.boolean_mask(tokens, whole), tf.boolean_mask(words, whole))
        rest = tf.boolean_mask(tokens, tf.logical_not(whole))
        parent = super()

        def merge_rest():
            parent._bpe_merge_and_update_cache_tf(rest)
            return tf.constant(True)

        tf.cond(tf.size(rest) > 0, merge_rest, lambda: tf.constant(True))

    def _tokenize_batch(self, batch):
        # keras_hub's _tokenize_tf with the checkpoint's split in place of GPT-2's.
        self._maybe_initialized_tf()
        if self.nfc:
            batch = tf_text.normalize_utf8(batch, "NFC")
        raw_tokens = split(batch, self.split_pattern)
        flat_tokens = raw_tokens.flat_values
        cache_lookup = self.cache.lookup(flat_tokens)
        cache_mask = cache_lookup == ""
        has_unseen_words = tf.math.reduce_any(cache_mask & (flat_tokens != ""))

        def process_unseen_tokens():
            self._bpe_merge_and_update_cache_tf(tf.boolean_mask(flat_tokens, cache_mask))
            return self.cache.lookup(flat_tokens)

        words = tf.cond(has_unseen_words, process_unseen_tokens, lambda: cache_lookup)
        ids = self.token_to_id_map.lookup(tf.strings.split(words, sep=" "))
        return tf.RaggedTensor.from_row_splits(ids.flat_values, tf.gather(ids.row_splits, raw_tokens.row_splits))

    def get_config(self):
        return {**super().get_config(), "split_pattern": self.split_pattern, "nfc": self.nfc,
                "ignore_merges": self.ignore_merges}
