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

More tasks: up to ``exact_max_tasks`` (8) the problem is solved exactly by
enumerating the supports :math:`S`: on the face of the simplex spanned by
:math:`S` the optimum solves the KKT system
:math:`\begin{bmatrix} M_S & \mathbf 1\\ \mathbf 1^\top & 0\end{bmatrix}
\begin{bmatrix}\alpha_S\\ -\lambda\end{bmatrix}
= \begin{bmatrix}0\\ 1\end{bmatrix}`, and the best non-negative solution
over all :math:`2^T - 1` faces is the global minimum (the problem is convex).
Beyond that, and on request, Frank-Wolfe as in the paper: from :math:`\alpha`, the vertex
:math:`e_\tau` with :math:`\tau = \arg\min_t (M\alpha)_t` is the direction of
steepest descent of the quadratic; the exact line search between the current
point :math:`u = \sum_t\alpha_t g_t` and :math:`v = g_\tau` is the two-point
closed form above, computed from :math:`u^\top u = \alpha^\top M\alpha`,
:math:`u^\top v = (M\alpha)_\tau` and :math:`v^\top v = M_{\tau\tau}`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["min_norm_2", "min_norm_weights", "min_norm_exact", "min_norm_frank_wolfe"]


def min_norm_2(uu: float, uv: float, vv: float) -> float:
    """:math:`\\gamma^\\star` minimising :math:`\\lVert\\gamma u + (1-\\gamma)v\\rVert^2`,
    from the three inner products."""
    denom = uu - 2 * uv + vv  # ||u - v||^2
    if denom <= 1e-300:
        return 0.5
    return float(np.clip((vv - uv) / denom, 0.0, 1.0))


def min_norm_weights(gram: np.ndarray, method: str = "auto", exact_max_tasks: int = 8,
                     max_iter: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Simplex weights :math:`\alpha` minimising :math:`\alpha^\top M \alpha`.

    Parameters
    ----------
    gram : ndarray of shape (T, T)
        :math:`M = G G^\top` for the task gradients stacked as rows of ``G``.
    method : {"auto", "exact", "frank_wolfe"}
        ``"auto"``: closed form for two tasks, exact enumeration up to
        ``exact_max_tasks``, Frank-Wolfe beyond.
    max_iter, tol : Frank-Wolfe's iteration limit and step tolerance (L1).

    Returns
    -------
    alpha : ndarray of shape (T,), non-negative, summing to one
    """
    gram = np.asarray(gram, dtype=np.float64)
    n = gram.shape[0]
    if method not in ("auto", "exact", "frank_wolfe"):
        raise ValueError(f"min_norm_weights expected method 'auto', 'exact' or "
                         f"'frank_wolfe', received {method!r}")
    if n == 1:
        return np.ones(1)
    if n == 2 and method == "auto":
        gamma = min_norm_2(gram[0, 0], gram[0, 1], gram[1, 1])
        return np.array([gamma, 1.0 - gamma])
    if method == "exact" or (method == "auto" and n <= exact_max_tasks):
        return min_norm_exact(gram)
    return min_norm_frank_wolfe(gram, max_iter, tol)


def min_norm_exact(gram: np.ndarray) -> np.ndarray:
    """Exact minimiser by enumerating the faces of the simplex (small T only)."""
    n = gram.shape[0]
    scale = max(float(np.abs(gram).max()), 1e-300)
    best_value, best = np.inf, np.eye(n)[int(np.argmin(np.diag(gram)))]
    for bits in range(1, 2 ** n):
        support = [i for i in range(n) if bits >> i & 1]
        k = len(support)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = gram[np.ix_(support, support)] / scale
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.zeros(k + 1)
        rhs[k] = 1.0
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
    """Frank-Wolfe with exact line search, started from the best pair."""
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
