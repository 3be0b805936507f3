"""Layer settings set after construction: checked as the constructor checks
them (the layers hand them to the trusted kernels unchecked), and those that
fix a built layer's shapes refused once it is built."""

import math

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers.base import walk_layers
from tests.fd import numerical_grad

L = tn.layers

# (class, other constructor arguments, setting, bad value, error, good value, input shape)
CHECKED = [
    (L.Dropout, {"rate": 0.5}, "rate", 1.0, ValueError, 0.25, (6, 5)),
    (L.LeakyReLU, {}, "alpha", -0.5, ValueError, 0.2, (6, 5)),
    (L.LeakyReLU, {}, "alpha", "0.2", TypeError, 0.3, (6, 5)),
    (L.ELU, {}, "alpha", float("nan"), ValueError, 0.5, (6, 5)),
    (L.ELU, {}, "alpha", float("inf"), ValueError, 2.0, (6, 5)),
    (L.GELU, {}, "approximate", "Tanh", ValueError, "tanh", (6, 5)),
    (L.Softmax, {}, "axis", 1.0, TypeError, 1, (6, 5, 4)),
    (L.BatchNorm, {}, "momentum", 1.5, ValueError, 0.5, (6, 5)),
    (L.BatchNorm, {}, "eps", 0.0, ValueError, 0.5, (6, 5)),
    (L.BatchNorm, {}, "eps", -1e-3, ValueError, 1e-1, (6, 5)),
    (L.LayerNorm, {}, "eps", float("inf"), ValueError, 0.5, (6, 5)),
    (L.Dense, {"units": 3}, "activation", "relu6", ValueError, "elu", (6, 5)),
    (L.Dense, {"units": 3}, "activation", 3, TypeError, "tanh", (6, 5)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "activation", [], TypeError, "gelu",
     (2, 4, 4, 3)),
]


def _ids(cases):
    return [f"{case[0].__name__}.{case[2]}={case[3]!r}" for case in cases]


def _run(layer, x, dy):
    """Output, input gradient, parameter gradients and state of a training step."""
    layer.zero_grad()
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    return [y, dx, *(p.grad.copy() for p in layer.parameters()),
            *layer.get_state().values()]


