r"""BatchNorm and LayerNorm, forward (training statistics) and backward.

Both standardise a 2-D array ``x`` of shape (rows, features) -- callers
reshape other shapes, features last -- and scale and shift each feature:

.. math::
    \hat x = (x - \mu)\,/\sqrt{\sigma^2 + \epsilon}, \qquad y = \gamma\hat x + \beta

BatchNorm takes :math:`\mu, \sigma^2` (biased) per feature over the rows,
LayerNorm per row over the features. Backward, with means over the same
axis as the statistics and :math:`g = \gamma\,\partial y`:

.. math::
    \partial x = \frac{1}{\sqrt{\sigma^2+\epsilon}}\bigl(g - \bar g - \hat x\,\overline{g\hat x}\bigr),
    \quad \partial\gamma \mathrel{+}= \textstyle\sum_{rows} \partial y\,\hat x, \quad
    \partial\beta \mathrel{+}= \textstyle\sum_{rows} \partial y

Sums and squares are computed in float64: a float32 square overflows from
:math:`|x - \mu| \approx 1.8 \cdot 10^{19}`. The variance returned is in x's
dtype (inf above 3.4e38 in float32) but :math:`1/\sqrt{\sigma^2+\epsilon}` comes
from the float64 one. BatchNorm kernels give each thread whole features
(columns), LayerNorm kernels whole rows, with partial sums for the parameter
gradients per block of rows (no two threads write one element, and the
blocks, not the threads, fix the order of the sums: the same bits on any
number of threads).
"""

from __future__ import annotations

import math

import numpy as np

from .checks import check_float_array, check_shapes, check_writable, checked
from .config import NUMBA_ENABLED, REDUCE_ROWS, njit, prange, reduce_blocks, split_count

__all__ = ["batchnorm_forward", "batchnorm_backward", "layernorm_forward",
           "layernorm_backward", "batchnorm_forward_ref", "batchnorm_backward_ref",
           "layernorm_forward_ref", "layernorm_backward_ref", "standardise_ref", "check_eps"]


def _chunks(n_split, size):
    return split_count(n_split, size, 1 << 18)


def _two_like(x):
    """Two C arrays like x (y and x_hat) from one allocation: two large blocks
    alive at once often come from fresh mmap'd pages in glibc, whose page
    faults took longer than the kernel itself (measured on 512x256 float32)."""
    both = np.empty((2,) + x.shape, x.dtype)
    return both[0], both[1]


# ------------------------------------------------------------------- checks
def _rows(x, who, what):
    x = check_float_array(x, who, what)
    if x.ndim != 2:
        raise ValueError(f"{who} expected {what} of shape (rows, features), received "
                         f"{x.shape}")
    return x


def check_eps(eps, dtype, who: str) -> None:
    """Refuse an ``eps`` that ``dtype`` rounds to 0 (below about 7e-46 in
    float32; a positive float64 never is), with a ``ValueError`` naming ``who``.

    The kernels compute with ``eps`` in x's dtype, and BatchNorm's inference
    path adds it to its float32 moving variance, where it is 0: a constant
    feature gave 0 / sqrt(0), NaN, where the NumPy references, adding eps in
    float64, gave 0. Why not float64 everywhere: the default eps of 1e-3 is
    another number in float32, and the kernels' results for every ordinary
    eps would change in their last bits (691 of 131,072 outputs of a float32
    BatchNorm); no float32 computation can use an eps it cannot hold, so such
    an eps is refused on both backends, and the layers check it too
    (:class:`~tinynet.layers.BatchNorm`, :class:`~tinynet.layers.LayerNorm`)."""
    dtype = np.dtype(dtype)
    if dtype.type(eps) == 0:
        raise ValueError(f"{who} expected eps that {dtype} can hold (not below half its "
                         f"smallest positive number, "
                         f"{np.finfo(dtype).smallest_subnormal:.1e}), received eps={eps!r}, "
                         f"which {dtype} rounds to 0 (a "
                         f"constant feature would give 0/0, NaN); give a larger eps or "
                         f"compute in float64 (dtype='float64')")


def _check_forward(who):
    """Checks of a forward: 2-D float x, gamma and beta one per feature, an
    eps x's dtype can hold (:func:`check_eps`)."""
    def check(x, gamma, beta, eps):
        x = _rows(x, who, "x")
        check_shapes(who, x.shape[1:], gamma=gamma, beta=beta)
        check_eps(eps, x.dtype, who)
    return check


