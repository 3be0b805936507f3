r"""Layers that read several tensors: the base class and the two merges.

A multi-input layer takes a *list* of arrays in ``forward`` and returns a
list of input gradients from ``backward``. It is built for a list of
per-sample shapes. Layers that also produce several outputs (cross-stitch,
MMoE) set ``n_outputs`` and take/return lists on the output side too.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_float_array
from ..layers._checks import Setting
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
        """Check ``xs`` (one float array per input, of the built shapes and one
        batch size), building the layer on first use; returned in the layer's
        dtype, as :meth:`Layer._prepare_input` returns a single input."""
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
        return [x.astype(self.dtype, copy=False) for x in xs]

    def _check_merged_dy(self, dy) -> np.ndarray:
        """``dy`` for a merge's ``backward``: the gradient of its one output,
        an array shaped like the last forward's output (a list, what a layer
        of several outputs takes, is refused saying so)."""
        self._require_cache(getattr(self, "_batch", None))
        if isinstance(dy, (list, tuple)):
            raise TypeError(f"{self._who} expected dy as one array, the gradient of its one "
                            f"output (of shape {(self._batch, *self.output_shape)}), received "
                            f"a {type(dy).__name__} of {len(dy)}")
        return self._check_dy(dy, (self._batch, *self.output_shape))

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


def _check_axis(axis, who: str, what: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
        raise ValueError(f"{who} expected {what} as a non-zero integer (0 is the batch "
                         f"dimension; -1, the default, the last), received {axis!r}")
    return int(axis)


class Concatenate(MultiInputLayer):
    r"""Join inputs along ``axis`` (the last, features or channels, by default).

    .. math::
        y = [x_1, x_2, \dots, x_k], \qquad
        \frac{\partial L}{\partial x_j} = \frac{\partial L}{\partial y}[\dots, o_j:o_j + d_j, \dots]

    where :math:`o_j` is the offset of input :math:`j` along the axis and
    :math:`d_j` its size there. The inputs' per-sample shapes have one
    number of dimensions and agree on every dimension but the axis.

    Parameters
    ----------
    axis : int, default -1
        As Keras: it counts the batch dimension (``1`` is the first
        per-sample one; ``-1`` the last, the same as ``1`` for vectors), so
        ``0``, the batch, is refused. It fixes the output's shape: once the
        layer is built, a change is refused (the backward splits the
        gradient along the axis the forward joined).
    """

    axis = Setting(_check_axis, fixed=True)

    def __init__(self, axis: int = -1, **kwargs):
        self.axis = axis
        super().__init__(**kwargs)

    def _per_sample_axis(self, rank: int, shapes) -> int:
        """``axis`` as an index into the per-sample shapes (of ``rank`` dimensions)."""
        k = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= k < rank:
            raise ValueError(f"{self._who} cannot join along axis {self.axis} inputs of "
                             f"per-sample shapes {shapes} (batch dimension first: axes 1 "
                             f"to {rank}, or -1 to -{rank})")
        return k

    def compute_output_shape(self, shapes):
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"{self._who} expected inputs with the same number of "
                             f"dimensions, received per-sample shapes {shapes}")
        k = self._per_sample_axis(rank, shapes)
        if len({s[:k] + s[k + 1:] for s in shapes}) > 1:
            raise ValueError(f"{self._who} expected inputs of one shape except along axis "
                             f"{self.axis}, received per-sample shapes {shapes}")
        return shapes[0][:k] + (sum(s[k] for s in shapes),) + shapes[0][k + 1:]

    def forward(self, xs, training: bool = False):
        xs = self._prepare_inputs(xs)
        self._batch = len(xs[0])
        return np.concatenate(xs, axis=1 + self._per_sample_axis(len(self.output_shape),
                                                                 self.input_shape))

    def backward(self, dy):
        dy = self._check_merged_dy(dy)
        k = self._per_sample_axis(len(self.output_shape), self.input_shape)
        offsets = np.cumsum([s[k] for s in self.input_shape])[:-1]
        return [part.copy() for part in np.split(dy, offsets, axis=1 + k)]

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


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
        self._batch = len(xs[0])
        out = xs[0].copy()
        for x in xs[1:]:
            out += x
        return out

    def backward(self, dy):
        dy = self._check_merged_dy(dy)
        return [dy.copy() for _ in self.input_shape]