@pytest.mark.parametrize("cls, kwargs, what, bad, error, good, shape", CHECKED,
                         ids=_ids(CHECKED))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_setting_set_later_is_checked_as_the_constructor_checks_it(
        cls, kwargs, what, bad, error, good, shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    with pytest.raises(error) as made:
        cls(**{**kwargs, what: bad})
    layer = cls(**kwargs, seed=0)
    before = getattr(layer, what)
    layer.forward(x)  # built: the kernels would take the value unchecked
    # the same error as the constructor's, and the value kept
    with pytest.raises(error) as set_later:
        setattr(layer, what, bad)
    assert str(set_later.value) == str(made.value)
    assert getattr(layer, what) is before or getattr(layer, what) == before
    # a good value then computes as a layer made with it (same weights, state, masks)
    setattr(layer, what, good)
    fresh = cls(**{**kwargs, what: good}, seed=0)
    fresh.forward(x)
    for p, q in zip(layer.parameters(), fresh.parameters()):
        q.value = p.value.copy()
    fresh.set_state(layer.get_state())
    dy = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    layer.set_rng(np.random.default_rng(1))
    fresh.set_rng(np.random.default_rng(1))
    for got, want in zip(_run(layer, x, dy), _run(fresh, x, dy), strict=True):
        np.testing.assert_array_equal(got, want)
    assert layer.get_config()[what] == fresh.get_config()[what]


@pytest.mark.parametrize("axis", [0, 3, -4])
def test_a_built_softmax_refuses_an_axis_its_input_lacks_or_the_batch_axis(axis):
    # the axis's range depends on the input: a built layer checks it against its own
    layer = L.Softmax()
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = layer.forward(x)
    with pytest.raises(ValueError, match=rf"Softmax 'softmax_\d+' expected axis in \[-2, 2\] "
                                         rf"and not the batch axis .*received axis={axis}"):
        layer.axis = axis
    assert layer.axis == -1
    np.testing.assert_array_equal(layer.forward(x), y)
    layer.axis = -2
    np.testing.assert_allclose(layer.forward(x).sum(axis=1), 1.0)


# (class, constructor arguments, setting, new value, bad value, error, input shape)
FIXED = [
    (L.Dense, {"units": 3}, "units", 4, 0, ValueError, (5,)),
    (L.Dense, {"units": 3}, "use_bias", False, "False", TypeError, (5,)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "filters", 3, 2.0, TypeError, (6, 6, 1)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "kernel_size", 3, (2, 0), ValueError,
     (6, 6, 1)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "strides", (1, 2), (1, 2, 3), ValueError,
     (6, 6, 1)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "padding", "same", "full", ValueError,
     (6, 6, 1)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "dilation_rate", 2, -1, ValueError,
     (6, 6, 1)),
    (L.MaxPool2D, {}, "pool_size", 3, 1.5, TypeError, (6, 6, 2)),
    (L.MaxPool2D, {}, "strides", 1, 0, ValueError, (6, 6, 2)),
    (L.AveragePooling2D, {"pool_size": 3}, "padding", "same", None, ValueError, (5, 5, 2)),
    (L.GlobalAveragePooling2D, {}, "keepdims", True, 1, TypeError, (4, 4, 2)),
    (L.GlobalMaxPooling2D, {"keepdims": True}, "keepdims", False, None, TypeError, (4, 4, 2)),
    (L.Cropping2D, {"cropping": 1}, "cropping", ((1, 0), (0, 2)), -1, ValueError, (6, 6, 2)),
    (L.Reshape, {"target_shape": (2, 3)}, "target_shape", (3, 2), (6, 0), ValueError, (6,)),
]


@pytest.mark.parametrize("cls, kwargs, what, new, bad, error, shape", FIXED,
                         ids=[f"{c[0].__name__}.{c[2]}" for c in FIXED])
def test_a_setting_that_fixes_the_shapes_is_refused_once_built(
        cls, kwargs, what, new, bad, error, shape):
    x = np.random.default_rng(0).standard_normal((2, *shape))
    # before the layer is built: checked as the constructor checks it, and kept
    with pytest.raises(error) as made:
        cls(**{**kwargs, what: bad})
    unbuilt = cls(**kwargs)
    with pytest.raises(error) as set_later:
        setattr(unbuilt, what, bad)
    assert str(set_later.value) == str(made.value)
    setattr(unbuilt, what, new)
    want = cls(**{**kwargs, what: new})
    assert getattr(unbuilt, what) == getattr(want, what)
    assert unbuilt.build(shape).output_shape == want.build(shape).output_shape
    # built: the shapes of its parameters and output are fixed, a change refused
    layer = cls(**kwargs)
    y = layer.forward(x)
    old = getattr(layer, what)
    with pytest.raises(ValueError, match=rf"{cls.__name__} '\w+' cannot change {what} once "
                                         rf"built: {what}=.* fixed its shapes \(output "
                                         rf"\(batch, .*\)\) for inputs \(batch, .*\); make a "
                                         rf"new layer with {what}="):
        setattr(layer, what, new)
    with pytest.raises(error):  # a bad value is still named as such
        setattr(layer, what, bad)
    setattr(layer, what, old)  # the value it holds: nothing changes
    assert getattr(layer, what) == old
    np.testing.assert_array_equal(layer.forward(x), y)
    assert layer.backward(np.ones_like(y)).shape == x.shape


def test_the_refusal_names_the_parameters_shapes():
    layer = L.Dense(3, input_dim=5)
    with pytest.raises(ValueError, match=r"units=3 fixed its shapes \(output \(batch, 3\); "
                                         r"parameters W \(5, 3\), b \(3,\)\) for inputs "
                                         r"\(batch, 5\); make a new layer with units=4"):
        layer.units = 4


@pytest.mark.parametrize("cls, kwargs", [(L.Conv2D, {"filters": 2}), (L.MaxPool2D, {})])
def test_a_window_changed_before_the_build_forgets_the_geometry_a_summary_computed(
        cls, kwargs):
    # a model's summary asks an unbuilt layer for its output shape, which the
    # windowed layers keep per input size: a new kernel or pool size made before
    # the build must not reuse it
    window = "kernel_size" if cls is L.Conv2D else "pool_size"
    layer = cls(**kwargs, **{window: 2}, strides=2)
    assert layer.compute_output_shape((8, 8, 1))[:2] == (4, 4)
    setattr(layer, window, 4)
    assert layer.build((8, 8, 1)).output_shape[:2] == (3, 3)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 1))
    assert layer.forward(x).shape[1:3] == layer.output_shape[:2]


