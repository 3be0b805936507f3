r"""Layers that read several tensors: the base class and the two merges.

A multi-input layer takes a *list* of arrays in ``forward`` and returns a
list of input gradients from ``backward``. It is built for a list of
per-sample shapes. Layers that also produce several outputs (cross-stitch,
MMoE) set ``n_outputs`` and take/return lists on the output side too.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_float_array
from ..layers.base import Layer, shape_str

__all__ = ["MultiInputLayer", "Concatenate", "Add"]


class MultiInputLayer(Layer):
    """Base class of layers whose input is a list of arrays.

    ``input_shape`` is a list of per-sample shapes. Subclasses implement
    ``compute_output_shape(shapes)``, ``_build(shapes, rng)`` (if they have
    parameters), ``forward(xs, training)`` starting with
    ``xs = self._prepare_inputs(xs)``, and ``backward(dy) -> list of dx``.
    """

    accepts_multiple_inputs = True

    def build(self, input_shapes, rng=None, dtype=None):
        if not isinstance(input_shapes, (list, tuple)) or not input_shapes or not all(
                isinstance(s, (list, tuple)) for s in input_shapes):
            raise ValueError(f"{self._who} expected a list of per-sample input shapes, "
                             f"received {input_shapes!r}")
        shapes = []
        for s in input_shapes:
            s = tuple(s)
            if s and s[0] is None:
                s = s[1:]
            if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0
                   for d in s):
                raise ValueError(f"{self._who} expected shapes of positive integers, "
                                 f"received {input_shapes!r}")
            shapes.append(tuple(int(d) for d in s))
        return self._build_checked(shapes, rng, dtype)

    def _prepare_inputs(self, xs) -> list[np.ndarray]:
        if not isinstance(xs, (list, tuple)):
            raise TypeError(f"{self._who} expected a list of input arrays, "
                            f"received {type(xs).__name__}")
        xs = [as_float_array(x, self._who, f"input {i}", min_ndim=2) for i, x in enumerate(xs)]
        if not self.built:
            self.build([x.shape[1:] for x in xs], dtype=self.dtype or xs[0].dtype)
        if len(xs) != len(self.input_shape):
            raise ValueError(f"{self._who} expected {len(self.input_shape)} inputs, "
                             f"received {len(xs)}")
        for i, (x, s) in enumerate(zip(xs, self.input_shape)):
            if x.shape[1:] != s:
                raise ValueError(f"{self._who} expected input {i} of shape {shape_str(s)}, "
                                 f"received {x.shape}")
        if len({x.shape[0] for x in xs}) > 1:
            raise ValueError(f"{self._who} expected inputs with one batch size, received "
                             f"{[x.shape[0] for x in xs]}")
        return xs

    def get_config(self) -> dict:
        config = super().get_config()
        if self.input_shape is not None:
            config["input_shape"] = [list(s) for s in self.input_shape]
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        shapes = config.pop("input_shape", None)
        layer = cls(**config)
        if shapes is not None:
            layer.build(shapes)
        return layer


class Concatenate(MultiInputLayer):
    r"""Join inputs along the feature axis.

    .. math::
        y = [x_1, x_2, \dots, x_k], \qquad
        \frac{\partial L}{\partial x_j} = \frac{\partial L}{\partial y}[:, o_j:o_j + d_j]

    where :math:`o_j` is the offset of input :math:`j` and :math:`d_j` its width.
    """

    def compute_output_shape(self, shapes):
        if any(len(s) != 1 for s in shapes):
            raise ValueError(f"{self._who} expected 1-D per-sample inputs, received {shapes}")
        return (sum(s[0] for s in shapes),)

    def forward(self, xs, training: bool = False):
        xs = self._prepare_inputs(xs)
        self._ready = True
        return np.concatenate(xs, axis=1)

    def backward(self, dy):
        self._require_cache(getattr(self, "_ready", None))
        dy = self._check_dy(dy, (dy.shape[0], self.output_shape[0]))
        offsets = np.cumsum([0] + [s[0] for s in self.input_shape])
        return [dy[:, a:b].copy() for a, b in zip(offsets[:-1], offsets[1:])]


class Add(MultiInputLayer):
    r"""Element-wise sum of inputs of one shape.

    .. math::
        y = \sum_j x_j, \qquad \frac{\partial L}{\partial x_j} = \frac{\partial L}{\partial y}
    """

    def compute_output_shape(self, shapes):
        if len(set(shapes)) != 1:
            raise ValueError(f"{self._who} expected inputs of one shape, received {shapes}")
        return shapes[0]

    def forward(self, xs, training: bool = False):
        xs = self._prepare_inputs(xs)
        self._ready = True
        out = xs[0].copy()
        for x in xs[1:]:
            out += x
        return out

    def backward(self, dy):
        self._require_cache(getattr(self, "_ready", None))
        dy = self._check_dy(dy, (dy.shape[0], *self.output_shape))
        return [dy.copy() for _ in self.input_shape]
