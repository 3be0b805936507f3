"""kernels.blas: the choice between tinynet's GEMM and numpy's BLAS, and who owns the threads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinynet as tn
from tinynet.kernels import blas, config, dense, gemm
from kernel_helpers import needs_numba

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine():
    previous = blas.set_gemm(blas.get_gemm())
    yield blas.set_gemm
    blas.set_gemm(previous)


def test_bad_engine_is_refused(engine):
    with pytest.raises(ValueError, match="expected one of auto, numba, blas"):
        engine("mkl")


def test_env_variable_selects_engine_and_bad_value_is_explained():
    def run(value):
        return subprocess.run([sys.executable, "-c",
                               "from tinynet.kernels import blas; print(blas.get_gemm())"],
                              cwd=REPO, env={**os.environ, "TINYNET_GEMM": value},
                              capture_output=True, text=True, timeout=300)
    ok = run("numba")
    assert ok.returncode == 0 and ok.stdout.strip() == "numba"
    bad = run("cuda")
    assert bad.returncode != 0 and "TINYNET_GEMM" in bad.stderr


@needs_numba
def test_blas_products_take_the_threads_from_numba_kernels(engine, monkeypatch):
    n = config.raw_num_threads()
    monkeypatch.setitem(config._pool_state, "brief", False)  # BLAS's workers spin long
    engine("blas")
    assert blas.use_blas() and blas.blas_owns_threads() and config.num_threads() == 1
    engine("numba")
    assert not blas.use_blas() and not blas.blas_owns_threads()
    assert config.num_threads() in (1, n)  # 1 only if the adaptive probe found the pool slow


@needs_numba
def test_blas_products_leave_the_threads_to_kernels_when_both_pools_sleep_quickly(
        engine, monkeypatch):
    monkeypatch.setitem(config._pool_state, "brief", True)
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", False)
    engine("blas")
    assert blas.use_blas() and not blas.blas_owns_threads()
    assert config.num_threads() == config.raw_num_threads()


@pytest.fixture
def choice_file(engine, monkeypatch, tmp_path):
    """``auto`` with a choice file of its own and nothing measured yet; the
    measurements, counted, answer what ``answers`` says (default: numba)."""
    engine("auto")
    path = tmp_path / "cache" / blas.CHOICE_FILE
    monkeypatch.setattr(blas, "_choice_path", lambda: str(path))
    monkeypatch.setattr(blas, "_measured", {})
    state = {"calls": 0, "answers": [False]}

    def measure():
        state["calls"] += 1
        return state["answers"][min(state["calls"], len(state["answers"])) - 1]
    monkeypatch.setattr(blas, "_measure", measure)
    return path, state


@needs_numba
def test_auto_measures_once_and_later_processes_read_the_stored_choice(choice_file,
                                                                        monkeypatch):
    path, state = choice_file
    assert blas.use_blas() is False and state["calls"] == 1   # measured: numba
    assert [blas.use_blas() for _ in range(5)] == [False] * 5 and state["calls"] == 1
    stored = json.loads(path.read_text())
    assert stored["kernels"] == config.SOURCES_DIGEST
    assert list(stored["choices"].values()) == ["numba"]
    assert f"{config.raw_num_threads()} numba threads" in next(iter(stored["choices"]))
    # a later process (nothing measured in it) whose measurement would say blas
    monkeypatch.setattr(blas, "_measured", {})
    state["answers"] = [True]
    assert blas.use_blas() is False and state["calls"] == 1   # read, not measured
    assert blas.measured() == {config.raw_num_threads(): "numba"}
    assert blas.remeasure() == "blas" and blas.use_blas() is True   # asked for
    monkeypatch.setattr(blas, "_measured", {})
    assert blas.use_blas() is True and state["calls"] == 2


@needs_numba
@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"kernels": "other sources", '
                                     '"choices": {"x": "blas"}}', '{"choices": "blas"}'])
def test_a_damaged_or_stale_choice_file_is_measured_again_and_rewritten(choice_file, content):
    path, state = choice_file
    path.parent.mkdir()
    path.write_text(content)
    assert blas.use_blas() is False and state["calls"] == 1
    stored = json.loads(path.read_text())
    assert stored["kernels"] == config.SOURCES_DIGEST
    assert list(stored["choices"].values()) == ["numba"]   # the stale entry is gone
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@needs_numba
def test_an_unwritable_cache_leaves_the_choice_to_each_process(choice_file, monkeypatch,
                                                               tmp_path):
    _, state = choice_file
    (tmp_path / "a file").write_text("")
    monkeypatch.setattr(blas, "_choice_path",
                        lambda: str(tmp_path / "a file" / blas.CHOICE_FILE))
    assert blas.use_blas() is False and blas.use_blas() is False and state["calls"] == 1


@needs_numba
def test_a_fresh_interpreter_finds_the_choice_another_one_stored(tmp_path):
    """The file is found where the kernels' Numba cache is (NUMBA_CACHE_DIR
    here), so a second process makes the first one's choice without measuring."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "TINYNET_GEMM": "auto"}

    def run(code):
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()
    first = run("from tinynet.kernels import blas; print(blas.use_blas())")
    (stored,) = tmp_path.rglob(blas.CHOICE_FILE)
    assert json.loads(stored.read_text())["choices"]
    second = run("from tinynet.kernels import blas\n"
                 "def refuse(): raise SystemExit('measured again')\n"
                 "blas._measure = refuse\n"
                 "print(blas.use_blas())")
    assert first == second in ("True", "False")


