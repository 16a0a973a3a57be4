"""A quiet start-up: no framework log lines on stderr unless the user asks for them.

TensorFlow 2.21 logs through absl. Its shared libraries log a few INFO lines
(``oneDNN custom operations are on``, ``Could not find cuda drivers``, each
preceded by absl's ``All log messages before absl::InitializeLog() is called
are written to STDERR``) from static initialisers, while the library is being
loaded: before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, and before absl's own
log level can be set (absl reads no environment variable, and until
``absl::InitializeLog()`` runs it writes every severity to stderr). No
environment variable silences them, and ``TF_ENABLE_ONEDNN_OPTS=0``, which
removes one of them, also changes the kernels. So this module

* sets the log-level variables the frameworks do read, only where the user has
  not set them (``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's later INFO and WARNING
  lines, such as the CPU-feature notice, stay quiet), and
* imports TensorFlow (and lets it look for GPUs) once with the process's stderr (file descriptor 2, which
  the native libraries write to) sent to a temporary file, then writes back
  every captured line except absl lines below ``TF_CPP_MIN_LOG_LEVEL`` and
  absl's banner. Python warnings and errors raised during the import, and any
  native line at or above that level, still reach stderr.

A user who sets ``TF_CPP_MIN_LOG_LEVEL=0`` sees every line, as TensorFlow
prints it. It is imported first by ``kerazoo/__init__.py`` (and so by the
``kerazoo`` command) before any framework loads.
"""

import contextlib
import os
import re
import sys
import tempfile

# Only defaults: a value the user set is kept.
ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2"}
for _key, _value in ENV_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

# absl's line prefix: severity, MMDD, time, thread id, file:line].
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
_ABSL_BANNER = b"All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
# TensorFlow's CPU-feature notice continues on a second line without a prefix.
_CONTINUATION = (b"To enable the following instructions:",)
# A machine without a GPU driver: TensorFlow's GPU build says so at ERROR level
# when it first looks for devices. On a CPU machine that is the expected state,
# not an error; TF_CPP_MIN_LOG_LEVEL=0 shows it.
_NO_GPU_DRIVER = (b"failed call to cuInit", b"Could not find cuda drivers")


def min_log_level():
    """The TensorFlow C++ log level in force (``TF_CPP_MIN_LOG_LEVEL``).

    Returns:
        0 (everything) to 3 (fatal only); 0 when the variable is not an integer.
    """
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filter_startup_lines(captured, level):
    """Drops the native start-up log lines below ``level`` from captured stderr.

    Args:
        captured: bytes written to stderr while a framework loaded.
        level: the lowest absl severity kept (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL).

    Returns:
        The bytes to write back: every line that is not an absl line below
        ``level``, absl's banner, the continuation of a dropped line, or
        a line saying that no GPU driver was found.
    """
    if level <= 0:
        return captured
    kept, dropped_previous = [], False
    for line in captured.splitlines(keepends=True):
        match = _ABSL_LINE.match(line)
        if match:
            drop = _SEVERITY[match.group(1)] < level or any(text in line for text in _NO_GPU_DRIVER)
        elif line.startswith(b"WARNING: ") and _ABSL_BANNER in line:
            drop = True
        else:
            drop = dropped_previous and line.startswith(_CONTINUATION)
        if not drop:
            kept.append(line)
        dropped_previous = drop
    return b"".join(kept)


@contextlib.contextmanager
def native_stderr_filtered(level=None):
    """Sends file descriptor 2 to a temporary file, then writes back what passes the filter.

    Args:
        level: the lowest absl severity kept; default ``min_log_level()``.

    Yields:
        None. Where stderr has no file descriptor (some notebook front ends),
        nothing is captured.
    """
    level = min_log_level() if level is None else level
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = filter_startup_lines(capture.read(), level)
            if kept:
                os.write(2, kept)


def import_tensorflow():
    """Imports TensorFlow, its native start-up lines filtered (see the module docstring).

    It also lists the GPUs once inside the filter: that is when TensorFlow
    initialises its CUDA platform and logs a missing driver. Listing physical
    devices leaves them configurable (``tf.config.set_visible_devices`` and
    logical devices still work afterwards).

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" not in sys.modules and min_log_level() > 0:
        with native_stderr_filtered():
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")
    import tensorflow

    return tensorflow


def cli_help_only(argv=None):
    """Whether this process is the ``kerazoo`` command asked only for usage text.

    ``kerazoo``, ``kerazoo --help`` and ``kerazoo CMD --help`` print argparse's
    usage and exit, so they need no framework; ``kerazoo/__init__.py`` skips its
    imports then.

    Args:
        argv: the process's command line as the interpreter saw it; default
            ``sys.orig_argv`` (``python -m kerazoo.cli ...``) or, for the
            installed ``kerazoo`` script, ``sys.argv``.

    Returns:
        True when the command line is the kerazoo command with no arguments or
        with ``-h`` / ``--help`` among them.
    """
    if argv is None:
        orig = list(getattr(sys, "orig_argv", []))
        if "-m" in orig[:-1] and orig[orig.index("-m") + 1] == "kerazoo.cli":
            argv = orig[orig.index("-m") + 1 :]
        else:
            argv = list(sys.argv)
    if not argv or os.path.basename(str(argv[0])) not in ("kerazoo", "kerazoo.cli"):
        return False
    args = argv[1:]
    return not args or "-h" in args or "--help" in args
