"""A summarization corpus built offline from CPython's own standard library: docstring body -> first line.

PEP 257: a multi-line docstring is "a summary line ..., followed by a blank
line, followed by a more elaborate description". So every such docstring in
the standard library of the running Python is a (body -> summary) pair
written by a person, available offline wherever Python is.

    stdlib *.py files, sorted (a fixed order)  -> one file at a time, at most MAX_FILE_BYTES
      -> ast: module, class and function docstrings (inspect.cleandoc)
      -> summary line + blank line + a body of BODY_WORDS words or more
      -> (body, summary), bodies cut to MAX_BODY_CHARS; stops at max_pairs

The walk is a generator that holds one file's text at a time, so memory is
bounded by the pairs kept, never by the size of the library. Test and
vendored-package folders are skipped: their docstrings are not PEP 257 prose.
"""

import ast
import inspect
import os
import re
import sysconfig

# The built-in source name: data.source = "builtin:docstrings".
BUILTIN_NAME = "docstrings"
MAX_PAIRS = 6000
MAX_FILE_BYTES = 1 << 20
MAX_BODY_CHARS = 600
BODY_WORDS = 8
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "lib2to3", "__pycache__", "ensurepip", "turtledemo"}


def stdlib_root():
    """The standard library folder of the running Python."""
    return sysconfig.get_paths()["stdlib"]


def _files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def split_docstring(doc):
    """``(summary, body)`` of a PEP 257 multi-line docstring, or None.

    The summary is the first line (it must end a sentence: ``.``); the body is
    the rest after a blank line, whitespace collapsed. Docstrings without a
    blank second line, a short body, or doctest examples are skipped.
    """
    lines = inspect.cleandoc(doc).splitlines()
    if len(lines) < 3 or lines[1].strip() or not lines[0].strip().endswith("."):
        return None
    summary = lines[0].strip()
    body = " ".join(" ".join(lines[2:]).split())
    if ">>>" in body or len(body.split()) < BODY_WORDS or len(summary.split()) < 3:
        return None
    if len(body) > MAX_BODY_CHARS:
        body = body[:MAX_BODY_CHARS].rsplit(" ", 1)[0]
    return summary, body


def iter_docstring_pairs(root=None, max_pairs=MAX_PAIRS):
    """Yields ``(body, summary)`` pairs from the docstrings under ``root``, in a fixed order.

    Args:
        root: a folder of Python files (default: this Python's standard library).
        max_pairs: stop after this many pairs.

    Yields:
        ``(body, summary)`` strings; a summary repeated in the same file
        (overloads, copies) is taken once.
    """
    count = 0
    for path in _files(root or stdlib_root()):
        try:
            if os.path.getsize(path) > MAX_FILE_BYTES:
                continue
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), filename=path)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue  # a file this Python cannot read or parse has no docstrings for us
        seen = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node, clean=False)
            pair = split_docstring(doc) if doc else None
            if pair is None or pair[0] in seen or re.search(r"[\t]", pair[1]):
                continue
            seen.add(pair[0])
            yield pair[1], pair[0]
            count += 1
            if count >= max_pairs:
                return


def docstring_pairs(max_pairs=MAX_PAIRS):
    """The built-in summarization pairs (``builtin:docstrings``): a list of ``(body, summary)``."""
    return list(iter_docstring_pairs(max_pairs=max_pairs))
