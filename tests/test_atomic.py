"""tinynet.atomic.atomic_write: the target is replaced whole or left as it was,
and no temporary file outlives the call."""

import os

import pytest

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
