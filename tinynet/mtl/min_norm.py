r"""The min-norm point in the convex hull of task gradients (MGDA's inner problem).

Sener & Koltun (2018) solve

.. math::
    \min_{\alpha \in \Delta^{T-1}} \Big\lVert \sum_t \alpha_t g_t \Big\rVert^2
    = \min_{\alpha} \alpha^\top M \alpha, \qquad M_{st} = g_s^\top g_t,

over the simplex :math:`\Delta^{T-1}`. Everything here works on the Gram
matrix :math:`M`, so its cost after forming :math:`M` (:math:`O(T^2 P)` for
:math:`P` shared parameters) is independent of :math:`P`.

Two tasks have a closed form: the minimiser of
:math:`\lVert \gamma u + (1-\gamma) v\rVert^2` over :math:`\gamma\in[0,1]` is

.. math::
    \gamma^\star = \operatorname{clip}\Big(
        \frac{(v - u)^\top v}{\lVert u - v\rVert^2}, 0, 1\Big).

More tasks: Wolfe's minimum-norm-point algorithm (Wolfe 1976, "Finding the
nearest point in a polytope"), exact in a finite number of steps. It keeps a
*corral*: a set :math:`S` of affinely independent vertices and a point
:math:`x = \sum_{t\in S}\lambda_t g_t` with :math:`\lambda > 0`,
:math:`\sum\lambda = 1`.

* **Major cycle.** :math:`x` is optimal over the whole simplex when no vertex
  lies beyond it, :math:`\min_t g_t^\top x \ge x^\top x` (the KKT condition;
  :math:`g_t^\top x = (M\alpha)_t`). Otherwise the vertex
  :math:`\tau = \arg\min_t (M\alpha)_t` joins :math:`S` with weight 0.
* **Minor cycle.** The affine minimiser :math:`y = \sum_{t\in S}\mu_t g_t` of
  :math:`S` (the nearest point of its affine hull) solves
  :math:`\begin{bmatrix} M_S & \mathbf 1\\ \mathbf 1^\top & 0\end{bmatrix}
  \begin{bmatrix}\mu\\ \nu\end{bmatrix}
  = \begin{bmatrix}0\\ 1\end{bmatrix}`. If :math:`\mu > 0`, :math:`x \leftarrow y`
  and a major cycle follows. Otherwise :math:`x` moves towards :math:`y` as far as
  the simplex allows, :math:`\theta = \min_{\mu_t \le 0}
  \lambda_t/(\lambda_t - \mu_t)`, :math:`\lambda \leftarrow (1-\theta)\lambda +
  \theta\mu`, the vertex whose weight reaches zero leaves :math:`S`, and the
  minor cycle repeats.

Each cycle strictly lowers :math:`\lVert x\rVert` and no corral repeats, so it
ends; in practice after about :math:`T` major cycles of :math:`O(|S|^3)` each.
:math:`M` is scaled to a largest entry of 1 and the optimality test is
:math:`x^\top x - \min_t (M\alpha)_t \le 10^{-12}`.

Two slower solvers stay for reference and tests: enumerating the
:math:`2^T - 1` faces (``method="enumerate"``; on each face the optimum solves
the KKT system above, and the best non-negative solution is the global
minimum, the problem being convex), and Frank-Wolfe as in the paper
(``method="frank_wolfe"``; from :math:`\alpha`, the vertex :math:`e_\tau` is the
direction of steepest descent, and the exact line search between
:math:`u = \sum_t\alpha_t g_t` and :math:`v = g_\tau` is the two-point closed
form above, computed from :math:`u^\top u = \alpha^\top M\alpha`,
:math:`u^\top v = (M\alpha)_\tau` and :math:`v^\top v = M_{\tau\tau}`). Frank-Wolfe
converges only sublinearly: after 1,000 iterations it can stop 0.1-0.6 % of
the norm short of the minimum with a few dozen tasks.
"""

from __future__ import annotations

import numpy as np

