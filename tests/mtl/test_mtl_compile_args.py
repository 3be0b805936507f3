"""The per-task arguments of compile, fit and evaluate: the keys naming the
tasks, static weights and Keras' per-output lists."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import Dense


def numbered():
    """A model whose tasks are named by numbers: its task names are '0' and '1'."""
    inp = tn.mtl.Input((4,))
    return tn.mtl.Model(inp, {0: Dense(3, seed=1)(inp), 1: Dense(1, seed=2)(inp)})


def numbered_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 4)), {"0": rng.integers(0, 3, 6),
                                         "1": rng.standard_normal((6, 1))}


STRING_HINT = r"\(tasks: \['0', '1'\]\); task names are strings: write '0', not 0"


@pytest.mark.parametrize("what, kwargs", [
    ("loss", {"loss": {0: "cross_entropy", 1: "mse"}}),
    ("loss", {"loss": {0: "cross_entropy", "1": "mse"}}),
    ("metrics", {"metrics": {0: ["accuracy"], 1: ["mae"]}}),
    ("weights", {"loss_weights": {0: 1.0, 1: 2.0}}),
    ("weights", {"weighting": {0: 1.0, "1": 2.0}}),
])
def test_compile_refuses_a_task_key_that_is_not_the_tasks_name(what, kwargs):
    # a loss given for task 0 was reported missing for '0', metrics silently dropped
    model = numbered()
    kwargs.setdefault("loss", {"0": "cross_entropy", "1": "mse"})
    with pytest.raises(ValueError, match=rf"received {what} for unknown tasks \[0.*"
                                         + STRING_HINT):
        model.compile("sgd", **kwargs)


@pytest.mark.parametrize("what, kwargs", [
    ("masks", {"mask": {0: np.ones(6, bool)}}),
    ("sample weights", {"sample_weight": {0: np.ones(6), "1": np.ones(6)}}),
])
def test_fit_refuses_a_task_key_that_is_not_the_tasks_name(what, kwargs):
    model = numbered()
    model.compile("sgd", loss={"0": "cross_entropy", "1": "mse"},
                  metrics={"0": ["accuracy"], "1": ["mae"]})
    x, y = numbered_data()
    with pytest.raises(ValueError, match=rf"fit received {what} for unknown tasks \[0\] "
                                         + STRING_HINT):
        model.fit(x, y, verbose=0, **kwargs)
    with pytest.raises(ValueError, match=r"missing \['0', '1'\], unknown \[0, 1\]; task "
                                         r"names are strings: write '0', not 0"):
        model.evaluate(x, {0: y["0"], 1: y["1"]})
    logs = model.fit(x, y, verbose=0, mask={"0": np.ones(6, bool)}).history
    assert {"0/accuracy", "1/mae"} <= set(logs)


def test_an_unknown_string_task_gets_no_hint():
    model = numbered()
    with pytest.raises(ValueError, match=r"received loss for unknown tasks \['2'\] \(tasks: "
                                         r"\['0', '1'\]\)$"):
        model.compile("sgd", loss={"0": "cross_entropy", "1": "mse", "2": "mse"})
