"""Activation layers: gradients, values against independent formulas and
torch, numerical stability, registry, configs and errors."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers import activations
from tests.layers.layer_helpers import (TOL, assert_gradients_ok, away_from_zero,
                                        batch_sizes, check_gradients, seeds, widths)

L = tn.layers

# (factory, has a kink at 0)
ACTIVATION_CASES = {
    "identity": (lambda: L.Identity(), False),
    "relu": (lambda: L.ReLU(), True),
    "leaky_relu": (lambda: L.LeakyReLU(), True),
    "leaky_relu_0.3": (lambda: L.LeakyReLU(alpha=0.3), True),
    "leaky_relu_0": (lambda: L.LeakyReLU(alpha=0.0), True),
    "elu": (lambda: L.ELU(), True),
    "elu_0.5": (lambda: L.ELU(alpha=0.5), True),
    "gelu": (lambda: L.GELU(), False),
    "gelu_tanh": (lambda: L.GELU(approximate="tanh"), False),
    "silu": (lambda: L.SiLU(), False),
    "sigmoid": (lambda: L.Sigmoid(), False),
    "tanh": (lambda: L.Tanh(), False),
    "softmax": (lambda: L.Softmax(), False),
}


@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
@given(batch=batch_sizes, width=widths, scale=st.floats(0.1, 4.0), seed=seeds)
def test_backward_matches_finite_differences(case, batch, width, scale, seed):
    factory, kink = ACTIVATION_CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width)) * scale
    if kink:
        x = away_from_zero(x)
    assert_gradients_ok(factory(), x, rng)


@given(shape=st.lists(st.integers(1, 3), min_size=2, max_size=3), seed=seeds,
       data=st.data())
def test_softmax_any_axis_gradients(shape, seed, data):
    ndim = len(shape) + 1
    axis = data.draw(st.sampled_from([a for a in range(-ndim, ndim) if a % ndim != 0]))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *shape)) * 3
    layer = L.Softmax(axis=axis)
    assert_gradients_ok(layer, x, rng)
    y = layer.forward(x)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)


def _gelu_reference(x):
    return np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel()]
                    ).reshape(x.shape)


REFERENCES = {
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "leaky_relu_0.3": lambda x: np.where(x > 0, x, 0.3 * x),
    "elu_0.5": lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)),
    "gelu": _gelu_reference,
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                  * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True),
}


@pytest.mark.parametrize("case", sorted(REFERENCES))
def test_forward_matches_textbook_formula(case):
    x = np.linspace(-6, 6, 42).reshape(6, 7)
    y = ACTIVATION_CASES[case][0]().forward(x)
    np.testing.assert_allclose(y, REFERENCES[case](x), rtol=1e-13, atol=1e-15)


def _torch_modules(torch):
    nn = torch.nn
    return {
        "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.01), "leaky_relu_0.3": nn.LeakyReLU(0.3),
        "elu": nn.ELU(), "elu_0.5": nn.ELU(alpha=0.5), "gelu": nn.GELU(),
        "gelu_tanh": nn.GELU(approximate="tanh"), "silu": nn.SiLU(), "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(), "softmax": nn.Softmax(dim=-1),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_backward_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = away_from_zero(rng.standard_normal((16, 9)) * 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for case, module in _torch_modules(torch).items():
        layer = ACTIVATION_CASES[case][0]()
        xt = torch.tensor(x, requires_grad=True)
        yt = module(xt)
        yt.backward(torch.tensor(dy))
        y = layer.forward(x)
        dx = layer.backward(dy)
        assert y.dtype == dtype and dx.dtype == dtype, case
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol, err_msg=case)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol, err_msg=case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
def test_extreme_inputs_stay_finite_without_warnings(case, dtype):
    x = np.array([[-1e4, -800.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 800.0, 1e4]], dtype=dtype)
    layer = ACTIVATION_CASES[case][0]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype
    assert np.isfinite(y).all() and np.isfinite(dx).all()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [L.GELU, lambda: L.GELU(approximate="tanh"), L.Softmax],
                         ids=["gelu", "gelu_tanh", "softmax"])
def test_inputs_up_to_the_largest_float_give_exact_limits_without_warnings(make, dtype,
                                                                          backend):
    """x**3 (tanh GELU) and x*x (its slope, the exact GELU's density)
    overflow from |x| ~ 1e13 in float32 (1e103 in float64): the tanh GELU's
    gradient came out NaN there (0 * inf; torch's too), on both backends,
    and the NumPy path warned; so did Softmax for a row spanning [-max, max].
    The slopes are 0 far left and 1 far right; the softmax is one-hot."""
    big = np.finfo(dtype).max
    x = np.array([[-big, -1e103 if dtype == np.float64 else -1e20, -1e13, -40.0,
                   40.0, 1e13, 1e20, big]], dtype=dtype)
    with tn.kernels.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = make()
        y = layer.forward(x)
        dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype
    if isinstance(layer, L.Softmax):
        np.testing.assert_array_equal(y, [[0, 0, 0, 0, 0, 0, 0, 1]])
        np.testing.assert_array_equal(dx, 0)
    else:
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        np.testing.assert_array_equal(dx, (x > 0).astype(dtype))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_slope_at_infinity_is_zero_and_one_on_both_backends(approximate, dtype, backend):
    # the exact form's kernel computed inf * phi(inf) = inf * 0 = NaN (its
    # reference too); the layer's NumPy path clamps, as the tanh form does
    x = np.array([[-np.inf, np.inf, -1e30, 1e30]], dtype)
    with tn.kernels.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = L.GELU(approximate=approximate)
        layer.forward(x)
        dx = layer.backward(np.full_like(x, 0.5))
    np.testing.assert_array_equal(dx, [[0, 0.5, 0, 0.5]])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make, slope", [(L.ReLU, 0.0), (lambda: L.LeakyReLU(0.1), 0.1)],
                         ids=["relu", "leaky_relu"])
def test_relu_backward_at_a_nan_input_is_torchs_on_both_backends(make, slope, dtype, backend):
    """ReLU's backward at a NaN input gave 0 (it passed dy where y > 0, which a
    NaN is not); PyTorch's threshold_backward zeroes where y <= 0, which a NaN
    is not either, and passes dy. LeakyReLU's gives alpha dy there, as
    PyTorch's (x > 0 ? dy : alpha dy). Alone and fused into Dense."""
    x = np.array([[np.nan, -1.0, 2.0, 0.0]], dtype)
    dy = np.full_like(x, 3.0)
    expected = dy * np.array([[1.0 if slope == 0.0 else slope, slope, 1.0, slope]], dtype)
    with tn.kernels.use_backend(backend):
        layer = make()
        layer.forward(x)
        dx = layer.backward(dy)
        fused = L.Dense(1, activation=make(), use_bias=False, dtype=dtype)
        fused.build((1,))
        fused.W.value[...] = 1  # z = x, one sample a row
        fused.forward(x.T.copy())
        dx_fused = fused.backward(dy.T.copy()).T
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dx_fused, expected)
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.leaky_relu(t, slope) if slope else torch.relu(t)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(dx, t.grad.numpy())


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_at_minus_infinity_is_its_limit_zero_on_both_backends(approximate, dtype, backend):
    """GELU(-inf) was -inf * Phi(-inf) = -inf * 0, NaN (with a RuntimeWarning
    on the NumPy path), in both forms; its limit, and its value at -1e30, is
    -0.0. PyTorch 2.13 gives NaN there (and, in float32's exact form, at +inf
    too), and -0.0 at -1e30: compared where it is finite."""
    x = np.array([[-np.inf, np.inf, -1e30, 1e30, np.nan, -0.5, 2.0]], dtype)
    with tn.kernels.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = L.GELU(approximate=approximate).forward(x)
        fused = L.Dense(1, activation=L.GELU(approximate=approximate), use_bias=False,
                        dtype=dtype)
        fused.build((1,))
        fused.W.value[...] = 1  # z = x, one sample a row (an identity would add -inf * 0)
        y_fused = fused.forward(x.T.copy()).T
    for out in (y, y_fused):
        np.testing.assert_array_equal(out[0, :5], [0, np.inf, 0, out.dtype.type(1e30), np.nan])
        assert np.signbit(out[0, 0]) == np.signbit(out[0, 2])
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.gelu(torch.from_numpy(x[:, 2:]), approximate=approximate).numpy()
    np.testing.assert_allclose(y[:, 2:], t, rtol=4 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_float32_exact_gelu_is_within_a_few_ulps_on_both_backends(backend):
    """Against math.erfc in float64, for every 50th float32 in [-12, 6]
    (outputs and, left of -1 where the slope has no root nearby, slopes).
    The NumPy path formed x / sqrt(2) and x * x in float32, whose relative
    rounding error erfc and exp multiply by 2 z**2: 190 ulps at x = -12,
    85 in [-10, -1] (PyTorch, whose 1 + erf cancels, is off by up to 2**24)."""
    x = np.linspace(-12, 6, 200_001).astype(np.float32)[None]
    xd = x.astype(np.float64)[0]
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xd])
    exact_y = xd * cdf
    exact_slope = cdf + xd * np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
    with tn.kernels.use_backend(backend):
        layer = L.GELU()
        y = layer.forward(x)[0]
        slope = layer.backward(np.ones_like(x))[0]

    def ulps(a, exact):
        return np.abs(a - exact) / np.spacing(np.abs(exact).astype(np.float32))

    assert ulps(y, exact_y).max() <= 4
    left = xd < -1
    assert ulps(slope[left], exact_slope[left]).max() <= 8


