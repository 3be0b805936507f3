"""L2-SP: keep fine-tuned weights near their pretrained starting point.

Li, Grandvalet & Davoine (2018), "Explicit inductive bias for transfer
learning with convolutional networks": instead of weight decay toward zero,
penalise the distance to the pretrained weights :math:`w^0`, so a few
labels cannot drag the base far from what it learned:

.. math::
    \\Omega(w) = \\frac{\\alpha}{2} \\sum_{p} \\lVert w_p - w_p^0 \\rVert^2,
    \\qquad \\frac{\\partial \\Omega}{\\partial w_p} = \\alpha\\,(w_p - w_p^0)

Each optimizer step first adds :math:`\\partial\\Omega/\\partial w_p` to the
gradient of every trainable anchored parameter (what the loss's backward
left there), so any optimizer minimises loss + :math:`\\Omega`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["L2SP"]


def _as_params(params) -> list:
    from ..param import Param

    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    single = isinstance(params, Param) or not hasattr(params, "__iter__")
    params = [params] if single else list(params)
    for p in params:
        if not isinstance(p, Param):
            hint = " (pass layer.parameters())" if hasattr(p, "parameters") else ""
            raise TypeError(f"L2SP expected params as a list of Param (or a layer or model), "
                            f"received an item of type {type(p).__name__}{hint}")
    return params


class L2SP:
    """The L2-SP penalty over ``params``, anchored at their current values.

    Parameters
    ----------
    params : list of Param, or a layer or model (its ``parameters()``)
        Usually the pretrained base's parameters (not a new head's).
    alpha : float
        Penalty strength (>= 0; 0 adds nothing).

    Examples
    --------
    >>> penalty = L2SP(base_params, alpha=0.01)   # anchors = values now
    >>> penalty.attach(model.optimizer)           # after model.compile
    """

    def __init__(self, params, alpha: float):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)):
            raise TypeError(f"L2SP expected alpha as a non-negative number, received {alpha!r}")
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"L2SP expected alpha as a non-negative number, received {alpha}")
        self.alpha = float(alpha)
        self.params = _as_params(params)
        self.anchors = [p.value.copy() for p in self.params]

    def value(self) -> float:
        """:math:`\\Omega(w)` at the current weights."""
        return 0.5 * self.alpha * sum(float(np.sum((p.value.astype(np.float64) - a) ** 2))
                                      for p, a in zip(self.params, self.anchors))

    def add_grad(self) -> None:
        """Add :math:`\\alpha (w - w^0)` to each trainable parameter's gradient."""
        if self.alpha == 0:
            return
        for p, anchor in zip(self.params, self.anchors):
            if p.trainable:
                p.grad += self.alpha * (p.value - anchor)

    def attach(self, optimizer):
        """Make ``optimizer.step()`` add the penalty's gradient first; returns
        the optimizer. Attach after ``model.compile`` binds it."""
        step = optimizer.step

        def step_with_penalty():
            self.add_grad()
            step()

        optimizer.step = step_with_penalty
        return optimizer