def test_a_dense_activation_set_later_by_name_becomes_the_layer():
    # it was kept as the string, and the forward then failed on str.forward
    layer = L.Dense(3, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 5))
    layer.forward(x)
    layer.activation = "relu"
    assert isinstance(layer.activation, L.ReLU)
    np.testing.assert_array_equal(layer.forward(x), np.maximum(x @ layer.W.value, 0))


@pytest.mark.parametrize("make", [
    lambda act: tn.Sequential([L.Dense(3, activation=act, input_shape=(4,), seed=1)]),
    # nested: the inner model's output is the outer one's
    lambda act: tn.Sequential([tn.Sequential([L.Dense(3, activation=act, input_shape=(4,),
                                                      seed=1)])]),
    lambda act: tn.mtl.HardSharing((4,), trunk=[L.Dense(5, seed=0)],
                                   heads={"b": [L.Dense(2, seed=2)],
                                          "a": [L.Dense(3, activation=act, seed=1)]}),
])
@pytest.mark.parametrize("before, after", [("softmax", None), (None, "softmax")])
def test_an_output_activation_set_after_compile_pairs_the_loss_again(make, before, after):
    # compile pairs cross-entropy with the output (logits, or a softmax's
    # probabilities); an activation set later kept the old pairing, and the
    # loss of logits taken as probabilities came out 44 instead of 1.4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = make(before)
    fresh = make(after)
    is_mtl = isinstance(model, tn.mtl.Model)
    targets = {"a": y, "b": y % 2} if is_mtl else y
    for m in (model, fresh):
        m.compile("sgd", loss="cross_entropy", metrics=["accuracy"])
    dense = [layer for layer in walk_layers(model) if isinstance(layer, L.Dense)][-1]
    dense.activation = after
    got, expected = model.evaluate(x, targets), fresh.evaluate(x, targets)
    assert got == pytest.approx(expected, rel=1e-6)


# ------------------------------------- a setting changed between a forward and its backward

def _exact_gelu(x):
    return 0.5 * x * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def _tanh_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("first, then, function", [("none", "tanh", _exact_gelu),
                                                   ("tanh", "none", _tanh_gelu)])
def test_gelu_backward_differentiates_the_form_its_forward_computed(backend, first, then,
                                                                    function):
    # the NumPy backward took the forward's gate and the other form's slope;
    # the kernel's differentiated the other form outright (slopes 1e-3 off)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7)) * 2.0
    dy = rng.standard_normal(x.shape)
    with tn.kernels.use_backend(backend):
        layer = L.GELU(approximate=first)
        y = layer.forward(x)
        layer.approximate = then
        dx = layer.backward(dy)
        fresh = L.GELU(approximate=first)
        fresh.forward(x)
        np.testing.assert_array_equal(dx, fresh.backward(dy))
        numerical = numerical_grad(lambda: float(np.sum(function(x) * dy)), x)
        np.testing.assert_allclose(dx, numerical, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(y, function(x), rtol=1e-10, atol=1e-12)
        # the new form from the next forward on
        np.testing.assert_array_equal(layer.forward(x), L.GELU(approximate=then).forward(x))


# (class, setting, value at the forward, value set before the backward, input shape)
BETWEEN = [
    (L.LeakyReLU, "alpha", 0.1, 0.5, (4, 5)),
    (L.ELU, "alpha", 1.0, 0.3, (4, 5)),
    (L.GELU, "approximate", "tanh", "none", (4, 5)),
    (L.Softmax, "axis", -1, 1, (2, 3, 4)),
]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cls, what, first, then, shape", BETWEEN,
                         ids=[f"{c[0].__name__}.{c[1]}" for c in BETWEEN])
