"""Checks of layer hyper-parameters (slopes, rates, momenta, epsilons)."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_real"]


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_real(value, who: str, what: str, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a real number in the given interval.

    Errors read alike for every layer: ``Dropout expected rate in [0, 1),
    received 1.5`` (``ValueError``), or a ``TypeError`` for a non-number.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who} expected {what} as a real number, received {value!r} "
                        f"of type {type(value).__name__}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        raise ValueError(f"{who} expected {what} in "
                         f"{_interval(low, high, low_open, high_open)}, received {value!r}")
    return value
