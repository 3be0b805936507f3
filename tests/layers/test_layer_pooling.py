"""MaxPool2D and AveragePooling2D with "valid" and "same" padding,
GlobalAveragePooling2D and GlobalMaxPooling2D: gradients against finite
differences, values against PyTorch (on both backends), configs, saving, errors."""

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers.base import LAYER_ALIASES, LAYER_CLASSES, add_alias, layer_from_dict, \
    layer_to_dict
from tests.layers.layer_helpers import assert_gradients_ok, seeds

L = tn.layers
BACKENDS = ["numba", "numpy"]


def _distinct(rng, shape):
    """Values at least 0.1 apart (no ties inside a pooling window, and a
    difference step cannot change which entry is the maximum)."""
    return rng.permutation(np.arange(np.prod(shape)) * 0.1).reshape(shape) - 1.0


def _nchw(a):
    return a.transpose(0, 3, 1, 2)


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _run(backend, make, x, rng):
    """``(layer, y, dy, dx)``: a float64 layer from ``make(dtype=...)`` run
    forward and backward on ``backend``, with a random dy."""
    with tn.kernels.use_backend(backend):
        layer = make(dtype="float64")
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape)
        return layer, y, dy, layer.backward(dy)


@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 2),
       p=st.integers(1, 4), s=st.sampled_from([None, 1, 2, 3]),
       kind=st.sampled_from(["max", "average"]), seed=seeds)
