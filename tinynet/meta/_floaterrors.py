"""NumPy's floating-point warnings, held back where a meta-learner reports
the divergence they come from itself.

An inner SGD that diverges overflows NumPy's matrix products long before its
loss is NaN. ``evaluate`` reports such tasks (``n_diverged``,
``loss_finite``), ``adapt`` warns that the adapted weights are not finite,
``meta_fit`` (and ``Pretrained.fit``) warn and stop at a non-finite loss or
gradient: NumPy's own ``RuntimeWarning`` s ("overflow encountered in
matmul", "invalid value encountered in multiply"), pointing at lines of
:mod:`.functional`, only said the same again, less clearly. Where the
learner reports nothing -- the results came out finite although values left
the float range on the way (a saturated tanh of an overflowed product) --
they are the only sign of it, so they are given then, as one warning naming
the learner's method.

The errors are recorded with ``np.errstate(call=...)`` (per thread, as NumPy
keeps its error state) in place of NumPy's ``"warn"`` only: an error mode the
user set (``np.seterr(all="raise")``, ``"ignore"``) is kept as it is.
"""

from __future__ import annotations

import numpy as np

from .. import _userwarn

__all__ = ["HeldFloatWarnings"]


class HeldFloatWarnings:
    """``with HeldFloatWarnings(who) as held: ...; held.reported = <did the
    learner report a divergence?>``: NumPy's floating-point warnings met in
    the block are dropped if ``reported`` is true at its end, else given as
    one ``RuntimeWarning`` (none when the block raises: the exception
    reports)."""

    def __init__(self, who: str):
        self.who, self.met, self.reported = who, [], False
        self._state = None

    def _record(self, kind: str, flag: int) -> None:
        if kind not in self.met:
            self.met.append(kind)

    def __enter__(self) -> "HeldFloatWarnings":
        modes = {kind: "call" if mode == "warn" else mode for kind, mode in np.geterr().items()}
        self._state = np.errstate(call=self._record, **modes)
        self._state.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._state.__exit__(exc_type, exc, tb)
        if self.met and not self.reported and exc_type is None:
            _userwarn.warn(f"{self.who}: NumPy met {' and '.join(self.met)} in floating-point "
                           f"operations, though the results are finite: values left the "
                           f"float range on the way, so the results may be inaccurate",
                           RuntimeWarning)
        return False
