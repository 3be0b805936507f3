"""Dropout: inverted scaling, train vs inference, seeded masks, gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tests.layers.layer_helpers import assert_gradients_ok, batch_sizes, seeds, widths

L = tn.layers


@given(batch=batch_sizes, width=widths, rate=st.floats(0.0, 0.9), seed=seeds)
def test_gradients_with_a_fixed_mask(batch, width, rate, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width))
    assert_gradients_ok(L.Dropout(rate), x, rng, training=True, reseed=seed)


def test_training_drops_about_rate_and_scales_the_rest():
    x = np.full((400, 500), 2.0)
    layer = L.Dropout(0.3, seed=0)
    y = layer.forward(x, training=True)
    dropped = np.mean(y == 0)
    # 200,000 Bernoulli draws: the standard deviation of the fraction is ~0.001
    assert abs(dropped - 0.3) < 0.005
    np.testing.assert_allclose(np.unique(y), [0.0, 2.0 / 0.7])
    assert abs(y.mean() - 2.0) < 0.02  # inverted dropout keeps the expectation
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), y / 2.0)


def test_inference_is_identity():
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    layer = L.Dropout(0.5)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_rate_zero_is_identity_in_training():
    x = np.random.default_rng(2).standard_normal((3, 4))
    np.testing.assert_array_equal(L.Dropout(0.0).forward(x, training=True), x)


def test_masks_follow_the_seed_and_the_rng():
    x = np.ones((6, 7), np.float32)
    a = L.Dropout(0.5, seed=3).forward(x, training=True)
    b = L.Dropout(0.5, seed=3).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    layer = L.Dropout(0.5, seed=3)
    first = layer.forward(x, training=True)
    second = layer.forward(x, training=True)
    assert not np.array_equal(first, second)  # a new mask each step
    layer.set_rng(np.random.default_rng(3))
    np.testing.assert_array_equal(layer.forward(x, training=True), first)
    # the same seed gives the same mask in float64
    np.testing.assert_array_equal(L.Dropout(0.5, seed=3).forward(
        x.astype(np.float64), training=True), a)


def test_dtype_kept_and_inputs_untouched():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 3)).astype(np.float32)
    x0, dy0 = x.copy(), dy.copy()
    layer = L.Dropout(0.4, seed=0)
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_config_round_trip():
    layer = L.Dropout(0.25, seed=7, name="drop")
    clone = L.Dropout.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.rate == 0.25


@pytest.mark.parametrize("rate, error", [(1.0, ValueError), (-0.1, ValueError),
                                         (1.5, ValueError), (float("nan"), ValueError),
                                         ("0.5", TypeError), (True, TypeError),
                                         (None, TypeError)])
def test_bad_rate(rate, error):
    with pytest.raises(error, match="Dropout expected rate"):
        L.Dropout(rate)
    # set later, it went unchecked to the kernel (rate 1 divided by zero)
    layer = L.Dropout(0.5)
    with pytest.raises(error, match="Dropout expected rate"):
        layer.rate = rate
    assert layer.rate == 0.5
    layer.rate = 0.25
    y = layer.forward(np.ones((20, 50), np.float32), training=True)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}


def test_bad_inputs():
    layer = L.Dropout(0.5, name="d")
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 2)))
    with pytest.raises(TypeError, match="floating-point"):
        layer.forward(np.ones((2, 2), dtype=np.uint8), training=True)
    layer.forward(np.ones((2, 2)), training=True)
    with pytest.raises(ValueError, match=r"Dropout 'd' expected dy of shape \(2, 2\)"):
        layer.backward(np.ones((2, 3)))
