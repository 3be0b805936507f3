"""Which GEMM the kernels run: tinynet's own Numba GEMM, or OpenBLAS through numpy.

tinynet's GEMM (:mod:`.gemm`) is written to be read and learned from, and on
some machines it is the faster one; on others a vendor BLAS kernel is far
ahead (measured here on an AVX-512 Xeon: OpenBLAS 1.5-2.7x faster at every
dense-layer shape). The products therefore run on whichever engine is
faster on this machine, and everything around them stays in the fused Numba
kernels (bias and activation epilogues, activation and bias gradients,
losses, optimizer updates):

* ``TINYNET_GEMM=auto`` (default): measured per process and thread count
  the first time a product runs, and once more after :data:`RECHECK_AFTER`
  products (~50 ms each time): six dense-layer shapes on each engine in
  turn, best of 3 passes; BLAS is chosen when it is faster by 10 % or more;
* ``TINYNET_GEMM=numba``: always tinynet's GEMM;
* ``TINYNET_GEMM=blas``: always numpy's ``@``.

:func:`set_gemm` does the same from code. Idle workers of both thread pools
spin before they sleep, and on two cores calls alternating between
OpenBLAS's and Numba's spinning pools ran a 32x784x256 product at 3 GFLOP/s
instead of 66-100. tinynet therefore shortens both waits where it can
(:mod:`tinynet.spinwait`); where it cannot (NumPy imported before tinynet,
another BLAS, ``TINYNET_SHORT_SPIN=0``), one pool does the hot work: while
BLAS runs the products, the Numba kernels run serially (see
:func:`blas_owns_threads`).
"""

from __future__ import annotations

import time

import numpy as np

from .config import (NUMBA_ENABLED, check_choice, choice_from_env, pools_wait_briefly,
                     raw_num_threads)

__all__ = ["GEMM_ENGINES", "set_gemm", "get_gemm", "use_blas", "blas_owns_threads",
           "blas_product", "measured"]

GEMM_ENGINES = ("auto", "numba", "blas")


def _check(name) -> str:
    return check_choice(name, "GEMM engine", GEMM_ENGINES)


_engine = choice_from_env("TINYNET_GEMM", "GEMM engine", GEMM_ENGINES, "auto")
#: thread count -> [BLAS measured faster?, products since the first measurement
#: (counted up to RECHECK_AFTER, when it is measured the second and last time)]
_measured: dict = {}
#: ``auto`` measures again after this many products (and then keeps that
#: choice): the first measurement is taken as the process starts, often the
#: busiest moment (imports, other processes starting), and a contended
#: measurement once picked the slower engine.
RECHECK_AFTER = 2000


def set_gemm(name: str) -> str:
    """Select ``"auto"``, ``"numba"`` or ``"blas"``; returns the previous choice."""
    global _engine
    previous, _engine = _engine, _check(name)
    return previous


def get_gemm() -> str:
    """The engine selected (``"auto"`` until changed)."""
    return _engine


def use_blas() -> bool:
    """Whether the products run on BLAS now (``auto``: measured on first use)."""
    if _engine != "auto":
        return _engine == "blas"
    if not NUMBA_ENABLED:
        return True
    key = raw_num_threads()
    entry = _measured.get(key)
    if entry is None:
        entry = _measured[key] = [_measure(), 0]
    elif entry[1] < RECHECK_AFTER:
        entry[1] += 1
        if entry[1] == RECHECK_AFTER:
            entry[0] = _measure()
    return entry[0]


def blas_owns_threads() -> bool:
    """True while the products run on BLAS and its idle workers spin long: the
    Numba kernels then run serially, so that one thread pool (BLAS's) does the
    hot work. Without Numba, with ``TINYNET_GEMM=numba``, or when both pools'
    workers sleep quickly (:func:`.config.pools_wait_briefly`), False."""
    if not NUMBA_ENABLED or _engine == "numba" or pools_wait_briefly():
        return False
    entry = _measured.get(raw_num_threads())
    return _engine == "blas" or (entry is not None and entry[0])


def blas_product(a, b, out, accumulate):
    """``a @ b`` on numpy's BLAS, into (or added to) ``out`` when given."""
    if out is None:
        return a @ b
    if accumulate:
        out += a @ b
    else:
        np.matmul(a, b, out=out)
    return out


#: (M, K, N) of the products a dense layer needs, at small and large batches.
_PROBE_SHAPES = [(32, 784, 256), (256, 32, 784), (32, 256, 784), (512, 784, 256),
                 (784, 512, 256), (128, 256, 128)]


def _measure() -> bool:
    """Time the probe shapes on each engine, one engine at a time (calls that
    alternate between two spinning thread pools measure the contention, not
    the engines), best of 3 passes; True when BLAS is faster by 10 %."""
    from .gemm import numba_matmul
    rng = np.random.default_rng(0)
    problems = []
    for m, k, n in _PROBE_SHAPES:
        problems.append((rng.standard_normal((m, k), dtype=np.float32),
                         rng.standard_normal((k, n), dtype=np.float32),
                         np.empty((m, n), np.float32)))
    engines = {"numba": numba_matmul, "blas": lambda a, b, c: np.matmul(a, b, out=c)}
    best = {}
    for name, fn in engines.items():
        time.sleep(0.01)  # let the other engine's threads go to sleep
        best[name] = float("inf")
        for _ in range(4):  # the first pass compiles / warms up
            t0 = time.perf_counter()
            for a, b, c in problems:
                fn(a, b, c)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best["blas"] <= 0.9 * best["numba"]


def measured() -> dict:
    """``{numba thread count: "blas" | "numba"}`` as ``auto`` decided so far."""
    return {k: ("blas" if v[0] else "numba") for k, v in _measured.items()}
