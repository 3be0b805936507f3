r"""compile / fit / evaluate / predict for multi-output models.

Mixed into :class:`tinynet.mtl.Model`; the epoch loop, callbacks, progress
bar and :class:`~tinynet.History` are :func:`tinynet.training.fit_loop`'s,
so everything that works with ``Sequential.fit`` works here.

>>> model.compile("adam", loss={"left": "cross_entropy", "right": "cross_entropy"},
...               metrics={"left": ["accuracy"], "right": ["accuracy"]},
...               weighting="pcgrad")                                # doctest: +SKIP
>>> history = model.fit(x, {"left": y1, "right": y2}, epochs=5)     # doctest: +SKIP
>>> history.history["right/accuracy"]                                # doctest: +SKIP

Logged names: ``"loss"`` (the plain sum of task losses, comparable across
weightings), ``"<task>/loss"``, ``"<task>/<metric>"``, ``"<task>/weight"`` for adaptive
weightings (the weight the method gave the task; MGDA's :math:`\alpha_t`, 0 for a
task absent from the batch or one whose output reads no shared parameter:
:mod:`tinynet.mtl.weighting`) and the same with ``"val_"`` in front for validation data
(so a task may not be named ``"val_"`` + another task's name: :class:`tinynet.mtl.Model`
refuses it).

Missing labels
--------------
A sample may lack the label of some tasks. Such an entry is recognised by

* a NaN target (any NaN in the sample's row), for every loss;
* a negative integer (``-1``) anywhere in the sample's row, only for the
  integer class labels of a classification loss (cross-entropy or binary
  cross-entropy). For any other loss (MSE, MAE, Huber...) integer targets
  are values, cast to float, so ``-3`` is a target of ``-3.0``: mark a
  missing regression target with NaN;
* ``mask={task: bool array}`` (``True`` = labelled; 0/1 numbers too, any
  other value is an error), for every loss.

The task's loss is then the mean over its labelled samples of the
batch (:mod:`tinynet.losses` per-sample masks), its metrics are computed on
those samples, and the unlabelled ones pass no gradient to that task's head.
A task without a single labelled sample in the data given to ``fit`` (or its
``validation_data``) or ``evaluate`` is an error; one without labels in some
batches is not (see :mod:`tinynet.mtl.weighting` for what each weighting
does with a task absent from a batch).
Training-time epoch means of a task's logs (``"<task>/loss"``, its metrics
and weight) weight each batch by its number of labelled samples of the
task, so a batch without any counts for nothing; the epoch's ``"loss"`` is
the sum of those task losses. The running values the live progress bar
shows within an epoch are these means over the batches so far (not
batch-size-weighted ones), so they lead to the logged value.
``evaluate`` is exact.

Sample weights
--------------
``fit(..., sample_weight=...)`` and ``evaluate(..., sample_weight=...)`` take
Keras' multi-output sample weights: one array of shape ``(n_samples,)`` for
every task, or ``{task: array}`` (a task left out weighs every sample 1).
Task :math:`t`'s loss is then the weighted mean over its labelled samples,

.. math::
    L_t = \frac{\sum_i w_{ti}\, m_{ti}\, \ell_{ti}}{\sum_i w_{ti}\, m_{ti}},

(:mod:`tinynet.losses`' weights and masks, PyTorch's convention; Keras
divides by the batch size instead), and its gradient follows. The metrics
stay unweighted (Keras' ``metrics``). A batch whose labelled samples of a
task all weigh 0 leaves the task out of that batch's weighting, as a batch
without its labels does; a task whose labelled samples all weigh 0 in the
data is an error. The epoch mean of a task's loss weights each batch by its
:math:`\sum_i w_{ti} m_{ti}` (the loss's ``weight_total``), so it is the
exact weighted mean when the weights do not move.

A task loss with ``reduction="sum"`` is logged as :class:`tinynet.Sequential`
(and Keras) log one: its batch sums averaged over the batches, each batch
weighted by the task's labelled samples in it; ``evaluate`` and the
validation logs sum over batches of ``batch_size`` samples likewise (in
``fit``, of ``fit``'s ``batch_size``), so the three agree on the same data.
"""

from __future__ import annotations


import numpy as np

from .. import _userwarn
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .._weak import Ref
from ..callbacks import Callback, as_callback_list
from ..checks import (as_mask, as_sample_weight, check_batch_size, check_finite,
                      check_task_keys, per_task, summable_weights, unknown_tasks)
from ..class_weights import largest_class_weight
from ..layers._checks import check_real
from ..output_losses import for_output
from ..param import ensure_flat
from ..progress import PassProgress, check_verbose
from ..data.batches import n_batches
from ..training import RunningMeans, batch_indices, check_targets, fit_loop
from . import weighting as weighting_mod


__all__ = ["MultiTaskTraining", "task_masks"]


def task_masks(y: dict, mask: dict | None, n_samples: int, losses: dict | None = None,
               who: str = "fit") -> dict:
    """``{task: bool array of labelled samples, or None when all are}``.

    A sample is missing for a task if its target row holds a NaN, if
    ``mask[task]`` is False for it, or -- only when ``losses[task]`` is a
    classification loss (:class:`~tinynet.losses.CrossEntropy`,
    :class:`~tinynet.losses.BinaryCrossEntropy` or a subclass) and the
    targets are integers -- if its row holds a negative label. Integer
    targets of any other loss (or with ``losses=None``) are values.

    A task with no labelled sample at all is an error (``ValueError`` naming
    the task and why its samples are missing): it would train nothing and
    report a loss of 0.
    """
    masks = {}
    if mask is not None and not isinstance(mask, dict):
        raise TypeError(f"{who} expected mask as a dict {{task: bool array}} (tasks: "
                        f"{sorted(y)}), received {type(mask).__name__}")
    mask = mask or {}
    losses = losses or {}
    check_task_keys(mask, list(y), "masks", who)
    for task, target in y.items():
        target = np.asarray(target)
        rows = target.reshape(n_samples, -1)
        reasons = {}  # why samples are missing: {reason: count}
        labelled = np.ones(n_samples, dtype=bool)
        if np.issubdtype(target.dtype, np.floating):
            labelled &= ~np.isnan(rows).any(axis=1)
            reasons["a NaN target"] = n_samples - int(labelled.sum())
        elif (np.issubdtype(target.dtype, np.integer)
              and isinstance(losses.get(task), losses_mod.CLASSIFICATION_LOSSES)):
            labelled &= (rows >= 0).all(axis=1)
            reasons["a negative class label"] = n_samples - int(labelled.sum())
        if task in mask:
            m = as_mask(mask[task], n_samples, who, f"mask[{task!r}]")
            reasons["mask False"] = n_samples - int(m.sum())
            labelled &= m
        if not labelled.any():
            why = ", ".join(f"{count} with {reason}" for reason, count in reasons.items()
                            if count)
            raise ValueError(f"{who} expected at least one labelled sample for task "
                             f"{task!r}, received none: all {n_samples} samples are missing "
                             f"({why})")
        masks[task] = None if labelled.all() else labelled
    return masks


