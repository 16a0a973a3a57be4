"""``GPT2Tokenizer``: GPT-2's byte-level BPE on the zoo's id layout.

Imported from a Hugging Face checkpoint (``kerazoo.interop.hf.gpt2``), never
trained here.
"""

import json
import os

import keras
import keras_hub

from kerazoo.text.base import ZooTokenizer, require_dtype_int32
from kerazoo.text.special import EOS_ID, NUM_SPECIAL_TOKENS, SPECIAL_TOKENS

GPT2_VOCAB_FILENAME = "vocabulary.json"
GPT2_MERGES_FILENAME = "merges.txt"
GPT2_END_OF_TEXT = "<|endoftext|>"


def gpt2_zoo_vocabulary(hf_vocabulary, end_of_text=GPT2_END_OF_TEXT):
    """Maps a GPT-2 vocabulary onto the zoo's id layout.

    The zoo's special tokens take ids 0..4; GPT-2's one special token,
    ``<|endoftext|>``, becomes the zoo's ``</s>`` (id 3: GPT-2 ends and
    separates documents with it, which is what the zoo's end token does);
    every other GPT-2 token keeps its order, shifted past the specials (for
    GPT-2's own vocabulary: zoo id = GPT-2 id + 5).

    Args:
        hf_vocabulary: ``{token: GPT-2 id}`` (``vocab.json``).
        end_of_text: GPT-2's end token.

    Returns:
        ``(vocabulary, source_ids)``: the zoo's ``{token: id}``, and for each
        zoo id the GPT-2 id it stands for (-1 for ``<pad>``, ``<unk>``,
        ``<s>``, ``<mask>``, which GPT-2 lacks).
    """
    if end_of_text not in hf_vocabulary:
        raise ValueError(f"the GPT-2 vocabulary has no '{end_of_text}' token")
    vocabulary = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    source_ids = [-1] * NUM_SPECIAL_TOKENS
    source_ids[EOS_ID] = int(hf_vocabulary[end_of_text])
    for token, hf_id in sorted(hf_vocabulary.items(), key=lambda item: item[1]):
        if token == end_of_text:
            continue
        if token in vocabulary:
            raise ValueError(f"the GPT-2 vocabulary holds the zoo's special token '{token}'")
        vocabulary[token] = len(source_ids)
        source_ids.append(int(hf_id))
    return vocabulary, source_ids


@keras.saving.register_keras_serializable(package="kerazoo")
class GPT2Tokenizer(ZooTokenizer, keras_hub.tokenizers.BytePairTokenizer):
    """GPT-2's byte-level BPE (keras_hub's ``BytePairTokenizer``) on the zoo's ids.

    Built by ``kerazoo.interop.hf.gpt2.import_gpt2`` from a checkpoint's
    ``vocab.json`` and ``merges.txt`` (see ``gpt2_zoo_vocabulary`` for the id
    layout: ``<|endoftext|>`` is the zoo's ``</s>``, GPT-2 id ``i`` is zoo id
    ``i + 5``). Text round-trips exactly (byte-level); no string in the text
    is special, as with Hugging Face's GPT-2 tokenizer.

    Args:
        vocabulary: ``{token: zoo id}``, starting with the 5 special tokens.
            None until ``load_assets``.
        merges: the BPE merge rules, ``"a b"`` strings in rank order.
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "gpt2"

    def __init__(self, vocabulary=None, merges=None, sequence_length=None, **kwargs):
        require_dtype_int32(kwargs)
        kwargs.pop("add_prefix_space", None)
        kwargs.pop("unsplittable_tokens", None)
        self.lowercase = False
        self._register_special_tokens()
        super().__init__(
            vocabulary=vocabulary, merges=merges, sequence_length=sequence_length,
            add_prefix_space=False, unsplittable_tokens=[], **kwargs,
        )

    def set_vocabulary_and_merges(self, vocabulary, merges):
        """Sets the vocabulary (a dict) and merges (a list); checks the special ids."""
        if isinstance(vocabulary, str) or isinstance(merges, str):
            raise ValueError("vocabulary and merges must be data, not paths (assets are read by load_assets)")
        super().set_vocabulary_and_merges(vocabulary, merges)
        if vocabulary is not None:
            self._check_special_tokens()

    def get_vocabulary(self):
        """The tokens as a list, in id order."""
        self._check_vocabulary()
        return [token for token, _ in sorted(self.vocabulary.items(), key=lambda item: item[1])]

    def _tokenize_batch(self, batch):
        return self._tokenize_tf(batch)

    def _detokenize_batch(self, ids):
        return self._detokenize_tf(ids)

    def save_assets(self, dir_path):
        """Writes ``vocabulary.json`` (token -> zoo id) and ``merges.txt``."""
        with open(os.path.join(dir_path, GPT2_VOCAB_FILENAME), "w", encoding="utf-8") as file:
            json.dump(dict(self.vocabulary), file, ensure_ascii=False)
        with open(os.path.join(dir_path, GPT2_MERGES_FILENAME), "w", encoding="utf-8") as file:
            file.writelines(f"{merge}\n" for merge in self.merges)

    def load_assets(self, dir_path):
        """Reads the files written by ``save_assets``."""
        with open(os.path.join(dir_path, GPT2_VOCAB_FILENAME), encoding="utf-8") as file:
            vocabulary = json.load(file)
        with open(os.path.join(dir_path, GPT2_MERGES_FILENAME), encoding="utf-8") as file:
            merges = [line.rstrip("\n") for line in file if line.strip()]
        self.set_vocabulary_and_merges(vocabulary, merges)

    def get_config(self):
        config = super().get_config()
        for key in ("vocabulary", "merges", "add_prefix_space", "unsplittable_tokens"):
            config.pop(key, None)
        return config

