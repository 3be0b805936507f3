"""The training loop, independent of what is being trained.

:func:`fit_loop` runs epochs of mini-batches and knows nothing of layers,
losses or optimizers: it draws the batch indices, calls a *step function*
for each batch, averages the logs it returns, runs the validation function
after each epoch and drives the callbacks (progress bar, early stopping,
checkpoints, stop on NaN, :class:`History`). ``Sequential.fit`` is a thin
layer over it, and so can be any other model.

Extension point (multi-task models, custom training)
----------------------------------------------------
Write a step that trains on the samples ``idx`` and returns their logs::

    def train_step(idx):                       # idx: int array of sample indices
        x_b = {name: arr[idx] for name, arr in inputs.items()}
        preds = model.forward(x_b, training=True)
        losses = {t: loss_fns[t].forward(preds[t], targets[t][idx]) for t in tasks}
        ...backward, optimizer.step()...
        return {"loss": sum(losses.values()), **{f"{t}_loss": v for t, v in losses.items()}}

    def validate():                            # optional: logs on validation data
        return {"loss": ..., "task_a_accuracy": ...}   # recorded as "val_loss", ...

    history = fit_loop(model, train_step, n_samples, epochs=10, batch_size=32,
                       validate=validate, callbacks=[EarlyStopping()], seed=0)

Every value a step returns is a mean over its batch; the epoch's value is
the batch values weighted by batch size -- except the keys a step returns
as *running* values (``(logs, weights)`` with ``weights[key] = None``): the
value so far of a metric the model accumulates over the epoch
(:class:`tinynet.metrics.MetricStates`: an F1 or an AUC of the epoch is not
a mean of batch scores), logged as it is. A running value may be
deferred: given as a function of no arguments that computes it, called only
when something reads it -- the batch logs when a callback reads their
metrics (:meth:`~tinynet.callbacks.Callback.reads_batch_metrics`: a
callback of the user's with a batch hook, after every batch;
:meth:`~tinynet.callbacks.Callback.reads_batch_metrics_at`: the live
progress bar, after the batches it draws, a ``ModelCheckpoint(save_freq=N)``
after those it saves after), and the epoch's logs -- so that
an epoch at ``verbose=0`` pays for none of the values between, and one
under a live bar only for those of the ~10 batches a second it draws
(``Sequential.fit`` and the multi-task models' ``fit`` defer them, each
running value exact at the epoch's last batch:
:meth:`tinynet.metrics.MetricStates.batch_logs`). (The loss is never
deferred: :class:`~tinynet.callbacks.TerminateOnNaN` reads it after every
batch.) Such accumulators start afresh in the
``on_epoch_begin`` of a callback the trainer puts first (and are dropped at
``on_train_end``), as ``Sequential.fit`` and the multi-task models' ``fit``
do: the loop itself knows nothing of them. ``model`` only needs a
``stop_training`` attribute (the loop sets it); if it has
``set_rng(rng)`` the loop gives it a fresh generator per epoch
when ``seed`` is set (dropout masks), and callbacks that save or restore weights use ``save``,
``get_weights``/``set_weights``, ``optimizer``.

Reproducibility
---------------
With ``seed`` set, each epoch's shuffle and each epoch's layer generator
come from ``numpy.random.SeedSequence(seed, spawn_key=(epoch, stream))``
(:func:`epoch_rng`): they depend on the seed and the epoch number only, not
on what ran before. So ``fit(epochs=4, seed=s)`` equals ``fit(epochs=2,
seed=s)`` followed -- even after save and load -- by ``fit(epochs=4,
initial_epoch=2, seed=s)``, bit for bit.
"""

from __future__ import annotations

import numpy as np

from . import _userwarn
from .callbacks import (Callback, CallbackLines, CallbackList, History, TerminateOnNaN,
                        as_callback_list)
from .checks import check_bool, check_non_negative_int, check_positive_int, check_seed
from .data.batches import n_batches
from .metrics import MetricStates
from .progress import ProgressBar, check_verbose

