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
elu        3     :math:`z` if :math:`z>0` else :math:`\alpha(e^z-1)`  z
gelu       4     :math:`z\Phi(z)` (erfc)                       z
gelu_tanh  5     tanh approximation                           z
silu       6     :math:`z\sigma(z)`                           z
sigmoid    7     :math:`\sigma(z)` (stable form)              y
tanh       8     :math:`\tanh z`                              y
=========  ====  ==========================================  ==================

``act_forward`` / ``act_backward`` work on 2-D arrays row by row, split over
threads by rows; the NumPy references ``act_forward_ref`` /
``act_backward_ref`` do the same maths array-wise.

float32 tanh, exp and the normal CDF (tanh, sigmoid, SiLU, GELU) use
:func:`tanh32`, :func:`exp32` and :func:`gauss32` below: branch-free
arithmetic that LLVM vectorises, where ``math.tanh``/``math.exp``/``math.erfc``
call the scalar libm once per element (Numba has no SVML here). float64 keeps
libm. gelu_tanh takes :math:`v\,\sigma(2u)` for :math:`\tfrac12 v (1 + \tanh u)`
(the same function, with no cancellation where :math:`\tanh u \to -1`), so its
float32 loops run on :func:`sigmoid32`.
"""

from __future__ import annotations

import math

import numpy as np

from .checks import check_disjoint, check_float_array, check_shapes, check_writable, checked
from .config import NUMBA_ENABLED, njit, prange

if NUMBA_ENABLED:
    from numba import types as _nb_types
    from numba.extending import overload as _overload

__all__ = ["ACT_CODES", "needs_input", "check_saved", "check_alpha", "act_forward", "act_backward",
           "act_forward_ref", "act_backward_ref", "bias_act_rows", "act_grad_rows",
           "GELU_TANH_CLAMP", "gelu_clamp", "gelu_factor", "gelu_tanh_gate",
           "gelu_tanh_slope"]

IDENTITY, RELU, LEAKY_RELU, ELU, GELU, GELU_TANH, SILU, SIGMOID, TANH = range(9)

#: Activation name -> kernel code.
ACT_CODES = {"identity": IDENTITY, "linear": IDENTITY, "relu": RELU,
             "leaky_relu": LEAKY_RELU, "elu": ELU, "gelu": GELU, "gelu_tanh": GELU_TANH,
             "silu": SILU, "swish": SILU, "sigmoid": SIGMOID, "tanh": TANH}

_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_SQRT_2_OVER_PI = 0.7978845608028654
_GELU_CUBIC = 0.044715
#: gelu_tanh's gradient clamps its input here: beyond, its gate
#: :math:`\sigma(2u)` is exactly 0 or 1 in both precisions (:math:`2u > 7 \cdot 10^4`)
#: and so its slope exactly 0 or 1, while :math:`v^3` and :math:`v^2` would
#: overflow (from :math:`|v| \approx 10^{13}` in float32) and the slope term
#: :math:`v\,s(1-s)\,du` become 0 times infinity, NaN. The exact GELU's
#: gradient clamps there too: :math:`\Phi` is exactly 0 or 1 and
#: :math:`\varphi` exactly 0 beyond, and :math:`v\,\varphi(v)` at
#: :math:`v = \pm\infty` was :math:`\infty \cdot 0`, NaN.
GELU_TANH_CLAMP = 100.0


def gelu_clamp(x):
    r"""``x`` clipped to [-GELU_TANH_CLAMP, GELU_TANH_CLAMP] (NaN kept), where
    GELU's gates are exactly 0 or 1 and its density :math:`\varphi` exactly 0
    already: its cube and square, which overflow from :math:`|x| \approx
    10^{13}` in float32, then stay finite (an overflow made the tanh form's
    slope :math:`0 \cdot \infty`, NaN). The NumPy references and the GELU
    layer's NumPy path call this; the Numba kernel clamps each value alike."""
    return np.clip(x, -GELU_TANH_CLAMP, GELU_TANH_CLAMP)


def gelu_factor(x):
    r"""GELU's factor :math:`x` in :math:`y = x \cdot \text{gate}(x)`, raised to
    -GELU_TANH_CLAMP (NaN kept). Below the clamp both gates (:math:`\Phi(x)`
    and :math:`\sigma(2u)`) are exactly 0 in either precision, so the product
    is the same :math:`-0.0` for every finite ``x`` there, and at
    :math:`x = -\infty` it is that limit too, not :math:`-\infty \cdot 0`, NaN
    (PyTorch 2.13 gives NaN there; it gives -0.0 at -1e30). Above, ``x`` is
    unchanged (:math:`+\infty` gives :math:`+\infty`). The NumPy references and
    the GELU layer's NumPy path call this; the Numba kernel raises each value
    alike."""
    return np.maximum(x, -GELU_TANH_CLAMP)


