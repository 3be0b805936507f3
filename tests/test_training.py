"""The generic loop (tinynet.training.fit_loop) with plain step functions,
and Sequential.fit's reproducibility built on it."""

import math

import numpy as np
import pytest

import tinynet as tn
from tinynet.callbacks import Callback
from tinynet.layers import Dense, Dropout
from tinynet.training import batch_indices, epoch_rng, fit_loop, RunningMeans


class Model:
    """The least a model needs for fit_loop."""

    def __init__(self):
        self.stop_training = False
        self.rngs = []

    def set_rng(self, rng):
        self.rngs.append(rng)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_batches_cover_every_sample_once():
    batches = batch_indices(10, 4, np.random.default_rng(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches)) == list(range(10))
    assert [list(b) for b in batch_indices(5, 2)] == [[0, 1], [2, 3], [4]]


def test_epoch_logs_are_batch_size_weighted_means_and_hooks_in_order():
    seen = []

    def step(idx):
        seen.append(idx.copy())
        return {"loss": float(idx.sum()), "count": float(len(idx))}

    rec = Recorder()
    history = fit_loop(Model(), step, 10, epochs=2, batch_size=4, shuffle=False,
                       callbacks=[rec], verbose=0,
                       validate=lambda: {"loss": 1.5})
    # samples 0..9 in batches [0-3], [4-7], [8, 9]: per-sample mean of idx.sum()
    expected = (6 * 4 + 22 * 4 + 17 * 2) / 10
    assert history.history["loss"] == [expected, expected]
    assert history.history["val_loss"] == [1.5, 1.5]
    assert history.history["count"] == [(16 + 16 + 4) / 10] * 2
    assert history.epoch == [0, 1]
    kinds = [e[0] for e in rec.events]
    assert kinds == (["train_begin"] + (["epoch_begin"] + ["batch_end"] * 3 + ["epoch_end"]) * 2
                     + ["train_end"])
    # batch logs are running means
    assert rec.events[2][2]["loss"] == 6.0
    assert rec.events[3][2]["loss"] == (6 * 4 + 22 * 4) / 8


def test_seeded_shuffles_depend_only_on_seed_and_epoch():
    def orders(initial_epoch, seed):
        got = []
        fit_loop(Model(), lambda idx: got.append(idx) or {"loss": 0.0}, 7, epochs=4,
                 batch_size=7, seed=seed, initial_epoch=initial_epoch, verbose=0)
        return [list(o) for o in got]

    full = orders(0, 3)
    assert orders(2, 3) == full[2:]
    assert full == orders(0, 3)
    assert full[0] != full[1]
    assert orders(0, 4) != full


def test_layer_rngs_are_set_per_epoch_from_the_seed():
    a, b = Model(), Model()
    fit_loop(a, lambda idx: {"loss": 0.0}, 3, epochs=2, seed=1, verbose=0)
    fit_loop(b, lambda idx: {"loss": 0.0}, 3, epochs=2, initial_epoch=1, seed=1, verbose=0)
    assert len(a.rngs) == 2 and len(b.rngs) == 1
    assert a.rngs[1].random() == b.rngs[0].random() == epoch_rng(1, 1, 1).random()


def test_nan_loss_stops_with_epoch_and_batch_in_the_message():
    calls = []

    def step(idx):
        calls.append(1)
        return {"loss": math.nan if len(calls) == 5 else 1.0}

    model = Model()
    with pytest.warns(RuntimeWarning, match=r"epoch 2/3, batch 2/3"):
        history = fit_loop(model, step, 9, epochs=3, batch_size=3, verbose=0,
                           validate=lambda: {"loss": 0.0})
    assert len(calls) == 5 and model.stop_training
    assert "epoch 2/3, batch 2/3" in history.stop_reason
    assert history.epoch == [0, 1] and math.isnan(history.history["loss"][1])
    assert history.history["val_loss"][1] == 0.0  # validated after the stop, as Keras


