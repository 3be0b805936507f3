"""Create or replace a file atomically: a reader sees the old file or the new one, whole.

The one writer behind every file tinynet makes for a user (model files,
IDX files, downloads, benchmark reports, ``tinynet predict`` outputs, and
the embedded digits that ``tools/make_digits.py`` builds):

1. a new temporary file in the target's own directory (a rename is atomic
   only within one file system), named ``.<name>.<host>.<pid>.<random>.tmp``, with
   the permissions an ordinary ``open(path, "wb")`` would give: those of the
   file it replaces, or ``0o666`` less the umask for a new one
   (``tempfile.mkstemp`` would make every saved file ``0o600``);
2. the caller's ``write(f)`` fills it; it is flushed and ``fsync``-ed (where the
   file system can sync at all: one that refuses with EINVAL or ENOTSUP
   gets the file without that guarantee, as a plain ``open`` would);
3. ``os.replace`` renames it over the target, and the directory is
   ``fsync``-ed so that the rename itself survives a power cut.

If anything fails before the rename (``write`` raising, a full disk, a
refused check inside ``write``), the temporary file is removed and the
target is left exactly as it was. A process killed mid-write cannot remove
its temporary file; the next write to the same target *from the same host*
removes those whose process (the ``<pid>`` in the name) is gone. A process
id means something only on its own host: on a shared (NFS) directory another
host's live writer may have any pid, so only temporary files with this
host's name (``socket.gethostname()``) are removed; those of other hosts,
and those named without a host (by a tinynet before it named them so),
are left alone.

Files that belong together (a benchmark report's ``.json``, ``.md`` and
``.png``) go through :func:`atomic_write_all`: steps 1 and 2 for every
file, and only then step 3 for each, in the order given, so that the file
renamed last is never newer than the others.

Like ``open(path, "wb")``: a symbolic link is written through (its target
is replaced, the link stays), a file the user may not write is
refused (``PermissionError``), though the directory would allow the rename,
and so is a path ending in a separator (``IsADirectoryError``). Unlike it,
an existing target that is not a regular file (a FIFO, a device such as
``/dev/null``, a socket) is refused (``FileExistsError``): ``open`` would
write into it, and the rename would put a regular file in its place. Unlike it,
a file with several hard links gets a new inode: the other links keep the
old contents (the price of the rename).
Only the standard library is imported, so that every floor of the package
(``tinynet.data`` as well as ``tinynet.io``) can use it.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
import stat

__all__ = ["atomic_write", "atomic_write_all", "check_target"]


#: Longest file name most file systems take (bytes); the temporary name adds
#: about 30 characters to the target's, so a long target name is cut short.
_NAME_MAX = 255


def _host() -> str:
    """This host's name as a temporary name holds it: at most 64 characters
    (Linux's HOST_NAME_MAX) of letters, digits, ``-`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "_"


def _temp_stem(name: str) -> str:
    """``.<name>.<host>``, the name cut so that ``.<name>.<host>.<pid>.<8 hex>.tmp``
    fits _NAME_MAX."""
    host = _host()
    budget = _NAME_MAX - 33 - len(host)
    raw = name.encode("utf-8", "surrogateescape")[:budget]
    return "." + raw.decode("utf-8", "ignore") + "." + host


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):  # alive (another user's), or cannot tell
        return False
    return False