def needs_input(code: int) -> bool:
    """True when the backward of ``code`` needs the pre-activation ``z``."""
    return code in (ELU, GELU, GELU_TANH, SILU)


# ------------------------------------------- vectorisable float32 tanh and exp
_f32 = np.float32
#: float32 tanh x is +-1 beyond 13 ln 2 = 9.0109; at this clamp (inside the
#: fitted range, which ends at 9.1) the float32 evaluation of the rational
#: below gives exactly 1, so |x| >= 9.02 and +-inf give exactly +-1.
_TANH_CLAMP = _f32(9.02)
#: tanh x ~ x P(s) / Q(s), s = x**2 (lowest power first; P(0) = Q(0) = 1).
_TANH_P = (_f32(1.0), _f32(0.13782151), _f32(0.0040043867), _f32(3.1497606e-05),
           _f32(5.043047e-08))
_TANH_Q = (_f32(1.0), _f32(0.47115484), _f32(0.027722681), _f32(0.00041998923),
           _f32(1.6102889e-06), _f32(7.3064377e-10))
#: e**r ~ 1 + r + sum c_k r**k (k = 2..6) for |r| <= ln2 / 2.
_EXP_C = (_f32(0.49999997), _f32(0.1666651), _f32(0.041667458), _f32(0.008369892),
          _f32(0.0013869129))
_LOG2E = _f32(1.442695)
# ln 2 split so that n * _LN2_HI is exact for |n| < 2**11 (Cody-Waite)
_LN2_HI = _f32(0.693359375)
_LN2_LO = _f32(-2.1219444e-4)
#: beyond this e**a overflows float32 (the power of two is clamped here)
_EXP_MAX = _f32(88.8)
_ONE32, _HALF32 = _f32(1.0), _f32(0.5)


@njit
def tanh32(v):
    r"""float32 :math:`\tanh v`, branch-free so that loops over it vectorise.

    .. math::
        \tanh v \approx v\,P(v^2)/Q(v^2), \qquad |v| \le 9.02

    with P of degree 4 and Q of degree 5 in :math:`v^2`; ``v`` is clamped to
    [-9.02, 9.02] first, where float32 tanh is already +-1. The coefficients
    minimise the maximum relative error on (0, 9.1] in float64 (least squares
    on the relative residual, then Lawson's reweighting towards minimax;
    ``tests/kernels/elementwise_fit.py`` re-derives them): 1.1e-9, 0.02 ulp.
    Rounding in the float32 evaluation dominates: measured against np.tanh
    in float64 over every float32 in [1e-30, 12], at most 6 ulps from the
    correctly rounded value (99.3 % within 1 ulp on every 61st float32).
    NaN stays NaN (the clamp compares so that NaN passes through), +-inf
    gives +-1, tiny ``v`` give ``v`` (P(0) = Q(0) = 1), -0.0 stays -0.0.

    gelu_tanh does not use it: :math:`1 + \tanh u` cancels near -1 (with this
    function it lost 0.4 % against PyTorch there), so it takes the equal
    :math:`2\sigma(2u)` from :func:`sigmoid32` instead.

    Why not the 2-3 ulps we aimed for: x P/Q rounds ten times in float32 (the
    Horner steps, the product, the quotient). A two-regime form measured
    1 ulp (``v + v^3 R(v^2)`` below 0.625, :math:`1 - 2/(e^{2|v|}+1)` from
    :func:`exp32` above), but at 1.9x the time, and this one is already only
    about as fast as NumPy's tanh (NumPy runs AVX-512 code on an AVX-512
    CPU; LLVM under Numba vectorises these loops with 256-bit registers).
    """
    c = _TANH_CLAMP
    v = c if v > c else v
    v = -c if v < -c else v
    s = v * v
    P, Q = _TANH_P, _TANH_Q
    num = (((P[4] * s + P[3]) * s + P[2]) * s + P[1]) * s + P[0]
    den = ((((Q[5] * s + Q[4]) * s + Q[3]) * s + Q[2]) * s + Q[1]) * s + Q[0]
    return v * num / den


@njit(exact=True)  # no reassociation: it would undo the two-part ln 2 subtraction
def _exp_reduce(a):
    """``(n, r)`` with a = n ln 2 + r, |r| <= ln 2 / 2 (Cody-Waite), n from a
    clamped copy of a: NaN or huge a must not reach int()."""
    top = _EXP_MAX
    n = np.floor((a if a < top else top) * _LOG2E + _HALF32)  # float32, not int
    return n, (a - n * _LN2_HI) - n * _LN2_LO


