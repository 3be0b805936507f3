"""tinynet.atomic.atomic_write: the target is replaced whole or left as it was,
and no temporary file outlives the call."""

import os
import subprocess
import sys

import pytest

from tinynet import atomic as atomic_mod
from tinynet.atomic import atomic_write


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
    stale = tmp_path / f".m.npz.{gone}.0123abcd.tmp"
    alive = tmp_path / f".m.npz.{os.getppid()}.4567cdef.tmp"  # a live writer's: kept
    other = tmp_path / f".other.npz.{gone}.89abcdef.tmp"  # another target's: kept
    for p in (stale, alive, other):
        p.write_bytes(b"partial")
    atomic_write(tmp_path / "m.npz", lambda f: f.write(b"whole"))
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz", alive.name, other.name])


def test_a_long_name_and_an_unwritable_directory(tmp_path, monkeypatch):
    long_name = tmp_path / ("n" * 250 + ".npz")  # the temporary name must still fit
    atomic_write(long_name, lambda f: f.write(b"x"))
    assert long_name.read_bytes() == b"x" and os.listdir(tmp_path) == [long_name.name]

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic_mod.os, "open", refuse)
    with pytest.raises(PermissionError, match=r"cannot write .*out\.bin.* Permission denied"):
        atomic_write(tmp_path / "out.bin", lambda f: f.write(b"x"))
