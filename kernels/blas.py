"""Which GEMM the kernels run: tinynet's own Numba GEMM, or OpenBLAS through numpy.

tinynet's GEMM (:mod:`.gemm`) is written to be read and learned from, and on
some machines it is the faster one; on others a vendor BLAS kernel is far
ahead (measured here on an AVX-512 Xeon: OpenBLAS 1.5-2.7x faster at every
dense-layer shape). The products therefore run on whichever engine is
faster on this machine, and everything around them stays in the fused Numba
kernels (bias and activation epilogues, activation and bias gradients,
losses, optimizer updates):

* ``TINYNET_GEMM=auto`` (default): measured once per machine and Numba
  thread count, the first time a product runs (0.2-0.4 s: six dense-layer
  shapes, the two engines in turn over three rounds, each engine's best
  pass); BLAS is chosen when it is faster by 10 % or more. The choice is
  kept in :data:`CHOICE_FILE` beside the kernels' Numba cache, so every
  later process makes the same one: the engines round differently, and a
  choice made anew in every process, by timings on a busy machine, made
  the same ``fit(seed=s)`` give different weights in different processes
  (one process in six chose the slower engine here). :func:`remeasure`
  measures again; where the cache directory cannot be written, each process
  measures once for itself;
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

from .choices import choice_path, cpu_model, decide, machine_key, store_choice
from .config import (NUMBA_ENABLED, check_choice, choice_from_env, pools_wait_briefly,
                     raw_num_threads)

__all__ = ["GEMM_ENGINES", "CHOICE_FILE", "set_gemm", "get_gemm", "use_blas",
           "blas_owns_threads", "blas_product", "measured", "remeasure", "cpu_model"]

GEMM_ENGINES = ("auto", "numba", "blas")


def _check(name) -> str:
    return check_choice(name, "GEMM engine", GEMM_ENGINES)


_engine = choice_from_env("TINYNET_GEMM", "GEMM engine", GEMM_ENGINES, "auto")
#: Numba thread count -> BLAS chosen? (``auto``'s choices in this process)
_measured: dict = {}
#: In the kernels' cache directory (:mod:`.choices`): JSON ``{"kernels": digest
#: of the kernels' sources, "choices": {machine key: "blas" | "numba"}}``;
#: choices made for other kernel sources are dropped (the Numba GEMM may have
#: changed).
CHOICE_FILE = "tinynet-gemm-choice.json"


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
    threads = raw_num_threads()
    choice = _measured.get(threads)
    if choice is None:
        choice = _measured[threads] = _decide(threads)
    return choice


def blas_owns_threads() -> bool:
    """True while the products run on BLAS and its idle workers spin long: the
    Numba kernels then run serially, so that one thread pool (BLAS's) does the
    hot work. Without Numba, with ``TINYNET_GEMM=numba``, or when both pools'
    workers sleep quickly (:func:`.config.pools_wait_briefly`), False."""
    if not NUMBA_ENABLED or _engine == "numba" or pools_wait_briefly():
        return False
    return _engine == "blas" or bool(_measured.get(raw_num_threads()))


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
    """Time the probe shapes on each engine: a warm-up pass each (compiling,
    starting threads), then three rounds in which each engine in turn runs
    two passes. One engine at a time, with a pause between them (calls that
    alternate between two spinning thread pools measure the contention, not
    the engines); the rounds spread each engine's passes over time, so a
    burst of load elsewhere slows both. True when BLAS's best pass is faster
    than Numba's best by 10 %."""
    from .gemm import numba_matmul
    rng = np.random.default_rng(0)
    problems = []
    for m, k, n in _PROBE_SHAPES:
        problems.append((rng.standard_normal((m, k), dtype=np.float32),
                         rng.standard_normal((k, n), dtype=np.float32),
                         np.empty((m, n), np.float32)))
    engines = {"numba": numba_matmul, "blas": lambda a, b, c: np.matmul(a, b, out=c)}
    best = {name: float("inf") for name in engines}
    for warm_up in (True, False, False, False):
        for name, fn in engines.items():
            time.sleep(0.01)  # let the other engine's threads go to sleep
            for _ in range(1 if warm_up else 2):
                t0 = time.perf_counter()
                for a, b, c in problems:
                    fn(a, b, c)
                if not warm_up:
                    best[name] = min(best[name], time.perf_counter() - t0)
    return best["blas"] <= 0.9 * best["numba"]


def _name(use_blas_: bool) -> str:
    return "blas" if use_blas_ else "numba"


#: The values a stored GEMM choice may take.
_ENGINE_NAMES = ("blas", "numba")


def _choice_path():
    return choice_path(CHOICE_FILE)


def _decide(threads: int) -> bool:
    """``auto``'s choice for ``threads``: the stored one, else measured and
    stored (:func:`.choices.decide`)."""
    return decide(_choice_path(), machine_key(threads), lambda: _name(_measure()),
                  _ENGINE_NAMES) == "blas"


def remeasure() -> str:
    """Measure the engines again for the current Numba thread count, keep the
    result for this process and later ones, and return it (``"blas"`` or
    ``"numba"``); e.g. after the first choice was made on a busy machine.
    Results of training change with the engine (they round differently)."""
    if not NUMBA_ENABLED:  # no Numba GEMM to compare with
        return "blas"
    threads = raw_num_threads()
    choice = _measured[threads] = _measure()
    path = _choice_path()
    if path is not None:
        store_choice(path, machine_key(threads), _name(choice), _ENGINE_NAMES)
    return _name(choice)


def measured() -> dict:
    """``{numba thread count: "blas" | "numba"}`` as ``auto`` decided so far in
    this process (measured, or read from :data:`CHOICE_FILE`)."""
    return {k: _name(v) for k, v in _measured.items()}
