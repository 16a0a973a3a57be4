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

Corpora of any size go through the token store instead (what ``kerazoo
train`` does for causal LMs): ``sources`` streams the pieces, ``plan`` splits
them, ``prepare.prepare_store`` tokenizes once into shards (``store``), and
``stream`` cuts training windows from the shards in constant memory:

    prepare_store(CorpusSpec(source), tokenizer_spec=TokenizerSpec(...)) -> PreparedStore
    random_windows(store.stream("train"), seq_len, batch_size)            -> tf.data of (x, y)

Labelled rows (classify) and source/target pairs (seq2seq) go through a row
store: ``labelled_rows`` / ``pairs.pair_rows`` stream them, ``rows.row_side``
splits them by a seeded hash per row, ``row_prepare.prepare_rows`` tokenizes
them once, and ``row_datasets`` reads them back row by row.
"""

from kerazoo.data.masking import mask_tokens
from kerazoo.data.prepare import CorpusSpec, PreparedStore, TokenizerSpec, prepare_store
from kerazoo.data.readers import (
    BUILTIN_CORPORA,
    BUILTIN_PREFIX,
    LABELLED_SUFFIXES,
    MAX_CORPUS_BYTES,
    TEXT_SUFFIXES,
    labelled_rows,
    read_corpus,
    read_labelled,
    read_table,
)
from kerazoo.data.sources import BOUNDARIES
from kerazoo.data.stream import TokenStream, open_stream, packed_windows, random_windows, worker_part
from kerazoo.data.splits import SPLIT_MODES, split_corpus, split_rows
from kerazoo.data.windows import (
    WINDOW_MODES,
    lm_dataset,
    lm_random_dataset,
    lm_windows,
    mlm_windows,
    tokenize_documents,
)
