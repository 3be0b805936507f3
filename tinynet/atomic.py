"""Create or replace a file atomically: a reader sees the old file or the new one, whole.

The one writer behind every file tinynet makes for a user (model files,
IDX files, downloads, benchmark reports, ``tinynet predict`` outputs):

1. a new temporary file in the target's own directory (a rename is atomic
   only within one file system), named ``.<name>.<random>.tmp``, with the
   permissions an ordinary ``open(path, "wb")`` would give: those of the
   file it replaces, or ``0o666`` less the umask for a new one
   (``tempfile.mkstemp`` would make every saved file ``0o600``);
2. the caller's ``write(f)`` fills it; it is flushed and ``fsync``-ed;
3. ``os.replace`` renames it over the target, and the directory is
   ``fsync``-ed so that the rename itself survives a power cut.

If anything fails before the rename (``write`` raising, a full disk, a
refused check inside ``write``), the temporary file is removed and the
target is left exactly as it was. Only the standard library is imported,
so that every floor of the package (``tinynet.data`` as well as
``tinynet.io``) can use it.
"""

from __future__ import annotations

import os
import secrets
import stat

__all__ = ["atomic_write"]


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """Open a new file ``.<name>.<random>.tmp`` in ``directory`` for writing
    (mode 0o666, so the umask applies, as for any new file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another writer drew the same name: draw again
            continue


def atomic_write(path, write) -> None:
    """Create or replace ``path`` atomically: ``write(f)`` fills a temporary
    file (binary, open for writing) in the same directory, which is flushed
    to disk and then renamed over ``path``. If ``write`` (or anything) fails,
    ``path`` is untouched and the temporary file is removed.

    The directory must exist (FileNotFoundError naming it otherwise).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"atomic_write expected the directory of {path!r} to exist, "
                                f"received a path whose directory {directory!r} does not")
    fd, tmp = _create_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            try:  # a replaced file keeps its permissions
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
