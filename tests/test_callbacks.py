"""Callbacks: History, EarlyStopping, ModelCheckpoint, LearningRateScheduler,
TerminateOnNaN (through Sequential.fit and through fit_loop)."""

import io
import math
import os
import re
import warnings

import numpy as np
import pytest

import tinynet as tn
from tinynet.callbacks import (Callback, EarlyStopping, LearningRateScheduler,
                               ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)
from tinynet.layers import Dense
from tinynet.training import fit_loop


class ScriptedModel:
    """A fake model whose 'weights' are the epoch number, for EarlyStopping."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.array(-1.0)]
        self.epoch = -1

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w) for w in weights]


class EpochsBegun(Callback):
    """Records the epochs begun (none: training failed before the first)."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def _scripted_fit(model, values, callbacks, monitor_key="val_loss"):
    epochs = iter(range(len(values)))

    def step(idx):
        return {"loss": 0.0}

    def validate():
        epoch = next(epochs)
        model.weights = [np.array(float(epoch))]
        return {monitor_key[4:]: values[epoch]}

    return fit_loop(model, step, 2, epochs=len(values), batch_size=2, verbose=0,
                    validate=validate, callbacks=callbacks)


def test_early_stopping_waits_patience_epochs_and_restores_the_best():
    model = ScriptedModel()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = _scripted_fit(model, [1.0, 0.5, 0.6, 0.55, 0.4, 0.1], [stop])
    assert history.epoch == [0, 1, 2, 3]  # best at 1, two epochs without improvement
    assert stop.best == 0.5 and stop.best_epoch == 1 and stop.stopped_epoch == 3
    assert float(model.weights[0]) == 1.0  # the weights of epoch 1 are back
    assert "val_loss did not improve for 2 epoch(s)" in history.stop_reason
    assert "best 0.5 at epoch 2" in history.stop_reason


def test_early_stopping_min_delta_and_max_mode():
    model = ScriptedModel()
    stop = EarlyStopping(monitor="val_accuracy", patience=0, min_delta=0.05)
    assert stop.mode == "max"
    history = _scripted_fit(model, [0.5, 0.53, 0.9], [stop], monitor_key="val_accuracy")
    assert history.epoch == [0, 1]  # +0.03 is below min_delta
    assert float(model.weights[0]) == 1.0  # without restore the last weights stay


@pytest.mark.parametrize("callback", [EarlyStopping(), ReduceLROnPlateau(),
                                      ModelCheckpoint("m.npz", save_best_only=True)],
                         ids=["early_stopping", "plateau", "checkpoint"])
def test_a_val_monitor_without_validation_data_fails_before_training(callback):
    steps = []
    with pytest.raises(ValueError, match="monitors 'val_loss', but fit has no validation "
                                         "data: pass validation_data="):
        fit_loop(ScriptedModel(), lambda idx: steps.append(1) or {"loss": 0.0}, 2,
                 verbose=0, callbacks=[callback])
    assert steps == []  # it used to fail after the first epoch had trained


def test_early_stopping_start_from_epoch_ignores_the_warm_up_epochs():
    # Keras' start_from_epoch: no best and no waiting before that epoch
    model = ScriptedModel()
    stop = EarlyStopping(monitor="val_loss", patience=0, start_from_epoch=2,
                         restore_best_weights=True)
    history = _scripted_fit(model, [1.0, 2.0, 3.0, 2.5, 2.6, 0.1], [stop])
    assert history.epoch == [0, 1, 2, 3, 4]
    assert stop.best == 2.5 and stop.best_epoch == 3 and stop.stopped_epoch == 4
    assert float(model.weights[0]) == 3.0


def test_early_stopping_baseline_must_be_beaten_to_keep_training():
    # Keras 3's baseline: an improving epoch resets the wait only if it also
    # beats the baseline, else it counts as waiting; but only an epoch that
    # does not improve stops training. The best epoch is restored whether or
    # not it beat the baseline.
    model = ScriptedModel()
    stop = EarlyStopping(monitor="val_loss", patience=2, baseline=0.5,
                         restore_best_weights=True)
    history = _scripted_fit(model, [0.9, 0.8, 0.7, 0.75, 0.4], [stop])
    assert history.epoch == [0, 1, 2, 3] and stop.best == 0.7 and stop.stopped_epoch == 3
    assert float(model.weights[0]) == 2.0
    assert "did not improve for 4 epoch(s) (best 0.7 at epoch 3, baseline 0.5)" in \
        history.stop_reason
    # improving at every epoch, never reaching the baseline: never stopped
    stop = EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    history = _scripted_fit(ScriptedModel(), [0.9, 0.8, 0.7, 0.6, 0.55], [stop])
    assert history.epoch == [0, 1, 2, 3, 4] and stop.stopped_epoch is None
    assert stop.wait == 5
    stop = EarlyStopping(monitor="val_loss", patience=2, baseline=0.5, min_delta=0.01)
    history = _scripted_fit(ScriptedModel(), [0.9, 0.45, 0.48, 0.3, 0.6, 0.7, 0.1], [stop])
    assert history.epoch == [0, 1, 2, 3, 4, 5] and stop.best_epoch == 3
    # "max" mode, below the baseline: epoch 0 improves on nothing yet, and never stops
    stop = EarlyStopping(monitor="val_accuracy", patience=1, baseline=0.8)
    history = _scripted_fit(ScriptedModel(), [0.75, 0.9, 0.95], [stop],
                            monitor_key="val_accuracy")
    assert history.epoch == [0, 1, 2] and stop.best == 0.95 and stop.wait == 0
    stop = EarlyStopping(monitor="val_accuracy", patience=1, baseline=0.8)
    history = _scripted_fit(ScriptedModel(), [0.75, 0.7, 0.9], [stop],
                            monitor_key="val_accuracy")
    assert history.epoch == [0, 1] and stop.best == 0.75


def test_early_stopping_never_stops_at_epoch_zero():
    # Keras: an epoch 0 that does not improve (a NaN) does not stop training
    stop = EarlyStopping(monitor="val_loss", patience=0)
    history = _scripted_fit(ScriptedModel(), [math.nan, 0.5, 0.6], [stop])
    assert history.epoch == [0, 1, 2] and stop.best == 0.5 and stop.stopped_epoch == 2


def test_early_stopping_verbose_prints_why_it_stopped_once_and_the_restore(capsys):
    # EarlyStopping(verbose=1), a common Keras call, raised TypeError. It prints
    # the stop reason (History.stop_reason's line) and the restore; the
    # progress bar, which prints the stop reason too, does not repeat it.
    stop = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True,
                         verbose=1)
    history = _scripted_fit(ScriptedModel(), [1.0, 0.5, 0.6, 0.1], [stop])
    assert capsys.readouterr().out == (f"{history.stop_reason}\n"
                                       f"EarlyStopping: restored the weights of the best "
                                       f"epoch, 2 (val_loss 0.5)\n")
    assert history.stop_reason.startswith("EarlyStopping: val_loss did not improve for 1")
    x, y = _data()
    for verbose in (1, 2):
        model = _model()
        stop = EarlyStopping(monitor="loss", patience=0, min_delta=100.0, verbose=1)
        history = model.fit(x, y, epochs=5, verbose=verbose, callbacks=[stop])
        lines = capsys.readouterr().out.splitlines()
        assert lines[-1] == history.stop_reason and lines.count(history.stop_reason) == 1
        assert lines[-2].startswith("Epoch 2/5")
    # quiet by default; a run without a stop prints nothing
    _scripted_fit(ScriptedModel(), [1.0, 0.5, 0.6], [EarlyStopping(patience=0)])
    _scripted_fit(ScriptedModel(), [1.0, 0.5], [EarlyStopping(patience=0, verbose=1)])
    assert capsys.readouterr().out == ""


