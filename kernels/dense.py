r"""Fused kernels of a dense layer.

Forward (:func:`dense_forward`): :math:`z = xW + b`, :math:`y = f(z)` in one
parallel pass -- the GEMM of :mod:`.gemm` followed, on each thread's rows
while they are still in cache, by the bias add and the activation (the
*epilogue*); ``z`` is kept only when the activation's backward needs it.

Backward (:func:`dense_backward`), given :math:`\delta = \partial L/\partial y`:

.. math::
    g = \delta \odot f'(z), \quad
    \partial W \mathrel{+}= x^\top g, \quad
    \partial b \mathrel{+}= \textstyle\sum_{\text{rows}} g, \quad
    \partial x = g W^\top

:math:`g` and the bias gradient come from one pass (:func:`act_grad_bias`):
each block of :data:`.config.REDUCE_ROWS` rows is summed into its own row of
a partials array, which is reduced in block order after the parallel loop
(never ``+=`` into one shared array inside ``prange``; and blocks, not
threads, so that the sum does not depend on the thread count). ``dx`` is
skipped when the caller does not need it (the first layer of a model).

When :mod:`.blas` runs the products on numpy's BLAS, the forward is
``np.matmul`` followed by the same epilogue as one parallel pass over the
output rows.

The NumPy references (``*_ref``) do the same maths with ``@``.
"""

from __future__ import annotations

import numpy as np

from .checks import (check_apart, check_disjoint, check_float_array, check_matrix, check_out,
                     check_shapes, check_writable, checked)
from .activations import (IDENTITY, _check_code, act_backward_ref, check_alpha, act_forward_ref,
                          act_grad_rows, bias_act_rows, check_saved, needs_input)
from .config import NUMBA_ENABLED, REDUCE_ROWS, njit, num_threads, prange, reduce_blocks
from .blas import use_blas
from .gemm import PARALLEL_MIN_MACS, _nn_rows, matmul_nt, matmul_tn, row_chunks

__all__ = ["dense_forward", "dense_backward", "bias_grad", "act_grad_bias",
           "dense_forward_ref", "dense_backward_ref", "bias_grad_ref", "act_grad_bias_ref"]


@njit(parallel=True)
def _dense_forward(x, w, b, has_bias, y, z, store_z, code, alpha, n_chunks):
    M = x.shape[0]
    for t in prange(n_chunks):
        r0 = (M * t) // n_chunks
        r1 = (M * (t + 1)) // n_chunks
        _nn_rows(x, w, y, r0, r1, False)
        bias_act_rows(y, b, has_bias, z, store_z, code, alpha, r0, r1)


