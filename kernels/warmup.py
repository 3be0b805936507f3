"""Compile (or load from the disk cache) every kernel ahead of time.

``tinynet compile`` calls :func:`warm_up`; afterwards ``fit``, ``evaluate``
and ``predict`` of an MLP or a CNN, at any batch size, only load machine code
from Numba's cache (about half a second) instead of compiling it.

What runs depends on the problem's size and the thread count, and each of
those is a separate build to compile:

* every ``njit(parallel=True)`` kernel has a serial and a threaded build
  (:class:`.config._SerialOrParallel`). Its wrapper asks for 1 chunk -- the
  serial build -- below a size threshold of its own (2**16 elements for
  pooling, col2im and the loss, 2**17 for optimizer updates, 2**18 for
  activations, dense epilogues, dropout and norms, 2**20 multiply-adds for
  products) or whenever :func:`.config.num_threads` is 1; else the threaded
  one, whatever the number of threads above 1. The calls here are
  small, so they run the serial builds, and the threaded build is then
  compiled for each argument types the serial one met (without running it);
* the threaded builds are compiled whatever the thread count of the process
  that warms up, 1 included (``NUMBA_NUM_THREADS=1``, ``set_num_threads(1)``,
  or one core): a threaded build's machine code and its cache entry do not
  depend on the thread count -- the parallel loop asks the pool how many
  threads to use as it starts -- so a later run at 2 threads or more loads
  them from the cache instead of compiling at its first large step. The
  adaptive check that turns threads off on a busy machine is not consulted
  either: a later, quieter run would need the threaded builds;
* at more than one thread :func:`.config.num_threads` launches an empty
  parallel loop to see how fast the pool answers: that kernel is built too
  (it runs here, on as many threads as the process has);
* array layouts are types: a convolution's column matrix is F-ordered up to
  :data:`.im2col.FEW_CHANNELS` input channels (:func:`.im2col.im2col_order`);
* each GEMM engine (:mod:`.blas`) has its own forward kernels, so both are
  run; with ``TINYNET_GEMM=auto`` the first product also times the two
  engines once and keeps the choice beside the cache.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import config
from .config import NUMBA_ENABLED

__all__ = ["warm_up", "DTYPES"]

#: The floating-point types the kernels are built for (``tinynet compile --dtypes``).
DTYPES = ("float32", "float64")


def _check_dtypes(dtypes) -> tuple:
    """``dtypes`` as a tuple of names from :data:`DTYPES`: one name (or NumPy
    type), or an iterable of them. A bare string was iterated letter by letter
    ("float16" compiled float32 for "f", then failed on "l" as int64, deep in
    a kernel), so anything else is a ValueError naming what was received."""
    items = (dtypes,) if isinstance(dtypes, (str, type, np.dtype)) else dtypes
    try:
        names = tuple(np.dtype(d).name if d is not None else None for d in items)
    except TypeError:
        names = None
    if not names or any(n not in DTYPES for n in names):
        raise ValueError(f"warm_up expected dtypes among {', '.join(DTYPES)} (a name or "
                         f"several), received {dtypes!r}")
    return tuple(dict.fromkeys(names))


def _calls(dtype):
    """(name, thunk) pairs that exercise every kernel signature training,
    evaluation and prediction use (the serial builds, at these sizes)."""
    from . import activations, blas, dense, dropout, gemm, im2col, losses, norms, optim, pooling
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6)).astype(dtype)
    w = rng.standard_normal((6, 5)).astype(dtype)
    b = np.zeros(5, dtype)
    dy = rng.standard_normal((8, 5)).astype(dtype)
    calls = []
    for name, code in activations.ACT_CODES.items():
        if name in ("linear", "swish"):
            continue
        z = np.empty((8, 5), dtype)

        def fwd_bwd(code=code, z=z):
            for engine in ("numba", "blas"):  # each engine has its own forward kernel
                previous = blas.set_gemm(engine)
                try:
                    y = dense.dense_forward(x, w, b, code, 0.1, z_out=z)
                    dense.dense_forward(x, w, None, code, 0.1)
                    # a convolution's column matrix with few input channels
                    dense.dense_forward(np.asfortranarray(x), w, b, code, 0.1)
                    dense.dense_backward(x, w, dy, y, z, code, 0.1, np.zeros_like(w),
                                         np.zeros_like(b))
                    dense.dense_backward(x, w, dy, y, z, code, 0.1, np.zeros_like(w), None,
                                         False)
                finally:
                    blas.set_gemm(previous)
            activations.act_backward(dy, y, z, code, 0.1)
            activations.act_forward(z, code, 0.1)
        calls.append((f"dense+{name}", fwd_bwd))
    calls.append(("matmul", lambda: (gemm.matmul(x, w), gemm.matmul_tn(x, x),
                                     gemm.matmul_nt(dy, w))))
    calls.append(("softmax_cross_entropy",
                  lambda: losses.softmax_cross_entropy(dy, np.arange(8) % 5, 0.0, 0.125)))
    u = rng.random((8, 6), dtype=np.float32)
    calls.append(("dropout", lambda: dropout.dropout_backward(
        dropout.dropout_forward(x, u, 0.5)[1], x)))
    img = rng.standard_normal((2, 4, 4, 3)).astype(dtype)

    def maxpool():
        for pool, strides in (((2, 2), (2, 2)), ((3, 3), (1, 1))):  # windows tile, overlap
            y, arg = pooling.maxpool_forward(img, pool, strides)
            pooling.maxpool_backward(y, arg, img.shape, pool, strides)
    calls.append(("maxpool", maxpool))

    def avgpool():   # 4x4: a window summed in float64 (pooling.SHORT_WINDOW)
        for pool, strides in (((2, 2), (2, 2)), ((3, 3), (1, 1)), ((4, 4), (4, 4))):
            y = pooling.avgpool_forward(img, pool, strides)
            pooling.avgpool_backward(y, img.shape, pool, strides)
    calls.append(("avgpool", avgpool))
    calls.append(("col2im", lambda: im2col.col2im(
        np.ones((2 * 3 * 3, 2 * 2 * 3), dtype), img.shape, (2, 2), (1, 1))))
    g1, b1 = np.ones(6, dtype), np.zeros(6, dtype)
    calls.append(("batchnorm", lambda: norms.batchnorm_backward(
        x, norms.batchnorm_forward(x, g1, b1, 1e-3)[1], np.ones(6, dtype), g1,
        np.zeros(6, dtype), np.zeros(6, dtype))))
    calls.append(("layernorm", lambda: norms.layernorm_backward(
        x, norms.layernorm_forward(x, g1, b1, 1e-5)[1], np.ones(8, dtype), g1,
        np.zeros(6, dtype), np.zeros(6, dtype))))

    def updates():
        p, g = np.ones(16, dtype), np.ones(16, dtype)
        s = [np.ones(16, dtype) for _ in range(3)]
        for nesterov, wd in ((False, 0.0), (True, 0.1)):
            optim.sgd(p, g, s[0], lr=0.1, momentum=0.9, dampening=0.0, nesterov=nesterov,
                      weight_decay=wd, first_step=False)
        for amsgrad, decoupled in ((False, False), (True, True)):
            optim.adam(p, g, s[0], s[1], s[2], step=1, lr=1e-3, beta1=0.9, beta2=0.999,
                       eps=1e-8, weight_decay=0.0, amsgrad=amsgrad, decoupled=decoupled)
        optim.rmsprop(p, g, s[0], s[1], s[2], lr=0.01, alpha=0.99, eps=1e-8,
                      weight_decay=0.0, momentum=0.9, centered=True)
        optim.adagrad(p, g, s[0], step=1, lr=0.01, lr_decay=0.0, eps=1e-10, weight_decay=0.0)
    calls.append(("optimizers", updates))
    return calls


def _compile_threaded_builds() -> None:
    """The parallel build of every parallel kernel, for each argument types
    its serial build has met so far (see :class:`.config._SerialOrParallel`)."""
    for kernel in config.PARALLEL_KERNELS:
        kernel.compile_parallel()


def warm_up(verbose: bool = True, dtypes=DTYPES) -> dict:
    """Compile every kernel build for ``dtypes`` (or load it from the disk cache).

    The serial and the threaded builds of every kernel, and the thread pool's
    probe, whatever Numba's thread count here: a later run at any thread
    count finds all it may pick (see the module docstring). Returns
    ``{"<kernel family> <dtype>": seconds}`` (both builds of the family), plus
    ``{"thread-pool probe": seconds}``; prints progress to stderr when
    ``verbose``. Without Numba this does nothing (bad ``dtypes`` still raise).
    """
    dtypes = _check_dtypes(dtypes)
    if not NUMBA_ENABLED:
        if verbose:
            print("tinynet: Numba unavailable or disabled; nothing to compile",
                  file=sys.stderr)
        return {}
    threads = config.raw_num_threads()
    times = {}
    start = time.perf_counter()

    def timed(name, dtype, thunk):
        t0 = time.perf_counter()
        thunk()
        _compile_threaded_builds()
        key = f"{name} {dtype}".strip()
        times[key] = time.perf_counter() - t0
        if verbose:
            print(f"  {name:<24} {dtype:<8} {times[key]:6.2f} s", file=sys.stderr, flush=True)

    # what num_threads() launches, at more than one thread, to see how fast the pool answers
    timed("thread-pool probe", "", lambda: config._probe_kernel(
        np.empty(threads, np.int64), threads))
    for dtype in dtypes:
        for name, thunk in _calls(np.dtype(dtype)):
            timed(name, dtype, thunk)
    if verbose:
        print(f"tinynet: kernels ready in {time.perf_counter() - start:.1f} s (serial and "
              f"threaded builds, for runs at any thread count; this one runs {threads}; "
              f"cached on disk for later runs)", file=sys.stderr)
    return times
