"""Advisory locks held while a process writes: one writer per run folder and per export name.

A lock is a small file (``runs/.<name>.lock``, ``saved_models/<name>/.lock``)
locked with ``fcntl.flock`` and holding the holder's PID. The kernel drops a
``flock`` when its process dies, however it dies (SIGKILL included), so a
lock file left by a dead process is simply free again: the next process
locks it and writes its own PID (a stale lock is taken over by the kernel's
rule, never by guessing from the PID). A run removes its lock file when it
ends, while still holding it; ``hold`` checks after locking that the path
still names the file it locked, and starts over if not, so two processes
never hold "the" lock on two different files.

Advisory: it stops other kerazoo processes, not a user's ``rm``. It works on
local filesystems and on NFS v4 (where ``flock`` maps to POSIX locks); on
filesystems without locking the open fails with a clear error.

Also here: ``die_with_parent``, so a helper process (the TensorFlow export
child of a JAX or PyTorch export) never outlives the process that started it.
"""

import contextlib
import ctypes
import errno
import fcntl
import os
import signal

# Locks this process holds, by path: kept open (and so locked) until exit.
_HELD = {}
_PR_SET_PDEATHSIG = 1


class LockedError(ValueError):
    """Another live process holds the lock (a user's mistake: exit status 2)."""


def hold(path, what):
    """Takes the lock at ``path`` until ``release`` or the end of this process (a no-op if held already).

    Args:
        path: the lock file (created if missing; its folder must exist).
        what: the locked target in words, for the error message
            (``"the run 'pydocs_gpt'"``).

    Returns:
        ``path``.

    Raises:
        LockedError: another process holds it; the message names its PID.
    """
    path = os.path.abspath(path)
    if path in _HELD:
        return path
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise _locked_error(path, what, holder) from None
        # The holder we waited on may have removed the file (``release(remove=True)``)
        # before we locked it: a lock on an unlinked file guards nothing, so start over.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    # Ours now: a PID left by a dead holder is overwritten.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[path] = fd
    return path


def _locked_error(path, what, holder):
    return LockedError(
        f"{what} is in use by another kerazoo process (PID {holder or 'unknown'}, lock {path}); "
        "wait for it to finish or stop it"
    )


def check_free(path, what):
    """Fails early when another process holds the lock at ``path``; creates nothing.

    ``hold`` is the real test (a lock can be taken between the two); this
    one lets a command stop before reading its data.

    Raises:
        LockedError: naming the holder's PID.
    """
    if holds(path) or not is_locked(path):
        return
    try:
        with open(path, "rb") as f:
            text = f.read(32).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    raise _locked_error(os.path.abspath(path), what, int(text) if text.isdigit() else None)


@contextlib.contextmanager
def holding(path, what, remove=True):
    """Holds the lock at ``path`` for a block, then releases it (and removes the file).

    Removing is safe: it happens while the lock is held, and ``hold``
    retries when the file it locked was removed meanwhile.

    Args:
        path: the lock file.
        what: the target in words (see ``hold``).
        remove: remove the file when done.
    """
    already = holds(path)
    hold(path, what)
    try:
        yield
    finally:
        if not already:
            release(path, remove=remove)


def release(path, remove=False):
    """Releases a lock taken with ``hold``.

    Args:
        path: the lock file.
        remove: also delete the file (while still holding the lock).
    """
    fd = _HELD.pop(os.path.abspath(path), None)
    if fd is None:
        return
    if remove:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    os.close(fd)  # closing the last descriptor drops the flock


def holds(path):
    """Whether this process holds the lock at ``path``."""
    return os.path.abspath(path) in _HELD


def is_locked(path):
    """Whether some live process (this one included) holds the lock at ``path``.

    Args:
        path: a lock file (missing: not locked).

    Returns:
        True while a process holds it.
    """
    if holds(path):
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def die_with_parent(parent_pid):
    """A ``preexec_fn`` that makes the child die with SIGKILL when its parent dies.

    Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel signals the
    child when the parent exits, even by SIGKILL (which the parent cannot
    catch to clean up). The parent may have died before the call; the child
    then sees another parent PID and kills itself. Elsewhere it does nothing
    (the parent still kills the child on any exception it can catch).

    Args:
        parent_pid: ``os.getpid()`` of the parent, taken before the fork.

    Returns:
        The function to pass as ``subprocess.Popen(preexec_fn=...)``.
    """

    def set_death_signal():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal
