r"""Fused softmax cross-entropy: loss and gradient in one pass over the logits.

For logits :math:`z` of shape (batch, C), integer labels :math:`y` and label
smoothing :math:`\varepsilon` (target :math:`t' = (1-\varepsilon)\,\mathrm{onehot}(y)
+ \varepsilon/C`):

.. math::
    \ell_i = \log\sum_c e^{z_{ic}} - \sum_c t'_{ic} z_{ic}, \qquad
    \frac{\partial \ell_i}{\partial z_{ic}} = \mathrm{softmax}(z_i)_c - t'_{ic}

Without smoothing only :math:`z_{iy_i}` enters the second term, so a logit of
:math:`-\infty` (a masked class) gives a finite loss, as in PyTorch.

:func:`softmax_cross_entropy` returns :math:`\sum_i \ell_i` (in float64) and
writes ``scale`` times the gradient; the log-sum-exp subtracts the row
maximum, so any finite logits are safe. Rows are split over threads; the
loss is summed per block of :data:`.config.REDUCE_ROWS` rows and the blocks'
sums added in order, so that it does not depend on the thread count (the
loss weightings of :mod:`tinynet.mtl` train on it).
"""

from __future__ import annotations

import math

import numpy as np

from .checks import check_disjoint, check_float_array, check_indices, check_writable, checked
from .config import NUMBA_ENABLED, REDUCE_ROWS, njit, num_threads, prange, reduce_blocks

__all__ = ["softmax_cross_entropy", "softmax_cross_entropy_ref"]


@njit
def _ce_rows(z, labels, smoothing, grad, scale, r0, r1):
    C = z.shape[1]
    on = 1.0 - smoothing
    off = smoothing / C
    total = 0.0
    for i in range(r0, r1):
        row = z[i]
        g = grad[i]
        m = row[0]
        for c in range(1, C):
            m = max(m, row[c])
        s = 0.0
        zsum = 0.0
        for c in range(C):
            e = math.exp(row[c] - m)
            g[c] = e
            s += e
            zsum += row[c]
        lab = labels[i]
        total += m + math.log(s) - on * row[lab]
        if smoothing != 0.0:  # without it, a -inf logit must not make 0 * -inf
            total -= off * zsum
        inv = scale / s
        for c in range(C):
            g[c] = g[c] * inv - off * scale
        g[lab] -= on * scale
    return total


@njit(parallel=True)
def _softmax_ce(z, labels, smoothing, grad, scale, partials, n_chunks):
    M = z.shape[0]
    n_blocks = partials.shape[0]
    for t in prange(n_chunks):
        for k in range((n_blocks * t) // n_chunks, (n_blocks * (t + 1)) // n_chunks):
            partials[k] = _ce_rows(z, labels, smoothing, grad, scale, k * REDUCE_ROWS,
                                   min(M, (k + 1) * REDUCE_ROWS))


def _check_call(logits, labels, label_smoothing=0.0, scale=1.0, grad_out=None):
    """The public functions' checks: 2-D float logits, one integer label per
    row in ``[0, C)`` (the kernel reads and writes the column a label names,
    unchecked), and a ``grad_out`` of the logits' shape and dtype that shares
    no memory with them (:func:`.checks.check_disjoint`: the kernel writes
    the exponentials into ``grad_out`` before it sums the logits and reads
    the labelled one; no caller of tinynet passes the logits themselves)."""
    who = "softmax_cross_entropy"
    z = check_float_array(logits, who, "logits")
    if z.ndim != 2:
        raise ValueError(f"{who} expected logits of shape (batch, classes), received {z.shape}")
    labels = np.asarray(labels)
    if labels.shape != (z.shape[0],):
        raise ValueError(f"{who} expected labels of shape ({z.shape[0]},) (one per row of "
                         f"the logits), received {labels.shape}")
    check_indices(labels, z.shape[1], who, f"labels (classes of {z.shape[1]} logits)")
    if grad_out is not None and (not isinstance(grad_out, np.ndarray)
                                 or grad_out.shape != z.shape or grad_out.dtype != z.dtype):
        raise ValueError(f"{who} expected grad_out as an array of shape {z.shape} and dtype "
                         f"{z.dtype} (the logits'), received "
                         f"{getattr(grad_out, 'shape', type(grad_out).__name__)} of dtype "
                         f"{getattr(grad_out, 'dtype', None)}")
    check_writable(who, grad_out=grad_out)
    check_disjoint(who, {"grad_out": grad_out}, {"logits": z})


@checked(_check_call)
def softmax_cross_entropy(logits, labels, label_smoothing=0.0, scale=1.0, grad_out=None):
    """Summed softmax cross-entropy and ``scale`` times its gradient.

    Parameters
    ----------
    logits : ndarray of shape (batch, C), float32 or float64
    labels : ndarray of shape (batch,), integers in [0, C)
    label_smoothing : float
    scale : float, multiplies the gradient (``1/batch`` for a mean)
    grad_out : ndarray like logits, optional

    Checks the logits, labels and ``grad_out`` (``.trusted`` does not: the
    loss checks the labels itself; see :mod:`.checks`).

    Returns
    -------
    loss_sum : float
    grad : ndarray of shape (batch, C)
    """
    z = np.ascontiguousarray(logits)
    grad = np.empty_like(z) if grad_out is None else grad_out
    if z.shape[0] == 0:
        return 0.0, grad
    n_blocks = reduce_blocks(z.shape[0])
    n_chunks = max(1, min(num_threads(), z.shape[0] // 64)) if z.size >= (1 << 16) else 1
    partials = np.zeros(n_blocks)
    _softmax_ce(z, np.ascontiguousarray(labels, dtype=np.int64), float(label_smoothing),
                grad, z.dtype.type(scale), partials, n_chunks)
    return float(partials.sum()), grad


@checked(_check_call)
def softmax_cross_entropy_ref(logits, labels, label_smoothing=0.0, scale=1.0, grad_out=None):
    """NumPy reference of :func:`softmax_cross_entropy` (which checks as it does).

    As in the kernel, the exponentials are taken in the logits' dtype and
    summed in float64, and the loss is formed in float64: in float32,
    ``m + log(s)`` rounds to the spacing of ``m`` (0.0625 at ``m = 1e6``, 1
    at ``1e7``), which would swallow a loss of 0.31 (logits ``[1e6, 1e6 -
    1]``, label 0) or the whole of it, where the kernel gives 0.3132617."""
    z = np.asarray(logits)
    n, C = z.shape
    m = z.max(axis=1, keepdims=True) if n else np.zeros((0, 1), z.dtype)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True, dtype=np.float64)
    target = np.full(z.shape, label_smoothing / C, dtype=np.float64)
    target[np.arange(n), labels] += 1.0 - label_smoothing
    picked = z[np.arange(n), labels].astype(np.float64)
    loss = m[:, 0] + np.log(s[:, 0]) - (1.0 - label_smoothing) * picked
    if label_smoothing:  # only then do the other logits enter (a -inf one gives inf)
        loss = loss - label_smoothing / C * z.sum(axis=1, dtype=np.float64)
    loss = float(np.sum(loss))
    grad = ((e / s - target) * scale).astype(z.dtype)
    if grad_out is not None:
        grad_out[...] = grad
        grad = grad_out
    return loss, grad


if not NUMBA_ENABLED:
    softmax_cross_entropy = softmax_cross_entropy_ref
