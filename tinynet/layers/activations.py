"""Element-wise activation layers.

Each activation is a parameter-free layer with the maths in two small
functions, ``_forward(x) -> y`` and ``_backward(x, y, dy) -> dx``; where the
derivative is exact in terms of the output (ReLU, sigmoid, tanh) the backward
uses only ``y``, and the layer keeps only ``y`` from its forward pass.

Every activation also serves as the fused ``activation=`` of
:class:`~tinynet.layers.Dense` (see :func:`get`).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import lookup
from .base import Layer

__all__ = [
    "Activation", "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid",
    "Tanh", "Softmax", "get", "ACTIVATIONS",
]


class Activation(Layer):
    """Base class: caches ``x`` and ``y`` as :attr:`needs_input` says.

    Subclasses implement ``_forward(x)`` and ``_backward(x, y, dy)`` and set
    ``needs_input = False`` when the backward uses only ``y``.
    """

    needs_input = True

    def __init__(self, **kwargs):
        self._x = None
        self._y = None
        super().__init__(**kwargs)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        y = self._forward(x)
        self._x = x if self.needs_input else None
        self._y = y
        return y

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._y)
        dy = self._check_dy(dy, self._y.shape)
        return self._backward(self._x, self._y, dy)

    def _forward(self, x):
        raise NotImplementedError

    def _backward(self, x, y, dy):
        raise NotImplementedError


class Identity(Activation):
    r"""Identity: :math:`y = x`, :math:`\partial L/\partial x = \partial L/\partial y`."""

    needs_input = False

    def _forward(self, x):
        return x

    def _backward(self, x, y, dy):
        return dy


class ReLU(Activation):
    r"""Rectified linear unit.

    .. math::
        y = \max(x, 0), \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\,[y > 0]

    (the subgradient at 0 is taken as 0, as in PyTorch).
    """

    needs_input = False

    def _forward(self, x):
        return np.maximum(x, 0)

    def _backward(self, x, y, dy):
        return dy * (y > 0)


# Filled in by name below; ``get`` accepts these names, an Activation instance,
# a ``{"class": ..., "config": ...}`` dict or None (identity).
ACTIVATIONS: dict[str, type] = {
    "linear": Identity, "identity": Identity, "relu": ReLU,
}


def get(spec) -> Activation:
    """A fresh activation layer from a name, a config dict, an instance or None."""
    if spec is None:
        return Identity()
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, dict):
        from .base import layer_from_dict
        layer = layer_from_dict(spec)
        if not isinstance(layer, Activation):
            raise TypeError(f"expected an activation, received layer class {spec['class']!r}")
        return layer
    return lookup(ACTIVATIONS, spec, "activation")()


def name_of(act: Activation) -> str:
    """The registry name of an activation's class (``"relu"`` for ReLU)."""
    for name, cls in ACTIVATIONS.items():
        if type(act) is cls:
            return name
    raise ValueError(f"activation {type(act).__name__} is not registered in ACTIVATIONS")


def to_config(act: Activation):
    """What a Dense config stores: a name for default settings, else a dict."""
    if isinstance(act, Identity):
        return None
    extra = {k: v for k, v in act.get_config().items()
             if k not in ("name", "trainable", "dtype", "input_shape", "seed")}
    if not extra:
        return name_of(act)
    from .base import layer_to_dict
    spec = layer_to_dict(act)
    spec["config"] = extra
    return spec
