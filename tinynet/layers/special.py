r"""The complementary error function in vectorised NumPy, to the last bit or two.

NumPy has no ``erf``; the exact GELU needs the normal CDF
:math:`\Phi(x) = \tfrac12 \operatorname{erfc}(-x/\sqrt2)`, accurate in
*relative* terms for large negative ``x`` (where :math:`1 + \operatorname{erf}`
would cancel to nothing). ``np.vectorize(math.erfc)`` is exact but runs a
Python call per element; this module evaluates

* :math:`|z| < 1`: the Maclaurin series
  :math:`\operatorname{erf} z = \frac{2}{\sqrt\pi}\sum_n \frac{(-1)^n z^{2n+1}}{n!\,(2n+1)}`
  (18 terms reach :math:`10^{-17}`), and :math:`\operatorname{erfc} = 1 - \operatorname{erf}`;
* :math:`|z| \ge 1`: :math:`\operatorname{erfc} a = e^{-a^2} G(1/a) / a` with
  :math:`G(u) = a\, e^{a^2} \operatorname{erfc} a`, a smooth function of
  :math:`u = 1/a \in (0, 1]` (:math:`G(0) = 1/\sqrt\pi`), as Chebyshev series
  on :math:`[0, 1/2]` and :math:`[1/2, 1]` whose coefficients were computed
  at 40 digits (:func:`_chebyshev_coefficients`, needs mpmath); and
  :math:`\operatorname{erfc}(-a) = 2 - \operatorname{erfc}(a)`.

:math:`e^{-a^2}` is computed as :math:`e^{-h^2} e^{-(a-h)(a+h)}` with
:math:`h` the float32 rounding of :math:`a`, so that :math:`h^2` is exact and
the large exponent carries no rounding error. The relative error stays
below :math:`1.5\cdot10^{-15}` (7 ulps, worst just below :math:`|z| = 1`) wherever
the result is a normal float64 (tested against ``math.erfc``), and the
evaluation is several times faster than ``np.vectorize(math.erfc)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["erfc", "normal_cdf"]

# erf(z) = z * sum_n c_n (z^2)^n,  c_n = 2/sqrt(pi) (-1)^n / (n! (2n + 1))
_MACLAURIN = tuple(2.0 / math.sqrt(math.pi) * (-1.0) ** n / (math.factorial(n) * (2 * n + 1))
                   for n in range(18))

# G(u) on [0, 1/2] and [1/2, 1], in Chebyshev polynomials of t = 4u - 1 and 4u - 3
_G_LOW_U = (
    0.5427416308736758, -0.027456541627010337, -0.005256099448393948,
    0.0007739396325011416, 2.609208681438293e-06, -1.6601192411763388e-05,
    2.4179794695158714e-06, 7.310761646419786e-08, -9.093948871152924e-08,
    1.5307873043283198e-08, 2.670644802933083e-10, -6.890191671935908e-10,
    1.4963131479427074e-10, -4.725535703039531e-12, -6.0962615680279e-12,
    1.8588028922899188e-12, -1.84982366018955e-13, -5.0778550852337533e-14,
    2.5476271639601384e-14, -4.617196180552955e-15, -1.4611445964991848e-16,
    3.3866812349619557e-16, -9.965265626083708e-17, 1.0146389040528733e-17,
    3.4301935627534245e-18, -1.8873096098005833e-18,
)
_G_HIGH_U = (
    0.4687089566349605, -0.041775068132475786, 0.0005040623963318858,
    0.00016888702949542888, -2.5430051898348638e-05, 2.2949329159500325e-06,
    -1.2625248725454873e-07, -1.7887685298692902e-09, 1.6302900358124004e-09,
    -2.7115250283810896e-10, 3.109328807363296e-11, -2.626724466263171e-12,
    1.2274102894328633e-13, 9.3230577582814e-15, -3.492421562678726e-15,
    5.907371269573016e-16, -7.500447469203527e-17, 7.558655117219068e-18,
    -5.467252594172218e-19,
)


def _horner(coefficients, w):
    acc = np.full_like(w, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc *= w
        acc += c
    return acc


def _clenshaw(coefficients, t):
    """:math:`\\sum_j c_j T_j(t)` by Clenshaw's recurrence."""
    b1 = np.zeros_like(t)
    b2 = np.zeros_like(t)
    two_t = 2.0 * t
    for c in coefficients[:0:-1]:
        b1, b2 = two_t * b1 - b2 + c, b1
    return t * b1 - b2 + coefficients[0]


def _exp_minus_square(a):
    """:math:`e^{-a^2}` without the rounding error of forming :math:`a^2`."""
    head = a.astype(np.float32).astype(np.float64)
    return np.exp(-head * head) * np.exp(-(a - head) * (a + head))


def _erfc_tail(a):
    """erfc(a) for a >= 1 (float64)."""
    u = 1.0 / a
    low = u <= 0.5
    g = np.empty_like(a)
    g[low] = _clenshaw(_G_LOW_U, 4.0 * u[low] - 1.0)
    g[~low] = _clenshaw(_G_HIGH_U, 4.0 * u[~low] - 3.0)
    return _exp_minus_square(a) * g * u


def erfc(x) -> np.ndarray:
    """Complementary error function, element-wise; keeps float32/float64."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    z = x.astype(np.float64)
    a = np.abs(z)
    out = np.empty_like(z)
    small = a < 1.0
    zs = z[small]
    out[small] = 1.0 - zs * _horner(_MACLAURIN, zs * zs)
    big = ~small & ~np.isnan(z)
    tail = _erfc_tail(np.minimum(a[big], 40.0))  # erfc(27) already underflows to 0
    out[big] = np.where(z[big] > 0, tail, 2.0 - tail)
    out[np.isnan(z)] = np.nan
    return out.astype(dtype, copy=False)


def normal_cdf(x) -> np.ndarray:
    r""":math:`\Phi(x) = \tfrac12 \operatorname{erfc}(-x/\sqrt2)`, relatively
    accurate for large negative ``x``; keeps float32/float64."""
    x = np.asarray(x)
    return 0.5 * erfc(x * -math.sqrt(0.5))


def _chebyshev_coefficients(lo: float, hi: float, n_terms: int = 30) -> list[float]:
    """Recompute the Chebyshev coefficients of G on ``[lo, hi]`` at 40 digits
    (development aid; needs mpmath): interpolation at Chebyshev nodes."""
    import mpmath as mp

    mp.mp.dps = 40

    def g(u):
        if u == 0:
            return 1 / mp.sqrt(mp.pi)
        a = 1 / u
        return a * mp.exp(a * a) * mp.erfc(a)

    angles = [mp.pi * (k + mp.mpf(0.5)) / n_terms for k in range(n_terms)]
    values = [g(mp.mpf(lo) + (mp.cos(t) + 1) / 2 * (mp.mpf(hi) - mp.mpf(lo))) for t in angles]
    coefficients = [2 * mp.fsum(v * mp.cos(j * t) for v, t in zip(values, angles)) / n_terms
                    for j in range(n_terms)]
    coefficients[0] /= 2
    return [float(c) for c in coefficients]
