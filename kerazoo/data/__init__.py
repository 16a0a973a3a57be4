"""Corpora → token windows: readers, deterministic splits and the task pipelines.

``corpus`` reads text corpora and builds language-model windows; ``pairs``
reads source/target pairs for seq2seq.
"""

from kerazoo.data.corpus import (
    BUILTIN_CORPORA,
    BUILTIN_PREFIX,
    LABELLED_SUFFIXES,
    MAX_CORPUS_BYTES,
    SPLIT_MODES,
    TEXT_SUFFIXES,
    WINDOW_MODES,
    lm_dataset,
    lm_random_dataset,
    lm_windows,
    mask_tokens,
    mlm_windows,
    read_corpus,
    read_labelled,
    read_table,
    split_corpus,
    split_rows,
    tokenize_documents,
)
