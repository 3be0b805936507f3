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
    ("loss_weights", {"loss_weights": {0: 1.0, 1: 2.0}}),  # was "Static weighting ... weights"
    ("weighting", {"weighting": {0: 1.0, "1": 2.0}}),
])
def test_compile_refuses_a_task_key_that_is_not_the_tasks_name(what, kwargs):
    # a loss given for task 0 was reported missing for '0', metrics silently dropped
    model = numbered()
    kwargs.setdefault("loss", {"0": "cross_entropy", "1": "mse"})
    with pytest.raises(ValueError, match=rf"^compile received {what} for unknown tasks "
                                         rf"\[0.*" + STRING_HINT):
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


def two_tasks():
    return tn.mtl.HardSharing((4,), trunk=[Dense(3, seed=0)],
                              heads={"a": [Dense(1, seed=1)], "b": [Dense(1, seed=2)]})


@pytest.mark.parametrize("weighting", ["static", "Static", "equal", None,
                                       tn.mtl.weighting.Static, tn.mtl.weighting.Equal])
def test_loss_weights_with_the_static_or_default_weighting_are_static_weights(weighting):
    # weighting="static" with loss_weights was "not both"; now it names them
    model = two_tasks()
    model.compile("sgd", loss="mse", weighting=weighting, loss_weights=[1.0, 2.0])
    assert isinstance(model.weighting, tn.mtl.weighting.Static)
    np.testing.assert_array_equal(model.weighting.last_weights, [1.0, 2.0])


def test_the_static_weighting_without_weights_says_where_they_go():
    # it was a TypeError: Static.__init__() missing 'weights'
    with pytest.raises(ValueError, match=r"weighting='static' needs weights: pass "
                                         r"loss_weights=\.\.\. .* or weighting=Static\("):
        two_tasks().compile("sgd", loss="mse", weighting="static")


@pytest.mark.parametrize("weighting", [tn.mtl.weighting.PCGrad, tn.mtl.weighting.GradNorm,
                                       tn.mtl.weighting.MGDA, tn.mtl.weighting.Uncertainty])
