"""Progress output: live bar on a terminal, one line per epoch elsewhere,
nothing at verbose=0; driven with fake streams and a fake clock."""

import io
import re

import numpy as np
import pytest

from tinynet.progress import ProgressBar, format_logs, format_seconds
from tinynet.training import fit_loop


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class Clock:
    """Advances by ``tick`` seconds at every reading."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


class Model:
    stop_training = False


def shown(line: str) -> dict:
    """``{name: printed value}`` of a bar's frame or of :func:`format_logs`."""
    return dict(re.findall(r" - (\S+): (\S+)", line))


def _run(stream, verbose, n=40, batch_size=4, epochs=2, bar=None):
    callbacks = [bar] if bar is not None else None
    return fit_loop(Model(), lambda idx: {"loss": 0.5, "accuracy": 0.25}, n,
                    epochs=epochs, batch_size=batch_size, verbose=0 if bar else verbose,
                    stream=stream, callbacks=callbacks, validate=lambda: {"loss": 0.75})


def test_non_tty_gets_one_line_per_epoch():
    stream = io.StringIO()
    _run(stream, verbose=1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].startswith("Epoch 1/2 - ")
    assert lines[1].endswith("- loss: 0.5000 - accuracy: 0.2500 - val_loss: 0.7500")


def test_verbose_0_prints_nothing(capsys):
    stream = FakeTTY()
    _run(stream, verbose=0)
    assert stream.getvalue() == ""
    assert capsys.readouterr().out == ""


def test_verbose_2_is_one_line_per_epoch_even_on_a_tty():
    stream = FakeTTY()
    _run(stream, verbose=2)
    assert "\r" not in stream.getvalue() and len(stream.getvalue().splitlines()) == 2


def test_tty_bar_redraws_in_place_with_eta_and_running_metrics():
    stream = FakeTTY()
    bar = ProgressBar(verbose=1, stream=stream, clock=Clock(0.5))  # every batch is late
    _run(stream, verbose=1, bar=bar)
    text = stream.getvalue()
    epoch1 = text.split("\n")[0]
    frames = epoch1.split("\r")[1:]
    # 9 intermediate redraws (the 10th batch is drawn by the epoch end) + the final frame
    assert len(frames) == 10
    assert "Epoch 1/2   1/10 [===>" in frames[0] and "ETA" in frames[0]
    assert "- loss: 0.5000 - accuracy: 0.2500" in frames[0]
    assert "10/10 [==============================]" in frames[-1]
    assert "val_loss: 0.7500" in frames[-1] and "ETA" not in frames[-1]
    assert text.count("\n") == 2


def test_tty_redraws_are_throttled():
    stream = FakeTTY()
    bar = ProgressBar(verbose=1, stream=stream, clock=Clock(0.001), max_rate=10)
    _run(stream, verbose=1, n=400, batch_size=1, epochs=1, bar=bar)
    frames = stream.getvalue().split("\r")[1:]
    # 400 batches at 1 ms each = 0.4 s of fake time: about 4 redraws at 10 per second
    assert 2 <= len(frames) <= 7


def test_bar_final_frame_covers_a_longer_previous_frame():
    stream = FakeTTY()
    bar = ProgressBar(stream=stream)
    bar.set_params({"epochs": 1, "steps": 2})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    bar._draw("x" * 50)
    bar._draw("short")
    assert stream.getvalue().endswith("short" + " " * 45)


@pytest.mark.parametrize("seconds, text", [
    (0.0123, "12ms"), (0.42, "0.4s"), (12.4, "12s"), (185, "3:05"), (3723, "1:02:03"),
])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_format_logs_uses_fixed_decimals_and_scientific_for_extremes():
    assert format_logs({"loss": 0.28171}) == " - loss: 0.2817"
    assert format_logs({"loss": 1.5e-5}) == " - loss: 1.5e-05"
    assert format_logs({"loss": np.nan}) == " - loss: nan"


def test_a_stop_mid_epoch_shows_the_batches_done_and_the_reason():
    stream = FakeTTY()
    calls = []

    def step(idx):
        calls.append(1)
        return {"loss": float("nan") if len(calls) == 3 else 1.0}

    bar = ProgressBar(verbose=1, stream=stream, clock=Clock(0.5))
    with pytest.warns(RuntimeWarning):
        fit_loop(Model(), step, 40, epochs=2, batch_size=4, verbose=0, callbacks=[bar])
    final = stream.getvalue().split("\r")[-1]
    assert "Epoch 1/2   3/10 [=========>" in final and "loss: nan" in final
    assert final.rstrip().splitlines()[-1].startswith("TerminateOnNaN: the loss became nan")


def test_the_running_values_of_sequential_are_the_epoch_log_so_far():
    """A guard: with lr=0 and no shuffle, the bar after k batches shows the
    epoch log of the first k batches (evaluate with the same batches), and the
    last frame, after a partial batch, the epoch's whole log."""
    import tinynet as tn
    from tinynet.layers import Dense
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    model = tn.Sequential([Dense(3, seed=0)])
    model.compile(tn.optim.SGD(lr=0.0), loss="cross_entropy", metrics=["accuracy"])
    stream = FakeTTY()
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0, seed=0,
                        callbacks=[ProgressBar(stream=stream, clock=Clock(0.5))])
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 3
    for k, frame in zip((4, 8, 10), frames):
        assert shown(frame) == shown(format_logs(model.evaluate(x[:k], y[:k], batch_size=4)))
    assert shown(frames[-1]) == shown(format_logs({key: values[-1] for key, values
                                                   in history.history.items()}))


