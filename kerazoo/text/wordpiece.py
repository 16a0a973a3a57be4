"""``WordPieceTokenizer``: a WordPiece vocabulary learned by keras_hub's trainer."""

import os

import keras
import keras_hub

from kerazoo.text.base import ZooTokenizer, require_dtype_int32, require_fixed_options
from kerazoo.text.special import SPECIAL_TOKENS

WORDPIECE_FILENAME = "vocabulary.txt"


@keras.saving.register_keras_serializable(package="kerazoo")
class WordPieceTokenizer(ZooTokenizer, keras_hub.tokenizers.WordPieceTokenizer):
    """keras_hub's WordPiece tokenizer with the zoo's special tokens.

    Text is split on whitespace and punctuation (and around CJK characters)
    before WordPiece, so detokenizing rejoins words with single spaces: the
    round trip is exact up to whitespace.

    Args:
        vocabulary: the token list, starting with the 5 special tokens.
            None until ``load_assets``.
        lowercase: case-fold text before tokenizing.
        strip_accents: remove accents before tokenizing.
        split_on_cjk: make every CJK character its own word.
        suffix_indicator: the prefix of word-continuation pieces.
        special_tokens_in_strings: map special tokens written in the text
            (e.g. "<mask>") to their ids instead of splitting them.
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "wordpiece"

    def __init__(
        self,
        vocabulary=None,
        lowercase=False,
        strip_accents=False,
        split_on_cjk=True,
        suffix_indicator="##",
        special_tokens_in_strings=False,
        sequence_length=None,
        **kwargs,
    ):
        require_dtype_int32(kwargs)
        require_fixed_options(kwargs, split=True, oov_token=SPECIAL_TOKENS[1])
        self._register_special_tokens()
        super().__init__(
            vocabulary=vocabulary,
            sequence_length=sequence_length,
            lowercase=lowercase,
            strip_accents=strip_accents,
            split=True,
            split_on_cjk=split_on_cjk,
            suffix_indicator=suffix_indicator,
            oov_token=SPECIAL_TOKENS[1],
            special_tokens_in_strings=special_tokens_in_strings,
            **kwargs,
        )

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary (a list of tokens); checks the special ids."""
        if isinstance(vocabulary, str):
            # keras_hub would read a file here; assets are loaded by
            # load_assets, and a path in a config is a safe-mode hazard.
            raise ValueError("vocabulary must be a list of tokens, not a path")
        super().set_vocabulary(vocabulary)
        if vocabulary is not None:
            self._check_special_tokens()

    def _tokenize_batch(self, batch):
        # keras_hub's TF path: pretokenize + tf-text FastWordpiece.
        return self._tokenize_tf(batch)

    def _detokenize_batch(self, ids):
        return self._detokenize_tf(ids)

    def save_assets(self, dir_path):
        """Writes the vocabulary, one token a line (keras_hub's format)."""
        keras_hub.tokenizers.WordPieceTokenizer.save_assets(self, dir_path)

    def load_assets(self, dir_path):
        """Reads the vocabulary written by ``save_assets``."""
        path = os.path.join(dir_path, WORDPIECE_FILENAME)
        with open(path, encoding="utf-8", newline="\n") as file:
            tokens = file.read().split("\n")[:-1]
        self.set_vocabulary(tokens)