def test_reduce_lr_on_plateau_and_checkpoint_verbose_print_when_they_act(capsys, tmp_path):
    # ReduceLROnPlateau(verbose=1) raised TypeError. As Keras, a line at each
    # cut, and ModelCheckpoint's at each save or epoch without improvement;
    # printed after the epoch's progress line (not inside a live bar's)
    x, y = _data()
    model = _model()
    plateau = ReduceLROnPlateau(monitor="loss", patience=0, min_delta=100.0, verbose=1)
    checkpoint = ModelCheckpoint(tmp_path / "m.npz", monitor="loss", save_best_only=True,
                                 min_delta=100.0, verbose=1)
    history = model.fit(x, y, epochs=2, verbose=2, callbacks=[plateau, checkpoint])
    loss = history.history["loss"][0]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == [
        "Epoch 1/2",
        f"Epoch 1: loss improved from inf to {loss:.6g}, saving the model to "
        f"{tmp_path / 'm.npz'}",
        "Epoch 2/2",
        "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.01.",
        f"Epoch 2: loss did not improve from {loss:.6g}"]
    model.fit(x, y, epochs=2, verbose=0, callbacks=[
        ModelCheckpoint(tmp_path / "n.npz"), ReduceLROnPlateau(monitor="loss", patience=0,
                                                               min_delta=100.0)])
    assert capsys.readouterr().out == ""  # quiet by default
    for make in (EarlyStopping, ReduceLROnPlateau,
                 lambda **kw: ModelCheckpoint("m.npz", **kw)):
        made = make(verbose=True)
        assert made.verbose == 1 and make(verbose=2).verbose == 2  # (2 is 1 for them, as Keras)
        for bad in (1.0, "auto", 3, None):
            with pytest.raises(ValueError, match=f"{type(made).__name__} expected verbose 0, "
                                                 f"1 or 2, received {re.escape(repr(bad))}"):
                make(verbose=bad)


@pytest.mark.parametrize("kwargs", [{"patience": -1}, {"mode": "bigger"}, {"patience": 1.5},
                                    {"start_from_epoch": -1}, {"start_from_epoch": 1.0},
                                    {"baseline": math.nan}, {"baseline": math.inf}])
def test_early_stopping_bad_settings(kwargs):
    with pytest.raises(ValueError):
        EarlyStopping(**kwargs)
    with pytest.raises(TypeError, match="baseline as a real number"):
        EarlyStopping(baseline="0.5")


@pytest.mark.parametrize("make, flag", [
    (EarlyStopping, "restore_best_weights"),
    (lambda **kw: ModelCheckpoint("m.npz", **kw), "save_best_only"),
    (lambda **kw: ModelCheckpoint("m.npz", **kw), "include_optimizer"),
])
def test_callback_flags_must_be_bools(make, flag):
    # save_best_only="False" used to mean True
    with pytest.raises(TypeError, match=f"expected {flag} as True or False, received 'False'"):
        make(**{flag: "False"})
    assert getattr(make(**{flag: np.False_}), flag) is False


def _model(seed=0):
    model = tn.Sequential([Dense(8, activation="relu", input_dim=4), Dense(3)])
    model.reset_parameters(seed)
    model.compile(optimizer=tn.optim.SGD(lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n)


def test_early_stopping_on_a_real_model_restores_best_weights():
    x, y = _data()
    x_val, y_val = _data(seed=1)
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = (logs["val_loss"], self.model.get_weights())

    model = _model()
    model.compile(optimizer=tn.optim.SGD(lr=2.0), loss="cross_entropy")  # overshoots
    stop = EarlyStopping(patience=1, restore_best_weights=True)
    model.fit(x, y, epochs=30, batch_size=8, validation_data=(x_val, y_val),
              callbacks=[Snap(), stop], verbose=0, seed=0)
    best_epoch = min(snapshots, key=lambda e: snapshots[e][0])
    assert stop.best_epoch == best_epoch
    for got, want in zip(model.get_weights(), snapshots[best_epoch][1]):
        assert np.array_equal(got, want)


def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    x, y = _data()
    model = _model()
    every = ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.npz", monitor="loss")
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=3, batch_size=8, validation_data=_data(seed=2),
                        callbacks=[every, best], verbose=0, seed=0)
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "ckpt-01.npz", "ckpt-02.npz",
                                            "ckpt-03.npz"]
    last = tn.load(tmp_path / "ckpt-03.npz")
    for got, want in zip(last.get_weights(), model.get_weights()):
        assert np.array_equal(got, want)
    best_epoch = int(np.argmin(history.history["val_loss"]))
    assert best.best_epoch == best_epoch
    assert best.saved[-1] == str(tmp_path / "best.npz")
    assert len(best.saved) == 1 + sum(
        history.history["val_loss"][e] < min(history.history["val_loss"][:e])
        for e in range(1, 3))


@pytest.mark.parametrize("path", [None, 3, b"m.npz"])
def test_model_checkpoint_path_must_be_a_file_path(path):
    # ModelCheckpoint(None) used to save to a file named "None"
    with pytest.raises(TypeError, match="ModelCheckpoint expected path as a str or "
                                        "os.PathLike file path"):
        ModelCheckpoint(path)


def test_model_checkpoint_takes_keras_filepath(tmp_path):
    # Keras names it filepath=; tinynet took only path= (TypeError)
    x, y = _data()
    check = ModelCheckpoint(filepath=tmp_path / "k-{epoch}.npz", monitor="loss")
    assert check.path == check.filepath == str(tmp_path / "k-{epoch}.npz")
    _model().fit(x, y, epochs=2, batch_size=8, callbacks=[check], verbose=0, seed=0)
    assert sorted(os.listdir(tmp_path)) == ["k-1.npz", "k-2.npz"]
    assert ModelCheckpoint(tmp_path / "p.npz").filepath == str(tmp_path / "p.npz")
    with pytest.raises(TypeError, match="file path once, as path= or as filepath="):
        ModelCheckpoint(tmp_path / "a.npz", filepath=tmp_path / "b.npz")
    with pytest.raises(TypeError, match="file path once"):
        ModelCheckpoint(path=tmp_path / "a.npz", filepath=tmp_path / "a.npz")
    with pytest.raises(TypeError, match="received None"):
        ModelCheckpoint()
    with pytest.raises(TypeError, match="expected path as a str"):
        ModelCheckpoint(filepath=3)


@pytest.mark.parametrize("verbose", ["yes", 3, 0.5, 1.0, "auto"])
def test_learning_rate_scheduler_verbose_is_0_1_or_2(verbose):
    # one check of verbose for every callback (2, which Keras takes, is 1 for them)
    with pytest.raises(ValueError, match="LearningRateScheduler expected verbose 0, 1 or 2, "):
        LearningRateScheduler(lambda epoch: 0.1, verbose=verbose)
    assert LearningRateScheduler(lambda epoch: 0.1, verbose=2).verbose == 2


def test_model_checkpoint_bad_path_template(tmp_path):
    x, y = _data()
    with pytest.raises(ValueError, match="cannot fill the path"):
        _model().fit(x, y, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "{nope}.npz")])


@pytest.mark.parametrize("callback, match", [
    (EarlyStopping(monitor="val_acc"), "EarlyStopping monitors 'val_acc', which fit will "
                                       "not log; did you mean 'val_accuracy'"),
    (ReduceLROnPlateau(monitor="acc"), "ReduceLROnPlateau monitors 'acc', which fit will not"
                                       " log; did you mean 'accuracy'.*it logs: loss, "
                                       "accuracy, val_loss, val_accuracy, lr"),
    (ModelCheckpoint("best.npz", monitor="val_los", save_best_only=True), "'val_los'"),
    (ModelCheckpoint("m-{val_acc:.2f}.npz"), "cannot fill the path 'm-{val_acc:.2f}.npz'"),
], ids=["early_stopping", "plateau", "checkpoint", "checkpoint_path"])
def test_a_monitor_or_path_field_fit_will_not_log_fails_before_training(callback, match):
    # it used to fail only after the first epoch had trained
    x, y = _data()
    count = EpochsBegun()
    with pytest.raises(ValueError, match=match):
        _model().fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
                     callbacks=[count, callback])
    assert count.epochs == []


def test_a_top_5_accuracy_compiled_by_its_name_may_be_monitored_by_it():
    # "top_5_accuracy" was logged as "top_k_accuracy": this monitor was refused
    # ("did you mean 'val_top_k_accuracy'?") while "val_top_3_accuracy" was fine
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 4)).astype(np.float32), np.arange(24) % 6
    model = tn.Sequential([Dense(6, input_dim=4)])
    model.compile(optimizer=tn.optim.SGD(lr=0.1), loss="cross_entropy",
                  metrics=["top_5_accuracy", "top_3_accuracy"])
    stop = EarlyStopping(monitor="val_top_5_accuracy", patience=5)
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[stop],
                        seed=0)
    assert {"top_5_accuracy", "val_top_5_accuracy", "val_top_3_accuracy"} <= set(
        history.history)
    assert stop.mode == "max"


