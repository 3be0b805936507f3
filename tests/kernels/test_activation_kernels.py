"""Activation and fused dense kernels against their NumPy references."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.kernels import activations as act
from tinynet.kernels import dense
from kernel_helpers import array, dims, dtypes, each_gemm_engine, layouts, needs_numba, tol

pytestmark = needs_numba
_ = each_gemm_engine  # the fixture, imported for the dense tests below

codes = st.sampled_from(sorted(set(act.ACT_CODES.values())))


@given(m=dims, n=dims, code=codes, dtype=dtypes, layout=layouts, seed=st.integers(0, 2**31))
def test_act_forward_backward_match_reference(m, n, code, dtype, layout, seed):
    rng = np.random.default_rng(seed)
    z = array(rng, (m, n), dtype, layout, scale=3.0)
    dy = array(rng, (m, n), dtype, layout)
    y = act.act_forward(z, code, 0.2)
    y_ref = act.act_forward_ref(z, code, 0.2)
    assert y.dtype == dtype and y.shape == z.shape
    np.testing.assert_allclose(y, y_ref, **tol(dtype, 4))
    g = act.act_backward(dy, y_ref, z, code, 0.2)
    np.testing.assert_allclose(g, act.act_backward_ref(dy, y_ref, z, code, 0.2), **tol(dtype, 4))


@given(m=dims, n=dims, code=codes, dtype=dtypes, seed=st.integers(0, 2**31))
def test_act_forward_in_place(m, n, code, dtype, seed):
    """``out=z`` (documented): the kernel then reads and writes one array."""
    z = array(np.random.default_rng(seed), (m, n), dtype, scale=3.0)
    expected = act.act_forward_ref(z, code, 0.2)
    assert act.act_forward(z, code, 0.2, out=z) is z
    np.testing.assert_allclose(z, expected, **tol(dtype, 4))


def test_act_backward_from_output_matches_derivative():
    """The from-output forms are the true derivatives (central differences)."""
    z = np.linspace(-4, 4, 81).reshape(1, -1)
    z = z[np.abs(z) > 1e-3].reshape(1, -1)  # away from the kinks
    h = 1e-6
    for name, code in act.ACT_CODES.items():
        numeric = (act.act_forward_ref(z + h, code, 0.2)
                   - act.act_forward_ref(z - h, code, 0.2)) / (2 * h)
        y = act.act_forward(z, code, 0.2)
        g = act.act_backward(np.ones_like(z), y, z, code, 0.2)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_nan_and_inf_propagate():
    z = np.array([[np.nan, np.inf, -np.inf, 1.0]], np.float32)
    y = act.act_forward(z, act.RELU)
    assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and y[0, 2] == 0 and y[0, 3] == 1
    assert np.isnan(act.act_forward(z, act.TANH)[0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_is_zero_where_y_is_zero_whatever_dy_holds(dtype):
    """As PyTorch's threshold_backward: 0 where y <= 0, even for a NaN or inf
    dy, on both backends (the numpy layer once gave NaN there, dy * (y > 0),
    while the numba kernel gave 0); dy itself where y > 0."""
    y = np.array([[0.0, 0.0, -0.0, 2.0, 0.0, 3.0]], dtype)
    dy = np.array([[np.nan, np.inf, -np.inf, np.nan, 1.0, np.inf]], dtype)
    expected = np.array([[0.0, 0.0, 0.0, np.nan, 0.0, np.inf]], dtype)
    np.testing.assert_array_equal(act.act_backward_ref(dy, y, None, act.RELU), expected)
    np.testing.assert_array_equal(act.act_backward(dy, y, None, act.RELU), expected)
    np.testing.assert_array_equal(tn.layers.ReLU()._backward(None, y, dy), expected)
    db = np.zeros(6, dtype)  # the fused dense backward's pass
    g = dense.act_grad_bias(dy, y, None, act.RELU, 0.0, None, db)
    np.testing.assert_array_equal(g, expected)
    np.testing.assert_array_equal(db, expected[0])
    try:
        import torch
    except ImportError:
        return
    t_y = torch.tensor(y[0], requires_grad=False)
    grad = torch.ops.aten.threshold_backward(torch.tensor(dy[0]), t_y, 0)
    np.testing.assert_array_equal(grad.numpy(), expected[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_of_any_layout_receives_the_result(dtype):
    """``out`` (or ``z`` itself) F-ordered with more than two dimensions has no
    2-D row view: the results must still land in it, not in a dropped copy."""
    z = np.random.default_rng(0).standard_normal((4, 3, 6)).astype(dtype)
    expected = act.act_forward_ref(z, act.SILU)
    z_f = np.asfortranarray(z)
    assert act.act_forward(z_f, act.SILU, out=z_f) is z_f
    np.testing.assert_allclose(z_f, expected, **tol(dtype, 4))
    out = np.zeros(z.shape, dtype, order="F")
    assert act.act_forward(z, act.SILU, out=out) is out
    np.testing.assert_allclose(out, expected, **tol(dtype, 4))
    dy = z[::-1].copy()
    g = np.zeros(z.shape, dtype, order="F")
    assert act.act_backward(dy, expected, z, act.SILU, out=g) is g
    np.testing.assert_allclose(g, act.act_backward_ref(dy, expected, z, act.SILU), **tol(dtype, 4))


@pytest.mark.parametrize("code, y_given", [(act.ELU, True), (act.SILU, True),
                                            (act.RELU, False), (act.TANH, False)])
def test_backward_without_the_saved_array_it_needs_is_refused(code, y_given):
    """Without z (elu, gelu, silu) or y (the others) the kernels read dy in
    its place and returned a wrong gradient; now a clear error."""
    dy = np.ones((2, 3))
    y, z = (dy, None) if y_given else (None, dy)
    with pytest.raises(ValueError, match="expected the (input z|output y)"):
        act.act_backward(dy, y, z, code)
    with pytest.raises(ValueError, match="expected the (input z|output y)"):
        dense.dense_backward(dy, np.ones((3, 3)), dy, y, z, code, 0.0, np.zeros((3, 3)), None)


def test_bad_code_is_refused():
    with pytest.raises(ValueError, match="code"):
        act.act_forward(np.ones((2, 2)), 99)


@pytest.mark.usefixtures("each_gemm_engine")
@given(m=dims, k=dims, n=st.sampled_from([1, 3, 10, 17]), code=codes, dtype=dtypes,
       use_bias=st.booleans(), keep_z=st.booleans(), layout=layouts,
       seed=st.integers(0, 2**31))
def test_dense_forward_matches_reference(m, k, n, code, dtype, use_bias, keep_z, layout,
                                         seed):
    rng = np.random.default_rng(seed)
    x, w = array(rng, (m, k), dtype, layout), array(rng, (k, n), dtype)
    b = array(rng, (n,), dtype) if use_bias else None
    z = np.empty((m, n), dtype) if keep_z else None
    y = dense.dense_forward(x, w, b, code, 0.2, z_out=z)
    z_ref = np.empty((m, n), dtype)
    np.testing.assert_allclose(y, dense.dense_forward_ref(x, w, b, code, 0.2, z_out=z_ref),
                               **tol(dtype, k + 4))
    if keep_z:
        np.testing.assert_allclose(z, z_ref, **tol(dtype, k))


@pytest.mark.usefixtures("each_gemm_engine")
@given(m=dims, k=dims, n=st.sampled_from([1, 3, 10, 17]), code=codes, dtype=dtypes,
       use_bias=st.booleans(), need_dx=st.booleans(), seed=st.integers(0, 2**31))
def test_dense_backward_matches_reference(m, k, n, code, dtype, use_bias, need_dx, seed):
    rng = np.random.default_rng(seed)
    x, w, dy = (array(rng, s, dtype) for s in ((m, k), (k, n), (m, n)))
    z = array(rng, (m, n), dtype)
    y = act.act_forward_ref(z, code, 0.2)
    dw, dw_ref = array(rng, (k, n), dtype), None
    dw_ref = dw.copy()
    db = array(rng, (n,), dtype) if use_bias else None
    db_ref = None if db is None else db.copy()
    dx = dense.dense_backward(x, w, dy, y, z, code, 0.2, dw, db, need_dx)
    dx_ref = dense.dense_backward_ref(x, w, dy, y, z, code, 0.2, dw_ref, db_ref, need_dx)
    np.testing.assert_allclose(dw, dw_ref, **tol(dtype, 4 * m + 4))
    if use_bias:
        np.testing.assert_allclose(db, db_ref, **tol(dtype, 4 * m + 4))
    if need_dx:
        np.testing.assert_allclose(dx, dx_ref, **tol(dtype, 4 * n + 4))
    else:
        assert dx is None


@given(m=st.sampled_from([0, 1, 5, 64, 300]), n=dims, dtype=dtypes, seed=st.integers(0, 2**31))
def test_bias_grad_per_thread_partials(m, n, dtype, seed):
    rng = np.random.default_rng(seed)
    g = array(rng, (m, n), dtype)
    db = array(rng, (n,), dtype)
    expected = db + g.sum(axis=0)
    np.testing.assert_allclose(dense.bias_grad(g, db), expected, **tol(dtype, m))


# ------------------------------------------- float32 tanh / sigmoid accuracy
#: ulp bounds measured over every float32 by ``tests/kernels/elementwise_fit.py --all``
TANH32_MAX_ULPS = 6
SIGMOID32_MAX_ULPS = 2
#: GELU in float32 (gauss32): forward for v >= 0, and in the lower tail (v < 0,
#: the Mills-ratio form), and its derivative for v >= 0 and v <= -2 (between
#: -2 and 0 it crosses zero at v = -0.75, where no relative bound can hold)
GELU32_MAX_ULPS, GELU32_TAIL_MAX_ULPS = 2, 5  # every 61st float32: 1 and 4
DGELU32_MAX_ULPS, DGELU32_TAIL_MAX_ULPS = 2, 4


def _forward32(code, x):
    return act.act_forward(np.asarray(x, np.float32).reshape(1, -1), code)[0]


def _backward32(code, x):
    """f'(x) in float32: the backward of a unit gradient at the forward's output."""
    x = np.asarray(x, np.float32).reshape(1, -1)
    return act.act_backward(np.ones_like(x), act.act_forward(x, code), x, code)[0]


def _sigmoid64(x):
    return 1 / (1 + np.exp(-x))


def _ulp_error(y32, exact64):
    from elementwise_fit import ulps
    exact64 = np.asarray(exact64, np.float64)
    flip = exact64 < 0  # measure negative values through their magnitude
    return ulps(np.where(flip, -y32, y32).astype(np.float32), np.where(flip, -exact64, exact64))


@given(x=st.lists(st.floats(-30, 30, width=32, allow_subnormal=True), min_size=1, max_size=64))
def test_tanh32_within_ulp_bound(x):
    x = np.array(x, np.float32)
    err = _ulp_error(_forward32(act.TANH, x), np.tanh(x.astype(np.float64)))
    assert err.max() <= TANH32_MAX_ULPS, x[err.argmax()]


@given(x=st.lists(st.floats(-87, 30, width=32, allow_subnormal=True), min_size=1, max_size=64))
def test_sigmoid32_within_ulp_bound(x):
    x = np.array(x, np.float32)
    err = _ulp_error(_forward32(act.SIGMOID, x), _sigmoid64(x.astype(np.float64)))
    assert err.max() <= SIGMOID32_MAX_ULPS, x[err.argmax()]


def test_float32_tanh_and_sigmoid_on_a_dense_grid():
    from elementwise_fit import max_ulps
    tanh = lambda x: _forward32(act.TANH, x)  # noqa: E731
    assert max_ulps(tanh, np.tanh, 1e-30, 12.0, step=9973)[0] <= TANH32_MAX_ULPS
    assert max_ulps(lambda x: _forward32(act.SIGMOID, -x), lambda x: _sigmoid64(-x),
                    1e-30, 87.0, step=9973)[0] <= SIGMOID32_MAX_ULPS
    assert max_ulps(lambda x: _forward32(act.SIGMOID, x), _sigmoid64,
                    1e-30, 20.0, step=9973)[0] <= SIGMOID32_MAX_ULPS


def _gelu64(x):
    from elementwise_fit import _normal_tail
    return x * _normal_tail(-x)


def _dgelu64(x):
    from elementwise_fit import _normal_tail
    return _normal_tail(-x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@given(x=st.lists(st.floats(-13.0, 13.25, width=32), min_size=1, max_size=64))
def test_gelu32_within_ulp_bound(x):
    x = np.array(x, np.float32)
    err = _ulp_error(_forward32(act.GELU, x), _gelu64(x.astype(np.float64)))
    bound = np.where(x >= 0, GELU32_MAX_ULPS, GELU32_TAIL_MAX_ULPS)
    assert (err <= bound).all(), x[np.argmax(err - bound)]


def test_float32_gelu_and_its_derivative_on_a_dense_grid():
    from elementwise_fit import max_ulps
    gelu = lambda x: _forward32(act.GELU, x)  # noqa: E731
    assert max_ulps(gelu, _gelu64, 1e-30, 13.4, step=9973)[0] <= GELU32_MAX_ULPS
    assert max_ulps(lambda x: -gelu(-x), lambda x: -_gelu64(-x), 1e-30, 13.0,
                    step=9973)[0] <= GELU32_TAIL_MAX_ULPS
    dgelu = lambda x: _backward32(act.GELU, x)  # noqa: E731
    assert max_ulps(dgelu, _dgelu64, 1e-30, 13.4, step=9973)[0] <= DGELU32_MAX_ULPS
    assert max_ulps(lambda x: -dgelu(-x), lambda x: -_dgelu64(-x), 2.0, 13.0,
                    step=997)[0] <= DGELU32_TAIL_MAX_ULPS


def test_float32_gelu_tanh_is_accurate_in_its_lower_tail_too():
    """gelu_tanh as v * sigmoid(2u), u = sqrt(2/pi) (v + 0.044715 v^3): within 3
    ulps for v >= 0 (9 for the derivative); below 0 the float32 rounding of u
    itself is amplified by |2u| in e^(2u) (161 ulps, 9.5e-6 relative at v = -9),
    where 1 + tanh(u) had cancelled to nothing (the old form gave 0 below v = -5.2)."""
    from elementwise_fit import max_ulps
    k, c = math.sqrt(2 / math.pi), 0.044715

    def f64(v):
        return v / (1 + np.exp(-2 * k * (v + c * v ** 3)))

    def d64(v):
        s = 1 / (1 + np.exp(-2 * k * (v + c * v ** 3)))
        return s + v * s * (1 - s) * 2 * k * (1 + 3 * c * v * v)

    fwd = lambda x: _forward32(act.GELU_TANH, x)  # noqa: E731
    grad = lambda x: _backward32(act.GELU_TANH, x)  # noqa: E731
    assert max_ulps(fwd, f64, 1e-30, 20.0, step=9973)[0] <= 3
    assert max_ulps(grad, d64, 1e-30, 20.0, step=9973)[0] <= 9
    v = -np.linspace(0.01, 9, 20001).astype(np.float32)
    np.testing.assert_allclose(fwd(v), f64(v.astype(np.float64)), rtol=2e-5, atol=0)


@pytest.mark.parametrize("dtype, low, rtol", [(np.float32, -9.0, 2e-5),
                                              (np.float64, -20.0, 4e-13)])
def test_gelu_tanh_kernel_and_reference_agree_relatively(dtype, low, rtol):
    """Relatively, down the lower tail (the random-input comparisons above
    have an absolute floor, under which the reference's old 0.5 z (1 + tanh u),
    -0.0 from z = -5.5 in float32, passed); apart only by the rounding of u,
    amplified by |2u| in e^(2u) (66 at -9 in float32, 600 at -20 in float64)."""
    z = np.linspace(low, 20.0, 4001).astype(dtype).reshape(1, -1)
    z = z[np.abs(z) > 0.05].reshape(1, -1)  # the slope's zero near -0.75 is kept
    np.testing.assert_allclose(act.act_forward(z, act.GELU_TANH),
                               act.act_forward_ref(z, act.GELU_TANH), rtol=rtol, atol=0)
    tail = z[:, (z[0] <= -2) | (z[0] >= 0)]
    dy = np.ones_like(tail)
    np.testing.assert_allclose(act.act_backward(dy, None, tail, act.GELU_TANH),
                               act.act_backward_ref(dy, None, tail, act.GELU_TANH),
                               rtol=rtol, atol=0)


def test_float32_gelu_corner_cases():
    """The same special values as libm's erfc gave, but GELU(-inf): the tails
    beyond |v| = 13.3 are exactly 0 (true values below float32's smallest
    normal), tiny v give v / 2, and -inf gives that limit 0 (it was -inf * 0,
    NaN: see gelu_factor). The slopes at +-inf are 1 and 0, as the NumPy
    path's (v is clamped: v * phi(v) was inf * 0, NaN)."""
    x = np.array([0.0, -0.0, 1e-30, -1e-30, 14.0, -14.0, 100.0, -100.0, np.inf, -np.inf,
                  np.nan], np.float32)
    y = _forward32(act.GELU, x)
    np.testing.assert_array_equal(y[:4], x[:4] / 2)
    np.testing.assert_array_equal(y[[4, 6, 8]], x[[4, 6, 8]])
    assert y[5] == 0 and y[7] == 0 and y[9] == 0 and np.isnan(y[10])
    g = _backward32(act.GELU, x)
    np.testing.assert_array_equal(g[:10], [0.5] * 4 + [1, 0, 1, 0, 1, 0])
    assert np.isnan(g[10])


