"""Conv2D (also dilated), MaxPool2D and Reshape: gradients against finite differences, values
against PyTorch, configs, saving, errors."""

import json
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers.base import layer_from_dict, layer_to_dict
from tests.layers.layer_helpers import assert_backward_twice_doubles, assert_gradients_ok, seeds

L = tn.layers


@given(n=st.integers(1, 2), h=st.integers(3, 6), w=st.integers(3, 6), c=st.integers(1, 3),
       f=st.integers(1, 3), k=st.integers(1, 3), s=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same"]),
       activation=st.sampled_from([None, "tanh", "gelu"]),  # gelu: the kernel keeps z too
       use_bias=st.booleans(), seed=seeds)
def test_conv2d_gradients(n, h, w, c, f, k, s, padding, activation, use_bias, seed):
    rng = np.random.default_rng(seed)
    layer = L.Conv2D(f, k, strides=s, padding=padding, activation=activation,
                     use_bias=use_bias, dtype="float64", seed=seed)
    x = rng.standard_normal((n, h, w, c))
    assert_gradients_ok(layer, x, rng)
    assert_backward_twice_doubles(layer, x, rng)


@given(n=st.integers(1, 2), h=st.integers(3, 7), w=st.integers(3, 7), c=st.integers(1, 3),
       k=st.integers(1, 3), s=st.integers(1, 2), d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.sampled_from(["valid", "same"]), activation=st.sampled_from([None, "tanh"]),
       seed=seeds)
def test_dilated_conv2d_gradients(n, h, w, c, k, s, d, padding, activation, seed):
    if padding == "valid" and (d[0] * (k - 1) + 1 > h or d[1] * (k - 1) + 1 > w):
        return
    rng = np.random.default_rng(seed)
    layer = L.Conv2D(2, k, strides=s, padding=padding, dilation_rate=d, activation=activation,
                     dtype="float64", seed=seed)
    x = rng.standard_normal((n, h, w, c))
    assert_gradients_ok(layer, x, rng)
    assert_backward_twice_doubles(layer, x, rng)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_fused_kernel_path_and_the_numpy_path_agree(dtype):
    """Conv2D with a kernel activation runs Dense's fused kernels on the column
    matrix; a subclass of the activation has no kernel code, so the same layer
    runs its NumPy path instead (as both do on the "numpy" backend). Outputs, dx
    and the parameter gradients agree."""
    class MyGELU(L.GELU):
        pass

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)
    dy = rng.standard_normal((2, 5, 2, 5)).astype(dtype)
    out = {}
    for name, act in (("fused", "gelu"), ("numpy", MyGELU())):
        layer = L.Conv2D(5, 3, strides=(1, 2), padding="valid", activation=act, dtype=dtype,
                         seed=1)
        y = layer.forward(x)
        fused = name == "fused" and tn.kernels.effective_backend() != "numpy"
        assert (layer._cache[3] is not None) == fused
        dx = layer.backward(dy)
        out[name] = (y, dx, layer.W.grad.copy(), layer.b.grad.copy())
        with pytest.raises(ValueError, match=r"expected dy of shape \(2, 5, 2, 5\)"):
            layer.backward(dy[:, :3])
    tol = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(out["fused"], out["numpy"]):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _distinct(rng, shape):
    """Values at least 0.1 apart (no ties inside a pooling window, and a
    difference step cannot change which entry is the maximum)."""
    return rng.permutation(np.arange(np.prod(shape)) * 0.1).reshape(shape) - 1.0


@given(n=st.integers(1, 2), h=st.integers(2, 6), w=st.integers(2, 6), c=st.integers(1, 3),
       p=st.integers(1, 3), s=st.sampled_from([None, 1, 2]), seed=seeds)
def test_maxpool_gradients(n, h, w, c, p, s, seed):
    p = min(p, h, w)
    rng = np.random.default_rng(seed)
    layer = L.MaxPool2D(p, strides=s, dtype="float64")
    assert_gradients_ok(layer, _distinct(rng, (n, h, w, c)), rng)