def test_sigmoid_saturates_exactly():
    y = L.Sigmoid().forward(np.array([[-1e4, 0.0, 1e4]]))
    np.testing.assert_array_equal(y, [[0.0, 0.5, 1.0]])


def test_backward_uses_output_only_where_exact():
    for layer in (L.ReLU(), L.LeakyReLU(), L.Sigmoid(), L.Tanh(), L.Softmax()):
        layer.forward(np.ones((2, 3)))
        assert layer._x is None, type(layer).__name__


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 1e-6)])
def test_elu_gradient_keeps_its_digits_far_below_zero(dtype, rtol):
    # alpha e^x from the output, y + alpha, cancels as y -> -alpha: in float32
    # it was 2.6e-2 off at x = -15 and 0 from x = -20 on
    x = np.array([[-5.0, -9.0, -15.0, -20.0, -30.0, -40.0, -80.0]], dtype=dtype)
    exact = 0.5 * np.exp(x.astype(np.float64))
    layer = L.ELU(alpha=0.5)
    layer.forward(x)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), exact, rtol=rtol)
    dense = L.Dense(7, activation=L.ELU(alpha=0.5), use_bias=False, input_dim=7)
    dense.W.value[...] = np.eye(7, dtype=dense.W.value.dtype)
    dense.forward(x.astype(dense.W.value.dtype))
    dx = dense.backward(np.ones((1, 7), dense.W.value.dtype))
    np.testing.assert_allclose(dx, exact, rtol=max(rtol, np.finfo(dx.dtype).eps * 4))


