"""Optimizers: SGD, Adam, AdamW, RMSprop and Adagrad with ``torch.optim``'s rules.

Same defaults, same update order and the same per-parameter state as
PyTorch, so a tinynet model and a torch model fed the same gradients take the
same steps (see tests/optim/). The arithmetic of each rule is one function
in :mod:`tinynet.optim.rules`, the class's ``update_rule`` (a fused kernel of
the same signature can take its place); this module keeps the bookkeeping:
parameter groups, lazily created state, ``trainable`` flags, saving and
restoring.

Construction
------------
``Adam(params, lr=1e-3)`` as in PyTorch, where ``params`` is a list of
:class:`~tinynet.Param`, anything with a ``parameters()`` method, or a list
of parameter-group dicts ``{"params": [...], "lr": 1e-4, ...}`` whose missing
hyperparameters come from the constructor. ``Adam(lr=1e-3)`` (or Keras'
``learning_rate=``, or ``Adam(1e-3)``) builds an unbound optimizer that
``model.compile`` binds later with :meth:`Optimizer.bind`. The second
positional argument is ``lr`` (PyTorch's order), so Keras' positional
``SGD(0.01, 0.9)`` (momentum) or ``Adam(1e-3, 0.5)`` (beta_1) is refused
with a ``TypeError`` instead of losing the second value, as is a rate
given twice (``Adam(1e-3, learning_rate=1e-2)``, ``lr=`` and
``learning_rate=``): pass what follows Keras' learning rate by keyword.

Only parameters with ``trainable=True`` are stepped; the values of the
others stay bit for bit as they are, so freezing and unfreezing a layer
between steps needs no new optimizer.

Saving
------
:meth:`Optimizer.state_dict` returns a flat ``dict[str, ndarray]`` (fit for
``np.savez``): the optimizer's class name, every group's hyperparameters
(``param_groups.<g>.<name>``, the current ``lr`` included) and parameter
indices, and every parameter's state (``state.<i>.<name>``, ``step`` among
them), parameters numbered in group order as in PyTorch.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..checks import check_bool, did_you_mean
from ..layers._checks import check_real
from ..param import Param
from . import fused, rules
from .clipping import clip_grad_norm
from .saved_state import FINITE, GROUP_EXTRAS, SQUARES, read_state_dict

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]


def _check_number(who, name, value, low=0.0, high=None, high_open=False):
    """A finite real number in ``[low, high]`` (``[low, high)`` with
    ``high_open``; no bound where ``low`` or ``high`` is None); else a clear error."""
    return check_real(value, who, name, low=-math.inf if low is None else low,
                      high=math.inf if high is None else high,
                      high_open=high_open or high is None)


class _DefaultLR(float):
    """A constructor's default ``lr`` (``lr=_DefaultLR(1e-3)``): a float like
    any other, told apart from an ``lr`` the caller passed, even an equal one,
    so that :class:`Optimizer` can refuse a learning rate given twice."""

    def __repr__(self) -> str:
        return repr(float(self))


def _fused(name: str):
    """The update rule ``name`` as called by the optimizers: the fused kernel
    of :mod:`tinynet.kernels.optim` unless the backend is "numpy" (or the
    dtype is not float32/float64), else :mod:`.rules`, the reference the
    kernels are tested against. The choice is made at each call."""
    rule = getattr(rules, name)

    def update(value, grad, *state, **hyper):
        from .. import kernels
        if kernels.effective_backend() == "numpy" or value.dtype not in (np.float32,
                                                                          np.float64):
            return rule(value, grad, *state, **hyper)
        return kernels.impl(name, value.size)(value, grad, *state, **hyper)

    update.__name__, update.__doc__ = name, rule.__doc__
    return update


def in_proportion(base: float, ref_base: float, ref_rate: float) -> float:
    """The rate of a group of base rate ``base`` scaled as a reference group
    of base rate ``ref_base`` is at ``ref_rate``: ``base * ref_rate /
    ref_base``; exactly ``ref_rate`` for the reference's own base (no
    rounding), and ``base`` as it is when the reference's base is 0 (no
    factor to tell). The one rule for a group joining a running schedule,
    whether :meth:`Optimizer.add_param_group` starts it or the schedule
    (:meth:`~tinynet.optim.LRScheduler._follow_groups`) takes it in."""
    if base == ref_base:
        return ref_rate
    if ref_base == 0:
        return base
    return base * (ref_rate / ref_base)


class Optimizer:
    """Base class: parameter groups, state, stepping loop, saving.

    A subclass sets :attr:`defaults` through ``super().__init__``, checks a
    group's hyperparameters in :meth:`_check_group` (the constructor and
    :meth:`load_state_dict` alike), creates a parameter's state arrays in
    :meth:`_init_state`, names them with what their values may be in
    :attr:`_state_values` (and those every stepped parameter has in
    :attr:`_required_state`) and applies its rule in :meth:`_update`.

    Parameters
    ----------
    params : list of Param, list of dict, object with ``parameters()``, or None
        What to optimise; None leaves the optimizer unbound until :meth:`bind`.
    defaults : dict
        The hyperparameters every group starts from.
    learning_rate : float, optional
        Keras' name for ``lr``; giving both (or a number as ``params`` too)
        is a ``TypeError``.
    max_grad_norm : float > 0, optional
        Clip the global 2-norm of the trainable gradients to this before each
        step (:func:`~tinynet.optim.clip_grad_norm`).

    Attributes
    ----------
    param_groups : list of dict
        As in PyTorch: ``{"params": [Param, ...], "lr": ..., ...}``.
    state : dict
        Per-parameter state, keyed by the Param: ``{"step": int, name: ndarray}``.
    penalties : list
        Penalties each :meth:`step` adds the gradient of first, in this order
        (before clipping): objects with a ``before_step()`` method
        (:meth:`tinynet.transfer.L2SP.attach` appends one, ``detach`` takes
        it out). A plain attribute, not a wrapped ``step``: ``step`` keeps
        its signature (``mtl.Model`` passes ``unclipped``), and a deep copy
        or a pickle of the optimizer holds copies of its penalties, which
        add their gradient to the copy's parameters; a shallow copy
        (``copy.copy``) has a list of its own holding the same penalties
        (as it shares the parameters). Not saved by :meth:`state_dict`
        (nor in a model file).
    """

    #: Group keys that are flags (saved as bool arrays); the rest are numbers.
    _flags: tuple = ()
    #: The per-parameter state arrays (besides ``step``) a saved state may
    #: hold, each :data:`~.saved_state.FINITE` or :data:`~.saved_state.SQUARES`
    #: (see :mod:`.saved_state`); None (a subclass that does not say) accepts
    #: any name, with finite values.
    _state_values: dict | None = None
    #: Those a saved state must hold for every parameter it has state for
    #: (the others are created when first needed).
    _required_state: tuple = ()

    def __init__(self, params, defaults: dict, learning_rate=None, max_grad_norm=None):
        self._refuse_two_rates(params, defaults, learning_rate)
        if isinstance(params, numbers.Real) and not isinstance(params, bool):
            # Keras' Adam(0.001): a lone number is the learning rate
            defaults["lr"], params = params, None
        if learning_rate is not None:
            defaults["lr"] = learning_rate
        if isinstance(defaults.get("lr"), _DefaultLR):
            defaults["lr"] = float(defaults["lr"])
        self.defaults = self._check_group(dict(defaults))
        # > 0, as clip_grad_norm asks at the first step (finite: the config is JSON)
        self.max_grad_norm = None if max_grad_norm is None else check_real(
            max_grad_norm, self._who, "max_grad_norm", low=0.0, low_open=True,
            high=math.inf, high_open=True)
        self.param_groups: list[dict] = []
        self.state: dict = {}
        self.penalties: list = []
        self._plans: dict = {}  # group index -> (signature, runs): see fused.py
        # the rate a schedule set while no group existed, and the base rate the
        # first such schedule recorded (the groups' initial_lr): see add_param_group
        self._new_group_lr: float | None = None
        self._new_group_initial_lr: float | None = None
        if params is not None:
            self.bind(params)

    def __setstate__(self, state: dict) -> None:
        """Unpickle (and copy): an optimizer pickled before it had
        :attr:`penalties` gets none (its ``step`` read the attribute: an
        ``AttributeError`` at the first batch). The list is a new one, so
        that a shallow copy attaching or detaching a penalty leaves the
        original's as it was."""
        self.__dict__.update(state)
        self.penalties = list(state.get("penalties", ()))

    @property
    def _who(self) -> str:
        return type(self).__name__

    def _refuse_two_rates(self, params, defaults: dict, learning_rate) -> None:
        """Refuse a learning rate given twice: as ``params`` (Keras'
        ``Adam(1e-3)``) and as ``lr`` -- Keras' positional ``SGD(0.01, 0.9)``,
        whose momentum lands on ``lr``, the second argument here as in
        PyTorch -- or ``learning_rate``; or as ``lr`` and ``learning_rate``.
        An ``lr`` is given unless it is the constructor's :class:`_DefaultLR`."""
        lr = defaults.get("lr")
        lr_given = lr is not None and not isinstance(lr, _DefaultLR)
        after_lr = [key for key in defaults if key != "lr"][:1] or ["..."]
        if isinstance(params, numbers.Real) and not isinstance(params, bool):
            if learning_rate is not None:
                raise TypeError(f"{self._who} received two learning rates: {params!r} as "
                                f"its first argument and learning_rate={learning_rate!r}; "
                                f"give one")
            if lr_given:
                raise TypeError(
                    f"{self._who} received two learning rates: {params!r} as its first "
                    f"argument (Keras' learning_rate) and lr={lr!r}, which is also the "
                    f"second positional argument (PyTorch's order), so a Keras-style "
                    f"{self._who}({params!r}, {lr!r}) would lose its second value; pass "
                    f"the arguments after the learning rate by keyword, e.g. "
                    f"{self._who}({params!r}, {after_lr[0]}=...)")
        elif lr_given and learning_rate is not None:
            raise TypeError(f"{self._who} received two learning rates: lr={lr!r} and "
                            f"learning_rate={learning_rate!r} (PyTorch's and Keras' names "
                            f"for one setting); give one")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        n = sum(len(g["params"]) for g in self.param_groups)
        return f"{self._who}({args}, params={n if self.param_groups else 'unbound'})"

    # ---------------------------------------------------------------- binding
    def bind(self, params) -> "Optimizer":
        """Attach the parameters to optimise (what ``model.compile`` calls).

        Binding again to the very same parameters (in the same groups) keeps
        the state and applies the hyperparameters the groups set (checked as
        the constructor checks them), as editing ``param_groups`` by hand
        does in PyTorch. Binding to others (``compile`` again after
        ``transfer.replace_head``, ``Sequential.pop`` or ``add``) keeps, as
        PyTorch does when a group is added or a head swapped, what belongs to
        the parameters that stay:

        * their state (momentum buffers, Adam's moments and step counts), so
          their next update is the one an uninterrupted optimizer makes; a
          new parameter starts with none, the state of one no longer bound
          is dropped, and the fused plans are made again at the next step;
        * their groups' hyperparameters: a new group holding parameters of
          the old groups keeps every value those groups agree on
          (:meth:`_carried_over`) unless it sets its own, so a learning rate
          that a schedule, a plateau or the user set stays as it was
          instead of going back to the constructor's.

        ``compile`` binds an optimizer of several groups again as groups: the
        old ones, in their order, less the parameters gone; the new
        parameters join the group the parameters gone came from if they all
        came from one (a replaced head's: the new head takes its
        hyperparameters), else go into one group added with the defaults,
        as ``add_param_group`` does
        (:func:`tinynet.optim.binding._bind_again`).

        Bound to none of the old parameters (another model), the groups keep
        the rate the old groups were at (``lr`` and ``initial_lr``), so a
        running schedule goes on as it was (:meth:`_carried_over`).

        A group refused leaves the optimizer as it was.
        """
        groups = []
        for group in self._as_groups(params):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"{self._who} expected parameter groups as dicts with a "
                                f"'params' key, received {group!r}")
            groups.append({**group, "params": self._as_params(group["params"])})
        same = [[id(p) for p in g["params"]] for g in groups] == \
            [[id(p) for p in g["params"]] for g in self.param_groups]
        old = self.param_groups
        old_ids = {id(p) for p in self.params}
        moved = not any(id(p) in old_ids for g in groups for p in g["params"])
        self.param_groups = []
        try:
            for group in groups:
                self._add_group({**self._carried_over(group, old, moved), **group},
                                beside_groups=False)
        except (TypeError, ValueError):
            self.param_groups = old
            raise
        if not same:  # the same parameters: their state and fused plans stay as they are
            self._forget_unbound()
        return self

    def _forget_unbound(self) -> None:
        """Drop the state of the parameters no group holds any more (the
        others keep theirs: state is keyed by the parameter, as in PyTorch)
        and the fused plans, which the next step makes again from the groups
        as they are now.

        The state arrays of the parameters that stay were views of their old
        runs' flat buffers, which also hold the state of the parameters that
        left: each is copied out (the same values), so that no state aliases
        a buffer of the old binding -- which would stay in memory, dropped
        parameters' state included, for as long as a run reused a span of it
        -- and the next step's plan moves them into flat buffers of the new
        runs (:func:`.fused.plan`)."""
        held = {id(p) for p in self.params}
        self.state = {p: {key: np.array(value, copy=True) if isinstance(value, np.ndarray)
                          else value for key, value in s.items()}
                      for p, s in self.state.items() if id(p) in held}
        self._plans = {}

    @staticmethod
    def _carried_over(group: dict, old_groups: list, moved: bool = False) -> dict:
        """The hyperparameters a group being bound keeps from ``old_groups``:
        each value that every old group holding one of its parameters has
        (none if no old group holds any: a group added beside the kept ones
        starts from the constructor's, as ``add_param_group`` does in
        PyTorch).

        ``moved``: no group being bound holds any old parameter (``compile``
        binds the optimizer to another model, or to a model rebuilt with
        new parameters). Then each group keeps the rate every old group has,
        ``lr`` and a schedule's base rate ``initial_lr``: the optimizer goes
        on at the rate it was at, and a schedule running on it sees no
        change (given the constructor's rate back, it would take the jump
        for a change made from outside and scale its base rate by it). The
        other hyperparameters are the constructor's: what was set by hand
        on a group of the old model's parameters went with them.

        A group that sets its own ``lr`` (or ``learning_rate``) keeps no
        ``initial_lr``, the base rate of a rate it replaces."""
        if moved:
            holders, keys = old_groups, ("lr", "initial_lr")
        else:
            ids = {id(p) for p in group["params"]}
            holders = [g for g in old_groups if any(id(p) in ids for p in g["params"])]
            keys = None
        if not holders:
            return {}
        kept = {key: value for key, value in holders[0].items() if key != "params"
                and (keys is None or key in keys)
                and all(key in g and g[key] == value for g in holders[1:])}
        if "lr" in group or "learning_rate" in group:
            kept.pop("initial_lr", None)
        return kept

    def add_param_group(self, group: dict) -> None:
        """Add a group (e.g. a layer unfrozen with its own learning rate).

        Its missing hyperparameters come from :attr:`defaults`, the
        constructor's (what :meth:`get_config` returns), but for the rates
        while a schedule drives the optimizer, so that the group starts where
        the schedule's next step would set it:

        * A schedule made (or stepped) when the optimizer had no groups has
          set a rate that no group has taken up yet: a group without a rate
          of its own starts from that rate (LinearWarmup's
          ``base * start_factor``), as it would had it existed when the
          schedule set it, with the base rate the first such schedule
          recorded as its ``initial_lr`` (PyTorch's key: what a schedule
          made later takes as the base). The schedule's next step, which
          sets the groups' rates itself, ends this (as does setting
          :attr:`lr`).
        * Otherwise, when the groups have a base rate (``initial_lr``: a
          schedule runs, ran, or came with a loaded checkpoint), a group
          without a rate of its own gets the constructor's as its base
          (``initial_lr``) and starts at it times the schedule's current
          factor, the first such group's ``lr`` over its ``initial_lr``.
          The schedule's next step sets it from that base (see
          :class:`~tinynet.optim.LRScheduler`).

        A group given its own ``lr`` starts at that rate, as in PyTorch
        (``add_param_group({"params": head, "lr": 0.01})`` after a decay
        trains the head at 0.01), and keeps it until a schedule's next step;
        a schedule still stepping then goes on from it as from the others'
        rates (StepLR's next cut makes it 0.001, not 0.01 times the decay so
        far): it takes as the group's base the one whose rate now is
        ``lr`` (:meth:`~tinynet.optim.LRScheduler._base_at`), recorded as its
        ``initial_lr`` then. A group given its own ``initial_lr``
        keeps it and its ``lr``; so does one :meth:`bind` makes, which keeps
        the rates of the groups it replaces (:meth:`_carried_over`).
        """
        self._add_group(group, beside_groups=True)

    def _add_scheduled_group(self, group: dict) -> None:
        """:meth:`add_param_group`, but a group given its own ``lr`` takes it
        as its base rate (``initial_lr``) and starts at it times a running
        schedule's current factor (see :meth:`_scheduled`), as a group
        without one does: a multi-task weighting's group, added by
        ``compile`` at ``weighting_lr`` after a few epochs of a StepLR, starts
        at ``weighting_lr`` times the decay so far."""
        self._add_group(group, beside_groups=True, scale_given=True)

    def _add_group(self, group: dict, beside_groups: bool, scale_given: bool = False) -> None:
        """:meth:`add_param_group`; ``beside_groups`` False for :meth:`bind`'s,
        ``scale_given`` for :meth:`_add_scheduled_group`."""
        if not isinstance(group, dict):
            raise TypeError(f"{self._who} expected a parameter group as a dict, "
                            f"received {type(group).__name__}")
        group = dict(group)
        if "params" not in group:
            raise ValueError(f"{self._who} expected a parameter group with a 'params' key, "
                             f"received keys {sorted(group)}")
        params = self._as_params(group.pop("params"))
        if "learning_rate" in group:
            group["lr"] = group.pop("learning_rate")
        extra = {k: group.pop(k) for k in GROUP_EXTRAS if k in group}
        for key in group:
            if key not in self.defaults:
                raise ValueError(f"{self._who} got an unknown hyperparameter {key!r} in a "
                                 f"parameter group{did_you_mean(key, self.defaults)} "
                                 f"(known: {', '.join(sorted(self.defaults))})")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len(seen | {id(p) for p in params}) != len(seen) + len(params):
            raise ValueError(f"{self._who} received a parameter twice (in one group or "
                             f"in two groups)")
        scheduled = self._scheduled(group, extra, beside_groups, scale_given)
        full = self._check_group({**self.defaults, **group, **scheduled, **extra})
        self.param_groups.append({"params": params, **full})

    def _scheduled(self, group: dict, extra: dict, beside_groups: bool,
                   scale_given: bool = False) -> dict:
        """The ``lr`` and ``initial_lr`` a group being added (its own
        hyperparameters ``group``, ``initial_lr`` in ``extra`` if given)
        takes from a running schedule: see :meth:`add_param_group`
        (``beside_groups``: added beside the groups there are, not by
        :meth:`bind`, whose groups take what :meth:`_carried_over` keeps;
        ``scale_given``: a given ``lr`` is scaled too, as the base rate of
        :meth:`_add_scheduled_group`'s group)."""
        if "initial_lr" in extra or ("lr" in group and not scale_given):
            return {}
        if "lr" not in group and self._new_group_lr is not None:
            if self._new_group_initial_lr is None:
                return {"lr": self._new_group_lr}
            return {"lr": self._new_group_lr, "initial_lr": self._new_group_initial_lr}
        ref = next((g for g in self.param_groups if "initial_lr" in g), None)
        if ref is None or not beside_groups:
            return {}
        base = _check_number(self._who, "lr", group.get("lr", self.defaults["lr"]))
        return {"lr": in_proportion(base, ref["initial_lr"], ref["lr"]), "initial_lr": base}

    def remove_params(self, params) -> None:
        """Take ``params`` out of their groups, with their state (a group left
        without parameters goes): what ``mtl.Model.compile`` does with the
        learned parameters of a weighting that a new one replaces. A running
        schedule drops the base rate of a group that goes, whichever its
        place, and goes on with the others' own."""
        ids = {id(p) for p in params}
        if not ids & {id(p) for p in self.params}:
            return
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in ids]}
                  for g in self.param_groups]
        self.param_groups = [g for g in groups if g["params"]]
        self._forget_unbound()

    def _as_groups(self, params) -> list[dict]:
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        if isinstance(params, (Param, dict)):
            params = [params]
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{self._who} expected params as a list of Param or of "
                            f"parameter-group dicts, received {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{self._who} received an empty parameter list")
        if all(isinstance(p, dict) for p in params):
            return params
        return [{"params": params}]

    def _as_params(self, params) -> list:
        if isinstance(params, Param):
            params = [params]
        params = list(params)
        for p in params:
            if not isinstance(p, Param):
                raise TypeError(f"{self._who} expected Param objects, received "
                                f"{type(p).__name__}")
        if not params:
            raise ValueError(f"{self._who} received a parameter group without parameters")
        return params

    @property
    def params(self) -> list:
        """Every bound parameter, in group order."""
        return [p for group in self.param_groups for p in group["params"]]

    # ---------------------------------------------------------- learning rate
    @property
    def lr(self) -> float:
        """The learning rate of the first group (unbound: the one the groups
        :meth:`bind` makes will have); setting it sets every group's and the
        default one (what :meth:`get_config` returns), as Keras' does."""
        if self.param_groups:
            return self.param_groups[0]["lr"]
        return self.defaults["lr"] if self._new_group_lr is None else self._new_group_lr

    @lr.setter
    def lr(self, value) -> None:
        value = _check_number(self._who, "lr", value)
        self.defaults["lr"], self._new_group_lr = value, None
        for group in self.param_groups:
            group["lr"] = value

    learning_rate = lr

    # --------------------------------------------------------------- stepping
    def zero_grad(self) -> None:
        """Zero the gradient of every bound parameter (frozen ones too)."""
        for p in self.params:
            p.zero_grad()

    def step(self, unclipped=()) -> None:
        """One update of every trainable parameter from its current gradient.

        The :attr:`penalties` first add their gradients. ``max_grad_norm``
        then clips the gradients of the bound parameters but those of
        ``unclipped``, which neither count in the norm nor change (a
        multi-task model's weighting parameters: :meth:`tinynet.mtl.Model.compile`).
        """
        if not self.param_groups:
            raise RuntimeError(f"{self._who} has no parameters: pass them to the "
                               f"constructor or call bind(params) (model.compile does)")
        for penalty in self.penalties:
            penalty.before_step()
        if self.max_grad_norm is not None:
            skip = {id(p) for p in unclipped}
            clip_grad_norm([p for p in self.params if id(p) not in skip] if skip
                           else self.params, self.max_grad_norm)  # the trainable ones
        for index, group in enumerate(self.param_groups):
            for run in self._runs(index, group):
                run.step(self._update, group)

    def _runs(self, index: int, group: dict) -> list:
        """The group's trainable parameters as runs that one rule call updates
        each (see :mod:`.fused`), creating missing state on the way; the
        plan is reused while nothing it depends on has changed."""
        params = [p for p in group["params"] if p.trainable]
        for p in params:
            if p not in self.state:
                self.state[p] = {"step": 0, **self._init_state(p, group)}
        key = fused.signature(params, self.state)
        cached = self._plans.get(index)
        if cached is None or cached[0] != key or not fused.intact(cached[1]):
            self._follow_dtypes(params)
            cached = self._plans[index] = (key, fused.plan(params, self.state))
        return cached[1]

    def _follow_dtypes(self, params) -> None:
        """Convert the state arrays of ``params`` to their parameter's dtype
        where it changed (``Param.astype``, ``model.astype``: new value
        arrays, so a new plan, which calls this), so that the next update is
        computed in the new dtype throughout: the numpy rules would keep the
        moments in the old one (float32 moments of a float64 parameter,
        rounded at every step), the fused kernels refuse arrays of two
        dtypes. Float32 to float64 is exact; back rounds as the parameter
        did."""
        for p in params:
            state = self.state[p]
            for key, value in state.items():
                if isinstance(value, np.ndarray) and value.dtype != p.dtype:
                    state[key] = value.astype(p.dtype)

    # ------------------------------------------------------ subclass interface
    def _check_group(self, group: dict) -> dict:
        """Validate and normalise a group's hyperparameters (not its params)."""
        for key in ("lr", *GROUP_EXTRAS):  # initial_lr: a schedule's starting lr
            if key in group:
                group[key] = _check_number(self._who, key, group[key])
        if "weight_decay" in group:
            group["weight_decay"] = _check_number(self._who, "weight_decay",
                                                  group["weight_decay"])
        if "eps" in group:
            group["eps"] = _check_number(self._who, "eps", group["eps"])
        for flag in self._flags:
            group[flag] = check_bool(group[flag], self._who, flag)
        return group

    def _init_state(self, p: Param, group: dict) -> dict:
        return {}

    def _update(self, value: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        """Apply the rule in place: ``value``/``grad`` are one parameter's
        arrays or a run's flat spans, ``state`` its state (``step`` already
        advanced). State created here (``state[key] = ...``) is shared out
        to the run's parameters."""
        raise NotImplementedError

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """JSON-safe constructor arguments (the defaults, not the parameters)."""
        config = {k: list(v) if isinstance(v, tuple) else v for k, v in self.defaults.items()}
        if self.max_grad_norm is not None:
            config["max_grad_norm"] = self.max_grad_norm
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        """An unbound optimizer from :meth:`get_config`'s output."""
        return cls(**config)

    # ------------------------------------------------------------- state dict
    def state_dict(self) -> dict:
        """Everything needed to resume exactly, as a flat dict of ndarrays."""
        out = {"optimizer": np.array(self._who),
               "n_groups": np.array(len(self.param_groups), dtype=np.int64)}
        index = 0
        for g, group in enumerate(self.param_groups):
            n = len(group["params"])
            out[f"param_groups.{g}.params"] = np.arange(index, index + n, dtype=np.int64)
            for key, value in group.items():
                if key != "params":
                    out[f"param_groups.{g}.{key}"] = np.array(value)
            for p in group["params"]:
                for key, value in self.state.get(p, {}).items():
                    out[f"state.{index}.{key}"] = np.array(value, copy=True)
                index += 1
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state saved by :meth:`state_dict`.

        The optimizer must be bound to parameters of the same number, order
        and shapes. Every entry is checked first (:mod:`.saved_state` says
        what is accepted: the constructor's checks for the hyperparameters,
        integer step counts >= 0, state arrays of the parameter's shape
        without NaN, second moments >= 0, no unknown entries), so a
        corrupted or hand-edited state changes nothing and raises an error
        naming the entry.
        """
        groups, state = read_state_dict(self, state_dict, f"{self._who}.load_state_dict")
        self.param_groups = groups
        self.state = {p: {key: value if key == "step" else np.array(value, copy=True)
                          for key, value in entries.items()}
                      for p, entries in state.items()}
        self._plans = {}

    def check_state_dict(self, state_dict: dict, who: str | None = None) -> None:
        """Raise the error :meth:`load_state_dict` would raise for
        ``state_dict`` (``who`` names the caller in it), changing nothing:
        ``save`` calls it on the optimizer's own state, so that no file holds
        a state loading refuses (a NaN moment left by a step that made a
        parameter NaN, the parameter since reset, say)."""
        read_state_dict(self, state_dict, who or f"{self._who}.check_state_dict")

    def check_state_to_save(self, state_dict: dict, who: str, loader: str,
                            hint: str = "") -> None:
        """:meth:`check_state_dict` for a saver, before it writes anything: the
        same error type, its message followed by ``"; <loader> would refuse
        it: nothing saved<hint>"`` (a state loading refuses would make the
        file useless). ``tinynet.save`` and ``tinynet.meta.save`` call it."""
        try:
            self.check_state_dict(state_dict, who)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{exc}; {loader} would refuse it: nothing saved{hint}") from None


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    Same defaults and update as ``torch.optim.SGD``; see :func:`rules.sgd`.

    Parameters
    ----------
    params : see :class:`Optimizer`
    lr : float, default 1e-3
    momentum : float in [0, 1], default 0
        PyTorch only asks for ``momentum >= 0``; tinynet also refuses values
        above 1 (as Keras does), for which the velocity
        :math:`v \leftarrow \mu v + g` grows geometrically and training
        diverges.
    dampening : float, default 0
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    """

    _flags = ("nesterov",)
    _state_values = {"momentum_buffer": FINITE}  # created at the first step with momentum
    update_rule = staticmethod(_fused("sgd"))

    def __init__(self, params=None, lr=_DefaultLR(1e-3), momentum=0.0, dampening=0.0,
                 nesterov=False, weight_decay=0.0, *, learning_rate=None, max_grad_norm=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay),
                         learning_rate=learning_rate, max_grad_norm=max_grad_norm)

    def _check_group(self, group):
        group = super()._check_group(group)
        group["momentum"] = _check_number(self._who, "momentum", group["momentum"], high=1.0)
        group["dampening"] = _check_number(self._who, "dampening", group["dampening"],
                                           low=None)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{self._who} with nesterov=True expected momentum > 0 and "
                             f"dampening == 0, received momentum={group['momentum']} and "
                             f"dampening={group['dampening']}")
        return group

    def _update(self, value, grad, state, group):
        # like torch, the buffer starts as the first gradient it sees
        first = bool(group["momentum"]) and "momentum_buffer" not in state
        if first:
            state["momentum_buffer"] = np.empty_like(value)
        self.update_rule(value, grad, state.get("momentum_buffer"), lr=group["lr"],
                  momentum=group["momentum"], dampening=group["dampening"],
                  nesterov=group["nesterov"], weight_decay=group["weight_decay"],
                  first_step=first)