def test_reshape_round_trip_and_gradient():
    rng = np.random.default_rng(0)
    layer = L.Reshape((2, 3, 2))
    x = rng.standard_normal((4, 12))
    y = layer.forward(x)
    assert y.shape == (4, 2, 3, 2)
    np.testing.assert_array_equal(layer.backward(y), x)
    assert_gradients_ok(layer, x, rng)


@pytest.mark.parametrize("stride, padding, k", [(1, "valid", 3), (2, "same", 3), (1, "same", 2),
                                                (2, "valid", 5), (3, "same", 4)])
def test_conv2d_matches_torch(stride, padding, k):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(stride + k)
    conv = L.Conv2D(4, k, strides=stride, padding=padding, dtype="float64",
                    bias_initializer="glorot_uniform", seed=3)
    x = rng.standard_normal((2, 7, 6, 3))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    _assert_conv_matches_torch(torch, conv, x, y, dy, conv.backward(dy))


def _assert_conv_matches_torch(torch, conv, x, y, dy, dx, relu=False):
    """y, dx and the parameter gradients of ``conv`` (run on x and dy) are
    torch's conv2d of x padded as ``conv`` pads (then a ReLU if ``relu``).
    Returns torch's input and parameters, for further checks."""
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(conv.W.value.transpose(3, 2, 0, 1), requires_grad=True)
    bt = torch.tensor(conv.b.value, requires_grad=True)
    (pt, pb), (pl, pr) = conv._pads(x.shape[1], x.shape[2])
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, (pl, pr, pt, pb)), wt, bt,
                                    stride=conv.strides, dilation=conv.dilation_rate)
    if relu:
        yt = torch.relu(yt)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(conv.W.grad, wt.grad.numpy().transpose(2, 3, 1, 0), atol=1e-12)
    np.testing.assert_allclose(conv.b.grad, bt.grad.numpy(), atol=1e-12)
    return xt, wt, bt


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("k, stride, dilation, padding", [
    (3, 1, 2, "valid"), (3, 1, 2, "same"), (2, 2, (2, 3), "same"), ((3, 2), 1, (1, 3), "valid"),
    (3, 2, 3, "same"), (2, 1, 2, "same")])
@pytest.mark.parametrize("channels, activation", [(3, "relu"), (6, None)])  # F / C im2col
def test_dilated_conv2d_matches_torch(backend, k, stride, dilation, padding, channels,
                                      activation):
    """Dilated convolutions as torch's conv2d(dilation=): "same" pads as
    for the kernel's span; fused kernels and the NumPy path alike."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 9, 8, channels))
    with tn.kernels.use_backend(backend):
        conv = L.Conv2D(4, k, strides=stride, padding=padding, dilation_rate=dilation,
                        activation=activation, dtype="float64",
                        bias_initializer="glorot_uniform", seed=3)
        y = conv.forward(x)
        dy = rng.standard_normal(y.shape)
        dx = conv.backward(dy)
    xt, wt, bt = _assert_conv_matches_torch(torch, conv, x, y, dy, dx, relu=activation == "relu")
    if padding == "same" and stride == 1:  # torch's own "same" agrees with the padding
        with warnings.catch_warnings():  # torch: an even span may copy the input
            warnings.simplefilter("ignore", UserWarning)
            own = torch.nn.functional.conv2d(xt, wt, bt, padding="same",
                                             dilation=conv.dilation_rate)
        if activation == "relu":
            own = torch.relu(own)
        np.testing.assert_allclose(y, own.detach().numpy().transpose(0, 2, 3, 1), atol=1e-12)


@pytest.mark.parametrize("k", [2, 4, (2, 3), (3, 4), (1, 2)])
def test_same_padding_with_even_kernels_matches_torch_same(k):
    """The test above pads torch's input as tinynet does; this one checks that
    convention (the odd pixel of an even kernel's padding after) against
    torch's own padding="same" (stride 1: torch has no "same" for others)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    conv = L.Conv2D(3, k, padding="same", dtype="float64", seed=1,
                    bias_initializer="glorot_uniform")
    x = rng.standard_normal((2, 7, 6, 2))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(conv.W.value.transpose(3, 2, 0, 1), requires_grad=True)
    with warnings.catch_warnings():  # torch: even kernels may copy the input
        warnings.simplefilter("ignore", UserWarning)
        yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(conv.b.value), padding="same")
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-12)
    np.testing.assert_allclose(conv.W.grad, wt.grad.numpy().transpose(2, 3, 1, 0), atol=1e-12)


