"""Callbacks: code the training loop calls at fixed points of training.

A callback subclasses :class:`Callback` and overrides any of

=====================================  ======================================
hook                                   called
=====================================  ======================================
``on_train_begin(logs)``               once, before the first epoch
``on_epoch_begin(epoch, logs)``        before each epoch (``epoch`` from 0)
``on_train_batch_begin(batch, logs)``  before each mini-batch
``on_train_batch_end(batch, logs)``    after each mini-batch's update
``on_epoch_end(epoch, logs)``          after each epoch and its validation
``on_train_end(logs)``                 once, at the end (also after a stop),
                                       with the last epoch's logs (None
                                       if no epoch ran)
=====================================  ======================================

As in Keras 3, ``on_batch_begin``/``on_batch_end`` are the older names of the
batch hooks: the base class's ``on_train_batch_*`` call them, so a callback
may override either name (overriding ``on_train_batch_end`` replaces the
call to ``on_batch_end``). So may a :class:`CallbackList` subclass: the
list's ``on_batch_*`` are its loops over its callbacks, which its
``on_train_batch_*`` reach the same way.

``logs`` is a dict of floats named as in Keras: ``"loss"``, ``"accuracy"``,
and for the validation data ``"val_loss"``, ``"val_accuracy"``. In the batch
hooks they are the running means over the epoch so far; in
``on_epoch_end`` the means over the whole epoch. The metrics' running values
in the batch logs are computed only when some callback reads them
(:meth:`Callback.reads_batch_metrics`: by default one that overrides a
batch-end hook, which gets them after every batch; or, on the batches it
says, one that reads them now and then,
:meth:`Callback.reads_batch_metrics_at`: the live progress bar, on the
batches it draws, and :class:`ModelCheckpoint` with an integer ``save_freq``,
on the batches it saves after); else the batch logs hold the loss alone. ``self.model`` is the model
being trained and ``self.params`` holds ``epochs``, ``steps`` (batches per
epoch), ``batch_size``, ``n_samples``, ``verbose``, ``do_validation``,
``lines`` (:class:`CallbackLines`: where a callback's lines go, fit's
stream, after the progress bar's epoch line) and,
when the trainer knows them (``Sequential.fit`` does), ``metrics``: every key
the epoch logs will hold when this callback's ``on_epoch_end`` sees them, so
that a callback monitoring a key that will never be logged
(``monitor="val_acc"`` for ``"val_accuracy"``) is refused before the first
epoch, not after it; with them, ``batch_metrics``: the keys of the batch
logs (the step's, without ``val_`` keys or added ones). A callback that adds
keys to the epoch logs (``"lr"``) names them in its class attribute
``added_log_keys``; the hooks run in the order of the list, so those keys
reach only the callbacks after it (and ``History``, which comes last).

A callback stops training by setting ``model.stop_training = True`` and may
say why in ``model.stop_reason``; the loop finishes the current batch (or
epoch, from an epoch hook), calls ``on_train_end`` and records the reason in
:attr:`History.stop_reason`.

:class:`History` and :class:`TerminateOnNaN` are added by ``fit`` itself.
"""

from __future__ import annotations

import functools
import math
import os
import sys

import numpy as np

from . import _userwarn
from .atomic import check_target
from .checks import check_bool, check_non_negative_int, check_verbose, did_you_mean
from .layers._checks import check_real


__all__ = ["Callback", "CallbackList", "CallbackLines", "as_callback_list", "History",
           "TerminateOnNaN",
           "CALLBACK_LOG_KEYS",
           "EarlyStopping",
           "ModelCheckpoint", "LearningRateScheduler", "ReduceLROnPlateau"]


#: The keys tinynet's own callbacks add to the epoch logs (their
#: ``added_log_keys``) and what each holds: ``Sequential.compile`` refuses a
#: metric named like one, which the callback would overwrite in the logs.
CALLBACK_LOG_KEYS = {
    "lr": "the learning rate, logged by LearningRateScheduler and ReduceLROnPlateau",
    "l2sp_penalty": "the L2-SP penalty, logged by tinynet.transfer.L2SPLogger (fine_tune "
                    "with l2sp=)",
}


