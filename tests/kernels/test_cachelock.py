"""Two processes adding entries to one kernel's Numba cache index at once
keep all of them (the lock of kernels.cachelock), and the lock never stops a
save: without it the save goes ahead as Numba's own."""

import os
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
