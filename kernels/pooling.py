r"""2-D max and average pooling, channels-last, in one pass over the input.

For ``x`` of shape ``(N, H, W, C)``, windows ``(ph, pw)``, strides
``(sh, sw)`` and padding ``pads = ((pt, pb), (pl, pr))`` (each below the
pool along its axis, so that every window holds a real pixel), window
``(i, j)`` covers rows :math:`i s_h - p_t \ldots i s_h - p_t + p_h - 1` and
columns likewise, with :math:`H_o = \lfloor (H + p_t + p_b - p_h) / s_h
\rfloor + 1` (and likewise :math:`W_o`). The padding is never copied: each
window is clipped to the image, its *real* pixels :math:`R_{ij}`.

Max pooling:

.. math::
    y_{n,i,j,d} = x_{n,\ i s_h - p_t + a^*,\ j s_w - p_l + c^*,\ d}, \qquad
    k^* = a^* p_w + c^* = \operatorname{argmax}_{k = a p_w + c \in R_{ij}}\,
        x_{n,\ i s_h - p_t + a,\ j s_w - p_l + c,\ d}

where the argmax is PyTorch's: the first maximum in row-major window order,
except that a NaN counts as the maximum and the *last* NaN wins (a window
with a NaN gives NaN): scanning the window, position :math:`k` replaces the
best so far when :math:`x_k > \text{best}` or :math:`x_k` is NaN, which is
PyTorch 2.13's rule (NumPy's ``argmax`` takes the first NaN). The padding
takes no part, exactly as a padding of :math:`-\infty` would except that a
window whose real pixels are all :math:`-\infty` routes to its first real
pixel (as PyTorch). Backward routes each output's gradient to the position
it came from and adds where windows overlap:

.. math::
    \partial x_{n,\ i s_h - p_t + a^*,\ j s_w - p_l + c^*,\ d} \mathrel{+}= \partial y_{n,i,j,d}

:func:`maxpool_forward` returns ``(y, arg)`` with ``arg`` (int32, shape of
``y``) holding :math:`k^*`; :func:`maxpool_backward` takes it back.

Average pooling divides by the number of real pixels :math:`m_{ij} =
|R_{ij}|` (Keras; PyTorch's ``count_include_pad=False``):

.. math::
    y_{n,i,j,d} = \frac{1}{m_{ij}} \sum_{(a, c) \in R_{ij}}
        x_{n,\ i s_h - p_t + a,\ j s_w - p_l + c,\ d}, \qquad
    \partial x_{n,\ i s_h - p_t + a,\ j s_w - p_l + c,\ d} \mathrel{+}=
        \frac{\partial y_{n,i,j,d}}{m_{ij}}

summed in row-major window order, from zero, in the *accumulator dtype*, then
divided by :math:`m_{ij}` in it and rounded once to x's dtype. The
accumulator is float64 for windows of more than :data:`SHORT_WINDOW` pixels
(global pooling above all): a float32 sum of :math:`n` terms is off by up to
:math:`(n - 1) u \sum |x|` (:math:`u = 2^{-24}`), and NumPy adds along a
non-innermost axis one term at a time, so the mean of a 1024x1024 image of
values in 100..100.01 came out 101.44 (PyTorch's ``mean`` and a float64 sum:
100.005). Windows of at most :data:`SHORT_WINDOW` pixels (2x2, 3x3) are
summed in x's dtype, as PyTorch's ``avg_pool2d`` does: their error is at most
8 ulps of the mean of :math:`|x|`, and a float64 accumulator cost 11-23 % of
the forward of 2x2 pooling at (128, 26, 26, 32) and (128, 24, 24, 64) float32
(converting each term halves the vector width), against nothing measurable
above 3x3. The kernel and the reference add the same terms in the same order
and give the same bits (the reference adds one window offset at a time into a
total in the accumulator dtype, and global pooling of a few channels by ``cumsum``, the one
NumPy reduction bound to add in order); the backward of overlapping
windows adds its shares in another order (a few terms, each
:math:`\partial y / m_{ij}` rounded once: no accumulation to protect).

The NumPy references take, for each window offset ``(a, c)``, the strided
slice of the input it reads for every output whose window it lands inside
(one pass per offset); unpadded max pooling takes ``argmax`` over a strided
view of all windows instead. The kernels read the input once, innermost
over the contiguous channels, in parallel over the batch. When the windows
do not overlap (strides equal to the pool, the usual 2x2/2) the backward
writes every element of ``dx`` once, the routed gradient or zero, instead
of zeroing ``dx`` and scattering into it (the small CNN's second max pool,
11x11x64 at batch 128: 1.6 -> 0.8 ms).
"""