def test_a_callbacks_own_log_keys_may_be_monitored():
    class F1(Callback):
        added_log_keys = ("f1",)

        def on_epoch_end(self, epoch, logs=None):
            logs["f1"] = 0.5

    x, y = _data()
    stop = EarlyStopping(monitor="f1", patience=0)
    history = _model().fit(x, y, epochs=3, verbose=0, callbacks=[
        F1(), stop, LearningRateScheduler(lambda epoch: 0.1),
        EarlyStopping(monitor="lr", mode="min"),
        ReduceLROnPlateau(monitor="loss")])
    assert history.epoch == [0, 1] and stop.best == 0.5
    # each key once; a callback's keys reach the callbacks after it
    assert stop.params["metrics"] == ["loss", "accuracy", "f1"]
    assert history.params["metrics"] == ["loss", "accuracy", "f1", "lr"]


@pytest.mark.parametrize("callback, match", [
    (EarlyStopping(monitor="lr"), "EarlyStopping monitors 'lr', which fit will not log.*"
                                  "reaches only the callbacks after it"),
    (ModelCheckpoint("m-{lr}.npz"), "cannot fill the path 'm-{lr}.npz'.*"
                                    "reaches only the callbacks after it"),
], ids=["early_stopping", "checkpoint_path"])
def test_a_key_added_by_a_later_callback_is_refused_before_training(callback, match):
    # the scheduler after it adds "lr" only once it has run, so the callback before it
    # failed after the first epoch had trained (its check counted every callback's keys)
    x, y = _data()
    count = EpochsBegun()
    with pytest.raises(ValueError, match=match):
        _model().fit(x, y, epochs=2, verbose=0, callbacks=[
            count, callback, LearningRateScheduler(lambda epoch: 0.1)])
    assert count.epochs == []


def test_model_checkpoint_missing_directory_fails_before_training(tmp_path):
    x, y = _data()
    model = _model()
    before = model.get_weights()
    count = EpochsBegun()
    with pytest.raises(FileNotFoundError, match="ModelCheckpoint expected the directory of "
                                                ".*nope.*to exist"):
        model.fit(x, y, epochs=2, verbose=0, seed=0, callbacks=[
            count, ModelCheckpoint(tmp_path / "nope" / "m-{epoch}.npz")])
    assert count.epochs == []  # no epoch trained
    assert all(np.array_equal(u, v) for u, v in zip(model.get_weights(), before))


def test_learning_rate_scheduler_one_and_two_argument_schedules():
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)])
    assert history.history["lr"] == [0.1, 0.05, 0.025]
    assert model.optimizer.lr == 0.025
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch, lr: lr * 2)])
    assert history.history["lr"] == [0.05, 0.1]
    with pytest.raises(TypeError):
        LearningRateScheduler(0.1)


def test_learning_rate_scheduler_keeps_the_other_groups_ratios_to_the_first():
    # it set every group to the schedule's rate: discriminative rates and a
    # multi-task weighting_lr were lost (PyTorch's LambdaLR scales each
    # group's own base rate)
    x, y = _data()
    model = _model()
    groups = tn.transfer.discriminative_param_groups(model, 0.08, factor=4.0)
    model.compile(tn.optim.SGD(groups), loss="cross_entropy")
    bases = [g["lr"] for g in model.optimizer.param_groups]
    assert len(bases) > 1 and bases[0] != bases[-1]
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)])
    assert history.history["lr"] == [0.1, 0.05, 0.025]
    rates = [g["lr"] for g in model.optimizer.param_groups]
    assert rates == pytest.approx([0.025 * b / bases[0] for b in bases], rel=1e-12)
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[  # the same bases later on
        LearningRateScheduler(lambda epoch, lr: lr * 2)])
    assert [g["lr"] for g in model.optimizer.param_groups] == pytest.approx(
        [0.1 * b / bases[0] for b in bases], rel=1e-12)
    # a first group of base rate 0 gives no ratio
    model.compile(tn.optim.SGD([{**g, "lr": 0.0 if i == 0 else 0.1}
                                for i, g in enumerate(groups)]), loss="cross_entropy")
    with pytest.raises(ValueError, match="first parameter group's base rate is 0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e: 0.1)])
    # groups all at base 0 (SGD(lr=0.0) and a warm-up) have no ratio to keep: each
    # gets the schedule's rate, as before groups kept ratios
    model.compile(tn.optim.SGD([{**g, "lr": 0.0} for g in groups]), loss="cross_entropy")
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch: 1e-3 * (epoch + 1))])
    assert history.history["lr"] == [1e-3, 2e-3]
    assert [g["lr"] for g in model.optimizer.param_groups] == [2e-3] * len(groups)


def test_learning_rate_scheduler_keeps_a_multi_task_weighting_lrs_ratio():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4))
    y = {"a": rng.standard_normal((16, 1)), "b": rng.standard_normal((16, 1))}
    model = tn.mtl.HardSharing((4,), trunk=[Dense(6, seed=0)],
                               heads={"a": [Dense(1, seed=1)], "b": [Dense(1, seed=2)]})
    model.compile(tn.optim.Adam(lr=1e-3), loss="mse", weighting="uncertainty",
                  weighting_lr=0.1)
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[LearningRateScheduler(lambda e: 1e-3 * 0.5 ** e)])
    assert [g["lr"] for g in model.optimizer.param_groups] == pytest.approx([5e-4, 0.05])


def test_learning_rate_scheduler_resumes_at_initial_epoch():
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1))])
    assert history.history["lr"] == [1 / 3, 1 / 4] and history.epoch == [2, 3]


def test_nan_loss_stops_sequential_fit_and_history_records_it():
    x, y = _data()
    model = _model()
    model.compile(optimizer=tn.optim.SGD(lr=1e30), loss="cross_entropy")
    with pytest.warns(RuntimeWarning, match=r"TerminateOnNaN: the loss became nan at epoch "
                                            r"\d+/50, batch \d+/4"), np.errstate(all="ignore"):
        history = model.fit(x * 1e3, y, epochs=50, batch_size=8, verbose=0)
    assert model.stop_training and len(history.epoch) < 50
    assert not math.isfinite(history.history["loss"][-1])
    assert history.stop_reason.startswith("TerminateOnNaN")


def test_a_user_terminate_on_nan_is_not_doubled():
    calls = []

    class Counting(TerminateOnNaN):
        def on_batch_end(self, batch, logs=None):
            calls.append(batch)
            super().on_batch_end(batch, logs)

    fit_loop(ScriptedModel(), lambda idx: {"loss": 1.0}, 4, batch_size=2, verbose=0,
             callbacks=[Counting()])
    assert calls == [0, 1]


def test_callbacks_must_be_callback_instances():
    with pytest.raises(TypeError, match="Callback"):
        fit_loop(ScriptedModel(), lambda idx: {"loss": 1.0}, 4, verbose=0,
                 callbacks=[lambda: None])