@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
def test_backward_is_right_when_the_backend_changes_after_forward(case):
    """GELU's NumPy backward read the gate its NumPy forward had kept: after a
    kernel forward (which keeps none) it used the gate of an older input
    (a wrong gradient) or crashed on None."""
    rng = np.random.default_rng(0)
    x_old, x = rng.standard_normal((2, 2, 5))
    dy = rng.standard_normal(x.shape)
    expected = ACTIVATION_CASES[case][0]()
    expected.forward(x)
    expected = expected.backward(dy)
    for first, second in (("numpy", "numba"), ("numba", "numpy")):
        layer = ACTIVATION_CASES[case][0]()
        with tn.kernels.use_backend(first):
            layer.forward(x_old)
        with tn.kernels.use_backend(second):
            layer.forward(x)
        with tn.kernels.use_backend(first):
            np.testing.assert_allclose(layer.backward(dy), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
def test_inputs_not_modified_and_float32_kept(case):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    x0, dy0 = x.copy(), dy.copy()
    layer = ACTIVATION_CASES[case][0]()
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


# ------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_every_registered_name_works_in_dense(name):
    rng = np.random.default_rng(2)
    dense = L.Dense(3, activation=name, seed=0)
    x = rng.standard_normal((4, 5))
    errors = check_gradients(dense, away_from_zero(x), rng)
    assert max(errors.values()) < TOL, errors
    clone = L.Dense.from_config(dense.get_config())
    assert type(clone.activation) is type(dense.activation)
    assert activations.to_config(clone.activation) == activations.to_config(dense.activation)
    clone.W.value, clone.b.value = dense.W.value, dense.b.value
    np.testing.assert_array_equal(clone.forward(x), dense.forward(x))


class _Cube(activations.Activation):
    """A user's activation (no fused kernel on either backend)."""

    def _forward(self, x):
        return x * x * x

    def _backward(self, x, y, dy):
        return dy * 3 * x * x


SHARED_ACTIVATIONS = {"leaky_relu": lambda: L.LeakyReLU(0.2), "gelu": L.GELU,
                      "softmax": L.Softmax, "user": _Cube}


def _two_layers(act_first, act_second, conv):
    if conv:
        return tn.Sequential([L.Conv2D(5, 2, activation=act_first, seed=1),
                              L.Conv2D(7, 2, activation=act_second, seed=2)])
    return tn.Sequential([L.Dense(5, activation=act_first, seed=1),
                          L.Dense(7, activation=act_second, seed=2)])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("conv", [False, True], ids=["Dense", "Conv2D"])
@pytest.mark.parametrize("case", sorted(SHARED_ACTIVATIONS))
def test_one_activation_instance_serves_two_layers(case, conv, backend):
    # the two layers shared the instance and its forward cache: the first
    # layer's backward read the second one's forward (wrong gradients, or a
    # shape error for widths 5 and 7), on the NumPy path of either backend
    make = SHARED_ACTIVATIONS[case]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 4, 4, 3) if conv else (4, 3))
    with tn.kernels.use_backend(backend):
        shared = make()
        model = _two_layers(shared, shared, conv)
        apart = _two_layers(make(), make(), conv)
        y = model.forward(x, training=True)
        np.testing.assert_array_equal(y, apart.forward(x, training=True))
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(model.backward(dy), apart.backward(dy))
    for p, q in zip(model.parameters(), apart.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad)
    first, second = (layer.activation for layer in model.layers)
    assert first is not second and shared not in (first, second)
    assert type(first) is type(shared) and first.name == shared.name
    assert activations.settings_of(first) == activations.settings_of(shared)