def test_float32_tanh_corner_cases():
    x = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-30, -1e-30, 9.02, -9.02, 20, -20,
                  3e38, -3e38, np.inf, -np.inf, np.nan], np.float32)
    y = _forward32(act.TANH, x)
    np.testing.assert_array_equal(y[:6], x[:6])  # tanh x = x below float32 resolution
    assert np.signbit(y[1])  # -0.0 stays -0.0
    np.testing.assert_array_equal(y[6:14], [1, -1] * 4)  # exactly +-1, never beyond
    assert np.isnan(y[14])


def test_float32_sigmoid_corner_cases():
    x = np.array([0.0, -0.0, 1e-30, 30, -30, 200, -200, np.inf, -np.inf, np.nan], np.float32)
    y = _forward32(act.SIGMOID, x)
    np.testing.assert_array_equal(y[[0, 1, 2, 3, 5, 6, 7, 8]], [0.5, 0.5, 0.5, 1, 1, 0, 1, 0])
    np.testing.assert_allclose(y[4], np.exp(-30.0), rtol=3e-7)
    assert np.isnan(y[9])
    s = _forward32(act.SILU, x)
    assert s[3] == 30 and s[5] == 200 and s[6] == 0 and np.isnan(s[9])


def test_fitted_coefficients_are_reproduced():
    """The constants in the kernel are what the documented fit gives."""
    from elementwise_fit import fit_exp, fit_tanh
    p, q, err = fit_tanh()
    assert err < 2e-9
    np.testing.assert_allclose(np.float32(act._TANH_P), p, rtol=1e-5)
    np.testing.assert_allclose(np.float32(act._TANH_Q), q, rtol=1e-5)
    c, err = fit_exp()
    assert err < 1e-8
    np.testing.assert_allclose(np.float32(act._EXP_C), c, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code", [act.GELU, act.GELU_TANH])
def test_gelu_slopes_at_infinity_are_zero_and_one(code, dtype):
    """The exact form gave NaN at +-inf (inf * phi(inf) = inf * 0) in the
    kernel (act_backward, and act_grad_bias / dense_backward, which share its
    rows) and its reference; its input is clamped as the tanh form's."""
    z = np.array([[-np.inf, np.inf, np.nan, -1e30, 1e30]], dtype)
    dy = np.full_like(z, 0.5)
    expected = [[0, 0.5, np.nan, 0, 0.5]]
    for backward in (act.act_backward, act.act_backward_ref):
        np.testing.assert_array_equal(backward(dy, None, z, code), expected)
    db = np.zeros(5, dtype)
    np.testing.assert_array_equal(dense.act_grad_bias(dy, None, z, code, 0.0, None, db),
                                  expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("code", [act.GELU, act.GELU_TANH])
def test_gelu_at_minus_infinity_is_its_limit_zero(code, dtype):
    """GELU(-inf) was -inf * gate(-inf) = -inf * 0, NaN, in both forms, in the
    kernel (act_forward, and dense_forward, which shares its rows) and its
    reference; now the factor is raised to -GELU_TANH_CLAMP, where the gate
    is exactly 0 already (gelu_factor): -0.0, as at -1e30. +inf stays +inf,
    NaN stays NaN, and nothing warns."""
    z = np.array([[-np.inf, np.inf, np.nan, -1e30, -100.0, -101.0, 3.0]], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [act.act_forward(z, code), act.act_forward_ref(z, code)]
        one = np.ones((1, 1), dtype)  # (an identity matrix would add -inf * 0)
        outs += [forward(z.T.copy(), one, None, code).T for forward in (dense.dense_forward,
                                                                        dense.dense_forward_ref)]
    for y in outs:
        np.testing.assert_array_equal(y[0, :6], [0, np.inf, np.nan, 0, 0, 0])
        assert np.signbit(y[0, 0]) == np.signbit(y[0, 3])  # the same zero as at -1e30
    np.testing.assert_array_equal(outs[0][0, 4:], outs[1][0, 4:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_passes_dy_at_a_nan_output(dtype):
    """0 where y <= 0 (even for a NaN or infinite dy), dy elsewhere, a NaN y
    included, as PyTorch's threshold_backward: the kernel (act_backward, and
    act_grad_bias, which shares its rows) gave 0 at a NaN y, and its reference."""
    y = np.array([[np.nan, 0.0, 2.0, 0.0, np.nan]], dtype)
    dy = np.array([[3.0, np.nan, 4.0, np.inf, np.nan]], dtype)
    expected = [[3.0, 0.0, 4.0, 0.0, np.nan]]
    for backward in (act.act_backward, act.act_backward_ref):
        np.testing.assert_array_equal(backward(dy, y, None, act.RELU), expected)
    db = np.zeros(5, dtype)
    np.testing.assert_array_equal(dense.act_grad_bias(dy, y, None, act.RELU, 0.0, None, db),
                                  expected)


def test_gelu_factor_raises_to_the_clamp_and_keeps_nan_and_dtype():
    for dtype in (np.float32, np.float64):
        x = np.array([-np.inf, -1e30, -100.0, -99.0, np.nan, np.inf], dtype)
        out = act.gelu_factor(x)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, [-100, -100, -100, -99, np.nan, np.inf])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_clamp_is_the_one_clip_of_the_references_and_the_layer(dtype):
    """act.gelu_clamp clips to +-GELU_TANH_CLAMP, keeps NaN and the dtype; the
    NumPy references and the GELU layer's NumPy path use it (no copy of their own)."""
    from tinynet.layers import activations as layer_act
    big = np.finfo(dtype).max
    x = np.array([-np.inf, -big, -100.5, -3.0, np.nan, 0.0, 99.0, big, np.inf], dtype)
    c = act.GELU_TANH_CLAMP
    out = act.gelu_clamp(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, [-c, -c, -c, -3.0, np.nan, 0.0, 99.0, c, c])
    assert layer_act.gelu_clamp is act.gelu_clamp and not hasattr(layer_act, "_clamp")