def test_a_single_callback_is_taken_as_a_list_of_one():
    seen = []

    class Record(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    x, y = _data()
    _model().fit(x, y, epochs=2, verbose=0, callbacks=Record())  # as Keras accepts
    assert seen == [0, 1]
    for bad in (3, "History", {"a": Record()}):
        with pytest.raises(TypeError, match="fit expected a list of callbacks"):
            fit_loop(ScriptedModel(), lambda idx: {"loss": 1.0}, 4, verbose=0,
                     callbacks=bad)


def test_learning_rate_scheduler_drives_a_tinynet_schedule_per_group():
    x, y = _data()
    model = tn.Sequential([Dense(5, input_dim=4), Dense(3)])
    body, head = model.layers
    optimizer = tn.optim.SGD([{"params": body.parameters(), "lr": 0.01},
                              {"params": head.parameters(), "lr": 0.1}])
    model.compile(optimizer=optimizer, loss="cross_entropy")
    schedule = tn.optim.StepLR(optimizer, step_size=2, gamma=0.5)
    seen = []

    class Rates(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([g["lr"] for g in self.model.optimizer.param_groups])

    history = model.fit(x, y, epochs=5, verbose=0,
                        callbacks=[LearningRateScheduler(schedule), Rates()])
    assert seen == [[0.01 * 0.5 ** (e // 2), 0.1 * 0.5 ** (e // 2)] for e in range(5)]
    assert history.history["lr"] == [row[0] for row in seen]
    # resuming at epoch 3 with a fresh schedule gives epoch 3's rates
    seen.clear()
    model.fit(x, y, epochs=4, initial_epoch=3, verbose=0,
              callbacks=[LearningRateScheduler(tn.optim.StepLR(optimizer, 2, 0.5)), Rates()])
    assert seen == [[0.01 * 0.5, 0.1 * 0.5]]


def test_reduce_lr_on_plateau_callback():
    model = ScriptedModel()
    model.optimizer = tn.optim.SGD(lr=1.0)
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.5)
    history = _scripted_fit(model, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9], [plateau])
    # bad epochs 2 and 3: more than patience=1 at epoch 3, then again at epoch 5;
    # "lr" is the rate each epoch used (as LearningRateScheduler logs it)
    assert history.history["lr"] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert ReduceLROnPlateau(monitor="val_accuracy").mode == "max"


@pytest.mark.parametrize("plateau_first", [True, False])
def test_the_logged_lr_is_the_rate_the_epoch_used_whatever_the_callback_order(plateau_first):
    # a plateau before the schedule in the list cuts the rate at an epoch's end
    # before the schedule logs it: it must log the rate the epoch ran at
    model = ScriptedModel()
    model.optimizer = tn.optim.SGD([tn.Param(np.zeros(1))], lr=1.0)
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=0, factor=0.5)
    schedule = LearningRateScheduler(tn.optim.StepLR(model.optimizer, step_size=100))

    class Used(Callback):
        used = []

        def on_train_batch_begin(self, batch, logs=None):
            self.used.append(float(model.optimizer.lr))

    callbacks = [plateau, schedule] if plateau_first else [schedule, plateau]
    history = _scripted_fit(model, [1.0, 1.5, 2.0, 2.5], [*callbacks, Used()])
    assert Used.used == [1.0, 1.0, 0.5, 0.25]  # cut after epochs 1 and 2
    assert history.history["lr"] == Used.used


def test_reduce_lr_on_plateau_takes_keras_min_delta_and_names_unknown_options():
    model = ScriptedModel()
    model.optimizer = tn.optim.SGD(lr=1.0)
    plateau = ReduceLROnPlateau(monitor="val_loss", patience=0, factor=0.5, min_delta=0.2)
    history = _scripted_fit(model, [1.0, 0.9, 0.85, 0.5], [plateau])
    # an improvement counts only when it beats the best by 0.2 (absolute)
    assert history.history["lr"] == [1.0, 1.0, 0.5, 0.25]
    with pytest.raises(TypeError, match=r"unexpected option\(s\) \['min_deltas'\]"):
        ReduceLROnPlateau(min_deltas=0.1)
    with pytest.raises(TypeError, match="min_delta .* or threshold"):
        ReduceLROnPlateau(min_delta=0.1, threshold=0.2)


@pytest.mark.parametrize("kwargs, match", [
    ({"factor": 2.0}, "ReduceLROnPlateau expected factor"),
    ({"patience": -1}, r"ReduceLROnPlateau expected patience as an integer >= 0"),
    ({"threshold_mode": "relative"}, r"threshold_mode in \('rel', 'abs'\)"),
    ({"min_delta": float("nan")}, "ReduceLROnPlateau expected threshold"),
    ({"min_lr": [0.1, -1.0]}, "ReduceLROnPlateau expected min_lr"),
])
def test_reduce_lr_on_plateau_refuses_bad_options_when_made(kwargs, match):
    # they were refused only when fit started
    with pytest.raises(ValueError, match=match):
        ReduceLROnPlateau(**kwargs)


def test_model_checkpoint_keeps_its_best_across_fits(tmp_path):
    # a second fit with the same callback used to start from +inf, so its
    # first (worse) epoch replaced the best file (Keras keeps the best)
    model = ScriptedModel()
    saved = []
    model.save = lambda path, include_optimizer=True: saved.append(float(model.weights[0]))
    best = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    _scripted_fit(model, [3.0, 1.0], [best])
    _scripted_fit(model, [4.0, 2.0], [best])
    assert saved == [0.0, 1.0] and best.best == 1.0  # nothing from the second fit


def test_a_nan_stop_saves_no_checkpoint_validates_and_still_restores(tmp_path):
    x, y = _data()
    model = _model()
    calls = []

    class BlowUp(Callback):  # the weights turn NaN in the second epoch's second batch
        def on_batch_end(self, batch, logs=None):
            calls.append(batch)
            if len(calls) == 6:
                model.layers[0].W.value[...] = np.nan
                logs["loss"] = math.nan

    every = ModelCheckpoint(tmp_path / "ckpt-{epoch}-{val_loss:.3f}.npz")
    early = EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    with pytest.warns(RuntimeWarning) as caught:
        history = model.fit(x, y, epochs=3, batch_size=8, validation_data=_data(seed=2),
                            callbacks=[BlowUp(), every, early], verbose=0, seed=0)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("TerminateOnNaN: the loss became nan at epoch 2/3")
               for m in messages), messages
    assert any(re.search(r"weights after epoch 2 are not finite.*ckpt-1-.*stays", m)
               for m in messages), messages
    assert len(every.saved) == 1 and os.listdir(tmp_path) == [os.path.basename(every.saved[0])]
    assert "val_loss" in history.history and len(history.epoch) == 2
    # fit ended normally, so EarlyStopping put back epoch 1's finite weights
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_fit_fills_and_returns_the_history_passed_in():
    x, y = _data()
    mine = tn.callbacks.History()
    returned = _model().fit(x, y, epochs=2, verbose=0, callbacks=mine)
    assert returned is mine and len(mine.history["loss"]) == 2


@pytest.mark.parametrize("schedule", [lambda epoch, lr=0.1: lr * 0.5,
                                      lambda *args: args[1] * 0.5],
                         ids=["default_lr", "star_args"])
def test_learning_rate_scheduler_passes_the_rate_whenever_it_can_be_taken(schedule):
    # counting only required parameters gave these the constant 0.05
    x, y = _data()
    model = _model()
    history = model.fit(x, y, epochs=3, verbose=0,
                        callbacks=[LearningRateScheduler(schedule)])
    np.testing.assert_allclose(history.history["lr"], [0.05, 0.025, 0.0125])


def test_model_checkpoint_records_a_best_only_once_it_is_saved(tmp_path):
    # a failed save (a full disk) used to leave best at a model never written,
    # so a later, better model than the one on disk was not saved
    model = ScriptedModel()
    saved = []

    def save(path, include_optimizer=True):
        if not saved:
            saved.append(None)
            raise OSError(28, "No space left on device")
        saved.append(float(model.weights[0]))

    model.save = save
    best = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    with pytest.raises(OSError, match="No space left"):
        _scripted_fit(model, [1.0], [best])
    assert best.best == math.inf and best.saved == []
    _scripted_fit(model, [2.0], [best])
    assert saved[1:] == [0.0] and best.best == 2.0


def test_model_checkpoint_refuses_an_unwritable_directory_before_training(tmp_path,
                                                                          monkeypatch):
    import tinynet.callbacks as callbacks_mod
    monkeypatch.setattr(callbacks_mod.os, "access", lambda p, mode: False)
    with pytest.raises(PermissionError, match="ModelCheckpoint cannot write into .* not "
                                              "writable"):
        _scripted_fit(ScriptedModel(), [1.0], [ModelCheckpoint(tmp_path / "m.npz")])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"monitor": None}, TypeError, "EarlyStopping expected monitor as the name of a logged "
                                   "value .*received None"),
    ({"min_delta": math.nan}, ValueError, r"EarlyStopping expected min_delta in \(-inf, inf\), "
                                          r"received nan"),
    ({"min_delta": math.inf}, ValueError, "expected min_delta in"),
    ({"min_delta": "0.1"}, TypeError, "expected min_delta as a real number"),
])
def test_monitor_callbacks_refuse_a_bad_monitor_or_min_delta(kwargs, error, match):
    # min_delta=nan made no epoch an improvement (training stopped after
    # patience epochs, "best none"); monitor=None failed inside `in`
    with pytest.raises(error, match=match):
        EarlyStopping(**kwargs)
    with pytest.raises(error, match=match.replace("EarlyStopping", "ModelCheckpoint")):
        ModelCheckpoint("m.npz", **kwargs)
    assert EarlyStopping(min_delta=-0.1).min_delta == 0.1  # Keras takes its size
    with pytest.raises(TypeError, match="ReduceLROnPlateau expected monitor"):
        ReduceLROnPlateau(monitor=3)


