"""Shared pieces of the layer tests: strategies and gradient checks against
the independent finite differences of tests/fd.py."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.fd import max_rel_error, numerical_grad

# Central differences carry an absolute rounding error of ~1e-16 |y| |r| / EPS
# (times the conditioning of the layer's arithmetic) ~ 1e-11..1e-9 on every
# entry, so entries below FLOOR (with O(1) inputs and dy) or below SCALE_FLOOR
# of the array's largest are judged against that floor:
# |a - n| < 1e-6 * max(|a|, |n|, FLOOR, SCALE_FLOOR * max|n|); i.e. an absolute
# 1e-9 for tiny entries (a degenerate LayerNorm of width 2 has dx ~ 1e-4).
FLOOR = 1e-3
SCALE_FLOOR = 1e-3
# near the optimum (3u)^(1/3) of central differences in float64: rounding
# error ~u/EPS and truncation ~EPS^2 are both ~1e-11
EPS = 1e-5

TOL = 1e-6

batch_sizes = st.integers(1, 4)
widths = st.integers(1, 5)
seeds = st.integers(0, 2**32 - 1)


def away_from_zero(x, margin=0.05):
    """Move values at least ``margin`` away from 0 (keeps kinks out of reach of eps)."""
    return np.where(x >= 0, x + margin, x - margin)


def check_gradients(layer, x, rng, training=False, reseed=None):
    """Worst relative errors of ``layer``'s input and parameter gradients.

    The scalar is L = sum((y - y0) * r) for a fixed random r and the
    unperturbed output y0, so dL/dy = r. With
    ``reseed`` set, the layer's generator is reset before every forward
    pass (so Dropout draws the same mask each time).
    """
    def forward():
        if reseed is not None:
            layer.set_rng(np.random.default_rng(reseed))
        return layer.forward(x, training=training)

    y0 = forward().copy()
    r = rng.standard_normal(y0.shape)
    for p in layer.parameters():
        p.zero_grad()
    forward()
    dx = layer.backward(r)

    def loss():
        # minus the constant sum(y0 * r): same gradient, but the sum is now of
        # tiny differences, so its rounding error no longer scales with |L|
        return float(np.sum((forward() - y0) * r))

    def error(analytic, array):
        return max_rel_error(analytic, numerical_grad(loss, array, EPS), floor=FLOOR,
                             scale_floor=SCALE_FLOOR)

    errors = {"x": error(dx, x)}
    analytic = {p.name: p.grad.copy() for p in layer.parameters()}
    for p in layer.parameters():
        errors[p.name] = error(analytic[p.name], p.value)
    return errors


def assert_gradients_ok(layer, x, rng, **kwargs):
    errors = check_gradients(layer, x, rng, **kwargs)
    assert set(errors) == {"x", *(p.name for p in layer.parameters())}
    worst = max(errors.values())
    assert worst < TOL, errors


def assert_backward_twice_doubles(layer, x, rng, training=False):
    """Param grads accumulate: two backward passes give twice the gradient,
    and dx is the same both times."""
    y = layer.forward(x, training=training)
    dy = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx1 = layer.backward(dy)
    once = [p.grad.copy() for p in layer.parameters()]
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx1, dx2)
    for p, g in zip(layer.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12, atol=0)


def well_spread(rng, shape, axis):
    """Random values whose spread along ``axis`` is never tiny.

    A normalization layer is ill-conditioned where the variance it divides
    by approaches its eps (two nearly equal values in a width-2 LayerNorm):
    there its gradient is huge and so curved that central differences lose
    digits to truncation. Like kinks, such points are kept out of the
    property tests: along ``axis`` the values are an evenly spaced ramp
    (gaps of at least 1, then jittered by +-0.4) in random order, scaled
    and shifted at random.
    """
    n = shape[axis]
    ramp_shape = [1] * len(shape)
    ramp_shape[axis] = n
    ramp = (np.arange(n) - (n - 1) / 2).reshape(ramp_shape)
    values = rng.permuted(ramp + rng.uniform(-0.4, 0.4, size=shape), axis=axis)
    return values * rng.uniform(0.5, 3.0) + rng.normal(0, 2)
