"""Short spin-waits for OpenBLAS's idle threads, set before NumPy loads OpenBLAS.

A training step alternates between two thread pools: OpenBLAS's, which runs
the matrix products, and Numba's OpenMP pool, which runs the fused kernels
around them (epilogues, im2col, pooling, activation gradients). After a call,
each pool's idle workers spin on their core before they sleep: OpenBLAS's for
2**28 cycles (about 0.1 s), libgomp's for 300,000 spins. On two cores the
spinning workers of one pool hold the core the other pool's next call needs.
With both waits short, the two pools can take turns on both cores; with the
default waits tinynet runs the Numba kernels serially while BLAS does the
products, and the second core idles through them
(:func:`tinynet.kernels.config.pools_wait_briefly` decides which).

Both waits are read from the environment once, as each library loads:
``OPENBLAS_THREAD_TIMEOUT`` (``n`` means 2**n cycles, 4 to 30) when NumPy
loads OpenBLAS, ``GOMP_SPINCOUNT`` when Numba starts its OpenMP pool. This
module sets the first to :data:`BLAS_TIMEOUT`, only when NumPy is not loaded
yet and the variable is unset (``import tinynet`` imports it before
anything that imports NumPy), and leaves it set, so that the kernels can see
what OpenBLAS read; the second is set around the start of Numba's pool and
removed after it (:func:`tinynet.kernels.config.start_pool`), so other
OpenMP libraries loaded later keep their own default. ``TINYNET_SHORT_SPIN=0``
(or ``false``, ``no``, ``off``: :mod:`tinynet.switches`) leaves both alone;
any other value leaves them alone too, and is a ValueError where the switch is
read next (the kernels' import), not in ``import tinynet``: the ``tinynet``
command reports it in one line, which it could not when importing it failed.

The cost: an idle OpenBLAS worker now sleeps after ~30 µs, and a product that
comes later wakes it (tens of microseconds), in the user's own NumPy code too. Measured
on 2 cores (AMD EPYC, ``python -m benchmarks train --model cnn``): the
small CNN trains 34-59 % faster at batches 32-512 (1231-1514 -> 1950-2143
samples/s); see the README for the MLP.

Only the standard library here: this runs before NumPy is imported.
"""

from __future__ import annotations

import os
import sys

from .switches import flag_from_env

__all__ = ["BLAS_TIMEOUT", "SWITCH", "enabled", "shorten_blas_wait", "child_environment"]

#: OpenBLAS's idle workers spin 2**BLAS_TIMEOUT cycles (~30 µs) before they
#: sleep; OpenBLAS's own default is 28 (~0.1 s). Its minimum, 4, made the MLP
#: 30 % slower at batch 512 (every product woke sleeping workers); 16 keeps
#: back-to-back products warm and still frees the cores between them.
BLAS_TIMEOUT = 16
#: The environment variable that turns the short waits off (``0``, ``false``,
#: ``no`` or ``off``; see :mod:`tinynet.switches`).
SWITCH = "TINYNET_SHORT_SPIN"


def enabled() -> bool:
    """False when ``TINYNET_SHORT_SPIN`` is off (``0``, ``false``, ...); a
    value that is neither on nor off is a ValueError naming the variable."""
    return flag_from_env(SWITCH, True)


def shorten_blas_wait() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` for the OpenBLAS NumPy is about to load;
    True when it was set here (enabled, NumPy not yet imported, variable unset)."""
    if not enabled() or "numpy" in sys.modules or "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(BLAS_TIMEOUT)
    return True


def child_environment(environ=None) -> dict:
    """A copy of ``environ`` (default ``os.environ``) for a new process that
    will run tinynet after loading NumPy itself: with ``OPENBLAS_THREAD_TIMEOUT``
    set as :func:`shorten_blas_wait` would set it (enabled, variable unset)."""
    env = dict(os.environ if environ is None else environ)
    if flag_from_env(SWITCH, True, env):
        env.setdefault("OPENBLAS_THREAD_TIMEOUT", str(BLAS_TIMEOUT))
    return env


try:
    shorten_blas_wait()
except ValueError:  # a bad TINYNET_SHORT_SPIN: raised where it is read next (the docstring)
    pass