def test_a_setting_changed_before_the_backward_applies_from_the_next_forward(
        backend, cls, what, first, then, shape):
    # the backward read the setting anew: the gradient of a function the
    # forward never computed (LeakyReLU's slope 0.5 on an output of slope 0.1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    with tn.kernels.use_backend(backend):
        layer = cls(**{what: first})
        layer.forward(x)
        setattr(layer, what, then)
        dx = layer.backward(dy)
        fresh = cls(**{what: first})
        fresh.forward(x)
        np.testing.assert_array_equal(dx, fresh.backward(dy))
        later = cls(**{what: then})
        np.testing.assert_array_equal(layer.forward(x), later.forward(x))
        np.testing.assert_array_equal(layer.backward(dy), later.backward(dy))


def _mmoe(activation):
    return tn.mtl.MMoE(2, 3, 4, activation=activation, input_dim=5, seed=0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("make, shape", [
    (lambda act: L.Dense(4, activation=act, input_dim=5, seed=0), (3, 5)),
    (lambda act: L.Conv2D(4, 2, activation=act, input_shape=(4, 4, 2), seed=0), (3, 4, 4, 2)),
    (_mmoe, (3, 5)),
], ids=["Dense", "Conv2D", "MMoE"])
def test_an_activation_set_before_the_backward_applies_from_the_next_forward(
        backend, make, shape):
    # the backward asked the new activation, which had run no forward
    # ("backward called before forward"), or one that had run elsewhere
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    with tn.kernels.use_backend(backend):
        layer = make("softmax")  # no fused kernel: the NumPy path on both backends
        y = layer.forward(x)
        dy = ([rng.standard_normal(o.shape) for o in y] if isinstance(y, list)
              else rng.standard_normal(y.shape))
        layer.activation = L.Tanh()
        dx = layer.backward(dy)
        fresh = make("softmax")
        fresh.forward(x)
        np.testing.assert_array_equal(dx, fresh.backward(dy))
        for p, q in zip(layer.parameters(), fresh.parameters(), strict=True):
            np.testing.assert_array_equal(p.grad, q.grad)
        later = make("tanh")
        for got, want in zip(*(m.forward(x) if isinstance(y, list) else [m.forward(x)]
                               for m in (layer, later))):
            np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ initializers

def _zeros_then_twos(shape, rng, dtype=np.float32):
    return np.full(shape, 2.0, dtype)


# (class, other constructor arguments, setting, new value, input shape)
INITIALIZERS = [
    (L.Dense, {"units": 3}, "kernel_initializer", "he_normal", (5,)),
    (L.Dense, {"units": 3}, "bias_initializer", "ones", (5,)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "kernel_initializer", _zeros_then_twos,
     (4, 4, 3)),
    (L.Conv2D, {"filters": 2, "kernel_size": 2}, "bias_initializer", "glorot_normal",
     (4, 4, 3)),
    (tn.mtl.MMoE, {"n_tasks": 2, "n_experts": 3, "units": 4}, "kernel_initializer",
     "orthogonal", (5,)),
]


@pytest.mark.parametrize("cls, kwargs, what, new, shape", INITIALIZERS,
                         ids=[f"{c[0].__name__}.{c[2]}" for c in INITIALIZERS])
def test_an_initializer_set_before_the_build_draws_the_weights_and_is_refused_after(
        cls, kwargs, what, new, shape):
    # it only changed the saved config: the build drew with the constructor's
    with pytest.raises(ValueError) as made:
        cls(**kwargs, **{what: "glorot"})
    unbuilt = cls(**kwargs, seed=0)
    with pytest.raises(ValueError) as set_later:
        setattr(unbuilt, what, "glorot")
    assert str(set_later.value) == str(made.value)
    with pytest.raises(TypeError, match=rf"{cls.__name__} expected {what} as a name"):
        setattr(unbuilt, what, 3)
    setattr(unbuilt, what, new)
    assert getattr(unbuilt, what) == new
    want = cls(**kwargs, **{what: new}, seed=0).build(shape)
    unbuilt.build(shape)
    for p, q in zip(unbuilt.parameters(), want.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    # built: the weights were drawn with the old one; a change is refused
    layer = cls(**kwargs, seed=0).build(shape)
    old = getattr(layer, what)
    weights = [p.value.copy() for p in layer.parameters()]
    with pytest.raises(ValueError, match=rf"{cls.__name__} '\w+' cannot change {what} once "
                                         rf"built: the build initialised its parameters "
                                         rf"\(.*\) with {what}={old!r}; set {what} before "
                                         rf"the layer is built, or make a new layer with "
                                         rf"{what}=.*; Sequential.reset_parameters\(seed\) "
                                         rf"initialises a model's parameters again, with the "
                                         rf"settings they have"):
        setattr(layer, what, new)
    with pytest.raises(ValueError, match="unknown initializer"):  # still named as such
        setattr(layer, what, "glorot")
    setattr(layer, what, old)  # the value it holds: nothing changes
    assert getattr(layer, what) == old
    for p, w in zip(layer.parameters(), weights, strict=True):
        np.testing.assert_array_equal(p.value, w)
    if isinstance(new, str):
        assert layer.get_config()[what] == old


def test_a_model_reset_draws_with_the_initializer_set_before_its_build():
    # the message's way to draw again: reset_parameters keeps the initializer
    model = tn.Sequential([L.Dense(3, seed=0)])
    model.layers[0].kernel_initializer = "ones"
    model.build((4,))
    np.testing.assert_array_equal(model.layers[0].W.value, 1.0)
    model.reset_parameters(0)
    np.testing.assert_array_equal(model.layers[0].W.value, 1.0)


@pytest.mark.parametrize("what, new", [("n_tasks", 3), ("n_experts", 2), ("units", 5)])
def test_mmoe_sizes_are_checked_when_set_and_fixed_once_built(what, new):
    # plain attributes: a bad value was kept, a change after the build broke the shapes
    kwargs = {"n_tasks": 2, "n_experts": 3, "units": 4}
    unbuilt = tn.mtl.MMoE(**kwargs)
    with pytest.raises(ValueError, match=rf"MMoE expected {what} as a positive integer, "
                                         rf"received 0"):
        setattr(unbuilt, what, 0)
    setattr(unbuilt, what, new)
    assert unbuilt.build((6,)).output_shape == tn.mtl.MMoE(
        **{**kwargs, what: new}).build((6,)).output_shape
    layer = tn.mtl.MMoE(**kwargs, input_dim=6)
    with pytest.raises(ValueError, match=rf"MMoE '\w+' cannot change {what} once built: "
                                         rf"{what}={kwargs[what]} fixed its shapes \(output "
                                         rf"\(batch, 4\), \(batch, 4\); parameters W_experts "
                                         rf"\(6, 12\), .*\) for inputs \(batch, 6\)"):
        setattr(layer, what, new)
    assert getattr(layer, what) == kwargs[what]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_mmoe_activation_is_checked_when_set_later(backend):
    # a plain attribute: any value was kept, and the forward failed on str.forward
    x = np.random.default_rng(0).standard_normal((3, 5))
    with pytest.raises(TypeError) as made:
        _mmoe(3)
    layer = _mmoe("relu")
    with pytest.raises(TypeError) as set_later:
        layer.activation = 3
    assert str(set_later.value) == str(made.value)
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        layer.activation = "relu6"
    assert isinstance(layer.activation, L.ReLU)
    with tn.kernels.use_backend(backend):
        layer.activation = "gelu"
        assert isinstance(layer.activation, L.GELU)
        for got, want in zip(layer.forward(x), _mmoe("gelu").forward(x), strict=True):
            np.testing.assert_array_equal(got, want)
    assert layer.get_config()["activation"] == "gelu"


@pytest.mark.parametrize("before, after", [("softmax", None), (None, "softmax")])
def test_an_mmoe_output_activation_set_after_compile_pairs_the_loss_again(before, after):
    # an MMoE whose outputs are the tasks': a softmax's outputs are probabilities
    # (each a convex mix of the experts' softmaxes), which compile pairs with
    # the probability cross-entropy; an activation set later kept the old pairing
    def make(act):
        inp = tn.mtl.Input((5,))
        outs = tn.mtl.MMoE(2, 3, 4, activation=act, seed=0)(inp)
        model = tn.mtl.Model(inp, {"a": outs[0], "b": outs[1]})
        model.compile("sgd", loss="cross_entropy", metrics=["auc"])
        return model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    targets = {"a": rng.integers(0, 4, 16), "b": rng.integers(0, 4, 16)}
    model, fresh = make(before), make(after)
    mmoe = next(layer for layer in walk_layers(model) if isinstance(layer, tn.mtl.MMoE))
    mmoe.activation = after
    assert {t: type(loss) for t, loss in model.loss.items()} == {
        t: type(loss) for t, loss in fresh.loss.items()}
    assert model.evaluate(x, targets) == pytest.approx(fresh.evaluate(x, targets), rel=1e-6)


# (class, setting, new value, bad value, per-sample input shapes, the refusal once built)
MULTI_INPUT = [
    (tn.mtl.Concatenate, "axis", 1, 0, [(2, 3), (2, 3)],
     r"axis=-1 fixed its shapes \(output \(batch, 2, 6\)\) for inputs \(batch, 2, 3\), "
     r"\(batch, 2, 3\); make a new layer with axis=1"),
    (tn.mtl.CrossStitch, "per_unit", True, "no", [(3,), (3,)],
     r"per_unit=False fixed its shapes \(output \(batch, 3\), \(batch, 3\); parameters "
     r"alpha0 \(2,\), alpha1 \(2,\)\) for inputs \(batch, 3\), \(batch, 3\)"),
    (tn.mtl.CrossStitch, "self_weight", 0.5, 1.5, [(3,), (3,), (3,)],
     r"the build initialised its parameters \(alpha0 \(3,\), alpha1 \(3,\), alpha2 "
     r"\(3,\)\) with self_weight=0.9; set self_weight before the layer is built"),
]


@pytest.mark.parametrize("cls, what, new, bad, shapes, refusal", MULTI_INPUT,
                         ids=[f"{c[0].__name__}.{c[1]}" for c in MULTI_INPUT])
def test_multi_input_layer_settings_are_checked_when_set_and_fixed_once_built(
        cls, what, new, bad, shapes, refusal):
    # plain attributes: a bad value was kept, and a Concatenate axis changed
    # after its forward split the gradient along another axis than it joined
    with pytest.raises((TypeError, ValueError)) as made:
        cls(**{what: bad})
    unbuilt = cls()
    with pytest.raises(made.type) as set_later:
        setattr(unbuilt, what, bad)
    assert str(set_later.value) == str(made.value)
    setattr(unbuilt, what, new)
    want = cls(**{what: new}).build(shapes)
    unbuilt.build(shapes)
    assert unbuilt.output_shape == want.output_shape
    for p, q in zip(unbuilt.parameters(), want.parameters(), strict=True):
        np.testing.assert_array_equal(p.value, q.value)
    layer = cls().build(shapes)
    old = getattr(layer, what)
    with pytest.raises(ValueError, match=rf"{cls.__name__} '\w+' cannot change {what} once "
                                         rf"built: {refusal}"):
        setattr(layer, what, new)
    setattr(layer, what, old)
    assert getattr(layer, what) == old


# ------------------------------- subclasses: the settings as arguments, or read from self

class _OldLeaky(L.LeakyReLU):
    """Written against the contract before the settings were arguments."""

    def _forward(self, x):
        return np.where(x > 0, x, x * (2.0 * self.alpha))

    def _backward(self, x, y, dy):
        return np.where(y > 0, dy, dy * (2.0 * self.alpha))


class _OldSoftmax(L.Softmax):
    """Only the backward overridden, in the old form (a scaled gradient)."""

    def _backward(self, x, y, dy):
        return 3.0 * y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))