@njit
def exp32(a):
    r"""float32 :math:`e^a` for :math:`a \ge 0` (or NaN), branch-free.

    Range reduction :math:`a = n \ln 2 + r`, :math:`|r| \le \ln 2 / 2`,
    :math:`e^a = 2^n e^r`; :math:`e^r` by a degree-6 polynomial (relative
    error 4.1e-9 = 0.07 ulp in float64; fitted like :func:`tanh32`).
    :math:`2^n` is built without bit tricks: :math:`2^n = 2^{n\&3}\,(2^{n\gg2})^4`,
    each factor an integer shift converted to float (exact), applied one
    factor at a time so the product overflows to inf only when
    :math:`e^a` does (fast-math reassociation may overflow it slightly
    early, for a in [88.4, 88.7]). The reduction is compiled without
    fast-math: reassociated, it became a - n (ln 2 rounded to float32), and
    the error grew to 4 ulps at a = 66; now at most 1 ulp against np.exp in
    float64 (every 61st float32 in [1e-30, 88]). ``a`` above 88.8 (and inf) gives inf
    through the polynomial, NaN gives NaN.
    """
    n, r = _exp_reduce(a)
    C = _EXP_C
    p = (((((C[4] * r + C[3]) * r + C[2]) * r + C[1]) * r + C[0]) * r + _ONE32) * r + _ONE32
    k = int(n)
    quarter = _f32(1 << (k >> 2))
    return p * _f32(1 << (k & 3)) * quarter * quarter * quarter * quarter


@njit
def sigmoid32(v):
    r"""float32 :math:`\sigma(v)` from :func:`exp32` of :math:`|v|` (no
    overflow, no cancellation): :math:`\sigma(-|v|) = 1/(1 + e^{|v|})`,
    :math:`\sigma(|v|) = 1 - \sigma(-|v|)`. Measured against float64 over
    every float32 in [-87, 20] (``tests/kernels/elementwise_fit.py --all``):
    at most 1 ulp for v >= 0, 2 ulps for v < 0. Results below float32's
    smallest normal (v < -87.3) may flush to 0."""
    low = _ONE32 / (_ONE32 + exp32(abs(v)))
    return _ONE32 - low if v >= 0 else low


#: Mills-ratio form of the normal tail: for u >= 0,
#: Q(u) = P(U > u) = e**(-u**2/2) S(u) with S(u) ~ A(u)/B(u), A of degree 4
#: and B of degree 5 in u (lowest power first; A(0) = 1/2, B(0) = 1), evaluated
#: in float64 (``tests/kernels/elementwise_fit.py`` prints them).
_MILLS_A = (0.5, 0.4341595556001329, 0.18012145349592737, 0.03956915377290727,
            0.003954232047077316)
_MILLS_B = (1.0, 1.6662038559356847, 1.1896784363720752, 0.4612383147331297,
            0.0991928130861425, 0.009911641249520637)
#: Phi(v) - 1/2 ~ v T(v**2) for |v| < 1 (T of degree 5, lowest power first).
_PHI_SMALL = (_f32(0.3989422917366028), _f32(-0.06649034470319748), _f32(0.00997320655733347),
              _f32(-0.0011859828373417258), _f32(0.00011306919623166323),
              _f32(-7.480266958737047e-06))
_PHI_SMALL_END = _f32(1.0)
#: e**b for 0 <= b < 0.054 by its Taylor polynomial of degree 4 (error 3.7e-9).
_EXP_TAYLOR = (_f32(1.0), _f32(1.0), _f32(0.5), _f32(1.0 / 6.0), _f32(1.0 / 24.0))
#: |v| is clamped here: e**(-u**2/2) then underflows to exactly 0 (exp32 of
#: the half square is inf), so Q and the density are 0 beyond.
_GAUSS_CLAMP = _f32(13.5)
_INV_SQRT_2PI32 = _f32(0.3989422804014327)


@njit(exact=True)  # no reassociation: (u - uh)(u + uh) must not become u*u - uh*uh
def _half_square(u):
    """``(a, b)`` with :math:`a + b = u^2/2` to float32's precision for
    0 <= u <= 13.5: ``uh`` is u rounded down to a multiple of 1/256 (at most
    12 significant bits, so ``uh * uh`` is exact), :math:`a = u_h^2/2` exactly
    and :math:`b = (u - u_h)(u + u_h)/2 < 0.053` with a relative rounding
    error. Squaring u directly would carry its 0.5-ulp rounding into
    :math:`e^{-u^2/2}` multiplied by :math:`u^2/2`: 40 ulps at u = 13."""
    uh = np.floor(u * _f32(256.0)) * _f32(0.00390625)
    return uh * uh * _HALF32, (u - uh) * (u + uh) * _HALF32


