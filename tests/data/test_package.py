"""kerazoo.data keeps the public names it had as one module, whichever module now holds them."""

import kerazoo
from kerazoo import data

# The names of ``kerazoo.data`` before it was split into readers, splits,
# windows and masking.
PUBLIC_NAMES = (
    "BUILTIN_CORPORA", "BUILTIN_PREFIX", "LABELLED_SUFFIXES", "MAX_CORPUS_BYTES", "SPLIT_MODES", "TEXT_SUFFIXES",
    "WINDOW_MODES", "lm_dataset", "lm_random_dataset", "lm_windows", "mask_tokens", "mlm_windows", "read_corpus",
    "read_labelled", "read_table", "split_corpus", "split_rows", "tokenize_documents",
)


def test_every_public_name_is_still_in_kerazoo_data():
    assert [name for name in PUBLIC_NAMES if not hasattr(data, name)] == []
    assert kerazoo.data is data