def test_a_nan_stop_keeps_its_reason_when_early_stopping_also_stops():
    # EarlyStopping saw the NaN epoch's val_loss as no improvement and
    # overwrote the reason: History said "did not improve", not the NaN
    x, y = _data()
    model = _model()

    class BlowUp(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 1:  # (EarlyStopping never stops at epoch 0)
                model.layers[0].W.value[...] = np.nan
                logs["loss"] = math.nan

    early = EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN"):
        history = model.fit(x, y, epochs=3, batch_size=8, validation_data=_data(seed=2),
                            callbacks=[BlowUp(), early], verbose=0, seed=0)
    assert early.stopped_epoch == 1 and len(history.epoch) == 2
    assert history.stop_reason.startswith("TerminateOnNaN: the loss became nan at epoch 2/3")


def test_learning_rate_scheduler_refuses_a_schedule_of_another_optimizer():
    # after compiling again (Keras' fine-tuning step), a schedule made for the
    # first optimizer set that optimizer's rates: the model's stayed put
    x, y = _data()
    model = _model()
    schedule = tn.optim.StepLR(model.optimizer, step_size=1, gamma=0.5)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[LearningRateScheduler(schedule)])
    model.compile(optimizer=tn.optim.SGD(lr=0.01), loss="cross_entropy")
    count = EpochsBegun()
    with pytest.raises(ValueError, match="LearningRateScheduler: the StepLR drives another "
                                         "optimizer than the model's"):
        model.fit(x, y, epochs=2, verbose=0,
                  callbacks=[count, LearningRateScheduler(schedule)])
    assert count.epochs == [] and model.optimizer.lr == 0.01


def test_keras_3_batch_hook_names_are_called_as_the_legacy_ones():
    # Keras 3 calls on_train_batch_begin/end (on_batch_* are their legacy
    # aliases); a callback written for Keras overriding them was never called
    seen = []

    class Keras3(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch, logs["loss"]))

    class Legacy(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(("legacy", batch))

    fit_loop(ScriptedModel(), lambda idx: {"loss": 2.0}, 4, batch_size=2, verbose=0,
             callbacks=[Keras3(), Legacy()])
    assert seen == [("begin", 0), ("end", 0, 2.0), ("legacy", 0),
                    ("begin", 1), ("end", 1, 2.0), ("legacy", 1)]


def test_on_train_end_receives_the_last_epoch_logs_as_in_keras():
    # Keras passes the last epoch's logs to on_train_end; they were None here,
    # so a callback written for Keras failed on logs["loss"] after training
    seen = []

    class Final(Callback):
        def on_train_end(self, logs=None):
            seen.append(logs)

    x, y = _data()
    history = _model().fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
                           callbacks=[Final(), EarlyStopping(monitor="loss", patience=0,
                                                             min_delta=1e9)])
    assert history.epoch == [0, 1]  # stopped early: the logs of the last epoch run
    assert seen[0] == {key: column[-1] for key, column in history.history.items()}
    _model().fit(x, y, epochs=0, verbose=0, callbacks=[Final()])
    assert seen[1] is None  # no epoch ran, as Keras


@pytest.mark.parametrize("trailing", ["", "/"])
def test_model_checkpoint_refuses_a_directory_as_its_file_before_training(tmp_path, trailing):
    # the directory itself was not checked: an epoch trained, then the save failed
    x, y = _data()
    count = EpochsBegun()
    with pytest.raises(IsADirectoryError, match="directory"):
        _model().fit(x, y, epochs=2, verbose=0, callbacks=[
            count, ModelCheckpoint(str(tmp_path) + trailing, monitor="loss")])
    assert count.epochs == []


class SavingModel(ScriptedModel):
    """A fake model that records what ModelCheckpoint saves (path, weights)."""

    def __init__(self):
        super().__init__()
        self.saves = []

    def save(self, path, include_optimizer=True):
        self.saves.append((os.path.basename(path), float(self.weights[0])))


def test_model_checkpoint_save_freq_counts_batches_across_epochs(tmp_path):
    # Keras' integer save_freq: a save after every N-th batch, the count running on
    # from one epoch into the next; {batch} is the batch of the epoch (1-based)
    model = SavingModel()

    def step(idx):
        model.weights = [np.array(float(idx[0]))]
        return {"loss": 1.0}

    check = ModelCheckpoint(tmp_path / "m-{epoch}-{batch}-{loss:.1f}.npz", monitor="loss",
                            save_freq=3)
    fit_loop(model, step, 10, epochs=2, batch_size=2, shuffle=False, verbose=0,
             callbacks=[check], log_keys=["loss"])
    assert model.saves == [("m-1-3-1.0.npz", 4.0), ("m-2-1-1.0.npz", 0.0),
                           ("m-2-4-1.0.npz", 6.0)]


def test_model_checkpoint_save_freq_best_only_watches_the_running_batch_logs(tmp_path):
    model = SavingModel()
    losses = iter([3.0, 1.0, 2.0, 2.0, 0.0, 5.0])

    def step(idx):
        model.weights = [np.array(float(idx[0]))]
        return {"loss": next(losses)}

    check = ModelCheckpoint(tmp_path / "best.npz", monitor="loss", save_best_only=True,
                            save_freq=1)
    fit_loop(model, step, 6, epochs=1, batch_size=1, shuffle=False, verbose=0,
             callbacks=[check], log_keys=["loss"])
    # running means 3, 2, 2, 2, 1.6, 2.17: saved after batches 1, 2 and 5
    assert [w for _, w in model.saves] == [0.0, 1.0, 4.0]
    assert check.best == pytest.approx(1.6)


def test_model_checkpoint_save_freq_computes_the_metrics_only_on_the_batches_it_saves(
        tmp_path):
    # it asked for the running metrics after every batch; now after every
    # save_freq-th only (the count running on across epochs), and it still
    # monitors the running value of the epoch so far
    model, calls, epoch_acc = SavingModel(), [], []
    accuracies = iter([0.5, 0.1, 0.9, 0.2, 0.8, 0.3, 0.4, 0.6, 1.0, 0.0])

    def step(idx):  # one sample a batch: idx[0] is the batch of the epoch
        if idx[0] == 0:
            epoch_acc.clear()
        epoch_acc.append(next(accuracies))
        mean = float(np.mean(epoch_acc))  # a running value, computed when read
        return {"loss": 1.0, "acc": lambda: calls.append(idx[0]) or mean}, {"acc": None}

    check = ModelCheckpoint(tmp_path / "m-{acc:.2f}.npz", monitor="acc", save_best_only=True,
                            save_freq=2)
    fit_loop(model, step, 5, epochs=2, batch_size=1, shuffle=False, verbose=0,
             callbacks=[check], log_keys=["loss", "acc"])
    # batches 2 and 4 of epoch 1, 1, 3 and 5 of epoch 2; and each epoch's logs
    assert calls == [1, 3, 4, 0, 2, 4, 4]
    # running means 0.3 and 0.425 (saved), then 0.3, 0.433 (saved) and 0.46 (saved)
    assert [name for name, _ in model.saves] == ["m-0.30.npz", "m-0.42.npz", "m-0.43.npz",
                                                  "m-0.46.npz"]
    assert check.best == pytest.approx(0.46)


@pytest.mark.parametrize("kwargs, match", [
    ({"monitor": "val_loss", "save_best_only": True},
     r"save_freq=2 saves from the batch logs, which hold loss, accuracy only \(no validation "
     r"values, no added keys\): monitor one of those, or save at each epoch "
     r"\(save_freq='epoch'\), not 'val_loss'"),
    ({"path": "m-{val_loss}.npz"}, "cannot fill the path 'm-{val_loss}.npz'"),
    # a key a scheduler adds is in the epoch logs only: these failed at the first save
    ({"monitor": "lr", "save_best_only": True}, r"which hold loss, accuracy only .* not 'lr'"),
    ({"path": "m-{lr}.npz"}, r"cannot fill the path 'm-\{lr\}.npz'"),
], ids=["monitor", "path", "added-monitor", "added-path"])
def test_model_checkpoint_save_freq_refuses_keys_the_batch_logs_lack(kwargs, match):
    x, y = _data()
    count = EpochsBegun()
    check = ModelCheckpoint(**{"path": "m.npz", **kwargs, "save_freq": 2})
    schedule = LearningRateScheduler(lambda epoch: 0.1)
    with pytest.raises(ValueError, match=match):
        _model().fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
                     callbacks=[count, schedule, check])
    assert count.epochs == []


@pytest.mark.parametrize("save_freq, error", [(0, ValueError), (-3, ValueError),
                                              (1.5, TypeError), (True, TypeError),
                                              ("batch", ValueError)])
def test_model_checkpoint_save_freq_is_epoch_or_a_positive_integer(save_freq, error):
    with pytest.raises(error, match="ModelCheckpoint expected save_freq as 'epoch' or a "
                                    "positive integer"):
        ModelCheckpoint("m.npz", save_freq=save_freq)