def _leaky2(x, alpha):
    return np.where(x > 0, x, x * (2.0 * alpha))


class _NewLeaky(L.LeakyReLU):
    def _forward(self, x, alpha):
        return _leaky2(x, alpha)

    def _backward(self, x, y, dy, alpha):
        return np.where(y > 0, dy, dy * (2.0 * alpha))


class _KwargsLeaky(L.LeakyReLU):
    def _forward(self, x, **settings):
        return _leaky2(x, settings["alpha"])

    def _backward(self, x, y, dy, **settings):
        return _NewLeaky._backward(self, x, y, dy, settings["alpha"])


class _ExtraSetting(L.LeakyReLU):
    """A setting of its own, with the inherited maths (which names only alpha)."""

    beta = tn.layers._checks.Setting(tn.layers._checks.check_real)

    def __init__(self, alpha=0.2, beta=1.0, **kwargs):
        self.beta = beta
        super().__init__(alpha, **kwargs)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cls, slope", [(_OldLeaky, 0.6), (_NewLeaky, 0.2), (_KwargsLeaky, 0.2)],
                         ids=["old", "named", "kwargs"])
def test_a_subclass_gets_the_settings_as_its_methods_ask(backend, cls, slope):
    # the old form (_forward(x), _backward(x, y, dy)) was called with
    # alpha=... (TypeError); it reads self.alpha, as before: after a change,
    # the new value (slope 2 * 0.3), where the new forms get the forward's
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5))
    dy = rng.standard_normal(x.shape)
    with tn.kernels.use_backend(backend):
        layer = cls(0.1)
        np.testing.assert_array_equal(layer.forward(x), _leaky2(x, 0.1))
        np.testing.assert_array_equal(layer.backward(dy), np.where(x > 0, dy, dy * 0.2))
        layer.forward(x)
        layer.alpha = 0.3
        np.testing.assert_array_equal(layer.backward(dy), np.where(x > 0, dy, dy * slope))
        np.testing.assert_array_equal(layer.forward(x), _leaky2(x, 0.3))
        np.testing.assert_array_equal(layer.backward(dy), np.where(x > 0, dy, dy * 0.6))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_an_old_style_backward_alone_is_called_without_settings(backend):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 3, 4))
    dz = rng.standard_normal(z.shape)
    with tn.kernels.use_backend(backend):
        soft = _OldSoftmax(axis=1)
        y = soft.forward(z)
        np.testing.assert_array_equal(y, L.Softmax(axis=1).forward(z))
        np.testing.assert_array_equal(soft.backward(dz),
                                      3.0 * y * (dz - (dz * y).sum(axis=1, keepdims=True)))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_inherited_maths_receive_only_the_settings_they_name(backend):
    # LeakyReLU._forward(x, alpha) was also handed the subclass's beta
    x = np.array([[-1.0, 2.0]])
    with tn.kernels.use_backend(backend):
        layer = _ExtraSetting(0.2, beta=3.0)
        np.testing.assert_array_equal(layer.forward(x), [[-0.2, 2.0]])
        np.testing.assert_array_equal(layer.backward(np.ones_like(x)), [[0.2, 1.0]])


