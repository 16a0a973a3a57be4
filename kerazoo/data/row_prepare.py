"""``prepare_rows``: labelled rows or pairs read, split and tokenized once into a row store.

    sided rows              stream the rows, each with its side (``rows.sided``: a seeded hash per row)
    Survey                  pass 1: row counts, train bytes, label names (capped), a bounded tokenizer sample
    train the tokenizer     on that sample, cached like ``prepare``'s (skipped with a tokenizer given)
    write_rows              pass 2: every row tokenized into the store (``rows.write_rows``),
                            continuing after the shards a killed build finished

A second run with the same data and tokenizer reads no row: it finds the
cached tokenizer and the intact store by key.
"""

import dataclasses
import os
import time

from kerazoo.data import prepare, rows, store


def prepare_rows(what, fingerprint, settings, read_rows, fields, tokenizer=None, tokenizer_spec=None, read_val_rows=None,
                 text_fields=(), labelled=False, where="", val_where="", what_rows="rows", log=print):
    """Builds (or reuses) the row store of a labelled or paired source.

    Args:
        what: the kind of rows ("labelled", "pairs"), part of the key.
        fingerprint: a callable giving the corpus fingerprint (files, sizes,
            mtimes; or a built-in's name), taken before and after building.
        settings: the reading and split settings (JSON-able, with
            ``val_fraction`` and ``seed``), part of the key.
        read_rows: a callable giving a fresh iterator of the rows, a row a
            tuple of strings: the fields, then the label when ``labelled``.
        fields: names of the tokenized fields.
        tokenizer: the tokenizer to encode with; None trains one from
            ``tokenizer_spec`` on a bounded sample of the train rows (cached).
        tokenizer_spec: a ``prepare.TokenizerSpec``.
        read_val_rows: the same for a separate validation source, or None
            (then ``rows.row_side`` splits the rows; when it holds out none,
            the row of the smallest hash is held out).
        text_fields: fields whose validation texts are kept raw.
        labelled: the last value of a row is a label.
        where, val_where: the source and the validation source, for errors.
        what_rows: what a row is called in errors ("rows", "pairs").
        log: where progress lines go.

    Returns:
        A ``rows.RowStore``.

    Raises:
        ValueError: an empty source or split side, too many labels, an
            unknown validation label, a bad row (naming the file and line),
            or a corpus that changed while being prepared.
    """
    from kerazoo import text

    corpus = fingerprint()
    spec_key = store.digest({"format": rows.FORMAT, "what": what, "corpus": corpus, **settings})
    cached, force = [], []

    def sided_rows():
        return rows.sided(read_rows(), read_val_rows() if read_val_rows else None, settings["val_fraction"],
                          settings["seed"], force[0] if force else None)

    def survey():
        if not cached:
            sample_bytes = None if tokenizer is not None else tokenizer_spec.sample_bytes
            s = rows.Survey(sided_rows(), len(fields), labelled, sample_bytes, where)
            if read_val_rows is None and not s.rows[rows.VAL] and s.rows[rows.TRAIN] >= 2:
                # A small source the hash held out nothing of: hold out one row, as split_rows does.
                force.append(rows.smallest_hash(s.rows[rows.TRAIN], settings["seed"]))
                s = rows.Survey(sided_rows(), len(fields), labelled, sample_bytes, where)
            if labelled and len(s.labels) == 1:
                raise ValueError(f"{where}: the label column holds a single label ({s.labels[0]!r}); "
                                 "a classifier needs at least 2")
            rows.check_sides(s.rows, where, what_rows, val_where)
            cached.append(s)
        return cached[0]

    if tokenizer is None:
        k = tokenizer_spec
        folder = os.path.join(store.cache_dir(), "tokenizers", store.digest([spec_key, dataclasses.asdict(k)]))
        if os.path.isfile(os.path.join(folder, "config.json")):
            tokenizer = text.load_tokenizer(folder)
            log(f"tokenizer: {k.kind} with {tokenizer.vocabulary_size()} tokens, cached at {folder}")
        else:
            started = time.perf_counter()
            sample, taken = rows.tokenizer_sample(sided_rows(), survey(), len(fields), k.sample_bytes, settings["seed"])
            tokenizer = text.train_tokenizer(sample, k.kind, k.vocab_size, lowercase=k.lowercase)
            log(f"tokenizer: trained {k.kind} with {tokenizer.vocabulary_size()} tokens on {taken:,} bytes of the "
                f"train rows (tokenizer.sample_bytes={k.sample_bytes:,}) in {time.perf_counter() - started:.1f}s")
            text.save_tokenizer(tokenizer, folder)
    key = f"{spec_key}-{prepare.tokenizer_fingerprint(tokenizer)}"

    def build(staging):
        out = rows.write_rows(staging, tokenizer, sided_rows(), fields, text_fields,
                              survey().labels if labelled else None, val_where or where, log=log)
        if fingerprint() != corpus:
            raise ValueError(f"{where} changed while being prepared (a file's size or mtime); "
                             "prepare it again once it is complete")
        out.update(corpus=corpus, settings=settings, tokenizer=prepare.tokenizer_fingerprint(tokenizer))
        return out

    folder, manifest, built = rows.open_or_build(key, what, build, log)
    return rows.RowStore(folder, manifest, tokenizer, built)
