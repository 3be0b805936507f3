r"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s semantics.

A scheduler changes the ``lr`` of its optimizer's parameter groups. As in
PyTorch, creating it sets the epoch-0 learning rate and each ``step()``
(usually once per epoch, after training on it) moves to the next epoch;
:class:`ReduceLROnPlateau` takes the monitored value, ``step(val_loss)``.

The closed-form schedules compute the rate from each group's *base* rate
:math:`\eta_0` (its ``initial_lr``) and the epoch :math:`t`:

=====================  ==============================================================
StepLR                 :math:`\eta_0\,\gamma^{\lfloor t / s \rfloor}`
ExponentialLR          :math:`\eta_0\,\gamma^{t}`
CosineAnnealingLR      :math:`\eta_{min} + (\eta_0 - \eta_{min})(1 + \cos(\pi t / T))/2`
LinearWarmup           :math:`\eta_0\,(f + (1 - f)\min(t, n) / n)`, then ``after``
=====================  ==============================================================

(PyTorch updates multiplicatively, so its numbers agree to rounding.)

Schedules compose as PyTorch's chainable ones do: a change made to a
group's rate from outside between two steps (another scheduler stepped on
the same optimizer, :class:`ReduceLROnPlateau`, a ``group["lr"] *= 0.5`` of
your own) scales that group's base rate by the same factor at the next
``step()``, instead of being overwritten. ``StepLR(opt, 2)`` and
``ExponentialLR(opt, 0.9)`` stepped together thus give
:math:`\eta_0\, 0.1^{\lfloor t/2 \rfloor} 0.9^{t}`, exactly as in PyTorch;
CosineAnnealingLR's ``eta_min`` is not scaled (PyTorch's chained cosine
differs there in detail). A change while the schedule's rate is 0 cannot
be told as a factor and is overwritten.