@njit(exact=True)  # reassociated, r / e**a became num / (den * e**a): inf from u = 12.7
def _tail(ratio, growth):
    """``(ratio / growth, 1 / growth)``: the normal tail and e**(-u**2/2)
    from the Mills-ratio fit and :math:`e^{u^2/2}` (inf beyond u = 13.3,
    giving 0)."""
    return ratio / growth, _ONE32 / growth


@njit(inline=True)  # as a call (and through _gauss), LLVM kept the GELU loops scalar
def gauss32(v):
    r"""float32 :math:`(\Phi(v), \varphi(v))`: the standard normal CDF and
    density, branch-free (GELU's :math:`v\Phi(v)` and its derivative
    :math:`\Phi(v) + v\varphi(v)`).

    With :math:`u = |v|`, :math:`e = e^{-u^2/2}` (:func:`_half_square`
    splits :math:`u^2/2 = a + b`; :math:`e = 1/(e^a e^b)` in :func:`_tail`, with
    :func:`exp32` for :math:`e^a` and a Taylor polynomial for the small
    :math:`e^b`), the upper tail is
    :math:`Q(u) = e\,A(u)/B(u)` (a rational fit of the Mills ratio
    :math:`Q(u)e^{u^2/2}` on [0, 13.5], relative error 6e-9, evaluated in
    float64: 0.4 ns an element more than in float32, for the lower tail's 4 ulps
    instead of 6; ``tests/kernels/elementwise_fit.py`` re-derives them), and
    :math:`\Phi(v) = 1 - Q(u)` for :math:`v \ge 0`, :math:`Q(u)` below: no
    cancellation in the lower tail, where GELU needs relative accuracy. For
    :math:`|v| < 1`, where :math:`Q` is near 1/2 and its rounding would show,
    :math:`\Phi(v) = 1/2 + v\,T(v^2)` instead (T a fitted polynomial of degree
    5, the series of erf). :math:`\varphi(v) = e/\sqrt{2\pi}`.
    Beyond :math:`|v| \approx 13.3` :math:`e^a` overflows and :math:`Q = \varphi = 0`
    (the true values are below 2e-38, float32's smallest normal); NaN gives NaN.
    Both forms are computed and one selected, so loops over it vectorise.
    """
    c = _GAUSS_CLAMP
    u = abs(v)
    u = c if u > c else u  # NaN compares false: it passes through
    a, b = _half_square(u)
    E = _EXP_TAYLOR
    growth = exp32(a) * ((((E[4] * b + E[3]) * b + E[2]) * b + E[1]) * b + E[0])
    A, B = _MILLS_A, _MILLS_B
    w = np.float64(u)  # in float64: in float32 its ten roundings cost 2 of 6 ulps
    num = (((A[4] * w + A[3]) * w + A[2]) * w + A[1]) * w + A[0]
    den = ((((B[5] * w + B[4]) * w + B[3]) * w + B[2]) * w + B[1]) * w + B[0]
    q, e = _tail(np.float32(num / den), growth)
    s, T = v * v, _PHI_SMALL
    small = _HALF32 + v * (((((T[5] * s + T[4]) * s + T[3]) * s + T[2]) * s + T[1]) * s + T[0])
    cdf = small if u < _PHI_SMALL_END else (_ONE32 - q if v >= 0 else q)
    return cdf, e * _INV_SQRT_2PI32


@njit
def _gauss_exact(v):
    return 0.5 * math.erfc(-v * _SQRT_HALF), _INV_SQRT_2PI * math.exp(-0.5 * v * v)


def _gauss(v):
    """(Phi(v), phi(v)) in v's precision: :func:`gauss32` for float32, else
    from math.erfc and math.exp."""
    return _gauss_exact(v)


def _tanh(v):
    """tanh in v's precision: :func:`tanh32` for float32, else math.tanh."""
    return math.tanh(v)


@njit
def _sigmoid_exact(z):
    e = math.exp(-abs(z))
    return (1.0 if z >= 0 else e) / (1.0 + e)


def _sigmoid(z):
    """Stable sigmoid in z's precision: :func:`sigmoid32` for float32."""
    return _sigmoid_exact(z)