def _remove_stale_temps(directory: str, stem: str) -> None:
    """Remove ``<stem>.<pid>.<hex>.tmp`` files left by killed writers of this
    host (``stem`` ends in its name)."""
    pattern = re.compile(re.escape(stem) + r"\.(\d+)\.[0-9a-f]{8}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        match = pattern.fullmatch(entry)
        if match and int(match.group(1)) != os.getpid() and _process_gone(int(match.group(1))):
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                pass


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """Open a new file ``.<name>.<host>.<pid>.<random>.tmp`` in ``directory`` for
    writing (mode 0o666, so the umask applies, as for any new file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    stem = _temp_stem(name)
    _remove_stale_temps(directory, stem)
    while True:
        tmp = os.path.join(directory, f"{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another writer drew the same name: draw again
            continue


def check_target(path, who: str = "atomic_write", file_too: bool = True) -> str:
    """Raise now what writing ``path`` would meet, and return its real path.

    ``path`` (str, bytes or path-like) must not be empty and its directory must exist
    (``FileNotFoundError``) and be writable
    (``PermissionError``); with ``file_too``, ``path`` must not be a directory
    or end in a separator (``IsADirectoryError``) nor a file the user may not write
    (``PermissionError``: a rename would replace it anyway), and if it exists it
    must be a regular file (``FileExistsError`` for a FIFO, a device, a
    socket: the rename would put a regular file in its place). Symbolic links
    are followed, as ``open`` follows them. Callers that write later (a
    checkpoint, the CLI's ``--out``) call it before the work, so that a
    training run is not lost to a path that cannot be written.
    """
    shown = os.fsdecode(path)  # a bytes path too, as open() takes it
    if not shown:  # realpath("") is the current directory
        raise FileNotFoundError(f"{who} expected a file path, received an empty one")
    if file_too and shown.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        # realpath drops the slash: "out/" would become a file "out", where
        # open("out/", "wb") refuses a path that names a directory
        raise IsADirectoryError(errno.EISDIR, f"cannot write {shown!r}: a path ending in "
                                f"{shown[-1]!r} names a directory, not a file")
    real = os.path.realpath(shown)
    directory = os.path.dirname(real)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{who} expected the directory of {shown!r} to exist, "
                                f"received a path whose directory {directory!r} does not "
                                f"exist (create it first)")
    if file_too and os.path.isdir(real):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {shown!r}: it is a directory")
    if file_too and os.path.exists(real):
        _check_regular(shown, os.stat(real).st_mode)
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"{who} cannot write into {directory!r} (the directory of "
                              f"{shown!r}): it is not writable")
    if file_too and os.path.exists(real) and not os.access(real, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write {shown!r}: the file is "
                              f"write-protected (mode {stat.filemode(os.stat(real).st_mode)}); "
                              f"nothing written")
    return real


#: What an existing target that is not a regular file is, by ``stat`` test.
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_regular(shown: str, mode: int) -> None:
    """Refuse an existing target that is not a regular file (nor a directory,
    which :func:`check_target` refuses before)."""
    if stat.S_ISREG(mode):
        return
    what = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
    raise FileExistsError(errno.EEXIST, f"cannot write {shown!r}: it exists and is {what}, "
                          f"which a write would replace by a regular file; give the path "
                          f"of a regular file (or of none yet)")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _stage(shown: str, path: str, write) -> str:
    """Steps 1 and 2 for the real path ``path`` (``shown`` as the caller gave
    it): a temporary file beside it, filled by ``write(f)``, flushed and
    ``fsync``-ed; its name is returned. On failure it is removed."""
    directory = os.path.dirname(path)
    try:
        fd, tmp = _create_temp(directory, os.path.basename(path))
    except OSError as exc:  # name the target, not the hidden temporary file
        raise type(exc)(exc.errno, f"cannot write {shown!r} (in {directory!r}): "
                                   f"{exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            try:  # a replaced file keeps its permissions
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass
            write(f)
            f.flush()
            _fsync_file(f.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


#: What ``fsync`` raises on a file system that cannot sync (some FUSE and
#: network mounts): the data is written but cannot be forced to the disk.
_CANNOT_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


def _fsync_file(fd: int) -> None:
    """``os.fsync(fd)``, except where the file system cannot sync at all
    (:data:`_CANNOT_SYNC`): there the write goes on without the guarantee
    against a power cut (the rename still spares readers a half-written
    file), as an ordinary ``open(path, "wb")`` would. Any other error (EIO:
    the data may not be on the disk) still fails the write."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _CANNOT_SYNC:
            raise


def _fsync_directory(directory: str) -> None:
    """Make the renames into ``directory`` durable (not possible on every platform)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write(path, write) -> None:
    """Create or replace ``path`` atomically: ``write(f)`` fills a temporary
    file (binary, open for writing) in the same directory, which is flushed
    to disk and then renamed over ``path``. If ``write`` (or anything) fails,
    ``path`` is untouched and the temporary file is removed.

    The directory must exist (FileNotFoundError naming it otherwise).
    """
    atomic_write_all([(path, write)])


def atomic_write_all(files) -> None:
    """Write several files as one set: every one is written before any is renamed.

    ``files`` is a sequence of ``(path, write)`` pairs, each as
    :func:`atomic_write` takes them. Every target is checked first
    (:func:`check_target`), then every ``write(f)`` fills its own temporary
    file (steps 1 and 2 of the module docstring); only when all are on disk
    are they renamed over their targets, **in the order given**, and the
    directories ``fsync``-ed. Put last the file whose presence says the set
    is complete (a benchmark report's ``.json``): a reader who sees the new
    last file sees the new others with it.

    * A failure before the renames (a ``write`` raising, a full disk, a
      refused target, an interrupt) removes every temporary file and leaves
      every target exactly as it was.
    * The renames are each atomic but not all at once: a process killed
      between two of them leaves the files before that point new and the
      rest old (their temporary files are removed by the next write to
      them); a rename that fails removes the remaining temporary files and
      raises, with the same result. Never is a later file new beside an
      earlier old one.

    The same file twice is refused (``ValueError``): it would be written twice.
    """
    files = list(files)
    for item in files:
        if not (isinstance(item, tuple) and len(item) == 2 and callable(item[1])):
            raise TypeError(f"atomic_write_all expected (path, write) pairs with a callable "
                            f"write(f), received {item!r}")
    targets, seen = [], {}
    for path, write in files:
        shown = os.fsdecode(path)
        real = check_target(shown)  # through symbolic links, as open() writes
        if real in seen:
            raise ValueError(f"atomic_write_all expected distinct files, received "
                             f"{seen[real]!r} and {shown!r}, which are one file")
        seen[real] = shown
        targets.append((shown, real, write))
    staged, done = [], 0
    try:
        for shown, real, write in targets:
            staged.append((_stage(shown, real, write), real))
        for tmp, real in staged:
            os.replace(tmp, real)
            done += 1
    except BaseException:
        for tmp, _ in staged[done:]:
            _remove(tmp)
        raise
    for directory in dict.fromkeys(os.path.dirname(real) for _, real, _ in targets):
        _fsync_directory(directory)