A scheduler made for an optimizer that is not bound yet (``Adam(lr=...)``
before ``model.compile``) schedules the rate that every group created by
``bind`` then starts from (:meth:`~tinynet.optim.Optimizer.add_param_group`),
not the constructor's ``lr``, which ``get_config`` (and a saved model's
compile settings) keep: a model loaded from its file and compiled from
them starts a new schedule from the same base. The groups ``bind`` makes
get that base as their ``initial_lr``, as a schedule made on the bound
optimizer gives them (so a schedule made on the optimizer loaded from a
checkpoint starts from the same base). It is recorded once, by the first
schedule made: a second one made before ``bind`` takes the same base, not
the first one's rate at the time, as it would on the bound optimizer.
(PyTorch's chainable schedules differ there: a schedule made on an
optimizer whose rate another schedule has moved keeps that rate, times its
own epoch-0 factor. Here it starts from the groups' base rate, the closed
form that a new schedule resumed at ``initial_epoch`` by
``tinynet.callbacks.LearningRateScheduler`` relies on, so a schedule made
after another has stepped, or after a ``LinearWarmup`` (whose epoch-0 rate
is not its base), loses that one's factor so far. Schedules made to be
chained together, before any of them steps, ``LinearWarmup`` last, give
PyTorch's rates.)

A group added while a schedule runs without a rate of its own
(``add_param_group``), or by a multi-task ``compile`` for its weighting at
``weighting_lr``, starts at its own base rate times the schedule's current
factor, and the schedule then sets it from that base like the others (one
made unbound likewise gives a group ``bind`` did not make, such as the
weighting's, its own base rather than the others'). One given its ``lr``
through ``add_param_group`` starts at that rate, as in PyTorch, keeps it
until the schedule's next step and goes on from it: the schedule takes as
its base :math:`\eta_0` the one whose rate at the current epoch is that
``lr`` -- ``lr`` over the factor so far for StepLR, ExponentialLR and
LinearWarmup, :math:`\eta_{min} + (lr - \eta_{min}) / c` for the cosine at
:math:`c = (1 + \cos(\pi t / T))/2` -- and records it as the group's
``initial_lr``, so that StepLR's next cut multiplies the given rate by
``gamma``, as PyTorch's does, instead of giving it the whole decay so far.
Where the rate at that epoch does not depend on the base (a cosine at its
minimum with ``eta_min`` 0, a warm-up from 0 at its start) ``lr`` itself is
the base. A group removed takes its own base rate with it, whichever its
place: the schedule pairs its rates with the groups by the parameters they
held at its last step, and a group none of whose parameters was held then
is a new group, even when another was removed in the same change.
:class:`ReduceLROnPlateau` pairs its ``min_lr`` per group the same way.
"""

from __future__ import annotations

import copy
import math
import numbers
import sys

import numpy as np

from ..checks import check_positive_int, is_real_dtype
from ..layers._checks import check_real
from .optimizers import Optimizer, _check_number, in_proportion
from .saved_state import check_saved_by, read_count, read_entry, read_number

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
           "ReduceLROnPlateau"]


def base_lrs(groups: list) -> list:
    """Each parameter group's base rate, the one a schedule scales: its
    ``initial_lr`` (PyTorch's key), recorded as its current rate the first
    time a schedule (or a callable ``LearningRateScheduler``) asks."""
    return [group.setdefault("initial_lr", group["lr"]) for group in groups]


class _SchedulerBase:
    """What every scheduler shares: the optimizer, reading and writing its rates."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{self._who} expected a tinynet optimizer, received "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer

    @property
    def _who(self) -> str:
        return type(self).__name__

    def _lrs(self) -> list:
        groups = self.optimizer.param_groups
        return [g["lr"] for g in groups] if groups else [self.optimizer.lr]

    def _set_lrs(self, lrs) -> None:
        """Set the groups' rates (one for all, or one each); unbound, the rate
        the groups ``bind`` makes start from, leaving the constructor's
        (``defaults``, which ``get_config`` saves) as it was."""
        groups = self.optimizer.param_groups
        if not groups:
            self.optimizer._new_group_lr = lrs[0]
            return
        if len(lrs) == 1:
            lrs = lrs * len(groups)
        if len(lrs) != len(groups):
            raise ValueError(f"{self._who} schedules {len(lrs)} parameter group(s), but the "
                             f"optimizer now has {len(groups)}")
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self.optimizer._new_group_lr = None  # the groups have it now

    def _note_groups(self) -> None:
        """Record which group holds each parameter (by id), for
        :meth:`_paired_groups` to pair the groups with the scheduler's
        per-group values at its next step."""
        self._group_of = {id(p): i for i, group in enumerate(self.optimizer.param_groups)
                          for p in group["params"]}

    def _paired_groups(self, groups: list, n: int) -> list:
        """For each of ``groups``, the index, among the ``n`` groups of the
        last step (:meth:`_note_groups`), of the group that held its
        parameters then (the first of them that was held); None for a new
        group, none of whose parameters was held. Strictly by parameters,
        never by place: a group removed and another added in the same change
        are two changes.

        A change in which no group is kept (``bind`` to other parameters,
        another model's, whose groups take on the old groups' rates) pairs
        the groups by place, as many as there were (the others are new);
        fewer groups then are refused (``ValueError``)."""
        group_of = getattr(self, "_group_of", None) or {}
        # (< n: a state loaded since may hold one base rate for every group)
        old = [next((group_of[id(p)] for p in group["params"]
                     if group_of.get(id(p), n) < n), None) for group in groups]
        if any(i is not None for i in old):
            return old
        if len(groups) < n:
            raise ValueError(f"{self._who} schedules {n} parameter group(s), but the "
                             f"optimizer now has {len(groups)} that are not all among them "
                             f"(bound again to other parameters?): a schedule follows groups "
                             f"removed (remove_params) or added (add_param_group); make a new "
                             f"schedule for new groups")
        return list(range(n)) + [None] * (len(groups) - n)

    def get_last_lr(self) -> list:
        """The learning rate of each group after the last step."""
        return list(self._last_lr)

    def _state(self) -> dict:
        return {"last_epoch": np.array(self.last_epoch, dtype=np.int64)}

    def state_dict(self) -> dict:
        """The scheduler's progress as a flat dict of ndarrays (the optimizer's
        own state, the current rates included, is saved by the optimizer)."""
        return {"scheduler": np.array(self._who), **self._state()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` saved.

        Every entry is checked first, so a corrupted or hand-edited state
        changes nothing and the error names the entry: the epoch and the
        counters are integers >= 0 (``state_dict`` is only taken after the
        constructor's first step), the base rates finite and >= 0 (one, or one
        per parameter group), ReduceLROnPlateau's ``best`` a number (+-inf
        included, which it starts from; NaN never becomes it), and no other
        entries.
        """
        who = f"{self._who}.load_state_dict"
        check_saved_by(state_dict, "scheduler", self._who, who)
        values = self._read(state_dict, who)
        unknown = sorted(set(state_dict) - set(values) - {"scheduler"}, key=str)
        if unknown:
            raise ValueError(f"{who} received entries a {self._who} state never holds: "
                             f"{', '.join(map(repr, unknown[:8]))}"[:400])
        self._restore(values)

    def _restore(self, values: dict) -> None:
        """Set what :meth:`_read` returned, all checked already: each entry as
        the attribute of its name."""
        for key, value in values.items():
            setattr(self, key, value)
        self._last_lr = self._lrs()

    def _read(self, state_dict: dict, who: str) -> dict:
        """``{name: value}`` from :meth:`state_dict`'s entries of the same
        names, each checked (see :meth:`load_state_dict`); nothing is set.
        :meth:`_restore` sets them."""
        return {"last_epoch": read_count(read_entry(state_dict, "last_epoch", who), who,
                                         "last_epoch")}


class LRScheduler(_SchedulerBase):
    """Base class of the closed-form schedules: ``lr = _lr_at(base_lr, epoch)``.

    Parameters
    ----------
    optimizer : Optimizer
    """

    #: The base rate this schedule, made unbound, gave the groups bind made.
    _recorded_initial_lr = None
    #: Made unbound and not stepped since bind: one base rate for every group.
    _every_group = False

    def __init__(self, optimizer):
        super().__init__(optimizer)
        groups = optimizer.param_groups
        if groups:
            self.base_lrs = base_lrs(groups)
            self._unrecorded_initial_lr = None
        else:  # the base rate of the groups bind will make, recorded once
            if optimizer._new_group_initial_lr is None:
                optimizer._new_group_initial_lr = optimizer.lr
            self.base_lrs = [optimizer._new_group_initial_lr]
            self._unrecorded_initial_lr = self.base_lrs[0]
        self._every_group = not groups  # see _follow_groups
        self.last_epoch = -1
        self.step()

    def _record_initial_lr(self, groups: list) -> None:
        """Give the groups of an optimizer that was unbound when this schedule
        was made, once ``bind`` (``model.compile``) has made them, the base
        rate the schedule was made with as their ``initial_lr`` (unless they
        have one): PyTorch's key, the base rate a schedule made later on
        this optimizer, or on a copy loaded from a file, starts from. Not in
        :attr:`~tinynet.optim.Optimizer.defaults`, which ``get_config`` hands
        to the constructor as its ``lr``. ``groups``: the optimizer's, or
        copies of them (:meth:`_state`)."""
        if self._unrecorded_initial_lr is None or not groups:
            return
        for group in groups:
            group.setdefault("initial_lr", self._unrecorded_initial_lr)
        self._recorded_initial_lr, self._unrecorded_initial_lr = \
            self._unrecorded_initial_lr, None

    def _follow_groups(self, groups: list) -> None:
        """Keep one base rate (and one rate last set) per parameter group when
        the groups are not the ones the schedule was made for. Each group is
        paired with the base rate of the group that held its parameters at
        the last step (:meth:`_paired_groups`: by parameters, never by
        place), so a group removed takes its base rate with it, whichever
        its place, and a group added is a new group even when another was
        removed in the same change (it used to inherit that one's base).
        A new group's base rate:

        * made unbound, once ``bind`` has made the groups: the schedule's
          base if the group's ``initial_lr`` is the one recorded (the groups
          ``bind`` made), else its own ``initial_lr`` (a multi-task
          weighting's group at ``weighting_lr``), scaled as the schedule's
          base was by changes from outside;
        * added since with a base rate (``add_param_group`` without an
          ``lr``, a multi-task ``compile`` adding a weighting's group): the
          same, against the first group kept (its rate started at that base
          times the schedule's factor: see
          :meth:`~tinynet.optim.Optimizer.add_param_group`);
        * added since with its own ``lr`` and no base (``add_param_group``):
          the base whose rate at the current epoch is that ``lr``
          (:meth:`_base_at`), so the group goes on from its given rate as
          PyTorch's chainable schedules take it on -- StepLR multiplies it
          by ``gamma`` at the next cut, a cosine moves it towards ``eta_min``
          in the same proportion as the others -- instead of jumping to
          ``lr`` times the whole decay so far at the next step. It is
          recorded as the group's ``initial_lr`` (unscaled by changes from
          outside, as the others'), the base a schedule made later starts
          it from.

        The rate a new group with a base counts as set is the one the
        schedule would have set it to at its last step, in proportion to the
        first group kept's rate then (:meth:`_new_group`). A change its rate
        has had since is taken in as for any group: one it started with,
        carried over from a change that group had before the add (another
        schedule stepped before this one, a plateau's cut), or one made to it
        by hand -- but not a change made to that group only after the add,
        which the new group never had (PyTorch's chainable schedules go on
        from each group's own rate).

        ``groups``: the optimizer's, or copies of them (:meth:`_state`),
        which take the ``initial_lr`` recorded instead."""
        if not groups:
            return
        last = getattr(self, "_last_lr", None)
        if self._every_group:
            ref_initial = self.base_lrs[0] if self._recorded_initial_lr is None \
                else self._recorded_initial_lr
            ref_last = last[0] if last is not None and len(last) == 1 else None
            self._every_group = False
            news = [self._new_group(group, self.base_lrs[0], ref_initial, ref_last)
                    for group in groups]
            self.base_lrs = [base for base, _ in news]
            self._last_lr = [lr for _, lr in news]
            return
        old = self._paired_groups(groups, len(self.base_lrs))
        if old == list(range(len(self.base_lrs))):
            return
        first = next(k for k, i in enumerate(old) if i is not None)  # the first group kept
        ref = groups[first]
        ref_base, ref_initial = self.base_lrs[old[first]], base_lrs([ref])[0]
        # a change since the last step, taken into the reference's base next
        # (and so into the initial_lr recorded for a group added with its lr)
        ref_last = None if last is None else last[old[first]]
        change = 1.0 if ref_last in (None, 0) or ref["lr"] == 0 else ref["lr"] / ref_last
        bases, lasts = [], []
        for group, i in zip(groups, old):
            if i is not None:
                bases.append(self.base_lrs[i])
                lasts.append(None if last is None else last[i])
            elif "initial_lr" not in group:  # its own lr: it goes on from that rate
                base = self._base_at(group["lr"])
                scale = ref_base * change / ref_initial if ref_initial != 0 else 0
                group["initial_lr"] = base / scale if scale else base
                bases.append(base)
                lasts.append(group["lr"])
            else:
                base, lr = self._new_group(group, ref_base, ref_initial, ref_last)
                bases.append(base)
                lasts.append(lr)
        self.base_lrs = bases
        self._last_lr = None if last is None else lasts

    @staticmethod
    def _new_group(group: dict, ref_base: float, ref_initial: float, ref_last) -> tuple:
        """The base rate of a new group that has one (``initial_lr``, recorded
        as its rate if missing) and the rate the schedule counts as set for
        it: its ``initial_lr`` scaled as the reference group's was by changes
        from outside (:func:`~tinynet.optim.optimizers.in_proportion`, the
        rule ``add_param_group`` starts it by), and the rate set scaled as
        the reference's, ``ref_last`` (its rate at the schedule's last step),
        was -- the group's own rate if that is not known."""
        initial = base_lrs([group])[0]
        lr = group["lr"] if ref_last is None else in_proportion(initial, ref_initial, ref_last)
        return in_proportion(initial, ref_initial, ref_base), lr

    def _base_at(self, lr: float) -> float:
        """The base rate whose scheduled rate at the current epoch is ``lr``.
        Every schedule's rate is affine in its base, :math:`a\\eta_0 + b`
        (:math:`b = \\eta_{min}(1 - c)` for the cosine, 0 for the others), so
        this is :math:`(lr - b) / a`; where :math:`a = 0` (a cosine at its
        minimum, a warm-up from 0 at its start, a ``gamma`` of 0 after a
        cut) the rate does not tell a base, and ``lr`` itself is taken; so it
        is where :math:`a` is subnormal or the base would overflow (after
        1070 halvings :math:`a` is 0.5**1070, and ``lr / a`` infinite)."""
        offset = self._lr_at(0.0, self.last_epoch)
        slope = self._lr_at(1.0, self.last_epoch) - offset
        if slope < sys.float_info.min:  # 0 or subnormal: 1 / slope overflows
            return lr
        base = (lr - offset) / slope
        return base if math.isfinite(base) else lr

    def step(self) -> None:
        """Move to the next epoch and set its learning rates (after taking in
        any change made to them from outside, see the module docstring)."""
        self._record_initial_lr(self.optimizer.param_groups)
        self._follow_groups(self.optimizer.param_groups)
        self._follow_outside_changes()
        self.last_epoch += 1
        self._set_lrs(self.get_lr())
        self._last_lr = self._lrs()
        self._note_groups()

    def _follow_outside_changes(self) -> None:
        """Scale each base rate by (rate now) / (rate this scheduler last set)."""
        last = getattr(self, "_last_lr", None)
        now = self._lrs()
        if last is None or len(last) != len(now) or len(now) != len(self.base_lrs):
            return
        self.base_lrs = [base * (lr / set_lr) if lr != set_lr and set_lr != 0 else base
                         for base, lr, set_lr in zip(self.base_lrs, now, last)]

    def get_lr(self) -> list:
        """The learning rate of each group at the current epoch."""
        return [self._lr_at(base, self.last_epoch) for base in self.base_lrs]

    def __call__(self, epoch: int) -> float:
        """The first group's rate at ``epoch``, without stepping: a schedule thus
        also serves as the ``schedule(epoch) -> lr`` of
        ``tinynet.callbacks.LearningRateScheduler``."""
        return self._lr_at(self.base_lrs[0], epoch)

    def _lr_at(self, base_lr: float, epoch: int) -> float:
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` saved (checked as the base class says).

        The rates the schedule set at the saved epoch become the ones it
        compares with at its next step, so a change made from outside before
        saving (a plateau's cut) is taken into the base rates then, as
        without the save and load. The optimizer's rates are set to the ones
        it had when the state was saved (the entry ``lrs_at_save``: the
        pending cut included) when they are still the epoch-0 rates this
        scheduler set when it was made -- the optimizer's state was loaded
        *before* the scheduler was made (torch's usual order), and making it
        overwrote the saved rates; an optimizer loaded afterwards keeps its
        own, which are the same. Both orders thus resume alike. (A state
        saved before ``lrs_at_save`` was kept puts back the rates the
        schedule set at the saved epoch: a cut pending then is lost in the
        first order.) ``lrs_at_save`` is a rate handed to the optimizer,
        not a setting of the schedule: it becomes no attribute.
        """
        super().load_state_dict(state_dict)

    def _restore(self, values: dict) -> None:
        values = dict(values)
        lrs_at_save = values.pop("lrs_at_save")  # None: a state saved before it was kept
        untouched = self._lrs() == list(self._last_lr)  # (the optimizer's, before we set any)
        super()._restore(values)
        if len(self.base_lrs) > 1:  # saved per group: no one base for every group
            self._every_group = False
        scheduled = self.get_lr()
        if len(scheduled) == 1:
            scheduled = scheduled * len(self._lrs())
        if untouched:
            self._set_lrs(list(lrs_at_save or scheduled))
        self._last_lr = scheduled
        self._note_groups()

    def _state(self):
        return {**super()._state(),
                "base_lrs": np.array(self._base_lrs_to_save(), dtype=np.float64),
                "lrs_at_save": np.array(self._lrs(), dtype=np.float64)}

    def _base_lrs_to_save(self) -> list:
        """The base rates the next step will take for the groups as they are
        now: those of the groups added since the last step too, so a group
        added with its own lr is saved with the base it goes on from (a
        schedule made on the loaded optimizer records that lr as its base)
        and the resumed run is the uninterrupted one.

        Worked out on a copy of the schedule and copies of the groups: saving
        changes neither the optimizer nor the schedule (taking the groups in
        here once did, and a change made to a group's rate after the save was
        then taken as made after the group was added). Groups the next step
        refuses (bound again to fewer groups of other parameters) are the
        step's to refuse, not the save's: the base rates are saved as they
        are."""
        groups = [dict(group) for group in self.optimizer.param_groups]
        taken_in = copy.copy(self)
        taken_in._record_initial_lr(groups)
        try:
            taken_in._follow_groups(groups)
        except ValueError:  # _paired_groups' refusal, raised by the next step
            return list(self.base_lrs)
        return list(taken_in.base_lrs)

    def _read(self, state_dict, who):
        # lrs_at_save: absent from a state saved before it was kept
        lrs = (self._read_rates(state_dict, "lrs_at_save", who)
               if "lrs_at_save" in state_dict else None)
        return {**super()._read(state_dict, who),
                "base_lrs": self._read_rates(state_dict, "base_lrs", who),
                "lrs_at_save": lrs}

    def _read_rates(self, state_dict, key, who) -> list:
        """The entry ``key``: 1 rate, or 1 per parameter group, each finite and >= 0."""
        lrs = np.asarray(read_entry(state_dict, key, who))
        n = len(self._lrs())
        if not is_real_dtype(lrs.dtype) or lrs.ndim != 1 or len(lrs) not in (1, n):
            raise ValueError(f"{who} expected {key!r} as 1 or {n} numbers (one per "
                             f"parameter group), received dtype {lrs.dtype} of shape "
                             f"{lrs.shape}")
        return [_check_number(who, f"{key}[{i}]", float(v)) for i, v in enumerate(lrs)]


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
    gamma : float, default 0.1
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = check_positive_int(step_size, "StepLR", "step_size")
        self.gamma = _check_number("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def _lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch.

    Parameters
    ----------
    optimizer : Optimizer
    gamma : float
    """

    def __init__(self, optimizer, gamma):
        self.gamma = _check_number("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)

    def _lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base rate down to ``eta_min`` over ``T_max`` epochs.

    Past ``T_max`` the cosine goes on (back up over the next ``T_max``
    epochs), as in PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
    eta_min : float, default 0
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = check_positive_int(T_max, "CosineAnnealingLR", "T_max")
        self.eta_min = _check_number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def _lr_at(self, base_lr, epoch):
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine


class LinearWarmup(LRScheduler):
    """Ramp the rate linearly up to the base rate, then hand over to ``after``.

    For :math:`t < n` (``warmup_steps``) the rate is
    :math:`\\eta_0 (f + (1 - f)\\, t / n)`, as ``torch.optim.lr_scheduler.LinearLR``
    with ``start_factor=f, total_iters=n``; from :math:`t = n` on it is the
    base rate, or ``after``'s rate at epoch :math:`t - n`.

    Parameters
    ----------
    optimizer : Optimizer
    warmup_steps : int
        :math:`n`; step the scheduler once per batch for a warm-up in batches.
    start_factor : float in [0, 1], optional
        :math:`f`; default :math:`1/n`.
    after : LRScheduler, optional
        A closed-form schedule of the same optimizer, e.g.
        ``CosineAnnealingLR(opt, T_max=95)``; only its formula is used, so do
        not step it yourself.
    """

    def __init__(self, optimizer, warmup_steps, start_factor=None, after=None):
        self.warmup_steps = check_positive_int(warmup_steps, "LinearWarmup", "warmup_steps")
        if start_factor is None:
            start_factor = 1.0 / self.warmup_steps
        self.start_factor = _check_number("LinearWarmup", "start_factor", start_factor,
                                          high=1.0)
        if after is not None and (not isinstance(after, LRScheduler)
                                  or after.optimizer is not optimizer):
            raise TypeError("LinearWarmup expected after= as a StepLR, ExponentialLR, "
                            "CosineAnnealingLR... of the same optimizer, received "
                            f"{type(after).__name__}")
        self.after = after
        super().__init__(optimizer)

    def _lr_at(self, base_lr, epoch):
        n = self.warmup_steps
        if epoch >= n and self.after is not None:
            return self.after._lr_at(base_lr, epoch - n)
        f = self.start_factor
        return base_lr * (f + (1 - f) * min(epoch, n) / n)


class ReduceLROnPlateau(_SchedulerBase):
    """Divide the rate when a monitored value stops improving (``step(metric)``).

    After more than ``patience`` epochs without improvement the rate of each
    group becomes ``max(lr * factor, min_lr)``; then ``cooldown`` epochs pass
    before bad epochs count again. Improvement in ``"min"`` mode means
    ``value < best * (1 - threshold)`` (``threshold_mode="rel"``) or
    ``value < best - threshold`` (``"abs"``); ``"max"`` mode mirrors it.
    Same defaults and counting as PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
    mode : {"min", "max"}, default "min"
    factor : float in [0, 1), default 0.1
    patience : int >= 0, default 10
    threshold : float >= 0, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int >= 0, default 0
    min_lr : float or list of float (one per group), default 0
        One number (or a list of one) is every group's, whatever groups come
        and go. One per group follows the groups by their parameters: a group
        removed takes its own with it; a group added since (or every group,
        bound again to other parameters) has none, and a cut that is due
        then is refused (``ValueError``, as PyTorch raises at the cut).
    eps : float, default 1e-8
        Changes smaller than this are skipped.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        super().__init__(optimizer)
        who = self._who
        for name, value, choices in (("mode", mode, ("min", "max")),
                                     ("threshold_mode", threshold_mode, ("rel", "abs"))):
            if value not in choices:
                raise ValueError(f"{who} expected {name} in {choices}, received {value!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _check_number(who, "factor", factor, high=1.0, high_open=True)
        self.patience = self._non_negative_int(patience, "patience")
        self.cooldown = self._non_negative_int(cooldown, "cooldown")
        self.threshold = _check_number(who, "threshold", threshold)
        self.eps = _check_number(who, "eps", eps)
        n_groups = len(self._lrs())
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n_groups:
                raise ValueError(f"{who} expected {n_groups} min_lr value(s), one per "
                                 f"parameter group, received {len(min_lr)}")
            self.min_lrs = [_check_number(who, "min_lr", v) for v in min_lr]
            # a list of one (one group, or unbound): every group's, as one number
            self._default_min_lr = self.min_lrs[0] if len(self.min_lrs) == 1 else None
        else:
            self.min_lrs = [_check_number(who, "min_lr", min_lr)] * n_groups
            self._default_min_lr = self.min_lrs[0]
        self._note_groups()
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = self._lrs()

    def _non_negative_int(self, value, what):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{self._who} expected {what} as an integer >= 0, "
                             f"received {value!r}")
        return int(value)

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            bound = (self.best * (1 - self.threshold) if self.threshold_mode == "rel"
                     else self.best - self.threshold)
            return value < bound
        bound = (self.best * (1 + self.threshold) if self.threshold_mode == "rel"
                 else self.best + self.threshold)
        return value > bound

    def step(self, metric) -> None:
        """Record this epoch's monitored value; reduce the rates if it has plateaued."""
        if isinstance(metric, bool) or not isinstance(metric, (numbers.Real, np.ndarray)) \
                or np.ndim(metric) != 0:
            raise TypeError(f"{self._who}.step expected the monitored value as a number, "
                            f"received {metric!r}")
        value = float(metric)
        self._follow_groups()
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()
        self._note_groups()

    def _follow_groups(self) -> None:
        """Keep one ``min_lr`` per group. Given as one number: that number
        for every group. Given per group: paired with the groups by their
        parameters, as the closed-form schedules pair their base rates
        (:meth:`~_SchedulerBase._paired_groups`), so a group removed takes
        its ``min_lr`` with it, whichever its place; a group added since, or
        every group after a ``bind`` to fewer groups of other parameters, has
        none (None): :meth:`_reduce` refuses a cut then, not before (no cut
        may ever be due)."""
        groups = self.optimizer.param_groups
        if not groups:
            return
        if self._default_min_lr is not None:
            self.min_lrs = [self._default_min_lr] * len(groups)
            return
        try:
            old = self._paired_groups(groups, len(self.min_lrs))
        except ValueError:  # fewer groups, none of them among the last ones
            old = [None] * len(groups)
        self.min_lrs = [None if i is None else self.min_lrs[i] for i in old]

    def _reduce(self) -> None:
        lrs = self._lrs()
        min_lrs = self.min_lrs * len(lrs) if len(self.min_lrs) == 1 else self.min_lrs
        if None in min_lrs:
            missing = [k for k, floor in enumerate(min_lrs) if floor is None]
            raise ValueError(f"{self._who} was given one min_lr per parameter group, but "
                             f"group(s) {missing} of the optimizer's {len(lrs)} have none "
                             f"(added since, or bound again to other parameters) and a cut "
                             f"is due: give min_lr as one number for every group, or make a "
                             f"new {self._who} with one per group now")
        new = []
        for old, floor in zip(lrs, min_lrs):
            lr = max(old * self.factor, floor)
            new.append(lr if old - lr > self.eps else old)
        self._set_lrs(new)

    def _state(self):
        return {**super()._state(), "best": np.array(self.best, dtype=np.float64),
                "num_bad_epochs": np.array(self.num_bad_epochs, dtype=np.int64),
                "cooldown_counter": np.array(self.cooldown_counter, dtype=np.int64)}

    def _read(self, state_dict, who):
        best = read_number(read_entry(state_dict, "best", who), who, "best")
        counts = {key: read_count(read_entry(state_dict, key, who), who, key)
                  for key in ("num_bad_epochs", "cooldown_counter")}
        return {**super()._read(state_dict, who), **counts,
                "best": check_real(best, who, "best")}