if NUMBA_ENABLED:
    # pick the implementation from the argument's type, at compile time
    @_overload(_tanh)
    def _tanh_typed(v):
        return (lambda v: tanh32(v)) if v == _nb_types.float32 else (lambda v: math.tanh(v))

    @_overload(_gauss, inline="always")
    def _gauss_typed(v):
        return (lambda v: gauss32(v)) if v == _nb_types.float32 else \
            (lambda v: _gauss_exact(v))

    @_overload(_sigmoid)
    def _sigmoid_typed(z):
        return (lambda z: sigmoid32(z)) if z == _nb_types.float32 else \
            (lambda z: _sigmoid_exact(z))


@njit
def _act_rows(src, dst, in_place, bias, has_bias, z_out, store_z, code, alpha, r0, r1):
    """Rows r0:r1: z = src + bias (kept in z_out if store_z), dst = f(z);
    ``in_place`` when dst is src. One branch per activation, outside the
    inner loops.

    Each row of z is first written to dst (a copy, or the bias add) and the
    activation then runs in place on it: an element-wise loop that reads one
    array and writes another which may be the same memory vectorises only
    behind a runtime overlap check, which fails for in-place calls and
    leaves them scalar. Constants are cast to the rows' dtype, so float32
    loops stay float32. The row loop is inside: calling a function like this
    once per row measured twice as slow on 256-wide ReLU rows.
    """
    N = src.shape[1]
    zero = src.dtype.type(0.0)
    for i in range(r0, r1):
        d = dst[i]
        if has_bias and in_place:
            for j in range(N):
                d[j] += bias[j]
        elif has_bias:
            s = src[i]
            for j in range(N):
                d[j] = s[j] + bias[j]
        elif not in_place:
            s = src[i]
            for j in range(N):
                d[j] = s[j]
        if store_z:
            zr = z_out[i]
            for j in range(N):
                zr[j] = d[j]
        if code == RELU:
            for j in range(N):
                v = d[j]
                d[j] = zero if v < zero else v  # NaN compares false: NaN stays
        elif code == LEAKY_RELU:
            for j in range(N):
                v = d[j]
                d[j] = v if v > zero else v * alpha
        elif code == ELU:
            for j in range(N):
                v = d[j]
                d[j] = v if v > zero else math.expm1(v) * alpha
        elif code == GELU:
            low = -src.dtype.type(GELU_TANH_CLAMP)
            for j in range(N):
                v = d[j]
                # the gate is exactly 0 below low: -0.0 at -inf, not -inf * 0
                # (NaN passes), as gelu_factor
                d[j] = (low if v < low else v) * _gauss(v)[0]
        elif code == GELU_TANH:
            k2 = src.dtype.type(2.0 * _SQRT_2_OVER_PI)
            cubic = src.dtype.type(_GELU_CUBIC)
            low = -src.dtype.type(GELU_TANH_CLAMP)
            for j in range(N):
                v = d[j]
                # (1 + tanh u) / 2 = sigmoid(2u): no cancellation near tanh u = -1;
                # the factor raised to low as in the exact form
                d[j] = (low if v < low else v) * _sigmoid(k2 * (v + cubic * v * v * v))
        elif code == SILU:
            for j in range(N):
                v = d[j]
                d[j] = v * _sigmoid(v)
        elif code == SIGMOID:
            for j in range(N):
                d[j] = _sigmoid(d[j])
        elif code == TANH:
            for j in range(N):
                d[j] = _tanh(d[j])


@njit
def bias_act_rows(c, bias, has_bias, z_out, store_z, code, alpha, r0, r1):
    """In place on rows r0:r1 of c: z = c + bias (kept in z_out if store_z),
    c = f(z)."""
    _act_rows(c, c, True, bias, has_bias, z_out, store_z, code, alpha, r0, r1)


