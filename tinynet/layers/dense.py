"""The fully connected layer."""

from __future__ import annotations

import numpy as np

from ..checks import check_positive_int
from ._checks import Setting
from .weights import _KernelLayer

__all__ = ["Dense"]


class Dense(_KernelLayer):
    r"""Fully connected layer with an optional fused activation.

    .. math::
        z = x W + b, \qquad y = f(z)

    with :math:`x` of shape ``(batch, in)``, :math:`W` of shape
    ``(in, units)``, :math:`b` of shape ``(units,)``. Backward, given
    :math:`\delta = \partial L/\partial y`:

    .. math::
        g = \delta \odot f'(z), \qquad
        \frac{\partial L}{\partial W} \mathrel{+}= x^\top g, \qquad
        \frac{\partial L}{\partial b} \mathrel{+}= \textstyle\sum_{\text{batch}} g, \qquad
        \frac{\partial L}{\partial x} = g W^\top

    Parameters
    ----------
    units : int
        Output width (with ``use_bias``, fixed once built: a change is refused).
    activation : str or None
        Name of an activation from :mod:`tinynet.layers.activations`
        (``"relu"``, ``"gelu"``, ...) applied in the same layer; may be set
        later (``dense.activation = "tanh"``), checked as here.
    use_bias : bool, default True
    kernel_initializer : str or callable, default "glorot_uniform"
    bias_initializer : str or callable, default "zeros"
        A name from :mod:`tinynet.init` or a function ``(shape, rng, dtype)
        -> array``; may be set later, before the layer is built (the build
        draws the weights with it), checked as here; refused once built.
    **kwargs
        ``name``, ``trainable``, ``dtype``, ``input_dim``, ``input_shape``,
        ``seed`` (see :class:`~tinynet.layers.base.Layer`).

    Attributes
    ----------
    W : Param of shape (in, units)
    b : Param of shape (units,) or None

    Notes
    -----
    Unless the backend is ``"numpy"`` (see :mod:`tinynet.kernels`), forward
    and backward run as fused kernels (GEMM + bias + activation in one pass;
    activation gradient + bias gradient in one pass, then the two GEMMs);
    the NumPy code in :meth:`forward`/:meth:`backward` is the reference they
    are tested against.
    """

    units = Setting(check_positive_int, fixed=True)

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        self.units = units
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer)
        self._x = None
        self._fused = None
        self._fused_cache = None
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"{self._who} expected input of shape (batch, features), "
                             f"received per-sample shape {tuple(input_shape)} "
                             f"(add a Flatten layer before it)")
        return (self.units,)

    def _build(self, input_shape, rng):
        self._build_kernel((input_shape[0], self.units), rng)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        self._x = x
        self._fused = self._kernel_activation(x)
        if self._fused is not None:
            y, z = self._fused_forward(x, self._fused)
            self._fused_cache = (y, z)
            return y
        z = x @ self.W.value
        if self.b is not None:
            z += self.b.value
        return self._activate(z, training)

    #: :meth:`backward` accepts ``need_dx=False`` (see ``Sequential.backward``).
    can_skip_dx = True

    def backward(self, dy, need_dx: bool = True) -> np.ndarray:
        """dL/dx (None when ``need_dx`` is False: the first layer of a model
        whose input needs no gradient skips that product)."""
        self._require_cache(self._x)
        if self._fused is not None:
            y, z = self._fused_cache
            dy = np.asarray(self._check_dy(dy, y.shape), dtype=y.dtype)
            return self._fused_backward(self._x, dy, y, z, self._fused, need_dx)
        g = self._activation_backward(dy)
        self.W.grad += self._x.T @ g
        if self.b is not None:
            self.b.grad += g.sum(axis=0)
        return g @ self.W.value.T if need_dx else None

    def get_config(self) -> dict:
        config = super().get_config()
        config["units"] = self.units
        return config
