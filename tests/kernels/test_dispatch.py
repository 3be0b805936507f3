"""Backend selection, the numba-less fallback and the one-time compile message."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn
from tinynet.kernels import dispatch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_backend():
    previous = dispatch.get_backend()
    yield
    dispatch.set_backend(previous)


def test_set_and_get_backend(restore_backend):
    assert tn.kernels.set_backend is dispatch.set_backend
    for name in ("numpy", "NUMBA", "auto"):
        dispatch.set_backend(name)
        assert dispatch.get_backend() == name.lower()
    with pytest.raises(ValueError, match="unknown tinynet backend 'cuda'"):
        dispatch.set_backend("cuda")
    with pytest.raises(ValueError, match="unknown tinynet backend"):
        dispatch.set_backend(None)


def test_impl_follows_backend(restore_backend):
    fast, ref = dispatch.OPS["adam"]
    dispatch.set_backend("numpy")
    assert dispatch.impl("adam") is ref
    dispatch.set_backend("numba")
    assert dispatch.impl("adam") is (fast if tn.kernels.NUMBA_ENABLED else ref)
    with dispatch.use_backend("numpy"):
        assert dispatch.impl("adam") is ref
    assert dispatch.get_backend() == "numba"
    with pytest.raises(ValueError, match="unknown kernel operation"):
        dispatch.impl("matmul_tt")


def test_every_op_pairs_a_kernel_with_a_reference():
    for name, (fast, ref) in dispatch.OPS.items():
        assert callable(fast) and callable(ref), name
        assert ref.__name__.endswith("_ref"), name


def test_auto_measures_once_per_size_class(restore_backend):
    dispatch.set_backend("auto")
    fn = dispatch.impl("dense_forward", 1000)
    assert fn in dispatch.OPS["dense_forward"]
    assert dispatch.impl("dense_forward", 1010) is fn  # same class, no new measurement
    choices = dispatch.auto_choices()
    if tn.kernels.NUMBA_ENABLED:
        from tinynet.kernels import config
        assert choices[("dense_forward", 4, config.raw_num_threads())] in ("numba", "numpy")
    x = np.ones((3, 4), np.float32)
    w = np.ones((4, 2), np.float32)
    np.testing.assert_allclose(fn(x, w, None, 0), x @ w)


GEMM_OPS = ("matmul", "matmul_tn", "matmul_nt", "dense_forward", "dense_backward")


def _product_shape(op, args):
    """(M, K, N) of the product a synthetic call of ``op`` makes."""
    a, b = args[:2]
    m, k = a.shape[::-1] if op == "matmul_tn" else a.shape
    n = b.shape[0] if op == "matmul_nt" else b.shape[1]
    return m, k, n


@pytest.mark.parametrize("op", GEMM_OPS)
def test_auto_times_a_bounded_product_for_a_big_output(op):
    """impl() gets only the output size; the synthetic product was square, so
    size class 11 (x (16384, 4) @ w (4, 256)) timed 2048**3 multiply-adds
    twelve times (5.8 s at the first call). Its inner dimension is now
    bounded: at most SYNTHETIC_INNER_MAX multiply-adds per output element."""
    for size_class in (11, 12):
        n = 4 ** size_class
        m, k, cols = _product_shape(op, dispatch._synthetic(op, n))
        assert n / 2 <= m * cols <= n and k <= dispatch.SYNTHETIC_INNER_MAX
        assert max(m, cols) <= 2 * n ** 0.5  # and square-ish: no tall thin output


@pytest.mark.parametrize("op", GEMM_OPS)
def test_auto_synthetic_problems_are_valid_calls(op):
    """Each synthetic call runs, on both implementations, with the shapes its
    product should have (the old square problem passed one array as several)."""
    for n in (1, 7, 4 ** 3, 4 ** 5):
        args = dispatch._synthetic(op, n)
        m, k, cols = _product_shape(op, args)
        assert k == min(cols, dispatch.SYNTHETIC_INNER_MAX) and m * cols <= n
        for fn in dispatch.OPS[op]:
            out = fn(*args)
            if op != "dense_backward":
                assert out.shape == (m, cols)


@pytest.fixture
def auto_choice_file(restore_backend, monkeypatch, tmp_path):
    """``auto`` with a choice file of its own and nothing decided yet; the
    measurements, counted, answer what ``answers`` says (default: numba)."""
    dispatch.set_backend("auto")
    path = tmp_path / "cache" / dispatch.CHOICE_FILE
    monkeypatch.setattr(dispatch, "_choice_path", lambda: str(path))
    monkeypatch.setattr(dispatch, "_auto", {})
    state = {"calls": 0, "answer": True}

    def measure(op, n):
        state["calls"] += 1
        return state["answer"]
    monkeypatch.setattr(dispatch, "_measure", measure)
    return path, state


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_auto_choices_are_kept_for_later_processes(auto_choice_file, monkeypatch):
    """A choice timed anew in every process could differ from one process to
    the next (and the two implementations round differently): the first
    measurement is stored, and later processes read it."""
    import json
    from tinynet.kernels import config
    path, state = auto_choice_file
    fast, ref = dispatch.OPS["dense_forward"]
    assert dispatch.impl("dense_forward", 1000) is fast and state["calls"] == 1
    assert dispatch.impl("dense_forward", 1010) is fast and state["calls"] == 1
    stored = json.loads(path.read_text())
    assert stored["kernels"] == config.SOURCES_DIGEST
    (key, value), = stored["choices"].items()
    assert value == "numba" and key.endswith("; dense_forward; size class 4")
    assert f"{config.raw_num_threads()} numba threads" in key
    # a later process (nothing decided in it) whose measurement would say numpy
    monkeypatch.setattr(dispatch, "_auto", {})
    state["answer"] = False
    assert dispatch.impl("dense_forward", 1000) is fast and state["calls"] == 1  # read
    threads = config.raw_num_threads()
    assert dispatch.auto_choices() == {("dense_forward", 4, threads): "numba"}
    # another size class is measured, and stored beside the first
    assert dispatch.impl("dense_forward", 100_000) is ref and state["calls"] == 2
    assert sorted(json.loads(path.read_text())["choices"].values()) == ["numba", "numpy"]


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_auto_choices_follow_the_thread_count_within_a_process(auto_choice_file):
    """Stored per thread count, and so kept per thread count in the process:
    after set_num_threads the choice is the one a fresh process at that count
    reads, not the one made at the count before (an audit got other weights
    from the same fit(seed=0) that way)."""
    from tinynet.kernels import config
    _, state = auto_choice_file
    fast, ref = dispatch.OPS["dense_forward"]
    before = config.raw_num_threads()
    other = 1 if before != 1 else 2
    assert dispatch.impl("dense_forward", 1000) is fast and state["calls"] == 1
    state["answer"] = False  # the other thread count measures otherwise
    tn.kernels.set_num_threads(other)
    try:
        assert dispatch.impl("dense_forward", 1000) is ref and state["calls"] == 2
    finally:
        tn.kernels.set_num_threads(before)
    assert dispatch.impl("dense_forward", 1000) is fast and state["calls"] == 2


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_auto_with_an_unwritable_cache_measures_once_per_process(auto_choice_file,
                                                                 monkeypatch, tmp_path):
    _, state = auto_choice_file
    (tmp_path / "a file").write_text("")
    monkeypatch.setattr(dispatch, "_choice_path",
                        lambda: str(tmp_path / "a file" / dispatch.CHOICE_FILE))
    fast, _ = dispatch.OPS["matmul"]
    assert dispatch.impl("matmul", 64) is fast and dispatch.impl("matmul", 64) is fast
    assert state["calls"] == 1


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_a_fresh_interpreter_makes_the_auto_choice_another_one_stored(tmp_path):
    """The file is found where the kernels' Numba cache is (NUMBA_CACHE_DIR
    here), so a second process chooses as the first did, without measuring."""
    code = ("from tinynet.kernels import dispatch\n"
            "{patch}"
            "dispatch.set_backend('auto')\n"
            "print(dispatch.impl('dense_forward', 4096).__name__)")
    first = _run(code.format(patch=""), NUMBA_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    (stored,) = tmp_path.rglob(dispatch.CHOICE_FILE)
    assert stored.read_text().count("dense_forward") == 1
    second = _run(code.format(patch="def refuse(op, n): raise SystemExit('measured again')\n"
                                    "dispatch._measure = refuse\n"),
                  NUMBA_CACHE_DIR=str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout and first.stdout.strip() in (
        "dense_forward", "dense_forward_ref")


def _run(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_env_variable_selects_backend_and_bad_value_is_explained():
    ok = _run("import tinynet.kernels as k; print(k.get_backend())", TINYNET_BACKEND="numpy")
    assert ok.returncode == 0 and ok.stdout.strip() == "numpy"
    bad = _run("import tinynet.kernels", TINYNET_BACKEND="gpu")
    assert bad.returncode != 0 and "TINYNET_BACKEND" in bad.stderr


def test_disabled_jit_runs_references():
    code = ("import numpy as np, tinynet.kernels as k; from tinynet.kernels import gemm, optim;"
            "print(k.NUMBA_ENABLED, gemm.matmul is gemm.matmul_ref, optim.adam is optim.adam_ref,"
            " k.impl('adam') is optim.adam_ref);"
            "print(gemm.matmul(np.ones((2, 3)), np.ones((3, 2))).sum())")
    proc = _run(code, NUMBA_DISABLE_JIT="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "True", "True", "12.0"]


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_compile_message_once_then_cached(tmp_path):
    code = ("import numpy as np; from tinynet.kernels import dropout;"
            "x = np.ones(10, np.float32); dropout.dropout_backward(x, x);"
            "dropout.dropout_backward(x.astype(np.float64), x.astype(np.float64))")
    cold = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.count("tinynet: compiling kernels not yet in the disk cache") == 1
    assert "first run only" not in cold.stderr  # untrue whenever a new signature compiles
    warm = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert warm.returncode == 0 and "compiling" not in warm.stderr


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_a_changed_kernels_source_drops_the_cache_of_every_kernel(tmp_path):
    """Numba checks a cache entry against its own file only; the stamp of all
    the kernels' sources makes a change anywhere recompile every kernel (here
    the stamp is altered, as a source change would make it differ)."""
    from tinynet.kernels.config import SOURCES_STAMP
    code = ("import numpy as np; from tinynet.kernels import dropout;"
            "x = np.ones(10, np.float32); dropout.dropout_backward(x, x)")
    first = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0 and "compiling" in first.stderr, first.stderr
    (stamp,) = tmp_path.rglob(SOURCES_STAMP)
    digest = stamp.read_text()
    cached = sorted(p.name for p in stamp.parent.glob("dropout.*.nbi"))
    assert cached
    assert "compiling" not in _run(code, NUMBA_CACHE_DIR=str(tmp_path)).stderr
    stamp.write_text("0" * 64 + "\n")                          # "the sources changed"
    again = _run("import tinynet.kernels.config", NUMBA_CACHE_DIR=str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert not list(stamp.parent.glob("*.nbi")) and stamp.read_text() == digest
    rebuilt = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert rebuilt.returncode == 0 and "compiling" in rebuilt.stderr
    assert sorted(p.name for p in stamp.parent.glob("dropout.*.nbi")) == cached


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_a_failed_stamp_write_leaves_neither_a_temp_file_nor_an_error(tmp_path):
    """The stamp is housekeeping: when its rename fails, the import goes on and
    the temporary file is removed, not left in the cache directory."""
    from tinynet.kernels.config import SOURCES_STAMP
    code = ("import os, glob; import tinynet.kernels.config as c;"
            f"(stamp,) = glob.glob(os.path.join(os.environ['NUMBA_CACHE_DIR'], '**', "
            f"'{SOURCES_STAMP}'), recursive=True);"
            "open(stamp, 'w').write('0' * 64);"
            "os.replace = lambda *a: (_ for _ in ()).throw(OSError('disk full'));"
            "c._drop_stale_cache();"
            "print(sorted(os.listdir(os.path.dirname(stamp))))")
    proc = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr([SOURCES_STAMP])


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_a_damaged_stamp_is_rewritten_not_an_import_error(tmp_path):
    """A stamp holding bytes that are not UTF-8 (a damaged disk, a half-copied
    cache) made ``import tinynet.kernels`` raise UnicodeDecodeError; it is a
    stale stamp like any other: the cache is dropped and the stamp rewritten."""
    from tinynet.kernels.config import SOURCES_STAMP
    assert _run("import tinynet.kernels.config", NUMBA_CACHE_DIR=str(tmp_path)).returncode == 0
    (stamp,) = tmp_path.rglob(SOURCES_STAMP)
    digest = stamp.read_text()
    stamp.write_bytes(b"\xff\xfe\x00 not a digest")
    proc = _run("import tinynet.kernels", NUMBA_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert stamp.read_text() == digest


def test_importing_the_kernels_under_their_directory_name_is_refused(tmp_path):
    """From the repository's root ``kernels`` is importable as a top-level
    package; a kernel compiled there would be cached under that module name
    and crash the next load as tinynet.kernels, so the import is refused."""
    proc = _run("import kernels.dense", NUMBA_CACHE_DIR=str(tmp_path))
    assert proc.returncode != 0
    assert "this package is tinynet.kernels; import it as that, not as 'kernels'" in proc.stderr
    assert not list(tmp_path.rglob("*.nbi"))                       # nothing was cached
    ok = _run("import tinynet.kernels.dense", NUMBA_CACHE_DIR=str(tmp_path))
    assert ok.returncode == 0, ok.stderr


def test_import_tinynet_does_not_import_numba():
    proc = _run("import sys, tinynet; print('numba' in sys.modules)")
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("value", ["0", "-2"])
def test_numba_num_threads_below_one_is_explained(value):
    """Numba failed as it was imported, with an error that does not name the
    variable; non-integers it ignores with a warning (one thread per core)."""
    proc = _run("import tinynet.kernels", NUMBA_NUM_THREADS=value)
    assert proc.returncode != 0
    assert (f"NUMBA_NUM_THREADS: expected a positive integer (or unset: one thread per "
            f"core), received '{value}'") in proc.stderr
    ignored = _run("import tinynet.kernels as k; print(k.num_threads() >= 1)",
                   NUMBA_NUM_THREADS="1.5")
    assert ignored.returncode == 0 and ignored.stdout.strip() == "True", ignored.stderr


def test_threading_layer_is_reported():
    assert isinstance(tn.kernels.threading_layer(), str)
    assert tn.kernels.num_threads() >= 1


def test_set_num_threads():
    previous = tn.kernels.set_num_threads(1)
    try:
        assert tn.kernels.num_threads() == 1
        from tinynet.kernels import gemm
        a = np.ones((300, 300))
        np.testing.assert_allclose(gemm.matmul(a, a), a @ a)  # serial build above threshold
    finally:
        tn.kernels.set_num_threads(previous)
    assert tn.kernels.set_num_threads(previous) == previous
    for bad in (0, -1, np.int64(0)):
        with pytest.raises(ValueError, match="set_num_threads expected a positive integer, "
                                             "received"):
            tn.kernels.set_num_threads(bad)


@pytest.mark.parametrize("setter", ["set_num_threads", "limit_threads"])
def test_thread_counts_take_numpy_integers_and_refuse_bools_and_floats(setter):
    """Any integer operator.index takes (a count computed with NumPy is an
    np.int64); a bool or a float is a slip, refused with a TypeError."""
    from tinynet.kernels import config

    def use(n):
        if setter == "set_num_threads":
            return tn.kernels.set_num_threads(n)
        with tn.kernels.limit_threads(n) as settings:
            assert type(settings["threads"]) is int
            return config.raw_num_threads()

    previous = tn.kernels.set_num_threads(2)
    try:
        for n in (np.int64(1), np.int32(1), np.uint8(1)):
            use(n)
            assert config.raw_num_threads() == 1 or setter == "limit_threads"
        for bad, kind in ((True, "bool"), (np.True_, "bool"), (1.0, "float"),
                          (np.float64(2.0), "float64"), ("2", "str")):
            with pytest.raises(TypeError, match=f"{setter} expected a positive integer.*"
                                                f"received.*{kind}"):
                use(bad)
        with pytest.raises(ValueError, match=f"{setter} expected a positive integer, "
                                             f"received 0"):
            use(np.int64(0))
    finally:
        tn.kernels.set_num_threads(previous)


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="needs Numba")
def test_kernels_go_serial_while_the_pool_is_slow(monkeypatch):
    from tinynet.kernels import blas, config
    if config.numba.get_num_threads() < 2:
        pytest.skip("one thread only")
    monkeypatch.setattr(blas, "_engine", "numba")  # BLAS products would take the threads
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", True)
    monkeypatch.setitem(config._probe_state, "checked", -1e9)
    monkeypatch.setattr(config, "SLOW_LAUNCH", 0.0)  # any launch counts as slow
    assert config.num_threads() == 1
    assert config._probe_state["responsive"] is False
    monkeypatch.setattr(config, "SLOW_LAUNCH", 1e9)
    assert config.num_threads() == 1  # cached until the next probe
    monkeypatch.setitem(config._probe_state, "checked", -1e9)
    assert config.num_threads() == config.numba.get_num_threads()
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", False)
    monkeypatch.setattr(config, "SLOW_LAUNCH", 0.0)
    monkeypatch.setitem(config._probe_state, "checked", -1e9)
    assert config.num_threads() == config.numba.get_num_threads()


def test_limit_threads_restores_the_kernel_thread_count():
    from tinynet import kernels

    before = kernels.set_num_threads(2)
    try:
        with kernels.limit_threads(1) as settings:
            assert settings["threads"] == 1
            if kernels.NUMBA_ENABLED:
                import numba
                assert numba.get_num_threads() == 1
        if kernels.NUMBA_ENABLED:
            import numba
            assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        kernels.set_num_threads(before)


def test_a_choice_file_nested_too_deep_is_ignored(tmp_path):
    # json.load raised RecursionError, which every first product then hit
    from tinynet.kernels.choices import stored_choices
    path = tmp_path / "choice.json"
    path.write_text("[" * 100_000)
    assert stored_choices(str(path), ("numba", "numpy")) == {}


def test_processes_started_together_agree_on_a_choice(tmp_path):
    # each measured and the last writer won, so one process could run another
    # engine than the file (and the others) said; now one measures at a time
    code = ("import os, sys, time\n"
            "from tinynet.kernels.choices import decide\n"
            "index, go = int(sys.argv[1]), sys.argv[2]\n"
            "while not os.path.exists(go):\n"
            "    time.sleep(0.005)\n"
            "def measure():\n"
            "    time.sleep(0.2)\n"
            "    return 'a' if index % 2 == 0 else 'b'\n"
            "print(decide(sys.argv[3], 'key', measure, ('a', 'b')))\n")
    go, path = tmp_path / "go", tmp_path / "cache" / "choice.json"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(i), str(go), str(path)],
                              stdout=subprocess.PIPE, text=True) for i in range(6)]
    time.sleep(1.0)  # let every process start and wait
    go.write_text("")
    answers = [p.communicate(timeout=120)[0].strip() for p in procs]
    from tinynet.kernels.choices import stored_choices
    assert len(set(answers)) == 1, answers
    assert stored_choices(str(path), ("a", "b")) == {"key": answers[0]}
