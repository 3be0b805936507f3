r"""Element-wise activations: forward, and backward from the saved output.

Activations are named by small integer codes so one compiled kernel serves
them all (the branch on the code sits outside the inner loops, so every loop
stays simple enough for LLVM to vectorise):

=========  ====  ==========================================  ==================
name       code  forward :math:`y = f(z)`                     backward uses
=========  ====  ==========================================  ==================
identity   0     :math:`z`                                    --
relu       1     :math:`\max(z, 0)`                           y
leaky_relu 2     :math:`z` if :math:`z>0` else :math:`\alpha z`  y (needs alpha >= 0)
elu        3     :math:`z` if :math:`z>0` else :math:`\alpha(e^z-1)`  y (alpha > 0)
gelu       4     :math:`z\Phi(z)` (erfc)                       z
gelu_tanh  5     tanh approximation                           z
silu       6     :math:`z\sigma(z)`                           z
sigmoid    7     :math:`\sigma(z)` (stable form)              y
tanh       8     :math:`\tanh z`                              y
=========  ====  ==========================================  ==================

``act_forward`` / ``act_backward`` work on 2-D arrays row by row, split over
threads by rows; the NumPy references ``act_forward_ref`` /
``act_backward_ref`` do the same maths array-wise.
"""

from __future__ import annotations

import math

import numpy as np

from .config import NUMBA_ENABLED, njit, prange

__all__ = ["ACT_CODES", "needs_input", "act_forward", "act_backward", "act_forward_ref",
           "act_backward_ref", "bias_act_rows", "act_grad_rows"]

IDENTITY, RELU, LEAKY_RELU, ELU, GELU, GELU_TANH, SILU, SIGMOID, TANH = range(9)

#: Activation name -> kernel code.
ACT_CODES = {"identity": IDENTITY, "linear": IDENTITY, "relu": RELU,
             "leaky_relu": LEAKY_RELU, "elu": ELU, "gelu": GELU, "gelu_tanh": GELU_TANH,
             "silu": SILU, "swish": SILU, "sigmoid": SIGMOID, "tanh": TANH}

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_SQRT_2_OVER_PI = 0.7978845608028654
_GELU_CUBIC = 0.044715


def needs_input(code: int) -> bool:
    """True when the backward of ``code`` needs the pre-activation ``z``."""
    return code in (GELU, GELU_TANH, SILU)


# ------------------------------------------------------------ numba helpers
@njit
def _sigmoid(z):
    e = math.exp(-abs(z))
    return (1.0 if z >= 0 else e) / (1.0 + e)


@njit
def bias_act_rows(c, bias, has_bias, z_out, store_z, code, alpha, r0, r1):
    """In place on rows r0:r1 of c: z = c + bias (kept in z_out if store_z),
    c = f(z). One branch per activation, outside the loops."""
    N = c.shape[1]
    for i in range(r0, r1):
        row = c[i]
        if has_bias:
            for j in range(N):
                row[j] += bias[j]
        if store_z:
            zr = z_out[i]
            for j in range(N):
                zr[j] = row[j]
        if code == RELU:
            for j in range(N):
                row[j] = max(row[j], 0)
        elif code == LEAKY_RELU:
            for j in range(N):
                v = row[j]
                row[j] = v if v > 0 else v * alpha
        elif code == ELU:
            for j in range(N):
                v = row[j]
                row[j] = v if v > 0 else math.expm1(v) * alpha
        elif code == GELU:
            for j in range(N):
                v = row[j]
                row[j] = v * (0.5 * math.erfc(-v * _SQRT_HALF))
        elif code == GELU_TANH:
            for j in range(N):
                v = row[j]
                row[j] = 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v)))
        elif code == SILU:
            for j in range(N):
                v = row[j]
                row[j] = v * _sigmoid(v)
        elif code == SIGMOID:
            for j in range(N):
                row[j] = _sigmoid(row[j])
        elif code == TANH:
            for j in range(N):
                row[j] = math.tanh(row[j])


@njit
def act_grad_rows(dy, y, z, code, alpha, g, r0, r1):
    """g[r0:r1] = dL/dz from dy and the saved output y (or input z)."""
    N = dy.shape[1]
    for i in range(r0, r1):
        d = dy[i]
        out = g[i]
        if code == RELU:
            yr = y[i]
            for j in range(N):
                out[j] = d[j] if yr[j] > 0 else 0
        elif code == LEAKY_RELU:
            yr = y[i]
            for j in range(N):
                out[j] = d[j] if yr[j] > 0 else d[j] * alpha
        elif code == ELU:
            yr = y[i]
            for j in range(N):
                out[j] = d[j] if yr[j] > 0 else d[j] * (yr[j] + alpha)
        elif code == SIGMOID:
            yr = y[i]
            for j in range(N):
                out[j] = d[j] * yr[j] * (1 - yr[j])
        elif code == TANH:
            yr = y[i]
            for j in range(N):
                out[j] = d[j] * (1 - yr[j] * yr[j])
        elif code == GELU:
            zr = z[i]
            for j in range(N):
                v = zr[j]
                cdf = 0.5 * math.erfc(-v * _SQRT_HALF)
                out[j] = d[j] * (cdf + v * _INV_SQRT_2PI * math.exp(-0.5 * v * v))
        elif code == GELU_TANH:
            zr = z[i]
            for j in range(N):
                v = zr[j]
                t = math.tanh(_SQRT_2_OVER_PI * (v + _GELU_CUBIC * v * v * v))
                du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * v * v)
                out[j] = d[j] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du)
        elif code == SILU:
            zr = z[i]
            for j in range(N):
                v = zr[j]
                s = _sigmoid(v)
                out[j] = d[j] * s * (1 + v * (1 - s))
        else:
            for j in range(N):
                out[j] = d[j]