def task_weights(sample_weight, y: dict, n_samples: int, masks: dict,
                 who: str = "fit", losses: dict | None = None) -> dict:
    """``{task: float64 sample weights, or None for ones}`` from ``fit``'s or
    ``evaluate``'s ``sample_weight``: None, one array for every task, or a
    dict ``{task: array}`` (tasks left out weigh every sample 1), each of
    shape ``(n_samples,)``, finite and non-negative (Keras' multi-output
    ``sample_weight``).

    A task whose labelled samples (``masks``) all weigh 0 is an error, as a
    task without labels is: it would train nothing. A task's weights whose
    sum overflows are divided by their maximum
    (:func:`tinynet.checks.summable_weights`: the weighted mean is the same),
    and by the largest class weight of the task's loss in ``losses``
    (``{task: Loss}``; ``CrossEntropy(weight=c)`` multiplies them by it).
    """
    if sample_weight is None:
        return {task: None for task in y}
    if isinstance(sample_weight, dict):
        check_task_keys(sample_weight, list(y), "sample weights", who)
        given = {task: sample_weight.get(task) for task in y}
    else:
        given = {task: sample_weight for task in y}
    weights = {}
    for task, w in given.items():
        if w is None:
            weights[task] = None
            continue
        what = f"sample_weight[{task!r}]" if isinstance(sample_weight, dict) else \
            "sample_weight"
        w = summable_weights(as_sample_weight(w, n_samples, who, what),
                             1.0 if losses is None else largest_class_weight(losses[task]))
        labelled = w if masks[task] is None else w[masks[task]]
        if not labelled.any():
            raise ValueError(f"{who} expected a positive {what} for at least one labelled "
                             f"sample of task {task!r}, received 0 for all "
                             f"{labelled.size} of them")
        weights[task] = w
    return weights


def _own(weighting, model):
    """``weighting``, unless another model is compiled with this very instance:
    then a ``ValueError`` before it changes (binding it again would reset
    that model's task state and take its learned parameters from its
    optimizer, which then trains without them, silently). The model that
    last compiled with it is in ``weighting._owner`` (a weak reference,
    :class:`tinynet._weak.Ref`)."""
    owner = getattr(weighting, "_owner", None)
    other = None if owner is None else owner()
    if other is not None and other is not model and other.weighting is weighting:
        raise ValueError(f"compile received a {type(weighting).__name__} weighting that model "
                         f"{other.name!r} is compiled with: an instance holds one model's "
                         f"task state and learned parameters; pass a new one (e.g. "
                         f"weighting={weighting.name!r}, or a new {type(weighting).__name__}"
                         f"(...)) for each model")
    return weighting


def _flat_grads(params) -> np.ndarray:
    return np.concatenate([p.grad.ravel() for p in params])


def _set_flat_grads(params, flat: np.ndarray) -> None:
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.size].reshape(p.shape)
        offset += p.size