@njit(parallel=True)
def _epilogue(y, b, has_bias, z, store_z, code, alpha, n_chunks):
    """In place on y = x @ W computed by BLAS: the bias add and activation."""
    M = y.shape[0]
    for t in prange(n_chunks):
        bias_act_rows(y, b, has_bias, z, store_z, code, alpha, (M * t) // n_chunks,
                      (M * (t + 1)) // n_chunks)


@njit(parallel=True)
def _act_grad_bias(dy, y, z, code, alpha, g, partials, want_bias, n_chunks):
    """g for every row; with ``want_bias``, ``partials[k]`` = the sum of rows
    ``k R .. (k+1) R - 1`` of g (R = REDUCE_ROWS); the blocks split over chunks."""
    M, N = dy.shape
    n_blocks = partials.shape[0]
    for t in prange(n_chunks):
        for k in range((n_blocks * t) // n_chunks, (n_blocks * (t + 1)) // n_chunks):
            r0 = k * REDUCE_ROWS
            r1 = min(M, r0 + REDUCE_ROWS)
            if code != 0:
                act_grad_rows(dy, y, z, code, alpha, g, r0, r1)
            if want_bias:
                src = g if code != 0 else dy
                part = partials[k]
                part[:] = 0
                for i in range(r0, r1):
                    row = src[i]
                    for j in range(N):
                        part[j] += row[j]


@njit
def _reduce_partials(partials, out):
    for k in range(partials.shape[0]):
        p = partials[k]
        for j in range(out.shape[0]):
            out[j] += p[j]


def _threads_for(n_rows, n_cols):
    return row_chunks(n_rows) if n_rows * n_cols >= (1 << 18) else 1


def _check_forward(x, w, b, code, alpha=0.0, out=None, z_out=None):
    """Checks of :func:`dense_forward` and its reference: a known activation
    code and alpha (:func:`.activations.check_alpha`), float x (batch, in)
    and w (in, units), w and b in x's dtype (the kernel computed in x's, the
    reference in NumPy's promotion of the three: float32 x and float64 w
    gave float32 on one backend, float64 on the other), b of (units,),
    writable ``out`` and ``z_out`` of (batch, units) that share no memory
    with x, w or b (:func:`.checks.check_disjoint`: the kernel zeroes rows
    of ``out`` before it reads those of x), nor with each other
    (:func:`.checks.check_apart`: the kernel writes z, then the activation
    over it into ``out``, so a ``z_out`` that is ``out`` came back holding
    y)."""
    _check_code(code)
    check_alpha(code, alpha, "dense_forward")
    x = check_float_array(x, "dense_forward", "x")
    if x.ndim != 2 or np.ndim(w) != 2 or np.shape(w)[0] != x.shape[1]:
        raise ValueError(f"dense_forward expected x (batch, in) and w (in, units), received "
                         f"{x.shape} and {np.shape(w)}")
    for name, a in (("w", w), ("b", b)):
        if a is not None and np.asarray(a).dtype != x.dtype:
            raise TypeError(f"dense_forward expected w and b of x's dtype {x.dtype}, received "
                            f"{name} of dtype {np.asarray(a).dtype}")
    M, N = x.shape[0], np.shape(w)[1]
    check_shapes("dense_forward", (N,), b=b)
    check_shapes("dense_forward", (M, N), out=out, z_out=z_out)
    check_writable("dense_forward", out=out, z_out=z_out)
    check_disjoint("dense_forward", {"out": out, "z_out": z_out}, {"x": x, "w": w, "b": b})
    check_apart("dense_forward", out=out, z_out=z_out)


def _g_written(code, g_out):
    """The ``g_out`` that :func:`act_grad_bias` writes: none for the identity,
    whose g is dy itself (a g_out given for it is left alone, so it is
    neither checked as an output nor for overlaps)."""
    return None if code == IDENTITY else g_out


def _check_grad_arrays(dy, y, z, code, alpha, g_out, db):
    """The checks of :func:`_check_act_grad_bias` other than the overlaps
    (:func:`_check_grad_disjoint`, which :func:`dense_backward` runs in its
    own name). ``g_out`` and ``db`` are checked as the other outputs are
    (:func:`.checks.check_out`: C-contiguous, writable, of dy's dtype and of
    its shape, (units,)): before, only their shapes and writability were,
    and a float64 g_out for a float32 dy failed in Numba with a TypingError
    ("Cannot unify array(float64...) and array(float32...)"), where the
    reference cast, and both backends took a db of another dtype (or an
    F-ordered g_out), unlike dw and dx_out."""
    _check_code(code)
    check_alpha(code, alpha, "act_grad_bias")
    check_saved(code, y, z, "act_grad_bias")
    dy = check_float_array(dy, "act_grad_bias", "dy")
    if dy.ndim != 2:
        raise ValueError(f"act_grad_bias expected dy of shape (batch, units), received "
                         f"{dy.shape}")
    check_shapes("act_grad_bias", dy.shape, y=y, z=z)
    for name, out, shape in (("g_out", _g_written(code, g_out), dy.shape),
                             ("db", db, dy.shape[1:])):
        if out is not None:
            check_out(out, shape, dy.dtype, "act_grad_bias", name)


def _check_grad_disjoint(who, dy, y, z, code, g_out, db):
    """The arrays :func:`act_grad_bias` writes, g_out (unless the identity's:
    g is dy itself) and db, share no memory with those it reads (dy, y, z),
    nor db with g_out (:func:`.checks.check_disjoint`): its rows of g are
    read from rows of dy (y, z) as they are written, so a g_out of dy's rows
    shifted by one returned garbage from the kernel, and db, added to after
    the sum of g, changed the g returned (dy, for the identity).

    One overlap is safe and allowed: ``g_out`` may be dy (or y, or z)
    itself, the same view (:func:`.checks.same_view`). Both backends read
    each element of dy, y and z once, before they write the same element of
    g -- the kernel element by element (:func:`.activations.act_grad_rows`,
    then the bias sum reads g), the reference array-wise into a new array it
    then copies -- and neither reads them again; :func:`dense_backward`
    reads only g afterwards. The gradient then lands in dy's buffer, bit for
    bit the one of a separate g_out, with no array of dy's size allocated."""
    written = _g_written(code, g_out)
    check_disjoint(who, {"g_out": written, "db": db}, {"dy": dy, "y": y, "z": z},
                   same_ok={"g_out": ("dy", "y", "z")})
    check_disjoint(who, {"db": db}, {"g_out": written})


def _check_act_grad_bias(dy, y, z, code, alpha=0.0, g_out=None, db=None):
    """Checks of :func:`act_grad_bias` and its reference: a known code and
    alpha, the saved array it reads, float dy (batch, units), y / z / a
    writable ``g_out`` of dy's shape, a writable ``db`` of (units,), and no
    output overlapping an input but ``g_out`` being dy, y or z itself
    (:func:`_check_grad_disjoint`)."""
    _check_grad_arrays(dy, y, z, code, alpha, g_out, db)
    _check_grad_disjoint("act_grad_bias", np.asarray(dy), y, z, code, g_out, db)


@checked(_check_forward)
def dense_forward(x, w, b, code, alpha=0.0, out=None, z_out=None):
    """Fused :math:`y = f(xW + b)`.

    Parameters
    ----------
    x : ndarray of shape (batch, in), C- or F-ordered
    w : ndarray of shape (in, units), C-ordered
    b : ndarray of shape (units,) or None
    code : int, activation code (:data:`.activations.ACT_CODES`)
    alpha : float, activation parameter (leaky_relu, elu)
    out : ndarray of shape (batch, units), optional
    z_out : ndarray of shape (batch, units), optional
        Receives the pre-activation when given (needed for gelu/silu backward).

    Returns
    -------
    y : ndarray of shape (batch, units)

    Checks its arguments (``.trusted`` does not: see :mod:`.checks`).
    """
    x = np.asarray(x)
    M, N = x.shape[0], w.shape[1]
    y = np.empty((M, N), x.dtype) if out is None else out
    if M == 0:
        return y
    if x.shape[1] == 0:  # empty inner dimension: z = b
        y[...] = 0
        x, w = np.zeros((M, 1), x.dtype), np.zeros((1, N), x.dtype)
    if not (x.flags.c_contiguous or x.flags.f_contiguous):
        x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    store_z = z_out is not None
    bias = np.empty(0, x.dtype) if b is None else b
    if use_blas():  # the product on BLAS, the epilogue here in one pass
        np.matmul(x, w, out=y)
        _epilogue(y, bias, b is not None, z_out if store_z else y, store_z, code,
                  x.dtype.type(alpha), _threads_for(M, N))
        return y
    _dense_forward(x, w, bias, b is not None, y,
                   z_out if store_z else y, store_z, code, x.dtype.type(alpha),
                   row_chunks(M) if M * N * x.shape[1] >= PARALLEL_MIN_MACS else 1)
    return y


@checked(_check_act_grad_bias)
def act_grad_bias(dy, y, z, code, alpha=0.0, g_out=None, db=None):
    """g = dL/dz from dy and the saved y (or z), and ``db += g.sum(0)`` when
    ``db`` is given, in one pass. For the identity, ``g`` is ``dy`` itself.
    Checks its arguments (``.trusted`` does not)."""
    dy = np.asarray(dy)
    M, N = dy.shape
    if code == IDENTITY:
        g = dy
    else:
        g = np.empty_like(dy) if g_out is None else g_out
    if M == 0:
        return g
    n_blocks = reduce_blocks(M)
    n_chunks = min(_threads_for(M, N), n_blocks)
    partials = np.empty((n_blocks, N if db is not None else 0), dy.dtype)
    # the kernel is typed for a writable g (it writes g unless the code is the
    # identity's, which Numba cannot tell when it compiles): the identity's g,
    # dy itself, read-only (a broadcast dy, a loss's cached array), failed with
    # a TypingError; it then receives an empty writable g, which it never reads
    g_kernel = (g if g.flags.writeable or code != IDENTITY
                else np.empty((0, N), dy.dtype))
    _act_grad_bias(dy, y if y is not None else dy, z if z is not None else dy, code,
                   dy.dtype.type(alpha), g_kernel, partials, db is not None, n_chunks)
    if db is not None:
        _reduce_partials(partials, db)
    return g


def bias_grad(g, db):
    """``db += g.sum(axis=0)`` with partial sums per block of rows."""
    act_grad_bias(g, None, None, IDENTITY, 0.0, None, db)
    return db


def _check_backward(x, w, dy, y, z, code, alpha, dw, db, need_dx=True, scratch=None,
                    g_out=None, dx_out=None):
    """Checks of :func:`dense_backward` and its reference: those of
    :func:`act_grad_bias` on the arrays it is given, then x (batch, in) and
    w (in, units) for dy (batch, units), in dy's dtype, and dw (and dx_out
    when given) as the arrays written: C-ordered, writable, w's (x's) shape
    and dtype. The kernel's products would refuse most of these with their
    own words, and the reference's ``@`` with NumPy's (or accept a w of the
    wrong rows, returning a dx not of x's shape): one check says it alike.

    The arrays written (dw, db, dx_out, g_out, and ``scratch``, which
    receives w.T for the product into dx) share no memory with those read
    (x, w, dy; g_out and db with y and z either), nor dw, dx_out and
    scratch with g_out, which holds the g the products read, nor dx_out with
    scratch (:func:`.checks.check_disjoint`): before, the kernel's inner
    products refused some with their own names (``matmul_tn expected out
    not to overlap a``), the reference none. ``g_out`` may be dy itself
    (:func:`_check_grad_disjoint`: computing g into dy's buffer is safe).
    Nor do the outputs overlap one another (:func:`.checks.check_apart`):
    db is written first, then dw, scratch and dx_out, and a later one over
    an earlier one overwrote it on both backends (a dx_out over dw, or a dw
    over db, returned wrong gradients). ``scratch`` is of shape (units, in)
    and dy's dtype, C-ordered and writable, as :func:`.gemm.matmul_nt`
    checks it.
    These checks cover the products' own, so the kernel runs their
    ``.trusted`` builds. dx_out and scratch are not written without
    ``need_dx``: they are not checked then."""
    who = "dense_backward"
    _check_grad_arrays(dy, y, z, code, alpha, g_out, db)
    dy = np.asarray(dy)
    check_matrix(x, who, "x")
    check_matrix(w, who, "w")
    if x.dtype != dy.dtype or w.dtype != dy.dtype:
        raise TypeError(f"{who} expected x and w of dy's dtype {dy.dtype}, received "
                        f"{x.dtype} and {w.dtype}")
    if x.shape[0] != dy.shape[0] or w.shape != (x.shape[1], dy.shape[1]):
        raise ValueError(f"{who} expected x (batch, in) and w (in, units) for dy of shape "
                         f"(batch, units) {dy.shape}, received {x.shape} and {w.shape}")
    check_out(dw, w.shape, dy.dtype, who, "dw")
    if not need_dx:
        dx_out = scratch = None  # not written
    for name, out, shape in (("dx_out", dx_out, x.shape), ("scratch", scratch, w.shape[::-1])):
        if out is not None:  # scratch receives w.T
            check_out(out, shape, dy.dtype, who, name)
    g_out = _g_written(code, g_out)
    _check_grad_disjoint(who, dy, y, z, code, g_out, db)
    check_disjoint(who, {"dw": dw, "db": db, "dx_out": dx_out, "g_out": g_out,
                         "scratch": scratch}, {"x": x, "w": w})
    check_disjoint(who, {"dw": dw, "dx_out": dx_out, "scratch": scratch},
                   {"dy": dy, "g_out": g_out})
    check_disjoint(who, {"dx_out": dx_out}, {"scratch": scratch})
    check_apart(who, dw=dw, db=db, dx_out=dx_out, scratch=scratch)


@checked(_check_backward)
def dense_backward(x, w, dy, y, z, code, alpha, dw, db, need_dx=True, scratch=None,
                   g_out=None, dx_out=None):
    """Backward of :func:`dense_forward`: adds to ``dw`` (and ``db`` unless
    None), returns dx (None when ``need_dx`` is False).

    ``y``/``z`` are the saved output / pre-activation (``z`` only where the
    activation needs it); ``scratch`` of shape (units, in) may be passed to
    reuse the buffer for the transpose of ``w``, ``g_out`` (dy's shape) and
    ``dx_out`` (x's shape, C-ordered) to receive g and dx instead of new arrays.
    Checks dy, y, z, g_out and db as :func:`act_grad_bias` does (``.trusted``
    does not).
    """
    dy = np.ascontiguousarray(dy)
    # trusted: checked above, as act_grad_bias and the products check
    g = act_grad_bias.trusted(dy, y, z, code, alpha, g_out, db)
    matmul_tn.trusted(x, g, out=dw, accumulate=True)
    if not need_dx:
        return None
    return matmul_nt.trusted(g, w, out=dx_out, scratch=scratch)


# --------------------------------------------------------------- references
@checked(_check_forward)
def dense_forward_ref(x, w, b, code, alpha=0.0, out=None, z_out=None):
    """NumPy reference of :func:`dense_forward` (checks alike)."""
    z = x @ w
    if b is not None:
        z += b
    if z_out is not None:
        z_out[...] = z
    # trusted: z is ours, out was checked above
    return act_forward_ref.trusted(z, code, alpha, out=out)


@checked(_check_act_grad_bias)
def act_grad_bias_ref(dy, y, z, code, alpha=0.0, g_out=None, db=None):
    """NumPy reference of :func:`act_grad_bias` (checks alike)."""
    # trusted: the same arguments, checked above
    g = dy if code == IDENTITY else act_backward_ref.trusted(dy, y, z, code, alpha, out=g_out)
    if db is not None:
        db += g.sum(axis=0)
    return g


def bias_grad_ref(g, db):
    """NumPy reference of :func:`bias_grad` (checks as it does, through
    :func:`act_grad_bias_ref`)."""
    act_grad_bias_ref(g, None, None, IDENTITY, 0.0, None, db)
    return db


@checked(_check_backward)
def dense_backward_ref(x, w, dy, y, z, code, alpha, dw, db, need_dx=True, scratch=None,
                       g_out=None, dx_out=None):
    """NumPy reference of :func:`dense_backward` (checks alike)."""
    g = act_grad_bias_ref.trusted(dy, y, z, code, alpha, g_out, db)  # checked above
    dw += x.T @ g
    if not need_dx:
        return None
    if dx_out is None:
        return g @ w.T
    np.matmul(g, w.T, out=dx_out)
    return dx_out


if not NUMBA_ENABLED:
    dense_forward, dense_backward = dense_forward_ref, dense_backward_ref
    act_grad_bias, bias_grad = act_grad_bias_ref, bias_grad_ref

_ = (needs_input, num_threads)  # re-exported helpers used by callers
