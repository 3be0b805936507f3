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

Damaged files: Numba unpickles the index and the data files and lets
whatever that raises through (numba issue #10434), so one cache file cut
short (an interrupted write, a full disk) or overwritten made every later
run that needs the kernel crash, ``tinynet compile`` too. Unpickling cut or
garbled copies of a kernel's ``.nbi`` and ``.nbc`` (truncated at 400 points,
400 with random bytes changed, 400 of random bytes) raised
``UnpicklingError``, ``EOFError``, ``ValueError`` (``UnicodeDecodeError``),
``AttributeError``, ``TypeError``, ``ModuleNotFoundError``,
``OverflowError``, ``MemoryError``, ``RecursionError`` and ``SystemError``:
no short list, so :func:`guard` takes any ``Exception`` but ``OSError``
(an I/O error, not damage: Numba's own handling stays) from reading one of a
tinynet kernel's files as damage. Under the lock, it reads the file again (a
process may have replaced it whole since), and if it is still damaged removes
it -- a damaged index with the kernel's data files, which nothing then names
-- says so on stderr, and Numba takes it as a cache miss: the kernel compiles
and its entry is saved afresh. A data file that unpickles but holds other
bytes than were written is not detected (Numba keeps no checksum).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
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
    cache directory, and its damaged cache files cache misses (module
    docstring). Relies on Numba's ``Dispatcher._cache._cache_file`` (an
    ``IndexDataCacheFile``, whose ``save`` adds one entry, ``_load_index``
    reads the index -- for ``load`` and ``save`` -- and ``_load_data`` one
    data file); where that is missing -- no cache, another Numba -- it does
    nothing."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    save = getattr(cache_file, "save", None)
    directory = getattr(cache_file, "_cache_path", None)
    load_index = getattr(cache_file, "_load_index", None)
    load_data = getattr(cache_file, "_load_data", None)
    if save is None or load_index is None or load_data is None or \
            not isinstance(directory, str) or getattr(save, "locked", False):
        return
    saving = []  # non-empty while save holds the lock: a damaged index is met inside it

    @functools.wraps(save)
    def locked_save(key, data):
        with locked(directory):
            saving.append(True)
            try:
                save(key, data)
            finally:
                saving.pop()
    locked_save.locked = True
    cache_file.save = locked_save

    def undamaged(read, path, also=list):
        """``read()``, or, where what it reads is damaged, None once ``path``
        (and the files ``also()`` names) are removed."""
        try:
            return read()
        except OSError:
            raise
        except Exception:
            pass
        with locked(directory) if not saving else contextlib.nullcontext():
            try:
                return read()  # replaced whole by another process meanwhile?
            except OSError:
                raise
            except Exception as exc:
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]  # one line
            removed, kept = [], []
            for name in [path, *also()]:
                try:
                    os.remove(name)
                    removed.append(os.path.basename(name))
                except FileNotFoundError:  # gone already
                    pass
                except OSError as exc:  # a read-only cache, another user's file
                    kept.append(f"{name} ({exc.strerror or exc})")
        said = [f"removed {', '.join(removed)}"] if removed else []
        said += [f"could not remove {', '.join(kept)}; remove it by hand"] if kept else []
        print(f"tinynet: a damaged Numba cache file ({reason}): "
              f"{'; '.join(said) or 'already removed'}; the kernel compiles again",
              file=sys.stderr, flush=True)
        return None

    index_path = os.path.join(directory, cache_file._index_name)
    data_file = re.compile(re.escape(cache_file._index_name[:-len("nbi")]) + r"\d+\.nbc")

    def data_files():
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        return [os.path.join(directory, n) for n in names if data_file.fullmatch(n)]

    def read_index():
        overloads = load_index()
        if not isinstance(overloads, dict):  # Numba would call its .get
            raise TypeError(f"the index holds a {type(overloads).__name__}, not a dict")
        return overloads

    @functools.wraps(load_index)
    def checked_load_index():
        overloads = undamaged(read_index, index_path, data_files)
        return {} if overloads is None else overloads

    @functools.wraps(load_data)
    def checked_load_data(name):
        return undamaged(lambda: load_data(name), os.path.join(directory, name))

    cache_file._load_index = checked_load_index
    cache_file._load_data = checked_load_data