@njit(parallel=True)
def _act_forward(z, y, code, alpha, n_chunks):
    M = z.shape[0]
    for t in prange(n_chunks):
        r0 = (M * t) // n_chunks
        r1 = (M * (t + 1)) // n_chunks
        y[r0:r1] = z[r0:r1]
        bias_act_rows(y, y[0], False, y, False, code, alpha, r0, r1)


@njit(parallel=True)
def _act_backward(dy, y, z, code, alpha, g, n_chunks):
    M = dy.shape[0]
    for t in prange(n_chunks):
        act_grad_rows(dy, y, z, code, alpha, g, (M * t) // n_chunks, (M * (t + 1)) // n_chunks)


# ----------------------------------------------------------------- wrappers
def _as_rows(x):
    """A 2-D C-contiguous view (or copy) of x: (batch, everything else)."""
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0] if x.ndim else 1, -1) if x.ndim != 2 else x


def _chunks(n_rows, n_cols):
    from .config import num_threads
    # below ~256k elements (~50 µs) a second thread costs more than it saves
    if n_rows * n_cols < (1 << 18):
        return 1
    return max(1, min(num_threads(), n_rows))


def _check_code(code):
    if not isinstance(code, (int, np.integer)) or not 0 <= code <= TANH:
        raise ValueError(f"activation kernel expected a code in 0..{TANH} (see ACT_CODES), "
                         f"received {code!r}")


def act_forward(z, code, alpha=0.0, out=None):
    """y = f(z) for the activation ``code`` (see the table above).

    Parameters
    ----------
    z : ndarray of shape (batch, ...), float32 or float64
    code : int
    alpha : float, slope / scale of leaky_relu and elu
    out : ndarray like z, optional (may be z itself)
    """
    _check_code(code)
    z = np.asarray(z)
    y = np.empty_like(z, order="C") if out is None else out
    if z.size == 0:
        return y
    z2, y2 = _as_rows(z), y.reshape(_as_rows(z).shape)
    _act_forward(z2, y2, code, z.dtype.type(alpha), _chunks(*z2.shape))
    return y


def act_backward(dy, y, z, code, alpha=0.0, out=None):
    """dL/dz from dL/dy and the saved output y (or the input z where
    :func:`needs_input`); ``z`` may be None otherwise."""
    _check_code(code)
    dy = np.asarray(dy)
    g = np.empty_like(dy, order="C") if out is None else out
    if dy.size == 0:
        return g
    d2 = _as_rows(dy)
    y2 = _as_rows(y) if y is not None else d2
    z2 = _as_rows(z) if z is not None else d2
    _act_backward(d2, y2, z2, code, dy.dtype.type(alpha), g.reshape(d2.shape),
                  _chunks(*d2.shape))
    return g


# --------------------------------------------------------------- references
def _sigmoid_ref(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def _erfc_ref(x):
    return np.vectorize(math.erfc, otypes=[np.float64])(x).astype(x.dtype, copy=False)


def act_forward_ref(z, code, alpha=0.0, out=None):
    """NumPy reference of :func:`act_forward`."""
    z = np.asarray(z)
    a = z.dtype.type(alpha)
    if code == IDENTITY:
        y = z.copy()
    elif code == RELU:
        y = np.maximum(z, 0)
    elif code == LEAKY_RELU:
        y = np.where(z > 0, z, z * a)
    elif code == ELU:
        y = np.where(z > 0, z, np.expm1(np.minimum(z, 0)) * a)
    elif code == GELU:
        y = z * (0.5 * _erfc_ref(-z * z.dtype.type(_SQRT_HALF)))
    elif code == GELU_TANH:
        y = 0.5 * z * (1.0 + np.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z ** 3)))
    elif code == SILU:
        y = z * _sigmoid_ref(z)
    elif code == SIGMOID:
        y = _sigmoid_ref(z)
    elif code == TANH:
        y = np.tanh(z)
    else:
        _check_code(code)
    y = y.astype(z.dtype, copy=False)
    if out is not None:
        out[...] = y
        return out
    return y


def act_backward_ref(dy, y, z, code, alpha=0.0, out=None):
    """NumPy reference of :func:`act_backward`."""
    dy = np.asarray(dy)
    a = dy.dtype.type(alpha)
    if code == IDENTITY:
        g = dy.copy()
    elif code == RELU:
        g = dy * (y > 0)
    elif code == LEAKY_RELU:
        g = np.where(y > 0, dy, dy * a)
    elif code == ELU:
        g = np.where(y > 0, dy, dy * (y + a))
    elif code == SIGMOID:
        g = dy * y * (1 - y)
    elif code == TANH:
        g = dy * (1 - y * y)
    elif code == GELU:
        cdf = 0.5 * _erfc_ref(-z * z.dtype.type(_SQRT_HALF))
        g = dy * (cdf + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z))
    elif code == GELU_TANH:
        t = np.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z ** 3))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * z * z)
        g = dy * (0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du)
    elif code == SILU:
        s = _sigmoid_ref(z)
        g = dy * s * (1 + z * (1 - s))
    else:
        _check_code(code)
    g = g.astype(dy.dtype, copy=False)
    if out is not None:
        out[...] = g
        return out
    return g


if not NUMBA_ENABLED:
    act_forward, act_backward = act_forward_ref, act_backward_ref
