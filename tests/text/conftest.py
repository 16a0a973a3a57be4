"""The tokenizers of every kind, trained once for all tokenizer tests."""

import pytest

from kerazoo import text as tk
from tests.text.common import CORPUS, VOCAB_SIZES


@pytest.fixture(scope="session")
def trained():
    """One tokenizer of every kind, trained once for the whole session."""
    return {
        kind: tk.train_tokenizer(CORPUS, kind, VOCAB_SIZES[kind])
        for kind in tk.KINDS
    }