__all__ = ["fit_loop", "batch_indices", "n_batches", "epoch_rng", "seed_rng", "History",
           "RunningMeans", "SHUFFLE_STREAM", "LAYER_STREAM", "BUILD_STREAM", "MIXUP_STREAM",
           "CHECK_ELEMENTS",
           "check_targets"]

#: Sub-streams of one seed: shuffling, layer randomness (dropout), initial weights,
#: and the pairs and weights of mixup (:func:`tinynet.mtl.experiments.run`).
SHUFFLE_STREAM, LAYER_STREAM, BUILD_STREAM, MIXUP_STREAM = 0, 1, 2, 3


def seed_rng(seed, *key: int) -> np.random.Generator:
    """A generator for sub-stream ``key`` of ``seed`` (independent streams)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


def epoch_rng(seed, epoch: int, stream: int) -> np.random.Generator:
    """The generator of ``stream`` (shuffle or layers) in epoch ``epoch``."""
    return seed_rng(seed, stream, int(epoch))


def batch_indices(n_samples: int, batch_size: int, rng: np.random.Generator | None = None):
    """Split ``range(n_samples)`` into batches, in a random order if ``rng``.

    Returns a list of int64 arrays; the last batch may be smaller.
    """
    order = rng.permutation(n_samples) if rng is not None else np.arange(n_samples)
    return [order[start:start + batch_size] for start in range(0, n_samples, batch_size)]


#: :func:`check_targets` makes zero predictions of at most this many elements
#: at a time (32 MiB in float64), however large the data or the outputs.
CHECK_ELEMENTS = 1 << 22


def check_targets(loss, metrics, output_shape, dtype, target, sample_weight=None,
                  mask=None) -> None:
    """Run ``loss`` and each of ``metrics`` on zero predictions of shape
    ``(n, *output_shape)`` for ``target`` (``n`` rows; ``sample_weight`` and
    ``mask`` as the loss takes them, the metrics seeing the unmasked samples),
    so that bad targets (their shape, a label out of range) or a metric that
    does not suit them (accuracy on a regression) fail before training, not
    after a step. Whatever it raises is what the loss or metric raised.

    The zeros are made for a chunk of samples at a time, at most
    :data:`CHECK_ELEMENTS` elements (one sample at least), so the check makes
    no prediction-sized array at once (a metric that keeps its samples, AUC
    or R², still holds their states, as it does in an epoch); the metrics add
    up their chunks' states
    (:class:`~tinynet.metrics.MetricStates`) and give the whole set's value
    (an AUC of a chunk of one class is no failure). If any chunk fails, the
    whole set is checked at once, so that the error names the whole set's
    shapes and values, as a check without chunks did.
    """
    n, size = len(target), int(np.prod(output_shape, dtype=np.int64))
    step = max(1, CHECK_ELEMENTS // max(size, 1))
    if step < n:
        states = MetricStates(metrics)  # the metrics of the whole set, as fit's epochs
        try:
            for start in range(0, n, step):
                part = slice(start, start + step)
                pred, chunk = _zeros_checked(loss, output_shape, dtype, target[part],
                                             None if sample_weight is None else
                                             sample_weight[part],
                                             None if mask is None else mask[part])
                states.add(pred, chunk)
            for metric, state in zip(states.metrics, states.states):
                if state is not None:
                    metric.result(state)  # an AUC of one class raises as a direct call
            return
        except (TypeError, ValueError):
            pass  # the whole set's check below raises its own error
    pred, target = _zeros_checked(loss, output_shape, dtype, target, sample_weight, mask)
    for metric in metrics if len(pred) else ():
        metric(pred, target)


def _zeros_checked(loss, output_shape, dtype, target, sample_weight, mask):
    """Zero predictions for ``target`` after the loss has checked it: the
    ones and targets the metrics see (those the mask keeps)."""
    pred = np.zeros((len(target),) + tuple(output_shape), dtype=dtype)
    loss.forward(pred, target, sample_weight=sample_weight, mask=mask)
    return (pred, target) if mask is None else (pred[mask], target[mask])


class RunningMeans:
    """Means of named values weighted by sample counts (batch sizes), or by
    weights of their own for the keys given in ``add``'s ``weights`` (a
    weighted loss's total sample weight: its means then combine to the
    weighted mean of the union). A key whose weights so far are all 0 has
    the mean 0, the loss of nothing. A key whose weight is None holds a
    running value already (a metric accumulated over the epoch): its last
    value is its "mean" -- or, given as a function of no arguments (a
    *deferred* value), what that function returns when :meth:`means` is
    asked for it."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.totals: dict[str, float] = {}
        self.current: dict[str, float] = {}
        self.count = 0

    def add(self, logs: dict, n: int, weights: dict | None = None) -> None:
        for key, value in logs.items():
            weight = n if weights is None or key not in weights else weights[key]
            if weight is None:
                self.current[key] = value if callable(value) else float(value)
                continue
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * weight
            self.totals[key] = self.totals.get(key, 0) + weight
        self.count += n

    def means(self, deferred: bool = True) -> dict[str, float]:
        """``{key: mean}``; the deferred running values computed, or, with
        ``deferred=False``, left out."""
        if not self.count:
            return {}
        means = {key: total / self.totals[key] if self.totals[key] else 0.0
                 for key, total in self.sums.items()}
        for key, value in self.current.items():
            if not callable(value):
                means[key] = value
            elif deferred:
                means[key] = float(value())
        return means