from ..checks import is_real_dtype

__all__ = ["min_norm_2", "min_norm_weights", "min_norm_wolfe", "min_norm_enumerate",
           "min_norm_frank_wolfe"]


def min_norm_2(uu: float, uv: float, vv: float) -> float:
    """:math:`\\gamma^\\star` minimising :math:`\\lVert\\gamma u + (1-\\gamma)v\\rVert^2`,
    from the three inner products."""
    denom = uu - 2 * uv + vv  # ||u - v||^2
    if denom <= 1e-300:
        return 0.5
    return float(np.clip((vv - uv) / denom, 0.0, 1.0))


METHODS = ("auto", "wolfe", "enumerate", "frank_wolfe")


def min_norm_weights(gram: np.ndarray, method: str = "auto", max_iter: int = 1000,
                     tol: float = 1e-10) -> np.ndarray:
    r"""Simplex weights :math:`\alpha` minimising :math:`\alpha^\top M \alpha`.

    Parameters
    ----------
    gram : ndarray of shape (T, T)
        :math:`M = G G^\top` for the task gradients stacked as rows of ``G``.
        Real, finite, symmetric (to a relative :math:`10^{-8}`, rounding) and
        with a non-negative diagonal; anything else is a ``ValueError``.
    method : {"auto", "wolfe", "enumerate", "frank_wolfe"}
        ``"auto"``: the closed form for two tasks, Wolfe's algorithm beyond
        (both exact). ``"enumerate"`` (exponential in T) and ``"frank_wolfe"``
        (approximate) are there for comparison.
    max_iter, tol : Frank-Wolfe's iteration limit and step tolerance (L1).

    Returns
    -------
    alpha : ndarray of shape (T,), non-negative, summing to one
    """
    given = np.asarray(gram)
    if not is_real_dtype(given.dtype):
        raise ValueError(f"min_norm_weights expected a Gram matrix of real numbers, "
                         f"received {gram!r}"[:300])
    gram = given.astype(np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] == 0:
        raise ValueError(f"min_norm_weights expected a square (T, T) Gram matrix with "
                         f"T >= 1, received shape {gram.shape}")
    if not np.isfinite(gram).all():
        raise ValueError("min_norm_weights expected a finite Gram matrix, received one "
                         "with NaN or inf entries")
    asymmetry = float(np.abs(gram - gram.T).max())
    if asymmetry > 1e-8 * float(np.abs(gram).max()):
        raise ValueError(f"min_norm_weights expected a symmetric Gram matrix (M[s, t] = "
                         f"g_s . g_t), received one whose largest asymmetry |M - M.T| is "
                         f"{asymmetry:.3g}")
    diagonal = np.diag(gram)
    if (diagonal < 0).any():
        t = int(np.argmin(diagonal))
        raise ValueError(f"min_norm_weights expected a Gram matrix with a non-negative "
                         f"diagonal (M[t, t] = |g_t|^2), received {diagonal[t]} at {t}")
    n = gram.shape[0]
    if method not in METHODS:
        raise ValueError(f"min_norm_weights expected method in {METHODS}, "
                         f"received {method!r}")
    if n == 1:
        return np.ones(1)
    if n == 2 and method == "auto":
        gamma = min_norm_2(gram[0, 0], gram[0, 1], gram[1, 1])
        return np.array([gamma, 1.0 - gamma])
    if method == "enumerate":
        return min_norm_enumerate(gram)
    if method == "frank_wolfe":
        return min_norm_frank_wolfe(gram, max_iter, tol)
    return min_norm_wolfe(gram)