@njit
def act_grad_rows(dy, y, z, code, alpha, g, r0, r1):
    """g[r0:r1] = dL/dz from dy and the saved output y (or input z).
    Constants in dy's dtype, as in :func:`_act_rows`.

    The branch on ``code`` is outside the row loop: with all the branches
    inside it, LLVM left even the ReLU loop unvectorised (4.3 ms against 1.4
    ms serially on conv1's 86,528 x 32 rows)."""
    N = dy.shape[1]
    one = dy.dtype.type(1.0)
    zero = dy.dtype.type(0.0)
    if code == RELU:
        # 0 where y <= 0, whatever dy holds (NaN, inf), else dy, a NaN y
        # included (NaN <= 0 is false), as PyTorch's threshold_backward
        # (y <= 0 ? 0 : dy), and the references (np.where, not dy * mask)
        for i in range(r0, r1):
            d, yr, out = dy[i], y[i], g[i]
            for j in range(N):
                out[j] = zero if yr[j] <= zero else d[j]
    elif code == LEAKY_RELU:
        for i in range(r0, r1):
            d, yr, out = dy[i], y[i], g[i]
            for j in range(N):
                out[j] = d[j] if yr[j] > zero else d[j] * alpha
    elif code == ELU:
        # alpha e^z from z itself: y + alpha (the output's form) cancels for
        # z << 0 (float32 lost every digit below z = -17)
        for i in range(r0, r1):
            d, zr, out = dy[i], z[i], g[i]
            for j in range(N):
                v = zr[j]
                out[j] = d[j] if v > zero else d[j] * (alpha * math.exp(v))
    elif code == SIGMOID:
        for i in range(r0, r1):
            d, yr, out = dy[i], y[i], g[i]
            for j in range(N):
                out[j] = d[j] * yr[j] * (one - yr[j])
    elif code == TANH:
        for i in range(r0, r1):
            d, yr, out = dy[i], y[i], g[i]
            for j in range(N):
                out[j] = d[j] * (one - yr[j] * yr[j])
    elif code == GELU:
        c = dy.dtype.type(GELU_TANH_CLAMP)
        for i in range(r0, r1):
            d, zr, out = dy[i], z[i], g[i]
            for j in range(N):
                v = zr[j]
                # the same slope (Phi exactly 0 or 1 beyond, phi exactly 0), and at
                # +-inf not inf * 0 = NaN in v * phi(v) (NaN passes), as gelu_clamp
                v = c if v > c else v
                v = -c if v < -c else v
                cdf, pdf = _gauss(v)
                out[j] = d[j] * (cdf + v * pdf)
    elif code == GELU_TANH:
        k2 = dy.dtype.type(2.0 * _SQRT_2_OVER_PI)
        cubic = dy.dtype.type(_GELU_CUBIC)
        k2_du = dy.dtype.type(6.0 * _SQRT_2_OVER_PI * _GELU_CUBIC)
        c = dy.dtype.type(GELU_TANH_CLAMP)
        for i in range(r0, r1):
            d, zr, out = dy[i], z[i], g[i]
            for j in range(N):
                v = zr[j]
                v = c if v > c else v  # same slope, no overflow (NaN passes)
                v = -c if v < -c else v
                # s = sigmoid(2u) = (1 + tanh u) / 2, as in the forward; with
                # 1 - tanh^2 u = 4 s (1 - s): f' = s + 2 v s (1 - s) du/dv
                s = _sigmoid(k2 * (v + cubic * v * v * v))
                du2 = k2 + k2_du * v * v  # 2 du/dv
                out[j] = d[j] * (s + v * s * (one - s) * du2)
    elif code == SILU:
        for i in range(r0, r1):
            d, zr, out = dy[i], z[i], g[i]
            for j in range(N):
                v = zr[j]
                s = _sigmoid(v)
                out[j] = d[j] * s * (one + v * (one - s))
    else:
        for i in range(r0, r1):
            d, out = dy[i], g[i]
            for j in range(N):
                out[j] = d[j]


@njit(parallel=True)
def _act_forward(z, y, code, alpha, n_chunks):
    M = z.shape[0]
    for t in prange(n_chunks):
        r0 = (M * t) // n_chunks
        r1 = (M * (t + 1)) // n_chunks
        _act_rows(z, y, False, y[0], False, y, False, code, alpha, r0, r1)


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


def _rows_out(out, shape):
    """``(rows, copied)``: ``out`` reshaped to the 2-D ``shape``; ``copied``
    when its layout has no such view (an F-ordered 3-D ``out``, say) and
    reshape made a new array, whose values the caller copies back into
    ``out`` (before, they were silently dropped). A view is the usual case:
    no copy."""
    rows = out.reshape(shape)
    return rows, not np.may_share_memory(rows, out)


def _chunks(n_rows, n_cols):
    from .config import split_count
    # below ~256k elements (~50 µs) a second thread costs more than it saves
    return split_count(n_rows, n_rows * n_cols, 1 << 18)


def _check_code(code):
    if not isinstance(code, (int, np.integer)) or not 0 <= code <= TANH:
        raise ValueError(f"activation kernel expected a code in 0..{TANH} (see ACT_CODES), "
                         f"received {code!r}")


def check_saved(code, y, z, who):
    """Refuse a missing saved array that the backward of ``code`` reads: the
    input ``z`` where :func:`needs_input`, else the output ``y`` (the kernels
    would otherwise read dy in its place and return a wrong gradient)."""
    if code == IDENTITY:
        return
    name, array = ("the input z", z) if needs_input(code) else ("the output y", y)
    if array is None:
        raise ValueError(f"{who} expected {name} of the forward pass for activation code "
                         f"{code} (see ACT_CODES), received None")