@pytest.mark.parametrize("verbose", [1, 2])
def test_a_progress_bar_among_the_callbacks_is_not_doubled(verbose):
    # fit added its own bar beside the user's, so every epoch line came twice
    stream = io.StringIO()
    fit_loop(Model(), lambda idx: {"loss": 0.5}, 8, epochs=2, batch_size=4, verbose=verbose,
             stream=stream, callbacks=[ProgressBar(verbose=2, stream=stream)])
    lines = stream.getvalue().splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]


@pytest.mark.parametrize("stream", [42, "log.txt"])
def test_a_stream_without_write_is_refused_before_the_first_step(stream):
    # it failed with "'int' object has no attribute 'write'" after an epoch of training
    steps = []
    with pytest.raises(TypeError, match="stream.*write"):
        fit_loop(Model(), lambda idx: steps.append(idx) or {"loss": 0.5}, 8, epochs=1,
                 verbose=2, stream=stream)
    assert steps == []


def test_a_bar_without_a_stream_looks_up_stdout_at_each_run():
    # reused, it kept writing to the stdout of its first run
    import contextlib
    bar = ProgressBar(verbose=2)
    first, second = io.StringIO(), io.StringIO()
    for out in (first, second):
        with contextlib.redirect_stdout(out):
            fit_loop(Model(), lambda idx: {"loss": 0.5}, 4, verbose=0, callbacks=[bar])
    assert len(first.getvalue().splitlines()) == len(second.getvalue().splitlines()) == 1
    assert bar.stream is None


@pytest.mark.parametrize("kwargs, error, match", [
    ({"verbose": 3}, ValueError, "verbose 1 or 2"),
    ({"verbose": 0}, ValueError, "verbose 1 or 2"),
    ({"verbose": "x"}, ValueError, "verbose 1 or 2"),
    ({"width": 0}, ValueError, "width as a positive integer"),
    ({"max_rate": 0}, ValueError, r"max_rate in \(0, inf\]"),
    ({"max_rate": -1.0}, ValueError, r"max_rate in \(0, inf\]"),
    ({"clock": 5}, TypeError, "clock as a callable"),
])
def test_progress_bar_settings_are_checked(kwargs, error, match):
    # max_rate=0 died on a division by zero; the others were taken and drew nonsense
    with pytest.raises(error, match=match):
        ProgressBar(**kwargs)


def test_fit_takes_keras_verbose_auto_as_1():
    # fit(verbose="auto"), Keras' default, raised ValueError
    auto, one = io.StringIO(), io.StringIO()
    _run(auto, verbose="auto")
    _run(one, verbose=1)
    assert [line.split(" - ", 2)[::2] for line in auto.getvalue().splitlines()] == \
        [line.split(" - ", 2)[::2] for line in one.getvalue().splitlines()]
    assert len(auto.getvalue().splitlines()) == 2
    with pytest.raises(ValueError, match="fit expected verbose 0, 1, 2 or 'auto', received "
                                         "'silent'"):
        _run(auto, verbose="silent")
    # on a terminal "auto" draws the live bar (carriage-return frames) as 1
    # does, and 2 does not (a StringIO above cannot tell "auto" from 2)
    frames = {}
    for verbose in ("auto", 1, 2):
        stream = FakeTTY()
        _run(stream, verbose=verbose)
        frames[verbose] = stream.getvalue().split("\r")
    for verbose in ("auto", 1):  # the first batch's frame, and each epoch's full bar
        assert frames[verbose][1].startswith("Epoch 1/2   1/10 [")
        assert [f[:22] for f in frames[verbose] if "10/10" in f] == \
            ["Epoch 1/2  10/10 [====", "Epoch 2/2  10/10 [===="]
    assert len(frames[2]) == 1  # no carriage return: one line per epoch


def test_one_verbose_check_for_fit_the_callbacks_and_the_bar():
    # progress.check_verbose took 1.0, the callbacks' checker refused 2
    # (which Keras takes) and 1.0, ProgressBar had its own: one check now
    from tinynet.callbacks import EarlyStopping
    for bad in (1.0, "1", None):
        with pytest.raises(ValueError, match="fit expected verbose 0, 1, 2 or 'auto'"):
            _run(io.StringIO(), verbose=bad)
        with pytest.raises(ValueError, match="EarlyStopping expected verbose 0, 1 or 2, "):
            EarlyStopping(verbose=bad)
        with pytest.raises(ValueError, match="ProgressBar expected verbose 1 or 2 \\(for "
                                             "silence leave the bar out\\), received"):
            ProgressBar(verbose=bad)
    assert EarlyStopping(verbose=2).verbose == 2 and ProgressBar(verbose=True).verbose == 1