def _check_backward(who, stats_axis):
    """Checks of a backward: x_hat like dy; gamma and the gradients one per
    feature; inv_std one per feature (BatchNorm) or row (LayerNorm)."""
    def check(dy, x_hat, inv_std, gamma, dgamma, dbeta):
        dy = _rows(dy, who, "dy")
        check_shapes(who, dy.shape, x_hat=x_hat)
        check_shapes(who, dy.shape[1:], gamma=gamma, dgamma=dgamma, dbeta=dbeta)
        check_shapes(who, (dy.shape[stats_axis],), inv_std=inv_std)
        check_writable(who, dgamma=dgamma, dbeta=dbeta)
    return check


_bn_forward_checks = _check_forward("batchnorm_forward")
_bn_backward_checks = _check_backward("batchnorm_backward", 1)
_ln_forward_checks = _check_forward("layernorm_forward")
_ln_backward_checks = _check_backward("layernorm_backward", 0)


# ---------------------------------------------------------------- BatchNorm
@njit
def _bn_forward_cols(x, gamma, beta, eps, y, x_hat, inv_std, mean, var, a, b):
    """Features a:b, rows read contiguously (row-major: each pass adds one row
    of x into per-feature sums), sums in float64. Rows and vectors are sliced
    to a:b so that the inner loops index from 0: ``range(a, b)`` indices may
    be negative for Numba, whose wraparound check then stops vectorisation."""
    M = x.shape[0]
    n = b - a
    gamma, beta, inv_std, mean, var = gamma[a:b], beta[a:b], inv_std[a:b], mean[a:b], var[a:b]
    s = np.zeros(n)
    for i in range(M):
        row = x[i, a:b]
        for j in range(n):
            s[j] += row[j]
    for j in range(n):
        mean[j] = s[j] / M
        s[j] = 0.0
    for i in range(M):
        row = x[i, a:b]
        for j in range(n):
            # squared in float64: a float32 square overflows from |d| ~ 1.8e19,
            # and a variance of inf made every x_hat 0
            d = np.float64(row[j] - mean[j])
            s[j] += d * d
    for j in range(n):
        # from the float64 variance, not the one stored in x's dtype: that is
        # inf above 3.4e38 in float32, where 1/sqrt(v) is still a float32
        # (and for a float32 inf fast-math's reciprocal square root, rsqrt and
        # a Newton step, gave NaN, not 0 as 1/sqrt(inf))
        v = s[j] / M
        var[j] = v
        inv_std[j] = 1.0 / math.sqrt(v + eps)
    for i in range(M):
        xr = x[i, a:b]
        hr = x_hat[i, a:b]
        yr = y[i, a:b]
        # one store per loop: with two, LLVM needs more runtime alias checks
        # than it allows and leaves the loop scalar
        for j in range(n):
            hr[j] = (xr[j] - mean[j]) * inv_std[j]
        for j in range(n):
            yr[j] = hr[j] * gamma[j] + beta[j]


