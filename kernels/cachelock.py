"""One process at a time adds entries to the Numba cache of a kernel.

Numba keeps, per kernel, an index file (``<name>-<line>.pyXY.nbi``: the
pickled ``{(signature, target, bytecode hash): data file name}``) and one
data file per entry (``<name>-<line>.pyXY.<k>.nbc``). To add an entry,
``numba.core.caching.IndexDataCacheFile.save`` reads the index, picks the
first data-file number the index does not name, writes the index back (whole,
by ``os.replace``) and then the data file. Nothing orders two processes
doing this at once -- two ``tinynet compile``, or a training run beside one
-- so both read the same index and:

* the later index write drops the other's entry, and a later run compiles
  that kernel again (slow);
* both may pick the same number, and the index may then name a data file
  that the other process wrote for another signature (Numba would load it
  for the wrong argument types).

:func:`guard` makes each tinynet kernel's ``save`` hold an advisory lock
(``fcntl.flock``, exclusive) on :data:`LOCK_FILE` in the kernels' cache
directory for the whole read, pick and write: entries are added one process
at a time and none is lost. Loading takes no lock: files are replaced whole.
Numba's developers suggested such a lock for the same race (numba issue
#10128); Numba itself takes none.

A fallback, never an error: without ``fcntl`` (Windows), where the lock file
cannot be opened (a read-only cache), or when the lock is not granted within
:data:`LOCK_TIMEOUT` seconds (a process stopped while it held it), the entry
is saved as Numba saves it, unlocked. Other code's Numba caches are left
alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time

try:
    import fcntl
except ImportError:  # not POSIX: Numba's own unlocked writes
    fcntl = None

__all__ = ["LOCK_FILE", "LOCK_TIMEOUT", "locked", "guard"]

#: In the kernels' cache directory, beside the index files it guards.
LOCK_FILE = "tinynet-kernels-cache.lock"
#: Seconds to wait for the lock before saving without it.
LOCK_TIMEOUT = 30.0
_POLL = 0.01


@contextlib.contextmanager
def locked(directory: str, timeout: float | None = None):
    """Hold the exclusive advisory lock of ``directory`` (:data:`LOCK_FILE`)
    for the block; yields True when held, False when the block runs unlocked
    (no fcntl, no lock file, or ``timeout`` seconds -- default
    :data:`LOCK_TIMEOUT` -- went by). The lock is released when the block
    ends or the process dies; it excludes other processes, and other open
    lock files within this process."""
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    fd = None
    if fcntl is not None:
        path = os.path.join(directory, LOCK_FILE)
        for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):  # another user's: read it
            try:
                fd = os.open(path, flags, 0o666)
                break
            except OSError:
                continue
    try:
        held = False
        if fd is not None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(_POLL)
                except OSError:  # a file system without locks
                    break
        yield held
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def guard(dispatcher) -> None:
    """Make ``dispatcher``'s disk-cache writes hold :func:`locked` on its
    cache directory. Relies on Numba's ``Dispatcher._cache._cache_file``
    (an ``IndexDataCacheFile``, whose ``save`` adds one entry); where that is
    missing -- no cache, another Numba -- it does nothing."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    save = getattr(cache_file, "save", None)
    directory = getattr(cache_file, "_cache_path", None)
    if save is None or not isinstance(directory, str) or getattr(save, "locked", False):
        return

    @functools.wraps(save)
    def locked_save(key, data):
        with locked(directory):
            save(key, data)
    locked_save.locked = True
    cache_file.save = locked_save
