"""``CharTokenizer``: unicode characters, the vocabulary learned from a corpus."""

import collections
import os

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kerazoo.text.base import ZooTokenizer, require_dtype_int32
from kerazoo.text.special import NUM_SPECIAL_TOKENS, SPECIAL_TOKENS, UNK_ID

CHARS_FILENAME = "characters.txt"


@keras.saving.register_keras_serializable(package="kerazoo")
class CharTokenizer(ZooTokenizer, keras_hub.tokenizers.Tokenizer):
    """Unicode characters as tokens, from a vocabulary learned on a corpus.

    Characters missing from the vocabulary become ``"<unk>"``.

    Args:
        vocabulary: the full token list: the 5 special tokens, then single
            characters (id = position). None until ``load_assets``.
        lowercase: case-fold text (Unicode NFKC_Casefold) before tokenizing.
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "char"

    def __init__(
        self, vocabulary=None, lowercase=False, sequence_length=None, **kwargs
    ):
        require_dtype_int32(kwargs)
        self._register_special_tokens()
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.sequence_length = sequence_length
        self.file_assets = [CHARS_FILENAME]
        self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary and builds the lookup tables.

        Args:
            vocabulary: the 5 special tokens followed by distinct single
                characters, or None to unset.
        """
        if vocabulary is None:
            self._vocabulary = None
            return
        if isinstance(vocabulary, str):
            raise ValueError(
                "vocabulary must be a list of tokens, not a string"
            )
        vocabulary = list(vocabulary)
        self._vocabulary = vocabulary
        self._check_special_tokens()
        _check_characters(vocabulary[NUM_SPECIAL_TOKENS:])
        self._token_to_id_map = {t: i for i, t in enumerate(vocabulary)}
        self._build_tables(vocabulary[NUM_SPECIAL_TOKENS:])
        self._update_special_token_ids()

    def _build_tables(self, chars):
        """Builds the char -> id hash table and the id -> char array."""
        # Lookup tables are resources: create them eagerly, never inside a
        # tf.data/tf.function graph that would own (and then drop) them.
        with tf.init_scope():
            initializer = tf.lookup.KeyValueTensorInitializer(
                keys=tf.constant(chars, dtype=tf.string),
                values=tf.range(
                    NUM_SPECIAL_TOKENS,
                    NUM_SPECIAL_TOKENS + len(chars),
                    dtype=tf.int32,
                ),
            )
            self._char_to_id = tf.lookup.StaticHashTable(
                initializer, default_value=UNK_ID
            )
        # Specials map to "" (they are masked out before detokenizing anyway).
        self._id_to_char = np.array(
            [b""] * NUM_SPECIAL_TOKENS + [c.encode("utf-8") for c in chars],
            dtype=object,
        )

    def _check_vocabulary(self):
        if self._vocabulary is None:
            raise ValueError(
                "CharTokenizer has no vocabulary: pass `vocabulary` or call "
                "load_assets()"
            )

    def get_vocabulary(self):
        """Returns the list of tokens (id = position)."""
        self._check_vocabulary()
        return list(self._vocabulary)

    def vocabulary_size(self):
        """Returns the number of ids, special tokens included."""
        self._check_vocabulary()
        return len(self._vocabulary)

    def id_to_token(self, id):
        """Converts an id to its token string."""
        self._check_vocabulary()
        self._check_id(id)
        return self._vocabulary[id]

    def token_to_id(self, token):
        """Converts a token (a special token or one character) to its id."""
        self._check_vocabulary()
        if token not in self._token_to_id_map:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self._token_to_id_map[token]

    def _tokenize_batch(self, batch):
        self._check_vocabulary()
        chars = tf.strings.unicode_split(self._case_fold(batch), "UTF-8")
        return tf.ragged.map_flat_values(self._char_to_id.lookup, chars)

    def _detokenize_batch(self, ids):
        self._check_vocabulary()
        chars = tf.gather(tf.constant(self._id_to_char), ids)
        return tf.strings.reduce_join(chars, axis=-1)

    def save_assets(self, dir_path):
        """Writes the characters (ids 5..) as one decimal codepoint a line.

        Codepoints, not the characters themselves, so that newline, tab,
        space and other separators survive the text file.
        """
        self._check_vocabulary()
        chars = self._vocabulary[NUM_SPECIAL_TOKENS:]
        with open(os.path.join(dir_path, CHARS_FILENAME), "w") as file:
            file.writelines(f"{ord(c)}\n" for c in chars)

    def load_assets(self, dir_path):
        """Reads the characters written by ``save_assets``."""
        with open(os.path.join(dir_path, CHARS_FILENAME)) as file:
            chars = [chr(int(line)) for line in file if line.strip()]
        self.set_vocabulary(list(SPECIAL_TOKENS) + chars)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": None,  # Saved as an asset.
                "lowercase": self.lowercase,
                "sequence_length": self.sequence_length,
            }
        )
        return config


def _check_characters(chars):
    """Raises ValueError unless ``chars`` are distinct single characters."""
    bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
    if bad:
        raise ValueError(
            f"a char vocabulary holds single characters; got {bad[:5]}"
        )
    duplicated = [c for c, n in collections.Counter(chars).items() if n > 1]
    if duplicated or set(chars) & set(SPECIAL_TOKENS):
        raise ValueError(
            f"the char vocabulary repeats tokens: {duplicated[:5]}"
        )

