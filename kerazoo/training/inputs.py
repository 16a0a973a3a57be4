"""Bounded reads of the inputs that are not corpora: recipes, JSON files, prompts, ``.keras`` archives, SavedModels.

Every input is a regular file (a fifo would block the read forever; a
device such as ``/dev/zero`` reports size 0 and never ends; a socket cannot
be read), and each kind has a size limit checked before it is read, so a
mistaken or hostile input costs at most that much memory. A ``.keras`` file
is a zip archive: the uncompressed size of every member is checked against
the limits before any member is read (a 1.6 MB archive can hold a 1.5 GB
``config.json``). Corpora are read by the streaming readers of
``kerazoo.data``, with their own limits.

The limits (bytes) are module constants, documented in docs/reliability.md.
"""

import json
import os
import stat
import zipfile

MiB = 1 << 20
# A recipe is a page of TOML.
MAX_RECIPE_BYTES = 1 * MiB
# JSON files kerazoo reads back (metrics.json, history.json, configs of runs and checkpoints).
MAX_JSON_BYTES = 64 * MiB
# A prompts file is decoded as one batch.
MAX_PROMPTS_BYTES = 16 * MiB
# In a .keras archive: config.json and metadata.json are parsed in memory, so
# they get the JSON limit; weights (model.weights.h5) and assets are read by
# h5py and the tokenizers, up to this many bytes in all.
MAX_ARCHIVE_BYTES = 64 << 30
ARCHIVE_JSON_MEMBERS = ("config.json", "metadata.json")
# saved_model.pb is parsed in memory (protobuf's own limit is 2 GiB).
MAX_GRAPH_BYTES = 2 << 30


def _kind(mode):
    if stat.S_ISFIFO(mode):
        return "a named pipe (fifo)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def check_file(path, what, limit):
    """Checks that ``path`` is a regular file of at most ``limit`` bytes.

    Args:
        path: the file (symbolic links are followed).
        what: the input in words, for messages (``"recipe"``).
        limit: the most bytes allowed.

    Returns:
        The file's size.

    Raises:
        ValueError: missing, not a regular file (named: fifo, device,
            socket, folder) or too large.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except NotADirectoryError:
        raise ValueError(f"{what} {path} does not exist (a part of the path is a file)") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path} is {_kind(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise ValueError(f"{what} {path} is too large ({info.st_size:,} bytes; the limit is {limit:,})")
    return info.st_size


def read_bytes(path, what, limit):
    """Reads a whole regular file of at most ``limit`` bytes (see ``check_file``).

    The read itself stops at ``limit + 1`` bytes, so a file that grows after
    the check is refused too.

    Returns:
        The bytes.
    """
    check_file(path, what, limit)
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} {path} is too large (over {limit:,} bytes)")
    return data


def read_text(path, what, limit):
    """Reads a UTF-8 text file of at most ``limit`` bytes.

    Returns:
        The text.

    Raises:
        ValueError: as ``read_bytes``, or the file is not UTF-8.
    """
    try:
        return read_bytes(path, what, limit).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {e.start})") from None


def parse_json(text, what):
    """``json.loads`` whose every failure is a ValueError naming the input.

    Args:
        text: the JSON text.
        what: the input in words.

    Returns:
        The parsed value.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to be read") from None


def read_json(path, what, limit=MAX_JSON_BYTES, expect=None):
    """Reads a JSON file: bounded, regular, UTF-8, not nested too deeply.

    Args:
        path: the file.
        what: the input in words.
        limit: the most bytes allowed.
        expect: ``dict`` or ``list`` to require that shape at the top.

    Returns:
        The parsed value.
    """
    value = parse_json(read_text(path, what, limit), f"{what} {path}")
    if expect is not None and not isinstance(value, expect):
        shape = {dict: "object", list: "list"}[expect]
        raise ValueError(f"{what} {path} must hold a JSON {shape}, got a {type(value).__name__}")
    return value


def check_keras_archive(path):
    """Checks a ``.keras`` file before Keras opens it: a regular file, a zip, sizes in bounds.

    Reads only the zip's central directory: every member's declared
    uncompressed size is checked before any member is read, and the zip
    reader itself stops a member that inflates past its declared size.

    Args:
        path: the ``.keras`` file.

    Raises:
        ValueError: not a regular file, not a zip, a member path that
            leaves the archive, or a member (or the whole) over its limit.
    """
    check_file(path, "model file", MAX_ARCHIVE_BYTES)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ValueError(f"cannot load {path}: not a .keras archive (not a zip: {e})") from None
    total = 0
    for member in members:
        name = member.filename
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"cannot load {path}: it holds a member outside the archive: {name!r}")
        limit = MAX_JSON_BYTES if name in ARCHIVE_JSON_MEMBERS else MAX_ARCHIVE_BYTES
        if member.file_size > limit:
            raise ValueError(f"cannot load {path}: member {name} would inflate to {member.file_size:,} bytes "
                             f"(the limit is {limit:,}); refusing to read it")
        total += member.file_size
    if total > MAX_ARCHIVE_BYTES:
        raise ValueError(f"cannot load {path}: it would inflate to {total:,} bytes (the limit is {MAX_ARCHIVE_BYTES:,})")


def check_saved_model(export_dir):
    """Checks a SavedModel folder before TensorFlow reads it: regular files, a graph in bounds.

    Args:
        export_dir: a version folder.

    Raises:
        ValueError: not a folder, no ``saved_model.pb``, a file in it that is
            not regular (a fifo would hang the loader), or a graph too large.
    """
    if not os.path.isdir(export_dir):
        raise ValueError(f"{export_dir} is not a SavedModel folder (not a folder)")
    graph = os.path.join(export_dir, "saved_model.pb")
    if not os.path.lexists(graph):
        raise ValueError(f"{export_dir} is not a SavedModel folder (no saved_model.pb)")
    check_file(graph, "SavedModel graph", MAX_GRAPH_BYTES)
    check_folder_files(export_dir, "SavedModel file")


def check_folder_files(folder, what):
    """Refuses a folder holding a fifo, a device or a socket (a reader would hang on a fifo or never end).

    Symbolic links are followed (a Hugging Face cache links to its blobs); a
    dangling one is left to the reader of that file.

    Args:
        folder: the folder, walked recursively.
        what: the kind of file in words (``"SavedModel file"``).

    Raises:
        ValueError: naming the first such file and what it is.
    """
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                mode = os.stat(os.path.join(parent, name)).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                raise ValueError(f"{what} {os.path.join(parent, name)} is {_kind(mode)}, not a regular file")