class _OldGate(L.GELU):
    """``_gate`` overridden as before the setting was an argument: reads
    ``self.approximate`` (and records the inputs it was called with)."""

    def __init__(self, approximate="none", **kwargs):
        self.gated = []
        super().__init__(approximate, **kwargs)

    def _gate(self, x):
        self.gated.append(x)
        return L.GELU._gate(x, self.approximate)


class _RenamedGate(_OldGate):
    """``_gate`` overridden with its setting under another name, as main's
    positional call ``self._gate(x, approximate)`` allowed."""

    def _gate(self, x, approx):
        self.gated.append(x)
        return L.GELU._gate(x, approx)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("cls", [_OldGate, _RenamedGate])
def test_an_overridden_gelu_gate_is_called_as_its_signature_says(cls, backend, approximate):
    # GELU._gate became _gate(x, approximate): an override _gate(self, x) was
    # handed approximate too (TypeError); it gets what its signature names, as
    # _forward and _backward do. Handed approximate= by name, _gate(self, x,
    # approx) got nothing (TypeError): it gets the setting in that place
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    dy = rng.standard_normal(x.shape)
    with tn.kernels.use_backend("numpy"):
        plain = L.GELU(approximate)
        y, dx = plain.forward(x), plain.backward(dy)
    with tn.kernels.use_backend(backend):
        layer = cls(approximate)
        np.testing.assert_array_equal(layer.forward(x), y)
        np.testing.assert_array_equal(layer.backward(dy), dx)
        assert len(layer.gated) == 1
        np.testing.assert_array_equal(layer.gated[0], x)
        layer._cached_gate = None  # (as after a kernel forward: the gate evaluated again)
        np.testing.assert_array_equal(layer.backward(dy), dx)
        assert len(layer.gated) == 2

