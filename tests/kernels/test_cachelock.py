"""Two processes adding entries to one kernel's Numba cache index at once
keep all of them (the lock of kernels.cachelock), and the lock never stops a
save: without it the save goes ahead as Numba's own."""

import contextlib
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel_helpers import needs_numba
from tinynet.kernels import cachelock, config

REPO = Path(__file__).resolve().parents[2]

#: In a fresh process: wait for the go file, then add ``N`` entries to the
#: cache index of one kernel through its (locked) save, as a compile does.
_SAVER = """
import os, sys, time
from tinynet.kernels import im2col
cache_file = im2col._col2im.serial._cache._cache_file
go, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
open(f"{go}.{tag}.ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
for i in range(n):
    cache_file.save(("tinynet-test", tag, i), f"{tag} {i}")
print(cache_file._cache_path)
"""


@needs_numba
@pytest.mark.skipif(cachelock.fcntl is None, reason="no fcntl: saves are unlocked there")
def test_two_processes_saving_at_once_keep_every_index_entry(tmp_path):
    """Each process adds 150 entries as fast as it can, both at once. Unlocked,
    each rewrote the index from its own stale copy: entries went missing, and
    an entry could name a data file the other process had written."""
    go, n = tmp_path / "go", 150
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", _SAVER, str(go), tag, str(n)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for tag in ("a", "b")]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{tag}.ready").exists() for tag in ("a", "b")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()  # both waiting: they start saving together
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    from numba.core.caching import IndexDataCacheFile
    from tinynet.kernels import im2col
    mine = im2col._col2im.serial._cache._cache_file
    index = IndexDataCacheFile(outputs[0][0].strip(), mine._index_name[:-len(".nbi")],
                               mine._source_stamp)
    for tag in ("a", "b"):
        for i in range(n):
            assert index.load(("tinynet-test", tag, i)) == f"{tag} {i}", (tag, i)


@needs_numba
def test_every_kernel_saves_under_the_lock():
    from tinynet.kernels import activations, gemm  # noqa: F401 (their kernels are built)
    if not config.CAN_CACHE:
        pytest.skip("no writable cache directory: nothing is saved")
    dispatchers = [d for k in config.PARALLEL_KERNELS for d in (k.serial, k.parallel)]
    assert len(dispatchers) >= 40
    for dispatcher in dispatchers:
        assert getattr(dispatcher._cache._cache_file.save, "locked", False), dispatcher
    cachelock.guard(dispatchers[0])  # guarding twice wraps once
    assert not getattr(dispatchers[0]._cache._cache_file.save.__wrapped__, "locked", False)


def test_the_lock_excludes_another_holder_and_falls_back_without_waiting_forever(tmp_path):
    if cachelock.fcntl is None:
        with cachelock.locked(str(tmp_path)) as held:
            assert held is False
        return
    with cachelock.locked(str(tmp_path)) as held:
        assert held is True
        assert (tmp_path / cachelock.LOCK_FILE).exists()
        with cachelock.locked(str(tmp_path), timeout=0.05) as second:
            assert second is False  # held elsewhere: the block runs unlocked
    with cachelock.locked(str(tmp_path), timeout=0.05) as again:
        assert again is True  # released when the block ended
    with cachelock.locked(str(tmp_path / "missing")) as held:
        assert held is False  # no lock file: unlocked, no error


def test_without_fcntl_the_block_runs_unlocked(monkeypatch, tmp_path):
    monkeypatch.setattr(cachelock, "fcntl", None)
    ran = []
    with cachelock.locked(str(tmp_path)) as held:
        ran.append(held)
    assert ran == [False] and not (tmp_path / cachelock.LOCK_FILE).exists()


# ------------------------------------------------------------- damaged files
def _guarded_cache_file(directory):
    """A real Numba cache file object of a kernel-like name in ``directory``,
    guarded as the kernels' are (no compile needed)."""
    import types
    from numba.core.caching import IndexDataCacheFile
    cache_file = IndexDataCacheFile(str(directory), "k-1.py311", ("stamp", 1))
    cachelock.guard(types.SimpleNamespace(_cache=types.SimpleNamespace(_cache_file=cache_file)))
    return cache_file


def _index_of(overloads) -> bytes:
    """An index file's bytes, as Numba writes it, holding ``overloads``."""
    import numba
    return pickle.dumps(numba.__version__) + pickle.dumps((("stamp", 1), overloads))


def _cut(path):
    path.write_bytes(path.read_bytes()[:-3])  # an interrupted write


