"""tinynet's on/off environment variables, read one way.

``TINYNET_ADAPTIVE_THREADS``, ``TINYNET_SHORT_SPIN``, ``TINYNET_OFFLINE``
and ``TINYNET_DEBUG`` are switches: ``1``, ``true``, ``yes`` or ``on`` turn
one on, ``0``, ``false``, ``no`` or ``off`` turn it off (any case, spaces
around ignored); unset or empty leaves its default. Any other value is a
ValueError that names the variable and the value, rather than a guess
(``TINYNET_ADAPTIVE_THREADS=false`` used to leave adaptive threads on, as
only ``0`` counted as off).

Only the standard library here: :mod:`tinynet.spinwait` reads its switch
before NumPy is imported, and the kernels (which import nothing else of
tinynet) read theirs with the same function.
"""

from __future__ import annotations

import os

__all__ = ["TRUE", "FALSE", "flag_from_env"]

#: The values that turn a switch on, and off (compared lower-cased).
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def flag_from_env(variable: str, default: bool, environ=None) -> bool:
    """The switch ``variable`` of ``environ`` (default ``os.environ``):
    True or False as its value says, ``default`` when unset or empty; a
    ValueError naming the variable and its value for anything else."""
    raw = (os.environ if environ is None else environ).get(variable, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{variable}: expected one of {', '.join(TRUE)} (on) or "
                     f"{', '.join(FALSE)} (off), any case, received {raw!r}")
