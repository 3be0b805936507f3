"""Matrix products for dense layers, without materialising transposes of inputs.

Three products carry a dense layer (x: (batch, in), W: (in, units),
g = dL/dz: (batch, units)):

* ``x @ W``     forward            -> :func:`matmul` (kernel ``gemm_nn``)
* ``x.T @ g``   weight gradient    -> :func:`matmul_tn`, may accumulate into dW
* ``g @ W.T``   input gradient     -> :func:`matmul_nt`

``gemm_nn`` splits the rows of C into one chunk per thread (no element is
written by two threads). Within a chunk it walks strips of ``_NC`` columns and
blocks of ``_KC`` k-steps (the block of B, 64 x 256 floats, stays in L1),
four rows of C and eight (then four, then one) k-steps at a time, and leaves
the contiguous inner loop over columns to LLVM's vectoriser (the loops run
over sliced rows from index 0, so LLVM can prove the indices non-negative;
a loop from an arbitrary start index does not vectorise). ``x.T`` is passed as an
F-ordered view: A is only read as scalars, so no copy is needed.

``g @ W.T`` in dot-product form (both rows contiguous along k) does not
vectorise well in Numba (about 25 GFLOP/s here); a blocked parallel transpose
of the (small) W into a scratch buffer followed by ``gemm_nn`` is faster.

Each product has its NumPy reference (``*_ref``) beside it. The public
wrappers run tinynet's GEMM or numpy's BLAS, whichever :mod:`.blas` chose
for this machine (``TINYNET_GEMM``); :func:`numba_matmul` always runs ours.
"""

from __future__ import annotations

import numpy as np

from .blas import blas_product, use_blas
from .checks import check_disjoint, check_matrix, check_out, checked
from .config import NUMBA_ENABLED, njit, num_threads, prange

__all__ = ["gemm_nn", "transpose_into", "matmul", "matmul_tn", "matmul_nt", "numba_matmul",
           "matmul_ref", "matmul_tn_ref", "matmul_nt_ref", "row_chunks"]

# Column strip and k-block: _KC * _NC * 4 bytes = 64 KB in float32 (tuned here:
# 256 x 64 beat 128 x 64 and 64 x 128 by 10-20 %).
_NC = 256
_KC = 64

#: Products smaller than this many multiply-adds run on one thread.
PARALLEL_MIN_MACS = 1 << 20


