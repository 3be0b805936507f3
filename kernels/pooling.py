r"""2-D max pooling, channels-last, in one pass over the input.

For ``x`` of shape ``(N, H, W, C)``, windows ``(ph, pw)`` and strides
``(sh, sw)``, with :math:`H_o = \lfloor (H - p_h) / s_h \rfloor + 1` (and
likewise :math:`W_o`):

.. math::
    y_{n,i,j,d} = x_{n,\ i s_h + a^*,\ j s_w + c^*,\ d}, \qquad
    k^* = a^* p_w + c^* = \operatorname{argmax}_{k = a p_w + c}\,
        x_{n,\ i s_h + a,\ j s_w + c,\ d}

where the argmax is NumPy's: the first maximum in row-major window order,
and a NaN counts as the maximum (so a window with a NaN gives NaN, as in
PyTorch). Backward routes each output's gradient to the position it came
from and adds where windows overlap:

.. math::
    \partial x_{n,\ i s_h + a^*,\ j s_w + c^*,\ d} \mathrel{+}= \partial y_{n,i,j,d}

:func:`maxpool_forward` returns ``(y, arg)`` with ``arg`` (int32, shape of
``y``) holding :math:`k^*`; :func:`maxpool_backward` takes it back. The NumPy
references build a strided view of all windows and take ``argmax`` over it,
which reads every window into a temporary; the kernels read the input once,
innermost over the contiguous channels, in parallel over the batch. When the
windows do not overlap (strides equal to the pool, the usual 2x2/2) the
backward writes every element of ``dx`` once, the routed gradient or zero,
instead of zeroing ``dx`` and scattering into it (the small CNN's second
pool, 11x11x64 at batch 128: 1.6 -> 0.8 ms).
"""

from __future__ import annotations

import numpy as np

from .checks import check_float_array, check_indices, check_pair, check_shape, checked
from .config import NUMBA_ENABLED, njit, prange, split_count
from .im2col import windows

__all__ = ["maxpool_forward", "maxpool_backward", "maxpool_forward_ref",
           "maxpool_backward_ref"]


@njit(parallel=True)
def _maxpool_forward(x, ph, pw, sh, sw, y, arg, n_chunks):
    n, ho, wo, c = y.shape
    for t in prange(n_chunks):
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                for j in range(wo):
                    r0, c0 = i * sh, j * sw
                    ys, ks = y[s, i, j], arg[s, i, j]
                    first = x[s, r0, c0]
                    for d in range(c):
                        ys[d] = first[d]
                        ks[d] = 0
                    for a in range(ph):
                        for b in range(pw):
                            if a == 0 and b == 0:
                                continue
                            k = np.int32(a * pw + b)
                            xs = x[s, r0 + a, c0 + b]
                            for d in range(c):
                                v, best = xs[d], ys[d]
                                # NaN wins, and the first NaN stays (np.argmax).
                                # & and | (not `and`, `or`) and selects instead
                                # of a conditional store: no branch, so the loop
                                # over channels vectorises
                                take = (best == best) & ((v > best) | (v != v))
                                ys[d] = v if take else best
                                ks[d] = k if take else ks[d]


@njit(parallel=True)
def _maxpool_backward(dy, arg, pw, sh, sw, dx, n_chunks):
    n, ho, wo, c = dy.shape
    for t in prange(n_chunks):  # samples are disjoint: no two threads write one dx
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                for j in range(wo):
                    for d in range(c):
                        k = arg[s, i, j, d]
                        dx[s, i * sh + k // pw, j * sw + k % pw, d] += dy[s, i, j, d]


@njit(parallel=True)
def _maxpool_backward_tiled(dy, arg, ph, pw, dx, n_chunks):
    """Windows that tile the input (strides == pool): every dx element they
    cover is written once, dy or zero, in contiguous runs over channels; the
    caller zeroes the rows and columns past the last window (an odd size)."""
    n, ho, wo, c = dy.shape
    for t in prange(n_chunks):
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                for j in range(wo):
                    ks, g = arg[s, i, j], dy[s, i, j]
                    zero = g[0] - g[0]
                    for a in range(ph):
                        for b in range(pw):
                            k = a * pw + b
                            out = dx[s, i * ph + a, j * pw + b]
                            for d in range(c):
                                out[d] = g[d] if ks[d] == k else zero


def _chunks(n, work):
    return split_count(n, work, 1 << 16)


def _output_size(x_shape, pool, strides, what="x of shape"):
    """(Ho, Wo) for an input of ``x_shape``, which must be (N, H, W, C) with
    room for one window."""
    if len(x_shape) != 4:
        raise ValueError(f"max pooling expected {what} (batch, height, width, channels), "
                         f"received {tuple(x_shape)}")
    (ph, pw), (sh, sw) = pool, strides
    ho, wo = (x_shape[1] - ph) // sh + 1, (x_shape[2] - pw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"max pooling: a {ph}x{pw} pool does not fit an input of "
                         f"{x_shape[1]}x{x_shape[2]}")
    return ho, wo