def test_an_interrupt_mid_epoch_keeps_the_last_batch_checkpoint_whole(tmp_path):
    x, y = _data()
    kept = {}

    class Interrupt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                kept["weights"] = self.model.get_weights()
            if batch == 2:
                raise KeyboardInterrupt

    path = tmp_path / "mid.npz"
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0, callbacks=[
            ModelCheckpoint(path, monitor="loss", save_freq=2), Interrupt()])
    loaded = tn.load(path)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), kept["weights"]))
    assert sorted(os.listdir(tmp_path)) == ["mid.npz"]  # no temporary file left


def test_model_checkpoint_initial_value_threshold_guards_a_best_from_another_process(tmp_path):
    # Keras' initial_value_threshold: a run resumed in a new process (a new callback)
    # must beat the best saved before, or its first epoch replaced that file
    model = SavingModel()
    best = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True,
                           initial_value_threshold=1.0)
    assert best.best == 1.0
    _scripted_fit(model, [3.0, 0.5, 0.7], [best])
    assert model.saves == [("best.npz", 1.0)] and best.best == 0.5
    up = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True,
                         initial_value_threshold=0.9)
    _scripted_fit(SavingModel(), [0.8], [up], monitor_key="val_accuracy")
    assert up.saved == []
    for bad, error in ((math.nan, ValueError), ("0.5", TypeError)):
        with pytest.raises(error, match="initial_value_threshold"):
            ModelCheckpoint("m.npz", save_best_only=True, initial_value_threshold=bad)


def test_a_callback_may_log_a_value_that_is_not_a_number():
    # History turned every logged value into a float, so a callback that put
    # a string (or a list) into the epoch logs ended fit with a ValueError;
    # Keras' History keeps such values as they are
    import io

    from tinynet.progress import ProgressBar

    class Note(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["note"] = f"epoch {epoch} done"
            logs["sizes"] = [1, 2]

    model = _model()
    x, y = _data()
    stream = io.StringIO()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0,
                        callbacks=[Note(), ProgressBar(verbose=2, stream=stream)])
    assert history.history["note"] == ["epoch 0 done", "epoch 1 done"]
    assert history.history["sizes"] == [[1, 2], [1, 2]]
    assert all(isinstance(v, float) for v in history.history["loss"])
    assert "note: epoch 1 done" in stream.getvalue() and "sizes: [1, 2]" in stream.getvalue()
    assert "note" in repr(history)


def test_initial_value_threshold_survives_auto_mode_resolved_at_train_begin(tmp_path):
    # a metric the user names (f1_micro) gets its "auto" direction only when
    # training begins; the reset that came with it threw the threshold away,
    # and a model far below it was saved
    from tinynet.metrics import F1Score
    model = _model()
    model.compile(optimizer=tn.optim.SGD(lr=0.1), loss="cross_entropy",
                  metrics=[F1Score(average="micro", name="f1_micro")])
    x, y = _data()
    path = tmp_path / "m.npz"
    checkpoint = ModelCheckpoint(path, monitor="f1_micro", save_best_only=True,
                                 initial_value_threshold=0.99)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0, callbacks=[checkpoint])
    assert checkpoint.mode == "max" and checkpoint.best == 0.99
    assert not path.exists()


def test_every_monitoring_callback_resolves_auto_mode_and_refuses_a_key_alike(tmp_path):
    # EarlyStopping, ModelCheckpoint and ReduceLROnPlateau resolve mode="auto"
    # again at train begin through one code path: by its name at construction
    # (neither is a built-in name: not known, None), then from the model's
    # metric objects, which know their direction
    from tinynet.metrics import F1Score, Metric

    class Gap(Metric):
        higher_is_better = False

        def __call__(self, pred, target):
            return 0.5

    x, y = _data()
    for metric, name, by_name, by_model in (
            (Gap(name="acc_gap"), "acc_gap", None, "min"),
            (F1Score(average="micro", name="f1_micro"), "f1_micro", None, "max")):
        model = _model()
        model.compile(optimizer=tn.optim.SGD(lr=0.1), loss="cross_entropy",
                      metrics=[metric])
        made = [EarlyStopping(monitor=name, patience=5),
                ModelCheckpoint(tmp_path / f"{name}.npz", monitor=name, save_best_only=True),
                ReduceLROnPlateau(monitor=name)]
        assert [cb.mode for cb in made] == [by_name] * 3
        model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0, callbacks=made)
        assert [cb.mode for cb in made] == [by_model] * 3, name
        assert made[2].scheduler.mode == by_model
    model = _model()
    for cb in (EarlyStopping(monitor="acuracy"), ReduceLROnPlateau(monitor="acuracy"),
               ModelCheckpoint(tmp_path / "m.npz", monitor="acuracy", save_best_only=True)):
        with pytest.raises(ValueError, match=rf"{type(cb).__name__} monitors 'acuracy', "
                                             rf"which fit will not log; did you mean "
                                             rf"'accuracy'"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])



def _regression(metric):
    rng = np.random.default_rng(0)
    x = rng.random((64, 3), dtype=np.float32)
    model = tn.Sequential([Dense(1, input_dim=3, seed=0)])
    model.compile(tn.optim.SGD(lr=0.05), loss="mse", metrics=[metric])
    return model, x, x.sum(1).astype(np.float32)


def mean_abs_err(pred, y):
    return float(np.mean(np.abs(pred[:, 0] - y)))


def test_auto_mode_refuses_a_metric_that_does_not_say_its_direction(tmp_path):
    # A user's score (a "dice" relying on main's old default
    # higher_is_better=True) was minimised: EarlyStopping stopped early and
    # restored the worst epoch, ModelCheckpoint kept the worst. As Keras 3,
    # "auto" never guesses: refused when fit starts, before any epoch.
    from tinynet.metrics import Metric

    class Dice(Metric):
        name = "dice"

        def __call__(self, pred, target):
            return 1.0 - mean_abs_err(pred, target)

    def dice(pred, y):
        return 1.0 - mean_abs_err(pred, y)

    for metric in (Dice(), dice):
        for cb in (EarlyStopping(monitor="val_dice", patience=1),
                   ModelCheckpoint(tmp_path / "best.npz", monitor="val_dice",
                                   save_best_only=True),
                   ReduceLROnPlateau(monitor="val_dice", patience=0)):
            model, x, y = _regression(metric)
            before = model.get_weights()
            with pytest.raises(ValueError, match=re.escape(
                    f"{type(cb).__name__} cannot tell whether to maximise or minimise "
                    f"'val_dice' (a metric that does not say its direction): pass "
                    f"mode='max' or mode='min', or set higher_is_better on the metric")):
                model.fit(x, y, epochs=3, verbose=0, validation_split=0.25, callbacks=[cb])
            assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    # said by mode=, or by the metric (1/0 too): a rising score is kept, no early stop
    Dice.higher_is_better = 1
    for metric, mode in ((Dice(), "auto"), (dice, "max")):
        model, x, y = _regression(metric)
        made = [EarlyStopping(monitor="val_dice", patience=1, mode=mode),
                ModelCheckpoint(tmp_path / "best.npz", monitor="val_dice",
                                save_best_only=True, mode=mode)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (saved by its name only)
            history = model.fit(x, y, epochs=6, verbose=0, validation_split=0.25,
                                callbacks=made, seed=0)
        scores = history.history["val_dice"]
        assert all(b > a for a, b in zip(scores, scores[1:]))  # it rises at every epoch
        assert [cb.mode for cb in made] == ["max"] * 2 and history.stop_reason is None
        assert made[0].best == made[1].best == scores[-1]


def test_a_metric_of_the_users_says_its_direction_or_has_its_names():
    # "the user says so": an attribute of the function, a subclass's class
    # attribute; else the direction of the built-in metric of its name (a
    # function named mse is an error); else refused (no guess from "acc")
    from tinynet.metrics import Metric

    def score(pred, y):
        return -mean_abs_err(pred, y)

    score.higher_is_better = True

    def r2(pred, y):
        return tn.metrics.r2(pred[:, 0], y)

    def mse(pred, y):
        return float(np.mean((pred[:, 0] - y) ** 2))

    class Wrongness(Metric):
        name = "wrongness"

        def __call__(self, pred, target):
            return mean_abs_err(pred, target)

    class Rightness(Wrongness):
        name = "rightness"
        higher_is_better = True

    def acc_gap(pred, y):
        return mean_abs_err(pred, y)

    for metric, name, mode in ((score, "score", "max"), (r2, "r2", "max"),
                               (mse, "mse", "min"), (Wrongness(), "wrongness", None),
                               (Rightness(), "rightness", "max"),
                               (acc_gap, "acc_gap", None)):  # not Keras' "acc" guess
        model, x, y = _regression(metric)
        stop = EarlyStopping(monitor=f"val_{name}", patience=20)
        if mode is None:
            with pytest.raises(ValueError, match=f"cannot tell whether to maximise or "
                                                 f"minimise 'val_{name}'"):
                model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[stop])
        else:
            model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[stop])
            assert stop.mode == mode, name
        assert tn.metrics.higher_is_better(name, tn.metrics.logged_metrics(model)) is (
            None if mode is None else mode == "max")

    def worse(pred, y):
        return mean_abs_err(pred, y)

    worse.higher_is_better = "no"
    for bad in ("no", 2, 0.5, np.float64(1.0)):
        worse.higher_is_better = bad
        with pytest.raises(TypeError, match="metric 'worse' expected higher_is_better as True, "
                                            "False \\(1, 0\\) or None \\(not said\\), "
                                            "received"):
            tn.metrics.get(worse)
    for said, higher in ((1, True), (0, False), (np.bool_(True), True), (np.int64(0), False)):
        worse.higher_is_better = said
        assert tn.metrics.get(worse).higher_is_better is higher