class MultiTaskTraining:
    """The training half of :class:`tinynet.mtl.Model` (see the module docstring).

    Expects ``forward_all``, ``backward_all``, ``output_names``, ``outputs``,
    ``parameters``/``trainable_parameters``, ``shared_parameters``.
    """

    compiled = False
    optimizer = None
    #: ids of the parameters this model bound its optimizer to (None: the user did)
    _bound_ids = None
    #: the model's layers at its last binding (tinynet.optim.binding)
    _layers_at_bind = None
    #: Per-task running means of the current fit epoch (see _TaskEpochs), or None:
    #: of the weight, by labelled samples, and of the loss, by the loss's total
    #: weight (``Loss.weight_total``); and the metrics' accumulators of the epoch's
    #: labelled samples (:class:`tinynet.metrics.MetricStates`).
    _epoch_task_means = None
    _epoch_task_losses = None
    _epoch_task_metrics = None
    #: True for models that add a parameter penalty (soft sharing): logged as "penalty".
    penalized = False
    #: The shared representation whose gradients a ``rep_grad`` weighting
    #: (MGDA-UB) combines, set by ``compile``; None otherwise.
    _representation = None
    #: The trainable shared parameters and which tasks reach them (_trainable_shared).
    _shared: list = []
    _reaches_shared = None

    def regularization(self) -> float:
        """Add a penalty's gradient to the parameters and return its value (none here)."""
        return 0.0

    # --------------------------------------------------------------- compile
    def compile(self, optimizer="adam", loss=None, metrics=None, weighting="equal",
                loss_weights=None, weighting_lr=None):
        """Set the optimizer, one loss per task, metrics and the loss weighting.

        Parameters
        ----------
        optimizer : str, Optimizer or dict
            As :func:`tinynet.optim.get`. An unbound one is bound to the
            model's parameters (frozen ones too: it skips them while they are
            frozen); one already bound to the model's parameters -- a subset,
            or groups with rates of their own
            (:func:`tinynet.transfer.discriminative_param_groups`) -- is kept
            as it is, as :class:`tinynet.Sequential` keeps it; one bound to
            other parameters (another model's) is refused, as Sequential
            refuses it (:mod:`tinynet.optim.binding`). The weighting's learned parameters
            (uncertainty's log-variances, GradNorm's weights) get a group of
            their own unless it holds them already (see ``weighting_lr``).
        loss : dict {task: loss}, list (task order) or one loss for every task
            Names (``"cross_entropy"``, ``"mse"``...) or instances. A logit
            cross-entropy on a softmax/sigmoid output is computed from the
            probabilities (:mod:`tinynet.output_losses`). One instance may
            serve several tasks (``loss=CrossEntropy()``, ``[ce, ce]``): it is
            kept for every task with a plain output (there ``model.loss[task]``
            is that object; on a softmax/sigmoid output it is wrapped), and each
            task's forward, backward and total weight are taken in turn
            before the next task's forward, so it trains as one instance per
            task would (its ``weight_total`` after a step is the last task's).
        metrics : dict {task: [metric, ...]}, a flat list for every task, or a list per task
            A list holding a list (or tuple) is per task, in output order,
            each item a list of metrics, one metric or None (none for that
            task): ``["mae", ["mae", "mse"]]``, ``[None, ["accuracy"]]``; a
            flat list (``["mae", "mse"]``) is for every task. That is Keras
            2's rule (:func:`tinynet.checks.per_task`); Keras 3 reads any
            list per output. An ``"accuracy"`` on a single sigmoid unit
            thresholds its probability at 0.5 (:func:`tinynet.metrics.for_output`). Each is
            logged as ``"<task>/<name>"`` (``F1Score(name="f1_micro")``...);
            two of one name in a task, or one named ``"loss"`` or
            ``"weight"``, are refused.
        weighting : str, dict, Weighting or a Weighting subclass, default "equal"
            ``"equal"``, ``"uncertainty"``, ``"dwa"``, ``"gradnorm"``,
            ``"pcgrad"``, ``"mgda"``, ``"mgda_ub"`` (hard sharing only: a
            ``ValueError`` for a model without a shared representation), a
            dict of static weights (or ``"static"`` with ``loss_weights``),
            a class (``PCGrad``: its defaults) or an instance from
            :mod:`tinynet.mtl.weighting` (for options); anything else is a
            ``TypeError`` (:func:`tinynet.mtl.weighting.get`), or a
            ``ValueError`` beside ``loss_weights`` (which take the place
            of every weighting but equal and static). An instance serves
            one model: it holds that model's task state and learned
            parameters, so one that another model is compiled with is
            refused (``ValueError``; give each model its own). Compiling
            the same model again with it starts it afresh.
        loss_weights : dict or list, optional
            Keras' name for static weights, with ``weighting`` ``"equal"``
            (the default) or ``"static"``: both mean
            ``weighting=Static(loss_weights)``; ``"static"`` without them is
            an error (it has no weights).
        weighting_lr : float, optional
            Learning rate of the weighting's learned parameters (default: the
            optimizer's); a schedule already running on the optimizer scales
            it from the start as it scales the other groups (their group
            starts at ``weighting_lr`` times the decay so far, where
            ``add_param_group`` keeps a rate given as it is). They get no
            weight decay whatever the optimizer's
            (uncertainty's :math:`s_t` would be pulled towards 0, a prior the
            paper does not have), and the optimizer's ``max_grad_norm`` clips
            the model's gradients only, as ``torch.nn.utils.clip_grad_norm_(
            model.parameters())`` would: their gradients neither count in the
            norm nor are clipped (uncertainty's, about the size of a loss,
            would shrink the network's step instead).

        A compile refused for its arguments leaves the model's loss, metrics,
        weighting and optimizer as they were: all are checked before any is
        replaced (and :func:`tinynet.io.save` writes them as they are).
        """
        tasks = list(self.output_names)
        if weighting_lr is not None:  # float("1e-3") or True were taken as rates
            weighting_lr = check_real(weighting_lr, "compile", "weighting_lr", low=0.0,
                                      low_open=True, high_open=True)
        if loss is None:
            raise ValueError("compile expected loss= (one per task, e.g. "
                             f"{{{', '.join(repr(t) + ': ...' for t in tasks)}}})")
        given_losses = {}
        for task, spec in per_task(loss, tasks, "loss").items():
            if spec is None:
                raise ValueError(f"compile expected a loss for task {task!r}")
            given_losses[task] = losses_mod.get(spec)
            losses_mod.check_trainable(given_losses[task], f"compile, task {task!r}")
        metric_specs = per_task(metrics, tasks, "metrics") if metrics is not None else {}
        given_metrics = {t: [metrics_mod.get(m) for m in ([] if s is None else list(s)
                                                          if isinstance(s, (list, tuple))
                                                          else [s])]
                         for t, s in ((t, metric_specs.get(t)) for t in tasks)}
        for task, ms in given_metrics.items():  # (its logs: "<task>/loss", "<task>/weight")
            metrics_mod.check_names(ms, f"compile, task {task!r}", reserved=("loss", "weight"))
        # each task's loss and metrics for its output, set once nothing more can refuse
        paired = self._paired(given_losses, given_metrics)
        static = weighting if loss_weights is None else loss_weights
        if isinstance(static, dict):  # named as passed (Static.bind would say "weights")
            check_task_keys(static, tasks, "weighting" if loss_weights is None
                            else "loss_weights")
        if loss_weights is not None:
            # Keras' static weights: with the default weighting, or "static" that names them
            if weighting is not None and weighting_mod.named(weighting) not in (
                    weighting_mod.Equal, weighting_mod.Static):
                raise ValueError(f"compile takes loss_weights or weighting={weighting!r}, "
                                 f"not both")
            weighting = weighting_mod.Static(loss_weights)
        dtype = self.dtype or np.dtype(np.float32)
        # the learned parameters an earlier compile bound (binding anew replaces them)
        replaced = list(self.weighting.parameters()) if self.compiled else []
        weighting = _own(weighting_mod.get(weighting), self)
        # MGDA-UB: the tensor whose gradients the weighting combines; a model
        # without one is refused here, before the weighting and optimizer change
        representation = (self.shared_representation() if weighting.needs_task_gradients
                          and weighting.rep_grad and len(tasks) > 1 else None)
        from .. import optim
        from ..optim.binding import refuse_foreign
        # a name or dict: a new, unbound optimizer; an instance as it is
        optimizer = optim.get(optimizer)
        # another model's optimizer is refused before the weighting binds anew (a
        # refused compile changes nothing: the old optimizer holds the old weights)
        refuse_foreign(self, optimizer, self.parameters(), "compile", known=replaced)
        weighting = weighting.bind(tasks, dtype)
        self._bind_optimizer(optimizer, weighting, weighting_lr, replaced)
        self.loss, self.metrics = paired
        self.weighting, self._representation = weighting, representation
        weighting._owner = Ref(self)
        # What a saved model stores: the losses and metrics as given (loading
        # compiles again, which redoes the swaps for softmax/sigmoid outputs).
        self._compiled = {"loss": given_losses, "metrics": given_metrics,
                          "weighting_lr": weighting_lr}
        self._find_shared()
        if self.weighting.needs_task_gradients and not self._shared and len(tasks) > 1:
            # train_step then takes the plain backward pass: equal weights in effect
            _userwarn.warn(f"compile: weighting {self.weighting.name!r} works on the tasks' "
                           f"gradients on the parameters they share, and no trainable "
                           f"parameter of this model is shared (soft sharing, a "
                           f"cross-stitch network without stitches, or a frozen trunk): it "
                           f"trains as equal weights (until a shared layer is unfrozen)",
                           UserWarning)
        self.compiled = True
        return self

    def _find_shared(self) -> None:
        """Find the parameters two or more tasks share, and which tasks each
        reaches (at compile, and again at ``fit``: a layer added since to a
        Sequential inside the graph, a shared trunk's, is shared too); then
        :meth:`_trainable_shared`."""
        owners = self.output_owners()
        self._shared_all = [p for p in self.parameters() if len(owners.get(id(p), ())) > 1]
        self._shared_owners = [owners[id(p)] for p in self._shared_all]
        self._shared_flags = None
        self._trainable_shared()

    def _trainable_shared(self) -> list:
        """Set and return ``_shared``, the trainable shared parameters (whose
        task gradients a ``needs_task_gradients`` weighting combines), and
        ``_reaches_shared``, one boolean a task: whether its output depends
        on one of them. A task that reaches none (a head on an input of its
        own) has a zero row of shared gradients, which would be MGDA's
        min-norm point and stop the trunk: ``train_step`` leaves it out of
        ``combine`` as it does a task absent from the batch.

        Asked at every step and computed again when a shared parameter was
        frozen or unfrozen since (after compile, or by a callback such as
        :class:`tinynet.transfer.GradualUnfreezing` within ``fit``), as
        :class:`tinynet.Sequential` trains a layer unfrozen after compile."""
        flags = tuple(p.trainable for p in self._shared_all)
        if flags != self._shared_flags:
            self._shared_flags = flags
            self._shared = [p for p, on in zip(self._shared_all, flags) if on]
            reached = set().union(*(o for o, on in zip(self._shared_owners, flags) if on))
            self._reaches_shared = np.array([t in reached
                                             for t in range(len(self.output_names))])
        return self._shared

    def _paired(self, losses: dict, metrics: dict) -> tuple[dict, dict]:
        """``loss`` and ``metrics`` from the compiled ones, per task, for what
        its output layer gives: probabilities after a softmax/sigmoid, else
        logits (as :meth:`tinynet.Sequential._fit_to_output`)."""
        # each output tensor: output_activation walks back its graph
        layers = dict(zip(self.output_names, self.outputs))
        loss = {t: for_output(task_loss, layers[t]) for t, task_loss in losses.items()}
        return loss, {t: [metrics_mod.for_output(m, layers[t], loss[t]) for m in ms]
                      for t, ms in metrics.items()}

    def _refit_output(self) -> None:
        """A layer inside changed what it outputs (an activation set after
        compile): pair each task's compiled loss and metrics with its output
        again, as compile does."""
        if self.compiled:
            self.loss, self.metrics = self._paired(self._compiled["loss"],
                                                   self._compiled["metrics"])
        self._output_changed()

    def _bind_optimizer(self, optimizer, weighting, weighting_lr, replaced) -> None:
        """Bind ``optimizer`` to the model's parameters and to ``weighting``'s
        learned ones, and make it the model's.

        The model's parameters as :class:`tinynet.Sequential` binds them
        (:func:`tinynet.optim.binding.bind_model_optimizer`): an unbound
        optimizer to all of them, frozen ones too (the optimizer skips them
        while frozen, so unfreezing after compile trains them); one the user
        bound to groups of them (their own rates,
        :func:`tinynet.transfer.discriminative_param_groups`) is kept as it
        is, but for layers added since it was last compiled with this model,
        which it takes; one holding parameters that are neither the model's nor the
        weighting's is refused (``ValueError``) unless it is the model's own. The learned parameters of a
        weighting an earlier compile bound (``replaced``) are taken out of it.
        Then the weighting's parameters it does not hold yet get a group of
        their own: weight decay 0, learning rate ``weighting_lr`` (default
        the optimizer's); a group of them it holds stays as it is, with
        their state (``fit`` binds the compiled optimizer again with the
        compiled weighting, as ``Sequential.fit`` does, so that a layer
        added since compile trains).
        """
        from ..optim.binding import bind_model_optimizer
        extra = list(weighting.parameters())
        new = {id(p) for p in extra}
        optimizer.remove_params([p for p in replaced if id(p) not in new])
        bound_ids = bind_model_optimizer(self, optimizer, self.parameters(), "compile",
                                         known=extra)
        held = {id(p) for p in optimizer.params}
        missing = [p for p in extra if id(p) not in held]
        if missing:  # no weight decay: neither paper puts a prior on s_t or w_t
            ensure_flat(missing)  # one fused optimizer call
            rate = {} if weighting_lr is None else {"lr": weighting_lr}
            optimizer._add_scheduled_group({"params": missing, "weight_decay": 0.0, **rate})
        self.optimizer, self._bound_ids = optimizer, bound_ids

    def get_compile_config(self) -> dict | None:
        """JSON-safe optimizer, losses and metrics per task (as compile received
        them), weighting and ``weighting_lr``; None if not compiled. With
        :meth:`get_training_state` what :func:`tinynet.io.save` keeps."""
        if not self.compiled:
            return None
        from .. import optim
        return {"optimizer": optim.optimizer_to_dict(self.optimizer),
                "loss": {t: losses_mod.loss_to_dict(loss)
                         for t, loss in self._compiled["loss"].items()},
                "metrics": {t: [metrics_mod.to_config(m) for m in ms]
                            for t, ms in self._compiled["metrics"].items()},
                "weighting": weighting_mod.weighting_to_dict(self.weighting),
                "weighting_lr": self._compiled["weighting_lr"]}

    def compile_from_config(self, config: dict) -> None:
        """Inverse of :meth:`get_compile_config` (used by :func:`tinynet.load`)."""
        if not isinstance(config, dict):
            raise ValueError(f"expected the compile settings as a dict, received "
                             f"{type(config).__name__}")
        for key in ("optimizer", "loss", "weighting"):
            if key not in config:
                raise ValueError(f"expected the compile settings to hold {key!r}, "
                                 f"received the keys {sorted(config)}")
        if not isinstance(config["loss"], dict) or not isinstance(
                config.get("metrics") or {}, dict):
            raise ValueError("expected the compile settings' loss and metrics as dicts "
                             "{task: ...}")
        metrics = {t: metrics_mod.from_saved(ms, f"load, task {t!r}")
                   for t, ms in (config.get("metrics") or {}).items()}
        self.compile(config["optimizer"], loss=config["loss"], metrics=metrics or None,
                     weighting=weighting_mod.weighting_from_dict(config["weighting"]),
                     weighting_lr=config.get("weighting_lr"))

    def optimizer_parameters(self) -> list:
        """Every parameter the optimizer may hold: the model's, then the
        weighting's learned ones (:func:`tinynet.io.save` stores the optimizer's
        parameter groups as indices into this list)."""
        extra = self.weighting.parameters() if self.compiled else []
        return self.parameters() + list(extra)

    def get_training_state(self) -> dict[str, np.ndarray]:
        """The weighting's state (``{"weighting/<key>": array}``, see
        :meth:`tinynet.mtl.weighting.Weighting.get_state`); ``{}`` if not compiled."""
        if not self.compiled:
            return {}
        return {f"weighting/{k}": v for k, v in self.weighting.get_state().items()}

    def set_training_state(self, state: dict) -> None:
        """Inverse of :meth:`get_training_state`, after ``compile`` with the same weighting."""
        self._require_compiled("set_training_state")
        prefix = "weighting/"
        unknown = sorted(k for k in state if not k.startswith(prefix))
        if unknown:
            raise ValueError(f"set_training_state expected keys starting with {prefix!r}, "
                             f"received {unknown}")
        self.weighting.set_state({k[len(prefix):]: v for k, v in state.items()})

    def _require_compiled(self, who):
        if not self.compiled:
            raise RuntimeError(f"{who} needs model.compile(optimizer, loss=...) first")

    # ------------------------------------------------------------- arguments
    def _targets(self, y, n_samples, who) -> dict:
        tasks = self.output_names
        if not isinstance(y, dict):
            if len(tasks) == 1:
                y = {tasks[0]: y}
            elif isinstance(y, (list, tuple)) and len(y) == len(tasks):
                y = dict(zip(tasks, y))
            else:
                raise TypeError(f"{who} expected targets as a dict {{task: y}} for tasks "
                                f"{tasks}, received {type(y).__name__}")
        missing = [t for t in tasks if t not in y]
        unknown, hint = unknown_tasks(y, tasks)
        if missing or unknown:
            raise ValueError(f"{who} expected targets for tasks {tasks}, missing {missing}, "
                             f"unknown {unknown}{hint}")
        out = {}
        for t in tasks:
            target = np.asarray(y[t])
            if target.ndim == 0 or target.shape[0] != n_samples:
                raise ValueError(f"{who} expected {n_samples} targets for task {t!r} (one "
                                 f"per sample), received shape {target.shape}")
            out[t] = target
        return out

    def _inputs(self, x, who) -> list[np.ndarray]:
        """The model's input arrays (:meth:`Model._input_arrays`: shapes and
        names), checked as data too: at least one sample, finite values."""
        xs = self._input_arrays(x, who)
        for a, t in zip(xs, self.inputs):
            if a.shape[0] == 0:
                raise ValueError(f"{who} expected at least one sample, received input "
                                 f"{t.name!r} of shape {a.shape}")
            check_finite(a, who, f"input {t.name!r}")
        return xs

    def _data(self, x, y, mask, who, sample_weight=None):
        """Checked ``(inputs, targets, masks, weights)`` for ``fit``/``evaluate``."""
        xs = self._inputs(x, who)
        n = xs[0].shape[0]
        ys = self._targets(y, n, who)
        masks = task_masks(ys, mask, n, self.loss, who)
        return xs, ys, masks, task_weights(sample_weight, ys, n, masks, who, self.loss)

    def _check_targets(self, ys, masks, weights, who) -> None:
        """Run each loss and metric on a dummy prediction, so that bad targets
        (label range, shape) or a metric that does not suit a task (accuracy on
        a regression) fail before training rather than in some later batch (as
        Sequential)."""
        for out, task in zip(self.outputs, self.output_names):
            try:
                check_targets(self.loss[task], self.metrics[task], out.shape, self.dtype,
                              ys[task], weights[task], masks[task])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{who}, task {task!r}: {exc}") from None

    # ------------------------------------------------------------------ step
    def _task_losses(self, outs, y, masks, idx=None, weights=None, need_grads=True):
        """Loss value and output gradient of every task (masked, weighted by
        ``weights``; None without ``need_grads``), and what each task's batch
        counts for (:class:`_TaskTallies`).

        One loss object may serve several tasks (``compile(loss=CrossEntropy())``
        keeps the instance for every task with a plain output): each task's
        ``backward`` and the per-forward state its tallies read (the loss's
        ``weight_total``) are taken right after that task's ``forward``, before
        the next task's overwrites them."""
        values, grads, tallies = np.zeros(len(outs)), [], _TaskTallies()
        for i, (task, out) in enumerate(zip(self.output_names, outs)):
            target = y[task] if idx is None else y[task][idx]
            mask = masks[task]
            if mask is not None and idx is not None:
                mask = mask[idx]
            weight = None if weights is None else weights[task]
            if weight is not None and idx is not None:
                weight = weight[idx]
            loss = self.loss[task]
            values[i] = loss.forward(out, target, sample_weight=weight, mask=mask)
            grads.append(loss.backward() if need_grads else None)
            tallies.add(loss, len(out) if mask is None else int(mask.sum()))
        return values, grads, tallies

    def _task_metrics(self, outs, y, masks, idx=None, states=None) -> dict:
        """``{"<task>/<metric>": value}`` on the labelled samples of ``outs``;
        with ``states`` (one :class:`~tinynet.metrics.MetricStates` per task,
        fit's epoch accumulators) the batch is added to them and the values
        are those of the task's labelled samples of the epoch so far,
        deferred (:meth:`~tinynet.metrics.MetricStates.batch_logs`: computed
        only if read, as ``Sequential.fit``'s). A task without a labelled
        sample here (so far, with ``states``) has no metric value (not 0)."""
        logs = {}
        for i, (task, out) in enumerate(zip(self.output_names, outs)):
            if not self.metrics[task]:
                continue
            target = y[task] if idx is None else y[task][idx]
            mask = masks[task]
            if mask is not None:
                keep = mask if idx is None else mask[idx]
                out, target = out[keep], target[keep]
            if states is not None:
                states[i].add(out, target)
                logs.update(states[i].batch_logs(f"{task}/"))
            elif len(out):
                logs.update({f"{task}/{metric.name}": metric(out, target)
                             for metric in self.metrics[task]})
        return logs

    def train_step(self, xs, y, masks, idx, weights=None) -> dict:
        """One update on samples ``idx``; returns the logs of the batch (in
        ``fit``, its metrics the epoch's so far, deferred: :meth:`_task_metrics`).

        The step starts from zero gradients of every parameter of the model
        and of the weighting (:meth:`optimizer_parameters`), held by the
        optimizer or not, as :meth:`tinynet.Sequential.fit` zeroes the
        model's: the per-task gradients of :meth:`_combine_task_gradients`
        are then each task's own (as PyTorch's ``model.zero_grad();
        loss_t.backward()``) whichever parameters the optimizer holds, and
        a parameter it leaves out holds this step's gradient, not a sum over
        the steps so far."""
        outs = self.forward_all([a[idx] for a in xs], training=True)
        values, grads, tallies = self._task_losses(outs, y, masks, idx, weights)
        present = np.array(tallies.totals) > 0  # tasks with a labelled sample of weight > 0
        # not optimizer.zero_grad(): a trainable shared parameter the optimizer
        # leaves out would carry the last step's combined gradient into the
        # first task's row (GradNorm, PCGrad, MGDA read it)
        for p in self.optimizer_parameters():
            p.zero_grad()
        weights = weighting_mod.checked_result(
            self.weighting, "loss_weights",
            self.weighting.loss_weights(values, training=True, present=present), values.shape,
            finite=bool(np.isfinite(values).all()))
        scaled = [g * g.dtype.type(w) for g, w in zip(grads, weights)]
        if self.weighting.needs_task_gradients and self._trainable_shared():
            # a task whose output reads no shared parameter has no say on them
            taking_part = present & self._reaches_shared
            if self._representation is not None:
                self._combine_representation_gradients(scaled, values, taking_part)
            else:
                self._combine_task_gradients(scaled, values, taking_part)
        else:
            self.backward_all(scaled, need_dx=False)
        penalty = self.regularization()
        if self.optimizer.param_groups:  # (unbound when there are no parameters: compile)
            # max_grad_norm clips the model's gradients, not the weighting's (compile)
            self.optimizer.step(unclipped=self.weighting.parameters())
        logs = {"loss": float(values.sum())}
        if self.penalized:
            logs["penalty"] = penalty
        adaptive = self._logs_weights
        for i, task in enumerate(self.output_names):
            logs[f"{task}/loss"] = float(values[i])
            if adaptive:
                logs[f"{task}/weight"] = float(self.weighting.last_weights[i])
        logs.update(self._task_metrics(outs, y, masks, idx, self._epoch_task_metrics))
        if self._epoch_task_means is not None:
            for i, task in enumerate(self.output_names):
                keys = ["weight"] if adaptive else []
                self._epoch_task_means[i].add({k: logs[f"{task}/{k}"] for k in keys},
                                              tallies.counts[i])
                self._epoch_task_losses[i].add({"loss": logs[f"{task}/loss"]},
                                               tallies.batch_weights[i])
        return logs

    def _sums(self, task) -> bool:
        """Whether ``task``'s loss reduces to a sum (its batch values are
        averaged by labelled samples, not by the loss's total weight)."""
        return losses_mod.reduces_to_sum(self.loss[task])

    @property
    def _logs_weights(self) -> bool:
        """Whether the logs hold each task's loss weight (``"<task>/weight"``):
        for every weighting but the fixed ones."""
        return self.weighting.name not in ("equal", "static")

    def _log_keys(self, validation: bool) -> list[str]:
        """Every key :meth:`train_step` logs (``"loss"``, ``"penalty"``, and
        per task its loss, weight and metrics) and, with validation data, the
        ``val_`` keys of :meth:`evaluate`'s; ``fit`` hands them to the
        callbacks, so that a monitor of a key never logged
        (``"left/val_accuracy"`` for ``"val_left/accuracy"``) is refused
        before the first epoch."""
        def task_keys(weights):
            return [f"{t}/{name}" for t in self.output_names
                    for name in ["loss"] + (["weight"] if weights else [])
                    + [m.name for m in self.metrics[t]]]
        keys = ["loss"] + (["penalty"] if self.penalized else []) + task_keys(
            self._logs_weights)
        if validation:
            keys += [f"val_{key}" for key in ["loss"] + task_keys(False)]
        return keys

    def _combine_task_gradients(self, grads, values, present=None) -> None:
        """One backward pass per task; the weighting merges the shared gradients.

        Expects the shared parameters' gradients zero (:meth:`train_step`
        zeroes every parameter first): each task's row is read after its own
        backward pass, and they are zeroed again before the next task's.

        Cost: T backward passes through the trunk (each head once) instead of
        one, and T copies of the shared gradient, of size P.
        """
        shared = self._shared
        task_grads = np.zeros((len(grads), sum(p.size for p in shared)), dtype=shared[0].dtype)
        for i in range(len(grads)):
            only_i = [g if j == i else None for j, g in enumerate(grads)]
            self.backward_all(only_i, need_dx=False)
            task_grads[i] = _flat_grads(shared)
            for p in shared:
                p.zero_grad()
        combined = self.weighting.combine(task_grads, values, present=present)
        _set_flat_grads(shared, weighting_mod.checked_result(
            self.weighting, "combine", combined, task_grads.shape[1:]))

    def _combine_representation_gradients(self, grads, values, present=None) -> None:
        """The weighting merges the gradients of the shared representation Z
        (``rep_grad``: MGDA-UB); one backward pass through the trunk follows.

        Cost: T backward passes through the heads only (each stops at Z, each
        head's parameters get their task's gradient), one through the trunk,
        and T copies of Z's gradient (batch x features).
        """
        z = self._representation
        rows = [self.backward_to([g if j == i else None for j, g in enumerate(grads)], z)
                for i in range(len(grads))]
        task_grads = np.stack([r.ravel() for r in rows])
        combined = weighting_mod.checked_result(
            self.weighting, "combine", self.weighting.combine(task_grads, values,
                                                              present=present),
            task_grads.shape[1:])
        self.backward_from(z, np.asarray(combined, dtype=rows[0].dtype).reshape(rows[0].shape))

    # ------------------------------------------------------------------- fit
    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None,
            callbacks=None, verbose: int = 1, shuffle: bool = True, seed=None, mask=None,
            initial_epoch: int = 0, stream=None, sample_weight=None):
        r"""Train on ``x`` (an array, or a list with one array per input) and ``{task: y}``.

        Parameters
        ----------
        x : ndarray, list of ndarray or dict {input name: ndarray}
            One floating-point array per input, all with the same (positive)
            number of samples and finite values. For a model with one input,
            a list of samples (``x.tolist()``) is read as one array.
        y : dict {task: targets}
            Targets per task; a NaN target, or a negative integer class label of
            a classification loss, marks a missing one (module docstring).
        validation_data : tuple ``(x_val, y_val)``, ``(x_val, y_val, mask_val)`` or
            ``(x_val, y_val, mask_val, sample_weight_val)`` (``mask_val`` may be None)
        mask : dict {task: bool array}, optional
            Explicit labelled-sample masks, one boolean (or 0/1) per sample.
        sample_weight : array_like of shape (n_samples,), or dict {task: array_like}, optional
            Non-negative per-sample weights of the task losses, as Keras'
            multi-output ``sample_weight``: one array for every task, or one
            per task (tasks left out weigh 1). Each task's loss is the
            weighted mean over its labelled samples, :math:`\sum_i w_i m_i
            \ell_i / \sum_i w_i m_i` (module docstring); metrics stay
            unweighted.
        Other parameters as :meth:`tinynet.Sequential.fit`.

        Returns
        -------
        History
        """
        self._require_compiled("fit")
        batch_size = check_batch_size(batch_size, "fit")
        xs, ys, masks, weights = self._data(x, y, mask, "fit", sample_weight)
        self._check_targets(ys, masks, weights, "fit")
        n = xs[0].shape[0]
        validate = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2, 3, 4):
                raise ValueError("fit expected validation_data as (x_val, y_val), (x_val, "
                                 "y_val, mask_val) or (x_val, y_val, mask_val, "
                                 "sample_weight_val)")
            # Checked now, not after the first epoch.
            extra = list(validation_data[2:]) + [None] * (4 - len(validation_data))
            val = self._data(*validation_data[:2], extra[0], "fit (validation_data)", extra[1])
            self._check_targets(*val[1:], "fit (validation_data)")

            def validate():  # "sum" losses over fit's batches, as their training logs
                return self._evaluate_data(*val, max(batch_size, 256), sum_batch=batch_size)
        # layers added since compile (a head's Sequential.add) join the optimizer, as
        # Sequential.fit binds: the same rule, the weighting's group and state kept
        self._bind_optimizer(self.optimizer, self.weighting, self._compiled["weighting_lr"], ())
        self._find_shared()  # (a layer added to a shared trunk: combined as the trunk's)

        # First, so that the user's callbacks and History see its epoch means.
        callbacks = [_TaskEpochs([n if masks[t] is None else int(masks[t].sum())
                                  for t in self.output_names])] + as_callback_list(callbacks,
                                                                                  "fit")
        # the metrics are running values of the epoch so far (fit_loop logs them as they are)
        running = {f"{t}/{m.name}": None for t in self.output_names for m in self.metrics[t]}
        # Kept on the model too, as Sequential (and Keras) do.
        self.history = fit_loop(self, lambda idx: (self.train_step(xs, ys, masks, idx, weights),
                                                   running), n,
                                epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                                seed=seed, initial_epoch=initial_epoch, validate=validate,
                                callbacks=callbacks, verbose=verbose, stream=stream,
                                log_keys=self._log_keys(validate is not None))
        return self.history

    # -------------------------------------------------------- evaluate/predict
    def _predict_lists(self, xs, batch_size, progress=None) -> list[np.ndarray]:
        """Each output's predictions, ``batch_size`` samples at a time;
        ``progress`` (:class:`~tinynet.progress.PassProgress`) shows the batches."""
        n = xs[0].shape[0]
        chunks = []
        for batch, s in enumerate(range(0, n, batch_size)):
            chunks.append(self.forward_all([a[s:s + batch_size] for a in xs], training=False))
            if progress is not None:
                progress.batch_end(batch)
        return [np.concatenate([c[k] for c in chunks]) for k in range(len(self.outputs))]

    def predict(self, x, batch_size: int = 256, verbose=0, stream=None) -> dict:
        """``{task: outputs}`` in inference mode (probabilities for softmax outputs);
        ``x`` as in :meth:`fit`; ``verbose`` and ``stream`` as
        :meth:`tinynet.Sequential.predict`'s (default: silent)."""
        batch_size = check_batch_size(batch_size, "predict")
        verbose = check_verbose(verbose, "predict")
        xs = self._inputs(x, "predict")
        progress = PassProgress(verbose, n_batches(len(xs[0]), batch_size), "predict", stream)
        outs = self._predict_lists(xs, batch_size, progress)
        progress.end()
        return dict(zip(self.output_names, outs))

    def evaluate(self, x, y, mask=None, batch_size: int = 256, sample_weight=None, verbose=0,
                 stream=None) -> dict:
        """Loss and metrics of every task on labelled samples (exact means; the
        losses weighted by ``sample_weight``, the metrics not; a
        ``reduction="sum"`` loss the mean of its sums over batches of
        ``batch_size``, as ``fit`` logs it); arguments as in :meth:`fit`.
        ``verbose`` and ``stream`` as :meth:`tinynet.Sequential.evaluate`'s
        (default: silent): the batches' predictions, then the logs."""
        self._require_compiled("evaluate")
        batch_size = check_batch_size(batch_size, "evaluate")
        verbose = check_verbose(verbose, "evaluate")
        data = self._data(x, y, mask, "evaluate", sample_weight)
        self._check_targets(*data[1:], "evaluate")  # errors that name the task
        progress = PassProgress(verbose, n_batches(len(data[0][0]), batch_size), "evaluate",
                                stream)
        logs = self._evaluate_data(*data, batch_size, progress=progress)
        progress.end(logs)
        return logs

    def _evaluate_data(self, xs, ys, masks, weights, batch_size, sum_batch=None,
                       progress=None) -> dict:
        """The logs of :meth:`evaluate`: each task's loss over all its
        labelled samples, except that a ``reduction="sum"`` loss gives its
        sums over batches of ``sum_batch`` samples (default ``batch_size``)
        averaged weighted by their labelled samples, what ``fit`` logs for it
        (as :class:`tinynet.Sequential`'s evaluate and Keras do)."""
        outs = self._predict_lists(xs, batch_size, progress)
        values, _, _ = self._task_losses(outs, ys, masks, weights=weights, need_grads=False)
        if any(self._sums(task) for task in self.output_names):
            batch_sums = [RunningMeans() for _ in self.output_names]
            for idx in batch_indices(len(outs[0]), sum_batch or batch_size):
                batch_values, _, tallies = self._task_losses([o[idx] for o in outs], ys,
                                                             masks, idx, weights,
                                                             need_grads=False)
                for means, value, count in zip(batch_sums, batch_values, tallies.counts):
                    means.add({"loss": value}, count)
            for i, task in enumerate(self.output_names):
                if self._sums(task):
                    values[i] = batch_sums[i].means()["loss"]
        logs = {"loss": float(values.sum())}
        logs.update({f"{t}/loss": float(v) for t, v in zip(self.output_names, values)})
        logs.update(self._task_metrics(outs, ys, masks))
        return logs