def _check_backward(dy, arg, x_shape, pool, strides):
    x_shape = tuple(x_shape)
    ho, wo = _output_size(x_shape, pool, strides, what="x_shape")
    expected = (x_shape[0], ho, wo, x_shape[3])
    if dy.shape != expected or arg.shape != expected:
        raise ValueError(f"max pooling backward expected dy and arg of shape {expected} (the "
                         f"output for input {x_shape}), received {dy.shape} and {arg.shape}")


def _check_forward(x, pool, strides):
    """The public functions' checks of a forward call: float x, positive ints
    for the pool and strides (a pool of 0 read past the input)."""
    check_float_array(x, "max pooling", "x")
    check_pair(pool, "max pooling", "pool")
    check_pair(strides, "max pooling", "strides")


def _check_backward_call(dy, arg, x_shape, pool, strides):
    """The public functions' checks of a backward call: the forward's, the
    shapes, and every ``arg`` an integer in ``[0, ph * pw)`` -- the kernel
    writes ``dx`` where ``arg`` points, unchecked."""
    (ph, pw) = check_pair(pool, "max pooling backward", "pool")
    check_pair(strides, "max pooling backward", "strides")
    x_shape = check_shape(x_shape, "max pooling backward", "x_shape",
                          "batch, height, width, channels")
    dy = check_float_array(dy, "max pooling backward", "dy")
    arg = np.asarray(arg)
    _check_backward(dy, arg, x_shape, pool, strides)
    check_indices(arg, ph * pw, "max pooling backward", f"arg (indices into {ph}x{pw} windows)")


@checked(_check_forward)
def maxpool_forward(x, pool, strides):
    """``(y, arg)``: the window maxima of ``x`` and where each came from.

    Parameters
    ----------
    x : ndarray of shape (N, H, W, C), float32 or float64
    pool, strides : (int, int)

    Returns
    -------
    y : ndarray of shape (N, Ho, Wo, C), x's dtype
    arg : int32 ndarray of y's shape, the flat window index ``a * pw + c``

    Checks its arguments (``.trusted`` does not: see :mod:`.checks`).
    """
    x = np.ascontiguousarray(x)
    ho, wo = _output_size(x.shape, pool, strides)
    y = np.empty((x.shape[0], ho, wo, x.shape[3]), x.dtype)
    arg = np.empty(y.shape, np.int32)
    if y.size:
        _maxpool_forward(x, pool[0], pool[1], strides[0], strides[1], y, arg,
                         _chunks(x.shape[0], x.size))
    return y, arg


@checked(_check_backward_call)
def maxpool_backward(dy, arg, x_shape, pool, strides):
    """``dx`` of shape ``x_shape``: each ``dy`` added at its window's maximum.

    ``arg`` is :func:`maxpool_forward`'s; each value must be in ``[0, ph *
    pw)``, which this checks, with the shapes, dtypes and geometry
    (``.trusted`` checks the shapes only: see :mod:`.checks`)."""
    dy, arg = np.ascontiguousarray(dy), np.ascontiguousarray(arg)
    (ph, pw), (sh, sw) = pool, strides
    _check_backward(dy, arg, x_shape, pool, strides)
    n, ho, wo, _ = dy.shape
    chunks = _chunks(n, int(np.prod(x_shape)))
    if dy.size and (sh, sw) == (ph, pw):  # non-overlapping windows
        dx = np.empty(x_shape, dy.dtype)
        _maxpool_backward_tiled(dy, arg, ph, pw, dx, chunks)
        dx[:, ho * ph:] = 0          # rows and columns no window covers (an odd size)
        dx[:, :ho * ph, wo * pw:] = 0
        return dx
    dx = np.zeros(x_shape, dy.dtype)
    if dy.size:
        _maxpool_backward(dy, arg, pw, sh, sw, dx, chunks)
    return dx


@checked(_check_forward)
def maxpool_forward_ref(x, pool, strides):
    """NumPy reference of :func:`maxpool_forward` (which checks as it does)."""
    x = np.asarray(x)
    ho, wo = _output_size(x.shape, pool, strides)
    (ph, pw) = pool
    win = windows(x, pool, strides).reshape(x.shape[0], ho, wo, ph * pw, x.shape[3])
    arg = np.argmax(win, axis=3)  # first maximum; NaN counts as the maximum
    y = np.take_along_axis(win, arg[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return y, arg.astype(np.int32)


@checked(_check_backward_call)
def maxpool_backward_ref(dy, arg, x_shape, pool, strides):
    """NumPy reference of :func:`maxpool_backward` (which checks as it does)."""
    _check_backward(dy, arg, x_shape, pool, strides)
    (ph, pw), (sh, sw) = pool, strides
    n, ho, wo, c = arg.shape
    rows = np.arange(ho)[None, :, None, None] * sh + arg // pw
    cols = np.arange(wo)[None, None, :, None] * sw + arg % pw
    index = (np.arange(n)[:, None, None, None], rows, cols, np.arange(c))
    dx = np.zeros(x_shape, dtype=dy.dtype)
    if sh >= ph and sw >= pw:  # windows do not overlap: one write per input
        dx[index] = dy
    else:
        np.add.at(dx, index, dy)
    return dx


if not NUMBA_ENABLED:
    maxpool_forward, maxpool_backward = maxpool_forward_ref, maxpool_backward_ref
