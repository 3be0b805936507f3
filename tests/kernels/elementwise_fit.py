"""Re-derive the float32 tanh, exp and normal-CDF coefficients of
``kernels/activations.py`` and measure their error in ulps.

    python tests/kernels/elementwise_fit.py            # fit, print, check a dense grid
    python tests/kernels/elementwise_fit.py --all      # every float32 (about a minute)

Both fits minimise the maximum *relative* error in float64: linear least
squares on the relative residual, then Lawson's iteration (each round
multiplies the point weights by the current absolute error, which drives
least squares towards the minimax solution). Columns are scaled before the
solve, since powers of ``x**2`` up to 81**5 would make the system singular.

* tanh: :math:`\\tanh x \\approx x P(s)/Q(s)`, :math:`s = x^2`, on
  ``(0, TANH_FIT_END]``, with ``P`` of degree 4 and ``Q`` of degree 5 in ``s``
  and ``P(0) = Q(0) = 1`` fixed (so tiny ``x`` give exactly ``x``).
* exp: :math:`e^r \\approx 1 + r + \\sum_{k=2}^{6} c_k r^k` on
  :math:`|r| \\le 1.01 \\ln 2 / 2` (the reduced range, with a margin for the
  rounding of the range reduction).
* normal tail (GELU): the Mills ratio :math:`S(u) = Q(u) e^{u^2/2} \\approx
  A(u)/B(u)` on ``[0, MILLS_FIT_END]``, A of degree 4 and B of degree 5 in u,
  :math:`A(0) = 1/2`, :math:`B(0) = 1`; and near 0,
  :math:`\\Phi(v) - 1/2 \\approx v T(v^2)` on ``[0, 1.05]``, T of degree 5.
"""

from __future__ import annotations

import sys

import numpy as np

#: End of the tanh fit: float32 tanh x rounds to 1 above 13 ln 2 = 9.0109; the
#: kernel clamps |x| at 9.02, inside this range, where its evaluation gives 1.
TANH_FIT_END = 9.1
#: End of the Mills-ratio fit: beyond u = 13.3 the kernel's e**(-u**2/2) is 0.
MILLS_FIT_END = 13.5


def _lawson(A, b, weight, value, iters):
    """Minimise max |A c - b| * weight by least squares + Lawson reweighting.

    ``value(c)`` returns the relative error of the fitted function at the points."""
    extra = np.ones_like(b)
    best, best_err = None, np.inf
    for _ in range(iters):
        W = weight * extra
        M = A * W[:, None]
        scale = np.linalg.norm(M, axis=0)
        c, *_ = np.linalg.lstsq(M / scale, b * W, rcond=None)
        c /= scale
        err = value(c)
        if np.abs(err).max() < best_err:
            best, best_err = c, np.abs(err).max()
        extra = extra * np.abs(err)
        extra /= extra.sum()
    return best, best_err


def fit_tanh(m=4, n=5, iters=100):
    """``(p, q, max_rel_err)``: coefficients of P (degree m) and Q (degree n)
    in s = x**2, lowest first, p[0] = q[0] = 1."""
    x = np.concatenate([np.linspace(1e-4, TANH_FIT_END, 6000), np.geomspace(1e-6, 1, 400)])
    s, t = x * x, np.tanh(x)
    # x P(s) - t Q(s) = 0 is linear in the unknown p[1:], q[1:]
    A = np.hstack([x[:, None] * s[:, None] ** np.arange(1, m + 1),
                   -t[:, None] * s[:, None] ** np.arange(1, n + 1)])
    b = t - x
    state = {"q": np.ones(1)}

    def value(c):
        p, q = np.r_[1.0, c[:m]], np.r_[1.0, c[m:]]
        state["q"] = q
        return x * np.polyval(p[::-1], s) / np.polyval(q[::-1], s) / t - 1

    # weight 1 / (t Q(s)) turns the linearised residual into the relative error;
    # Q from the previous round (Loeb's iteration), starting from Q = 1
    weight = 1 / t
    c, err = None, None
    for _ in range(4):
        c, err = _lawson(A, b, weight, value, iters)
        weight = 1 / (t * np.polyval(np.r_[1.0, c[m:]][::-1], s))
    return np.r_[1.0, c[:m]], np.r_[1.0, c[m:]], err


def fit_exp(degree=6, iters=60):
    """``(c, max_rel_err)``: e**r ~ 1 + r + sum c[k-2] r**k, k = 2..degree."""
    h = 1.01 * np.log(2) / 2
    r = np.linspace(-h, h, 4001)
    t = np.exp(r)
    A = r[:, None] ** np.arange(2, degree + 1)
    return _lawson(A, t - 1 - r, 1 / t, lambda c: (1 + r + A @ c) / t - 1, iters)


def _normal_tail(u):
    """Q(u) = P(U > u) in float64, from math.erfc."""
    import math
    return np.array([0.5 * math.erfc(x / math.sqrt(2)) for x in np.ravel(u)])