@njit(parallel=True)
def _bn_forward(x, gamma, beta, eps, y, x_hat, inv_std, mean, var, n_chunks):
    N = x.shape[1]
    for t in prange(n_chunks):
        _bn_forward_cols(x, gamma, beta, eps, y, x_hat, inv_std, mean, var,
                         (N * t) // n_chunks, (N * (t + 1)) // n_chunks)


@njit
def _bn_backward_cols(dy, x_hat, inv_std, gamma, dgamma, dbeta, dx, a, b):
    """Features a:b, rows read contiguously (sliced as in the forward)."""
    M = dy.shape[0]
    n = b - a
    inv_std, gamma, dgamma, dbeta = inv_std[a:b], gamma[a:b], dgamma[a:b], dbeta[a:b]
    sdy = np.zeros(n)
    sdyx = np.zeros(n)
    for i in range(M):
        dr = dy[i, a:b]
        hr = x_hat[i, a:b]
        for j in range(n):
            sdy[j] += dr[j]
            sdyx[j] += dr[j] * hr[j]
    for j in range(n):
        dgamma[j] += sdyx[j]
        dbeta[j] += sdy[j]
        sdy[j] /= M
        sdyx[j] /= M
    for i in range(M):
        dr = dy[i, a:b]
        hr = x_hat[i, a:b]
        out = dx[i, a:b]
        for j in range(n):
            out[j] = inv_std[j] * gamma[j] * (dr[j] - sdy[j] - hr[j] * sdyx[j])


@njit(parallel=True)
def _bn_backward(dy, x_hat, inv_std, gamma, dgamma, dbeta, dx, n_chunks):
    N = dy.shape[1]
    for t in prange(n_chunks):
        _bn_backward_cols(dy, x_hat, inv_std, gamma, dgamma, dbeta, dx,
                          (N * t) // n_chunks, (N * (t + 1)) // n_chunks)


@checked(_bn_forward_checks)
def batchnorm_forward(x, gamma, beta, eps):
    """Training-mode BatchNorm of x (rows, features).

    Returns
    -------
    y, x_hat : ndarray like x
    inv_std, mean, var : ndarray of shape (features,), x's dtype
    """
    x = np.ascontiguousarray(x)
    M, N = x.shape
    y, x_hat = _two_like(x)
    inv_std, mean, var = (np.empty(N, x.dtype) for _ in range(3))
    if N and not M:  # statistics of no rows: NaN, as NumPy's mean of nothing
        for a in (inv_std, mean, var):
            a.fill(np.nan)
    if M and N:
        _bn_forward(x, gamma, beta, x.dtype.type(eps), y, x_hat, inv_std, mean, var,
                    _chunks(N // 8, x.size))
    return y, x_hat, inv_std, mean, var


@checked(_bn_backward_checks)
def batchnorm_backward(dy, x_hat, inv_std, gamma, dgamma, dbeta):
    """dx of training-mode BatchNorm; adds to ``dgamma`` and ``dbeta``."""
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    if dy.size:
        _bn_backward(dy, x_hat, inv_std, gamma, dgamma, dbeta, dx,
                     _chunks(dy.shape[1] // 8, dy.size))
    return dx


def _mean_of_squares(a, axis):
    """The mean of ``a * a`` over ``axis`` (an int or a tuple; kept), squares
    and sum in float64 -- by ``einsum``, which casts as it goes: a float64
    copy of a float32 ``a`` made the NumPy BatchNorm 1.5x slower."""
    axes = {i % a.ndim for i in (axis if isinstance(axis, tuple) else (axis,))}
    letters = "abcdefghijklmnopqrstuvwxyz"[:a.ndim]
    kept = "".join(c for i, c in enumerate(letters) if i not in axes)
    total = np.einsum(f"{letters},{letters}->{kept}", a, a, dtype=np.float64)
    count = math.prod(a.shape[i] for i in axes)
    with np.errstate(invalid="ignore"):   # no values: 0 / 0, NaN as NumPy's mean of nothing
        mean = total / count
    return mean.reshape([1 if i in axes else n for i, n in enumerate(a.shape)])


def standardise_ref(x, axis, eps, centre_dtype):
    """``(x_hat, inv_std, mean, var)`` over ``axis`` (an int or a tuple; kept),
    in x's dtype, as the kernels compute them: sums and squares in float64, the centred values
    in ``centre_dtype`` (BatchNorm's kernel: x's dtype; LayerNorm's: float64).
    With float32 sums, large values overflowed where the kernels' did not
    (LayerNorm of a row [3e38, 1e38, 2e38] gave NaN); with float32 squares,
    BatchNorm of values ~1e20 had a variance of inf and output beta.

    Public, for callers that standardise arrays of any shape where the
    kernels do not run (another dtype, the NumPy backend), so that they
    compute the statistics exactly as the references here do."""
    mean = x.mean(axis=axis, keepdims=True, dtype=np.float64).astype(centre_dtype)
    centred = x - mean
    var = _mean_of_squares(centred, axis)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = centred * inv_std.astype(centre_dtype)
    return tuple(a.astype(x.dtype) for a in (x_hat, inv_std, mean, var))


@checked(_bn_forward_checks)
def batchnorm_forward_ref(x, gamma, beta, eps):
    """NumPy reference of :func:`batchnorm_forward`."""
    x_hat, inv_std, mean, var = standardise_ref(x, 0, eps, x.dtype)
    return x_hat * gamma + beta, x_hat, inv_std[0], mean[0], var[0]


@checked(_bn_backward_checks)
def batchnorm_backward_ref(dy, x_hat, inv_std, gamma, dgamma, dbeta):
    """NumPy reference of :func:`batchnorm_backward`."""
    dgamma += (dy * x_hat).sum(axis=0)
    dbeta += dy.sum(axis=0)
    g = dy * gamma
    return inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))


# ---------------------------------------------------------------- LayerNorm
@njit(parallel=True)
def _ln_forward(x, gamma, beta, eps, y, x_hat, inv_std, n_chunks):
    M, N = x.shape
    for t in prange(n_chunks):
        for i in range((M * t) // n_chunks, (M * (t + 1)) // n_chunks):
            row = x[i]
            s = 0.0
            for j in range(N):
                s += row[j]
            mu = s / N
            s = 0.0
            for j in range(N):
                d = row[j] - mu
                s += d * d
            r = 1.0 / math.sqrt(s / N + eps)
            inv_std[i] = r
            hr = x_hat[i]
            yr = y[i]
            for j in range(N):
                h = (row[j] - mu) * r
                hr[j] = h
                yr[j] = h * gamma[j] + beta[j]


@njit(parallel=True)
def _ln_backward(dy, x_hat, inv_std, gamma, pg, pb, dx, n_chunks):
    """dx; ``pg[k]``, ``pb[k]``: the block of rows ``k R .. (k+1) R - 1``'s
    shares of dgamma and dbeta (R = REDUCE_ROWS; blocks split over chunks)."""
    M, N = dy.shape
    n_blocks = pg.shape[0]
    for t in prange(n_chunks):
        for k in range((n_blocks * t) // n_chunks, (n_blocks * (t + 1)) // n_chunks):
            pgt = pg[k]
            pbt = pb[k]
            for i in range(k * REDUCE_ROWS, min(M, (k + 1) * REDUCE_ROWS)):
                dr = dy[i]
                hr = x_hat[i]
                sg = 0.0
                sgx = 0.0
                for j in range(N):
                    g = dr[j] * gamma[j]
                    sg += g
                    sgx += g * hr[j]
                    pgt[j] += dr[j] * hr[j]
                    pbt[j] += dr[j]
                sg /= N
                sgx /= N
                r = inv_std[i]
                out = dx[i]
                for j in range(N):
                    out[j] = r * (dr[j] * gamma[j] - sg - hr[j] * sgx)


@checked(_ln_forward_checks)
def layernorm_forward(x, gamma, beta, eps):
    """LayerNorm of x (rows, features) over the features.

    Returns
    -------
    y, x_hat : ndarray like x;  inv_std : ndarray of shape (rows,)
    """
    x = np.ascontiguousarray(x)
    M, N = x.shape
    y, x_hat = _two_like(x)
    inv_std = np.empty(M, x.dtype)
    if M and not N:  # statistics of no features: NaN, as NumPy's mean of nothing
        inv_std.fill(np.nan)
    if M and N:
        _ln_forward(x, gamma, beta, x.dtype.type(eps), y, x_hat, inv_std,
                    _chunks(M // 8, x.size))
    return y, x_hat, inv_std


@checked(_ln_backward_checks)
def layernorm_backward(dy, x_hat, inv_std, gamma, dgamma, dbeta):
    """dx of LayerNorm; adds to ``dgamma`` and ``dbeta`` (partials per block of
    rows, added in block order: the same bits on any number of threads)."""
    dy = np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    if dy.size:
        n_blocks = reduce_blocks(dy.shape[0])
        n_chunks = min(_chunks(dy.shape[0] // 8, dy.size), n_blocks)
        pg = np.zeros((n_blocks, dy.shape[1]))
        pb = np.zeros((n_blocks, dy.shape[1]))
        _ln_backward(dy, x_hat, inv_std, gamma, pg, pb, dx, n_chunks)
        dgamma += pg.sum(axis=0).astype(dgamma.dtype)
        dbeta += pb.sum(axis=0).astype(dbeta.dtype)
    return dx


@checked(_ln_forward_checks)
def layernorm_forward_ref(x, gamma, beta, eps):
    """NumPy reference of :func:`layernorm_forward`."""
    x_hat, inv_std, _, _ = standardise_ref(x, 1, eps, np.float64)
    return x_hat * gamma + beta, x_hat, inv_std[:, 0]


@checked(_ln_backward_checks)
def layernorm_backward_ref(dy, x_hat, inv_std, gamma, dgamma, dbeta):
    """NumPy reference of :func:`layernorm_backward`."""
    dgamma += (dy * x_hat).sum(axis=0)
    dbeta += dy.sum(axis=0)
    g = dy * gamma
    return inv_std[:, None] * (g - g.mean(axis=1, keepdims=True)
                               - x_hat * (g * x_hat).mean(axis=1, keepdims=True))


if not NUMBA_ENABLED:
    batchnorm_forward, batchnorm_backward = batchnorm_forward_ref, batchnorm_backward_ref
    layernorm_forward, layernorm_backward = layernorm_forward_ref, layernorm_backward_ref
