r"""Inverted dropout: mask and scale in one pass.

Given uniform draws :math:`u \in [0, 1)` (drawn by the caller's NumPy
generator, so a seed gives the same masks on every backend):

.. math::
    m = [u \ge p] / (1 - p), \qquad y = m \odot x, \qquad
    \partial x = m \odot \partial y

:func:`dropout_forward` writes ``y`` and the mask ``m`` (in x's dtype, as the
layer keeps it for backward); :func:`dropout_backward` multiplies by it.
"""

from __future__ import annotations

import numpy as np

from .checks import check_float_array, check_shapes, checked
from .config import NUMBA_ENABLED, njit, num_threads, prange

__all__ = ["dropout_forward", "dropout_backward", "dropout_forward_ref",
           "dropout_backward_ref"]


@njit(parallel=True)
def _dropout_forward(x, u, rate, scale, y, mask, n_chunks):
    n = x.shape[0]
    for t in prange(n_chunks):
        lo, hi = (n * t) // n_chunks, (n * (t + 1)) // n_chunks
        xs, us, ys, ms = x[lo:hi], u[lo:hi], y[lo:hi], mask[lo:hi]
        # a literal 0 would make m (and the product) float64: keep x's dtype
        zero = scale - scale
        # one store per loop: two would need more runtime alias checks than
        # LLVM allows, and the loop would stay scalar
        for i in range(xs.shape[0]):
            ms[i] = scale if us[i] >= rate else zero
        for i in range(xs.shape[0]):
            ys[i] = xs[i] * ms[i]


@njit(parallel=True)
def _mul(a, b, out, n_chunks):
    n = a.shape[0]
    for t in prange(n_chunks):
        lo, hi = (n * t) // n_chunks, (n * (t + 1)) // n_chunks
        aa, bb, oo = a[lo:hi], b[lo:hi], out[lo:hi]
        for i in range(aa.shape[0]):
            oo[i] = aa[i] * bb[i]


def _chunks(n):
    return max(1, min(num_threads(), n // (1 << 17))) if n >= (1 << 18) else 1


def _check_forward(x, u, rate):
    x = check_float_array(x, "dropout_forward", "x")
    check_shapes("dropout_forward", x.shape, u=u)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout_forward expected rate in [0, 1), received {rate!r}")


def _check_backward(dy, mask):
    dy = check_float_array(dy, "dropout_backward", "dy")
    check_shapes("dropout_backward", dy.shape, mask=mask)


@checked(_check_forward)
def dropout_forward(x, u, rate):
    """``(y, mask)`` for input x and uniform draws u of x's shape.

    Parameters
    ----------
    x : ndarray, float32 or float64
    u : ndarray of x's shape, uniform in [0, 1) (any float dtype)
    rate : float in [0, 1)
    """
    x = np.ascontiguousarray(x)
    u = np.ascontiguousarray(u)
    # y and mask from one allocation (two large blocks alive at once often get
    # fresh pages from glibc, whose page faults cost more than the kernel)
    y, mask = np.empty((2,) + x.shape, x.dtype)
    if x.size:
        scale = x.dtype.type(1.0 / (1.0 - rate))
        _dropout_forward(x.reshape(-1), u.reshape(-1), u.dtype.type(rate), scale,
                         y.reshape(-1), mask.reshape(-1), _chunks(x.size))
    return y, mask


@checked(_check_backward)
def dropout_backward(dy, mask):
    """``dy * mask``."""
    dy = np.ascontiguousarray(dy)
    out = np.empty_like(dy)
    if dy.size:
        _mul(dy.reshape(-1), np.ascontiguousarray(mask).reshape(-1), out.reshape(-1),
             _chunks(dy.size))
    return out


@checked(_check_forward)
def dropout_forward_ref(x, u, rate):
    """NumPy reference of :func:`dropout_forward`."""
    mask = (u >= u.dtype.type(rate)).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
    return x * mask, mask


@checked(_check_backward)
def dropout_backward_ref(dy, mask):
    """NumPy reference of :func:`dropout_backward`."""
    return dy * mask


if not NUMBA_ENABLED:
    dropout_forward, dropout_backward = dropout_forward_ref, dropout_backward_ref
