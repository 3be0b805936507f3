r"""Loss weighting: how the task losses (or their gradients) combine into one update.

With task losses :math:`L_1, \dots, L_T`, shared parameters :math:`\theta`
and task gradients :math:`g_t = \nabla_\theta L_t`, each method decides the
shared update :math:`g`:

===============  ==========================================================
``equal``        :math:`g = \sum_t g_t`
``static``       :math:`g = \sum_t w_t g_t`, fixed :math:`w`
``uncertainty``  Kendall et al. 2018: :math:`\sum_t e^{-s_t} L_t + s_t`, the
                 log-variances :math:`s_t` learned with the network
``dwa``          Liu et al. 2019: :math:`w_t = T\,\mathrm{softmax}(r/\tau)_t`,
                 :math:`r_t = \bar L_t(e-1)/\bar L_t(e-2)` from epoch means
``gradnorm``     Chen et al. 2018: weights learned so that the task gradient
                 norms :math:`\lVert w_t g_t\rVert` follow the tasks' relative
                 training rates
``pcgrad``       Yu et al. 2020: project each :math:`g_t` off every
                 :math:`g_s` it conflicts with (:math:`g_t^\top g_s < 0`), sum
``mgda``         Sener & Koltun 2018: :math:`g = \sum_t \alpha_t g_t`, the
                 min-norm point of the convex hull of the :math:`g_t`
``mgda_ub``      MGDA-UB, the paper's section 3.3: :math:`\alpha` from the
                 gradients with respect to the shared representation
                 :math:`Z` (the trunk's output) instead of :math:`\theta`
===============  ==========================================================

The first four only *weight the losses*: one backward pass of
:math:`\sum_t w_t L_t` through the whole model. The others need every
:math:`g_t` separately (``needs_task_gradients = True``): the trainer runs one
forward pass and then **one backward pass per task** (head :math:`t` and
the shared trunk), copying the shared gradient after each, so a step costs
:math:`T` trunk backward passes instead of one, plus :math:`O(T^2 P)` for the
inner products of :math:`P` shared parameters (``mgda_ub``: :math:`T` head
backward passes and one trunk backward pass, see :class:`MGDAUB`). Task-specific parameters
always receive their own task's gradient (scaled by :math:`w_t` for GradNorm),
as in LibMTL.

Tasks absent from a batch
-------------------------
A batch may hold no labelled sample of some task (missing labels, see
:mod:`tinynet.mtl.training`). Its loss is then 0 and its gradient zero, which
says nothing about the task, so the trainer passes ``present`` (a boolean
per task) and every method leaves absent tasks out: ``equal``/``static``
sum zero gradients (nothing to do); ``uncertainty`` gives an absent
task's :math:`s_t` no gradient; ``dwa`` works from epoch means over each
task's labelled samples only; ``gradnorm`` takes the means :math:`\bar G`,
:math:`\overline{\tilde L}` over present tasks, fixes :math:`L_t(0)` at the
first batch the task is present in and gives an absent task's weight no
gradient; ``pcgrad`` projects present tasks on present tasks; ``mgda`` solves
(and ``mgda_ub``) the min-norm problem over present tasks and gives absent ones
:math:`\alpha_t = 0` (otherwise the zero gradient would be the min-norm
point and freeze the shared parameters). With no task present the shared
gradient is zero.

A task whose output depends on no shared parameter (a head on an input of
its own, in a functional graph) has a zero row of shared gradients in every
batch, for the same reason: the trainer leaves it out of :meth:`combine` as
if it were absent (``present`` False there; :meth:`loss_weights` still sees
it present, and its head trains on its own loss). So ``mgda``/``mgda_ub``
give it :math:`\alpha_t = 0`, its logged weight (it has no share of the
shared update), and ``gradnorm`` leaves it out of the means and gives its
weight no gradient.

No gradient is not no step: an optimizer with momentum (Adam, SGD with
``momentum``) still moves these parameters, and an absent task's head, by
its running averages, as it does for any zero gradient; and GradNorm's
renormalisation to :math:`\sum_t w_t = T` rescales every weight, absent
tasks' included.

Saving
------
A compiled :class:`~tinynet.mtl.Model` saves its weighting as
:func:`weighting_to_dict` (class name and constructor arguments) and its
progress as :meth:`Weighting.get_state` (arrays: the learned parameters --
uncertainty's :math:`s_t`, GradNorm's :math:`w_t` --, GradNorm's
:math:`L_t(0)`, DWA's epoch-mean history, PCGrad's generator state and the
last weights), so that training resumes exactly after
:func:`tinynet.load`. :meth:`Weighting.set_state` refuses a state that a
healthy run never saves (DWA weights outside :math:`[0, T]`, a negative
epoch loss, a GradNorm :math:`L_t(0)` that is not a loss it fixes, PCGrad
words that are not integers), naming the entry.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from ..checks import (cast_within, check_finite, check_inside, check_seed, check_task_keys,
                      is_real_dtype, lookup)
from ..layers._checks import check_real
from ..param import Param, layout_kept
from ..rngstate import generator_from_words, generator_words
from .min_norm import min_norm_weights

__all__ = ["Weighting", "Equal", "Static", "Uncertainty", "DWA", "GradNorm", "PCGrad", "MGDA",
           "MGDAUB", "WEIGHTINGS", "WEIGHTING_CLASSES", "get", "weighting_to_dict", "weighting_from_dict"]

#: Every weighting class by its class name (user subclasses too), for loading.
WEIGHTING_CLASSES: dict[str, type] = {}


class Weighting:
    """Base class: equal weights. Subclasses override what they change.

    Life cycle (driven by the trainer): :meth:`bind` once at compile time;
    each step :meth:`loss_weights` (the scale of each task's loss gradient),
    then, if ``needs_task_gradients``, :meth:`combine` of the per-task shared
    gradients; :meth:`on_epoch_end` with the epoch's mean task losses.

    A weighting of your own subclasses this one and overrides
    :meth:`loss_weights` (T finite numbers) and/or, with
    ``needs_task_gradients = True``, :meth:`combine` (one row of P numbers,
    or with ``rep_grad = True`` one of the representation's size);
    both take ``present=`` (see "Tasks absent from a batch"), which
    :meth:`present_mask` turns into booleans. Set ``last_weights`` for the
    logs. Constructor arguments go in :meth:`get_config` and anything
    training changes in :meth:`get_state`/``_set_state``, so that a saved
    model keeps them (and ``_check_entry`` refuses values its runs never
    save). The trainer checks the signatures at compile time and the shapes
    and values returned at every step.
    """

    name = "equal"
    needs_task_gradients = False
    #: With ``needs_task_gradients``: whether :meth:`combine` receives the
    #: gradients with respect to the shared representation (the trunk's
    #: output, one row of batch x features a task) instead of the shared
    #: parameters (LibMTL's ``rep_grad``); its result is then that
    #: representation's gradient, which the trainer backpropagates once
    #: through the trunk. Only models with such a representation take it
    #: (:meth:`tinynet.mtl.Model.shared_representation`).
    rep_grad = False
    #: State arrays whose first axis grows during training (DWA's history).
    _growing_state = ()
    #: State arrays that may hold NaN (GradNorm's L_t(0) of a task not seen yet).
    _nan_state = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # a user's class is not "equal" (logs, reports)
            cls.name = cls.__name__
        if not cls.__name__.startswith("_"):
            WEIGHTING_CLASSES[cls.__name__] = cls

    def bind(self, task_names, dtype=np.float64) -> "Weighting":
        """Attach to the tasks of a model (called by ``compile``)."""
        _check_hooks(self)
        self.task_names = list(task_names)
        self.n_tasks = len(self.task_names)
        self.dtype = np.dtype(dtype)
        self.last_weights = np.ones(self.n_tasks)
        return self

    def parameters(self) -> list[Param]:
        """Learned parameters that the optimizer must update with the model's."""
        return []

    def astype(self, dtype) -> "Weighting":
        """Compute in ``dtype`` from now on, :meth:`parameters` converted to it
        (``model.astype`` calls it), in one flat buffer again if they were
        (:func:`~tinynet.param.layout_kept`)."""
        self.dtype = np.dtype(dtype)
        params = self.parameters()
        with layout_kept(params):
            for p in params:
                p.astype(self.dtype)
        return self

    def loss_weights(self, losses: np.ndarray, training: bool = True,
                     present=None) -> np.ndarray:
        """The scale :math:`w_t` of each task's loss gradient in this step.

        ``losses`` holds the batch's task losses; a learned weighting also adds
        its own parameters' gradients here when ``training``. ``present``
        (bool per task, None = all) marks the tasks with a labelled sample
        in the batch; the others have loss 0 and a zero gradient.
        """
        return np.ones(self.n_tasks)

    def combine(self, grads: np.ndarray, losses: np.ndarray, present=None) -> np.ndarray:
        """The shared update from the per-task shared gradients (rows of ``grads``);
        ``present`` as in :meth:`loss_weights` (an absent task's row is zero)."""
        return grads.sum(axis=0)

    def present_mask(self, present) -> np.ndarray:
        """``present`` as a boolean array of one entry a task (None: all present)."""
        return (np.ones(self.n_tasks, dtype=bool) if present is None
                else np.asarray(present, dtype=bool))

    def on_epoch_end(self, mean_losses: np.ndarray) -> None:
        """Called with the epoch's mean training loss of each task."""

    def set_rng(self, rng: np.random.Generator) -> None:
        """Draw any randomness from ``rng`` from now on (nothing to draw here).
        ``fit(seed=...)`` calls it at each epoch with the generator it gives
        the layers, so that the seed fixes the whole run."""

    def get_config(self) -> dict:
        return {}

    def get_state(self) -> dict[str, np.ndarray]:
        """What training changed, as arrays (saved with a compiled model):
        ``last_weights`` here, plus each method's own (see the subclasses)."""
        return {"last_weights": np.array(self.last_weights, dtype=np.float64)}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` (on a weighting bound to the same tasks).

        Checks every key, shape and value first (the same keys, the same
        shapes -- the first axis of a growing history excepted --, finite
        values where the state is finite, within the range of the state's
        dtype -- a float32 model's learned weights --, and each method's own
        ranges, :meth:`_check_entry`), so a bad state changes nothing. A state is the
        user's data (a model file): one that a healthy run never saves (DWA
        weights of -1, which would train by gradient ascent) is refused,
        naming the entry, as :mod:`tinynet.optim.saved_state` does for an
        optimizer's.
        """
        who = f"{type(self).__name__} weighting.set_state"
        current = self.get_state()
        if not isinstance(state, dict) or set(state) != set(current):
            received = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{who} expected the arrays {sorted(current)}, "
                             f"received {received}")
        checked = {}
        for key, now in current.items():
            new = np.asarray(state[key])
            same = (new.shape[1:] == now.shape[1:] and new.ndim == now.ndim
                    if key in self._growing_state else new.shape == now.shape)
            if not same or not is_real_dtype(new.dtype):
                raise ValueError(f"{who} expected {key!r} as a real array of shape "
                                 f"{now.shape}, received {new.dtype} of shape {new.shape}")
            if key not in self._nan_state:
                check_finite(new, who, repr(key))
            self._check_entry(key, new, who)
            # a copy: the weighting must not share the caller's arrays
            checked[key] = cast_within(new, now.dtype, who, repr(key), copy=True)
        self._set_state(checked)

    def _check_entry(self, key: str, value: np.ndarray, who: str) -> None:
        """Refuse (``ValueError`` naming ``key``) a value of the state entry
        ``key`` that a healthy run of this method never saves, beyond the
        shape and finiteness that :meth:`set_state` checks for every entry
        (``value`` as received, before the cast to the state's dtype). None
        here: the base class's ``last_weights`` are recomputed at every step;
        a method whose saved state steers training overrides this."""

    def _set_state(self, state: dict) -> None:
        self.last_weights = state["last_weights"]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


WEIGHTING_CLASSES["Weighting"] = Weighting


def _check_hooks(weighting: Weighting) -> None:
    """A weighting's ``loss_weights`` and ``combine`` must take ``present=``
    (a subclass written before it was added would fail mid-``fit``)."""
    for name in ("loss_weights", "combine"):
        signature = inspect.signature(getattr(weighting, name))
        if "present" not in signature.parameters and not any(
                p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            raise TypeError(f"{type(weighting).__name__}.{name} expected to accept the "
                            f"keyword present= (a boolean a task: which tasks have a "
                            f"labelled sample in the batch), received {name}{signature}")


def checked_result(weighting: Weighting, name: str, value, shape: tuple,
                   finite: bool = False) -> np.ndarray:
    """``value`` returned by ``weighting.<name>``, checked: a real array of
    ``shape``, with finite entries if ``finite`` (the trainer asks for that
    only when the inputs were finite: a diverging run's NaN is for the NaN
    stop to report). A user's weighting that returns anything else fails
    here, naming itself, instead of deep inside the update."""
    who = f"{type(weighting).__name__}.{name}"
    array = np.asarray(value)
    if array.shape != shape or not is_real_dtype(array.dtype):
        raise ValueError(f"{who} expected to return real numbers of shape {shape}, "
                         f"returned {array.dtype} of shape {array.shape}")
    if finite:
        check_finite(array, who, "results from finite losses")
    return array


def check_nonnegative_losses(weighting: Weighting, losses, present=None,
                              why: str = "") -> None:
    """Refuse a negative loss of a present task (``ValueError`` naming the
    task and the value) for a method that divides by task losses (DWA's
    ratios, GradNorm's :math:`L_t/L_t(0)`, MGDA's ``"loss"`` normalisation):
    with a loss that can be negative (a user's; tinynet's built-in losses
    are not) the ratios change sign and the weights mean nothing. A loss of 0
    is taken as :math:`10^{-12}` there (documented by each method);
    non-finite losses are left for the NaN stop."""
    losses = np.asarray(losses, dtype=np.float64)
    bad = weighting.present_mask(present) & np.isfinite(losses) & (losses < 0)
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{weighting!r} expected non-negative task losses ({why}), "
                         f"received {losses[t]:.6g} for task {weighting.task_names[t]!r}")


class Equal(Weighting):
    """:math:`L = \\sum_t L_t`: the baseline."""

    name = "equal"

    def loss_weights(self, losses, training=True, present=None):
        self.last_weights = np.ones(self.n_tasks)
        return self.last_weights


class Static(Weighting):
    """Fixed weights: :math:`L = \\sum_t w_t L_t`.

    Parameters
    ----------
    weights : dict {task: float} or sequence of float
        Finite, non-negative real numbers, not all zero (nothing would
        train): one per task in task order, or by task name (a task left out
        weighs 1).
    """

    name = "static"

    def __init__(self, weights):
        self.weights = weights

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        w = self.weights
        if isinstance(w, dict):
            check_task_keys(w, self.task_names, "weights", "Static weighting")
            w = [w.get(t, 1.0) for t in self.task_names]
        if isinstance(w, np.ndarray):
            w = list(w) if w.ndim == 1 else None
        if not isinstance(w, (list, tuple)) or len(w) != self.n_tasks or not all(
                isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                and np.isfinite(v) and v >= 0 for v in w):
            raise ValueError(f"Static weighting expected {self.n_tasks} finite non-negative "
                             f"real numbers (one per task {self.task_names}), received "
                             f"{self.weights!r}"[:300])
        if not any(w):
            # every task's loss would count 0: training would change nothing
            raise ValueError(f"Static weighting expected at least one positive weight (one "
                             f"per task {self.task_names}), received all zero: "
                             f"{self.weights!r}"[:300])
        self.last_weights = np.array(w, dtype=np.float64)
        return self

    def loss_weights(self, losses, training=True, present=None):
        return self.last_weights

    def get_config(self):
        w = self.weights
        return {"weights": {str(k): float(v) for k, v in w.items()} if isinstance(w, dict)
                else [float(v) for v in w]}

    def _check_entry(self, key, value, who):
        # loss_weights returns last_weights, which bind set to the weights and
        # nothing changes: a state holding other weights would train with them
        if key == "last_weights" and not np.array_equal(value, self.last_weights):
            raise ValueError(f"{who} expected 'last_weights' equal to its weights "
                             f"{self.last_weights.tolist()} (a Static weighting never "
                             f"changes them), received {value.tolist()}"[:300])


class Uncertainty(Weighting):
    r"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    With a learned log-variance :math:`s_t` per task,

    .. math::
        L = \sum_t e^{-s_t} L_t + s_t, \qquad
        \frac{\partial L}{\partial s_t} = 1 - e^{-s_t} L_t, \qquad
        w_t = e^{-s_t},

    one form for every task. It is twice the paper's regression form (its
    eq. 7, with :math:`s = \log\sigma^2`), :math:`\tfrac12 e^{-s_t} L_t +
    \tfrac12 s_t`, which LibMTL uses for every task: the same gradients at
    half the scale, so the same training as this form at half the learning
    rate (almost unchanged under Adam, which does not see a common scale). The
    paper's classification form (eq. 10) is :math:`e^{-s_t} L_t + \tfrac12
    s_t`. At the optimum over :math:`s_t`, this form gives :math:`w_t =
    1/L_t`, both of the paper's :math:`w_t = 1/(2L_t)`: the same relative
    weights of the tasks. Noisy
    (high-loss) tasks are down-weighted either way. A task absent from the
    batch (no labelled sample) gets no gradient on :math:`s_t` (its
    :math:`L_t = 0` would push :math:`s_t` down).

    Parameters
    ----------
    init : float, default 0.0
        Initial :math:`s_t` (finite).
    """

    name = "uncertainty"

    def __init__(self, init: float = 0.0):
        self.init = check_real(init, "Uncertainty", "init (the initial log-variance)",
                               low=-np.inf, high=np.inf, low_open=True, high_open=True)

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.log_vars = Param(np.full(self.n_tasks, self.init, dtype=self.dtype),
                              name="uncertainty/log_vars")
        return self

    def parameters(self):
        return [self.log_vars]

    def loss_weights(self, losses, training=True, present=None):
        s = self.log_vars.value.astype(np.float64)
        w = np.exp(-s)
        if training:
            grad = np.where(self.present_mask(present), 1.0 - w * losses, 0.0)
            self.log_vars.grad += grad.astype(self.dtype)
        self.last_weights = w
        return w

    def get_config(self):
        return {"init": self.init}

    def get_state(self):
        return {**super().get_state(), "log_vars": self.log_vars.value.copy()}

    def _set_state(self, state):
        super()._set_state(state)
        self.log_vars.value = state["log_vars"]


class DWA(Weighting):
    r"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    .. math::
        r_t = \frac{\bar L_t(e-1)}{\bar L_t(e-2)}, \qquad
        w_t(e) = \frac{T \exp(r_t/\tau)}{\sum_s \exp(r_s/\tau)}

    with :math:`\bar L_t(e)` the mean training loss of task :math:`t` in epoch
    :math:`e` over its labelled samples (so batches without a label of the
    task do not count for it); :math:`w = 1` for the first two epochs. An
    epoch in which some task had no labelled sample at all (its mean is NaN:
    a run stopped early) is not recorded and the weights stay as they are.

    The ratios need non-negative losses: a negative batch loss of a task is
    a ``ValueError`` (only a loss of your own can be negative), and a mean
    of 0 in the denominator counts as :math:`10^{-12}` (a task fitted
    exactly for a whole epoch: :math:`r_t` is 0 if it stays so, and large,
    favouring the task, if its loss comes back).

    Parameters
    ----------
    temperature : float, default 2.0
        :math:`\tau`, finite and > 0 (large: weights near equal; small:
        the task whose loss fell least takes nearly all of them).
    """

    name = "dwa"
    _growing_state = ("history",)

    def __init__(self, temperature: float = 2.0):
        # finite: inf gives equal weights for ever, and a saved model's JSON
        # config cannot hold it (save failed after training)
        self.temperature = check_real(temperature, "DWA", "temperature", low=0.0,
                                      low_open=True, high_open=True)

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.history: list[np.ndarray] = []
        return self

    def loss_weights(self, losses, training=True, present=None):
        check_nonnegative_losses(self, losses, present, "it weighs tasks by ratios of "
                                 "their epoch mean losses")
        return self.last_weights

    def on_epoch_end(self, mean_losses):
        mean_losses = np.asarray(mean_losses, dtype=np.float64)
        if not np.isfinite(mean_losses).all():
            return
        self.history.append(mean_losses)
        if len(self.history) >= 2:
            r = self.history[-1] / np.maximum(self.history[-2], 1e-12)
            z = np.exp((r - r.max()) / self.temperature)
            self.last_weights = self.n_tasks * z / z.sum()

    def get_config(self):
        return {"temperature": self.temperature}

    def _check_entry(self, key, value, who):
        # last_weights are T softmax(r / tau) (or the first epochs' ones), each
        # in [0, T] (T q with q <= 1 rounds to at most T); they weigh the next
        # epoch's losses, so -1 would train that task by gradient ascent. The
        # history holds epoch means of losses loss_weights refused if negative.
        if key == "last_weights":
            check_inside(value, (value >= 0) & (value <= self.n_tasks), who, repr(key),
                         f"[0, {self.n_tasks}] (the number of tasks times a softmax)")
        elif key == "history":
            check_inside(value, value >= 0, who, repr(key),
                         "[0, inf) (epoch mean losses, which DWA requires non-negative)")

    def get_state(self):
        history = (np.array(self.history, dtype=np.float64) if self.history
                   else np.zeros((0, self.n_tasks)))
        return {**super().get_state(), "history": history}

    def _set_state(self, state):
        super()._set_state(state)
        self.history = list(state["history"])


class GradNorm(Weighting):
    r"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

    Loss weights :math:`w_t` (a parameter the optimizer updates) scale each
    task; with :math:`G_t = \lVert w_t g_t\rVert` on the shared parameters,
    :math:`\bar G` their mean, :math:`\tilde L_t = L_t / L_t(0)` and
    :math:`r_t = \tilde L_t / \overline{\tilde L}`, the weights minimise

    .. math::
        L_{\text{grad}} = \sum_t \big| G_t - \bar G\, r_t^{\alpha} \big|, \qquad
        \frac{\partial L_{\text{grad}}}{\partial w_t}
            = \operatorname{sign}\big(G_t - \bar G r_t^{\alpha}\big)\,\lVert g_t\rVert

    (the target :math:`\bar G r_t^\alpha` is held constant, as in the paper),
    and are renormalised to :math:`\sum_t w_t = T` before each step. The
    paper uses the last shared layer's weights; here (as in LibMTL) all shared
    parameters, from the per-task backward passes.

    A task absent from the batch (no labelled sample) is left out of the
    means :math:`\bar G` and :math:`\overline{\tilde L}` and its weight gets
    no gradient; :math:`L_t(0)` is the loss of the first batch the task is
    present in.

    The loss ratios need non-negative losses (a negative one is a
    ``ValueError``; an :math:`L_t(0)` of 0 counts as :math:`10^{-12}`). The
    norms :math:`\lVert g_t\rVert` are taken of each gradient scaled to a
    largest entry of 1 (and scaled back), so that they neither overflow
    (gradients around :math:`10^{170}`) nor underflow.

    Parameters
    ----------
    alpha : float, default 1.5
        Strength of the pull towards equal training rates (finite, >= 0;
        0 pulls every :math:`G_t` to the mean norm).
    """

    name = "gradnorm"
    needs_task_gradients = True
    _nan_state = ("initial_losses",)
    #: An :math:`L_t(0)` of 0 counts as this (the ratios divide by it).
    _LOSS_FLOOR = 1e-12

    def __init__(self, alpha: float = 1.5):
        self.alpha = check_real(alpha, "GradNorm", "alpha", low=0.0, high_open=True)

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.weights = Param(np.ones(self.n_tasks, dtype=self.dtype), name="gradnorm/weights")
        self.initial_losses = np.full(self.n_tasks, np.nan)
        return self

    def parameters(self):
        return [self.weights]

    def loss_weights(self, losses, training=True, present=None):
        # The optimizer stepped the weights freely; project back to sum T, positive.
        w = np.maximum(self.weights.value.astype(np.float64), 1e-4)
        self.weights.value = (self.n_tasks * w / w.sum()).astype(self.dtype)
        self.last_weights = self.weights.value.astype(np.float64)
        return self.last_weights

    def combine(self, grads, losses, present=None):
        on = self.present_mask(present)
        if not on.any():
            return grads.sum(axis=0)
        check_nonnegative_losses(self, losses, on, "it weighs tasks by the ratios "
                                 "L_t / L_t(0) of their losses")
        losses = np.asarray(losses, dtype=np.float64)
        first = on & np.isnan(self.initial_losses)
        self.initial_losses[first] = np.maximum(losses[first], self._LOSS_FLOOR)
        losses = losses[on]
        norms = _row_norms(grads[on].astype(np.float64))
        ratio = losses / self.initial_losses[on]
        rate = ratio / max(ratio.mean(), 1e-12)
        target = norms.mean() * rate ** self.alpha
        w = np.maximum(self.last_weights[on], 1e-12)
        grad = np.zeros(self.n_tasks)
        grad[on] = np.sign(norms - target) * norms / w
        self.weights.grad += grad.astype(self.dtype)
        return grads.sum(axis=0)

    def get_config(self):
        return {"alpha": self.alpha}

    def _check_entry(self, key, value, who):
        # L_t(0): NaN until the task is first present, then a finite loss of
        # at least the floor (the ratios L_t / L_t(0) divide by it). The
        # weights may be any finite numbers: the optimizer steps them freely,
        # below 0 too (a large weighting_lr), and loss_weights projects them
        # back to positive weights summing to T before they are used.
        if key == "initial_losses":
            seen = (value >= self._LOSS_FLOOR) & (value < np.inf)
            check_inside(value, np.isnan(value) | seen, who, repr(key),
                         f"[{self._LOSS_FLOOR:g}, inf) or NaN (a task not seen yet)")

    def get_state(self):
        return {**super().get_state(), "weights": self.weights.value.copy(),
                "initial_losses": self.initial_losses.copy()}

    def _set_state(self, state):
        super()._set_state(state)
        self.weights.value = state["weights"]
        self.initial_losses = state["initial_losses"]


class PCGrad(Weighting):
    r"""Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    For each task :math:`t`, in a random order over the other tasks
    :math:`s`, remove the conflicting component:

    .. math::
        \text{if } \tilde g_t^\top g_s < 0: \quad
        \tilde g_t \leftarrow \tilde g_t - \frac{\tilde g_t^\top g_s}{\lVert g_s\rVert^2} g_s,
        \qquad g = \sum_t \tilde g_t .

    A task absent from the batch (no labelled sample, zero gradient) is
    neither projected nor projected upon.

    The projection is computed as :math:`\tilde g_t \leftarrow \tilde g_t -
    (\tilde g_t^\top u_s) u_s` with the unit vector :math:`u_s = g_s /
    \lVert g_s\rVert`, formed from :math:`g_s` scaled to a largest entry of 1:
    no squared norm of a gradient is formed, which would underflow to 0 for
    gradients around :math:`10^{-170}` (and overflow around :math:`10^{170}`).

    Parameters
    ----------
    seed : int, optional
        Seed of the random projection order. ``fit(seed=...)`` overrides it
        (:meth:`set_rng`): each epoch's orders then come from the fit's seed
        and the epoch number, like the layers' dropout masks, so that two
        runs with one seed are identical.
    """

    name = "pcgrad"
    needs_task_gradients = True

    def __init__(self, seed: int | None = None):
        self.seed = check_seed(seed, "PCGrad")

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.rng = np.random.default_rng(self.seed)
        return self

    def set_rng(self, rng):
        # A generator of its own, seeded by one draw: always a PCG64 (what
        # get_state saves), and its draws do not shift the layers' ones.
        self.rng = np.random.default_rng(int(rng.integers(2 ** 63)))

    def combine(self, grads, losses, present=None):
        on = self.present_mask(present)
        grads64 = grads.astype(np.float64)
        norms = _row_norms(grads64)
        units = np.divide(grads64, norms[:, None], out=np.zeros_like(grads64),
                          where=norms[:, None] > 0)
        projected = grads64.copy()
        projected[~on] = 0.0
        for t in np.flatnonzero(on):
            for s in self.rng.permutation(len(grads64)):
                if s == t or not on[s] or norms[s] == 0:
                    continue
                dot = projected[t] @ units[s]
                if dot < 0:
                    projected[t] -= dot * units[s]
        return projected.sum(axis=0).astype(grads.dtype)

    def get_config(self):
        return {"seed": self.seed}

    def get_state(self):
        """Also the projection order's generator (PCG64: two 128-bit words as
        four uint64, then ``has_uint32`` and ``uinteger``)."""
        return {**super().get_state(),
                "rng": np.array(generator_words(self.rng), dtype=np.uint64)}

    def _check_entry(self, key, value, who):
        # integer words only: the cast to uint64 would truncate 0.5 and wrap -1
        if key == "rng":
            if not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"{who} expected 'rng' as integer words, received dtype "
                                 f"{value.dtype}")
            try:
                generator_from_words(value)
            except ValueError as exc:
                raise ValueError(f"{who}: 'rng' {exc}") from None

    def _set_state(self, state):
        rng = generator_from_words(state["rng"])  # a bad state raises before any change
        super()._set_state(state)
        self.rng = rng


class MGDA(Weighting):
    r"""Multiple-gradient descent (Sener & Koltun, NeurIPS 2018).

    .. math::
        \alpha = \arg\min_{\alpha \in \Delta}\Big\lVert\sum_t \alpha_t \hat g_t\Big\rVert^2,
        \qquad g = \sum_t \alpha_t g_t

    solved exactly by :func:`~tinynet.mtl.min_norm.min_norm_weights` (closed
    form for two tasks, Wolfe's minimum-norm-point algorithm beyond).
    :math:`\hat g_t` is :math:`g_t` scaled by ``normalize``: ``"none"``,
    ``"l2"`` (:math:`g_t/\lVert g_t\rVert`), ``"loss"`` (:math:`g_t/L_t`) or
    ``"loss+"`` (:math:`g_t/(L_t\lVert g_t\rVert)`), the paper's options. With no
    normalisation the result is a common descent direction of all tasks
    whenever one exists (zero at a Pareto-stationary point).

    Only the tasks present in the batch (with a labelled sample) take part:
    an absent task's gradient is zero, which would be the min-norm point and
    stop the shared parameters; it gets :math:`\alpha_t = 0` instead (all
    :math:`\alpha = 0`, no shared update, when no task is present).
    Non-finite gradients (a diverging run) have no min-norm point: they get
    equal weights, and the non-finite update is left for the NaN stop
    (:class:`~tinynet.callbacks.TerminateOnNaN`) to report, as with the other
    weightings. The gradients are scaled to a largest entry of 1 before their
    norms and Gram matrix are formed (:math:`\alpha` does not depend on a
    common scale), so that these neither overflow nor underflow.

    ``"loss"`` and ``"loss+"`` divide by the task losses, which must then be
    non-negative: a negative one (only a loss of your own can be) is a
    ``ValueError``, and a loss of 0 counts as :math:`10^{-12}`.

    Parameters
    ----------
    normalize : {"none", "l2", "loss", "loss+"}, default "none"
    """

    name = "mgda"
    needs_task_gradients = True
    _NORMALIZE = ("none", "l2", "loss", "loss+")

    def __init__(self, normalize: str = "none"):
        if normalize not in self._NORMALIZE:
            raise ValueError(f"MGDA expected normalize in {self._NORMALIZE}, "
                             f"received {normalize!r}")
        self.normalize = normalize

    def combine(self, grads, losses, present=None):
        on = self.present_mask(present)
        if self.normalize in ("loss", "loss+"):
            check_nonnegative_losses(self, losses, on, f"normalize={self.normalize!r} "
                                     f"divides each task's gradient by its loss")
        alpha = np.zeros(self.n_tasks)
        if on.any():
            alpha[on] = self._min_norm(grads[on], np.asarray(losses)[on])
        self.last_weights = alpha
        return (alpha @ grads.astype(np.float64)).astype(grads.dtype)

    def _min_norm(self, grads, losses):
        grads64 = grads.astype(np.float64)
        losses = np.asarray(losses, dtype=np.float64)
        if not np.isfinite(grads64).all() or (
                self.normalize in ("loss", "loss+") and not np.isfinite(losses).all()):
            # A diverging run: no min-norm problem. Equal weights pass the
            # non-finite gradient on, for the NaN stop (TerminateOnNaN) to report.
            return np.full(len(grads64), 1.0 / len(grads64))
        # alpha does not depend on a common scale of the gradients; dividing by
        # the largest entry, before the norms and again before the Gram matrix,
        # keeps both from overflowing (or underflowing to zero).
        grads64 = _unit_max(grads64)
        norms = np.sqrt(np.einsum("ij,ij->i", grads64, grads64))
        scale = np.ones(len(grads64))
        if self.normalize in ("l2", "loss+"):
            scale /= np.maximum(norms, 1e-12)
        if self.normalize in ("loss", "loss+"):
            scale /= np.maximum(losses, 1e-12)
        scaled = _unit_max(grads64 * scale[:, None])
        return min_norm_weights(scaled @ scaled.T)

    def get_config(self):
        return {"normalize": self.normalize}


class MGDAUB(MGDA):
    r"""MGDA-UB: MGDA on the shared representation (Sener & Koltun 2018, section 3.3).

    For a hard-sharing model :math:`f_t(x) = h_t(Z)`, :math:`Z = z(x;\theta)`
    the trunk's output (a batch of :math:`B` rows), the chain rule gives
    :math:`\nabla_\theta L_t = J^\top \nabla_Z L_t` with :math:`J =
    \partial Z/\partial\theta`, so

    .. math::
        \Big\lVert\sum_t \alpha_t \nabla_\theta L_t\Big\rVert^2
        \le \lVert J\rVert^2 \Big\lVert\sum_t \alpha_t \nabla_Z L_t\Big\rVert^2 .

    MGDA-UB minimises the upper bound instead: :math:`\alpha` is the
    min-norm point of the :math:`\nabla_Z L_t` (each a vector of :math:`B
    \times` the representation's size, the whole batch), then the trunk
    receives :math:`\sum_t \alpha_t \nabla_Z L_t` and one backward pass
    gives :math:`\sum_t \alpha_t \nabla_\theta L_t`. The paper proves that
    the result is still Pareto-stationary or a descent direction of every
    task when :math:`J` has full rank; it is not the same :math:`\alpha` as
    MGDA's in general.

    Cost of a step, with :math:`T` tasks: MGDA runs :math:`T` backward
    passes through head and trunk; MGDA-UB runs :math:`T` through the heads
    only (each stops at :math:`Z`) and **one** through the trunk, and its Gram
    matrix is over the :math:`B\,|Z|` entries of :math:`\nabla_Z L_t`
    instead of the :math:`P` shared parameters. ``normalize`` and the
    handling of absent tasks and of non-finite gradients are MGDA's, applied
    to :math:`\nabla_Z L_t`. Task-specific parameters get their own task's
    gradient, as with MGDA.

    The model must have a shared representation: one tensor that every
    head reads the shared layers through, with every shared parameter
    before it (:class:`~tinynet.mtl.HardSharing`, or a functional model of
    that form; :meth:`tinynet.mtl.Model.shared_representation`). ``compile``
    refuses other models (soft sharing, cross-stitch, MMoE) with a
    ``ValueError`` saying why. LibMTL calls this ``rep_grad=True`` with its
    MGDA weighting.

    Parameters
    ----------
    normalize : {"none", "l2", "loss", "loss+"}, default "none"
    """

    name = "mgda_ub"
    rep_grad = True


def _unit_max(a: np.ndarray) -> np.ndarray:
    """``a`` divided by its largest absolute entry (unchanged if all zero)."""
    largest = float(np.abs(a).max())
    return a / largest if largest > 0 else a


def _row_norms(a: np.ndarray) -> np.ndarray:
    """The Euclidean norm of each row of ``a`` (float64), each row scaled to a
    largest entry of 1 first and the norm scaled back, so that neither the
    squares underflow (entries around 1e-170) nor overflow (around 1e170)."""
    largest = np.abs(a).max(axis=1) if a.size else np.zeros(len(a))
    safe = np.where(largest > 0, largest, 1.0)
    scaled = a / safe[:, None]
    return largest * np.sqrt(np.einsum("ij,ij->i", scaled, scaled))


#: Weighting names to classes.
WEIGHTINGS: dict[str, type] = {
    "equal": Equal, "static": Static, "uncertainty": Uncertainty, "dwa": DWA,
    "gradnorm": GradNorm, "pcgrad": PCGrad, "mgda": MGDA, "mgda_ub": MGDAUB,
}


def weighting_to_dict(weighting: Weighting) -> dict:
    """``{"class": "GradNorm", "config": {"alpha": 1.5}}``: JSON-safe, for saving."""
    return {"class": type(weighting).__name__, "config": weighting.get_config()}


def weighting_from_dict(spec: dict) -> Weighting:
    """Inverse of :func:`weighting_to_dict` (unbound)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) \
            or not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"expected a weighting dict with a 'class' name and a 'config' "
                         f"dict, received {spec!r}"[:300])
    cls = WEIGHTING_CLASSES.get(spec["class"])
    if cls is None:
        from ..checks import did_you_mean
        raise ValueError(f"unknown weighting class {spec['class']!r}"
                         f"{did_you_mean(spec['class'], WEIGHTING_CLASSES)} (a weighting of "
                         f"your own needs its module imported before loading)")
    return cls(**spec.get("config", {}))


def named(spec) -> type | None:
    """The weighting class a name (``"pcgrad"``, any case) stands for, or
    ``spec`` itself if it is one (a :class:`Weighting` subclass); None for
    anything else. An unknown name is a ``ValueError`` (:func:`get`'s)."""
    if isinstance(spec, type) and issubclass(spec, Weighting):
        return spec
    return lookup(WEIGHTINGS, spec, "weighting") if isinstance(spec, str) else None


def get(spec, **kwargs) -> Weighting:
    """A weighting from a name (``"pcgrad"``), a class, a dict of static weights, or an instance.

    ``get("mgda", normalize="l2")`` and ``get(MGDA, normalize="l2")`` are
    ``MGDA(normalize="l2")``, as :func:`tinynet.losses.get` and
    :func:`tinynet.optim.get` take a class; ``get({"left": 1.0, "right":
    0.5})`` is static weighting. Options (``**kwargs``) go with a name or a
    class only. Anything else (``3``, ``True``, another class) is a
    ``TypeError`` naming what was expected and received.
    """
    cls = named(spec)
    if kwargs and cls is None:
        raise TypeError(f"weighting.get takes options ({sorted(kwargs)}) only with a "
                        f"weighting name or class, received them with {spec!r}"[:300])
    if spec is None:
        return Equal()
    if isinstance(spec, Weighting):
        return spec
    if isinstance(spec, dict):
        return Static(spec)
    if isinstance(spec, (list, tuple, np.ndarray)):
        return Static(list(spec))
    if cls is None:
        received = (f"the class {spec.__name__}" if isinstance(spec, type)
                    else f"{spec!r} of type {type(spec).__name__}")
        raise TypeError(f"expected a weighting as a name (e.g. 'pcgrad'), a Weighting "
                        f"subclass or instance, or static weights (a dict or a list), "
                        f"received {received}"[:300])
    if cls is Static and "weights" not in kwargs:
        shown = repr(spec) if isinstance(spec, str) else spec.__name__  # the class as written
        raise ValueError(f"weighting={shown} needs weights: pass "
                         f"loss_weights=... (one per task, or {{task: weight}}) or "
                         f"weighting=Static({{task: w}}) (or the dict itself)")
    return cls(**kwargs)