class _TaskTallies:
    """What each task's batch counts for, recorded right after its loss's
    forward (:meth:`MultiTaskTraining._task_losses`), in task order:

    * ``counts``: its labelled samples;
    * ``totals``: its loss's denominator, the labelled samples weighted
      (:attr:`tinynet.losses.Loss.weight_total`; the count for a loss of the
      user's that does not say); 0 leaves the task out of the batch's weighting;
    * ``batch_weights``: what the epoch mean of its loss weights the batch by
      (:func:`tinynet.losses.batch_weight`).
    """

    def __init__(self):
        self.counts, self.totals, self.batch_weights = [], [], []

    def add(self, loss, count: int) -> None:
        """Record a task whose ``loss`` has just run its forward on ``count``
        labelled samples."""
        total = getattr(loss, "weight_total", None)
        self.counts.append(count)
        self.totals.append(count if total is None else total)
        self.batch_weights.append(losses_mod.batch_weight(loss, count))


class _TaskEpochs(Callback):
    """Means of each task's logs over its labelled samples, in the batch logs
    (the live progress bar) and the epoch logs alike; the weighting's input.

    ``fit_loop`` weights each batch's logs by the batch size, which would count
    a batch without labels of a task as a loss of 0 for it. Here, after every
    batch and at the epoch's end, every ``"<task>/..."`` loss (and weight)
    mean is replaced by the mean weighted by the task's labelled samples per
    batch, and ``"loss"`` by the sum of those task losses (:meth:`_exact`),
    so that what the bar shows within an epoch is the quantity the epoch
    logs record. The metrics are the step's: the values of the task's
    ``labelled`` samples of the epoch so far (the epoch's accumulators,
    :class:`~tinynet.metrics.MetricStates`, started here), running values
    within the epoch and the exact ones at its last batch, deferred as
    ``Sequential.fit``'s, so computed after a batch only if a callback reads
    them (this one does not); the epoch logs get the exact ones here. At the
    epoch's end the task losses also go to the weighting (DWA needs them;
    NaN for a task without a labelled sample in the epoch, possible only if
    it stopped early).
    """

    def __init__(self, labelled: list):
        super().__init__()
        self.labelled = labelled  # each task's labelled samples of an epoch

    def reads_batch_metrics(self) -> bool:
        # (its batch hook rewrites the losses, not the metrics)
        return self._batch_hooks_beyond(_TaskEpochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model._epoch_task_means = [RunningMeans() for _ in self.model.output_names]
        self.model._epoch_task_losses = [RunningMeans() for _ in self.model.output_names]
        self.model._epoch_task_metrics = [metrics_mod.MetricStates(self.model.metrics[t], count)
                                          for t, count in zip(self.model.output_names,
                                                              self.labelled)]

    def _exact(self, logs, epoch_end: bool = False) -> np.ndarray:
        """Rewrite ``logs`` in place (see the class docstring); return the task
        losses. A task without a labelled sample so far has no mean: within an
        epoch its keys are left out (fit_loop's would read 0), so the bar
        shows none for it; at the ``epoch_end`` of an epoch stopped before its
        first label they are NaN, so that the epoch logs and History hold
        every key :meth:`MultiTaskTraining._log_keys` announces in every
        epoch, as they do for a task that has labels."""
        model = self.model
        task_losses = np.full(len(model.output_names), np.nan)
        for i, (task, means, losses, states) in enumerate(zip(
                model.output_names, model._epoch_task_means or (),
                model._epoch_task_losses or (), model._epoch_task_metrics or ())):
            # (the metrics within an epoch: the step's logs, computed if read)
            task_means = {**losses.means(), **means.means(),
                          **(states.results() if epoch_end else {})}
            missing = ["loss", "weight"] + [m.name for m in model.metrics[task]] \
                if not means.count else [] if losses.count else ["loss"]
            for name in missing:  # no labelled sample so far (of weight > 0, for the loss)
                logs.pop(f"{task}/{name}", None)
                if epoch_end and (name != "weight" or model._logs_weights):
                    logs[f"{task}/{name}"] = float("nan")
            for key, value in task_means.items():
                logs[f"{task}/{key}"] = value
            task_losses[i] = task_means.get("loss", np.nan)
        if np.isfinite(task_losses).all():
            logs["loss"] = float(task_losses.sum())
        return task_losses

    def on_batch_end(self, batch, logs=None):
        if logs is not None:
            self._exact(logs)

    def on_epoch_end(self, epoch, logs=None):
        task_losses = self._exact({} if logs is None else logs, epoch_end=True)
        self.model._epoch_task_means = self.model._epoch_task_losses = None
        self.model._epoch_task_metrics = None
        self.model.weighting.on_epoch_end(task_losses)

    def on_train_end(self, logs=None):
        self.model._epoch_task_means = self.model._epoch_task_losses = None
        self.model._epoch_task_metrics = None