@pytest.mark.parametrize("pool, stride", [(2, None), (3, 1), (2, 3)])
def test_maxpool_matches_torch(pool, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(pool)
    layer = L.MaxPool2D(pool, strides=stride, dtype="float64")
    x = rng.standard_normal((2, 7, 6, 3))
    y = layer.forward(x)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, pool, stride=stride or pool)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy().transpose(0, 2, 3, 1),
                               atol=1e-15)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_maxpool_routes_ties_nan_and_minus_infinity_as_torch(backend):
    """Equal values: the first position takes the gradient; a NaN is the
    maximum and takes it; an all -inf window routes it to its first position."""
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 6, 6, 2))
    x[0, 2:4, 2:4, :] = 1.0
    x[0, 0, 1, 0] = x[0, 3, 3, 1] = np.nan
    x[0, 4:, :2, :] = -np.inf
    with tn.kernels.use_backend(backend):
        for pool, stride in ((2, 2), (3, 1), (2, 3)):
            layer = L.MaxPool2D(pool, strides=stride, dtype="float64")
            y = layer.forward(x)
            dy = np.arange(1.0, y.size + 1).reshape(y.shape)
            dx = layer.backward(dy)
            xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
            yt = torch.nn.functional.max_pool2d(xt, pool, stride=stride)
            yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
            np.testing.assert_array_equal(y, yt.detach().numpy().transpose(0, 2, 3, 1))
            np.testing.assert_array_equal(dx, xt.grad.numpy().transpose(0, 2, 3, 1))


def test_same_padding_keeps_size_and_float32_is_kept():
    x = np.random.default_rng(0).standard_normal((3, 9, 8, 2)).astype(np.float32)
    conv = L.Conv2D(5, 4, padding="same", activation="relu")
    y = conv.forward(x)
    assert y.shape == (3, 9, 8, 5) and y.dtype == np.float32
    dx = conv.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert L.Conv2D(2, 3, strides=2, padding="same").forward(x).shape == (3, 5, 4, 2)