def test_nan_check_can_be_turned_off():
    history = fit_loop(Model(), lambda idx: {"loss": math.inf}, 4, epochs=2, verbose=0,
                       terminate_on_nan=False)
    assert history.epoch == [0, 1] and history.stop_reason is None


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_size": 0}, ValueError), ({"batch_size": -3}, ValueError),
    ({"batch_size": 2.5}, TypeError), ({"epochs": -1}, ValueError),
    ({"initial_epoch": -1}, ValueError), ({"verbose": 3}, ValueError),
    ({"shuffle": "no"}, TypeError), ({"shuffle": 0}, TypeError),
    ({"terminate_on_nan": "False"}, TypeError), ({"log_keys": "loss"}, TypeError),
    ({"log_keys": ["loss", 1]}, TypeError),
])
def test_bad_loop_settings(kwargs, error):
    with pytest.raises(error):
        fit_loop(Model(), lambda idx: {"loss": 0.0}, 4, **kwargs)


@pytest.mark.parametrize("batch_size, mean", [(2, (2 * 2 + 2 * 2 + 1 * 1) / 5), (1, 1.0)])
def test_a_model_that_is_not_a_layer_trains_with_a_last_batch_of_one(batch_size, mean):
    # the BatchNorm search walked model.sublayers(), which fit_loop does not ask for
    history = fit_loop(Model(), lambda idx: {"loss": float(len(idx))}, 5,
                       batch_size=batch_size, verbose=0)
    assert history.history["loss"] == [mean]  # batch means weighted by batch size


def test_zero_samples_refused():
    with pytest.raises(ValueError, match="number of samples"):
        fit_loop(Model(), lambda idx: {"loss": 0.0}, 0, verbose=0)


def test_running_means():
    means = RunningMeans()
    assert means.means() == {}
    means.add({"a": 1.0}, 1)
    means.add({"a": 4.0}, 3)
    assert means.means() == {"a": 13 / 4}


# --------------------------------------------------------- Sequential.fit
def _data(n=64, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def _lazy_model():
    # no input_dim: fit builds it, so fit's seed fixes the initial weights
    model = tn.Sequential([Dense(16, activation="relu"), Dropout(0.3), Dense(3)])
    model.compile(optimizer=tn.optim.Adam(lr=0.01), loss="cross_entropy",
                  metrics=["accuracy"])
    return model


def test_fit_twice_with_the_same_seed_gives_identical_weights():
    x, y = _data()
    a, b, c = _lazy_model(), _lazy_model(), _lazy_model()
    ha = a.fit(x, y, epochs=3, batch_size=8, seed=7, verbose=0)
    hb = b.fit(x, y, epochs=3, batch_size=8, seed=7, verbose=0)
    c.fit(x, y, epochs=3, batch_size=8, seed=8, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
    assert ha.history == hb.history
    assert not all(np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights()))


def test_reset_parameters_makes_a_constructed_model_reproducible():
    x, y = _data()
    weights = []
    for _ in range(2):
        model = tn.Sequential([Dense(8, activation="relu", input_dim=6), Dropout(0.5),
                               Dense(3)])
        model.compile(optimizer="sgd", loss="cross_entropy")
        model.reset_parameters(seed=3)
        model.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0)
        weights.append(model.get_weights())
    for wa, wb in zip(*weights):
        assert np.array_equal(wa, wb)


def test_reset_parameters_with_one_seed_gives_one_set_of_weights():
    # a layer with its own seed= drew from its own, advancing generator instead:
    # each reset_parameters(0) gave it other weights
    model = tn.Sequential([Dense(8, input_dim=6, seed=5), Dense(3)])
    first = model.reset_parameters(0).get_weights()
    again = model.reset_parameters(0).get_weights()
    other = tn.Sequential([Dense(8, input_dim=6), Dense(3)]).reset_parameters(0).get_weights()
    for a, b, c in zip(first, again, other):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_resume_equals_uninterrupted_run_in_memory():
    x, y = _data()
    full, part = _lazy_model(), _lazy_model()
    full.fit(x, y, epochs=4, batch_size=8, seed=5, verbose=0)
    part.fit(x, y, epochs=2, batch_size=8, seed=5, verbose=0)
    part.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, seed=5, verbose=0)
    for wa, wb in zip(full.get_weights(), part.get_weights()):
        assert np.array_equal(wa, wb)


