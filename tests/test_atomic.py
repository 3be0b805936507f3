"""tinynet.atomic.atomic_write: the target is replaced whole or left as it was,
and no temporary file outlives the call."""

import os
import stat
import subprocess
import sys

import pytest

from tinynet import atomic as atomic_mod
from tinynet.atomic import atomic_write, check_target


def test_creates_then_replaces_and_leaves_only_the_target(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, lambda f: f.write(b"first"))
    atomic_write(str(path), lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failing_write_keeps_the_old_file_and_removes_its_temp(tmp_path, error):
    path = tmp_path / "out.bin"
    path.write_bytes(b"kept")

    def half_then_fail(f):
        f.write(b"half a fi")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"kept"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory .*nowhere.* does not"):
        atomic_write(tmp_path / "nowhere" / "out.bin", lambda f: f.write(b""))
    assert os.listdir(tmp_path) == []


def test_an_empty_path_is_no_file_not_the_current_directory(tmp_path, monkeypatch):
    # os.path.realpath("") is the current directory: "cannot write '': it is a directory"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="expected a file path, received an empty"):
        atomic_write("", lambda f: f.write(b""))
    with pytest.raises(FileNotFoundError, match="--out expected a file path"):
        check_target("", "--out")
    assert os.listdir(tmp_path) == []


def test_the_public_names_are_one_function():
    import tinynet.io
    assert tinynet.io.atomic_write is atomic_write


def test_a_new_file_gets_the_umask_permissions_and_a_replaced_one_keeps_its_own(tmp_path):
    """As open(path, "wb") would: not mkstemp's 0o600 for every saved file."""
    if os.name != "posix":
        pytest.skip("POSIX permission bits")
    umask = os.umask(0o022)
    try:
        new = tmp_path / "new.bin"
        atomic_write(new, lambda f: f.write(b"x"))
        assert new.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        atomic_write(kept, lambda f: f.write(b"new"))
        assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_bytes() == b"new"
    finally:
        os.umask(umask)


def test_a_symbolic_link_is_written_through(tmp_path):
    # the link used to be replaced by a regular file, the target left stale
    real, link = tmp_path / "real.bin", tmp_path / "link.bin"
    real.write_bytes(b"old")
    link.symlink_to(real)
    atomic_write(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and real.read_bytes() == b"new"
    dangling = tmp_path / "dangling.bin"
    dangling.symlink_to(tmp_path / "made.bin")
    atomic_write(dangling, lambda f: f.write(b"x"))
    assert dangling.is_symlink() and (tmp_path / "made.bin").read_bytes() == b"x"


def test_a_write_protected_file_is_refused_and_kept(tmp_path, monkeypatch):
    # atomic_write needs only the directory's permission to rename; it refuses
    # what open(path, "wb") would (simulated: the tests may run as root)
    path = tmp_path / "protected.bin"
    path.write_bytes(b"kept")
    monkeypatch.setattr(atomic_mod.os, "access", lambda p, mode: os.fspath(p) != str(path))
    with pytest.raises(PermissionError, match=r"cannot write .*protected\.bin.*write-protected"):
        atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"kept" and os.listdir(tmp_path) == ["protected.bin"]


def test_temporary_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = atomic_mod._host()
    stale = tmp_path / f".m.npz.{host}.{gone}.0123abcd.tmp"
    alive = tmp_path / f".m.npz.{host}.{os.getppid()}.4567cdef.tmp"  # a live writer's: kept
    other = tmp_path / f".other.npz.{host}.{gone}.89abcdef.tmp"  # another target's: kept
    for p in (stale, alive, other):
        p.write_bytes(b"partial")
    atomic_write(tmp_path / "m.npz", lambda f: f.write(b"whole"))
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", alive.name, other.name])


def test_only_this_hosts_stale_temporary_files_are_removed(tmp_path):
    """A pid is this host's: on NFS another host's writer of pid 123 may be
    alive while no local process 123 is (its temp was removed mid-write)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    elsewhere = tmp_path / f".m.npz.{atomic_mod._host()}x.{gone}.0123abcd.tmp"
    unnamed = tmp_path / f".m.npz.{gone}.4567cdef.tmp"  # no host (an older tinynet's)
    for p in (elsewhere, unnamed):
        p.write_bytes(b"partial")
    seen = []

    def write(f):
        seen.extend(name for name in os.listdir(tmp_path) if name not in
                    (elsewhere.name, unnamed.name))
        f.write(b"whole")

    atomic_write(tmp_path / "m.npz", write)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", elsewhere.name, unnamed.name])
    assert len(seen) == 1 and seen[0].startswith(f".m.npz.{atomic_mod._host()}.{os.getpid()}.")


def test_a_fifo_or_a_device_is_refused_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match=r"cannot write .*pipe.*: it exists and is a FIFO "
                                              r"\(named pipe\)"):
        atomic_write(fifo, lambda f: f.write(b"x"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe"]
    (tmp_path / "null").symlink_to(os.devnull)  # followed, as open() follows it
    with pytest.raises(FileExistsError, match=r"is a character device"):
        check_target(tmp_path / "null")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_long_name_and_an_unwritable_directory(tmp_path, monkeypatch):
    long_name = tmp_path / ("n" * 250 + ".npz")  # the temporary name must still fit
    atomic_write(long_name, lambda f: f.write(b"x"))
    assert long_name.read_bytes() == b"x" and os.listdir(tmp_path) == [long_name.name]

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic_mod.os, "open", refuse)
    with pytest.raises(PermissionError, match=r"cannot write .*out\.bin.* Permission denied"):
        atomic_write(tmp_path / "out.bin", lambda f: f.write(b"x"))


# --------------------------------------------------------- atomic_write_all
def _old_set(tmp_path, names=("a.png", "a.md", "a.json")):
    paths = [tmp_path / name for name in names]
    for p in paths:
        p.write_bytes(b"old " + p.name.encode())
    return paths


def _new(p):
    return lambda f: f.write(b"new " + p.name.encode())


def test_a_set_is_renamed_in_the_order_given_only_after_every_file_is_written(tmp_path,
                                                                              monkeypatch):
    paths = _old_set(tmp_path)
    seen = []  # what a reader would find at each rename
    real_replace = os.replace

    def replace(src, dst):
        seen.append([p.read_bytes()[:3] for p in paths])
        real_replace(src, dst)

    monkeypatch.setattr(atomic_mod.os, "replace", replace)
    atomic_mod.atomic_write_all([(p, _new(p)) for p in paths])
    assert seen == [[b"old", b"old", b"old"], [b"new", b"old", b"old"],
                    [b"new", b"new", b"old"]]                 # the last file renamed last
    assert [p.read_bytes() for p in paths] == [b"new " + p.name.encode() for p in paths]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_writing_a_later_file_keeps_every_old_file_and_no_temp(tmp_path, error):
    paths = _old_set(tmp_path)

    def fail(f):
        f.write(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_mod.atomic_write_all([(paths[0], _new(paths[0])), (paths[1], fail),
                                     (paths[2], _new(paths[2]))])
    assert [p.read_bytes()[:3] for p in paths] == [b"old"] * 3
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


def test_a_refused_target_is_found_before_anything_is_written(tmp_path):
    paths = _old_set(tmp_path, ("a.md",))
    calls = []
    with pytest.raises(FileNotFoundError, match="nowhere"):
        atomic_mod.atomic_write_all([(paths[0], lambda f: calls.append(f)),
                                     (tmp_path / "nowhere" / "a.json", lambda f: None)])
    assert calls == [] and os.listdir(tmp_path) == ["a.md"]


def test_a_failing_rename_leaves_the_files_before_it_new_the_rest_old_and_no_temp(
        tmp_path, monkeypatch):
    paths = _old_set(tmp_path)
    real_replace = os.replace

    def replace(src, dst):
        if dst.endswith("a.md"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(atomic_mod.os, "replace", replace)
    with pytest.raises(OSError, match="Input/output"):
        atomic_mod.atomic_write_all([(p, _new(p)) for p in paths])
    assert [p.read_bytes()[:3] for p in paths] == [b"new", b"old", b"old"]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


def test_a_process_killed_mid_set_leaves_the_old_files_and_the_next_write_cleans_up(tmp_path):
    paths = _old_set(tmp_path)
    code = ("import os, sys; from tinynet.atomic import atomic_write_all;"
            "a, b, c = sys.argv[1:];"
            "atomic_write_all([(a, lambda f: f.write(b'new')), (b, lambda f: os._exit(9)),"
            " (c, lambda f: f.write(b'new'))])")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, paths)], timeout=60)
    assert proc.returncode == 9
    assert [p.read_bytes()[:3] for p in paths] == [b"old"] * 3
    assert len(os.listdir(tmp_path)) == 5  # the killed writer's two temporary files
    atomic_mod.atomic_write_all([(p, _new(p)) for p in paths])
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


def test_a_set_refuses_one_file_twice_and_what_is_not_a_pair(tmp_path):
    real, link = tmp_path / "real.md", tmp_path / "link.md"
    link.symlink_to(real)
    with pytest.raises(ValueError, match=r"distinct files.*real\.md.*link\.md.*one file"):
        atomic_mod.atomic_write_all([(real, _new(real)), (link, _new(link))])
    with pytest.raises(TypeError, match=r"\(path, write\) pairs.*received 'a\.md'"):
        atomic_mod.atomic_write_all(["a.md"])
    assert os.listdir(tmp_path) == ["link.md"]


def test_a_path_ending_in_a_separator_is_refused_as_open_refuses_it(tmp_path):
    """realpath drops the trailing slash: "out/" once became a file "out"."""
    with pytest.raises(IsADirectoryError):
        open(f"{tmp_path}/out/", "wb")
    with pytest.raises(IsADirectoryError, match="names a directory"):
        atomic_write(f"{tmp_path}/out/", lambda f: f.write(b"x"))
    assert os.listdir(tmp_path) == []


def test_a_bytes_path_is_written_as_open_writes_it(tmp_path):
    """os.fspath(b"...") is bytes, which once failed on str operations."""
    atomic_write(os.fsencode(tmp_path / "model.npz"), lambda f: f.write(b"x"))
    assert (tmp_path / "model.npz").read_bytes() == b"x"
    assert check_target(os.fsencode(tmp_path / "a")) == str(tmp_path / "a")


@pytest.mark.parametrize("code", ["EINVAL", "ENOTSUP"])
def test_a_file_system_that_cannot_sync_still_gets_the_file(tmp_path, monkeypatch, code):
    # some FUSE and network mounts refuse fsync on a regular file; every save
    # failed there, although a plain open(path, "wb") writes the file
    import errno
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    real_fsync = os.fsync

    def cannot_sync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # the directory's sync is allowed
            return real_fsync(fd)
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(atomic_mod.os, "fsync", cannot_sync)
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["model.npz"]


def test_an_fsync_that_fails_for_another_reason_fails_the_write(tmp_path, monkeypatch):
    # EIO: the data may not be on the disk; the old file stays
    import errno
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")

    def io_error(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic_mod.os, "fsync", io_error)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.npz"]