def fit_mills(m=4, n=5, iters=60):
    """``(a, b, max_rel_err)``: S(u) = Q(u) e**(u**2/2) ~ A(u)/B(u), lowest
    power first, a[0] = 1/2, b[0] = 1 (Loeb's iteration, as for tanh)."""
    u = np.concatenate([np.linspace(0, MILLS_FIT_END, 8000), np.geomspace(1e-6, 1, 300)])
    s = _normal_tail(u) * np.exp(u * u / 2)
    A = np.hstack([u[:, None] ** np.arange(1, m + 1),
                   -s[:, None] * u[:, None] ** np.arange(1, n + 1)])

    def value(c):
        return np.polyval(np.r_[0.5, c[:m]][::-1], u) / np.polyval(np.r_[1.0, c[m:]][::-1],
                                                                    u) / s - 1

    weight, c, err = 1 / s, None, None
    for _ in range(4):
        c, err = _lawson(A, s - 0.5, weight, value, iters)
        weight = 1 / (s * np.polyval(np.r_[1.0, c[m:]][::-1], u))
    return np.r_[0.5, c[:m]], np.r_[1.0, c[m:]], err


def fit_phi_small(degree=5, end=1.05, iters=60):
    """``(t, max_rel_err)``: Phi(v) - 1/2 ~ v T(v**2) on (0, end], lowest first."""
    v = np.concatenate([np.linspace(1e-4, end, 4000), np.geomspace(1e-6, 1e-4, 50)])
    t = (0.5 - _normal_tail(v)) / v
    A = (v * v)[:, None] ** np.arange(0, degree + 1)
    return _lawson(A, t, 1 / t, lambda c: (A @ c) / t - 1, iters)


def ulps(y32, exact):
    """|y32 - exact rounded to float32| in units in the last place (float32)."""
    rounded = np.asarray(exact, np.float64).astype(np.float32)
    as_int = lambda a: a.view(np.int32).astype(np.int64)  # noqa: E731
    # for values of one sign the integer view counts representable floats
    return np.abs(as_int(y32) - as_int(rounded))


def max_ulps(kernel, exact, lo, hi, step=61, chunk=1 << 24):
    """Max ulp error of ``kernel`` (float32 array -> array) against ``exact``
    (float64) over every ``step``-th positive float32 in [lo, hi]."""
    a, b = np.float32(lo).view(np.int32), np.float32(hi).view(np.int32)
    worst, at = 0, None
    for start in range(int(a), int(b), chunk * step):
        bits = np.arange(start, min(start + chunk * step, int(b)), step, dtype=np.int32)
        x = bits.view(np.float32)
        err = ulps(kernel(x), exact(x.astype(np.float64)))
        if err.max() > worst:
            worst, at = int(err.max()), float(x[err.argmax()])
    return worst, at


def main(argv):
    step = 1 if "--all" in argv else 61
    p, q, err = fit_tanh()
    print(f"tanh: P = {p.astype(np.float32).tolist()}\n      Q = {q.astype(np.float32).tolist()}"
          f"\n      max relative error of the float64 fit {err:.3g}")
    c, err = fit_exp()
    print(f"exp:  c = {c.astype(np.float32).tolist()}\n      max relative error {err:.3g}")
    a, b, err = fit_mills()
    print(f"Mills ratio (float64, as the kernel evaluates it): A = {a.tolist()}\n"
          f"             B = {b.tolist()}\n"
          f"             max relative error of the float64 fit {err:.3g}")
    t, err = fit_phi_small()
    print(f"Phi near 0: T = {t.astype(np.float32).tolist()}\n"
          f"            max relative error {err:.3g}")
    from tinynet.kernels import activations as act
    one = lambda code: lambda x: act.act_forward(x[None, :], code)[0]  # noqa: E731
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    gelu = lambda x: x * _normal_tail(-x)  # noqa: E731  (Phi(x) = Q(-x), no cancellation)
    for name, kernel, exact, lo, hi in [
            ("tanh", one(act.TANH), np.tanh, 1e-30, 12.0),
            ("sigmoid x>0", one(act.SIGMOID), sigmoid, 1e-30, 20.0),
            ("sigmoid x<0", lambda x: one(act.SIGMOID)(-x), lambda x: sigmoid(-x), 1e-30, 87.0),
            ("gelu x>0", one(act.GELU), gelu, 1e-30, 13.4),
            ("gelu x<0", lambda x: -one(act.GELU)(-x), lambda x: -gelu(-x), 1e-30, 13.0)]:
        worst, at = max_ulps(kernel, exact, lo, hi, step)
        print(f"{name}: max error {worst} ulp (at |x| = {at}) over every {step}-th float32 "
              f"in [{lo}, {hi}]")


if __name__ == "__main__":
    main(sys.argv[1:])
