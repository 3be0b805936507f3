"""Flatten: shapes, gradients, views, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tests.layers.layer_helpers import assert_gradients_ok, batch_sizes, seeds

L = tn.layers


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), batch=batch_sizes,
       seed=seeds)
def test_flatten_gradients_and_shapes(shape, batch, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape))
    layer = L.Flatten()
    y = layer.forward(x)
    assert y.shape == (batch, int(np.prod(shape)))
    assert layer.output_shape == (int(np.prod(shape)),)
    np.testing.assert_array_equal(y, x.reshape(batch, -1))
    assert_gradients_ok(layer, x, rng)


def test_flatten_round_trips_values_and_dtype():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    layer = L.Flatten()
    y = layer.forward(x)
    assert y.dtype == np.float32 and np.shares_memory(y, x)
    dx = layer.backward(y * 2)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_array_equal(dx, x * 2)
    assert layer.forward(np.zeros((0, 3, 4), np.float32)).shape == (0, 12)


def test_flatten_feeds_dense():
    rng = np.random.default_rng(0)
    flat, dense = L.Flatten(), L.Dense(3)
    x = rng.standard_normal((2, 4, 5))
    out = dense.forward(flat.forward(x))
    assert out.shape == (2, 3) and dense.W.shape == (20, 3)
    assert flat.backward(dense.backward(np.ones((2, 3)))).shape == x.shape


def test_flatten_errors_and_config():
    layer = L.Flatten(input_shape=(3, 4), name="flat")
    with pytest.raises(ValueError, match=r"Flatten 'flat' expected input of shape "
                                         r"\(batch, 3, 4\), received \(2, 12\)"):
        layer.forward(np.zeros((2, 12)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 12\)"):
        layer.forward(np.zeros((2, 3, 4)))
        layer.backward(np.zeros((2, 3, 4)))
    clone = L.Flatten.from_config(layer.get_config())
    assert clone.output_shape == (12,) and clone.get_config() == layer.get_config()