class Adam(Optimizer):
    """Adam with L2 weight decay (``torch.optim.Adam``); see :func:`rules.adam`.

    Parameters
    ----------
    params : see :class:`Optimizer`
    lr : float, default 1e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    amsgrad : bool, default False
    """

    _flags = ("amsgrad",)
    _state_values = {"exp_avg": FINITE, "exp_avg_sq": SQUARES, "max_exp_avg_sq": SQUARES}
    _required_state = ("exp_avg", "exp_avg_sq")  # max_exp_avg_sq: created with amsgrad
    _decoupled = False
    update_rule = staticmethod(_fused("adam"))

    def __init__(self, params=None, lr=_DefaultLR(1e-3), betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, amsgrad=False, *, learning_rate=None, max_grad_norm=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad),
                         learning_rate=learning_rate, max_grad_norm=max_grad_norm)

    def _check_group(self, group):
        group = super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
            raise TypeError(f"{self._who} expected betas as a pair of numbers, "
                            f"received {betas!r}")
        group["betas"] = tuple(_check_number(self._who, f"betas[{i}]", b, high=1.0,
                                             high_open=True) for i, b in enumerate(betas))
        return group

    def _init_state(self, p, group):
        state = {"exp_avg": np.zeros_like(p.value), "exp_avg_sq": np.zeros_like(p.value)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p.value)
        return state

    def _update(self, value, grad, state, group):
        beta1, beta2 = group["betas"]
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(value)
        self.update_rule(value, grad, state["exp_avg"], state["exp_avg_sq"],
                   state.get("max_exp_avg_sq"), step=state["step"], lr=group["lr"],
                   beta1=beta1, beta2=beta2, eps=group["eps"],
                   weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                   decoupled=self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``).

    As :class:`Adam`, but ``weight_decay`` (default 1e-2) shrinks the
    parameter directly, :math:`\\theta \\leftarrow (1 - \\eta\\lambda)\\theta`,
    before the Adam step instead of entering the gradient.
    """

    _decoupled = True

    def __init__(self, params=None, lr=_DefaultLR(1e-3), betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=1e-2, amsgrad=False, *, learning_rate=None, max_grad_norm=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, learning_rate=learning_rate,
                         max_grad_norm=max_grad_norm)


class RMSprop(Optimizer):
    r"""RMSprop (``torch.optim.RMSprop``); see :func:`rules.rmsprop`.

    Parameters
    ----------
    params : see :class:`Optimizer`
    lr : float, default 1e-2
    alpha : float in [0, 1), default 0.99
        Smoothing constant of the squared-gradient average
        :math:`s \leftarrow \alpha s + (1 - \alpha) g^2` (PyTorch checks only
        ``alpha >= 0``; at 1 the average never leaves 0, above 1 it turns
        negative).
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float in [0, 1], default 0
        As for :class:`SGD`.
    centered : bool, default False
        Divide by the estimated variance rather than the raw second moment.
    """

    _flags = ("centered",)
    _state_values = {"square_avg": SQUARES, "momentum_buffer": FINITE, "grad_avg": FINITE}
    _required_state = ("square_avg",)  # the others: created once momentum/centered is on
    update_rule = staticmethod(_fused("rmsprop"))

    def __init__(self, params=None, lr=_DefaultLR(1e-2), alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, centered=False, *, learning_rate=None, max_grad_norm=None):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered),
                         learning_rate=learning_rate, max_grad_norm=max_grad_norm)

    def _check_group(self, group):
        group = super()._check_group(group)
        group["alpha"] = _check_number(self._who, "alpha", group["alpha"], high=1.0,
                                       high_open=True)
        group["momentum"] = _check_number(self._who, "momentum", group["momentum"], high=1.0)
        return group

    def _init_state(self, p, group):
        state = {"square_avg": np.zeros_like(p.value)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p.value)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p.value)
        return state

    def _update(self, value, grad, state, group):
        for key, needed in (("momentum_buffer", group["momentum"] > 0),
                            ("grad_avg", group["centered"])):
            if needed and key not in state:  # switched on after the first step
                state[key] = np.zeros_like(value)
        self.update_rule(value, grad, state["square_avg"], state.get("grad_avg"),
                      state.get("momentum_buffer"), lr=group["lr"], alpha=group["alpha"],
                      eps=group["eps"], weight_decay=group["weight_decay"],
                      momentum=group["momentum"], centered=group["centered"])


class Adagrad(Optimizer):
    """Adagrad (``torch.optim.Adagrad``); see :func:`rules.adagrad`.

    Parameters
    ----------
    params : see :class:`Optimizer`
    lr : float, default 1e-2
    lr_decay : float, default 0
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
        The starting :math:`S`. A parameter group's own value is used for its
        parameters; ``torch.optim.Adagrad`` (2.13) ignores a group's and
        starts every group from the constructor's.
    eps : float, default 1e-10
    """

    _state_values = {"sum": SQUARES}
    _required_state = ("sum",)
    update_rule = staticmethod(_fused("adagrad"))

    def __init__(self, params=None, lr=_DefaultLR(1e-2), lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, learning_rate=None,
                 max_grad_norm=None):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps),
                         learning_rate=learning_rate, max_grad_norm=max_grad_norm)

    def _check_group(self, group):
        group = super()._check_group(group)
        for key in ("lr_decay", "initial_accumulator_value"):
            group[key] = _check_number(self._who, key, group[key])
        return group

    def _init_state(self, p, group):
        return {"sum": np.full_like(p.value, group["initial_accumulator_value"])}

    def _update(self, value, grad, state, group):
        self.update_rule(value, grad, state["sum"], step=state["step"], lr=group["lr"],
                      lr_decay=group["lr_decay"], eps=group["eps"],
                      weight_decay=group["weight_decay"])
