"""Corpora → token windows: readers, deterministic splits and the task pipelines.

``readers`` reads text corpora and labelled rows, ``splits`` holds out
validation data deterministically, ``windows`` tokenizes documents once and
cuts language-model windows, ``masking`` masks them for masked-LM training;
``pairs`` reads source/target pairs for seq2seq.

The flow of a causal LM, top to bottom:

    read_corpus(source)            -> list of documents (str)
    split_corpus(docs, ...)        -> train documents, validation documents
    tokenize_documents(tok, docs)  -> one int32 id stream, tokenized once
    lm_dataset(ids, seq_len, ...)  -> tf.data of (x, y) windows, y = x shifted by one
"""

from kerazoo.data.masking import mask_tokens
from kerazoo.data.readers import (
    BUILTIN_CORPORA,
    BUILTIN_PREFIX,
    LABELLED_SUFFIXES,
    MAX_CORPUS_BYTES,
    TEXT_SUFFIXES,
    read_corpus,
    read_labelled,
    read_table,
)
from kerazoo.data.splits import SPLIT_MODES, split_corpus, split_rows
from kerazoo.data.windows import (
    WINDOW_MODES,
    lm_dataset,
    lm_random_dataset,
    lm_windows,
    mlm_windows,
    tokenize_documents,
)
