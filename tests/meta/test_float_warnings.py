"""NumPy's floating-point warnings of a diverging inner loop are not repeated
where the learner reports the divergence itself (evaluate's ``n_diverged``,
adapt's and meta_fit's warnings); an error mode the user set (raise, call,
log, ignore) is kept."""

import warnings

import numpy as np
import pytest

import tinynet as tn
from tinynet.meta import MAML, EpisodeSampler, Pretrained, ProtoNet, SinusoidTasks

L = tn.layers


def diverging_maml():
    model = tn.Sequential([L.Dense(40, activation="relu", input_dim=1, seed=0),
                           L.Dense(40, activation="relu", seed=1), L.Dense(1, seed=2)])
    return MAML(model, inner_lr=0.5, inner_steps=20)


def hard_tasks():
    return SinusoidTasks(10, seed=0, amplitude=(0.1, 50))


def warnings_of(run):
    """The messages of every warning ``run()`` gives (NumPy's default error
    state, whatever the test runner set)."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(
            over="warn", invalid="warn", divide="warn"):
        warnings.simplefilter("always")
        result = run()
    return result, [str(w.message) for w in caught]


def test_evaluate_reports_a_diverging_inner_loop_without_numpys_warnings():
    result, messages = warnings_of(
        lambda: diverging_maml().evaluate(hard_tasks().sample(20), steps=[20]))
    assert result["steps"][20]["n_diverged"] == 19
    assert messages == []  # were: "overflow encountered in matmul" ... from functional.py


def test_protonet_evaluate_likewise():
    model = tn.Sequential([L.Dense(2, input_dim=2, seed=0, dtype="float64")])
    model.layers[0].W.value[...] = 1e200  # distances overflow: infinite losses
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 2)), np.repeat(np.arange(3), 10)
    batch = EpisodeSampler(x, y, n_way=3, k_shot=2, n_query=3, seed=0).sample(4)
    result, messages = warnings_of(lambda: ProtoNet(model).evaluate(batch))
    assert result["steps"][0]["n_diverged"] == 4 and messages == []


def test_adapt_and_meta_fit_give_their_own_warning_only():
    maml = diverging_maml()
    task = hard_tasks().sample(2)
    _, messages = warnings_of(lambda: maml.adapt(task.support_x[1], task.support_y[1]))
    assert len(messages) == 1 and "MAML.adapt: the inner SGD diverged" in messages[0]
    _, messages = warnings_of(lambda: maml.meta_fit(hard_tasks(), iterations=3))
    assert len(messages) == 1 and "the meta-loss became non-finite" in messages[0]
    learner = Pretrained(tn.Sequential([L.Dense(2, activation="relu", input_dim=1, seed=0),
                                        L.Dense(1, seed=1)]))
    for layer in learner.model.layers:
        layer.W.value[...] = 1e30  # float32: the second product overflows
    x, y = np.ones((4, 1), np.float32), np.ones(4, np.float32)
    _, messages = warnings_of(lambda: learner.fit(x, y, iterations=2))
    assert len(messages) == 1 and "Pretrained.fit: the meta-loss became non-finite" \
        in messages[0]


def saturated_maml():
    """A tanh layer whose products overflow (float32) to a saturated, finite output."""
    model = tn.Sequential([L.Dense(2, activation="tanh", input_dim=1, seed=0),
                           L.Dense(1, seed=1)])
    model.layers[0].W.value[...] = 3e38
    return MAML(model, inner_lr=0.0)


def test_an_error_mode_of_the_users_own_is_kept():
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        diverging_maml().evaluate(hard_tasks().sample(3), steps=[20])
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        saturated_maml().evaluate(hard_tasks().sample(3), steps=[1])
    assert caught == []


class Log:
    """A log for NumPy's ``"log"`` mode: an object with ``write``."""

    def __init__(self):
        self.lines = []

    def write(self, line):
        self.lines.append(line)


def test_the_users_call_mode_is_kept():
    # a class of its own replaced the user's handler in place of "warn": the
    # user's np.errstate(call=mine) was no longer called
    seen = []
    with np.errstate(over="call", invalid="call", call=lambda kind, flag: seen.append(kind)):
        result = diverging_maml().evaluate(hard_tasks().sample(3), steps=[20])
        assert result["steps"][20]["n_diverged"] == 3 and "overflow" in seen
        seen.clear()
        task = hard_tasks().sample(2)
        with pytest.warns(RuntimeWarning, match="MAML.adapt: the inner SGD diverged"):
            diverging_maml().adapt(task.support_x[1], task.support_y[1])
        assert "overflow" in seen


def test_the_users_log_mode_is_kept():
    # "log" mode crashed evaluate with an AttributeError: NumPy wrote to the
    # class's handler, a function without write
    log = Log()
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="log", call=log):
        warnings.simplefilter("always")
        result = saturated_maml().evaluate(hard_tasks().sample(3), steps=[1])
    assert np.isfinite(result["steps"][1]["loss"]) and caught == []
    assert any("overflow" in line for line in log.lines)
