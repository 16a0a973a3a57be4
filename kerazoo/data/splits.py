"""Deterministic train / validation splits of documents and labelled rows."""

import numpy as np

def _split_tail(docs, val_fraction):
    """Keeps order; the last ``val_fraction`` of the characters validates."""
    total = sum(len(d) for d in docs)
    cut = int(round(total * (1.0 - val_fraction)))
    train, val, seen = [], [], 0
    for doc in docs:
        if seen + len(doc) <= cut:
            train.append(doc)
        elif seen >= cut:
            val.append(doc)
        else:
            train.append(doc[: cut - seen])
            val.append(doc[cut - seen:])
        seen += len(doc)
    return train, val


def _split_shuffle(docs, val_fraction, seed):
    """Whole documents, shuffled by ``seed``, go to one side or the other."""
    order = np.random.default_rng(seed).permutation(len(docs))
    n_val = max(1, int(round(len(docs) * val_fraction)))
    val_idx = set(order[:n_val].tolist())
    train = [d for i, d in enumerate(docs) if i not in val_idx]
    val = [d for i, d in enumerate(docs) if i in val_idx]
    return train, val


SPLIT_MODES = ("auto", "shuffle", "tail")
# Below this many documents a shuffled split is too coarse; cut the text instead.
MIN_DOCS_TO_SHUFFLE = 20


def split_corpus(docs, val_fraction=0.1, seed=0, mode="auto"):
    """Splits documents into train and validation, deterministically.

    Args:
        docs: list of document strings.
        val_fraction: share held out for validation, in (0, 1).
        seed: seed of the shuffled split.
        mode: ``"shuffle"`` holds out whole documents chosen by ``seed``;
            ``"tail"`` keeps the order and holds out the last ``val_fraction``
            of the characters (nanoGPT's split); ``"auto"`` shuffles when
            there are at least 20 documents and cuts the tail otherwise.

    Returns:
        ``(train_docs, val_docs)``, both non-empty.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode '{mode}'; valid: {', '.join(SPLIT_MODES)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if mode == "auto":
        mode = "shuffle" if len(docs) >= MIN_DOCS_TO_SHUFFLE else "tail"
    if mode == "shuffle" and len(docs) < 2:
        raise ValueError(
            f"data.split = \"shuffle\" needs at least 2 documents, the corpus has {len(docs)}; "
            "use data.split = \"auto\" or \"tail\""
        )
    train, val = _split_shuffle(docs, val_fraction, seed) if mode == "shuffle" else _split_tail(docs, val_fraction)
    train, val = [d for d in train if d], [d for d in val if d]
    if not train or not val:
        raise ValueError("the corpus is too small to split into train and validation")
    return train, val


def split_rows(n, val_fraction, seed):
    """Deterministic train / validation row indices of a labelled set.

    Args:
        n: the number of rows, at least 2.
        val_fraction: share held out for validation; at least one row is held
            out and at least one kept.
        seed: seed of the shuffle that picks the held-out rows.

    Returns:
        ``(train_idx, val_idx)``: sorted int arrays, both non-empty.
    """
    if n < 2:
        raise ValueError(f"{n} labelled row(s) cannot be split into train and validation")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


