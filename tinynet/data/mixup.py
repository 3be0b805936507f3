r"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization").

Train on convex combinations of pairs of samples and of their targets. For
:math:`n` samples :math:`x_i` with targets :math:`t_i` (class probabilities,
the one-hot row of a label), draw a partner permutation :math:`\pi` of
:math:`0..n-1` and one weight per sample :math:`\lambda_i \sim
\mathrm{Beta}(\alpha, \alpha)`, and return

.. math::

    \tilde x_i = \lambda_i x_i + (1 - \lambda_i)\, x_{\pi(i)}, \qquad
    \tilde t_i = \lambda_i t_i + (1 - \lambda_i)\, t_{\pi(i)}.

Shapes: ``x`` ``(n, ...)`` in, ``(n, ...)`` out; labels ``(n,)`` in,
probabilities ``(n, classes)`` out (rows sum to 1), which
:class:`tinynet.losses.CrossEntropy` takes as targets. Its cross-entropy is
then :math:`\lambda_i \ell(z_i, y_i) + (1 - \lambda_i)\,\ell(z_i,
y_{\pi(i)})`, the loss of the paper's reference code. Small :math:`\alpha`
puts :math:`\lambda` near 0 or 1 (little mixing); :math:`\alpha = 1` draws it
uniformly.

One :math:`\lambda` per sample, as timm's ``Mixup(mode="elem")``; the paper's
code and torchvision's ``MixUp`` draw one per batch. Mixing a whole training
set once per epoch and then shuffling it into batches (what
:func:`tinynet.mtl.experiments.run` does with ``mixup=``) gives each sample a
fresh partner and weight every epoch.

For multi-task targets pass ``y`` as ``{task: labels}`` and ``n_classes`` as
``{task: classes}`` (or one int for all): every task's targets are mixed with
the same :math:`\pi` and :math:`\lambda`, as the inputs are.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_float_array, check_finite, check_labels, check_positive_int, check_seed
from ..layers._checks import check_real

__all__ = ["mixup"]


def _generator(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed, "mixup"))


def _probabilities(labels, n_classes, n: int, dtype, what: str) -> np.ndarray:
    """One-hot rows of ``labels`` (missing-label markers such as -1 are refused:
    a mixed target has no way to say "half missing")."""
    n_classes = check_positive_int(n_classes, "mixup", f"n_classes{what}")
    labels = check_labels(labels, n_classes, n, f"mixup (y{what})")
    out = np.zeros((n, n_classes), dtype=dtype)
    out[np.arange(n), labels] = 1
    return out


def mixup(x, y, alpha: float, n_classes, seed=None):
    r"""Mix the samples of ``x`` and their targets in pairs (see the module).

    Parameters
    ----------
    x : float array of shape (n, ...)
        Inputs; the mixed ones keep its shape and floating dtype.
    y : int array of shape (n,), or dict of them
        Class labels in ``[0, n_classes)``; ``{task: labels}`` for a
        multi-task model.
    alpha : float > 0
        The parameter of :math:`\mathrm{Beta}(\alpha, \alpha)`.
    n_classes : int, or dict of ints
        The classes of the labels (a dict: per task, keys those of ``y``).
    seed : None, int or numpy.random.Generator
        The draws of :math:`\pi` and :math:`\lambda`.

    Returns
    -------
    (x_mixed, y_mixed)
        ``y_mixed`` probabilities of shape ``(n, classes)`` in ``x``'s dtype
        (a dict of them for dict ``y``).
    """
    x = as_float_array(x, "mixup", "x", min_ndim=1)
    if x.shape[0] == 0:
        raise ValueError(f"mixup expected x of shape (n_samples, ...) with at least one "
                         f"sample, received shape {x.shape}")
    check_finite(x, "mixup", "x")
    # the Beta distribution's two parameters: positive and finite
    alpha = check_real(alpha, "mixup", "alpha", low=0.0, low_open=True, high_open=True)
    n = x.shape[0]
    if isinstance(y, dict):
        if not y:
            raise ValueError("mixup expected y as labels or a non-empty {task: labels} dict, "
                             "received an empty dict")
        if isinstance(n_classes, dict):
            if set(n_classes) != set(y):
                raise ValueError(f"mixup expected n_classes for the tasks of y "
                                 f"{sorted(map(str, y))}, received "
                                 f"{sorted(map(str, n_classes))}")
            classes = n_classes
        else:
            classes = dict.fromkeys(y, n_classes)
        targets = {t: _probabilities(v, classes[t], n, x.dtype, f"[{t!r}]")
                   for t, v in y.items()}
    else:
        if isinstance(n_classes, dict):
            raise TypeError("mixup expected n_classes as an int for array labels (a dict "
                            "goes with {task: labels})")
        targets = {None: _probabilities(y, n_classes, n, x.dtype, "")}
    rng = _generator(seed)
    partner = rng.permutation(n)
    lam = rng.beta(alpha, alpha, size=n).astype(x.dtype)
    x_lam = lam.reshape((n,) + (1,) * (x.ndim - 1))
    x_mixed = x_lam * x + (1 - x_lam) * x[partner]
    mixed = {t: lam[:, None] * p + (1 - lam[:, None]) * p[partner] for t, p in targets.items()}
    return x_mixed, (mixed if isinstance(y, dict) else mixed[None])