@needs_numba
@pytest.mark.parametrize("damage", [
    ("k-1.py311.1.nbc", _cut), ("k-1.py311.1.nbc", lambda p: p.write_bytes(b"")),
    ("k-1.py311.1.nbc", lambda p: p.write_bytes(b"garbage\n")),
    ("k-1.py311.nbi", _cut), ("k-1.py311.nbi", lambda p: p.write_bytes(b"I12x\n.")),
    ("k-1.py311.nbi", lambda p: p.write_bytes(b"")),
    ("k-1.py311.nbi", lambda p: p.write_bytes(_index_of(["not", "a", "dict"]))),
], ids=["cut data", "empty data", "garbage data", "cut index", "garbage index",
        "empty index", "index of no dict"])
def test_a_damaged_cache_file_is_removed_and_a_cache_miss(tmp_path, capsys, monkeypatch, damage):
    """Numba let the unpickling error through (numba #10434): every later run
    crashed. Now the file is removed (a damaged index with the data files it
    named), the load misses, and the next save writes the entry afresh; a
    damaged index met inside save (which holds the lock) does not wait for it."""
    depth = []
    real_locked = cachelock.locked

    @contextlib.contextmanager
    def counting(directory, timeout=None):
        assert not depth, "the lock taken again inside itself: it would wait LOCK_TIMEOUT"
        depth.append(1)
        with real_locked(directory, timeout=0.5) as held:
            yield held
        depth.pop()
    monkeypatch.setattr(cachelock, "locked", counting)
    cache_file = _guarded_cache_file(tmp_path)
    cache_file.save(("a",), "entry a")
    cache_file.save(("b",), "entry b")
    name, spoil = damage
    spoil(tmp_path / name)
    if name.endswith(".nbi"):
        cache_file.save(("c",), "entry c")  # reads the damaged index, under the lock
        assert sorted(p.name for p in tmp_path.glob("k-*")) == ["k-1.py311.1.nbc",
                                                                "k-1.py311.nbi"]
        assert cache_file.load(("a",)) is None and cache_file.load(("c",)) == "entry c"
    else:
        assert cache_file.load(("a",)) is None
        assert not (tmp_path / name).exists() and cache_file.load(("b",)) == "entry b"
        cache_file.save(("a",), "entry a")
        assert cache_file.load(("a",)) == "entry a"
    assert f"a damaged Numba cache file" in (err := capsys.readouterr().err)
    assert f"removed {name}" in err and "\n" not in err.rstrip("\n")


@needs_numba
def test_a_damaged_file_that_cannot_be_removed_is_said_so(tmp_path, capsys, monkeypatch):
    # the message said "removed" when os.remove failed (a sticky /tmp-like cache
    # directory holding another user's file), at every run
    cache_file = _guarded_cache_file(tmp_path)
    cache_file.save(("a",), "entry a")
    _cut(tmp_path / "k-1.py311.1.nbc")

    def refuse(name):
        raise PermissionError(13, "Permission denied", name)
    monkeypatch.setattr(cachelock.os, "remove", refuse)
    assert cache_file.load(("a",)) is None
    err = capsys.readouterr().err
    assert "could not remove" in err and "k-1.py311.1.nbc (Permission denied)" in err
    assert "remove it by hand" in err and "removed" not in err
    assert (tmp_path / "k-1.py311.1.nbc").exists()


@needs_numba
def test_an_io_error_is_not_taken_for_damage(tmp_path, monkeypatch):
    cache_file = _guarded_cache_file(tmp_path)
    cache_file.save(("a",), "entry a")

    def refuse(*args, **kwargs):
        raise PermissionError("no")
    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(PermissionError):
        cache_file._load_index()
    monkeypatch.undo()
    assert cache_file.load(("a",)) == "entry a"  # nothing removed


#: A run that needs one small kernel (dropout's serial multiply, one index
#: file and one data file) and prints its result.
_RUN_MUL = ("import numpy as np; from tinynet.kernels import dropout as D; "
            "print(D.dropout_backward(np.full((2, 3), 2.0, np.float32), "
            "np.ones((2, 3), np.float32))[0, 0])")


@needs_numba
def test_runs_after_a_cache_file_is_damaged_work_and_rewrite_it(tmp_path):
    """repro of numba #10434 through tinynet: a data file cut short, then an
    index overwritten; each next run works, compiles and rewrites the file,
    and the run after it loads from the cache again."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run():
        proc = subprocess.run([sys.executable, "-c", _RUN_MUL], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and proc.stdout.strip() == "2.0", proc.stderr[-2000:]
        return proc.stderr

    assert config.COMPILE_MESSAGE in run()
    data, = tmp_path.rglob("dropout._mul_serial-*.1.nbc")
    index, = tmp_path.rglob("dropout._mul_serial-*.nbi")
    for spoilt, spoil in ((data, _cut), (index, lambda p: p.write_bytes(b"12345 garbage\n"))):
        spoil(spoilt)
        err = run()
        assert "a damaged Numba cache file" in err and config.COMPILE_MESSAGE in err
        pickle.loads(data.read_bytes())  # whole again (its size varies a little by compile)
        assert run() == ""  # loaded from the rewritten cache: no compile, nothing removed