def test_delta_m_asks_the_direction_of_a_metric_that_does_not_say_it():
    # delta_m(model=...) took a metric function for higher-is-better: an error
    # cut by half scored -50 %
    model, x, y = _regression(mean_abs_err)
    now, base = {"mean_abs_err": 0.5}, {"mean_abs_err": 1.0}
    for given in ({"model": model}, {}):  # without the model: no guess from the name either
        with pytest.raises(ValueError, match="delta_m cannot tell whether to maximise or "
                                             "minimise 'mean_abs_err'.*higher_is_better="
                                             "\\{'mean_abs_err': bool\\}"):
            tn.mtl.delta_m(now, base, **given)
    assert tn.mtl.delta_m(now, base, {"mean_abs_err": False}, model=model) == 50.0
    assert tn.mtl.delta_m(now, base, {"mean_abs_err": 0}) == 50.0
    with pytest.raises(ValueError, match="'depth/abs_err'"):  # LibMTL's error: not guessed
        tn.mtl.delta_m({"depth/abs_err": 0.5}, {"depth/abs_err": 1.0})

    def mae(pred, y):
        return mean_abs_err(pred, y)

    model, x, y = _regression(mae)  # a built-in's name: its direction
    assert tn.mtl.delta_m({"val_mae": 0.5}, {"val_mae": 1.0}, model=model) == 50.0


