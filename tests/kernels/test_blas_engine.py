"""kernels.blas: the choice between tinynet's GEMM and numpy's BLAS, and who owns the threads."""

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


@needs_numba
def test_auto_measures_on_first_use_and_once_more_later(engine, monkeypatch):
    engine("auto")
    calls = []
    monkeypatch.setattr(blas, "_measure", lambda: calls.append(1) or len(calls) == 2)
    monkeypatch.setattr(blas, "_measured", {})
    monkeypatch.setattr(blas, "RECHECK_AFTER", 3)
    assert blas.use_blas() is False and len(calls) == 1  # first measurement: numba
    assert [blas.use_blas() for _ in range(2)] == [False, False]
    assert blas.use_blas() is True and len(calls) == 2  # the recheck: blas, kept
    assert [blas.use_blas() for _ in range(5)] == [True] * 5 and len(calls) == 2
    assert blas.measured() == {config.raw_num_threads(): "blas"}


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