def _logs_and_weights(result, n: int):
    """``(logs, n, weights)`` for :meth:`RunningMeans.add` from what a
    ``train_step`` returned: its logs, or ``(logs, weights)``."""
    return (result[0], n, result[1]) if isinstance(result, tuple) else (result, n, None)


def _refuse_a_last_batch_of_one(model, n_samples: int, batch_size: int) -> None:
    """Refuse before an epoch's first batch what a training BatchNorm would
    refuse at its last batch (or at every batch, with ``batch_size=1``): one
    sample, which is one value per feature for a layer on flat features (it
    would normalise them to zeros).

    :func:`fit_loop` asks before the callbacks start, then again after their
    ``on_train_begin`` and after each ``on_epoch_begin``: a callback may
    make a BatchNorm train then (``transfer.GradualUnfreezing`` unfreezing
    one epochs into the run), which used to crash inside the layer at that
    epoch's last batch. Unless the last batch is of one sample this returns
    at once; else it walks the layers (once an epoch)."""
    every = batch_size == 1 or n_samples == 1
    if n_samples % batch_size != 1 and not every:
        return
    from .layers.normalization import BatchNorm
    stack = [model]
    while stack:
        layer = stack.pop()
        if (isinstance(layer, BatchNorm) and layer.trains and layer.built
                and int(np.prod(layer.input_shape[:-1])) < 2):
            cannot = (f"{layer._who} cannot train on one value per feature (it would "
                      f"normalise it to zero)")
            if every:
                raise ValueError(f"fit: {n_samples} sample(s) in batches of {batch_size} "
                                 f"make every batch one sample, and {cannot}; train with "
                                 f"batch_size of 2 or more on 2 samples or more")
            raise ValueError(
                f"fit: {n_samples} samples in batches of {batch_size} leave a last batch "
                f"of one sample, and {cannot}; choose another batch_size (e.g. "
                f"{batch_size + 1}) or one sample more or fewer")
        stack.extend(getattr(layer, "sublayers", list)())  # fit_loop's model need not be a Layer