def check_alpha(code, alpha, who):
    r"""Refuse a leaky_relu ``alpha`` below 0 (or NaN): its backward tells
    :math:`z > 0` from :math:`y > 0`, which holds only for :math:`\alpha \ge 0`
    (with :math:`\alpha < 0` a negative z gives y > 0, and the gradient 1
    instead of alpha). The LeakyReLU layer refuses it likewise."""
    if code == LEAKY_RELU and not alpha >= 0:
        raise ValueError(f"{who} expected alpha >= 0 for leaky_relu (code {LEAKY_RELU}: its "
                         f"backward reads the sign of z from y), received {alpha!r}")


def _check_out_apart(who, out, inputs):
    """``out`` shares no memory with the arrays of ``inputs`` (by name) unless
    it is one of them itself, the same view (:func:`.checks.check_disjoint`
    with ``same_ok``). The kernels run down the rows (each thread its own
    block of them), reading a row of the inputs and writing the same row of
    ``out``: an ``out`` over the input's rows shifted by one was written
    before it was read, and returned garbage (a max error of 0.64 on a
    64x8 sigmoid, forward and backward; the references, which compute into
    a new array, were right). The input itself is safe: :func:`_act_rows`
    copies each row of z into out's same row before the activation runs in
    place on it, :func:`act_grad_rows` reads element ``[i, j]`` of dy, y
    and z before it writes element ``[i, j]`` of out and never again, and
    an input the wrappers copy (not C-contiguous) is not out's memory any
    more: in place gives the bits of a separate ``out``."""
    check_disjoint(who, {"out": out}, inputs, same_ok={"out": tuple(inputs)})


def _check_forward(z, code, alpha=0.0, out=None):
    """Checks of :func:`act_forward` and its reference: a known code and
    alpha (:func:`check_alpha`), float z, a writable ``out`` of z's shape
    that is z itself or shares no memory with it (:func:`_check_out_apart`)."""
    _check_code(code)
    check_alpha(code, alpha, "act_forward")
    z = check_float_array(z, "act_forward", "z")
    check_shapes("act_forward", z.shape, out=out)
    check_writable("act_forward", out=out)
    _check_out_apart("act_forward", out, {"z": z})


def _check_backward(dy, y, z, code, alpha=0.0, out=None):
    """Checks of :func:`act_backward` and its reference: a known code and
    alpha (:func:`check_alpha`), the saved array the code reads
    (:func:`check_saved`), float dy, y / z / a writable ``out`` of dy's shape
    that is dy, y or z itself or shares no memory with them
    (:func:`_check_out_apart`)."""
    _check_code(code)
    check_alpha(code, alpha, "act_backward")
    check_saved(code, y, z, "act_backward")
    dy = check_float_array(dy, "act_backward", "dy")
    check_shapes("act_backward", dy.shape, y=y, z=z, out=out)
    check_writable("act_backward", out=out)
    _check_out_apart("act_backward", out, {"dy": dy, "y": y, "z": z})


@checked(_check_forward)
def act_forward(z, code, alpha=0.0, out=None):
    """y = f(z) for the activation ``code`` (see the table above).

    Parameters
    ----------
    z : ndarray of shape (batch, ...), float32 or float64
    code : int
    alpha : float, slope / scale of leaky_relu and elu
    out : ndarray of z's shape and dtype, optional, any layout: z itself
        (in place), or sharing no memory with it

    Checks its arguments (``.trusted`` does not: see :mod:`.checks`).
    """
    z = np.asarray(z)
    y = np.empty_like(z, order="C") if out is None else out
    if z.size == 0:
        return y
    z2 = _as_rows(z)
    y2, copied = _rows_out(y, z2.shape)
    _act_forward(z2, y2, code, z.dtype.type(alpha), _chunks(*z2.shape))
    if copied:
        y[...] = y2.reshape(y.shape)
    return y


@checked(_check_backward)
def act_backward(dy, y, z, code, alpha=0.0, out=None):
    """dL/dz from dL/dy and the saved output y (or the input z where
    :func:`needs_input`); ``z`` may be None otherwise. ``out`` (dy's shape,
    any layout) may be dy, y or z itself, else it shares no memory with
    them. Checks its arguments (``.trusted`` does not)."""
    dy = np.asarray(dy)
    g = np.empty_like(dy, order="C") if out is None else out
    if dy.size == 0:
        return g
    d2 = _as_rows(dy)
    y2 = _as_rows(y) if y is not None else d2
    z2 = _as_rows(z) if z is not None else d2
    g2, copied = _rows_out(g, d2.shape)
    _act_backward(d2, y2, z2, code, dy.dtype.type(alpha), g2, _chunks(*d2.shape))
    if copied:
        g[...] = g2.reshape(g.shape)
    return g