def row_chunks(n_rows: int, n_threads: int | None = None, multiple: int = 4) -> int:
    """Number of row chunks for ``n_rows`` rows: at most one per thread and
    each at least ``multiple`` rows (splitting tiny work costs more than it saves)."""
    if n_threads is None:
        n_threads = num_threads()
    return max(1, min(n_threads, n_rows // max(multiple, 1)))


def _chunks_for(n_rows: int, work_per_row: int) -> int:
    """Row chunks for a product of n_rows rows: one below ~1M multiply-adds
    (~20 µs), where waking a second thread -- and, on a busy machine, waiting
    for it to be scheduled -- costs more than it saves."""
    return row_chunks(n_rows) if n_rows * work_per_row >= PARALLEL_MIN_MACS else 1


@njit
def _nn_block(a, b, c, r0, r1, j0, j1):
    """c[r0:r1, j0:j1] += a[r0:r1] @ b[:, j0:j1] (one column strip)."""
    K = a.shape[1]
    nj = j1 - j0
    for k0 in range(0, K, _KC):
        k1 = min(k0 + _KC, K)
        i = r0
        while i + 4 <= r1:
            c0 = c[i, j0:j1]
            c1 = c[i + 1, j0:j1]
            c2 = c[i + 2, j0:j1]
            c3 = c[i + 3, j0:j1]
            k = k0
            while k + 8 <= k1:  # 4 rows x 8 k-steps: 32 FMAs per 4 stores of C
                r0_ = a[i, k:k + 8]
                r1_ = a[i + 1, k:k + 8]
                r2_ = a[i + 2, k:k + 8]
                r3_ = a[i + 3, k:k + 8]
                a00 = r0_[0]; a01 = r0_[1]; a02 = r0_[2]; a03 = r0_[3]  # noqa: E702
                a04 = r0_[4]; a05 = r0_[5]; a06 = r0_[6]; a07 = r0_[7]  # noqa: E702
                a10 = r1_[0]; a11 = r1_[1]; a12 = r1_[2]; a13 = r1_[3]  # noqa: E702
                a14 = r1_[4]; a15 = r1_[5]; a16 = r1_[6]; a17 = r1_[7]  # noqa: E702
                a20 = r2_[0]; a21 = r2_[1]; a22 = r2_[2]; a23 = r2_[3]  # noqa: E702
                a24 = r2_[4]; a25 = r2_[5]; a26 = r2_[6]; a27 = r2_[7]  # noqa: E702
                a30 = r3_[0]; a31 = r3_[1]; a32 = r3_[2]; a33 = r3_[3]  # noqa: E702
                a34 = r3_[4]; a35 = r3_[5]; a36 = r3_[6]; a37 = r3_[7]  # noqa: E702
                b0 = b[k, j0:j1]
                b1 = b[k + 1, j0:j1]
                b2 = b[k + 2, j0:j1]
                b3 = b[k + 3, j0:j1]
                b4 = b[k + 4, j0:j1]
                b5 = b[k + 5, j0:j1]
                b6 = b[k + 6, j0:j1]
                b7 = b[k + 7, j0:j1]
                for j in range(nj):
                    x0 = b0[j]; x1 = b1[j]; x2 = b2[j]; x3 = b3[j]  # noqa: E702
                    x4 = b4[j]; x5 = b5[j]; x6 = b6[j]; x7 = b7[j]  # noqa: E702
                    c0[j] += (a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                              + a04 * x4 + a05 * x5 + a06 * x6 + a07 * x7)
                    c1[j] += (a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                              + a14 * x4 + a15 * x5 + a16 * x6 + a17 * x7)
                    c2[j] += (a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                              + a24 * x4 + a25 * x5 + a26 * x6 + a27 * x7)
                    c3[j] += (a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
                              + a34 * x4 + a35 * x5 + a36 * x6 + a37 * x7)
                k += 8
            while k + 4 <= k1:
                a00 = a[i, k]; a01 = a[i, k + 1]; a02 = a[i, k + 2]; a03 = a[i, k + 3]  # noqa: E702
                a10 = a[i + 1, k]; a11 = a[i + 1, k + 1]; a12 = a[i + 1, k + 2]; a13 = a[i + 1, k + 3]  # noqa: E501,E702
                a20 = a[i + 2, k]; a21 = a[i + 2, k + 1]; a22 = a[i + 2, k + 2]; a23 = a[i + 2, k + 3]  # noqa: E501,E702
                a30 = a[i + 3, k]; a31 = a[i + 3, k + 1]; a32 = a[i + 3, k + 2]; a33 = a[i + 3, k + 3]  # noqa: E501,E702
                b0 = b[k, j0:j1]
                b1 = b[k + 1, j0:j1]
                b2 = b[k + 2, j0:j1]
                b3 = b[k + 3, j0:j1]
                for j in range(nj):
                    bj0 = b0[j]; bj1 = b1[j]; bj2 = b2[j]; bj3 = b3[j]  # noqa: E702
                    c0[j] += a00 * bj0 + a01 * bj1 + a02 * bj2 + a03 * bj3
                    c1[j] += a10 * bj0 + a11 * bj1 + a12 * bj2 + a13 * bj3
                    c2[j] += a20 * bj0 + a21 * bj1 + a22 * bj2 + a23 * bj3
                    c3[j] += a30 * bj0 + a31 * bj1 + a32 * bj2 + a33 * bj3
                k += 4
            while k < k1:
                a0 = a[i, k]; a1 = a[i + 1, k]; a2 = a[i + 2, k]; a3 = a[i + 3, k]  # noqa: E702
                bk = b[k, j0:j1]
                for j in range(nj):
                    bj = bk[j]
                    c0[j] += a0 * bj
                    c1[j] += a1 * bj
                    c2[j] += a2 * bj
                    c3[j] += a3 * bj
                k += 1
            i += 4
        while i < r1:
            ci = c[i, j0:j1]
            for k in range(k0, k1):
                aik = a[i, k]
                bk = b[k, j0:j1]
                for j in range(nj):
                    ci[j] += aik * bk[j]
            i += 1


@njit
def _nn_rows(a, b, c, r0, r1, accumulate):
    """c[r0:r1] (+)= a[r0:r1] @ b for one thread's rows."""
    N = b.shape[1]
    if not accumulate:
        c[r0:r1] = 0
    for j0 in range(0, N, _NC):
        _nn_block(a, b, c, r0, r1, j0, min(j0 + _NC, N))


@njit(parallel=True)
def gemm_nn(a, b, c, accumulate, n_chunks):
    """c (+)= a @ b.

    a : (M, K), C- or F-ordered (an F-ordered ``x.T`` needs no copy)
    b : (K, N) C-ordered;  c : (M, N) C-ordered, written (or added to when
    ``accumulate``); rows split into ``n_chunks`` parallel chunks.
    """
    M = a.shape[0]
    for t in prange(n_chunks):
        _nn_rows(a, b, c, (M * t) // n_chunks, (M * (t + 1)) // n_chunks, accumulate)


_TB = 32  # transpose tile


@njit(parallel=True)
def transpose_into(src, dst, n_chunks):
    """dst[:] = src.T in 32 x 32 tiles; groups of tile columns split over chunks."""
    R, C = src.shape
    n_tiles = (C + _TB - 1) // _TB
    for t in prange(n_chunks):
        for tile in range((n_tiles * t) // n_chunks, (n_tiles * (t + 1)) // n_chunks):
            j0 = tile * _TB
            j1 = min(j0 + _TB, C)
            for i0 in range(0, R, _TB):
                i1 = min(i0 + _TB, R)
                for j in range(j0, j1):
                    for i in range(i0, i1):
                        dst[j, i] = src[i, j]


# ------------------------------------------------------------------ checks
def _product_check(who: str, a_inner: int, b_inner: int):
    """The check function of the product ``who`` (and of its reference: one
    check serves both, :func:`.checks.checked`), whose a and b are summed over
    their axes ``a_inner`` and ``b_inner`` (the other axes give C's shape).

    a and b: 2-D float32 or float64 arrays of one dtype, whose inner
    dimensions agree (:func:`.checks.check_matrix`); ``out``: C-contiguous,
    writable, of C's shape and a's dtype, sharing no memory with a or b,
    which the GEMM reads while it writes C (:func:`.checks.check_out`);
    ``scratch`` (``matmul_nt``'s buffer for ``b.T``, when given): of b.T's
    shape and b's dtype, C-contiguous, writable, and sharing no memory with
    a, b or out -- the transpose writes it while it reads b (and over a,
    which the GEMM reads next), the GEMM then writes C while it reads it
    (unchecked before: ``scratch=b`` returned garbage, a read-only one
    failed to compile, and one of another shape or dtype was silently
    replaced by a new array, so that a caller who meant to reuse a buffer
    allocated one every call without knowing; no caller relied on that).
    NumPy's ``@`` in the references copies (and has no scratch), so they
    would be right there; these are refused all the same, with the same
    words, so that a call fails alike on either backend (before, a
    reference's ``out`` of another shape or dtype failed with NumPy's own
    message, or was cast)."""
    def check(a, b, out=None, accumulate=False, scratch=None):
        check_matrix(a, who, "a")
        check_matrix(b, who, "b")
        if a.dtype != b.dtype:
            raise TypeError(f"{who} expected a and b of one dtype, received {a.dtype} and "
                            f"{b.dtype}")
        if a.shape[a_inner] != b.shape[b_inner]:
            raise ValueError(f"{who}: inner dimensions differ, received a {a.shape} and b "
                             f"{b.shape}")
        if out is not None:
            check_out(out, (a.shape[1 - a_inner], b.shape[1 - b_inner]), a.dtype, who,
                      reads={"a": a, "b": b})
        if scratch is not None:  # receives b.T
            check_out(scratch, b.shape[::-1], b.dtype, who, "scratch", reads={"a": a, "b": b})
            check_disjoint(who, {"out": out}, {"scratch": scratch})
    check.__name__ = f"_check_{who}"
    return check


_check_matmul = _product_check("matmul", 1, 0)        # a (M, K) @ b (K, N)
_check_matmul_tn = _product_check("matmul_tn", 0, 0)  # a (K, M).T @ b (K, N)
_check_matmul_nt = _product_check("matmul_nt", 1, 1)  # a (M, K) @ b (N, K).T


# ------------------------------------------------------------------ wrappers
# The public products check their arguments (the checks above: shapes,
# dtypes and two np.may_share_memory a call); their ``.trusted`` builds do
# not, for callers that made or checked the arrays: dense_backward, which
# checked them on its own public path, and the layers.

def _out(out, shape, dtype):
    return np.empty(shape, dtype) if out is None else out


def _c_or_f(a):
    return a if (a.flags.c_contiguous or a.flags.f_contiguous) else np.ascontiguousarray(a)


@checked(_check_matmul)
def matmul(a, b, out=None, accumulate=False):
    """``a @ b`` (written into, or with ``accumulate`` added to, ``out``).

    Parameters
    ----------
    a : ndarray of shape (M, K);  b : ndarray of shape (K, N)
    out : ndarray of shape (M, N), optional

    Returns
    -------
    ndarray of shape (M, N)

    Checks its arguments (``.trusted`` does not: see :mod:`.checks`).
    """
    c = _out(out, (a.shape[0], b.shape[1]), a.dtype)
    if c.size == 0 or a.shape[1] == 0:
        if not accumulate:
            c.fill(0)
        return c
    if use_blas():
        return blas_product(a, b, c, accumulate)
    return numba_matmul(a, b, c, accumulate)


def numba_matmul(a, b, c, accumulate=False):
    """``c = a @ b`` (or ``c += a @ b``) on tinynet's GEMM, whatever the engine
    setting (non-empty, checked arrays)."""
    gemm_nn(_c_or_f(a), np.ascontiguousarray(b), c, accumulate,
            _chunks_for(a.shape[0], a.shape[1] * b.shape[1]))
    return c


@checked(_check_matmul_tn)
def matmul_tn(a, b, out=None, accumulate=False):
    """``a.T @ b`` without copying ``a.T``: a (K, M), b (K, N) -> (M, N).

    With ``accumulate=True`` the product is added to ``out`` (dW += x.T @ g).
    Checks its arguments (``.trusted`` does not).
    """
    c = _out(out, (a.shape[1], b.shape[1]), a.dtype)
    if c.size == 0 or a.shape[0] == 0:
        if not accumulate:
            c.fill(0)
        return c
    if use_blas():
        return blas_product(a.T, b, c, accumulate)
    gemm_nn(_c_or_f(a).T, np.ascontiguousarray(b), c, accumulate,
            _chunks_for(a.shape[1], a.shape[0] * b.shape[1]))
    return c


@checked(_check_matmul_nt)
def matmul_nt(a, b, out=None, accumulate=False, scratch=None):
    """``a @ b.T``: a (M, K), b (N, K) -> (M, N), via a tiled transpose of ``b``
    into ``scratch`` (shape (K, N) and b's dtype, C-ordered; allocated when
    not given, refused when of another shape or dtype). Checks its arguments
    (``.trusted`` does not)."""
    c = _out(out, (a.shape[0], b.shape[0]), a.dtype)
    if c.size == 0 or a.shape[1] == 0:
        if not accumulate:
            c.fill(0)
        return c
    if use_blas():
        return blas_product(a, b.T, c, accumulate)
    if scratch is None:  # else checked: b.T's shape and b's dtype
        scratch = np.empty((b.shape[1], b.shape[0]), b.dtype)
    n_tiles = (b.shape[1] + _TB - 1) // _TB
    transpose_into(b, scratch, max(1, min(num_threads(), n_tiles)) if b.size >= (1 << 18) else 1)
    gemm_nn(_c_or_f(a), scratch, c, accumulate, _chunks_for(a.shape[0], a.shape[1] * b.shape[0]))
    return c


# ---------------------------------------------------------------- references
def _ref(product, out, accumulate):
    """``product`` written into (or added to) ``out``."""
    if out is None:
        return product
    if accumulate:
        out += product
    else:
        out[...] = product
    return out


@checked(_check_matmul)
def matmul_ref(a, b, out=None, accumulate=False):
    """NumPy reference of :func:`matmul` (checks alike)."""
    return _ref(a @ b, out, accumulate)


@checked(_check_matmul_tn)
def matmul_tn_ref(a, b, out=None, accumulate=False):
    """NumPy reference of :func:`matmul_tn` (checks alike)."""
    return _ref(a.T @ b, out, accumulate)


@checked(_check_matmul_nt)
def matmul_nt_ref(a, b, out=None, accumulate=False, scratch=None):
    """NumPy reference of :func:`matmul_nt` (checks alike; ``scratch`` unused)."""
    return _ref(a @ b.T, out, accumulate)


if not NUMBA_ENABLED:  # pure-Python loops would be hopeless: use the references
    matmul, matmul_tn, matmul_nt = matmul_ref, matmul_tn_ref, matmul_nt_ref
