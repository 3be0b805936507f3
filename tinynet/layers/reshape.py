"""Shape-only layers."""

from __future__ import annotations

import math

import numpy as np

from ..checks import check_non_negative_int
from ._checks import Setting
from .base import Layer
from .conv import _check_image_shape, _pair, _prepare_image

__all__ = ["Cropping2D", "Flatten", "Reshape"]


def _check_target_shape(target_shape, who: str, what: str) -> tuple:
    if not isinstance(target_shape, (tuple, list)) or not target_shape or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
            for d in target_shape):
        raise ValueError(f"{who} expected {what} as a tuple of positive ints, "
                         f"received {target_shape!r}")
    return tuple(int(d) for d in target_shape)


def _check_cropping(cropping, who: str, what: str) -> tuple:
    """``((top, bottom), (left, right))`` from any of Cropping2D's forms."""
    if isinstance(cropping, (tuple, list)) and len(cropping) == 2 and all(
            isinstance(c, (tuple, list)) for c in cropping):
        rows = _pair(cropping[0], who, f"{what} rows (top, bottom)", check_non_negative_int)
        cols = _pair(cropping[1], who, f"{what} columns (left, right)", check_non_negative_int)
        return (rows, cols)
    h, w = _pair(cropping, who, what, check_non_negative_int)
    return ((h, h), (w, w))


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
        Fixed once built (the output shape): a change is refused.
    """

    target_shape = Setting(_check_target_shape, fixed=True)

    def __init__(self, target_shape, **kwargs):
        self.target_shape = target_shape
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

    target_shape = None  # no setting (a plain attribute in place of Reshape's)

    def __init__(self, **kwargs):
        self._x_shape = None
        Layer.__init__(self, **kwargs)

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def get_config(self) -> dict:
        return Layer.get_config(self)


class Cropping2D(Layer):
    r"""Cut rows and columns off the edges of channels-last images (Keras'
    ``Cropping2D``; in PyTorch a slice, ``x[:, :, t:H-b, l:W-r]`` in NCHW).

    With ``cropping = ((t, b), (l, r))`` and an input of shape
    ``(batch, H, W, C)``, the output has shape ``(batch, H - t - b, W - l - r, C)``:

    .. math::
        y_{n,i,j,c} = x_{n,\,i+t,\,j+l,\,c}, \qquad
        \frac{\partial L}{\partial x_{n,i,j,c}} =
        \begin{cases} \dfrac{\partial L}{\partial y_{n,\,i-t,\,j-l,\,c}}
        & t \le i < H - b,\ l \le j < W - r \\ 0 & \text{otherwise.} \end{cases}

    Parameters
    ----------
    cropping : int, pair of ints, or pair of pairs, default 0
        ``n``: ``n`` off every edge; ``(h, w)``: ``h`` off the top and the
        bottom, ``w`` off the left and the right; ``((t, b), (l, r))``: each
        edge its own. Non-negative, and at least one row and one column
        must remain. Fixed once built (the output shape): a change is refused.
    """

    cropping = Setting(_check_cropping, fixed=True)

    def __init__(self, cropping=((0, 0), (0, 0)), **kwargs):
        self.cropping = cropping
        self._x_shape = None
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        h, w, c = _check_image_shape(self._who, input_shape)
        (top, bottom), (left, right) = self.cropping
        if top + bottom >= h or left + right >= w:
            raise ValueError(f"{self._who} expected an image larger than its cropping "
                             f"{self.cropping}: at least {top + bottom + 1}x"
                             f"{left + right + 1}, received {h}x{w}")
        return (h - top - bottom, w - left - right, c)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = _prepare_image(self, x)
        self._x_shape = x.shape
        (top, _), (left, _) = self.cropping
        h, w, _ = self.output_shape
        return x[:, top:top + h, left:left + w, :].copy()

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._x_shape)
        dy = self._check_dy(dy, (self._x_shape[0], *self.output_shape))
        (top, _), (left, _) = self.cropping
        h, w, _ = self.output_shape
        dx = np.zeros(self._x_shape, dtype=dy.dtype)
        dx[:, top:top + h, left:left + w, :] = dy
        return dx

    def get_config(self) -> dict:
        config = super().get_config()
        config["cropping"] = [list(self.cropping[0]), list(self.cropping[1])]
        return config