def _warn_if_nothing_trains(model) -> None:
    """Keras 3's ``fit`` of a model without trainable weights (only
    activations and reshapes, or every layer frozen) at its first step: a
    warning, and the epochs run -- loss and metrics logged, callbacks
    called -- changing no weight of the model."""
    trainable = getattr(model, "trainable_parameters", None)  # fit_loop's model need not be a Layer
    if trainable is not None and not trainable():
        who = getattr(model, "_who", type(model).__name__)
        _userwarn.warn(f"fit: {who} has no trainable parameters (no layer with weights, or "
                       f"every one frozen), so training changes none of its weights; the "
                       f"loss and metrics are still computed and logged (as Keras does)",
                       UserWarning)


def fit_loop(model, train_step, n_samples: int, *, epochs: int = 1, batch_size: int = 32,
             shuffle: bool = True, seed: int | None = None, initial_epoch: int = 0,
             validate=None, callbacks=None, verbose: int = 1, stream=None,
             terminate_on_nan: bool = True, log_keys=None) -> History:
    """Train for epochs ``initial_epoch .. epochs - 1`` of mini-batches.

    Parameters
    ----------
    model : object
        Gets ``stop_training``/``stop_reason`` attributes; ``set_rng`` is
        called per epoch when present and ``seed`` is given.
    train_step : callable ``(idx: ndarray of int64) -> dict[str, float]``
        Trains on samples ``idx``; returns means over them (``"loss"``...).
        The epoch's logs weight each batch's by its size, or, when it returns
        ``(logs, weights)``, the keys of ``weights`` by the weight given
        there (a weighted loss's total sample weight; see
        :class:`RunningMeans`); a weight of None marks a running value (the
        epoch's so far), taken as it is, or computed when read if given as
        a function of no arguments (deferred: the batch logs hold it only
        when a callback reads their metrics, see the module docstring).
    n_samples : int
    epochs : int
        Index of the epoch to stop before (Keras' meaning: with
        ``initial_epoch=2, epochs=4`` two epochs run).
    batch_size : int
    shuffle : bool
        A new random order every epoch (else the data order).
    seed : int, optional
        A non-negative integer; makes shuffling and layer randomness
        reproducible (see the module docstring).
    validate : callable ``() -> dict[str, float]``, optional
        Run after each epoch; its keys are logged with a ``val_`` prefix.
    callbacks : list of Callback, optional
        A single Callback is taken as a list of one.
    verbose : {0, 1, 2, "auto"}
        See :mod:`tinynet.progress` ("auto", Keras' default, is 1). A
        :class:`~tinynet.progress.ProgressBar` among ``callbacks`` is used
        instead of the one ``verbose`` would add.
    stream : file-like, optional
        Where progress and the callbacks' lines go (default ``sys.stdout``,
        looked up when the run starts; ``params["lines"]``,
        :class:`~tinynet.callbacks.CallbackLines`).
    terminate_on_nan : bool, default True
        Add :class:`~tinynet.callbacks.TerminateOnNaN`.
    log_keys : list of str, optional
        Every key the epoch logs will hold (the step's and the ``val_`` ones),
        if the caller knows them: each callback receives them, with those
        added (``added_log_keys``) by itself and by the callbacks before it
        in the chain, as ``params["metrics"]``, so that a monitor of a key
        never logged -- or logged only after the monitor has looked (an
        ``"lr"`` added by a scheduler later in the list) -- fails before the
        first epoch; and the step's own keys (those not ``val_``), which the
        batch logs hold, as ``params["batch_metrics"]``.

    Returns
    -------
    History
    """
    n_samples = check_positive_int(n_samples, "fit", "number of samples")
    batch_size = check_positive_int(batch_size, "fit", "batch_size")
    shuffle = check_bool(shuffle, "fit", "shuffle")
    terminate_on_nan = check_bool(terminate_on_nan, "fit", "terminate_on_nan")
    epochs = check_non_negative_int(epochs, "fit", "epochs")
    initial_epoch = check_non_negative_int(initial_epoch, "fit", "initial_epoch")
    verbose = check_verbose(verbose, "fit")
    seed = check_seed(seed, "fit")
    callbacks = as_callback_list(callbacks, "fit")
    _refuse_a_last_batch_of_one(model, n_samples, batch_size)
    # a History among the callbacks is the one filled and returned (as Keras)
    history = next((cb for cb in callbacks if isinstance(cb, History)), None)
    chain: list[Callback] = []
    if terminate_on_nan and not any(isinstance(cb, TerminateOnNaN) for cb in callbacks):
        chain.append(TerminateOnNaN())
    chain.extend(callbacks)
    if history is None:
        history = History()
        chain.append(history)  # after the user's callbacks: it records what they log ("lr")
    # a ProgressBar among the callbacks is the one shown, with its own settings (as Keras)
    if verbose and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        chain.append(ProgressBar(verbose=verbose, stream=stream))
    cbs = CallbackList(chain)
    steps = n_batches(n_samples, batch_size)
    cbs.set_model(model)
    lines = CallbackLines(stream)  # the callbacks' lines of this run, on fit's stream
    params = {"epochs": epochs, "steps": steps, "batch_size": batch_size,
              "n_samples": n_samples, "verbose": verbose, "do_validation": validate is not None,
              "lines": lines}
    if log_keys is not None:
        if isinstance(log_keys, str) or not all(isinstance(k, str) for k in log_keys):
            raise TypeError(f"fit_loop expected log_keys as a list of key names, received "
                            f"{log_keys!r}"[:200])
        log_keys = list(log_keys)
        # the batch logs: the step's running means, no validation, no added keys
        params["batch_metrics"] = [k for k in log_keys if not k.startswith("val_")]
    for cb in chain:  # the keys a callback adds reach it and the callbacks after it
        if log_keys is not None:
            log_keys = list(dict.fromkeys([*log_keys, *cb.added_log_keys]))
        cb.set_params(params if log_keys is None else {**params, "metrics": log_keys})
    # Without a seed, one fresh generator serves the whole run.
    run_rng = np.random.default_rng() if seed is None else None

    model.stop_training = False
    model.stop_reason = None
    try:
        cbs.on_train_begin()
        _refuse_a_last_batch_of_one(model, n_samples, batch_size)  # (a callback may unfreeze one)
        # (asked after on_train_begin: a progress bar knows then if it draws live)
        every_batch_reads = cbs.reads_batch_metrics()
        logs = None  # what on_train_end receives: the last epoch's logs, as Keras
        looked = False  # whether anything trains: asked at the first step, after the callbacks
        for epoch in range(initial_epoch, epochs):
            if seed is not None and hasattr(model, "set_rng"):
                model.set_rng(epoch_rng(seed, epoch, LAYER_STREAM))
            order_rng = None
            if shuffle:
                order_rng = run_rng if seed is None else epoch_rng(seed, epoch, SHUFFLE_STREAM)
            cbs.on_epoch_begin(epoch)
            _refuse_a_last_batch_of_one(model, n_samples, batch_size)  # (GradualUnfreezing)
            running = RunningMeans()
            for batch, idx in enumerate(batch_indices(n_samples, batch_size, order_rng)):
                cbs.on_train_batch_begin(batch)
                if not looked:  # (a callback may unfreeze layers first: GradualUnfreezing)
                    _warn_if_nothing_trains(model)
                    looked = True
                running.add(*_logs_and_weights(train_step(idx), len(idx)))
                # the running metrics for a callback that reads them after every
                # batch, or after this one (the live bar, on the batches it draws)
                read = every_batch_reads or cbs.reads_batch_metrics_at(batch)
                cbs.on_train_batch_end(batch, running.means(deferred=read))
                if model.stop_training:
                    break
            logs = running.means()
            if validate is not None:  # also after a stop mid-epoch, as Keras
                logs.update({f"val_{key}": value for key, value in validate().items()})
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        cbs.on_train_end(logs)
    finally:  # (interrupted: the lines said so far are this run's, written now)
        lines.flush()
    return history