def test_same_padding_gradients(n, h, w, c, p, s, kind, seed):
    """"same" takes any pool, even one larger than the image."""
    rng = np.random.default_rng(seed)
    make = L.MaxPool2D if kind == "max" else L.AveragePooling2D
    layer = make(p, strides=s, padding="same", dtype="float64")
    x = _distinct(rng, (n, h, w, c))
    assert layer.forward(x).shape == (n, -(-h // (s or p)), -(-w // (s or p)), c)
    assert_gradients_ok(layer, x, rng)


@given(n=st.integers(1, 2), h=st.integers(2, 6), w=st.integers(2, 6), c=st.integers(1, 3),
       p=st.integers(1, 3), s=st.sampled_from([None, 1, 2]), seed=seeds)
def test_average_pooling_valid_gradients(n, h, w, c, p, s, seed):
    p = min(p, h, w)
    rng = np.random.default_rng(seed)
    layer = L.AveragePooling2D((p, min(p + 1, w)), strides=s, dtype="float64")
    assert_gradients_ok(layer, rng.standard_normal((n, h, w, c)), rng)


@pytest.mark.parametrize("make", [lambda: L.GlobalAveragePooling2D(dtype="float64"),
                                  lambda: L.GlobalMaxPooling2D(dtype="float64"),
                                  lambda: L.GlobalMaxPooling2D(keepdims=True, dtype="float64")])
def test_global_pooling_gradients(make):
    rng = np.random.default_rng(0)
    assert_gradients_ok(make(), _distinct(rng, (2, 4, 3, 3)), rng)


# (pool, strides, H, W): tiling, overlapping, gaps, a pool larger than the image
SAME_CASES = [(2, None, 7, 6), (3, 1, 7, 6), (2, 3, 7, 5), (3, 2, 6, 6), ((2, 3), (1, 2), 5, 7),
              (5, 1, 3, 4), (4, 4, 3, 2)]


def _torch_same_max(torch, xt, pool, strides, h, w):
    """torch has no "same" for max pooling: pad by -inf as tinynet's layer
    would (its own padding argument pads symmetrically)."""
    layer = L.MaxPool2D(pool, strides=strides, padding="same")
    (pt, pb), (pl, pr) = layer._geometry(h, w)[0]
    padded = torch.nn.functional.pad(xt, (pl, pr, pt, pb), value=-float("inf"))
    return torch.nn.functional.max_pool2d(padded, layer.pool_size, stride=layer.strides)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool, strides, h, w", SAME_CASES)
def test_max_pooling_same_matches_torch(backend, pool, strides, h, w):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(h * w)
    x = rng.standard_normal((2, h, w, 3))
    _, y, dy, dx = _run(backend, lambda **kw: L.MaxPool2D(pool, strides=strides,
                                                         padding="same", **kw), x, rng)
    xt = torch.tensor(_nchw(x), requires_grad=True)
    yt = _torch_same_max(torch, xt, pool, strides, h, w)
    yt.backward(torch.tensor(_nchw(dy)))
    np.testing.assert_array_equal(y, _nhwc(yt))
    np.testing.assert_allclose(dx, _nhwc(xt.grad), atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_padding_never_wins_a_max_even_against_minus_infinity(backend):
    """A window whose real pixels are all -inf routes its gradient to its
    first real pixel (as torch's own padded max pooling), not to the -inf
    padding before it; NaN still wins."""
    torch = pytest.importorskip("torch")
    x = np.full((1, 5, 5, 2), -np.inf)
    x[0, 2:, 2:, :] = 1.0
    x[0, 4, 4, 1] = np.nan
    with tn.kernels.use_backend(backend):
        layer = L.MaxPool2D(3, strides=2, padding="same", dtype="float64")  # pads 1 each side
        y = layer.forward(x)
        dy = np.arange(1.0, y.size + 1).reshape(y.shape)
        dx = layer.backward(dy)
    xt = torch.tensor(_nchw(x), requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, 3, stride=2, padding=1)  # torch's padding: ignored
    yt.backward(torch.tensor(_nchw(dy)))
    np.testing.assert_array_equal(y, _nhwc(yt))
    np.testing.assert_array_equal(dx, _nhwc(xt.grad))
    assert dx[0, 0, 0, 0] == dy[0, 0, 0, 0]   # the corner window's first real pixel


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pooling_routes_to_a_windows_last_nan_as_torch(backend, dtype):
    """A window with several NaNs gives NaN and its gradient goes to the last
    NaN in row-major order, as PyTorch 2.13 routes it (val > best or isnan):
    tinynet routed to the first, in MaxPool2D (valid and same, overlapping or
    not) and GlobalMaxPooling2D alike."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, (2, 5, 6, 3)).astype(dtype)  # ties too
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, 0:2, 0:2, 0] = [[np.nan, 1], [np.nan, 2]]  # a window, both strides: the last NaN
    makes = [lambda: L.MaxPool2D(2, dtype=dtype),
             lambda: L.MaxPool2D(3, strides=1, padding="same", dtype=dtype),
             lambda: L.GlobalMaxPooling2D(dtype=dtype)]
    results = []
    for make in makes:
        with tn.kernels.use_backend(backend):
            layer = make()
            y = layer.forward(x)
            dy = np.arange(1.0, y.size + 1, dtype=dtype).reshape(y.shape)
            results.append((layer, y, dy, layer.backward(dy)))
    assert results[0][3][0, 1, 0, 0] == results[0][2][0, 0, 0, 0]  # not [0, 0, 0, 0]
    torch = pytest.importorskip("torch")
    for layer, y, dy, dx in results:
        xt = torch.tensor(_nchw(x), requires_grad=True)
        if isinstance(layer, L.GlobalMaxPooling2D):
            yt = torch.nn.functional.adaptive_max_pool2d(xt, 1)[:, :, 0, 0]
            yt.backward(torch.tensor(dy))
            np.testing.assert_array_equal(y, yt.detach().numpy())
        else:
            yt = (torch.nn.functional.max_pool2d(xt, 2) if layer.padding == "valid" else
                  torch.nn.functional.max_pool2d(xt, 3, stride=1, padding=1))
            yt.backward(torch.tensor(_nchw(dy)))
            np.testing.assert_array_equal(y, _nhwc(yt))
        np.testing.assert_array_equal(dx, _nhwc(xt.grad))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool, strides, h, w", SAME_CASES)
def test_average_pooling_same_matches_torch_without_the_padding_in_the_count(backend, pool,
                                                                           strides, h, w):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(h + w)
    x = rng.standard_normal((2, h, w, 3))
    layer, y, dy, dx = _run(backend, lambda **kw: L.AveragePooling2D(
        pool, strides=strides, padding="same", **kw), x, rng)
    (pt, pb), (pl, pr) = layer._geometry(h, w)[0]
    # torch pads symmetrically: pad the odd pixel after by hand, zeros
    # excluded from the count through a count of ones pooled alike
    xt = torch.tensor(_nchw(x), requires_grad=True)
    pad = (pl, pr, pt, pb)
    ones = torch.nn.functional.pad(torch.ones_like(xt), pad)
    sums = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(xt, pad), layer.pool_size,
                                          stride=layer.strides, divisor_override=1)
    yt = sums / torch.nn.functional.avg_pool2d(ones, layer.pool_size, stride=layer.strides,
                                               divisor_override=1)
    yt.backward(torch.tensor(_nchw(dy)))
    np.testing.assert_allclose(y, _nhwc(yt), atol=1e-14)
    np.testing.assert_allclose(dx, _nhwc(xt.grad), atol=1e-14)
    if pt == pb and pl == pr and max(pt, pl) <= min(layer.pool_size) // 2:
        # symmetric padding: torch's own padded pooling, count_include_pad=False
        ref = torch.nn.functional.avg_pool2d(torch.tensor(_nchw(x)), layer.pool_size,
                                             stride=layer.strides, padding=(pt, pl),
                                             count_include_pad=False)
        np.testing.assert_allclose(y, _nhwc(ref), atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool, strides", [(2, None), (3, 1), (2, 3), ((2, 3), (1, 2))])
def test_average_pooling_valid_matches_torch(backend, pool, strides):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 3))
    layer, y, dy, dx = _run(backend, lambda **kw: L.AveragePooling2D(pool, strides=strides,
                                                                     **kw), x, rng)
    xt = torch.tensor(_nchw(x), requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(xt, layer.pool_size, stride=layer.strides)
    yt.backward(torch.tensor(_nchw(dy)))
    np.testing.assert_allclose(y, _nhwc(yt), atol=1e-14)
    np.testing.assert_allclose(dx, _nhwc(xt.grad), atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_pooling_matches_torch(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 5, 4, 6))
    x[0, 1, 2, 3] = np.nan
    x[1, :, :, 0] = 7.0   # ties: the first maximum takes the gradient
    dy = rng.standard_normal((3, 6))
    for layer, fn in ((L.GlobalAveragePooling2D(dtype="float64"),
                       torch.nn.functional.adaptive_avg_pool2d),
                      (L.GlobalMaxPooling2D(dtype="float64"),
                       torch.nn.functional.adaptive_max_pool2d)):
        with tn.kernels.use_backend(backend):
            y = layer.forward(x)
            dx = layer.backward(dy)
        xt = torch.tensor(_nchw(x), requires_grad=True)
        yt = fn(xt, 1)[:, :, 0, 0]
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-14)
        np.testing.assert_allclose(dx, _nhwc(xt.grad), atol=1e-14)


def test_keepdims_float32_and_shapes():
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 3)).astype(np.float32)
    for make in (L.GlobalAveragePooling2D, L.GlobalMaxPooling2D):
        flat, kept = make(), make(keepdims=True)
        y, yk = flat.forward(x), kept.forward(x)
        assert y.shape == (2, 3) and yk.shape == (2, 1, 1, 3) and y.dtype == np.float32
        np.testing.assert_array_equal(yk.reshape(2, 3), y)
        dx = kept.backward(np.ones_like(yk))
        assert dx.shape == x.shape and dx.dtype == np.float32
        np.testing.assert_array_equal(dx, flat.backward(np.ones_like(y)))
    for make in (L.MaxPool2D, L.AveragePooling2D):
        layer = make(3, strides=2, padding="same")
        y = layer.forward(x)
        assert y.shape == (2, 3, 2, 3) and y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32
    avg = L.AveragePooling2D(2, padding="same", dtype="float64")
    np.testing.assert_allclose(avg.forward(np.ones((1, 3, 3, 1))), 1.0)  # counts real pixels


def test_configs_round_trip_and_a_pooling_model_saves_and_loads(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((16, 64)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = tn.Sequential([
        L.Reshape((8, 8, 1), input_dim=64), L.Conv2D(4, 3, padding="same", activation="relu"),
        L.MaxPool2D(3, strides=2, padding="same"), L.AveragePooling2D(2, padding="same"),
        L.Conv2D(6, 2, padding="same", dilation_rate=(2, 1)),
        L.AveragePooling2D((2, 1), strides=1), L.GlobalMaxPooling2D(keepdims=True),
        L.GlobalAveragePooling2D(), L.Dense(3)])
    model.compile(tn.optim.Adam(lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    for layer in model.layers:
        clone = layer_from_dict(json.loads(json.dumps(layer_to_dict(layer))))
        assert clone.get_config() == layer.get_config()
    assert model.layers[3].get_config()["padding"] == "same"
    model.save(tmp_path / "pool.npz")
    loaded = tn.load(tmp_path / "pool.npz")
    assert [type(la).__name__ for la in loaded.layers] == \
        [type(la).__name__ for la in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))



KERAS_NAMES = {"MaxPooling2D": "MaxPool2D", "AvgPool2D": "AveragePooling2D",
               "GlobalAvgPool2D": "GlobalAveragePooling2D", "GlobalMaxPool2D": "GlobalMaxPooling2D"}


@pytest.mark.parametrize("alias, name", sorted(KERAS_NAMES.items()))
def test_keras_names_are_the_same_classes(alias, name):
    assert getattr(L, alias) is getattr(L, name) is LAYER_CLASSES[name]
    assert alias in L.__all__ and alias not in LAYER_CLASSES and LAYER_ALIASES[alias] == name
    layer = getattr(L, alias)()
    assert layer_to_dict(layer)["class"] == name  # the file stores the class's own name
    clone = layer_from_dict({"class": alias, "config": layer.get_config()})
    assert type(clone) is getattr(L, name) and clone.get_config() == layer.get_config()


def test_a_model_built_with_keras_names_saves_canonical_names_and_loads(tmp_path):
    x = np.random.default_rng(2).random((4, 8, 8, 2)).astype(np.float32)
    model = tn.Sequential([L.MaxPooling2D(2, input_shape=(8, 8, 2)), L.AvgPool2D(2),
                           L.GlobalMaxPool2D(keepdims=True), L.GlobalAvgPool2D()])
    model.save(tmp_path / "keras_names.npz")
    loaded = tn.load(tmp_path / "keras_names.npz")
    assert [type(la).__name__ for la in loaded.layers] == \
        ["MaxPool2D", "AveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling2D"]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_add_alias_refuses_a_taken_name_or_an_unregistered_class():
    with pytest.raises(ValueError, match="'Dense' is a layer class's own name"):
        add_alias("Dense", L.MaxPool2D)
    with pytest.raises(TypeError, match="expected a registered layer class"):
        add_alias("Whatever2D", int)
    assert "Dense" not in LAYER_ALIASES and "Whatever2D" not in LAYER_ALIASES


def test_an_unknown_class_suggests_an_alias_too():
    with pytest.raises(ValueError, match="unknown layer class 'MaxPoling2D'; did you mean "
                                         "'MaxPooling2D'"):
        layer_from_dict({"class": "MaxPoling2D", "config": {}})


@pytest.mark.parametrize("make", [L.MaxPool2D, L.AveragePooling2D])
def test_bad_pooling_arguments_are_explained(make):
    name = make.__name__
    with pytest.raises(ValueError, match=rf"{name} expected padding 'valid' or 'same', "
                                         r"received 'full'"):
        make(2, padding="full")
    with pytest.raises(ValueError, match=rf"{name} expected padding 'valid' or 'same', "
                                         r"received 'SAME'"):
        make(2, padding="SAME")
    for bad in (0, -1, (2, 0)):
        with pytest.raises(ValueError, match=r"pool_size as a positive integer, received"):
            make(bad)
    with pytest.raises(ValueError, match=r"strides as a positive integer, received 0"):
        make(2, strides=0)
    with pytest.raises(ValueError, match="pool_size as an int or a pair, received"):
        make((2, 2, 2))
    with pytest.raises(ValueError, match=re.escape(
            "a 4x4 pool does not fit an input of 3x3 with padding 'valid' (expected an input "
            "of at least 4x4, or padding='same')")):
        make(4).forward(np.ones((1, 3, 3, 1), np.float32))
    assert make(4, padding="same").forward(np.ones((1, 3, 3, 1), np.float32)).shape == \
        (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, height, width, "
                                         r"channels\), received \(2, 5\)$"):
        make(2).forward(np.ones((2, 5), np.float32))


@pytest.mark.parametrize("make", [L.GlobalAveragePooling2D, L.GlobalMaxPooling2D])
def test_bad_global_pooling_arguments_are_explained(make):
    with pytest.raises(TypeError, match=rf"{make.__name__} expected keepdims as True or False, received .yes."):
        make(keepdims="yes")
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, height, width, "
                                         r"channels\), received \(2, 4, 5\) \(one image"):
        make().forward(np.ones((2, 4, 5), np.float32))
    layer = make(name="g")
    layer.forward(np.ones((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3\)"):
        layer.backward(np.ones((2, 1, 1, 3), np.float32))


def test_public_gradcheck_through_every_new_image_layer():
    """tn.gradcheck (the users' check) through a model that uses them all."""
    model = tn.Sequential([
        L.Reshape((7, 7, 1), input_dim=49),
        L.Conv2D(3, 2, padding="same", dilation_rate=2, activation="tanh"),
        L.MaxPool2D(2, padding="same"), L.AveragePooling2D(3, strides=1, padding="same"),
        L.Conv2D(4, 2, dilation_rate=(1, 2), padding="same"),
        L.GlobalMaxPooling2D(keepdims=True), L.Flatten(), L.Dense(4)])
    avg = tn.Sequential([L.Reshape((5, 5, 2), input_dim=50), L.AveragePooling2D(2),
                         L.GlobalAveragePooling2D(), L.Dense(3)])
    # seeded weights: unseeded ones could (rarely) put a max-pool tie within
    # gradcheck's step, where the finite difference is not the derivative
    model.build((49,), seed=0)
    avg.build((50,), seed=0)
    rng = np.random.default_rng(0)
    for net, x, y in ((model, rng.standard_normal((2, 49)), np.array([1, 2])),
                      (avg, rng.standard_normal((2, 50)), np.array([0, 2]))):
        result = tn.gradcheck(net, x, y, loss="cross_entropy")
        assert result.passed, result.errors
