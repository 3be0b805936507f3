"""Shape-only layers."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer

__all__ = ["Flatten", "Reshape"]


class Reshape(Layer):
    r"""Reshape each sample to ``target_shape`` (the batch axis stays):
    ``(batch, 784)`` to ``(batch, 28, 28, 1)`` with ``Reshape((28, 28, 1))``.

    .. math::
        y = \operatorname{reshape}(x), \qquad
        \frac{\partial L}{\partial x} = \operatorname{reshape}^{-1}
        \Bigl(\frac{\partial L}{\partial y}\Bigr)

    The output is a view of the input when the input is C-contiguous.

    Parameters
    ----------
    target_shape : tuple of positive ints
        Per-sample shape; its size must equal the input's per-sample size.
    """

    def __init__(self, target_shape, **kwargs):
        if not isinstance(target_shape, (tuple, list)) or not target_shape or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                for d in target_shape):
            raise ValueError(f"{type(self).__name__} expected target_shape as a tuple of "
                             f"positive ints, received {target_shape!r}")
        self.target_shape = tuple(int(d) for d in target_shape)
        self._x_shape = None
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        if math.prod(input_shape) != math.prod(self.target_shape):
            raise ValueError(f"{self._who} cannot reshape per-sample shape "
                             f"{tuple(input_shape)} ({math.prod(input_shape)} values) to "
                             f"{self.target_shape} ({math.prod(self.target_shape)} values)")
        return self.target_shape

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x_shape = x.shape
        # explicit sizes (not -1) so that an empty batch reshapes too
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._x_shape)
        dy = self._check_dy(dy, (self._x_shape[0], *self.output_shape))
        return dy.reshape(self._x_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Flatten(Reshape):
    r"""Flatten every per-sample axis into one: ``(batch, d1, d2, ...)`` to
    ``(batch, d1*d2*...)`` (a :class:`Reshape` whose target is set by the input).
    """

    def __init__(self, **kwargs):
        self.target_shape = None
        self._x_shape = None
        Layer.__init__(self, **kwargs)

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def get_config(self) -> dict:
        return Layer.get_config(self)
