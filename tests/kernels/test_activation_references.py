"""The NumPy references of the activation kernels against high-precision
values: they are what TINYNET_BACKEND=numpy runs, so they are checked on both
backends (the kernels themselves in test_activation_kernels.py)."""

from decimal import Decimal, localcontext

import numpy as np
import pytest

from tinynet.kernels import activations as act
from tinynet.kernels import dense

#: gelu_tanh below 0, down to where its value still is a normal number: e^(2u)
#: carries the rounding of u amplified by |2u| (66 at -9 in float32, 600 at -20
#: in float64), hence the tolerances
GELU_TANH_TAIL = {np.float32: (-9.0, 2e-5), np.float64: (-20.0, 4e-13)}
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494")


def _gelu_tanh_exact(z):
    """(f(z), f'(z)) of gelu_tanh = z sigma(2u), u = sqrt(2/pi) (z + 0.044715 z^3),
    in 50 digits (``decimal``), from the exact values of ``z``'s entries."""
    values, slopes = [], []
    with localcontext() as ctx:
        ctx.prec = 50
        k, c = (2 / _PI).sqrt(), Decimal("0.044715")
        for v in map(Decimal, np.asarray(z, np.float64).tolist()):
            s = 1 / (1 + (-2 * k * (v + c * v ** 3)).exp())
            values.append(float(v * s))
            slopes.append(float(s + 2 * v * s * (1 - s) * k * (1 + 3 * c * v * v)))
    return np.array(values), np.array(slopes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_reference_keeps_its_precision_below_zero(dtype):
    """0.5 z (1 + tanh u) cancelled: -0.0 for z <= -5.5 in float32 (30 % off
    at -5) and wrong below -7 in float64. As z sigma(2u), forward and slope
    keep their relative precision, through act_*_ref and dense_*_ref alike."""
    low, rtol = GELU_TANH_TAIL[dtype]
    z = np.linspace(low, -0.01, 2001).astype(dtype).reshape(-1, 1)
    value, slope = _gelu_tanh_exact(z[:, 0])
    y = act.act_forward_ref(z, act.GELU_TANH)
    assert y.dtype == dtype
    np.testing.assert_allclose(y[:, 0], value, rtol=rtol, atol=0)
    # the slope crosses 0 near z = -0.75: relative precision below -2 only
    tail = z[:, 0] <= -2
    g = act.act_backward_ref(np.ones_like(z), None, z, act.GELU_TANH)
    np.testing.assert_allclose(g[tail, 0], slope[tail], rtol=rtol, atol=0)
    np.testing.assert_allclose(g[:, 0], slope, rtol=rtol, atol=rtol)
    one = np.ones((1, 1), dtype)  # x @ [[1]]: the fused dense references apply f to x itself
    np.testing.assert_allclose(dense.dense_forward_ref(z, one, None, act.GELU_TANH, 0.0)[:, 0],
                               value, rtol=rtol, atol=0)
    dx = dense.dense_backward_ref(z, one, np.ones_like(z), y, z, act.GELU_TANH, 0.0,
                                  np.zeros((1, 1), dtype), None, True)
    np.testing.assert_allclose(dx[tail, 0], slope[tail], rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_tanh_reference_is_the_layers_numpy_path(dtype):
    """One gate serves the reference and the GELU layer's NumPy path."""
    from tinynet.layers import GELU
    z = np.linspace(-12, 12, 97).astype(dtype).reshape(1, -1)
    layer = GELU(approximate="tanh")
    np.testing.assert_array_equal(layer._forward(z, "tanh"),
                                  act.act_forward_ref(z, act.GELU_TANH))
    dy = np.cos(z)
    np.testing.assert_array_equal(layer._backward(z, None, dy, "tanh"),
                                  act.act_backward_ref(dy, None, z, act.GELU_TANH))
