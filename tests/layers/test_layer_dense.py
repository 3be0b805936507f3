"""Dense: gradients with every fused activation, accumulation, freezing,
errors, dtype and configs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers import activations
from tests.layers.layer_helpers import (assert_backward_twice_doubles, assert_gradients_ok,
                                        batch_sizes, seeds, widths)

L = tn.layers


@given(batch=batch_sizes, n_in=widths, units=widths, use_bias=st.booleans(),
       activation=st.sampled_from(sorted(activations.ACTIVATIONS)), seed=seeds)
def test_dense_gradients(batch, n_in, units, use_bias, activation, seed):
    rng = np.random.default_rng(seed)
    layer = L.Dense(units, activation=activation, use_bias=use_bias, seed=seed)
    layer.build((n_in,), dtype=np.float64)
    if use_bias:
        layer.b.value = rng.standard_normal(units) * 0.5
    x = rng.standard_normal((batch, n_in))
    assert_gradients_ok(layer, x, rng)
    assert len(layer.parameters()) == (2 if use_bias else 1)


def test_backward_twice_doubles_grads():
    rng = np.random.default_rng(0)
    assert_backward_twice_doubles(L.Dense(3, activation="tanh"), rng.standard_normal((4, 5)),
                                  rng)


def test_frozen_dense_still_passes_gradients():
    rng = np.random.default_rng(1)
    layer = L.Dense(3, activation="sigmoid", input_dim=4, dtype=np.float64)
    x, dy = rng.standard_normal((2, 4)), rng.standard_normal((2, 3))
    layer.forward(x)
    dx_trainable = layer.backward(dy)
    layer.trainable = False
    assert [p.trainable for p in layer.parameters()] == [False, False]
    assert layer.trainable_parameters() == []
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), dx_trainable)
    assert_gradients_ok(layer, x, rng)
    layer.trainable = True
    assert all(p.trainable for p in layer.parameters())


def test_float32_kept_everywhere():
    rng = np.random.default_rng(2)
    layer = L.Dense(3, activation="gelu")
    y = layer.forward(rng.standard_normal((4, 5)).astype(np.float32))
    dx = layer.backward(np.ones_like(y))
    assert {y.dtype, dx.dtype, layer.W.dtype, layer.W.grad.dtype, layer.b.grad.dtype} == {
        np.dtype(np.float32)}


def test_config_round_trip_with_weights():
    layer = L.Dense(4, activation=L.LeakyReLU(alpha=0.2), use_bias=False, input_dim=3,
                    kernel_initializer="he_normal", name="fc")
    clone = L.Dense.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.activation.alpha == 0.2 and clone.b is None
    clone.W.value = layer.W.value
    x = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), layer.forward(x))


def test_wrong_width_names_layer_and_shapes():
    layer = L.Dense(10, input_dim=128, name="fc2")
    with pytest.raises(ValueError, match=r"Dense 'fc2' expected input of shape "
                                         r"\(batch, 128\), received \(32, 64\)"):
        layer.forward(np.zeros((32, 64), np.float32))


@pytest.mark.parametrize("x, error, match", [
    (np.ones((2, 3), np.int64), TypeError, "floating-point dtype, received dtype int64"),
    (np.ones((2, 3), bool), TypeError, "floating-point"),
    (np.ones(3), ValueError, r"\(batch, features"),
    (np.ones((2, 3, 4)), ValueError, "Flatten"),
])
def test_bad_inputs(x, error, match):
    with pytest.raises(error, match=match):
        L.Dense(2).forward(x)


@pytest.mark.parametrize("units, error", [(0, ValueError), (2.5, TypeError),
                                          (True, TypeError)])
def test_bad_units(units, error):
    with pytest.raises(error, match="units"):
        L.Dense(units)


@pytest.mark.parametrize("make", [lambda b: L.Dense(2, use_bias=b),
                                  lambda b: L.Conv2D(2, 3, use_bias=b)])
@pytest.mark.parametrize("use_bias", ["False", 0, None])
def test_use_bias_must_be_a_bool(make, use_bias):
    # bool("False") is True: a string from a hand-edited config silently kept the bias
    with pytest.raises(TypeError, match="use_bias as True or False"):
        make(use_bias)