def test_each_layer_holds_its_own_copy_of_an_activation_given():
    act = L.LeakyReLU(0.2)
    first, second = L.Dense(3, activation=act), L.Dense(3, activation=act)
    first.activation.alpha = 0.5  # that layer's only
    assert (first.activation.alpha, second.activation.alpha, act.alpha) == (0.5, 0.2, 0.2)
    model = tn.Sequential([L.Dense(3, input_dim=2), act, L.Dense(3, activation=act)])
    # the copy is in no container (the instance is a layer of the model too)
    assert list(model.layers[2].activation._parents) == [] and list(act._parents) == [model]


def test_a_layers_copy_of_an_activation_shares_what_the_instance_refers_to():
    # a copy of its own for the forward cache only: an object of the user's (a
    # temperature a callback changes) stays shared, and a lock is no refusal
    import threading

    class Temperature:
        t = 1.0

    class Tempered(activations.Activation):
        def __init__(self, temperature, **kw):
            super().__init__(**kw)
            self.temperature, self.lock = temperature, threading.Lock()

        def _forward(self, x):
            return x / self.temperature.t

        def _backward(self, x, y, dy):
            return dy / self.temperature.t

    temperature = Temperature()
    act = Tempered(temperature)
    act.forward(np.ones((50, 3), np.float32), training=True)   # a cache of its own
    dense = L.Dense(3, activation=act, seed=0)
    assert dense.activation.temperature is temperature and dense.activation.lock is act.lock
    assert dense.activation._y is None and act._y is not None
    x = np.ones((2, 4), np.float32)
    before = dense.forward(x)
    temperature.t = 2.0
    np.testing.assert_allclose(dense.forward(x), before / 2)