def test_a_batch_hook_set_on_the_instance_reads_the_batch_metrics():
    # a hook kept as an attribute (Keras' LambdaCallback style) was not seen as
    # a reader, and logs["accuracy"] raised KeyError in it
    x, y = _data()
    model = _model()
    model.compile(optimizer=tn.optim.SGD(lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    seen, cb = [], Callback()
    cb.on_batch_end = lambda batch, logs=None: seen.append(logs["accuracy"])
    assert cb.reads_batch_metrics()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0, callbacks=[cb])
    assert len(seen) == -(-len(x) // 16) and all(0 <= v <= 1 for v in seen)

def test_which_callbacks_read_the_batch_logs_metrics():
    import io
    from tinynet.progress import ProgressBar
    from tinynet.transfer.l2sp import L2SPLogger

    class Epochs(Callback):
        def on_epoch_end(self, epoch, logs=None): ...

    class Batches(Callback):
        def on_batch_end(self, batch, logs=None): ...

    class TrainBatches(Callback):
        def on_train_batch_end(self, batch, logs=None): ...

    class NaNs(TerminateOnNaN):  # a subclass says for itself
        def on_batch_end(self, batch, logs=None): ...

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert [cb.reads_batch_metrics() for cb in (Epochs(), Batches(), TrainBatches(), NaNs(),
                                                TerminateOnNaN(), tn.callbacks.History(),
                                                EarlyStopping())] == \
        [False, True, True, True, False, False, False]
    # a save every few batches reads them on the batches it saves after only
    assert not ModelCheckpoint("m.npz", save_freq=3).reads_batch_metrics()
    assert not ModelCheckpoint("m.npz").reads_batch_metrics()
    assert not L2SPLogger.reads_batch_metrics(object.__new__(L2SPLogger))
    bars = [ProgressBar(1, stream=Tty()), ProgressBar(1, stream=io.StringIO()),
            ProgressBar(2, stream=Tty())]
    for bar in bars:
        bar.on_train_begin()
    # no bar reads them after every batch; the live one after those it draws
    assert [bar.reads_batch_metrics() for bar in bars] == [False, False, False]
    for bar in bars:
        bar.set_params({"epochs": 1, "steps": 3})
        bar.on_epoch_begin(0)
    assert [bar.reads_batch_metrics_at(0) for bar in bars] == [True, False, False]
    assert not bars[0].reads_batch_metrics_at(2)  # the last: the epoch's end draws it
    assert tn.callbacks.CallbackList([Epochs(), Batches()]).reads_batch_metrics()
    assert not tn.callbacks.CallbackList([Epochs(), bars[1]]).reads_batch_metrics()
    assert tn.callbacks.CallbackList([Epochs(), bars[0]]).reads_batch_metrics_at(0)
    assert not Batches().reads_batch_metrics_at(0)  # (asked only if none reads every batch)


def test_a_callback_list_subclass_with_a_batch_hook_of_its_own_reads_the_batch_metrics():
    # only its callbacks were asked, so its own on_batch_end found no accuracy
    x, y = _data()
    model = _model()
    model.compile(optimizer=tn.optim.SGD(lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    seen = []

    class Logged(tn.callbacks.CallbackList):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["accuracy"])
            super().on_train_batch_end(batch, logs)

    class OldName(tn.callbacks.CallbackList):  # (the name a list's caller may call it by)
        def on_batch_end(self, batch, logs=None): ...

    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0,
              callbacks=[Logged([tn.callbacks.History()])])
    assert len(seen) == -(-len(x) // 16) and all(0 <= v <= 1 for v in seen)
    assert OldName([]).reads_batch_metrics()
    assert not tn.callbacks.CallbackList([tn.callbacks.History()]).reads_batch_metrics()


class _Calls(Callback):
    """Records every batch hook fit calls on it, in order."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("child begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("child end", batch))


def test_a_callback_list_subclass_overriding_the_older_batch_names_only_is_called():
    # fit called the list's on_train_batch_*, which looped over its callbacks
    # and never reached a subclass's on_batch_begin/on_batch_end (Keras 2 names)
    calls = []

    class Old(tn.callbacks.CallbackList):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))
            super().on_batch_begin(batch, logs)

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch, sorted(logs)))
            super().on_batch_end(batch, logs)

    fit_loop(ScriptedModel(), lambda idx: {"loss": 1.0}, 4, batch_size=2, verbose=0,
             callbacks=[Old([_Calls(calls)])])
    assert calls == [("begin", 0), ("child begin", 0), ("end", 0, ["loss"]), ("child end", 0),
                     ("begin", 1), ("child begin", 1), ("end", 1, ["loss"]), ("child end", 1)]


def test_a_callback_list_subclass_overriding_both_batch_names_is_called_once_per_batch():
    # Keras' precedence: on_train_batch_end is what fit calls; the older name
    # runs only through it (super()), once, and the callbacks once
    calls = []

    class Both(tn.callbacks.CallbackList):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(("train end", batch))
            super().on_train_batch_end(batch, logs)

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch))
            super().on_batch_end(batch, logs)

    class Replacing(tn.callbacks.CallbackList):  # no super(): its callbacks are not called
        def on_train_batch_end(self, batch, logs=None):
            calls.append(("replaced", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("never", batch))

    fit_loop(ScriptedModel(), lambda idx: {"loss": 1.0}, 4, batch_size=2, verbose=0,
             callbacks=[Both([_Calls(calls)]), Replacing([_Calls(calls)])])
    assert [c for c in calls if "begin" not in c[0]] == [
        ("train end", 0), ("end", 0), ("child end", 0), ("replaced", 0),
        ("train end", 1), ("end", 1), ("child end", 1), ("replaced", 1)]
    assert calls.count(("child begin", 0)) == 2  # both lists' callbacks began the batch


class _Mixin(Callback):
    """An older-named hook from outside the list's classes, reaching the list's loop."""

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("mixin end", batch))
        super().on_train_batch_end(batch, logs)


def test_an_older_named_hook_reaching_the_loop_by_the_newer_name_is_called_once():
    # the list's loop was on_train_batch_* before its older names took it: an
    # override of on_batch_end calling super().on_train_batch_end recursed
    # (on_train_batch_end calls on_batch_end), from fit or called directly
    calls = []

    class Old(tn.callbacks.CallbackList):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))
            super().on_train_batch_begin(batch, logs)

        def on_batch_end(self, batch, logs=None):
            calls.append(("end", batch))
            super().on_train_batch_end(batch, logs)

    class Mixed(_Mixin, tn.callbacks.CallbackList):
        pass

    mixed = Mixed([_Calls(calls)])
    mixed.calls = calls
    fit_loop(ScriptedModel(), lambda idx: {"loss": 1.0}, 4, batch_size=2, verbose=0,
             callbacks=[Old([_Calls(calls)]), mixed])
    once = [("begin", 0), ("child begin", 0), ("child begin", 0),
            ("end", 0), ("child end", 0), ("mixin end", 0), ("child end", 0)]
    assert calls == once + [(c[0], 1) for c in once]
    calls.clear()
    old = Old([_Calls(calls)])
    old.on_batch_begin(5)
    old.on_batch_end(5)
    mixed.on_batch_end(6)
    assert calls == [("begin", 5), ("child begin", 5), ("end", 5), ("child end", 5),
                     ("mixin end", 6), ("child end", 6)]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_quiet_reduce_lr_on_plateau_does_not_list_the_rates_it_would_say():
    # it read every group's rate before and after each step, verbose or not;
    # quiet, only the scheduler (and the optimizer's step) read them
    class Group(dict):
        reads = 0

        def __getitem__(self, key):
            Group.reads += key == "lr"
            return super().__getitem__(key)

    x, y = _data()
    reads = {}
    for verbose in (0, 1):
        model = _model()
        model.optimizer.param_groups = [Group(g) for g in model.optimizer.param_groups]
        Group.reads = 0
        model.fit(x, y, epochs=3, batch_size=32, verbose=0, stream=io.StringIO(), callbacks=[
            ReduceLROnPlateau(monitor="loss", patience=0, min_delta=100.0, verbose=verbose)])
        reads[verbose] = Group.reads
        assert model.optimizer.lr == pytest.approx(0.001)   # cut at epochs 2 and 3
    assert reads[1] - reads[0] == 2 * 3   # before and after each of 3 epochs, one group


def test_learning_rate_schedulers_schedule_is_checked_before_its_verbose():
    with pytest.raises(TypeError, match="LearningRateScheduler expected a callable schedule"):
        LearningRateScheduler(0.1, verbose=5)

    class Mine(LearningRateScheduler):
        pass

    # one check of verbose for every callback, naming the class as the monitors do
    with pytest.raises(ValueError, match="^Mine expected verbose 0, 1 or 2"):
        Mine(lambda epoch: 0.1, verbose=5)


def test_callback_lines_go_to_fits_stream_once(capsys):
    # EarlyStopping(verbose=1) wrote the stop reason to stdout, out of fit's
    # stream=; now every callback line goes there, the reason exactly once
    # whoever says it (the bar, EarlyStopping(verbose=1)), none if nobody does
    x, y = _data()
    for verbose in (0, 1, 2):
        for said in (0, 1):
            stream = io.StringIO()
            history = _model().fit(x, y, epochs=5, verbose=verbose, stream=stream, callbacks=[
                EarlyStopping(monitor="loss", patience=0, min_delta=100.0, verbose=said),
                ReduceLROnPlateau(monitor="loss", patience=0, min_delta=100.0, verbose=said),
                LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1), verbose=said)])
            out = stream.getvalue()
            assert out.count(history.stop_reason) == (1 if verbose or said else 0)
            assert ("reducing learning rate" in out) == bool(said)
            assert ("learning rate set to 0.05" in out) == bool(said)
            assert capsys.readouterr().out == ""


def test_callback_lines_keep_epoch_order_behind_a_live_bar():
    # EarlyStopping's stop reason came before the other callbacks' lines of
    # the last epoch (they waited for the next epoch or the end of training)
    x, y = _data()
    stream = _Terminal()
    history = _model().fit(x, y, epochs=5, verbose=1, stream=stream, callbacks=[
        EarlyStopping(monitor="loss", patience=0, min_delta=100.0, verbose=1),
        ReduceLROnPlateau(monitor="loss", patience=0, min_delta=100.0, verbose=1)])
    lines = [line.split("\r")[-1] for line in stream.getvalue().split("\n")[:-1]]
    assert [line[:12] for line in lines] == [
        "Epoch 1/5  1", "Epoch 2/5  1", "Epoch 2: Red", history.stop_reason[:12]]
    assert lines[-1] == history.stop_reason


def test_callback_lines_without_a_bar_are_written_at_once_and_belong_to_their_run():
    # A line said without a bar on the stream waited for the next epoch's
    # start; a run interrupted (KeyboardInterrupt) never wrote its waiting
    # lines, and the next run wrote them at its start
    x, y = _data()
    seen = []

    class Look(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(stream.getvalue())

    stream = io.StringIO()
    _model().fit(x, y, epochs=2, verbose=0, stream=stream, callbacks=[
        ReduceLROnPlateau(monitor="loss", patience=0, min_delta=100.0, verbose=1), Look()])
    assert seen == ["", "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.01.\n"]

    class Interrupt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    plateau = ReduceLROnPlateau(monitor="loss", patience=0, min_delta=100.0, verbose=1)
    model = _model()
    first = _Terminal()  # (a live bar holds the lines until it ends its epoch's line)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, verbose=1, stream=first, callbacks=[plateau, Interrupt()])
    assert first.getvalue().endswith("\nEpoch 2: ReduceLROnPlateau reducing learning rate "
                                     "to 0.01.\n")
    second = io.StringIO()
    model.fit(x, y, epochs=1, verbose=1, stream=second, callbacks=[plateau])
    assert "reducing" not in second.getvalue()


def test_a_model_trained_with_a_stream_still_copies_and_pickles(tmp_path):
    # the run's CallbackLines (in the params its History keeps) held the
    # stream (an open file, sys.stdout), which pickle refused
    import copy
    import pickle
    x, y = _data()
    model = _model()
    with open(tmp_path / "log.txt", "w") as log:
        model.fit(x, y, epochs=1, verbose=1, stream=log)
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(twin.predict(x), model.predict(x))


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm"])
def test_early_stopping_restores_a_multi_task_weightings_learned_parameters(weighting):
    # restore_best_weights put back get_weights() (the network) only: the
    # weighting's learned s_t / w_t stayed at the last epoch's, beside the
    # best epoch's network they were not trained with
    from tinynet.layers import Dense
    rng = np.random.default_rng(0)
    x, xv = rng.standard_normal((64, 4)), rng.standard_normal((32, 4))
    y = {"a": x[:, :1] * 2, "b": rng.standard_normal((64, 1)) * 3}
    yv = {"a": xv[:, :1] * 2, "b": rng.standard_normal((32, 1)) * 3}

    class Record(Callback):
        def on_train_begin(self, logs=None):
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((logs["val_loss"], self.model.get_weights(),
                                [p.value.copy() for p in self.model.weighting.parameters()]))

    model = tn.mtl.HardSharing((4,), trunk=[Dense(8, activation="tanh", seed=0)],
                               heads={"a": [Dense(1, seed=1)], "b": [Dense(1, seed=2)]},
                               dtype="float64")
    model.compile(tn.optim.Adam(lr=0.05), loss="mse", weighting=weighting)
    record = Record()
    stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    model.fit(x, y, epochs=40, batch_size=16, verbose=0, seed=0, validation_data=(xv, yv),
              callbacks=[record, stop])
    best = int(np.argmin([loss for loss, _, _ in record.epochs]))
    assert stop.stopped_epoch is not None and best < len(record.epochs) - 1
    _, weights, learned = record.epochs[best]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))
    now = [p.value for p in model.weighting.parameters()]
    assert not np.array_equal(learned[0], record.epochs[-1][2][0])   # they did move on
    assert all(np.array_equal(a, b) for a, b in zip(now, learned))
    assert model.evaluate(xv, yv)["loss"] == pytest.approx(record.epochs[best][0], rel=1e-12)