def _face_system(m: np.ndarray):
    r"""The KKT system of :math:`\min \mu^\top m \mu` subject to
    :math:`\mathbf 1^\top\mu = 1`: ``kkt @ [mu, nu] = rhs``."""
    k = len(m)
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = m
    kkt[:k, k] = kkt[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    return kkt, rhs


def _affine_minimiser(m: np.ndarray) -> np.ndarray:
    r""":math:`\mu` minimising :math:`\mu^\top m \mu` subject to
    :math:`\mathbf 1^\top\mu = 1`, no sign constraint (least squares, so a
    singular face still gives a minimiser)."""
    return np.linalg.lstsq(*_face_system(m), rcond=None)[0][:len(m)]


def min_norm_wolfe(gram: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Exact minimiser by Wolfe's minimum-norm-point algorithm (see the module
    docstring for its cycles)."""
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    m = gram / max(float(np.abs(gram).max()), 1e-300)
    support = [int(np.argmin(np.diag(m)))]  # the shortest gradient
    lam = np.ones(1)
    # Finite in exact arithmetic; the cap only guards against rounding cycles.
    for _ in range(20 * n + 100):
        alpha = np.zeros(n)
        alpha[support] = lam
        m_alpha = m @ alpha
        tau = int(np.argmin(m_alpha))
        if alpha @ m_alpha - m_alpha[tau] <= tol or tau in support:
            break  # optimal (or no progress left at this precision)
        support.append(tau)
        lam = np.append(lam, 0.0)
        while True:  # minor cycles
            mu = _affine_minimiser(m[np.ix_(support, support)])
            if (mu > tol).all():
                lam = mu
                break
            ratios = np.where(mu <= tol, lam / np.maximum(lam - mu, 1e-300), np.inf)
            out = int(np.argmin(ratios))
            theta = min(float(ratios[out]), 1.0)
            lam = (1 - theta) * lam + theta * mu
            lam[out] = 0.0
            keep = lam > tol
            support = [t for t, kept in zip(support, keep) if kept]
            lam = lam[keep] / lam[keep].sum()
    alpha = np.zeros(n)
    alpha[support] = lam
    return alpha


def min_norm_enumerate(gram: np.ndarray) -> np.ndarray:
    """Exact minimiser by enumerating the faces of the simplex (small T only)."""
    n = gram.shape[0]
    scale = max(float(np.abs(gram).max()), 1e-300)
    best_value, best = np.inf, np.eye(n)[int(np.argmin(np.diag(gram)))]
    for bits in range(1, 2 ** n):
        support = [i for i in range(n) if bits >> i & 1]
        k = len(support)
        kkt, rhs = _face_system(gram[np.ix_(support, support)] / scale)
        sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        if np.abs(kkt @ sol - rhs).max() > 1e-9 or (sol[:k] < -1e-12).any():
            continue
        alpha = np.zeros(n)
        alpha[support] = np.maximum(sol[:k], 0)
        alpha /= alpha.sum()
        value = alpha @ gram @ alpha
        if value < best_value:
            best_value, best = value, alpha
    return best


def min_norm_frank_wolfe(gram: np.ndarray, max_iter: int = 1000, tol: float = 1e-10):
    """Frank-Wolfe with exact line search, started from the best pair (the paper's
    solver; approximate, see the module docstring)."""
    n = gram.shape[0]
    # Start from the best pair, which is often already optimal (and a good start).
    best, alpha = np.inf, np.full(n, 1.0 / n)
    for i in range(n):
        for j in range(i + 1, n):
            gamma = min_norm_2(gram[i, i], gram[i, j], gram[j, j])
            value = (gamma ** 2 * gram[i, i] + 2 * gamma * (1 - gamma) * gram[i, j]
                     + (1 - gamma) ** 2 * gram[j, j])
            if value < best:
                best = value
                alpha = np.zeros(n)
                alpha[i], alpha[j] = gamma, 1 - gamma
    for _ in range(max_iter):
        m_alpha = gram @ alpha
        tau = int(np.argmin(m_alpha))
        gamma = min_norm_2(float(alpha @ m_alpha), float(m_alpha[tau]), float(gram[tau, tau]))
        new = gamma * alpha
        new[tau] += 1 - gamma
        if np.abs(new - alpha).sum() < tol:
            alpha = new
            break
        alpha = new
    return alpha
