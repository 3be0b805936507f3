"""Argument checks of the kernels' public functions.

A few kernels index arrays with values they are given -- max pooling's
backward with the argmax indices ``arg``, col2im with its geometry, the
softmax cross-entropy with the labels -- and a Numba kernel does not check
its indices: a wrong value reads or writes past an array (a crash, or silent
garbage). Their public functions therefore check every such argument first
(:func:`checked`), with a ValueError or TypeError that says what was expected
and what was received.

The layers and losses produce or check these arguments themselves (``arg``
comes from the forward pass, the labels from ``check_labels``), so they call
each function's ``.trusted`` build instead -- through
``dispatch.impl(op, size, trusted=True)`` -- and do not scan the indices a
second time on every step. Without Numba the same holds for the NumPy
references.

The kernels import nothing of tinynet (``import tinynet`` must not import
Numba), hence these helpers beside ``tinynet.checks``.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["check_count"]


def check_count(n, who: str) -> int:
    """``n`` as an int when it is a positive integer: a Python or NumPy integer,
    anything ``operator.index`` takes except a bool. A float or bool (or any
    other type) raises a TypeError, a number below 1 a ValueError."""
    if isinstance(n, (bool, np.bool_)):
        raise TypeError(f"{who} expected a positive integer, received the bool {n!r}")
    try:
        value = operator.index(n)
    except TypeError:
        raise TypeError(f"{who} expected a positive integer (int or NumPy integer), received "
                        f"{n!r} of type {type(n).__name__}") from None
    if value < 1:
        raise ValueError(f"{who} expected a positive integer, received {value}")
    return value
