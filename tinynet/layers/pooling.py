r"""2-D pooling on channels-last images: max and average over windows
(``padding="valid"`` or ``"same"``, as Keras), and over the whole image.

Windows are ``(ph, pw)`` pixels moved by ``(sh, sw)``; ``"same"`` pads so
that the output has ``ceil(H / sh)`` rows, the odd pixel after (TensorFlow's
rule, as :class:`~tinynet.layers.Conv2D`). Padding never takes part: it never
wins a maximum and an average counts only the real pixels of its window
(PyTorch's ``count_include_pad=False``). With "same" every window holds at
least one real pixel (the padding on each side is below the pool size).
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..checks import check_bool
from .base import Layer, add_alias
from ._checks import Setting, check_choice
from .conv import (PADDINGS, _check_image_shape, _pair, _prepare_image, _KeptGeometry,
                   _window_geometry)

__all__ = ["MaxPool2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "MaxPooling2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]


class _Pool2D(_KeptGeometry, Layer):
    """What the windowed pooling layers share: pool, strides, padding, the
    output shape and the config.

    Parameters
    ----------
    pool_size : int or (int, int), default 2
    strides : int or (int, int), optional
        Defaults to ``pool_size``.
    padding : {"valid", "same"}, default "valid"

    Input ``(batch, H, W, C)``; output ``(batch, Ho, Wo, C)`` with
    ``Ho = (H - ph) // sh + 1`` for "valid" and ``ceil(H / sh)`` for "same".
    The three fix the output shape: once the layer is built, a change is
    refused (make a new layer).
    """

    pool_size = Setting(_pair, fixed=True)
    strides = Setting(_pair, fixed=True)
    padding = Setting(check_choice, fixed=True, choices=PADDINGS)

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", **kwargs):
        # settings first (checked as set): the base may build at once
        self.pool_size = pool_size
        self.strides = self.pool_size if strides is None else strides
        self.padding = padding
        self._cache = None
        super().__init__(**kwargs)

    def _compute_geometry(self, height, width):
        """``(pads, (Ho, Wo))`` for an image of ``height x width``."""
        return _window_geometry(self._who, "pool", (height, width), self.pool_size,
                                self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        h, w, c = _check_image_shape(self._who, input_shape)
        return (*self._geometry(h, w)[1], c)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides),
                      padding=self.padding)
        return config


class MaxPool2D(_Pool2D):
    r"""Max pooling over ``(ph, pw)`` windows, channels-last.

    .. math::
        y_{n,i,j,d} = \max_{a<p_h,\ c<p_w} x^p_{n,\ i s_h + a,\ j s_w + c,\ d}, \qquad
        \frac{\partial L}{\partial x^p_{n,\ i s_h + a^*,\ j s_w + c^*,\ d}}
            \mathrel{+}= \delta_{n,i,j,d}

    where :math:`x^p` is the input, padded for ``"same"`` by :math:`-\infty`
    (which never wins), and :math:`(a^*, c^*)` the first position of the
    window's maximum (as PyTorch routes it; ties get no share), or of its
    last NaN if it holds one (a NaN is the maximum, and the output NaN;
    PyTorch 2.13 routes to the last NaN too). A window whose real pixels are
    all :math:`-\infty` routes to its first real pixel, as PyTorch does,
    never to the padding. Overlapping windows (``strides < pool_size``) add
    their gradients; :math:`\partial L/\partial x` is
    :math:`\partial L/\partial x^p` without the padding. The work is done
    by ``tinynet.kernels.pooling`` (one pass over the input; the padding is
    not copied but each window clipped to the image, which gives the same
    bits).

    Parameters and shapes: ``pool_size=2``, ``strides=None`` (the pool),
    ``padding="valid"`` or ``"same"``; input ``(batch, H, W, C)``, output
    ``(batch, Ho, Wo, C)`` with ``Ho = (H - ph) // sh + 1`` ("valid") or
    ``ceil(H / sh)`` ("same").
    """

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = _prepare_image(self, x)
        pads, _ = self._geometry(x.shape[1], x.shape[2])
        y, arg = kernels.impl("maxpool_forward", x.size, trusted=True)(
            x, self.pool_size, self.strides, pads)
        self._cache = (x.shape, pads, arg)
        return y

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._cache)
        x_shape, pads, arg = self._cache
        dy = self._check_dy(dy, arg.shape)
        # trusted: arg is the forward's own
        return kernels.impl("maxpool_backward", dy.size, trusted=True)(
            dy, arg, x_shape, self.pool_size, self.strides, pads)


class AveragePooling2D(_Pool2D):
    r"""Average pooling over ``(ph, pw)`` windows, channels-last (Keras'
    ``AveragePooling2D``).

    .. math::
        y_{n,i,j,d} = \frac{1}{m_{ij}} \sum_{a<p_h,\ c<p_w}
            x^p_{n,\ i s_h + a,\ j s_w + c,\ d}, \qquad
        \frac{\partial L}{\partial x^p_{n,\ i s_h + a,\ j s_w + c,\ d}}
            \mathrel{+}= \frac{\delta_{n,i,j,d}}{m_{ij}}

    with :math:`x^p` the input padded by zeros for ``"same"`` and
    :math:`m_{ij}` the number of *real* pixels in window ``(i, j)`` (Keras;
    PyTorch's ``count_include_pad=False``): :math:`p_h p_w` for "valid".
    Overlapping windows add their gradients; :math:`\partial L/\partial x`
    drops the padding. Computed by ``tinynet.kernels.pooling`` (one pass
    over the input, each window clipped to the image: no padded copy).

    Parameters and shapes as :class:`MaxPool2D`.
    """

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = _prepare_image(self, x)
        pads, _ = self._geometry(x.shape[1], x.shape[2])
        self._cache = (x.shape, pads)
        return kernels.impl("avgpool_forward", x.size, trusted=True)(
            x, self.pool_size, self.strides, pads)

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._cache)
        x_shape, pads = self._cache
        dy = self._check_dy(dy, (x_shape[0], *self.output_shape))
        return kernels.impl("avgpool_backward", dy.size, trusted=True)(
            dy, x_shape, self.pool_size, self.strides, pads)


class _GlobalPool2D(Layer):
    """What the global pooling layers share: ``keepdims`` (fixed once built,
    as the output shape), the output shape, the config."""

    keepdims = Setting(check_bool, fixed=True)

    def __init__(self, keepdims: bool = False, **kwargs):
        self.keepdims = keepdims
        self._cache = None
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        c = _check_image_shape(self._who, input_shape)[2]
        return (1, 1, c) if self.keepdims else (c,)

    def _shaped(self, y4):
        """``(N, 1, 1, C)`` as the layer's output shape."""
        return y4 if self.keepdims else y4.reshape(y4.shape[0], y4.shape[3])

    def _dy4(self, dy, n):
        """``dy`` checked against the output and shaped ``(N, 1, 1, C)``."""
        dy = self._check_dy(dy, (n, *self.output_shape))
        return dy.reshape(n, 1, 1, dy.shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(keepdims=self.keepdims)
        return config


class GlobalAveragePooling2D(_GlobalPool2D):
    r"""The mean of each channel over the whole image (Keras'
    ``GlobalAveragePooling2D``; PyTorch's ``adaptive_avg_pool2d(x, 1)``).

    .. math::
        y_{n,d} = \frac{1}{HW} \sum_{i<H,\ j<W} x_{n,i,j,d}, \qquad
        \frac{\partial L}{\partial x_{n,i,j,d}} = \frac{\delta_{n,d}}{HW}

    One :class:`AveragePooling2D` window the size of the image, on the same
    kernels. Input ``(batch, H, W, C)``; output ``(batch, C)``, or
    ``(batch, 1, 1, C)`` with ``keepdims=True``.
    """

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = _prepare_image(self, x)
        self._cache = x.shape
        pool = x.shape[1:3]
        return self._shaped(kernels.impl("avgpool_forward", x.size, trusted=True)(x, pool, pool))

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._cache)
        x_shape = self._cache
        pool = x_shape[1:3]
        return kernels.impl("avgpool_backward", int(np.prod(x_shape)), trusted=True)(
            self._dy4(dy, x_shape[0]), x_shape, pool, pool)


class GlobalMaxPooling2D(_GlobalPool2D):
    r"""The maximum of each channel over the whole image (Keras'
    ``GlobalMaxPooling2D``; PyTorch's ``adaptive_max_pool2d(x, 1)``).

    .. math::
        y_{n,d} = \max_{i<H,\ j<W} x_{n,i,j,d}, \qquad
        \frac{\partial L}{\partial x_{n,i^*,j^*,d}} = \delta_{n,d}

    at the first maximum :math:`(i^*, j^*)` in row-major order (zero
    elsewhere; a NaN is the maximum, and the last NaN takes it, as in
    PyTorch): one :class:`MaxPool2D` window the size
    of the image, on the same kernels.

    Input ``(batch, H, W, C)``; output ``(batch, C)``, or ``(batch, 1, 1, C)``
    with ``keepdims=True``.
    """

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = _prepare_image(self, x)
        pool = x.shape[1:3]
        y, arg = kernels.impl("maxpool_forward", x.size, trusted=True)(x, pool, pool)
        self._cache = (x.shape, arg)
        return self._shaped(y)

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._cache)
        x_shape, arg = self._cache
        pool = x_shape[1:3]
        # trusted: arg is the forward's own
        return kernels.impl("maxpool_backward", arg.size, trusted=True)(
            self._dy4(dy, x_shape[0]), arg, x_shape, pool, pool)


# Keras' other names: the same classes, so a model saved with either name
# stores the class's own name (``MaxPool2D``, ...) and loads as it.
MaxPooling2D = add_alias("MaxPooling2D", MaxPool2D)
AvgPool2D = add_alias("AvgPool2D", AveragePooling2D)
GlobalAvgPool2D = add_alias("GlobalAvgPool2D", GlobalAveragePooling2D)
GlobalMaxPool2D = add_alias("GlobalMaxPool2D", GlobalMaxPooling2D)
