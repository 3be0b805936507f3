r"""Gradient clipping, with ``torch.nn.utils``' semantics.

:func:`clip_grad_norm` rescales all gradients together so that their global
norm is at most ``max_norm``:

.. math::
    \|g\| = \Big\| \big(\|g_1\|_p, \ldots, \|g_k\|_p\big) \Big\|_p, \qquad
    g_i \leftarrow g_i \cdot \min\Big(1, \frac{\text{max\_norm}}{\|g\| + 10^{-6}}\Big)

which keeps the direction of the update and bounds its size (useful against
exploding gradients). :func:`clip_grad_value` clips every element instead.

The norms :math:`\|g_i\|_p` and their total are taken in the gradients'
dtype, as PyTorch takes them (it stacks the :math:`\|g_i\|_p` and takes their
norm): float32 gradients whose norm (or, for :math:`p > 1`,
:math:`\sum |g|^p` on the way to it) exceeds float32's largest value, about
:math:`3.4 \cdot 10^{38}` (for :math:`p = 2` from :math:`|g| \approx
1.8 \cdot 10^{19}`), have the norm :math:`\infty` even when every element is
finite, and so does the total when every :math:`\|g_i\|_p` is finite but
their combination is not (two gradients of :math:`1.5 \cdot 10^{19}` at
:math:`p = 2`); they are scaled by :math:`\text{max\_norm}/\infty = 0`:
PyTorch 2.13's ``clip_grad_norm_`` gives the same :math:`\infty` and zeros,
and raises for ``error_if_nonfinite=True`` as this does. That overflow is expected, so it
does not warn. A gradient holding inf or NaN gives an infinite or NaN norm,
and the gradients become NaN (:math:`\infty \cdot 0`), as in PyTorch.

Both skip frozen parameters (``trainable=False``): tinynet still fills their
gradients (backpropagation passes through a frozen layer), where PyTorch
leaves ``.grad`` of a ``requires_grad=False`` parameter None and skips it,
so a frozen backbone's gradient neither counts in the norm nor is changed.
"""

from __future__ import annotations

import numpy as np

from ..layers._checks import check_real

__all__ = ["clip_grad_norm", "clip_grad_value"]


def _grads(params, who):
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    if hasattr(params, "grad"):
        params = [params]
    grads = []
    for p in params:
        if not hasattr(p, "grad"):
            raise TypeError(f"{who} expected Param objects, received {type(p).__name__}")
        if p.trainable:
            grads.append(p.grad)
    return grads


def _positive(value, who, what):
    """A real number in (0, inf]: PyTorch takes an infinite norm type or bound."""
    return check_real(value, who, what, low=0.0, low_open=True)


def clip_grad_norm(params, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Scale the gradients of ``params`` in place so their global norm is at most ``max_norm``.

    Parameters
    ----------
    params : Param, iterable of Param, or object with ``parameters()``
        Frozen parameters (``trainable=False``) are skipped, as PyTorch skips
        those without a gradient (see the module docstring).
    max_norm : float
    norm_type : float or ``inf``, default 2
    error_if_nonfinite : bool, default False
        Raise ``ValueError`` when the norm is NaN or infinite (otherwise the
        gradients become NaN, as in PyTorch).

    Returns
    -------
    float
        The global norm *before* clipping.
    """
    who = "clip_grad_norm"
    max_norm = _positive(max_norm, who, "max_norm")
    norm_type = _positive(norm_type, who, "norm_type")
    grads = _grads(params, who)
    if not grads:
        return 0.0
    t = np.result_type(*{g.dtype for g in grads}).type
    # in the gradients' dtype, as torch: a norm beyond its range is inf, and
    # that overflow is no accident to warn of (see the module docstring)
    with np.errstate(over="ignore"):
        if norm_type == np.inf:
            norms = [np.abs(g).max() if g.size else 0.0 for g in grads]
            total = float(np.max(norms))
        else:
            # torch stacks the per-gradient norms and takes their norm in
            # that dtype too: a total beyond its range is inf even where
            # every gradient's norm is finite
            norms = np.array([np.linalg.norm(g.ravel(), ord=norm_type) for g in grads], t)
            total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise ValueError(f"{who}: the total norm of order {norm_type} of the gradients is "
                         f"{total}, so they cannot be clipped")
    # torch's arithmetic, in the gradients' dtype: max_norm / (total + 1e-6),
    # which torch evaluates as (1 / (total + 1e-6)) * max_norm
    with np.errstate(over="ignore", divide="ignore"):
        coef = (t(1) / (t(total) + t(1e-6))) * t(max_norm)
    if not coef >= 1.0:  # also true for NaN, which then spreads as in torch
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN on purpose
            for g in grads:
                g *= g.dtype.type(coef)
    return total


def clip_grad_value(params, clip_value) -> None:
    """Clip every gradient element of the trainable ``params`` to
    ``[-clip_value, clip_value]`` in place (frozen ones are skipped)."""
    clip_value = _positive(clip_value, "clip_grad_value", "clip_value")
    for g in _grads(params, "clip_grad_value"):
        np.clip(g, -clip_value, clip_value, out=g)