def test_compile_takes_a_weighting_class_for_its_defaults(weighting):
    # as tn.optim.get(SGD) and tn.losses.get(MSE); it was TypeError: 'NoneType'
    # object is not callable, from weighting.get
    model = two_tasks()
    model.compile("sgd", loss="mse", weighting=weighting)
    assert type(model.weighting) is weighting
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4))
    history = model.fit(x, {"a": rng.standard_normal((8, 1)), "b": rng.standard_normal((8, 1))},
                        epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_the_static_class_without_weights_says_where_they_go():
    with pytest.raises(ValueError, match=r"weighting=Static needs weights: pass "
                                         r"loss_weights=\.\.\. "):
        two_tasks().compile("sgd", loss="mse", weighting=tn.mtl.weighting.Static)


@pytest.mark.parametrize("weighting, received", [
    (3, "3 of type int"), (True, "True of type bool"), (0.5, "0.5 of type float"),
    (tn.optim.SGD, "the class SGD"), (tn.losses.MSE(), "MSE.* of type MSE"),
])
def test_compile_refuses_a_weighting_that_is_none_of_the_forms_it_takes(weighting, received):
    # the same 'NoneType' object is not callable, for any of these
    model = two_tasks()
    with pytest.raises(TypeError, match=r"expected a weighting as a name \(e\.g\. 'pcgrad'\), "
                                        r"a Weighting subclass or instance, or static weights "
                                        r"\(a dict or a list\), received " + received):
        model.compile("sgd", loss="mse", weighting=weighting)
    assert not model.compiled


@pytest.mark.parametrize("weighting", ["mgda", tn.mtl.weighting.Equal])
def test_loss_weights_with_another_weighting_are_refused(weighting):
    weighting = weighting if isinstance(weighting, str) else weighting()
    with pytest.raises(ValueError, match="compile takes loss_weights or weighting=.*not both"):
        two_tasks().compile("sgd", loss="mse", weighting=weighting, loss_weights=[1.0, 2.0])


def test_a_list_of_metric_lists_gives_one_list_a_task_in_output_order():
    # Keras' per-output form was "expected a metric name ..., received list"
    model = tn.mtl.HardSharing((4,), trunk=[Dense(3, seed=0)],
                               heads={"r": [Dense(1, seed=1)], "c": [Dense(3, seed=2)]})
    model.compile("sgd", loss=["mse", "cross_entropy"], metrics=[["mae"], ("accuracy",)])
    assert [[m.name for m in model.metrics[t]] for t in ("r", "c")] == [["mae"], ["accuracy"]]
    model.compile("sgd", loss=["mse", "mse"], metrics=["mae", "mse"])  # every task, as before
    assert [[m.name for m in model.metrics[t]] for t in ("r", "c")] == [["mae", "mse"]] * 2


def hard_sharing():
    return tn.mtl.HardSharing((4,), trunk=[Dense(3, seed=0)],
                              heads={"r": [Dense(1, seed=1)], "c": [Dense(1, seed=2)]})


@pytest.mark.parametrize("metrics, expected", [
    (["mae", ["mae", "mse"]], [["mae"], ["mae", "mse"]]),
    ([None, ["mae"]], [[], ["mae"]]),
    ((tn.metrics.MeanSquaredError(), ("mae",)), [["mse"], ["mae"]]),
    (["mae", "mse"], [["mae", "mse"]] * 2),  # a flat list: every task
])
def test_a_metrics_list_holding_a_list_is_per_task_as_in_keras_2(metrics, expected):
    # a plain item was refused as "a list mixing lists and single metrics"
    model = hard_sharing()
    model.compile("sgd", loss="mse", metrics=metrics)
    assert [[m.name for m in model.metrics[t]] for t in ("r", "c")] == expected
    rng = np.random.default_rng(0)
    logs = model.fit(rng.standard_normal((6, 4)), {t: rng.standard_normal((6, 1))
                                                   for t in ("r", "c")}, verbose=0).history
    assert {k for k in logs if k.count("/") and not k.endswith(("/loss", "/weight"))} == {
        f"{t}/{name}" for t, names in zip(("r", "c"), expected) for name in names}


@pytest.mark.parametrize("metrics, message", [
    ([["mae"]], r"compile expected 2 metrics \(one per task \['r', 'c'\] in order: a list "
                r"of metrics, one or None; a list holding a list is per task\), received 1"),
    ([["mae"], ["mse"], ["mae"]], "expected 2 metrics .*received 3"),
    ([None, "mse", ["mae"]], "expected 2 metrics .*received 3"),
])
def test_a_metrics_list_per_task_of_another_length_is_refused(metrics, message):
    with pytest.raises(ValueError, match=message):
        hard_sharing().compile("sgd", loss="mse", metrics=metrics)


def test_task_masks_and_static_weights_take_the_task_names_they_are_given():
    # both refused a key 0 for a task named 0: "unknown tasks [0] (tasks: [0])"
    y = {0: np.array([1.0, np.nan, 2.0]), 1: np.zeros(3)}
    masks = tn.mtl.training.task_masks(y, {0: np.array([True, True, False])}, 3)
    np.testing.assert_array_equal(masks[0], [True, False, False])
    assert masks[1] is None
    static = tn.mtl.weighting.Static
    np.testing.assert_array_equal(static({0: 2.0}).bind([0, 1]).last_weights, [2.0, 1.0])
    with pytest.raises(ValueError, match=r"unknown tasks \['0'\] \(tasks: \[0, 1\]\)$"):
        static({"0": 2.0}).bind([0, 1])
    with pytest.raises(ValueError, match=r"received weights for unknown tasks \[0\] \(tasks: "
                                         r"\['0', '1'\]\); task names are strings: write '0'"):
        static({0: 2.0}).bind(["0", "1"])
    with pytest.raises(ValueError, match=r"fit received masks for unknown tasks \[2\] "
                                         r"\(tasks: \[0, 1\]\)$"):
        tn.mtl.training.task_masks(y, {2: np.ones(3, bool)}, 3)


def _compiled_state(model):
    return (model.loss, dict(model.loss), model.metrics, {t: list(ms) for t, ms in
                                                          model.metrics.items()},
            model.optimizer, list(model.optimizer.params), model.weighting,
            list(model.weighting.parameters()), model._compiled, model.get_compile_config())


@pytest.mark.parametrize("kwargs", [
    {"weighting": "nonsense"},
    {"weighting": "static"},  # needs weights
    {"weighting": "mgda", "loss_weights": [1.0, 2.0]},
    {"loss_weights": [1.0]},
    {"loss_weights": {"r": 1.0, "x": 2.0}},
    {"weighting": {"r": -1.0}},
    {"weighting": "other model's"},
    {"optimizer": "other model's"},
])
def test_a_refused_compile_leaves_the_compiled_model_as_it_was(kwargs):
    # loss and metrics were replaced before the weighting was checked, while
    # what save writes (_compiled) kept the old ones
    model, other = hard_sharing(), hard_sharing()
    other.compile("adam", loss="mse", weighting="uncertainty")
    kwargs = {k: getattr(other, k) if v == "other model's" else v for k, v in kwargs.items()}
    model.compile("sgd", loss="mse", metrics=["mae"], weighting="uncertainty")
    before = _compiled_state(model)
    with pytest.raises(ValueError):
        model.compile(kwargs.pop("optimizer", "sgd"), loss=["mae", "mse"],
                      metrics={"r": ["mse"]}, **kwargs)
    for was, now in zip(before, _compiled_state(model), strict=True):
        assert now is was or now == was
