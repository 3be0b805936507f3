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

Logging. :math:`\\Omega` enters training through the optimizer step, so the
``loss`` that ``fit`` logs is the compiled loss alone (Keras' logged loss
adds its regularisation losses; here they stay apart). The same pass that
adds the gradient also sums :math:`\\Omega` at the weights of the step
(about 1-3% of a step on the small MLP and CNN), and the callback
:meth:`L2SP.logger` logs its epoch mean as ``"l2sp_penalty"``, weighted by
batch size as ``"loss"`` is, so ``loss + l2sp_penalty`` is the mean of the
objective minimised. ``fine_tune(l2sp=...)`` adds that callback itself.
"""

from __future__ import annotations

import numpy as np

from ..callbacks import Callback
from ..layers._checks import check_real
from ..training import RunningMeans

__all__ = ["L2SP", "L2SPLogger"]


def _as_params(params, what: str) -> list:
    from ..param import Param

    if hasattr(params, "parameters") and callable(params.parameters):
        if getattr(params, "built", True) is False:
            # it has no parameters yet: the penalty would hold none, and the
            # weights built later by fit would train unpenalised
            kind = "model" if hasattr(params, "layers") else "layer"
            raise ValueError(f"L2SP expected {what} of a built {kind}, received "
                             f"{type(params).__name__} {getattr(params, 'name', '')!r}, which "
                             f"is not built: it has no weights to penalise yet (train, load "
                             f"or build it first)")
        params = params.parameters()
    single = isinstance(params, Param) or not hasattr(params, "__iter__")
    params = [params] if single else list(params)
    for p in params:
        if not isinstance(p, Param):
            hint = " (pass layer.parameters())" if hasattr(p, "parameters") else ""
            raise TypeError(f"L2SP expected params as a list of Param (or a layer or model), "
                            f"received an item of type {type(p).__name__}{hint}")
    # a parameter given twice was penalised once per time: its penalty and gradient doubled
    first, twice = {}, {}
    for i, p in enumerate(params):
        if id(p) in first:
            twice.setdefault(id(p), (p, first[id(p)], i))
        first.setdefault(id(p), i)
    if twice:
        names = ", ".join(f"{repr(p.name) if p.name else 'an unnamed one'} (at positions "
                          f"{i} and {j})" for p, i, j in twice.values())
        raise ValueError(f"L2SP received a parameter twice in {what}: {names} (its penalty "
                         f"and gradient would count twice); pass each parameter once")
    return params


class L2SP:
    """The L2-SP penalty over ``params``, anchored at their current values,
    and plain L2 over ``new_params``.

    Parameters
    ----------
    params : list of Param, or a layer or model (its ``parameters()``)
        :math:`S`, the transferred parameters: usually the pretrained base's
        (not a new head's). A layer or model must be built (an unbuilt one
        has no weights yet); params and new_params may not both be empty.
    alpha : float
        Strength of the pull toward the anchors (>= 0; 0 adds nothing).
    new_params : list of Param, or a layer or model, optional
        :math:`\\bar S`, the parameters of the new layers (the head),
        penalised toward 0; none of them may also be in ``params``, and
        neither list may hold a parameter twice.
    beta : float, default 0
        Strength of the plain L2 penalty on ``new_params`` (>= 0).

    Attributes
    ----------
    steps : int
        Optimizer steps taken with the penalty attached.
    last_value : float or None
        :math:`\\Omega` at the weights of the last such step (before it).

    Examples
    --------
    >>> penalty = L2SP(base_params, alpha=0.01)   # anchors = values now
    >>> penalty.attach(model.optimizer)           # after model.compile
    >>> model.fit(x, y, callbacks=[penalty.logger()])  # logs "l2sp_penalty"
    """

    def __init__(self, params, alpha: float, new_params=(), beta: float = 0.0):
        self.alpha = check_real(alpha, "L2SP", "alpha", low=0.0, high_open=True)
        self.beta = check_real(beta, "L2SP", "beta", low=0.0, high_open=True)
        self.params = _as_params(params, "params")
        self.new_params = _as_params(new_params, "new_params")
        if not self.params and not self.new_params:
            raise ValueError("L2SP expected parameters to penalise, received none in params "
                             "and new_params")
        both = {id(p) for p in self.params} & {id(p) for p in self.new_params}
        if both:
            names = [p.name for p in self.new_params if id(p) in both]
            raise ValueError(f"L2SP expected params and new_params apart, received "
                             f"{', '.join(map(repr, names))} in both")
        self.anchors = [p.value.copy() for p in self.params]
        self.steps = 0
        self.last_value: float | None = None

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

    def add_grad(self) -> float:
        """Add :math:`\\alpha (w - w^0)` (transferred) or :math:`\\beta w` (new) to
        each trainable parameter's gradient; return :math:`\\Omega(w)`, summed
        in the same pass (in the parameters' dtype: :meth:`value` sums in
        float64)."""
        total = 0.0
        for strength, p, anchor in self._terms():
            if not strength:
                continue
            d = p.value if anchor is None else p.value - anchor
            if p.trainable:
                p.grad += strength * d
            total += 0.5 * strength * float(np.vdot(d, d))
        return total

    def before_step(self) -> None:
        """What the optimizer's ``step`` calls first while the penalty is
        attached: :meth:`add_grad`, its :math:`\\Omega` noted in
        ``last_value``, one more in ``steps``."""
        self.last_value = self.add_grad()
        self.steps += 1

    def attach(self, optimizer):
        """Make ``optimizer.step()`` add the penalty's gradient first (and note
        :math:`\\Omega` in ``last_value``); returns the optimizer. Attach after
        ``model.compile`` binds it.

        The penalty goes into ``optimizer.penalties`` (see
        :class:`~tinynet.optim.Optimizer`), whose every penalty ``step``
        calls first (:meth:`before_step`), in the order attached, whatever
        ``step`` is passed (``mtl.Model`` passes ``unclipped``). A deep
        copy or a pickle of the model (or of the optimizer) holds a copy of
        the penalty, attached to the copy's optimizer, pulling the copy's
        parameters toward copies of the anchors: log it with the copy's
        penalty's logger (``copy.deepcopy((model, penalty))``, or
        ``model.optimizer.penalties`` of the copy).

        Raises ``TypeError`` for anything but a tinynet optimizer, and
        ``ValueError`` if this penalty is already attached to it (its
        gradient would be added twice a step) or if it is bound to
        parameters that do not include every penalised one (those would
        not move, penalty or not)."""
        from ..optim import Optimizer

        if not isinstance(optimizer, Optimizer):
            what = (f"the class {optimizer.__name__} (an instance is needed)"
                    if isinstance(optimizer, type) else repr(optimizer))
            raise TypeError(f"L2SP.attach expected a tinynet optimizer (model.optimizer after "
                            f"model.compile), received {what}"[:300])
        if self._index_in(optimizer) is not None:
            raise ValueError("L2SP.attach: this penalty is already attached to this "
                             "optimizer (attaching again would add its gradient twice)")
        held = {id(p) for p in optimizer.params}
        missing = [p.name for p in self.params + self.new_params if id(p) not in held]
        if held and missing:
            shown = ", ".join(map(repr, missing[:4])) + (", ..." if len(missing) > 4 else "")
            raise ValueError(f"L2SP.attach: the optimizer does not hold {len(missing)} of the "
                             f"penalised parameters ({shown}), so it would not step them; "
                             f"attach to the optimizer of the model they belong to")
        optimizer.penalties.append(self)
        return optimizer

    def detach(self, optimizer):
        """Undo :meth:`attach`: ``optimizer.step()`` no longer adds the
        penalty's gradient (other penalties attached to it still do, in
        any order of detaching); returns the optimizer. ``fine_tune``
        detaches its penalty when phase 2 ends.

        Raises ``ValueError`` if this penalty is not attached to
        ``optimizer``."""
        index = self._index_in(optimizer)
        if index is None:
            raise ValueError("L2SP.detach: this penalty is not attached to this optimizer")
        del optimizer.penalties[index]
        return optimizer

    def _index_in(self, optimizer) -> int | None:
        """Where this penalty is in ``optimizer.penalties`` (by identity: two
        penalties may compare equal), or None."""
        return next((i for i, penalty in enumerate(optimizer.penalties) if penalty is self),
                    None)

    def logger(self) -> "L2SPLogger":
        """A callback for ``fit`` that logs ``"l2sp_penalty"`` (see the module
        docstring)."""
        return L2SPLogger(self)


class L2SPLogger(Callback):
    """Logs ``"l2sp_penalty"``: the epoch mean of :math:`\\Omega` at the
    weights of each step, weighted by batch size as ``"loss"`` is.

    Each batch must have stepped the optimizer the penalty is attached to;
    a batch that did not (the penalty attached to another optimizer, or not
    at all; or a copied model trained, whose optimizer holds a copy of the
    penalty: log with that copy's logger) is a ``RuntimeError``, not a
    silently stale value.
    """

    added_log_keys = ("l2sp_penalty",)

    def __init__(self, penalty: L2SP):
        super().__init__()
        if not isinstance(penalty, L2SP):
            raise TypeError(f"L2SPLogger expected an L2SP penalty, received "
                            f"{type(penalty).__name__}")
        self.penalty = penalty
        self._means = RunningMeans()
        self._seen = penalty.steps

    def on_epoch_begin(self, epoch, logs=None):
        self._means = RunningMeans()
        self._seen = self.penalty.steps

    def reads_batch_metrics(self) -> bool:
        return self._batch_hooks_beyond(L2SPLogger)  # (itself: the penalty, not the logs)

    def on_batch_end(self, batch, logs=None):
        if self.penalty.steps != self._seen + 1:
            raise RuntimeError(f"L2SPLogger: batch {batch} took {self.penalty.steps - self._seen} "
                               f"steps of the optimizer the penalty is attached to, not 1 "
                               f"(call penalty.attach(model.optimizer) after model.compile; "
                               f"a copied model's optimizer holds a copy of the penalty, in "
                               f"its optimizer.penalties: log with that copy's logger)")
        self._seen = self.penalty.steps
        n, size = self.params["n_samples"], self.params["batch_size"]
        self._means.add({"l2sp_penalty": self.penalty.last_value}, min(size, n - batch * size))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self._means.means())
