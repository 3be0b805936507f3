"""Weight initializers.

Every initializer is a function ``init(shape, rng, dtype) -> ndarray`` drawing
from a ``numpy.random.Generator`` that the caller owns -- never NumPy's global
state -- so a seed fixes every weight of a model. ``rng`` may also be a seed
(a non-negative int, as Keras' ``GlorotUniform(seed=0)``) or None (fresh
entropy); anything else is a ``TypeError`` naming the initializer. Inside a
:func:`~tinynet.param.param_budget` block (:func:`tinynet.load` building the
model a file describes) an initializer refuses, before drawing, a shape that
does not fit in the budget.

For a weight of shape ``(fan_in, fan_out)`` (a :class:`~tinynet.layers.Dense`
kernel), with gain :math:`g`:

================  =======================================================
name              distribution
================  =======================================================
glorot_uniform    :math:`U(-a, a)`, :math:`a = g\\sqrt{6 / (fan_{in} + fan_{out})}`
glorot_normal     :math:`N(0, \\sigma^2)`, :math:`\\sigma = g\\sqrt{2 / (fan_{in} + fan_{out})}`
he_uniform        :math:`U(-a, a)`, :math:`a = \\sqrt{6 / fan_{in}}`
he_normal         :math:`N(0, \\sigma^2)`, :math:`\\sigma = \\sqrt{2 / fan_{in}}`
lecun_uniform     :math:`U(-a, a)`, :math:`a = \\sqrt{3 / fan_{in}}`
lecun_normal      :math:`N(0, \\sigma^2)`, :math:`\\sigma = \\sqrt{1 / fan_{in}}`
orthogonal        :math:`g Q`, Q from the QR decomposition of a Gaussian matrix
zeros, ones       constants
================  =======================================================

The normal variants are untruncated (as ``torch.nn.init``'s ``*_normal_``).
As in Keras, a fan below 1 counts as 1 (``max(1, fan)``): a shape with a zero
fan has no entries and gives an empty array.

``shape`` is a sequence of integers >= 0 (a tuple, a list, a 1-D integer
array, a range), or an int for a 1-D shape (``zeros(5)``, as
``np.zeros(5)``): every initializer checks it first, so
``glorot_uniform(5, rng)`` draws 5 values and ``he_normal((-1, 3), rng)`` is a
``ValueError`` naming ``init.he_normal`` and the shape, not NumPy's
"negative dimensions are not allowed".
"""

from __future__ import annotations

import functools

import numpy as np

from .checks import check_int_sequence, lookup
from .param import check_param_budget

__all__ = [
    "fans", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "orthogonal", "zeros", "ones", "get",
    "INITIALIZERS",
]


def _shape(shape, who: str) -> tuple:
    """``shape`` as a tuple of ints >= 0, else a ``TypeError`` (not integers:
    ``"5"``, ``(2.0, 3)``) or a ``ValueError`` (a negative size) naming
    ``init.<who>``: the one check of every initializer's shape
    (:func:`_checks_shape`). Any sequence of integers is taken (a tuple, a list,
    ``np.array([3, 4])``, ``range(3, 5)``: ``tuple(shape)``, the walk
    :func:`~tinynet.checks.check_int_sequence` makes of widths too); one integer
    ``n`` is ``(n,)``, as NumPy's ``np.zeros(n)``. A string, or anything else
    that is no sequence (a 0-d array too), counts as one size, refused when it
    is no integer."""
    return check_int_sequence(shape, f"init.{who} expected shape as a sequence of integers >= 0 "
                                     f"such as (784, 128), or an int", low=0, one_int=True)