@pytest.mark.parametrize("spec, expected", [
    ("leaky_relu", "leaky_relu"),
    (L.LeakyReLU(alpha=0.2), {"class": "LeakyReLU", "config": {"alpha": 0.2}}),
    ("gelu_tanh", {"class": "GELU", "config": {"approximate": "tanh"}}),
    (L.ELU(alpha=1.0), "elu"),
    (L.ELU(alpha=0.5), {"class": "ELU", "config": {"alpha": 0.5}}),
    ("swish", "silu"),
    (L.Softmax(axis=-1), "softmax"),
    (None, None),
    ("linear", None),
])
def test_dense_config_stores_activation_settings(spec, expected):
    dense = L.Dense(2, activation=spec)
    config = dense.get_config()
    assert config["activation"] == expected
    clone = L.Dense.from_config(config)
    assert activations.to_config(clone.activation) == expected


@pytest.mark.parametrize("layer", [L.LeakyReLU(alpha=0.25, name="lr"), L.ELU(alpha=2.0),
                                   L.GELU(approximate="tanh"), L.Softmax(axis=1),
                                   L.Sigmoid(), L.Identity()])
def test_activation_config_round_trip(layer):
    from tinynet.layers.base import layer_from_dict, layer_to_dict
    clone = layer_from_dict(layer_to_dict(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_unknown_activation_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'relu'"):
        L.Dense(3, activation="reluu")


@pytest.mark.parametrize("spec, received", [(3, "3 of type int"),
                                            (L.Dense(2), "Dense.* of type Dense")])
def test_an_activation_that_is_neither_name_nor_activation_is_explained(spec, received):
    # it read "expected a activation name as a string, received Dense": a
    # layer was given, and instances, config dicts and None are accepted too
    with pytest.raises(TypeError, match=rf"Dense expected activation as a name such as "
                                        rf"'relu', an activation layer, a config dict or "
                                        rf"None, received {received}"):
        L.Dense(3, activation=spec, name="d")
    with pytest.raises(TypeError, match="Conv2D expected activation as a name"):
        L.Conv2D(3, 2, activation=spec, name="c")



def test_an_initializer_that_is_neither_name_nor_function_is_explained():
    # it read "expected a initializer name as a string, received int"
    with pytest.raises(TypeError, match=r"Dense expected bias_initializer as a name such "
                                        r"as 'glorot_uniform' or a function .*, received "
                                        r"3 of type int"):
        L.Dense(3, bias_initializer=3)
    # a layer is callable, so it passed as an initializer and failed when built
    for layer in (L.Dense(2), L.Dense):
        with pytest.raises(TypeError, match=r"Dense expected bias_initializer as a name such "
                                            r"as 'glorot_uniform' or a function .*, received "
                                            r"the layer"):
            L.Dense(3, bias_initializer=layer)


@pytest.mark.parametrize("make, error, match", [
    (lambda: L.LeakyReLU(alpha=-0.1), ValueError, r"LeakyReLU expected alpha in \[0, inf\)"),
    # an infinite slope makes -inf of negative inputs and NaN (0 * inf) of zeros
    (lambda: L.LeakyReLU(alpha=float("inf")), ValueError, r"alpha in \[0, inf\), received inf"),
    (lambda: L.ELU(alpha=float("inf")), ValueError, r"alpha in \[0, inf\), received inf"),
    (lambda: L.LeakyReLU(alpha="big"), TypeError, "alpha as a real number"),
    (lambda: L.ELU(alpha=float("nan")), ValueError, "ELU expected alpha"),
    (lambda: L.ELU(alpha=True), TypeError, "ELU expected alpha"),
    (lambda: L.GELU(approximate="fast"), ValueError, "'none' or 'tanh'"),
    (lambda: L.Softmax(axis=1.5), TypeError, "axis as an integer"),
    (lambda: L.Softmax(axis=0, input_dim=3), ValueError, "not the batch axis"),
    (lambda: L.Softmax(axis=2, input_dim=3), ValueError, "received axis=2"),
])
def test_bad_settings_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused():
    layer = L.Tanh(name="act")
    with pytest.raises(TypeError, match="floating-point"):
        layer.forward(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 3)))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Tanh 'act' expected input of shape \(batch, 3\), "
                                         r"received \(2, 4\)"):
        layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3\)"):
        layer.backward(np.ones((2, 4)))
