"""Cropping2D: values against slicing (and PyTorch's slice of NCHW), gradients
against finite differences, configs, saving, errors."""

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers.base import layer_from_dict, layer_to_dict
from tests.layers.layer_helpers import assert_gradients_ok, seeds

L = tn.layers


@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 3),
       crop=st.tuples(*[st.integers(0, 3)] * 4), seed=seeds)
def test_cropping_is_a_slice_and_its_gradient_puts_dy_back(n, h, w, c, crop, seed):
    t, b, le, r = crop
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    layer = L.Cropping2D(((t, b), (le, r)), dtype="float64")
    if t + b >= h or le + r >= w:
        with pytest.raises(ValueError, match="expected an image larger than its cropping"):
            layer.forward(x)
        return
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x[:, t:h - b, le:w - r, :])
    y[...] = 0  # the output is the layer's own, not a view of the input
    assert np.isfinite(x).all() and x.any()
    assert_gradients_ok(layer, x, rng)


def test_the_three_ways_to_give_the_cropping():
    assert L.Cropping2D(2).cropping == ((2, 2), (2, 2))
    assert L.Cropping2D((1, 3)).cropping == ((1, 1), (3, 3))
    assert L.Cropping2D(((0, 1), (2, 3))).cropping == ((0, 1), (2, 3))
    assert L.Cropping2D().cropping == ((0, 0), (0, 0))


def test_matches_a_torch_slice_of_nchw():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3))
    layer = L.Cropping2D(((1, 2), (0, 3)), dtype="float64")
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    yt = xt[:, :, 1:7 - 2, 0:6 - 3]
    dy = rng.standard_normal(yt.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(layer.forward(x), yt.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(layer.backward(dy.transpose(0, 2, 3, 1)),
                                  xt.grad.numpy().transpose(0, 2, 3, 1))


def test_config_round_trip_and_a_model_with_cropping_saves_and_loads(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((16, 64)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = tn.Sequential([L.Reshape((8, 8, 1), input_dim=64),
                           L.Conv2D(4, 3, padding="same", activation="relu"),
                           L.Cropping2D(((1, 2), (3, 0))), L.GlobalAveragePooling2D(),
                           L.Dense(3)])
    model.compile(tn.optim.Adam(lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    assert model.layers[2].output_shape == (5, 5, 4)
    clone = layer_from_dict(json.loads(json.dumps(layer_to_dict(model.layers[2]))))
    assert clone.get_config() == model.layers[2].get_config()
    model.save(tmp_path / "crop.npz")
    loaded = tn.load(tmp_path / "crop.npz")
    assert loaded.layers[2].cropping == ((1, 2), (3, 0))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert tn.gradcheck(model.__class__([L.Reshape((4, 4, 1), input_dim=16),
                                         L.Cropping2D(1), L.Flatten(), L.Dense(2)]),
                        rng.standard_normal((2, 16)), np.array([0, 1]),
                        loss="cross_entropy").passed


@pytest.mark.parametrize("bad, message", [
    (-1, "cropping as a non-negative integer, received -1"),
    (1.5, "cropping as a non-negative integer, received 1.5"),
    (True, "cropping as a non-negative integer, received True"),
    ((1, 2, 3), r"cropping as an int or a pair, received \(1, 2, 3\)"),
    (((1, -2), (0, 0)), r"cropping rows \(top, bottom\) as a non-negative integer, received -2"),
    (((0, 0), (1, 2, 3)), r"cropping columns \(left, right\) as an int or a pair, received"),
])
def test_bad_cropping_is_explained(bad, message):
    with pytest.raises(ValueError, match=message):
        L.Cropping2D(bad)


def test_input_that_is_not_an_image_or_too_small_is_explained():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, height, width, "
                                         r"channels\), received \(2, 5\)$"):
        L.Cropping2D(1).forward(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "expected an image larger than its cropping ((2, 2), (0, 0)): at least 5x1, "
            "received 4x4")):
        L.Cropping2D((2, 0)).forward(np.ones((1, 4, 4, 1), np.float32))
    layer = L.Cropping2D(1)
    layer.forward(np.ones((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 2, 2, 3\)"):
        layer.backward(np.ones((2, 4, 4, 3), np.float32))