def _checks_shape(initializer):
    """``initializer`` with its ``shape`` checked and made a tuple by
    :func:`_shape` before its own code runs, errors naming it."""
    @functools.wraps(initializer)
    def checked(shape, *args, **kwargs):
        return initializer(_shape(shape, initializer.__name__), *args, **kwargs)
    return checked


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight; 1-D shapes count as ``(n, n)``."""
    return _fans(_shape(shape, "fans"))


def _fans(shape: tuple) -> tuple[int, int]:
    """:func:`fans` of a checked shape."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _generator(rng, who: str) -> np.random.Generator:
    """``rng`` itself, or the generator a seed (or None) makes
    (:func:`tinynet.data.as_generator`, whose errors name ``init.<who>``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    from .data.batches import as_generator  # here: tinynet.data imports the layers
    return as_generator(rng, f"init.{who}")


def _uniform(limit, shape, rng, dtype, who):
    rng = _generator(rng, who)
    check_param_budget(shape, "a weight")
    return rng.uniform(-limit, limit, size=shape).astype(dtype, copy=False)


def _normal(std, shape, rng, dtype, who):
    rng = _generator(rng, who)
    check_param_budget(shape, "a weight")
    return (rng.standard_normal(size=shape) * std).astype(dtype, copy=False)


def _fan_sum(shape) -> int:
    """``fan_in + fan_out``, at least 2: Keras' guard ``max(1, fan_avg)`` of
    the fan-based initializers. A shape with a zero fan (``(0, 5)``, a conv
    kernel of no input channels) has no entries and gives an empty array
    rather than a ZeroDivisionError; a shape with entries has both fans at
    least 1, so the guard never changes a scale that is used."""
    fan_in, fan_out = _fans(shape)
    return max(2, fan_in + fan_out)


def _fan_in(shape) -> int:
    """``fan_in``, at least 1 (Keras' ``max(1, fan_in)``; see :func:`_fan_sum`)."""
    return max(1, _fans(shape)[0])


@_checks_shape
def glorot_uniform(shape, rng, dtype=np.float32, gain=1.0):
    limit = gain * np.sqrt(6.0 / _fan_sum(shape))
    return _uniform(limit, shape, rng, dtype, "glorot_uniform")


@_checks_shape
def glorot_normal(shape, rng, dtype=np.float32, gain=1.0):
    std = gain * np.sqrt(2.0 / _fan_sum(shape))
    return _normal(std, shape, rng, dtype, "glorot_normal")


@_checks_shape
def he_uniform(shape, rng, dtype=np.float32):
    return _uniform(np.sqrt(6.0 / _fan_in(shape)), shape, rng, dtype, "he_uniform")


@_checks_shape
def he_normal(shape, rng, dtype=np.float32):
    return _normal(np.sqrt(2.0 / _fan_in(shape)), shape, rng, dtype, "he_normal")


@_checks_shape
def lecun_uniform(shape, rng, dtype=np.float32):
    return _uniform(np.sqrt(3.0 / _fan_in(shape)), shape, rng, dtype, "lecun_uniform")


@_checks_shape
def lecun_normal(shape, rng, dtype=np.float32):
    return _normal(np.sqrt(1.0 / _fan_in(shape)), shape, rng, dtype, "lecun_normal")


@_checks_shape
def orthogonal(shape, rng, dtype=np.float32, gain=1.0):
    """A (semi-)orthogonal matrix: rows or columns orthonormal, times ``gain``."""
    if len(shape) < 2:
        raise ValueError(f"init.orthogonal expected shape with at least 2 dimensions, "
                         f"received {shape}")
    rng = _generator(rng, "orthogonal")
    check_param_budget(shape, "a weight")
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the distribution uniform over orthogonal matrices
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype, copy=False)


@_checks_shape
def zeros(shape, rng=None, dtype=np.float32):
    check_param_budget(shape, "a weight")
    return np.zeros(shape, dtype=dtype)


@_checks_shape
def ones(shape, rng=None, dtype=np.float32):
    check_param_budget(shape, "a weight")
    return np.ones(shape, dtype=dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform, "xavier_uniform": glorot_uniform,
    "glorot_normal": glorot_normal, "xavier_normal": glorot_normal,
    "he_uniform": he_uniform, "kaiming_uniform": he_uniform,
    "he_normal": he_normal, "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform, "lecun_normal": lecun_normal,
    "orthogonal": orthogonal, "zeros": zeros, "ones": ones,
}


def get(name_or_fn, who: str = "init.get", what: str = "initializer"):
    """An initializer function from its name (or the function itself);
    anything else is a ``TypeError`` naming ``who`` and ``what`` (the layer
    and its argument)."""
    from .layers.base import Layer  # here: the layers import this module

    if isinstance(name_or_fn, Layer) or (isinstance(name_or_fn, type)
                                         and issubclass(name_or_fn, Layer)):
        # a layer is callable (on a symbolic tensor), but no initializer: a slip
        # of the argument, refused here rather than when the layer is built
        raise TypeError(f"{who} expected {what} as a name such as 'glorot_uniform' or a "
                        f"function (shape, rng, dtype) -> array, received the layer "
                        f"{name_or_fn!r}"[:300])
    if callable(name_or_fn):
        return name_or_fn
    if not isinstance(name_or_fn, str):
        raise TypeError(f"{who} expected {what} as a name such as 'glorot_uniform' or a "
                        f"function (shape, rng, dtype) -> array, received {name_or_fn!r} "
                        f"of type {type(name_or_fn).__name__}")
    return lookup(INITIALIZERS, name_or_fn, "initializer")
