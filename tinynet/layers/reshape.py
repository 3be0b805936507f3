"""Shape-only layers."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    r"""Flatten every per-sample axis into one: ``(batch, d1, d2, ...)`` to
    ``(batch, d1*d2*...)``.

    .. math::
        y = \operatorname{reshape}(x), \qquad
        \frac{\partial L}{\partial x} = \operatorname{reshape}^{-1}
        \Bigl(\frac{\partial L}{\partial y}\Bigr)

    The output is a view of the input when the input is C-contiguous.
    """

    def __init__(self, **kwargs):
        self._x_shape = None
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x_shape = x.shape
        # explicit width (not -1) so that an empty batch reshapes too
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._x_shape)
        dy = self._check_dy(dy, (self._x_shape[0], *self.output_shape))
        return dy.reshape(self._x_shape)
