"""What every gradient-based meta-learner shares: the meta-training loop
(sample a meta-batch, compute the meta-gradient, one step of the meta-
optimizer), task-batched adaptation by SGD, and evaluation with 95%
confidence intervals.

A subclass states only its meta-gradient (:meth:`MetaLearner._meta_gradient`)
and, where it differs, its inner learning rate (:meth:`MetaLearner._inner_lr`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time

import numpy as np

from .. import _userwarn
from ..checks import (as_array, as_float_array, check_finite, check_labels,
                      check_non_negative_int, check_positive_int, check_seed)
from ..layers._checks import check_real
from ..metrics import _class_hits
from ..param import Param
from .functional import FunctionalMLP, loss_name
from .tasks import TaskBatch, check_not_empty, check_targets

__all__ = ["MetaLearner", "summarize"]


def quiet_float_warnings():
    """``np.errstate`` with NumPy's ``"warn"`` modes turned to ``"ignore"``
    and any mode the user set kept (``raise``, ``call``, ``log``, ``print``,
    ``ignore``), for the blocks whose divergence the learner reports itself
    (``evaluate``'s ``n_diverged``, ``adapt``'s and ``meta_fit``'s warnings):
    NumPy's "overflow encountered in matmul" from the inner loop only said
    the same again, less clearly."""
    return np.errstate(**{kind: "ignore" if mode == "warn" else mode
                          for kind, mode in np.geterr().items()})


def summarize(values) -> tuple[float, float]:
    """Mean and half-width of the normal 95% confidence interval of the mean
    (NaN for a single value) of at least one real number."""
    values = check_targets(np.atleast_1d(as_array(values, "summarize", "values")),
                           "summarize", "values")
    if values.size == 0:
        raise ValueError(f"summarize expected at least one value, received shape "
                         f"{values.shape}")
    values = values.astype(np.float64)
    if values.size < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(values.size))


def accuracy(logits, labels) -> np.ndarray:
    """Per-task fraction of queries whose largest logit is their label's;
    logits (tasks, q, classes), labels (tasks, q). The metric ``"accuracy"``
    counts a query with a NaN logit as wrong (argmax reads a NaN row as
    class 0, so a diverged inner loop was scored as guessing class 0); this
    one counts a query with an infinite logit as wrong too, where the metric
    ranks ``inf`` and ``-inf`` as scores: these logits are infinite only by
    overflow (ProtoNet's distances), never as a mask
    (``tinynet.metrics._class_hits`` with ``finite_only=True``)."""
    return _class_hits(logits, labels, finite_only=True).mean(axis=1)


def check_task_batch(batch: TaskBatch, who: str) -> TaskBatch:
    """Refuse a task batch with NaN or infinite inputs or float targets: one
    such value turns the meta-gradient, and so every meta-parameter, into NaN;
    targets that are not real numbers (see :func:`~.tasks.check_targets`);
    and one without tasks or with empty support or query sets (see
    :func:`~.tasks.check_not_empty`). (Checked where a batch is used, since
    its arrays can change after it is made; a sampler's ``sample`` must
    return a TaskBatch.)"""
    if not isinstance(batch, TaskBatch):
        raise TypeError(f"{who} expected the sampler to return a TaskBatch, received "
                        f"{type(batch).__name__}")
    check_not_empty(batch, who)
    for what in ("support_x", "support_y", "query_x", "query_y"):
        values = getattr(batch, what)
        if what.endswith("_y"):
            check_targets(values, who, what)
        if np.issubdtype(values.dtype, np.floating):
            check_finite(values, who, what)
    return batch


def _check_steps(steps, who, what: str = "steps"):
    return check_non_negative_int(steps, who, what)


def _check_step_counts(steps, who) -> list[int]:
    """``evaluate``'s ``steps``: one number of inner steps or a non-empty
    sequence of them, as a sorted list without repeats. Anything that is
    not a sequence (None, a 0-d array, a string) is read as one number and
    so refused unless it is one."""
    try:
        counts = [steps] if isinstance(steps, str) else list(steps)
    except TypeError:
        counts = [steps]
    counts = sorted({_check_steps(s, who) for s in counts})
    if not counts:
        raise ValueError(f"{who} expected at least one number of steps, received none")
    return counts


class MetaLearner:
    """Base class of the gradient-based meta-learners.

    Parameters
    ----------
    model : Sequential (or list of layers) of Dense layers and activations
        The network whose initial weights are meta-learned; its Params are
        the meta-parameters and are updated in place by :meth:`meta_fit`.
        Those of a frozen layer (``trainable=False``) are not meta-trained
        (the meta-optimizer skips them, as every tinynet optimizer does),
        but the inner loop still adapts them on each task, in
        :meth:`meta_fit` and :meth:`adapt` alike; to keep layers fixed in
        the inner loop, use :class:`~tinynet.meta.ANIL` (``head_layers``).
        Its first Dense layer must be built (``input_dim=``); the layers after it
        are built from it, a list's too (:class:`~tinynet.meta.FunctionalMLP`).
    loss : "mse" or "cross_entropy"
        (any case, ``-`` for ``_``; kept as the registered name)
    inner_lr : float
        Learning rate of the inner (task adaptation) SGD steps: a finite
        real number >= 0 (a NumPy scalar is fine). Read at every use, so
        setting ``inner_lr`` later takes effect (Meta-SGD: only the initial
        value of its learned rates).
    inner_steps : int
        Inner steps during meta-training.
    meta_lr : float
        Learning rate of the meta-optimizer: a finite real number > 0.
    meta_optimizer : str or callable, default "adam"
        A name for :func:`tinynet.optim.get` or ``factory(params) -> optimizer``.
        Set to another one later, it replaces the meta-optimizer (with fresh
        state) at its next use.

    Attributes
    ----------
    model
        The model given; may be set to another one later (see ``net``).
    net : FunctionalMLP
        The functional view of ``model``, which follows it: after
        ``model.reset_parameters``, ``pop`` or ``add``, or ``model`` set to
        another, the next use builds it again on the model's current
        parameters (:meth:`_follow_model`). Read-only: to change the
        network, set ``learner.model``.
    history : list of float
        Mean query loss of each meta-training iteration.
    """

    def __init__(self, model, loss="mse", inner_lr=0.01, inner_steps=1, meta_lr=1e-3,
                 meta_optimizer="adam"):
        self.model = model
        self._net = FunctionalMLP(model)
        self.loss = loss
        self._optimizer = None
        self.meta_optimizer = meta_optimizer
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.meta_lr = meta_lr
        self._lr_mask = None  # (P,) 0/1: which parameters the inner SGD adapts
        self.history: list[float] = []

    # ------------------------------------------------------- hyper-parameters
    # Properties, so that a value set after construction is checked as the
    # constructor checks it, and a new meta_lr reaches the meta-optimizer.
    #: The fewest inner steps the algorithm learns anything with (Reptile: 1).
    _min_inner_steps = 0

    @property
    def loss(self) -> str:
        """The loss's registered name, "mse" or "cross_entropy": a name in
        another case or with ``-``, given or set later, is stored as the
        registered one, which every check and loss look-up compares with."""
        return self._loss_value

    @loss.setter
    def loss(self, value) -> None:
        self._loss_value = loss_name(value)

    @property
    def inner_lr(self) -> float:
        """Step size of the inner SGD, finite and >= 0; read at every use."""
        return self._inner_lr_value

    @inner_lr.setter
    def inner_lr(self, value) -> None:
        self._inner_lr_value = check_real(value, type(self).__name__, "inner_lr", low=0.0,
                                          high_open=True)

    @property
    def inner_steps(self) -> int:
        """Inner SGD steps per task in meta-training (and ``adapt``'s default)."""
        return self._inner_steps_value

    @inner_steps.setter
    def inner_steps(self, value) -> None:
        who = type(self).__name__
        steps = _check_steps(value, who, "inner_steps")
        if steps < self._min_inner_steps:
            raise ValueError(f"{who} expected inner_steps >= {self._min_inner_steps} (with "
                             f"{steps} the adapted weights are the initial ones and the "
                             f"meta-gradient is zero), received {steps}")
        self._inner_steps_value = steps

    @property
    def meta_optimizer(self):
        """The meta-optimizer's name (for :func:`tinynet.optim.get`) or a
        ``factory(params) -> optimizer``, checked when set. Another value
        than the current one drops the optimizer made from the old one, so
        the next :meth:`meta_fit` steps with the new one (and ``save``
        writes the state of the optimizer it names)."""
        return self._meta_optimizer_value

    @meta_optimizer.setter
    def meta_optimizer(self, value) -> None:
        from .. import optim
        from ..checks import lookup

        who = f"{type(self).__name__} expected meta_optimizer as"
        kind = value  # what the optimizer is made from: a factory, or the named class
        if not callable(value):
            if not isinstance(value, str):
                raise TypeError(f"{who} an optimizer name ({', '.join(optim.OPTIMIZERS)}) or "
                                f"a callable factory(params) -> optimizer, received "
                                f"{value!r} of type {type(value).__name__}"[:300])
            try:
                kind = lookup(optim.OPTIMIZERS, value, "optimizer")
            except ValueError as exc:
                raise ValueError(f"{who} an optimizer name: {exc}") from None
        if self._optimizer is not None and kind is not self._meta_optimizer_kind:
            self._optimizer = None  # "Adam" for "adam" keeps it, and its state
        self._meta_optimizer_value, self._meta_optimizer_kind = value, kind

    @property
    def meta_lr(self) -> float:
        """Learning rate of the meta-optimizer named by ``meta_optimizer``
        (finite, > 0). Set after meta-training has started, it sets the
        optimizer's rate too (``optimizer.lr``), as a Keras user sets
        ``model.optimizer.learning_rate``. An optimizer of your own (a
        callable ``meta_optimizer``) takes its rate from you, not from here."""
        return self._meta_lr_value

    @meta_lr.setter
    def meta_lr(self, value) -> None:
        self._meta_lr_value = check_real(value, type(self).__name__, "meta_lr", low=0.0,
                                         low_open=True, high_open=True)
        if self._optimizer is not None and not callable(self.meta_optimizer):
            self._optimizer.lr = self._meta_lr_value

    # ------------------------------------------------------ following model
    @property
    def net(self) -> FunctionalMLP:
        """The functional view of ``model`` on its current parameters
        (read-only: set ``learner.model`` to change the network)."""
        self._follow_model()
        return self._net

    @net.setter
    def net(self, value) -> None:
        raise AttributeError(f"{type(self).__name__}.net is a read-only view that follows "
                             f"learner.model; set learner.model to change the network")

    def _follow_model(self) -> None:
        """Build the functional view again if ``model`` no longer holds the
        Params it was built from: ``model`` set to another, its layers
        changed (``pop``, ``add``) or its Params replaced
        (``reset_parameters``, documented for reproducible weights). The
        view kept the old Params, so ``meta_fit`` trained Params the model
        no longer held and ``save`` wrote the untrained model.

        What depends on the Params follows them: the meta-optimizer is
        bound again by the rule ``Sequential`` binds its own optimizer by
        after such a change (:func:`tinynet.optim.binding._bind_again`: a
        Param that stays keeps its state -- Adam's moments and step count
        --, a new one starts without), Meta-SGD's learned rates likewise
        (:meth:`_params_replaced`), and the mask of the adapted parameters
        (:meth:`_follow_mask`). A meta-optimizer of a factory of your own
        that is not a tinynet optimizer (no ``bind``) is made again from
        the factory at its next use. A change the view cannot follow (a
        layer it does not support) raises, naming the change, and leaves
        the learner as it was."""
        if self._model_pinned:
            return
        old = self._net
        change = "model was set to another" if self.model is not old.model else old.change()
        if change is None:
            return
        if self.model is old.model:
            change = f"model changed: {change}"
        who = type(self).__name__
        try:
            net = FunctionalMLP(self.model)
            mask = self._follow_mask(net, old)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{who}: its {change}, and it cannot follow: {exc}") from None
        self._net, self._lr_mask = net, mask
        self._params_replaced(old.param_list())
        if self._optimizer is not None:
            if hasattr(self._optimizer, "bind"):
                from ..optim.binding import _bind_again
                _bind_again(self._optimizer, self.meta_parameters())
            else:
                self._optimizer = None

    #: True inside :meth:`_model_followed`: the view is not checked again.
    _model_pinned = False

    @contextlib.contextmanager
    def _model_followed(self):
        """Follow the model once (:meth:`_follow_model`), then use the view
        as it is until the block ends: a meta_fit iteration, adapt or
        evaluate, in which nothing changes the model, read ``net`` several
        times and checked the model's Params again at each read."""
        self._follow_model()
        pinned, self._model_pinned = self._model_pinned, True
        try:
            yield
        finally:
            self._model_pinned = pinned

    def _follow_mask(self, net: FunctionalMLP, old: FunctionalMLP):
        """The mask of the adapted parameters for ``net``, the view built
        again: kept while the parameters keep their shapes (one mask entry
        per value, as before); refused for other shapes (the mask, set by
        ``new_head`` or loaded, says nothing of the new parameters)."""
        shapes = [[shape for _, shape, _ in view.shapes] for view in (old, net)]
        if self._lr_mask is None or shapes[0] == shapes[1]:
            return self._lr_mask
        raise ValueError(f"it adapts only some of its parameters (a mask over those of "
                         f"shapes {shapes[0]}), which says nothing of parameters of shapes "
                         f"{shapes[1]}")

    def _params_replaced(self, old_params) -> None:
        """Hook: the view was built again; ``old_params`` are the ones it held."""

    # ---------------------------------------------------------------- saving
    def save(self, path, metadata: dict | None = None, include_optimizer: bool = True) -> str:
        """Write the learner (model, settings, learned rates, meta-optimizer
        state unless ``include_optimizer=False``, history) to one file,
        atomically; :func:`tinynet.meta.load` gives it back. See
        :mod:`tinynet.meta.saving`."""
        from .saving import save
        return save(self, path, metadata=metadata, include_optimizer=include_optimizer)

    # ------------------------------------------------------- meta-parameters
    def meta_parameters(self) -> list[Param]:
        """The Params the meta-optimizer updates (the model's, in flat order)."""
        return self.net.param_list()

    def _meta_vector(self) -> np.ndarray:
        return np.concatenate([p.value.ravel() for p in self.meta_parameters()])

    def _meta_split(self, flat):
        """``(param, its part of flat)`` for each of :meth:`meta_parameters`:
        ``flat`` (as :meth:`_meta_vector` lays them out) cut and reshaped."""
        offset = 0
        for p in self.meta_parameters():
            yield p, flat[offset:offset + p.size].reshape(p.shape)
            offset += p.size

    def _set_meta_grad(self, grad) -> None:
        for p, part in self._meta_split(grad):
            p.grad = part

    @property
    def optimizer(self):
        """The meta-optimizer (created on first use, kept across meta_fit
        calls until ``meta_optimizer`` is set to another one), bound to the
        model's current parameters (:meth:`_follow_model`)."""
        self._follow_model()
        if self._optimizer is None:
            params = self.meta_parameters()
            if callable(self.meta_optimizer):
                self._optimizer = self.meta_optimizer(params)
            else:
                from .. import optim
                self._optimizer = optim.get(self.meta_optimizer, params, lr=self.meta_lr)
        return self._optimizer

    # ------------------------------------------------------------- training
    def _inner_lr(self):
        """Scalar or per-parameter (P,) learning rate of the inner SGD:
        ``inner_lr``, times the 0/1 mask of the adapted parameters where only
        some are (ANIL, a new head). Read at every use, so a changed
        ``inner_lr`` takes effect."""
        return self.inner_lr if self._lr_mask is None else self.inner_lr * self._lr_mask

    def _meta_gradient(self, batch: TaskBatch):
        """Mean query loss of the batch and the gradient of it with respect
        to the flat meta-parameter vector."""
        raise NotImplementedError

    def meta_gradient(self, batch: TaskBatch):
        """``(mean query loss, flat meta-gradient)`` for one meta-batch,
        without changing any parameter (what :meth:`meta_fit` steps on)."""
        if not isinstance(batch, TaskBatch):
            raise TypeError(f"{type(self).__name__}.meta_gradient expected a TaskBatch, "
                            f"received {type(batch).__name__}")
        return self._meta_gradient(check_task_batch(batch, f"{type(self).__name__}"
                                                            f".meta_gradient"))

    def meta_fit(self, tasks, iterations: int, meta_batch_size: int = 25, seed=None,
                 verbose: int = 0, log_every: int = 500):
        """Meta-train: ``iterations`` meta-batches of ``meta_batch_size`` tasks.

        Parameters
        ----------
        tasks : sampler with ``sample(n, rng)`` (SinusoidTasks,
            EpisodeSampler) or a TaskBatch pool
        iterations, meta_batch_size : int
        seed : int, optional
            Seeds the task draws (else the sampler's own generator is used).
        verbose : 0 or 1
            1 prints the mean meta-loss every ``log_every`` iterations.

        Returns
        -------
        history : list of float (mean query loss per iteration, all calls)

        A meta-loss or meta-gradient that is NaN or infinite (an inner SGD
        that diverged, say) stops training with a ``RuntimeWarning`` before
        its update, so the meta-parameters keep their last finite values;
        its loss is the last entry of the history (NumPy's overflow warnings
        on the way are not repeated: :func:`quiet_float_warnings`). An update
        that makes a meta-parameter non-finite itself (a finite gradient
        times a huge ``meta_lr``) is undone and stops training the same way, the
        meta-optimizer's state (its step count, Adam's moments) included: a
        later ``meta_fit`` or a saved learner goes on from the last finite
        update.
        """
        iterations = check_positive_int(iterations, "meta_fit", "iterations")
        meta_batch_size = check_positive_int(meta_batch_size, "meta_fit", "meta_batch_size")
        log_every = check_positive_int(log_every, "meta_fit", "log_every")
        if verbose not in (0, 1):  # as model.fit checks its verbose
            raise ValueError(f"meta_fit expected verbose 0 or 1, received {verbose!r}")
        seed = check_seed(seed, "meta_fit")
        if not hasattr(tasks, "sample"):
            raise TypeError(f"meta_fit expected a task sampler with .sample(n, rng) or a "
                            f"TaskBatch, received {type(tasks).__name__}")
        rng = None if seed is None else np.random.default_rng(seed)
        opt = self.optimizer
        start = time.perf_counter()
        for it in range(iterations):
            batch = check_task_batch(tasks.sample(meta_batch_size, rng),
                                     f"{type(self).__name__}.meta_fit")
            with self._model_followed():
                with quiet_float_warnings():
                    loss, grad = self._meta_gradient(batch)
                if self._diverged(loss, grad, f"iteration {it + 1}/{iterations}", "meta_fit"):
                    break
                self._set_meta_grad(grad)
                self.history.append(float(loss))
                if self._step_overflowed(opt, f"iteration {it + 1}/{iterations}", "meta_fit"):
                    break
            if verbose and (it + 1) % log_every == 0:
                recent = np.mean(self.history[-log_every:])
                print(f"{type(self).__name__} iteration {it + 1}/{iterations}: meta-loss "
                      f"{recent:.4f} ({time.perf_counter() - start:.1f} s)")
        return self.history

    def _diverged(self, loss, grad, where: str, who: str) -> bool:
        """True, after a RuntimeWarning and recording ``loss``, if the loss or
        the gradient is not finite: one such update would write NaN into
        every meta-parameter (the user's model), and every later one too."""
        if math.isfinite(loss) and np.isfinite(grad).all():
            return False
        self.history.append(float(loss))
        what = "meta-loss" if not math.isfinite(loss) else "meta-gradient"
        _userwarn.warn(f"{type(self).__name__}.{who}: the {what} became non-finite at {where} "
                       f"(loss {loss}); training stopped before that update, so the "
                       f"parameters keep their last finite values (try a lower inner_lr or "
                       f"meta_lr)", RuntimeWarning)
        return True

    def _step_overflowed(self, opt, where: str, who: str) -> bool:
        """``opt.step()``; if it made a meta-parameter NaN or infinite, undo
        it -- the values and the optimizer's state (step counts, moments),
        so that the undone step leaves no trace --, warn and return True, so
        that the user's model keeps its last finite weights. A home-made
        optimizer from a ``meta_optimizer`` factory that has only ``step()``
        (no ``state_dict``/``load_state_dict``) gets its values put back but
        keeps whatever state its step changed."""
        before = self._meta_vector()  # a copy, in one piece: cheap next to the step
        restorable = hasattr(opt, "state_dict") and hasattr(opt, "load_state_dict")
        state = opt.state_dict() if restorable else None  # copies the moments too
        opt.step()
        if np.isfinite(self._meta_vector()).all():
            return False
        for p, part in self._meta_split(before):
            p.value[...] = part
        if restorable:
            opt.load_state_dict(state)
        _userwarn.warn(f"{type(self).__name__}.{who}: the update of {where} made meta-"
                       f"parameters non-finite (meta_lr {self.meta_lr:g}); it was undone and "
                       f"training stopped, so the parameters keep their last finite values "
                       f"(try a lower meta_lr)", RuntimeWarning)
        return True

    # ----------------------------------------------------------- adaptation
    def _adapt_theta(self, theta0, x, y, steps):
        """Task-batched SGD from ``theta0``: returns (tasks, P) after ``steps``."""
        net = self.net  # (first: it follows the model, and the rates with it)
        lr = self._inner_lr()
        theta = np.broadcast_to(theta0, (len(x), net.n_params))
        for _ in range(steps):
            theta = theta - lr * net._value_and_grad(theta, x, y, self.loss).grad
        return theta

    def _n_classes(self, labels) -> int:
        """How many classes the labels of a support set may name."""
        return self.net.output_dim

    def _prepare_task(self, support_x, support_y):
        """One support set as a batch of one task, checked: finite inputs
        (and float targets), at least one example, one target per example,
        and for classification integer labels in ``[0, n_classes)``."""
        who = f"{type(self).__name__}.adapt"
        x = as_float_array(support_x, who, "support_x")
        if x.ndim != 2 or x.shape[1] != self.net.input_dim:
            raise ValueError(f"{who} expected support_x of shape "
                             f"(k, {self.net.input_dim}), received {x.shape}")
        if len(x) == 0:
            raise ValueError(f"{who} expected at least one support example, received "
                             f"support_x of shape {x.shape}")
        check_finite(x, who, "support_x")
        y = check_targets(support_y, who, "support_y")
        if self.loss == "cross_entropy":
            y = check_labels(y, self._n_classes(y), len(x), who)
        else:
            if len(y) != len(x):
                raise ValueError(f"{who} expected {len(x)} targets (one per support "
                                 f"example), received support_y of shape {y.shape}")
            if np.issubdtype(y.dtype, np.floating):
                check_finite(y, who, "support_y")
            if y.ndim == 1:
                y = y[:, None]
        return x[None], y[None]

    def adapt(self, support_x, support_y, steps: int | None = None):
        """A copy of the model adapted to one task by ``steps`` inner SGD
        steps on its support set (default: ``inner_steps``); the meta-learned
        model itself is not changed.

        Parameters
        ----------
        support_x : ndarray of shape (k, features)
        support_y : ndarray of shape (k, outputs) or (k,) (targets or labels)
        """
        steps = self.inner_steps if steps is None else _check_steps(steps, "adapt")
        with self._model_followed():
            x, y = self._prepare_task(support_x, support_y)
            with quiet_float_warnings():  # a divergence is warned of just below
                theta = self._adapt_theta(self._initial_theta(), x, y, steps)[0]
            dtype = self.net.dtype
        if not np.all(np.isfinite(theta)):
            # the copy is still returned (the caller may want to look at it), but
            # not silently: predictions of it are NaN
            _userwarn.warn(f"{type(self).__name__}.adapt: the inner SGD diverged on this "
                           f"support set ({steps} steps at inner_lr={self.inner_lr:g}): the "
                           f"adapted weights are not finite (lower inner_lr or steps)",
                           RuntimeWarning)
        clone = copy.deepcopy(self.model)
        FunctionalMLP(clone).set_params(np.ascontiguousarray(theta, dtype=dtype))
        return clone

    def _initial_theta(self):
        return self.net.get_params()

    def evaluate(self, tasks, steps=(1, 10), n_tasks: int | None = None, chunk: int = 200,
                 seed=None) -> dict:
        """Query loss (and accuracy for classification) after adapting to
        each task's support set, for each number of inner steps.

        Parameters
        ----------
        tasks : TaskBatch (every task of it), or a sampler together with
            ``n_tasks``
        steps : int or sequence of int
        n_tasks : int
            How many tasks to draw from a sampler.
        chunk : int
            Tasks adapted at once (bounds memory).
        seed : int, optional
            Seeds the draw from a sampler (else the sampler's own generator
            is used, so two calls see different tasks).

        Returns
        -------
        dict
            ``{"n_tasks": n, "steps": {s: {"loss": mean, "loss_ci95": half-width,
            "accuracy": ..., "accuracy_ci95": ...}}}`` (accuracy for
            cross-entropy only). If the inner SGD diverged on some tasks the
            mean is not finite; the entry then also holds ``n_diverged`` and
            ``loss_finite`` (± ``loss_finite_ci95``) over the other tasks. A
            query with a non-finite logit counts as misclassified. NumPy's
            overflow warnings of the diverging tasks are not repeated
            (:func:`quiet_float_warnings`).
        """
        batch = self._task_batch(tasks, n_tasks, seed)
        chunk = check_positive_int(chunk, "evaluate", "chunk")
        steps = _check_step_counts(steps, "evaluate")
        per_step = {s: {"loss": [], "accuracy": []} for s in steps}
        # a divergence is reported as n_diverged
        with self._model_followed(), quiet_float_warnings():
            theta0 = self._initial_theta()
            for start in range(0, len(batch), chunk):
                part = batch[slice(start, start + chunk)]
                theta, done = np.broadcast_to(theta0, (len(part), theta0.size)), 0
                for s in steps:
                    theta = self._adapt_theta(theta, part.support_x, part.support_y, s - done)
                    done = s
                    self._score(theta, part, per_step[s])
        return self._summary(len(batch), per_step)

    def _task_batch(self, tasks, n_tasks, seed):
        who = f"{type(self).__name__}.evaluate"
        if isinstance(tasks, TaskBatch):
            if n_tasks is not None:  # was ignored: every task of the batch was evaluated
                raise TypeError(f"{who} takes n_tasks= with a sampler only; received a "
                                f"TaskBatch of {len(tasks)} tasks and n_tasks={n_tasks!r} "
                                f"(evaluate batch[:n] for its first n tasks)")
            return check_task_batch(tasks, who)
        if n_tasks is None or not hasattr(tasks, "sample"):
            raise TypeError(f"evaluate expected a TaskBatch, or a sampler with n_tasks=, "
                            f"received {type(tasks).__name__} with n_tasks={n_tasks!r}")
        seed = check_seed(seed, who)
        return check_task_batch(
            tasks.sample(n_tasks, None if seed is None else np.random.default_rng(seed)), who)

    def _query_loss(self, theta, batch):
        """Outputs (tasks, q, out) at ``theta`` on the query sets and the
        per-task query loss, the targets checked as ``value_and_grad`` checks
        them (so (tasks, q) regression targets are read as (tasks, q, 1))."""
        from .functional import LOSSES
        out = self.net.forward(theta, batch.query_x)
        y = self.net._check_target(batch.query_y, out.shape, self.loss)
        return out, LOSSES[self.loss](out, y)[0]

    def _score(self, theta, part, into):
        out, loss = self._query_loss(theta, part)
        into["loss"].append(loss)
        if self.loss == "cross_entropy":
            into["accuracy"].append(accuracy(out, part.query_y))

    @staticmethod
    def _summary(n_tasks, per_step):
        result = {"n_tasks": n_tasks, "steps": {}}
        for s, lists in per_step.items():
            entry = {}
            for key, parts in lists.items():
                if parts:
                    values = np.concatenate(parts)
                    finite = np.isfinite(values)
                    entry[key], entry[key + "_ci95"] = summarize(values)
                    if key == "loss" and not finite.all():
                        # inner SGD blew up on some tasks: say how many, and
                        # what the others reached
                        entry["n_diverged"] = int((~finite).sum())
                        if finite.any():
                            entry["loss_finite"], entry["loss_finite_ci95"] = summarize(
                                values[finite])
            result["steps"][s] = entry
        return result

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(loss={self.loss!r}, inner_lr={self.inner_lr}, "
                f"inner_steps={self.inner_steps}, meta_lr={self.meta_lr})")