@needs_numba
@pytest.mark.parametrize("name", ["numba", "blas"])
def test_training_does_not_depend_on_how_many_threads_the_kernels_use(engine, name):
    """The kernels' parallel and serial builds (the adaptive thread check may
    switch between them at any step) give the same bits: a small CNN trained
    on one Numba thread and on two ends with identical weights."""
    from tinynet.mtl import experiments as ex
    threads = min(2, config.numba.config.NUMBA_NUM_THREADS)
    if threads < 2:
        pytest.skip("needs two Numba threads")
    engine(name)
    rng = np.random.default_rng(0)
    x = rng.random((192, 256)).astype(np.float32)        # 16x16 images
    y = {"left": rng.integers(0, 3, 192)}
    weights = []
    before = tn.kernels.set_num_threads(1)
    try:
        for n in (1, threads):
            tn.kernels.set_num_threads(n)
            model = ex.single_task(256, "conv", "left", 3, seed=0)
            ex.run(model, (x, y), (x, y), loss="cross_entropy", epochs=1, batch_size=64)
            weights.append(model.get_weights())
    finally:
        tn.kernels.set_num_threads(before)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["numba", "blas"])
def test_both_engines_give_the_same_products(engine, name):
    engine(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((33, 70)).astype(np.float32)
    w = rng.standard_normal((70, 20)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    z = np.empty((33, 20), np.float32)
    y = dense.dense_forward(x, w, b, 6, z_out=z)  # silu keeps z
    np.testing.assert_allclose(z, x @ w + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, z / (1 + np.exp(-z)), rtol=1e-5, atol=1e-5)
    dw = np.ones_like(w)
    gemm.matmul_tn(x, y, out=dw, accumulate=True)
    np.testing.assert_allclose(dw, 1 + x.T @ y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gemm.matmul_nt(y, w), y @ w.T, rtol=1e-5, atol=1e-4)


def test_info_reports_the_engine(capsys):
    from tinynet import cli
    assert cli.main(["info"]) == 0
    assert "gemm" in capsys.readouterr().out


@needs_numba
def test_thread_count_cache_follows_set_num_threads():
    before = tn.kernels.set_num_threads(1)
    try:
        assert config.raw_num_threads() == 1
        tn.kernels.set_num_threads(2)
        assert config.raw_num_threads() == min(2, config.numba.config.NUMBA_NUM_THREADS)
    finally:
        tn.kernels.set_num_threads(before)
