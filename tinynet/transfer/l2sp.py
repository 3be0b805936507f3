"""L2-SP: keep fine-tuned weights near their pretrained starting point.

Li, Grandvalet & Davoine (2018), "Explicit inductive bias for transfer
learning with convolutional networks": instead of weight decay toward zero,
penalise the distance to the pretrained weights :math:`w^0`, so a few
labels cannot drag the base far from what it learned; the new layers
(:math:`\\bar S`, the head, which have no pretrained values) get plain
weight decay:

.. math::
    \\Omega(w) = \\frac{\\alpha}{2} \\sum_{p \\in S} \\lVert w_p - w_p^0 \\rVert^2
               + \\frac{\\beta}{2} \\sum_{p \\in \\bar S} \\lVert w_p \\rVert^2,
    \\qquad \\frac{\\partial \\Omega}{\\partial w_p} =
    \\begin{cases} \\alpha\\,(w_p - w_p^0) & p \\in S \\\\ \\beta\\, w_p & p \\in \\bar S
    \\end{cases}

(``beta`` is 0 unless given, which leaves the head free.)
Each optimizer step first adds :math:`\\partial\\Omega/\\partial w_p` to the
gradient of every trainable parameter of :math:`S` and :math:`\\bar S` (what
the loss's backward left there), so any optimizer minimises loss +
:math:`\\Omega`. Frozen parameters get nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["L2SP"]


def _strength(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"L2SP expected {what} as a non-negative number, received {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"L2SP expected {what} as a non-negative number, received {value}")
    return float(value)


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
    """The L2-SP penalty over ``params``, anchored at their current values,
    and plain L2 over ``new_params``.

    Parameters
    ----------
    params : list of Param, or a layer or model (its ``parameters()``)
        :math:`S`, the transferred parameters: usually the pretrained base's
        (not a new head's).
    alpha : float
        Strength of the pull toward the anchors (>= 0; 0 adds nothing).
    new_params : list of Param, or a layer or model, optional
        :math:`\\bar S`, the parameters of the new layers (the head),
        penalised toward 0; none of them may also be in ``params``.
    beta : float, default 0
        Strength of the plain L2 penalty on ``new_params`` (>= 0).

    Examples
    --------
    >>> penalty = L2SP(base_params, alpha=0.01)   # anchors = values now
    >>> penalty.attach(model.optimizer)           # after model.compile
    """

    def __init__(self, params, alpha: float, new_params=(), beta: float = 0.0):
        self.alpha = _strength(alpha, "alpha")
        self.beta = _strength(beta, "beta")
        self.params = _as_params(params)
        self.new_params = _as_params(new_params)
        both = {id(p) for p in self.params} & {id(p) for p in self.new_params}
        if both:
            names = [p.name for p in self.new_params if id(p) in both]
            raise ValueError(f"L2SP expected params and new_params apart, received "
                             f"{', '.join(map(repr, names))} in both")
        self.anchors = [p.value.copy() for p in self.params]

    def _terms(self):
        """``(strength, param, anchor or None)`` of every penalised parameter."""
        return ([(self.alpha, p, a) for p, a in zip(self.params, self.anchors)]
                + [(self.beta, p, None) for p in self.new_params])

    def value(self) -> float:
        """:math:`\\Omega(w)` at the current weights."""
        total = 0.0
        for strength, p, anchor in self._terms():
            w = p.value.astype(np.float64)
            total += 0.5 * strength * float(np.sum((w if anchor is None else w - anchor) ** 2))
        return total

    def add_grad(self) -> None:
        """Add :math:`\\alpha (w - w^0)` (transferred) or :math:`\\beta w` (new) to
        each trainable parameter's gradient."""
        for strength, p, anchor in self._terms():
            if strength and p.trainable:
                p.grad += strength * (p.value if anchor is None else p.value - anchor)

    def attach(self, optimizer):
        """Make ``optimizer.step()`` add the penalty's gradient first; returns
        the optimizer. Attach after ``model.compile`` binds it."""
        step = optimizer.step

        def step_with_penalty():
            self.add_grad()
            step()

        optimizer.step = step_with_penalty
        return optimizer