def test_running_values_are_logged_as_they_are_and_reset_every_epoch():
    # a step may return the epoch's value so far of a metric it accumulates
    # (weight None): the loop logs it as it is, not averaged with earlier batches;
    # the accumulators start in the on_epoch_begin of the trainer's first callback
    class Counting(Model):
        def reset_metrics(self):  # no hook of the loop's (it called this before)
            raise AssertionError("fit_loop called reset_metrics")

    model = Counting()

    class Start(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.seen = []

    def step(idx):
        model.seen.extend(idx.tolist())
        return {"loss": float(len(idx)), "seen": float(len(model.seen))}, {"seen": None}

    batches = []

    class Batches(Callback):
        def on_batch_end(self, batch, logs=None):
            batches.append(logs["seen"])

    history = fit_loop(model, step, 10, epochs=2, batch_size=4, shuffle=False, verbose=0,
                       callbacks=[Start(), Batches()])
    assert batches == [4.0, 8.0, 10.0] * 2  # reset before each epoch
    assert history.history["seen"] == [10.0, 10.0]
    assert history.history["loss"] == [(4 * 4 + 4 * 4 + 2 * 2) / 10] * 2
    means = RunningMeans()
    means.add({"a": 1.0, "b": 5.0}, 2, {"b": None})
    means.add({"a": 4.0, "b": 7.0}, 1, {"b": None})
    assert means.means() == {"a": 2.0, "b": 7.0}


def test_sequential_fit_accumulates_each_epochs_metrics_afresh_and_drops_them_after():
    # the accumulators start in fit's first callback (as the multi-task
    # models'), not through a hook of fit_loop's; they are dropped when fit
    # ends (an AUC's holds every score of the epoch), where they stayed before
    x, y = _data()
    model = _lazy_model()
    seen = []

    class Samples(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model._epoch_metrics.samples)

    model.fit(x, y, epochs=3, batch_size=8, seed=0, verbose=0, callbacks=[Samples()])
    assert seen == [len(x)] * 3
    assert model._epoch_metrics is None
    assert not hasattr(model, "reset_metrics")


def test_a_deferred_running_value_is_computed_only_when_read():
    # a running value given as a function is called only if a callback reads the
    # batch logs' metrics, and for the epoch's logs
    model, calls = Model(), []
    model.seen = []

    def step(idx):
        model.seen.extend(idx.tolist())
        seen = len(model.seen)
        return ({"loss": 1.0, "seen": lambda: calls.append(seen) or float(seen)},
                {"seen": None})

    class Loss(Callback):  # reads the batch logs (the loss): not deferred values
        def __init__(self):
            super().__init__()
            self.logs = []

        def on_batch_end(self, batch, logs=None):
            self.logs.append(dict(logs))

        def reads_batch_metrics(self):
            return False

    quiet = Loss()
    history = fit_loop(model, step, 10, epochs=1, batch_size=4, shuffle=False, verbose=0,
                       callbacks=[quiet])
    assert calls == [10] and history.history["seen"] == [10.0]
    assert quiet.logs == [{"loss": 1.0}] * 3
    seen = []

    class Seen(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["seen"])

    calls.clear()
    model.seen = []
    fit_loop(model, step, 10, epochs=1, batch_size=4, shuffle=False, verbose=0,
             callbacks=[Seen()])
    assert seen == [4.0, 8.0, 10.0] and calls == [4, 8, 10, 10]
    means = RunningMeans()
    means.add({"a": 1.0, "b": lambda: 7}, 2, {"b": None})
    assert means.means(deferred=False) == {"a": 1.0} and means.means() == {"a": 1.0, "b": 7.0}