from __future__ import annotations

import operator

import numpy as np

from .checks import check_float_array, check_indices, check_pair, check_shape, checked
from .config import NUMBA_ENABLED, njit, prange, split_count
from .im2col import windows

__all__ = ["NO_PADS", "SHORT_WINDOW", "window_counts", "maxpool_forward", "maxpool_backward",
           "maxpool_forward_ref", "maxpool_backward_ref", "avgpool_forward",
           "avgpool_backward", "avgpool_forward_ref", "avgpool_backward_ref"]

#: ``((top, bottom), (left, right))``: no padding
NO_PADS = ((0, 0), (0, 0))
#: Average pooling sums windows of at most this many pixels in x's dtype,
#: larger ones in float64 (see the module docstring)
SHORT_WINDOW = 9


# ------------------------------------------------------------------ kernels
@njit(inline=True)
def _clip(i, s, before, p, size):
    """``(start, lo, hi)``: window ``i``'s first row (or column) in the input,
    which may be negative, and the offsets ``lo <= a < hi`` that are real."""
    start = i * s - before
    return start, max(0, -start), min(p, size - start)


@njit(parallel=True)
def _maxpool_forward(x, ph, pw, sh, sw, pt, pl, y, arg, n_chunks):
    n, ho, wo, c = y.shape
    h, w = x.shape[1], x.shape[2]
    for t in prange(n_chunks):
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                r0, a0, a1 = _clip(i, sh, pt, ph, h)
                for j in range(wo):
                    c0, b0, b1 = _clip(j, sw, pl, pw, w)
                    ys, ks = y[s, i, j], arg[s, i, j]
                    first = x[s, r0 + a0, c0 + b0]
                    k0 = np.int32(a0 * pw + b0)
                    for d in range(c):
                        ys[d] = first[d]
                        ks[d] = k0
                    for a in range(a0, a1):
                        for b in range(b0, b1):
                            if a == a0 and b == b0:
                                continue
                            k = np.int32(a * pw + b)
                            xs = x[s, r0 + a, c0 + b]
                            for d in range(c):
                                v, best = xs[d], ys[d]
                                # NaN wins, and a later NaN replaces it (PyTorch).
                                # | (not `or`) and selects instead of a
                                # conditional store: no branch, so the loop
                                # over channels vectorises
                                take = (v > best) | (v != v)
                                ys[d] = v if take else best
                                ks[d] = k if take else ks[d]