class Callback:
    """Base class; every hook does nothing."""

    #: Keys this callback adds to the epoch logs (see the module docstring).
    added_log_keys: tuple = ()

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_batch_begin(self, batch, logs=None): ...
    def on_batch_end(self, batch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def reads_batch_metrics(self) -> bool:
        """Whether this callback's batch hooks read the metrics in the batch
        logs, asked once a run has begun (after ``on_train_begin``). Their
        running values are computed after a batch only if some callback
        does (:func:`tinynet.training.fit_loop`: deferred values); otherwise
        the batch logs hold the loss without them.

        By default, True for a class that overrides ``on_train_batch_end``
        or ``on_batch_end``, or a callback given one as an attribute (so a
        callback of the user's that reads ``logs["accuracy"]`` gets it);
        the built-in callbacks that read
        only the loss, or nothing, from the batch logs say False, unless a
        subclass overrides their batch hooks. A callback that reads them on
        some batches only says which in :meth:`reads_batch_metrics_at`."""
        return self._batch_hooks_beyond(Callback)

    def reads_batch_metrics_at(self, batch: int) -> bool:
        """Whether this callback's batch-end hook of ``batch`` (from 0) will
        read the metrics in the batch logs, for a callback that reads them on
        some batches only (the live progress bar: on those it draws, at most
        ``max_rate`` a second). Asked just before the batch-end hooks of each
        batch, and only while no callback :meth:`reads_batch_metrics` on
        every batch (those get every metric of every batch, as in Keras);
        False by default."""
        return False

    def _batch_hooks_beyond(self, cls) -> bool:
        """Whether this callback's class overrides a batch-end hook of ``cls``,
        or the callback has one of its own (``cb.on_batch_end = f``, as a
        Keras ``LambdaCallback`` keeps its functions)."""
        own = type(self)
        return (own.on_train_batch_end is not cls.on_train_batch_end
                or own.on_batch_end is not cls.on_batch_end
                or "on_train_batch_end" in vars(self) or "on_batch_end" in vars(self))

    def _stop(self, reason: str) -> None:
        """Stop training, saying why; a stop already under way keeps its own
        reason (the NaN that stopped an epoch, not the EarlyStopping that
        then sees its NaN validation loss as no improvement)."""
        if not getattr(self.model, "stop_training", False):
            self.model.stop_reason = reason
        self.model.stop_training = True


class CallbackLines:
    """Where the callbacks' lines go during one ``fit`` run (``verbose=1`` of
    :class:`EarlyStopping`, :class:`ModelCheckpoint`,
    :class:`ReduceLROnPlateau`, and why training stopped): ``stream``, fit's
    (``fit(stream=)``, default ``sys.stdout``), in the order they are said.

    ``fit_loop`` makes one per run and passes it in the callbacks' params
    (``params["lines"]``; fit's stream is its :attr:`stream`). A line is written at
    once, unless a progress bar on the same stream has an epoch under way
    (:meth:`hold`, from its ``on_epoch_begin``): a live bar's line would
    take it inside, and a line said at the epoch's end would come before
    the epoch's own line, so it waits until the bar has written that line
    (:meth:`release`, in the same ``on_epoch_end`` round: no later), then
    comes after it. Without a bar on that stream (``verbose=0``, a bar on
    another stream) lines are written as they are said. Lines still waiting when a run
    is interrupted (``KeyboardInterrupt``) are written by :meth:`flush`, in
    ``fit_loop``'s ``finally``, on a line of their own: so they belong to
    their run, never to the next one."""

    def __init__(self, stream=None):
        self.stream = sys.stdout if stream is None else stream
        self._pending: list[str] = []
        self._held = False
        self._stop_reason_shown = False

    def __deepcopy__(self, memo):
        return self  # (a run's outlet, in the params a copied model's History keeps)

    def __reduce__(self):
        return CallbackLines, ()  # pickled: an outlet on sys.stdout (a stream does not pickle)

    def say(self, line: str) -> None:
        if self._held:
            self._pending.append(line)
        else:
            self._write([line])

    def hold(self) -> None:
        self._held = True

    def release(self) -> None:
        self._held = False
        self.flush()

    def flush(self) -> None:
        """Write the lines waiting (after ending an unfinished bar line)."""
        if self._pending:
            lines, self._pending = self._pending, []
            if self._held:  # (interrupted mid-epoch: the bar's line is not ended)
                self.stream.write("\n")
            self._write(lines)

    def say_stop_reason(self, model) -> None:
        """Say why training stopped (``model.stop_reason``), once a run: the
        progress bar says it at the end of training, and so does
        ``EarlyStopping(verbose=1)``, whichever comes first."""
        reason = getattr(model, "stop_reason", None)
        if reason and not self._stop_reason_shown:
            self._stop_reason_shown = True
            self.say(reason)

    def _write(self, lines) -> None:
        for line in lines:
            self.stream.write(f"{line}\n")
        self.stream.flush()


def callback_lines(params: dict) -> CallbackLines:
    """The run's :class:`CallbackLines` (``params["lines"]``); for a callback
    driven by hand, without ``fit``, a new one on ``sys.stdout``."""
    lines = params.get("lines")
    return CallbackLines() if lines is None else lines


def as_callback_list(callbacks, who: str = "fit") -> list:
    """``callbacks`` as a list: None gives ``[]`` and a single Callback
    ``[callback]`` (as Keras accepts); anything but a list, tuple or other
    iterable of callbacks is refused with a clear error."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if isinstance(callbacks, (str, bytes, dict)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"{who} expected a list of callbacks, received "
                        f"{type(callbacks).__name__} ({callbacks!r})"[:200])
    return list(callbacks)


#: The older names of the batch hooks, which are :class:`CallbackList`'s loops.
_OLDER_NAMES = ("on_batch_begin", "on_batch_end")


class CallbackList(Callback):
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks=()):
        super().__init__()
        self.callbacks = []
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"expected Callback instances, received "
                                f"{type(cb).__name__} ({cb!r})"[:200])
            self.callbacks.append(cb)

    def set_model(self, model):
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        for cb in self.callbacks:
            cb.set_params(params)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    # The batch hooks' loops are the older names, which the inherited
    # on_train_batch_* call (Callback's aliasing): so a subclass that overrides
    # either name of a hook -- on_batch_end alone, as a Keras 2 list would --
    # is called once per batch, and one overriding both gets its
    # on_train_batch_* (which reaches its on_batch_* through super(), as any
    # callback's), as Keras calls them.
    def on_batch_begin(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch, logs=None):
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs)

    def __init_subclass__(cls, **kwargs):
        # a subclass's on_batch_* (its own or a mixin's) is guarded against
        # being called again from within itself (see _guarded)
        super().__init_subclass__(**kwargs)
        for old in _OLDER_NAMES:
            hook = getattr(cls, old)
            if hook is not getattr(CallbackList, old) and not hasattr(hook, "_guarded"):
                setattr(cls, old, _guarded(old, hook))

    def reads_batch_metrics(self) -> bool:
        # a subclass's own batch hook reads them as any callback's does
        return (self._batch_hooks_beyond(CallbackList)
                or any(cb.reads_batch_metrics() for cb in self.callbacks))

    def reads_batch_metrics_at(self, batch: int) -> bool:
        return any(cb.reads_batch_metrics_at(batch) for cb in self.callbacks)


def _guarded(old: str, hook):
    """``hook``, a :class:`CallbackList` subclass's override of the older
    name ``old`` of a batch hook, which when called again from within
    itself runs the list's loop instead. An override of ``on_batch_end``
    that reaches the loop by ``super().on_train_batch_end`` (the list's loop
    before the older names took it) is called again by that (Callback's
    ``on_train_batch_end`` calls ``self.on_batch_end``): without the guard
    an endless recursion, with it the loop, once. The plain list's hooks
    are not wrapped (fit's calls cost nothing more)."""
    @functools.wraps(hook)
    def guarded(self, *args, **kwargs):
        inside = vars(self).get("_inside")  # of each older name, whether it is running
        if inside is None:
            inside = self._inside = dict.fromkeys(_OLDER_NAMES, 0)
        if inside[old]:
            return getattr(CallbackList, old)(self, *args, **kwargs)
        inside[old] += 1
        try:
            return hook(self, *args, **kwargs)
        finally:
            inside[old] -= 1
    guarded._guarded = True
    return guarded


class History(Callback):
    """Every metric of every epoch; ``fit`` returns it.

    Attributes
    ----------
    history : dict[str, list[float]]
        ``history.history["loss"][i]`` is the mean loss of the ``i``-th epoch
        of this run (``history.epoch[i]`` is its epoch number).
    epoch : list[int]
    params : dict
        The run's settings (epochs, steps, batch_size, ...).
    stop_reason : str or None
        Why training stopped early (NaN loss, early stopping), else None.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None

    def on_train_begin(self, logs=None):
        self.history = {}
        self.epoch = []
        self.stop_reason = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(int(epoch))
        for key, value in (logs or {}).items():
            # A metric first seen late (validation every few epochs) is padded with NaN.
            column = self.history.setdefault(key, [math.nan] * (len(self.epoch) - 1))
            column.append(logged_value(value))
        for column in self.history.values():
            if len(column) < len(self.epoch):
                column.append(math.nan)

    def on_train_end(self, logs=None):
        self.stop_reason = getattr(self.model, "stop_reason", None)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) if isinstance(v[-1], float) else v[-1]
                for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def logged_value(value):
    """A logged value as History keeps it: a number (a Python or NumPy
    scalar, a 0-d array) as a float; anything else a callback logged (a
    string, a list) as it is, as Keras' History keeps it."""
    if isinstance(value, (str, bytes)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


class TerminateOnNaN(Callback):
    """Stop as soon as the loss is NaN or infinite (on by default in ``fit``).

    Sets ``model.stop_training``, records a reason naming the epoch and batch
    (1-based, as the progress bar counts) and issues a ``RuntimeWarning`` so
    the stop is visible even at ``verbose=0``. The update of the offending
    batch has already been applied, so the weights may hold NaN.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def reads_batch_metrics(self) -> bool:
        return self._batch_hooks_beyond(TerminateOnNaN)  # (itself: the loss only)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            epochs = self.params.get("epochs", "?")
            steps = self.params.get("steps", "?")
            reason = (f"TerminateOnNaN: the loss became {loss} at epoch {self._epoch + 1}/"
                      f"{epochs}, batch {batch + 1}/{steps}; training stopped (try a "
                      f"lower learning rate, or check the inputs' scale)")
            self._stop(reason)
            _userwarn.warn(reason, RuntimeWarning)


def _resolve_mode(mode: str, monitor: str, who: str, model=None):
    """``"min"`` or ``"max"``; for ``"auto"`` the monitored key's direction
    (:func:`tinynet.metrics.higher_is_better`: a key ending in ``"loss"``
    minimised, a built-in metric's name its direction, a compiled metric of
    ``model`` that declares ``higher_is_better`` that one). Without ``model``
    (when the callback is made) a key of no known direction gives None, as
    the model's metric may say it; with ``model`` (when training starts) it
    is refused (``ValueError``: say ``mode``), never guessed -- a score of
    the user's (``"dice"``) minimised would stop early and keep the worst
    epoch."""
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{who} expected monitor as the name of a logged value "
                        f"('val_loss', 'accuracy'...), received {monitor!r}")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who} expected mode 'auto', 'min' or 'max', received {mode!r}")
    if mode == "auto":
        from .metrics import direction, higher_is_better, logged_metrics  # (no cycle)
        if model is None:
            higher = higher_is_better(monitor)
            return None if higher is None else ("max" if higher else "min")
        higher = direction(monitor, logged_metrics(model), who, "pass mode='max' or mode='min'")
        return "max" if higher else "min"
    return mode


#: Why a key another callback adds may be missing from ``params["metrics"]``.
_ORDER_HINT = ("a key a callback adds, such as 'lr', reaches only the callbacks after it "
               "in the list")


def _check_monitor_is_logged(monitor: str, params: dict, who: str) -> None:
    """Refuse before the first epoch a ``val_*`` monitor without validation
    data, and a monitor that is not among the keys fit will log (when the
    trainer says which, as ``params["metrics"]``); either would fail after
    the first epoch (Keras warns every epoch and silently never stops or
    saves)."""
    if monitor.startswith("val_") and params.get("do_validation") is False:
        raise ValueError(f"{who} monitors {monitor!r}, but fit has no validation data: "
                         f"pass validation_data= (or validation_split=) to fit, or monitor "
                         f"{monitor[4:]!r}")
    keys = params.get("metrics")
    if keys is not None and monitor not in keys:
        raise ValueError(f"{who} monitors {monitor!r}, which fit will not log"
                         f"{did_you_mean(monitor, keys)} (it logs: {', '.join(keys)}; "
                         f"{_ORDER_HINT})")



def _monitored(logs, monitor: str, who: str) -> float:
    if monitor not in (logs or {}):
        hint = " (pass validation_data= to fit)" if monitor.startswith("val_") else ""
        raise ValueError(f"{who} monitors {monitor!r}, which is not in the epoch logs "
                         f"(available: {', '.join(sorted(logs or {})) or 'none'}){hint}")
    return float(logs[monitor])


class _Verbose(Callback):
    """A callback with ``verbose`` (Keras': 0 quiet, 1 a line when the callback
    acts; 2 the same), checked when it is made, and one way to say that line
    (:meth:`_say`). Subclasses call ``super().__init__(verbose)`` after their
    own checks, so that those come first."""

    def __init__(self, verbose: int = 0):
        super().__init__()
        self.verbose = check_verbose(verbose, type(self).__name__, auto=False)

    def _say(self, message: str) -> None:
        """With ``verbose``, say ``message`` on fit's stream, in order with
        the other callbacks' lines and after the epoch's live bar
        (:class:`CallbackLines`)."""
        if self.verbose:
            callback_lines(self.params).say(message)


class _Monitoring(_Verbose):
    """A callback that watches one logged value, ``monitor``, in a direction,
    ``mode`` (shared by EarlyStopping, ModelCheckpoint and ReduceLROnPlateau).

    ``mode="auto"`` is resolved when the callback is made, from the key's
    name, so that a bad mode or monitor is refused then, and again when
    training starts (:meth:`on_train_begin`), from the model's own metrics: a
    metric with a name of the user's, ``F1Score(name="f1_micro")``, has its
    direction only there (:func:`_resolve_mode`); a key whose direction is
    still not known then is refused (``mode`` None until then).

    ``verbose=1`` (Keras'; 2 the same) prints a line when the callback acts
    (:meth:`_say`)."""

    def __init__(self, monitor: str, mode: str, verbose: int = 0):
        self.monitor = monitor
        self._given_mode = mode
        self.mode = _resolve_mode(mode, monitor, type(self).__name__)
        super().__init__(verbose)

    def on_train_begin(self, logs=None):
        """Refuse a monitor fit will not log (:func:`_check_monitor_is_logged`);
        resolve ``"auto"`` again, now with the model's metrics."""
        who = type(self).__name__
        _check_monitor_is_logged(self.monitor, self.params, who)
        self.mode = _resolve_mode(self._given_mode, self.monitor, who, self.model)


class _Monitor(_Monitoring):
    """Tracks the best value of a logged metric (shared by EarlyStopping and
    ModelCheckpoint)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0, verbose: int = 0):
        super().__init__(monitor, mode, verbose)
        # a NaN or infinite min_delta would make every epoch "no improvement"
        self.min_delta = abs(check_real(min_delta, type(self).__name__, "min_delta",
                                        low_open=True, high_open=True))
        self.best = self._initial_best()
        self.best_epoch: int | None = None

    #: A value to beat from the start (ModelCheckpoint's initial_value_threshold).
    _threshold = None

    def _initial_best(self) -> float:
        """The best value before any epoch: the threshold if one was given,
        else the worst value of the mode."""
        if self._threshold is not None:
            return self._threshold
        return math.inf if self.mode == "min" else -math.inf

    def _reset(self):
        self.best = self._initial_best()
        self.best_epoch = None

    def on_train_begin(self, logs=None):
        mode = self.mode
        super().on_train_begin(logs)
        if self.mode != mode:  # "auto" resolved otherwise: the best so far is the other end
            self._reset()

    def _improved(self, value: float, reference: float | None = None) -> bool:
        """Whether ``value`` beats ``reference`` (default: the best so far) by
        more than ``min_delta``; a NaN or infinite value never does."""
        reference = self.best if reference is None else reference
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when a monitored metric has stopped improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
    patience : int, default 0
        Epochs without improvement to wait before stopping.
    min_delta : float, default 0
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
        "auto" follows the direction of the model's metric of that name
        (one named by the user too, ``F1Score(name="f1_micro")``, from when
        training starts; one of the user's that says it,
        ``Metric.higher_is_better``) or of a built-in metric
        (:func:`tinynet.metrics.higher_is_better`: ``accuracy``, ``f1``, ``auc``,
        ``r2``... maximised, ``mse``, ``mae`` minimised), with or without
        ``val_``; a key ending in "loss" (``val_loss``, ``left/loss``) is
        minimised. Any other key -- a metric function or ``Metric``
        subclass of the user's that does not say its direction -- is
        refused when training starts (``ValueError``), never guessed, as
        Keras 3 refuses it: say ``mode="max"`` or ``"min"``, or set the
        metric's ``higher_is_better``.
    restore_best_weights : bool, default False
        At the end of training, put back the weights of the best epoch
        (whether or not it beat ``baseline``): ``get_weights()``, and on a
        :mod:`tinynet.mtl` model the loss weighting's learned parameters
        too (uncertainty's :math:`s_t`, GradNorm's :math:`w_t`), which the
        network's weights were trained with, as Keras puts back every
        variable of the model. The optimizer's state and the weighting's
        other state (DWA's loss history, PCGrad's generator) stay as the
        last epoch left them, as the optimizer's moments do in Keras.
    baseline : float, optional
        As in Keras: an improving epoch resets the wait only if it also beats
        this value (by ``min_delta``); one that does not counts as waiting,
        but never stops training itself. Training stops at the first epoch
        that does not improve once ``patience`` epochs have gone by without
        reaching the baseline, so a metric improving at every epoch is never
        stopped, above the baseline or not.
    start_from_epoch : int, default 0
        As in Keras: epochs before this index (counted from 0, as ``fit``'s
        ``initial_epoch``) are a warm-up, neither recorded as the best nor
        counted as waiting.
    verbose : {0, 1, 2}, default 0
        1 (Keras'; 2 the same) prints on fit's stream (:class:`CallbackLines`),
        at the end of training, why it stopped training
        (the line :attr:`History.stop_reason` holds, which the progress bar
        of ``fit(verbose>0)`` then does not print again) and, when it puts
        the best weights back, which epoch's.

    Attributes
    ----------
    best, best_epoch, stopped_epoch
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False, baseline=None,
                 start_from_epoch: int = 0, verbose: int = 0):
        super().__init__(monitor, mode, min_delta, verbose)
        self.patience = check_non_negative_int(patience, "EarlyStopping", "patience")
        self.start_from_epoch = check_non_negative_int(start_from_epoch, "EarlyStopping",
                                                  "start_from_epoch")
        self.baseline = None if baseline is None else check_real(
            baseline, "EarlyStopping", "baseline", low_open=True, high_open=True)
        self.restore_best_weights = check_bool(restore_best_weights, "EarlyStopping",
                                               "restore_best_weights")
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights = None
        self.best_weighting: list = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._reset()
        self.wait = 0
        self.stopped_epoch = None
        self.best_weights = None
        self.best_weighting = []

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self.model, "stop_training", False) and self.monitor not in (logs or {}):
            return  # stopped mid-epoch (NaN): no validation was run
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        # Keras 3's counting: every epoch waits, an improvement that beats the
        # baseline too resets the wait, and only an epoch without improvement
        # (never epoch 0) stops training
        self.wait += 1
        if self._improved(value):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
                self.best_weighting = [p.value.copy() for p in _weighting_params(self.model)]
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            best = "none" if self.best_epoch is None else \
                f"{self.best:.6g} at epoch {self.best_epoch + 1}"
            baseline = "" if self.baseline is None else f", baseline {self.baseline:.6g}"
            self._stop(f"EarlyStopping: {self.monitor} did not improve for {self.wait} "
                       f"epoch(s) (best {best}{baseline}); stopped after epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        if self.verbose and self.stopped_epoch is not None:
            callback_lines(self.params).say_stop_reason(self.model)
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            for param, value in zip(_weighting_params(self.model), self.best_weighting):
                np.copyto(param.value, value)
            self._say(f"EarlyStopping: restored the weights of the best epoch, "
                      f"{self.best_epoch + 1} ({self.monitor} {self.best:.6g})")


def _weighting_params(model) -> list:
    """The learned parameters of a :mod:`tinynet.mtl` model's loss weighting
    (:meth:`~tinynet.mtl.weighting.Weighting.parameters`), or none."""
    weighting = getattr(model, "weighting", None)
    return list(weighting.parameters()) if hasattr(weighting, "parameters") else []


class ModelCheckpoint(_Monitor):
    """Save the model after every epoch (or every few batches), or only when it improves.

    Parameters
    ----------
    path : str or os.PathLike
        May hold ``str.format`` fields filled from the epoch (1-based) and the
        logs: ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``; with an integer
        ``save_freq`` also ``{batch}``, the batch of the epoch (1-based).
        Also taken as ``filepath=``, Keras' name for it (one of the two, not
        both); ``checkpoint.filepath`` reads it too.
    monitor, mode, min_delta
        As for :class:`EarlyStopping` (used with ``save_best_only``).
    save_best_only : bool, default False
    include_optimizer : bool, default True
        Also save the optimizer state, so training can resume exactly.
    save_freq : "epoch" or int, default "epoch"
        As in Keras: ``"epoch"`` saves at each epoch's end, with the epoch
        logs; an integer ``N`` after every ``N``-th batch, counting on from
        one epoch into the next (not at the epochs' ends), with the batch
        logs -- the running means of the epoch so far, which hold no
        validation values, so a ``val_*`` monitor or path field is refused
        before training. ``fit(initial_epoch=...)`` resumes at an epoch's
        start, so only a checkpoint from an epoch's end resumes exactly.
    initial_value_threshold : float, optional
        As in Keras, with ``save_best_only``: the best value to start from
        (that of a checkpoint saved by an earlier process), which a save
        must beat.
    verbose : {0, 1, 2}, default 0
        1 (Keras'; 2 the same) prints on fit's stream a line at each save
        (``"Epoch 3: val_loss improved from 0.4 to 0.3, saving the model to
        ckpt.npz"``) and, with ``save_best_only``, at each epoch that does
        not improve.

    Saving goes through ``model.save`` (:func:`tinynet.io.save`), which is
    atomic: a crash mid-save leaves the previous checkpoint intact. With
    ``save_best_only`` the best value is kept from one ``fit`` to the next
    (as in Keras): a later run's first epoch does not overwrite a better
    checkpoint. Weights that are no longer finite (training stopped on a
    NaN loss) are not saved: a warning says so and the last file stays.
    """

    def __init__(self, path=None, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", min_delta: float = 0.0, include_optimizer: bool = True,
                 save_freq="epoch", initial_value_threshold=None, *, filepath=None,
                 verbose: int = 0):
        if path is not None and filepath is not None:
            raise TypeError(f"ModelCheckpoint takes the file path once, as path= or as "
                            f"filepath= (Keras' name), received both: path={path!r}, "
                            f"filepath={filepath!r}")
        if path is None and filepath is None:
            raise TypeError("ModelCheckpoint expected path as a str or os.PathLike file "
                            "path (path=, or filepath= as Keras names it), received None")
        path = filepath if path is None else path
        super().__init__(monitor, mode, min_delta, verbose)
        if initial_value_threshold is not None:
            # kept, not only written into best: a mode that "auto" resolves
            # again at train begin (a metric named by the user) resets best
            self._threshold = check_real(initial_value_threshold, "ModelCheckpoint",
                                         "initial_value_threshold", low_open=True,
                                         high_open=True)
            self.best = self._threshold
        if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
            # str() would make ModelCheckpoint(None) save to a file named "None"
            raise TypeError(f"ModelCheckpoint expected path as a str or os.PathLike file "
                            f"path, received {path!r} of type {type(path).__name__}")
        self.path = os.fspath(path)
        self.save_best_only = check_bool(save_best_only, "ModelCheckpoint", "save_best_only")
        self.include_optimizer = check_bool(include_optimizer, "ModelCheckpoint",
                                            "include_optimizer")
        if save_freq != "epoch":
            if isinstance(save_freq, str):
                raise ValueError(f"ModelCheckpoint expected save_freq as 'epoch' or a "
                                 f"positive integer (batches), received {save_freq!r}")
            if isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer)):
                raise TypeError(f"ModelCheckpoint expected save_freq as 'epoch' or a "
                                f"positive integer (batches), received {save_freq!r} of "
                                f"type {type(save_freq).__name__}")
            if save_freq <= 0:
                raise ValueError(f"ModelCheckpoint expected save_freq as 'epoch' or a "
                                 f"positive integer (batches), received {save_freq}")
            save_freq = int(save_freq)
        self.save_freq = save_freq
        self.saved: list[str] = []
        self._epoch = 0
        self._batches = 0  # since the last save, with an integer save_freq

    @property
    def filepath(self) -> str:
        """The path (pattern) saved to: Keras' name for :attr:`path`."""
        return self.path

    def on_train_begin(self, logs=None):
        by_batch = self.save_freq != "epoch"
        batch_keys = self.params.get("batch_metrics")
        if by_batch and self.save_best_only and (
                self.monitor.startswith("val_")
                or (batch_keys is not None and self.monitor not in batch_keys)):
            held = "no validation values" if batch_keys is None else \
                f"{', '.join(batch_keys)} only (no validation values, no added keys)"
            raise ValueError(f"ModelCheckpoint with save_freq={self.save_freq} saves from "
                             f"the batch logs, which hold {held}: monitor one of those, or "
                             f"save at each epoch (save_freq='epoch'), not {self.monitor!r}")
        if self.save_best_only:
            super().on_train_begin(logs)
        # fail now, not after the first epoch has trained (a directory whose
        # name holds format fields can only be checked once it is filled; the
        # file itself -- not a directory, nor write-protected -- only when its
        # name holds none)
        if "{" not in os.path.dirname(self.path):
            check_target(self.path, "ModelCheckpoint", file_too="{" not in self.path)
        keys = self.params.get("metrics")  # a field fit will not log
        if keys is not None:
            if by_batch:  # the batch logs' keys (none of validation, if unnamed)
                keys = (batch_keys if batch_keys is not None
                        else [key for key in keys if not key.startswith("val_")])
            self._fill(0, dict.fromkeys(keys, 0.0), 0 if by_batch else None,
                       f" ({_ORDER_HINT})")
        self._batches = 0

    def _fill(self, epoch: int, logs: dict, batch: int | None = None, hint: str = "") -> str:
        """The path of epoch ``epoch`` (from 0) and, if given, batch ``batch``
        (from 0) with ``logs``."""
        fields = {**logs, "epoch": epoch + 1, **({} if batch is None else {"batch": batch + 1})}
        try:
            return self.path.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            what = "epoch" if batch is None else "epoch, the batch"
            raise ValueError(f"ModelCheckpoint cannot fill the path {self.path!r} from the "
                             f"{what} and the logs {sorted(logs)}: {exc}{hint}") from None

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch = epoch

    def reads_batch_metrics(self) -> bool:
        # not on every batch: a save every few batches reads them (its monitor,
        # its path) on the batches it saves after (reads_batch_metrics_at)
        return self._batch_hooks_beyond(ModelCheckpoint)

    def reads_batch_metrics_at(self, batch: int) -> bool:
        """Whether the batch-end hook of ``batch`` saves (with an integer
        ``save_freq``, after every ``save_freq``-th batch): only then does it
        read the batch logs' running metrics, for its monitor and its path, so
        ``fit`` computes them on those batches only (every ``save_freq``-th,
        not every one)."""
        return self._saves_next()

    def _saves_next(self) -> bool:
        """Whether the next batch-end hook saves: the ``save_freq``-th batch
        since the last save (never with ``save_freq="epoch"``)."""
        return self.save_freq != "epoch" and self._batches + 1 >= self.save_freq

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        saves = self._saves_next()
        self._batches = 0 if saves else self._batches + 1
        if saves:
            self._save(self._epoch, logs or {}, batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch: int, logs: dict, batch: int | None = None) -> None:
        when = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
        if self.save_best_only and not self._improved(
                _monitored(logs, self.monitor, "ModelCheckpoint")):
            self._say(f"{when.capitalize()}: {self.monitor} did not improve from "
                      f"{self.best:.6g}")
            return
        path = self._fill(epoch, logs, batch)
        if not all(np.isfinite(w).all() for w in self.model.get_weights()):
            _userwarn.warn(f"ModelCheckpoint: the weights after {when} are not "
                           f"finite (NaN or infinity); {path!r} not saved"
                           + (f", the last checkpoint ({self.saved[-1]!r}) stays"
                              if self.saved else ""), RuntimeWarning)
            return
        self.model.save(path, include_optimizer=self.include_optimizer)
        self.saved.append(path)
        if self.save_best_only:  # only now: a failed save must not set a best never written
            value = float(logs[self.monitor])
            self._say(f"{when.capitalize()}: {self.monitor} improved from {self.best:.6g} to "
                      f"{value:.6g}, saving the model to {path}")
            self.best, self.best_epoch = value, epoch
        else:
            self._say(f"{when.capitalize()}: saving the model to {path}")


def _log_lr(model, logs, lr=None) -> None:
    """Log ``lr`` (default: the optimizer's rate now) as ``logs["lr"]``."""
    if logs is not None:
        logs["lr"] = float(model.optimizer.lr if lr is None else lr)


class LearningRateScheduler(_Verbose):
    """Set the learning rate at the start of each epoch.

    Parameters
    ----------
    schedule : callable or tinynet.optim.LRScheduler
        ``schedule(epoch) -> lr`` or ``schedule(epoch, lr) -> lr`` (Keras),
        with ``epoch`` counted from 0 and ``lr`` the first parameter group's
        rate, setting the first group's rate; every other group keeps its
        ratio to it, that of their base rates (each group's ``initial_lr``,
        set to its rate when first scheduled), as PyTorch's ``LambdaLR``
        gives each group its own base rate times the factor: discriminative
        rates (:func:`tinynet.transfer.discriminative_param_groups`) and a
        multi-task weighting's ``weighting_lr`` follow the schedule in
        proportion. Or one of :mod:`tinynet.optim`'s closed-form schedules
        (``StepLR(opt, ...)``, ``CosineAnnealingLR``, ``LinearWarmup``),
        which sets each group from its own base rate; it must be made for the
        optimizer the model trains with (compiling again with a new one needs
        a new schedule).
    verbose : {0, 1, 2}, default 0
        1 (or 2, the same) prints the new rate at each change, on fit's
        stream (:class:`CallbackLines`).

    The rate the epoch used (the first group's, as this callback left it at
    the epoch's start) is logged as ``"lr"`` at its end, even when a callback
    before this one in the list (:class:`ReduceLROnPlateau`) has cut it for
    the next epoch meanwhile. The rate is a
    function of the epoch number (and, for two-argument schedules, of the
    previous rate), so a run resumed with ``initial_epoch`` follows the same
    rates.
    """

    added_log_keys = ("lr",)

    def __init__(self, schedule, verbose: int = 0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler expected a callable schedule, "
                            f"received {type(schedule).__name__}")
        super().__init__(verbose)
        self.schedule = schedule
        self._two_args = _takes_two_args(schedule)
        self._epoch_lr = None  # the rate the epoch runs at (on_epoch_begin), to log

    def on_train_begin(self, logs=None):
        from .optim import LRScheduler
        # a schedule made for the optimizer of an earlier compile would set the
        # rates of an optimizer nothing steps any more, silently
        optimizer = getattr(self.model, "optimizer", None)
        if isinstance(self.schedule, LRScheduler) and optimizer is not None \
                and self.schedule.optimizer is not optimizer:
            raise ValueError(f"LearningRateScheduler: the {type(self.schedule).__name__} "
                             f"drives another optimizer than the model's (the model was "
                             f"compiled again since the schedule was made?); make the "
                             f"schedule for model.optimizer")

    def on_epoch_begin(self, epoch, logs=None):
        from .optim import LRScheduler
        optimizer = self.model.optimizer
        old = float(optimizer.lr)
        if isinstance(self.schedule, LRScheduler):
            # torch semantics: step() moves to epoch last_epoch + 1, per group
            self.schedule.last_epoch = epoch - 1
            self.schedule.step()
        else:
            _set_first_rate(optimizer, self.schedule(epoch, old) if self._two_args
                            else self.schedule(epoch))
        self._epoch_lr = float(optimizer.lr)
        if self._epoch_lr != old:
            self._say(f"Epoch {epoch + 1}: learning rate set to {self._epoch_lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        _log_lr(self.model, logs, self._epoch_lr)


def _set_first_rate(optimizer, lr) -> None:
    """Set the first group's rate to ``lr`` and every other group's to ``lr``
    times the ratio of its base rate (``initial_lr``, set to its rate if
    missing) to the first group's: LambdaLR's ``base_lr * factor`` per
    group, with the factor ``lr / base_lr`` of the first group. Groups whose
    base rates are all equal (0 included, as a model's and its weighting's
    at ``Adam(lr=0.0)``) all get ``lr``.

    Where a group has a base rate, this leaves the constructor's rate
    (``optimizer.defaults``, what ``get_config`` saves) as it was, as the
    :mod:`tinynet.optim` schedules do: it is then the base rate of a group
    added later (:meth:`~tinynet.optim.Optimizer.add_param_group`), which
    starts at it times the schedule's factor. Set through ``optimizer.lr``
    (which sets the defaults, as a user's setting does), the scheduled rate
    became that base and the factor applied twice: a group added after two
    epochs of ``lambda e: 0.0025 * 0.5 ** e`` on ``Adam(lr=0.02)`` started
    at 0.000625 instead of 0.01. One group without a base rate (its base is
    not recorded: a schedule made later starts from the rate now), or none
    bound: ``optimizer.lr = lr``, since a group added then starts at the
    defaults' rate, unscaled."""
    from .optim.optimizers import _check_number
    from .optim.schedules import base_lrs
    groups = optimizer.param_groups
    if len(groups) < 2 and not any("initial_lr" in group for group in groups):
        optimizer.lr = lr
        return
    lr = _check_number(optimizer._who, "lr", lr)
    bases = base_lrs(groups)
    if all(base == bases[0] for base in bases):  # no ratio to keep (all 0 among them)
        rates = [lr] * len(groups)
    elif bases[0] == 0:
        raise ValueError(f"LearningRateScheduler: the first parameter group's base rate is 0, "
                         f"so the other groups' rates cannot keep their ratios to it (their "
                         f"base rates are {bases[1:]}); give it a positive rate, or use a "
                         f"tinynet.optim schedule, which sets each group from its own rate")
    else:
        rates = [lr] + [lr * (base / bases[0]) for base in bases[1:]]
    for group, rate in zip(groups, rates):
        group["lr"] = rate
    optimizer._new_group_lr = None  # (the groups have it now)


class ReduceLROnPlateau(_Monitoring):
    """Divide the learning rate when a monitored metric stops improving:
    :class:`tinynet.optim.ReduceLROnPlateau` (PyTorch's counting) driven by
    the epoch logs, as in Keras.

    Parameters
    ----------
    monitor : str, default "val_loss"
    mode : {"auto", "min", "max"}
        As for :class:`EarlyStopping` ("auto": the metric's direction).
    min_delta : float, optional
        Keras' name: an absolute improvement threshold, the same as
        ``threshold=min_delta, threshold_mode="abs"``. Without it the
        threshold is PyTorch's relative 1e-4 (Keras' default is an absolute
        1e-4). With it or without, the counting is PyTorch's: the rate is
        cut after *more than* ``patience`` bad epochs (Keras cuts at
        ``patience``, one epoch sooner when ``patience >= 1``), and
        ``cooldown`` epochs after a cut count as good.
    verbose : {0, 1, 2}, default 0
        1 (Keras'; 2 the same) prints on fit's stream a line at each cut,
        after the epoch's progress line: ``"Epoch 5: ReduceLROnPlateau
        reducing learning rate to 0.01."``
        (each group's rate, for several parameter groups).
    **kwargs
        ``factor``, ``patience``, ``threshold``, ``threshold_mode``,
        ``cooldown``, ``min_lr``, ``eps`` of :class:`tinynet.optim.ReduceLROnPlateau`.

    Its counters start afresh with each ``fit`` call (they are not saved).
    ``"lr"`` in the logs is the rate the epoch used (a cut applies from the
    next epoch), as :class:`LearningRateScheduler` logs it. A ``val_*``
    monitor without validation data is refused before the first epoch.
    """

    added_log_keys = ("lr",)
    _SCHEDULER_OPTIONS = ("factor", "patience", "threshold", "threshold_mode", "cooldown",
                          "min_lr", "eps")

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", min_delta=None,
                 verbose: int = 0, **kwargs):
        super().__init__(monitor, mode, verbose)
        unknown = sorted(set(kwargs) - set(self._SCHEDULER_OPTIONS))
        if unknown:
            raise TypeError(f"ReduceLROnPlateau got unexpected option(s) {unknown}; it takes "
                            f"monitor, mode, min_delta, verbose and "
                            f"{', '.join(self._SCHEDULER_OPTIONS)}")
        if min_delta is not None:
            if "threshold" in kwargs or "threshold_mode" in kwargs:
                raise TypeError("ReduceLROnPlateau takes min_delta (Keras) or "
                                "threshold/threshold_mode (PyTorch), not both")
            kwargs = {**kwargs, "threshold": min_delta, "threshold_mode": "abs"}
        self._check_options(kwargs)
        self.kwargs = kwargs
        self.scheduler = None

    def _check_options(self, kwargs) -> None:
        """Refuse now, not when ``fit`` starts, what the scheduler would refuse
        (``factor=2``...): made on a stand-in optimizer of one group, once
        per value of a per-group ``min_lr`` list (whose length is checked
        against the groups at ``fit``)."""
        from .optim import SGD, ReduceLROnPlateau as Plateau
        from .param import Param

        probe = dict(kwargs)
        min_lrs = probe.pop("min_lr", 0.0)
        for min_lr in min_lrs if isinstance(min_lrs, (list, tuple)) else [min_lrs]:
            Plateau(SGD([Param(np.zeros(1))], lr=1.0), mode=self.mode or "min", min_lr=min_lr,
                    **probe)

    def on_train_begin(self, logs=None):
        from .optim import ReduceLROnPlateau as Plateau
        super().on_train_begin(logs)  # the mode of a metric named by the user: its direction
        self.scheduler = Plateau(self.model.optimizer, mode=self.mode, **self.kwargs)

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self.model, "stop_training", False) and self.monitor not in (logs or {}):
            return
        _log_lr(self.model, logs)  # the rate this epoch used, as LearningRateScheduler logs
        optimizer = self.model.optimizer
        # the rates are compared only to say a cut: quiet, nothing to look at
        before = [group["lr"] for group in optimizer.param_groups] if self.verbose else None
        self.scheduler.step(_monitored(logs, self.monitor, "ReduceLROnPlateau"))
        if before is None:
            return
        after = [group["lr"] for group in optimizer.param_groups]
        if after != before:
            rates = ", ".join(f"{lr:.6g}" for lr in after)
            self._say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                      f"{rates if len(after) == 1 else '[' + rates + ']'}.")


def _takes_two_args(fn) -> bool:
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    # whenever it can take a second positional argument (lr=0.1 default, *args),
    # as Keras, which calls schedule(epoch, lr) first
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2
