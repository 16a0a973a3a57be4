"""The special tokens every zoo tokenizer shares, and their ids.

Kept apart from the tokenizer layers so that models and decoding loops can
name the ids without importing TensorFlow Text.
"""

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID, MASK_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL_TOKENS = len(SPECIAL_TOKENS)
