"""The summarization pairs from docstrings: PEP 257 split, fixed order, bounded walk, a built-in source."""

from kerazoo.data import docstrings
from kerazoo.data.pairs import read_pairs

MODULE = '''"""Tools for counting words in text.

The functions here split text on whitespace and count each word, so that
callers can find the most frequent words quickly.
"""


def count(text):
    """Count the words of a text.

    Words are runs of non-space characters; the result maps each word to how
    many times it occurs in the text.
    """


def short(x):
    """One line only."""


def example(x):
    """Show an example of the counting.

    >>> count("a a b") gives a mapping with two entries for the letter a here
    """
'''


def test_split_follows_pep_257():
    assert docstrings.split_docstring("Return the sum of two numbers.\n\n    Both must be numbers; the result is "
                                      "their sum as a float or an int.") == (
        "Return the sum of two numbers.", "Both must be numbers; the result is their sum as a float or an int.")
    assert docstrings.split_docstring("No blank line after this summary.\nbody words go here and here and here") is None
    assert docstrings.split_docstring("Too short.\n\nbody") is None


def test_pairs_come_in_file_order_and_stop_at_max_pairs(tmp_path):
    (tmp_path / "b.py").write_text(MODULE)
    (tmp_path / "a.py").write_text(MODULE.replace("Count the words", "Tally the words"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "c.py").write_text(MODULE.replace("Count", "Skip"))  # test folders are skipped
    pairs = list(docstrings.iter_docstring_pairs(str(tmp_path)))
    summaries = [s for _, s in pairs]
    assert summaries == ["Tools for counting words in text.", "Tally the words of a text.",
                         "Tools for counting words in text.", "Count the words of a text."]
    assert pairs[1][0].startswith("Words are runs of non-space characters;")
    assert len(list(docstrings.iter_docstring_pairs(str(tmp_path), max_pairs=3))) == 3


def test_builtin_source_reads_this_pythons_stdlib(monkeypatch, tmp_path):
    (tmp_path / "m.py").write_text(MODULE)
    monkeypatch.setattr(docstrings, "stdlib_root", lambda: str(tmp_path))
    assert read_pairs("builtin:docstrings")[1] == (
        "Words are runs of non-space characters; the result maps each word to how many times it occurs in the text.",
        "Count the words of a text.")