# --------------------------------------------------------------- references
def stable_sigmoid(z):
    r"""The logistic function :math:`\sigma(z) = 1 / (1 + e^{-z})`, array-wise,
    without overflow: :math:`1 / (1 + e^{-|z|})` for :math:`z \ge 0` and
    :math:`e^{-|z|} / (1 + e^{-|z|})` below, so no exponential exceeds 1 and
    :math:`\sigma(z)` keeps its relative precision far into the negative
    tail (:math:`\tfrac12(1 + \tanh \tfrac z2)` rounds to 0 there). In z's
    float precision. The NumPy form of the kernels' float64 ``_sigmoid_exact``;
    tinynet's Sigmoid/SiLU layers, losses and functional nets all call it."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def gelu_tanh_gate(z):
    r"""gelu_tanh's gate :math:`s = \sigma(2u) = \tfrac12 (1 + \tanh u)`,
    :math:`u = \sqrt{2/\pi}\,(z + 0.044715 z^3)`, array-wise, with the stable
    sigmoid: the NumPy form of the kernel's (and the GELU layer's) gate.

    Not :math:`\tfrac12 (1 + \tanh u)` itself: :math:`\tanh u` rounds to -1
    for :math:`u \lesssim -9` in float32 (:math:`z \le -5.5`), where that gave
    exactly 0 (30 % off already at -5), and for :math:`u \lesssim -19` in
    float64 (:math:`z < -7`); :math:`\sigma(2u) = e^{2u} / (1 + e^{2u})` keeps
    its relative precision. ``z`` is clamped first (:func:`gelu_clamp`): the
    same gate, and no overflow in :math:`z^3`."""
    zc = gelu_clamp(z)
    return stable_sigmoid(2.0 * _SQRT_2_OVER_PI * (zc + _GELU_CUBIC * (zc * zc * zc)))


def gelu_tanh_slope(z, s):
    r"""gelu_tanh's derivative from its gate ``s`` (:func:`gelu_tanh_gate`):
    with :math:`\tfrac12 (1 + \tanh u) = s` and :math:`\tfrac12 (1 - \tanh^2 u)
    = 2 s (1 - s)`,

    .. math::
        f'(z) = s + 2 z\, s (1 - s)\, \frac{du}{dz}, \qquad
        \frac{du}{dz} = \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715 z^2)

    (no :math:`1 \pm \tanh u` to cancel), on the clamped ``z``: beyond the
    clamp the second term is exactly 0 in either precision."""
    zc = gelu_clamp(z)
    du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * zc * zc)
    return s + 2.0 * zc * s * (1.0 - s) * du


def _erfc_ref(x):
    return np.vectorize(math.erfc, otypes=[np.float64])(x).astype(x.dtype, copy=False)


@checked(_check_forward)
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
        y = gelu_factor(z) * (0.5 * _erfc_ref(-z * z.dtype.type(_SQRT_HALF)))
    elif code == GELU_TANH:
        y = gelu_factor(z) * gelu_tanh_gate(z)
    elif code == SILU:
        y = z * stable_sigmoid(z)
    elif code == SIGMOID:
        y = stable_sigmoid(z)
    elif code == TANH:
        y = np.tanh(z)
    else:
        _check_code(code)
    y = y.astype(z.dtype, copy=False)
    if out is not None:
        out[...] = y
        return out
    return y


@checked(_check_backward)
def act_backward_ref(dy, y, z, code, alpha=0.0, out=None):
    """NumPy reference of :func:`act_backward`."""
    dy = np.asarray(dy)
    a = dy.dtype.type(alpha)
    if code == IDENTITY:
        g = dy.copy()
    elif code == RELU:
        g = np.where(y <= 0, dy.dtype.type(0), dy)  # as torch: 0 even for a NaN dy, dy at a NaN y
    elif code == LEAKY_RELU:
        g = np.where(y > 0, dy, dy * a)
    elif code == ELU:
        g = np.where(z > 0, dy, dy * (a * np.exp(np.minimum(z, 0))))
    elif code == SIGMOID:
        g = dy * y * (1 - y)
    elif code == TANH:
        g = dy * (1 - y * y)
    elif code == GELU:
        zc = gelu_clamp(z)  # as the kernel: no inf * 0 at +-inf
        cdf = 0.5 * _erfc_ref(-zc * z.dtype.type(_SQRT_HALF))
        g = dy * (cdf + zc * _INV_SQRT_2PI * np.exp(-0.5 * zc * zc))
    elif code == GELU_TANH:
        g = dy * gelu_tanh_slope(z, gelu_tanh_gate(z))
    elif code == SILU:
        s = stable_sigmoid(z)
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