def test_configs_round_trip_and_a_conv_model_saves_and_loads(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((16, 64)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = tn.Sequential([L.Reshape((8, 8, 1), input_dim=64),
                           L.Conv2D(4, 3, activation="relu", padding="same"), L.MaxPool2D(2),
                           L.Conv2D(6, (2, 3), strides=(1, 2)),
                           L.Conv2D(5, 2, dilation_rate=(1, 2), padding="same"), L.Flatten(),
                           L.Dense(3)])
    model.compile(tn.optim.Adam(lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    for layer in model.layers:
        clone = layer_from_dict(json.loads(json.dumps(layer_to_dict(layer))))
        assert clone.get_config() == layer.get_config()
    assert model.layers[4].get_config()["dilation_rate"] == [1, 2]
    model.save(tmp_path / "conv.npz")
    loaded = tn.load(tmp_path / "conv.npz")
    assert loaded.layers[4].dilation_rate == (1, 2)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_bad_arguments_and_inputs_are_explained():
    with pytest.raises(ValueError, match="padding 'valid' or 'same'"):
        L.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size as an int or a pair"):
        L.Conv2D(2, (3, 3, 3))
    with pytest.raises(TypeError, match="filters as a positive integer"):
        L.Conv2D(2.5, 3)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, height, width, "
                                         r"channels\), received \(2, 5\)$"):
        L.Conv2D(2, 3).forward(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="a 5x5 kernel does not fit an input of 3x3"):
        L.Conv2D(2, 5).forward(np.ones((1, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "a 3x3 kernel with dilation_rate 2x2 (spanning 5x5) does not fit an input of 4x4 "
            "with padding 'valid' (expected an input of at least 5x5, or padding='same')")):
        L.Conv2D(2, 3, dilation_rate=2).forward(np.ones((1, 4, 4, 1), np.float32))
    assert L.Conv2D(2, 3, dilation_rate=2, padding="same").forward(
        np.ones((1, 4, 4, 1), np.float32)).shape == (1, 4, 4, 2)
    with pytest.raises(ValueError, match="dilation_rate as a positive integer, received 0"):
        L.Conv2D(2, 3, dilation_rate=(1, 0))
    with pytest.raises(ValueError, match=r"dilation_rate as an int or a pair, received \(2,\)"):
        L.Conv2D(2, 3, dilation_rate=(2,))
    with pytest.raises(ValueError, match="a 4x4 pool does not fit an input of 3x3"):
        L.MaxPool2D(4).forward(np.ones((1, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"cannot reshape per-sample shape \(10,\)"):
        L.Reshape((3, 3)).forward(np.ones((2, 10), np.float32))
    with pytest.raises(ValueError, match="target_shape as a tuple of positive ints"):
        L.Reshape((3, 0))
    conv = L.Conv2D(2, 3, name="c")
    conv.forward(np.ones((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D 'c' expected input of shape"):
        conv.forward(np.ones((1, 5, 4, 1), np.float32))


@pytest.mark.parametrize("make", [lambda: L.Conv2D(4, 3, name="c"),
                                  lambda: L.MaxPool2D(2, name="c"),
                                  lambda: L.AveragePooling2D(2, name="c"),
                                  lambda: L.GlobalAveragePooling2D(name="c"),
                                  lambda: L.GlobalMaxPooling2D(name="c"),
                                  lambda: L.Cropping2D(1, name="c")])
def test_a_channels_first_image_is_explained_once_the_layer_is_built(make):
    layer = make()
    layer.forward(np.ones((2, 8, 8, 3), np.float32))
    nchw = np.ones((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f"{type(layer).__name__} 'c' expected (..., H, W, C=3) channels-last input, "
            "received shape (2, 3, 8, 8); tinynet uses NHWC (PyTorch's NCHW: "
            "x.transpose(0, 2, 3, 1))")):
        layer.forward(nchw)
    assert layer.forward(nchw.transpose(0, 2, 3, 1)).shape[0] == 2


@pytest.mark.parametrize("channels", [1, 8])   # column matrix built column- / row-major
@pytest.mark.parametrize("fused", [True, False])
def test_an_empty_batch_gives_empty_outputs_and_gradients(channels, fused):
    class MyReLU(L.ReLU):   # no kernel code: the NumPy path
        pass

    layer = L.Conv2D(4, 3, activation="relu" if fused else MyReLU(), seed=0)
    x = np.zeros((0, 6, 6, channels), np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (0, 4, 4, 4)
    dx = layer.backward(np.zeros_like(y))
    assert dx.shape == x.shape
    assert not layer.W.grad.any() and not layer.b.grad.any()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("activation", ["relu", "softmax"])
def test_a_conv_built_again_for_another_image_size_runs_its_activation_on_it(
        activation, backend):
    # the activation stayed built for the first size: the next forward's was
    # refused on the NumPy path (softmax, which has no fused kernel, on both)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 10, 10, 3))
    with tn.kernels.use_backend(backend):
        layer = L.Conv2D(4, 3, activation=activation, seed=0)
        layer.forward(rng.standard_normal((2, 8, 8, 3)))
        layer.build((10, 10, 3))
        y = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy)
        fresh = L.Conv2D(4, 3, activation=activation, seed=0, input_shape=(10, 10, 3),
                         dtype="float64")
        fresh.W.value, fresh.b.value = layer.W.value, layer.b.value
        np.testing.assert_array_equal(y, fresh.forward(x, training=True))
        np.testing.assert_array_equal(dx, fresh.backward(dy))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("make, x", [
    (lambda act: L.Dense(5, activation=act, seed=0), np.ones((2, 4))),
    (lambda act: L.Conv2D(5, 2, activation=act, seed=0), np.ones((2, 3, 3, 4)))],
    ids=["Dense", "Conv2D"])
def test_an_activation_built_for_another_shape_is_built_again_with_the_layer(
        make, x, backend):
    act = L.Softmax()
    act.forward(np.ones((2, 3)))  # built for (3,)
    with tn.kernels.use_backend(backend):
        layer = make(act)
        y = layer.forward(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)
    assert layer.activation.input_shape == layer.output_shape


@pytest.mark.skipif(tn.kernels.effective_backend() == "numpy",
                    reason="the fused path (g, dcols) runs on the kernels")
def test_the_column_matrix_and_its_gradient_reuse_one_buffer_per_shape():
    """Big temporaries are not allocated anew each step (see
    _KernelLayer._workspace): the same memory while the batch keeps its
    size, a new buffer when it changes; the gradients stay those of a
    fresh layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    dy = rng.standard_normal((4, 6, 6, 5)).astype(np.float32)
    layer = L.Conv2D(5, 3, activation="relu", seed=0)
    seen = []
    for _ in range(2):
        layer.zero_grad()
        layer.forward(x)
        dx = layer.backward(dy)
        seen.append({k: id(v) for k, v in layer._workspaces.items()})
    assert seen[0] == seen[1] and set(seen[0]) == {"cols", "g", "dcols"}
    fresh = L.Conv2D(5, 3, activation="relu", seed=0)
    fresh.forward(x)
    np.testing.assert_array_equal(dx, fresh.backward(dy))
    np.testing.assert_array_equal(layer.W.grad, fresh.W.grad)
    layer.forward(x[:3])
    assert id(layer._workspaces["cols"]) != seen[0]["cols"]


@pytest.mark.parametrize("make, module", [
    (lambda: L.Conv2D(2, 3, strides=2, padding="same", seed=0), "conv"),
    (lambda: L.MaxPool2D(2, padding="same"), "pooling"),
    (lambda: L.AveragePooling2D(3, strides=2, padding="same"), "pooling")])
def test_the_window_geometry_is_checked_once_per_input_size(monkeypatch, make, module):
    import importlib
    where = importlib.import_module(f"tinynet.layers.{module}")
    checked, check = [], where._window_geometry

    def counted(who, what, size, *args, **kwargs):
        checked.append(tuple(size))
        return check(who, what, size, *args, **kwargs)

    monkeypatch.setattr(where, "_window_geometry", counted)
    layer = make()
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 3))
    y = layer.forward(x, training=True)
    for _ in range(3):  # every step's forward and backward: the kept geometry
        assert np.array_equal(layer.forward(x, training=True), y)
        layer.backward(np.ones_like(y))
    assert checked == [(5, 7)]
    assert layer._geometry(5, 7) == layer._compute_geometry(5, 7)  # what was checked
    # a size whose window does not fit is refused every time (nothing kept for it)
    valid = type(layer)(**{**layer.get_config(), "padding": "valid"})
    for _ in range(2):
        with pytest.raises(ValueError, match="does not fit an input of 1x1"):
            valid.compute_output_shape((1, 1, 3))


@pytest.mark.parametrize("backend, activation", [("numpy", "relu"), ("numba", "softmax")])
def test_the_unfused_forward_product_runs_without_its_checks(monkeypatch, backend, activation):
    """Without the fused kernel (the "numpy" backend, an activation without
    one) the forward's product ``cols @ W`` runs the product's trusted build:
    the layer made both factors, so the public product's checks (about 1 us,
    two np.may_share_memory among them) would only repeat what it knows."""
    from tinynet.kernels import gemm

    def refuse(*args, **kwargs):
        raise AssertionError("the product's checks ran on the layer's forward")

    monkeypatch.setattr(gemm, "check_matrix", refuse)
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 3)).astype(np.float32)
    with tn.kernels.use_backend(backend):
        layer = L.Conv2D(4, 3, activation=activation, seed=0)
        y = layer.forward(x)
    with tn.kernels.use_backend("numpy"):
        expected = L.Conv2D(4, 3, activation=activation, seed=0).forward(x)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_conv_weight_converted_alone_is_checked_by_the_unfused_product(backend):
    """The unfused forward runs the product's unchecked build for the layer's
    own arrays; a weight converted alone (Param.astype) no longer matches
    the columns' dtype, and gets the checked product's clear dtype error on
    both backends (not a forward in mixed dtypes, then a backward failing on
    an output of the wrong dtype)."""
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
    with tn.kernels.use_backend(backend):
        conv = tn.layers.Conv2D(4, 3, activation="softmax", seed=0)
        conv.forward(x)
        conv.W.astype(np.float64)
        with pytest.raises(TypeError, match="matmul expected a and b of one dtype"):
            conv.forward(x)