@njit(parallel=True)
def _maxpool_backward(dy, arg, pw, sh, sw, pt, pl, dx, n_chunks):
    n, ho, wo, c = dy.shape
    for t in prange(n_chunks):  # samples are disjoint: no two threads write one dx
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                for j in range(wo):
                    for d in range(c):
                        k = arg[s, i, j, d]
                        dx[s, i * sh - pt + k // pw, j * sw - pl + k % pw, d] += dy[s, i, j, d]


@njit(parallel=True)
def _maxpool_backward_tiled(dy, arg, ph, pw, pt, pl, dx, n_chunks):
    """Windows that tile the input (strides == pool): every dx element they
    cover is written once, dy or zero, in contiguous runs over channels; the
    caller zeroes the rows and columns past the last window (an odd size)."""
    n, ho, wo, c = dy.shape
    h, w = dx.shape[1], dx.shape[2]
    for t in prange(n_chunks):
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                r0, a0, a1 = _clip(i, ph, pt, ph, h)
                for j in range(wo):
                    c0, b0, b1 = _clip(j, pw, pl, pw, w)
                    ks, g = arg[s, i, j], dy[s, i, j]
                    zero = g[0] - g[0]
                    for a in range(a0, a1):
                        for b in range(b0, b1):
                            k = a * pw + b
                            out = dx[s, r0 + a, c0 + b]
                            for d in range(c):
                                out[d] = g[d] if ks[d] == k else zero


@njit(parallel=True, exact=True)  # x / m divides, as the reference (fast-math: x * (1/m))
def _avgpool_forward(x, ph, pw, sh, sw, pt, pl, counts, y, n_chunks):
    """Each window summed in ``counts``' dtype (the accumulator: see
    :func:`_sum_dtype`), divided in it, rounded once to y's."""
    n, ho, wo, c = y.shape
    h, w = x.shape[1], x.shape[2]
    for t in prange(n_chunks):
        acc = np.empty(c, counts.dtype)
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                r0, a0, a1 = _clip(i, sh, pt, ph, h)
                for j in range(wo):
                    c0, b0, b1 = _clip(j, sw, pl, pw, w)
                    ys = y[s, i, j]
                    m = counts[i, j]
                    zero = m - m   # 0 in the accumulator's dtype
                    for d in range(c):
                        acc[d] = zero
                    for a in range(a0, a1):
                        for b in range(b0, b1):
                            xs = x[s, r0 + a, c0 + b]
                            for d in range(c):
                                acc[d] += xs[d]
                    for d in range(c):
                        ys[d] = acc[d] / m


@njit(parallel=True, exact=True)
def _avgpool_backward(dy, ph, pw, sh, sw, pt, pl, counts, dx, tiled, n_chunks):
    """``dx`` += each window's share at its real pixels; ``tiled`` (windows
    that do not overlap) writes each covered element once instead (the
    caller zeroes the rest, else all of dx)."""
    n, ho, wo, c = dy.shape
    h, w = dx.shape[1], dx.shape[2]
    for t in prange(n_chunks):
        share = np.empty(c, dy.dtype)
        for s in range((n * t) // n_chunks, (n * (t + 1)) // n_chunks):
            for i in range(ho):
                r0, a0, a1 = _clip(i, sh, pt, ph, h)
                for j in range(wo):
                    c0, b0, b1 = _clip(j, sw, pl, pw, w)
                    g = dy[s, i, j]
                    m = counts[i, j]
                    for d in range(c):
                        share[d] = g[d] / m
                    for a in range(a0, a1):
                        for b in range(b0, b1):
                            out = dx[s, r0 + a, c0 + b]
                            if tiled:
                                for d in range(c):
                                    out[d] = share[d]
                            else:
                                for d in range(c):
                                    out[d] += share[d]


def _chunks(n, work):
    return split_count(n, work, 1 << 16)


# --------------------------------------------------------------- geometry
def _output_size(x_shape, pool, strides, pads, who, what="x of shape"):
    """(Ho, Wo) for an input of ``x_shape``, which must be (N, H, W, C) with
    room for one window once padded."""
    if len(x_shape) != 4:
        raise ValueError(f"{who} expected {what} (batch, height, width, channels), "
                         f"received {tuple(x_shape)}")
    (ph, pw), (sh, sw) = pool, strides
    (pt, pb), (pl, pr) = pads
    ho = (x_shape[1] + pt + pb - ph) // sh + 1
    wo = (x_shape[2] + pl + pr - pw) // sw + 1
    if ho < 1 or wo < 1:
        padded = "" if pads == NO_PADS else f" padded by {pads}"
        raise ValueError(f"{who}: a {ph}x{pw} pool does not fit an input of "
                         f"{x_shape[1]}x{x_shape[2]}{padded}")
    return ho, wo


def _spans(offset, before, s, size, n_out):
    """``(out, inp)``: the slice of output positions whose window's offset
    ``offset`` lands on a real pixel of an axis of ``size``, and the slice of
    input pixels they read there; None when there are none."""
    lo = max(0, -((offset - before) // s))         # ceil((before - offset) / s)
    hi = min(n_out, (size + before - offset - 1) // s + 1)
    if hi <= lo:
        return None
    first = lo * s - before + offset
    return slice(lo, hi), slice(first, first + (hi - lo - 1) * s + 1, s)


def _offsets(pool, strides, pads, in_size, out_size):
    """For each window offset ``(a, c)``, row-major, that reads any real pixel:
    ``(k, (out_rows, out_cols), (in_rows, in_cols))`` with ``k = a pw + c``."""
    (ph, pw), (sh, sw), ((pt, _), (pl, _)) = pool, strides, pads
    for a in range(ph):
        rows = _spans(a, pt, sh, in_size[0], out_size[0])
        for c in range(pw):
            cols = _spans(c, pl, sw, in_size[1], out_size[1])
            if rows is not None and cols is not None:
                yield a * pw + c, (rows[0], cols[0]), (rows[1], cols[1])


def window_counts(in_size, pool, strides, pads, dtype=np.float64):
    """``m`` of shape ``(Ho, Wo)``, in ``dtype``: the real pixels of each
    window over an image of ``in_size = (H, W)``."""
    (pt, pb), (pl, pr) = pads
    out = _output_size((1, *in_size, 1), pool, strides, pads, "pooling")
    per_axis = []
    for size, before, p, s, n in zip(in_size, (pt, pl), pool, strides, out):
        start = s * np.arange(n) - before
        per_axis.append(np.minimum(start + p, size) - np.maximum(start, 0))
    return (per_axis[0][:, None] * per_axis[1][None, :]).astype(dtype)


def _first_real(pool, strides, pads, out_size):
    """``k`` of each window's first real pixel, shape ``(Ho, Wo)``."""
    (sh, sw), ((pt, _), (pl, _)) = strides, pads
    rows = np.maximum(pt - sh * np.arange(out_size[0]), 0)
    cols = np.maximum(pl - sw * np.arange(out_size[1]), 0)
    return (rows[:, None] * pool[1] + cols[None, :]).astype(np.int32)


# ------------------------------------------------------------------ checks
def _check_pads(pads, pool, who) -> tuple:
    """``pads`` as ``((top, bottom), (left, right))`` of non-negative ints,
    each below the pool along its axis (else a window could hold no pixel)."""
    try:
        rows, cols = (tuple(p) for p in pads)
        out = tuple(tuple(operator.index(v) for v in p) for p in (rows, cols))
        ok = all(len(p) == 2 for p in out) and not any(
            isinstance(v, (bool, np.bool_)) for p in (rows, cols) for v in p)
    except (TypeError, ValueError):
        ok = False
    if not ok or not all(0 <= v < p for pair, p in zip(out, pool) for v in pair):
        raise ValueError(f"{who} expected pads as ((top, bottom), (left, right)), "
                         f"non-negative integers below the pool {tuple(pool)}, received "
                         f"{pads!r}")
    return out


def _check_forward(who):
    """The public functions' checks of a forward call: float x, positive ints
    for the pool and strides (a pool of 0 read past the input), the pads."""
    def check(x, pool, strides, pads=NO_PADS):
        x = check_float_array(x, who, "x")
        pool = check_pair(pool, who, "pool")
        return x, pool, check_pair(strides, who, "strides"), _check_pads(pads, pool, who)
    return check


def _check_backward(dy, arg, x_shape, pool, strides, pads, who="max pooling backward"):
    x_shape = tuple(x_shape)
    ho, wo = _output_size(x_shape, pool, strides, pads, who, what="x_shape")
    expected = (x_shape[0], ho, wo, x_shape[3])
    names = "dy" if arg is None else "dy and arg"
    shapes = dy.shape if arg is None else f"{dy.shape} and {arg.shape}"
    if dy.shape != expected or (arg is not None and arg.shape != expected):
        raise ValueError(f"{who} expected {names} of shape {expected} (the output for "
                         f"input {x_shape}), received {shapes}")


def _check_backward_args(who):
    def check(dy, x_shape, pool, strides, pads=NO_PADS):
        pool = check_pair(pool, who, "pool")
        strides = check_pair(strides, who, "strides")
        pads = _check_pads(pads, pool, who)
        x_shape = check_shape(x_shape, who, "x_shape", "batch, height, width, channels")
        return check_float_array(dy, who, "dy"), x_shape, pool, strides, pads
    return check


def _check_maxpool_backward(dy, arg, x_shape, pool, strides, pads=NO_PADS):
    """The public functions' checks of a backward call: the forward's, the
    shapes, and every ``arg`` an integer in ``[0, ph * pw)`` that points at
    a real pixel -- the kernel writes ``dx`` where ``arg`` points, unchecked."""
    who = "max pooling backward"
    dy, x_shape, pool, strides, pads = _check_backward_args(who)(dy, x_shape, pool, strides,
                                                                 pads)
    (ph, pw), arg = pool, np.asarray(arg)
    _check_backward(dy, arg, x_shape, pool, strides, pads)
    check_indices(arg, ph * pw, who, f"arg (indices into {ph}x{pw} windows)")
    if pads != NO_PADS and arg.size:
        (sh, sw), ((pt, _), (pl, _)) = strides, pads
        rows = np.arange(arg.shape[1])[None, :, None, None] * sh - pt + arg // pw
        cols = np.arange(arg.shape[2])[None, None, :, None] * sw - pl + arg % pw
        if ((rows < 0) | (rows >= x_shape[1]) | (cols < 0) | (cols >= x_shape[2])).any():
            raise ValueError(f"{who} expected arg (indices into {ph}x{pw} windows) to point "
                             f"at real pixels, received some that point into the padding "
                             f"{pads}")
    return dy, arg, x_shape, pool, strides, pads


def _check_avgpool_backward(dy, x_shape, pool, strides, pads=NO_PADS):
    who = "average pooling backward"
    dy, x_shape, pool, strides, pads = _check_backward_args(who)(dy, x_shape, pool, strides,
                                                                 pads)
    _check_backward(dy, None, x_shape, pool, strides, pads, who)
    return dy, x_shape, pool, strides, pads


# ------------------------------------------------------------- max pooling
@checked(_check_forward("max pooling"), passes_on=True)
def maxpool_forward(x, pool, strides, pads=NO_PADS):
    """``(y, arg)``: the window maxima of ``x`` and where each came from.

    Parameters
    ----------
    x : ndarray of shape (N, H, W, C), float32 or float64
    pool, strides : (int, int)
    pads : ((int, int), (int, int)), default no padding
        ``((top, bottom), (left, right))``, each below the pool: windows
        reach that far past the image and take no part of it.

    Returns
    -------
    y : ndarray of shape (N, Ho, Wo, C), x's dtype
    arg : int32 ndarray of y's shape, the flat window index ``a * pw + c``
        (``a`` counted from the window's first row, padding included)

    Checks its arguments (``.trusted`` does not: see :mod:`.checks`).
    """
    x = np.ascontiguousarray(x)
    ho, wo = _output_size(x.shape, pool, strides, pads, "max pooling")
    y = np.empty((x.shape[0], ho, wo, x.shape[3]), x.dtype)
    arg = np.empty(y.shape, np.int32)
    if y.size:
        _maxpool_forward(x, pool[0], pool[1], strides[0], strides[1], pads[0][0], pads[1][0],
                         y, arg, _chunks(x.shape[0], x.size))
    return y, arg


def _zero_uncovered(dx, covered):
    """Zero the rows and columns of ``dx`` past ``covered = (rows, cols)``
    from the top left (an odd size that no tiling window reaches)."""
    dx[:, covered[0]:] = 0
    dx[:, :covered[0], covered[1]:] = 0


def _tiles(pool, strides):
    return tuple(pool) == tuple(strides)


def _tiled_coverage(dy_shape, pool, pads):
    """How far tiling windows reach into the image: ``(Ho ph - pt, Wo pw - pl)``."""
    return dy_shape[1] * pool[0] - pads[0][0], dy_shape[2] * pool[1] - pads[1][0]


@checked(_check_maxpool_backward, passes_on=True)
def maxpool_backward(dy, arg, x_shape, pool, strides, pads=NO_PADS):
    """``dx`` of shape ``x_shape``: each ``dy`` added at its window's maximum.

    ``arg`` is :func:`maxpool_forward`'s; each value must be in ``[0, ph *
    pw)`` and point at a real pixel, which this checks, with the shapes,
    dtypes and geometry (``.trusted`` checks the shapes only: see
    :mod:`.checks`)."""
    dy, arg = np.ascontiguousarray(dy), np.ascontiguousarray(arg)
    (ph, pw), (sh, sw), ((pt, _), (pl, _)) = pool, strides, pads
    _check_backward(dy, arg, x_shape, pool, strides, pads)
    chunks = _chunks(dy.shape[0], int(np.prod(x_shape)))
    if dy.size and _tiles(pool, strides):  # non-overlapping windows
        dx = np.empty(x_shape, dy.dtype)
        _maxpool_backward_tiled(dy, arg, ph, pw, pt, pl, dx, chunks)
        _zero_uncovered(dx, _tiled_coverage(dy.shape, pool, pads))
        return dx
    dx = np.zeros(x_shape, dy.dtype)
    if dy.size:
        _maxpool_backward(dy, arg, pw, sh, sw, pt, pl, dx, chunks)
    return dx


@checked(_check_forward("max pooling"), passes_on=True)
def maxpool_forward_ref(x, pool, strides, pads=NO_PADS):
    """NumPy reference of :func:`maxpool_forward` (which checks as it does)."""
    x = np.asarray(x)
    ho, wo = _output_size(x.shape, pool, strides, pads, "max pooling")
    (ph, pw) = pool
    if pads == NO_PADS:
        win = windows(x, pool, strides).reshape(x.shape[0], ho, wo, ph * pw, x.shape[3])
        arg = np.argmax(win, axis=3)  # first maximum; NaN counts as the maximum
        y = np.take_along_axis(win, arg[:, :, :, None, :], axis=3)[:, :, :, 0, :]
        if np.isnan(y).any():  # argmax took the first NaN; the kernel (PyTorch) the last
            nan = np.isnan(win)
            last = ph * pw - 1 - np.argmax(nan[:, :, :, ::-1], axis=3)
            arg = np.where(nan.any(axis=3), last, arg)
        return y, arg.astype(np.int32)
    # padded: each window from -inf at its first real pixel, offset by offset
    y = np.full((x.shape[0], ho, wo, x.shape[3]), -np.inf, x.dtype)
    arg = np.empty(y.shape, np.int32)
    arg[...] = _first_real(pool, strides, pads, (ho, wo))[None, :, :, None]
    for k, (rows, cols), (in_rows, in_cols) in _offsets(pool, strides, pads, x.shape[1:3],
                                                        (ho, wo)):
        v, best = x[:, in_rows, in_cols], y[:, rows, cols]
        take = (v > best) | (v != v)   # as the kernel: the last NaN wins
        np.copyto(best, v, where=take)
        np.copyto(arg[:, rows, cols], k, where=take)
    return y, arg


@checked(_check_maxpool_backward, passes_on=True)
def maxpool_backward_ref(dy, arg, x_shape, pool, strides, pads=NO_PADS):
    """NumPy reference of :func:`maxpool_backward` (which checks as it does)."""
    _check_backward(dy, arg, x_shape, pool, strides, pads)
    (ph, pw), (sh, sw), ((pt, _), (pl, _)) = pool, strides, pads
    n, ho, wo, c = arg.shape
    rows = np.arange(ho)[None, :, None, None] * sh - pt + arg // pw
    cols = np.arange(wo)[None, None, :, None] * sw - pl + arg % pw
    index = (np.arange(n)[:, None, None, None], rows, cols, np.arange(c))
    dx = np.zeros(x_shape, dtype=dy.dtype)
    if sh >= ph and sw >= pw:  # windows do not overlap: one write per input
        dx[index] = dy
    else:
        np.add.at(dx, index, dy)
    return dx


# --------------------------------------------------------- average pooling
@checked(_check_forward("average pooling"), passes_on=True)
def avgpool_forward(x, pool, strides, pads=NO_PADS):
    """``y`` of shape (N, Ho, Wo, C): each window's mean over its real pixels.

    Arguments as :func:`maxpool_forward`'s; checks them (``.trusted`` does
    not: see :mod:`.checks`)."""
    x = np.ascontiguousarray(x)
    ho, wo = _output_size(x.shape, pool, strides, pads, "average pooling")
    y = np.empty((x.shape[0], ho, wo, x.shape[3]), x.dtype)
    if y.size:
        counts = window_counts(x.shape[1:3], pool, strides, pads, _sum_dtype(x.dtype, pool))
        _avgpool_forward(x, pool[0], pool[1], strides[0], strides[1], pads[0][0], pads[1][0],
                         counts, y, _chunks(x.shape[0], x.size))
    return y


@checked(_check_avgpool_backward, passes_on=True)
def avgpool_backward(dy, x_shape, pool, strides, pads=NO_PADS):
    """``dx`` of shape ``x_shape``: each ``dy`` shared among its window's real
    pixels (added where windows overlap). Checks its arguments."""
    dy = np.ascontiguousarray(dy)
    _check_backward(dy, None, x_shape, pool, strides, pads, "average pooling backward")
    tiled = _tiles(pool, strides)
    dx = (np.empty if tiled else np.zeros)(x_shape, dy.dtype)
    if dy.size:
        counts = window_counts(x_shape[1:3], pool, strides, pads, dy.dtype)
        _avgpool_backward(dy, pool[0], pool[1], strides[0], strides[1], pads[0][0],
                          pads[1][0], counts, dx, tiled,
                          _chunks(dy.shape[0], int(np.prod(x_shape))))
    if tiled:
        _zero_uncovered(dx, _tiled_coverage(dy.shape, pool, pads) if dy.size else (0, 0))
    return dx


def _whole_image(x_shape, pool, pads):
    """One window, the image (global pooling)."""
    return pads == NO_PADS and tuple(pool) == tuple(x_shape[1:3])


def _sum_dtype(dtype, pool):
    """The dtype average pooling sums and divides in: x's for windows of at
    most :data:`SHORT_WINDOW` pixels, float64 for larger ones."""
    return np.dtype(dtype if pool[0] * pool[1] <= SHORT_WINDOW else np.float64)


#: Global pooling of fewer than this many ``(image, channel)`` pairs sums by
#: blocks of pixels (:func:`_in_order_sum`), not one NumPy call per pixel
NARROW_SUM = 256
#: Elements of the accumulator dtype per block of :func:`_in_order_sum`
SUM_BLOCK = 1 << 18


def _in_order_sum(x, acc):
    """``(N, 1, 1, C)``: each image of ``x`` summed in row-major pixel order
    from +0, in ``acc``, as the kernel adds a window. For global pooling
    with few ``(image, channel)`` pairs (a large single-channel image), where
    the offset loop's one NumPy call per pixel would dominate: ``cumsum``
    (which adds in order, where ``sum`` may add pairwise) over blocks of
    :data:`SUM_BLOCK` elements, each block led by the total so far, so that
    the sum runs on in order and the extra memory is about two blocks (one
    and its running sums)."""
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    total = np.zeros((n, 1, c), acc)
    block = max(1, SUM_BLOCK // max(n * c, 1))
    for start in range(0, h * w, block):
        led = np.concatenate([total, flat[:, start:start + block]], axis=1, dtype=acc)
        total = np.cumsum(led, axis=1)[:, -1:]
    return total.reshape(n, 1, 1, c)


@checked(_check_forward("average pooling"), passes_on=True)
def avgpool_forward_ref(x, pool, strides, pads=NO_PADS):
    """NumPy reference of :func:`avgpool_forward` (which checks as it does):
    a sum over the window offsets in row-major order (global pooling of few
    channels: :func:`_in_order_sum`) in :func:`_sum_dtype`, the division in
    it, one rounding to x's dtype: the kernel's bits."""
    x = np.asarray(x)
    out = _output_size(x.shape, pool, strides, pads, "average pooling")
    acc = _sum_dtype(x.dtype, pool)
    counts = window_counts(x.shape[1:3], pool, strides, pads, acc)[None, :, :, None]
    if _whole_image(x.shape, pool, pads) and x.shape[0] * x.shape[3] < NARROW_SUM:
        total = _in_order_sum(x, acc)
    else:
        total = np.zeros((x.shape[0], *out, x.shape[3]), acc)
        for _, (rows, cols), (in_rows, in_cols) in _offsets(pool, strides, pads,
                                                            x.shape[1:3], out):
            total[:, rows, cols] += x[:, in_rows, in_cols]
    return np.divide(total, counts, out=total).astype(x.dtype, copy=False)


@checked(_check_avgpool_backward, passes_on=True)
def avgpool_backward_ref(dy, x_shape, pool, strides, pads=NO_PADS):
    """NumPy reference of :func:`avgpool_backward` (which checks as it does)."""
    _check_backward(dy, None, x_shape, pool, strides, pads, "average pooling backward")
    share = dy / window_counts(x_shape[1:3], pool, strides, pads, dy.dtype)[None, :, :, None]
    if _whole_image(x_shape, pool, pads):
        return np.broadcast_to(share, x_shape).copy()
    dx = np.zeros(x_shape, dy.dtype)
    for _, (rows, cols), (in_rows, in_cols) in _offsets(pool, strides, pads, x_shape[1:3],
                                                        dy.shape[1:3]):
        dx[:, in_rows, in_cols] += share[:, rows, cols]
    return dx


if not NUMBA_ENABLED:
    maxpool_forward, maxpool_backward = maxpool_forward_ref, maxpool_backward_ref
    avgpool_forward, avgpool_backward = avgpool_forward_ref, avgpool_backward_ref
