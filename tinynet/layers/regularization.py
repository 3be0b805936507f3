"""Dropout: random zeroing during training."""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..checks import check_bool
from ._checks import Setting, check_real
from .base import Layer


def _use_kernels(dtype) -> bool:
    """Whether the Numba kernels run (the NumPy code here is their reference)."""
    return dtype in (np.float32, np.float64) and kernels.effective_backend() != "numpy"

__all__ = ["Dropout"]


class Dropout(Layer):
    r"""Inverted dropout.

    During training each element is kept with probability :math:`1 - p` and
    scaled by :math:`1/(1 - p)`, so the expected output equals the input and
    inference needs no rescaling:

    .. math::
        m_i \sim \operatorname{Bernoulli}(1 - p), \qquad
        y = \frac{m \odot x}{1 - p}, \qquad
        \frac{\partial L}{\partial x} = \frac{m}{1 - p} \odot
        \frac{\partial L}{\partial y}

    At inference (``training=False``) and for ``p = 0`` it is the identity.
    Masks are drawn from :attr:`rng` (the layer's ``seed`` or the model's
    generator, see :meth:`~tinynet.layers.Layer.set_rng`), in float32 whatever
    the input dtype, so a seed gives the same masks in float32 and float64.

    Parameters
    ----------
    rate : float
        Probability :math:`p \in [0, 1)` of dropping an element; checked
        again when set later (``layer.rate = 0.3``: a
        :class:`~tinynet.layers._checks.Setting`), as the layer hands it to
        the kernel unchecked.
    **kwargs
        ``name``, ``seed``, ... (see :class:`~tinynet.layers.Layer`).
    """

    rate = Setting(check_real, low=0.0, high=1.0, high_open=True)

    def __init__(self, rate: float, **kwargs):
        self.rate = rate
        self._mask = None
        self._y_shape = None
        super().__init__(**kwargs)

    def forward(self, x, training: bool = False) -> np.ndarray:
        training = check_bool(training, self._who, "training")
        x = self._prepare_input(x)
        self._y_shape = x.shape
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if _use_kernels(x.dtype):  # mask and scale fused; same draws as _draw_mask
            u = self.rng.random(x.shape, dtype=np.float32)
            # trusted: x is checked, u drawn in its shape, rate checked when set
            y, self._mask = kernels.impl("dropout_forward", x.size, trusted=True)(
                x, u, self.rate)
            return y
        self._mask = self._draw_mask(x.shape, x.dtype)
        return x * self._mask

    def _draw_mask(self, shape, dtype) -> np.ndarray:
        """Kept elements hold :math:`1/(1-p)`, dropped ones 0."""
        keep = self.rng.random(shape, dtype=np.float32) >= self.rate
        return keep.astype(dtype) * (1.0 / (1.0 - self.rate))

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._y_shape)
        dy = self._check_dy(dy, self._y_shape)
        if self._mask is None:
            return dy
        if dy.dtype == self._mask.dtype and _use_kernels(dy.dtype):
            # trusted: dy is checked to the mask's shape and dtype
            return kernels.impl("dropout_backward", dy.size, trusted=True)(dy, self._mask)
        return dy * self._mask

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate}
