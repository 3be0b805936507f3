"""Backend choice: which implementation of each operation runs.

Every operation has a Numba kernel and a NumPy reference with the same
signature; :func:`impl` returns the one to call:

* ``"numba"`` -- the kernels (the default when Numba is installed and
  enabled);
* ``"numpy"`` -- the references (always so when Numba is missing or
  ``NUMBA_DISABLE_JIT=1``);
* ``"auto"``  -- per operation and *size class* (a factor-4 bucket of the
  problem size), whichever measured faster on this machine the first time
  that class was met, on synthetic arrays of that size (products with an
  inner dimension of at most :data:`SYNTHETIC_INNER_MAX`). NumPy must win by
  20 % to be chosen: alternating OpenBLAS's and Numba's thread pools costs
  more than such small gains (see the issue's measurements). Each choice is
  measured once per machine and Numba thread count and kept in
  :data:`CHOICE_FILE` beside the kernels' Numba cache (:mod:`.choices`), so
  that later processes make the same one: the two implementations round
  differently, and choices timed anew in each process made results differ
  from one process to the next. Delete the file to measure again.

Select with the environment variable ``TINYNET_BACKEND`` or
:func:`set_backend` (also :func:`use_backend` as a context manager).
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from . import activations, dense, dropout, gemm, im2col, losses, norms, optim, pooling
from .choices import choice_path, decide, machine_key
from .config import NUMBA_ENABLED, check_choice, choice_from_env, raw_num_threads

__all__ = ["BACKENDS", "OPS", "TRUSTED_OPS", "CHOICE_FILE", "SYNTHETIC_INNER_MAX",
           "set_backend", "get_backend", "use_backend", "impl", "effective_backend",
           "auto_choices"]

BACKENDS = ("auto", "numba", "numpy")

#: operation name -> (numba kernel, NumPy reference)
OPS = {
    "matmul": (gemm.matmul, gemm.matmul_ref),
    "matmul_tn": (gemm.matmul_tn, gemm.matmul_tn_ref),
    "matmul_nt": (gemm.matmul_nt, gemm.matmul_nt_ref),
    "act_forward": (activations.act_forward, activations.act_forward_ref),
    "act_backward": (activations.act_backward, activations.act_backward_ref),
    "dense_forward": (dense.dense_forward, dense.dense_forward_ref),
    "dense_backward": (dense.dense_backward, dense.dense_backward_ref),
    "act_grad_bias": (dense.act_grad_bias, dense.act_grad_bias_ref),
    "bias_grad": (dense.bias_grad, dense.bias_grad_ref),
    "softmax_cross_entropy": (losses.softmax_cross_entropy, losses.softmax_cross_entropy_ref),
    "dropout_forward": (dropout.dropout_forward, dropout.dropout_forward_ref),
    "dropout_backward": (dropout.dropout_backward, dropout.dropout_backward_ref),
    "col2im": (im2col.col2im, im2col.col2im_ref),
    "maxpool_forward": (pooling.maxpool_forward, pooling.maxpool_forward_ref),
    "maxpool_backward": (pooling.maxpool_backward, pooling.maxpool_backward_ref),
    "avgpool_forward": (pooling.avgpool_forward, pooling.avgpool_forward_ref),
    "avgpool_backward": (pooling.avgpool_backward, pooling.avgpool_backward_ref),
    "batchnorm_forward": (norms.batchnorm_forward, norms.batchnorm_forward_ref),
    "batchnorm_backward": (norms.batchnorm_backward, norms.batchnorm_backward_ref),
    "layernorm_forward": (norms.layernorm_forward, norms.layernorm_forward_ref),
    "layernorm_backward": (norms.layernorm_backward, norms.layernorm_backward_ref),
    "sgd": (optim.sgd, optim.sgd_ref),
    "adam": (optim.adam, optim.adam_ref),
    "rmsprop": (optim.rmsprop, optim.rmsprop_ref),
    "adagrad": (optim.adagrad, optim.adagrad_ref),
}


#: OPS with each function's ``.trusted`` build where it has one (the functions
#: wrapped by :func:`.checks.checked`) without its checks, for callers that
#: made or checked the arguments: the layers and losses, through
#: ``impl(op, trusted=True)`` (see :mod:`.checks`).
TRUSTED_OPS = {op: tuple(getattr(f, "trusted", f) for f in pair) for op, pair in OPS.items()}


def _check_backend(name) -> str:
    return check_choice(name, "tinynet backend", BACKENDS)


_backend = choice_from_env("TINYNET_BACKEND", "tinynet backend", BACKENDS, "numba")
#: (op, size class, Numba thread count) -> Numba kernel chosen? (``auto``'s
#: choices in this process)
_auto: dict = {}
#: ``auto``'s choices for later processes, in the kernels' cache directory:
#: JSON ``{"kernels": digest of the kernels' sources, "choices": {"<machine
#: key>; <op>; size class <k>": "numba" | "numpy"}}``.
CHOICE_FILE = "tinynet-backend-choice.json"
_IMPL_NAMES = ("numba", "numpy")


def set_backend(name: str) -> str:
    """Select ``"numba"``, ``"numpy"`` or ``"auto"``; returns the previous choice.

    With Numba unavailable every choice runs the NumPy references.
    """
    global _backend
    previous, _backend = _backend, _check_backend(name)
    return previous


def get_backend() -> str:
    """The backend selected (see :func:`effective_backend` for what runs)."""
    return _backend


def effective_backend() -> str:
    """What runs: the selected backend, or ``"numpy"`` without Numba."""
    return _backend if NUMBA_ENABLED else "numpy"


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("numpy"): ...`` runs the block on that backend."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def impl(op: str, size: int = 0, trusted: bool = False):
    """The implementation of ``op`` to call now (``size``: the problem size,
    e.g. elements of the output, used by ``"auto"``). ``trusted=True`` gives
    the build without its argument checks (:data:`TRUSTED_OPS`): only for a
    caller that made those arguments itself or checked them (a wrong index
    or a short array there reads or writes past an array)."""
    try:
        fast, ref = (TRUSTED_OPS if trusted else OPS)[op]
    except KeyError:
        raise ValueError(f"unknown kernel operation {op!r}") from None
    if not NUMBA_ENABLED or _backend == "numpy":
        return ref
    if _backend == "numba":
        return fast
    return fast if _auto_pick(op, size) else ref


def auto_choices() -> dict:
    """``{(op, size class, thread count): "numba" | "numpy"}`` decided so far by
    ``auto`` in this process (measured, or read from :data:`CHOICE_FILE`)."""
    return {k: ("numba" if v else "numpy") for k, v in _auto.items()}


# ------------------------------------------------------------------- auto
def _size_class(size: int) -> int:
    return int(math.log(max(size, 1), 4))


def _choice_path():
    return choice_path(CHOICE_FILE)


def _auto_pick(op: str, size: int) -> bool:
    # keyed by the thread count too, as on disk: a process that first ran at
    # 2 threads kept its 2-thread choices after set_num_threads(1), where a
    # fresh 1-thread process read the 1-thread ones (other weights, same seed)
    threads = raw_num_threads()
    key = (op, _size_class(size), threads)
    choice = _auto.get(key)
    if choice is None:
        stored_key = f"{machine_key(threads)}; {op}; size class {key[1]}"
        choice = _auto[key] = decide(
            _choice_path(), stored_key,
            lambda: "numba" if _measure(op, 4 ** key[1]) else "numpy", _IMPL_NAMES) == "numba"
    return choice


#: Inner dimension K at most of auto's synthetic products (:func:`_synthetic`).
SYNTHETIC_INNER_MAX = 64


def _gemm_shape(n: int) -> tuple[int, int, int]:
    r"""(M, K, N) of auto's synthetic product with about ``n`` output elements:
    a square-ish :math:`M \times N` output, and :math:`K = \min(N,`
    :data:`SYNTHETIC_INNER_MAX`).

    ``impl`` is given only the output size, and K was N once: a cube of
    :math:`n^{3/2}` multiply-adds, so x (16384, 4) @ w (4, 256) (size class
    11) timed a 2048-cubed product twelve times, a 5.8 s stall at its first
    call (about 45 s a class up). With K bounded, each product costs at most
    64 multiply-adds per output element, about as much as the element-wise
    work the fused kernels add to it (measured, class 11: 0.03 s a call
    against 0.1-0.2 s for K = 256 on a busy 2-core machine). Up to size class
    6 (N <= 64) the problem is the square one as before. The stored choices
    of the old problem are dropped with it: :mod:`.choices` keeps them per
    digest of the kernels' sources, this file among them."""
    rows = max(1, int(math.sqrt(n)))
    cols = max(1, n // rows)
    return rows, min(cols, SYNTHETIC_INNER_MAX), cols


def _synthetic(op: str, n: int):
    """Arguments for a representative call of ``op`` with about n output elements."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    if op in ("matmul", "dense_forward", "dense_backward", "matmul_tn", "matmul_nt"):
        rows, inner, cols = _gemm_shape(n)
        x = rng.standard_normal((rows, inner), dtype=f32)
        w = rng.standard_normal((inner, cols), dtype=f32)
        if op == "dense_forward":
            return (x, w, np.zeros(cols, f32), activations.RELU)
        if op == "dense_backward":
            dy = rng.standard_normal((rows, cols), dtype=f32)
            y = np.maximum(dy, 0)
            return (x, w, dy, y, None, activations.RELU, 0.0, np.zeros_like(w),
                    np.zeros(cols, f32))
        if op == "matmul_tn":  # a (K, M), b (K, N) -> (M, N)
            return (np.ascontiguousarray(x.T), w)
        if op == "matmul_nt":  # a (M, K), b (N, K) -> (M, N)
            return (x, np.ascontiguousarray(w.T))
        return (x, w)
    if op in ("softmax_cross_entropy",):
        rows = max(1, n // 10)
        return (rng.standard_normal((rows, 10), dtype=f32), rng.integers(0, 10, rows))
    return None  # no synthetic problem: keep the kernel


def _best_time(fn, args, repeats=5):
    fn(*args)  # compile / load from cache
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def _measure(op: str, n: int) -> bool:
    args = _synthetic(op, n)
    if args is None:
        return True
    fast, ref = OPS[op]
    return _best_time(fast, args) <= 1.2 * _best_time(ref, args)
