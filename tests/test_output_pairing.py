"""Which loss, metrics and probabilities a model's output gets: probabilities
after a softmax/sigmoid (also behind pass-through layers, and for either
cross-entropy), logits else; multi-label targets; metric functions saved."""

import warnings

import numpy as np
import pytest

import tinynet as tn
from tests.fd import max_rel_error, numerical_grad
from tinynet import output_losses
from tinynet.layers import (Conv2D, Cropping2D, Dense, Dropout, Flatten, Identity, Reshape,
                            Softmax)

_RNG = np.random.default_rng(0)
_X = _RNG.standard_normal((40, 4))
_LABELS = _RNG.integers(0, 3, 40)
_BITS = (_X[:, :1] > 0).astype(np.int64)


_SIGMOID_AFTER = [lambda units: [Flatten()], lambda units: [Identity()],
                  lambda units: [Reshape((units,)), Identity(), Flatten()],
                  lambda units: [tn.Sequential([Identity(), Flatten()])]]
_SOFTMAX_AFTER = [lambda units: [Identity()],
                  lambda units: [tn.Sequential([Identity()]), Identity()],
                  lambda units: [Flatten()],                    # rows stay rows
                  lambda units: [Reshape((units,)), Identity()]]


@pytest.mark.parametrize("head, loss, y, after", [
    *[(lambda: [Dense(1, activation="sigmoid", seed=1)], "binary_cross_entropy", _BITS, a)
      for a in _SIGMOID_AFTER],
    *[(lambda: [Dense(3, activation="softmax", seed=1)], "cross_entropy", _LABELS, a)
      for a in _SOFTMAX_AFTER],
    *[(lambda: [Dense(3, seed=1), Softmax()], "cross_entropy", _LABELS, a)
      for a in _SOFTMAX_AFTER]])
def test_layers_that_keep_the_values_keep_an_output_a_probability(head, loss, y, after):
    # the last layer alone was asked: a sigmoid then Flatten was taken for
    # logits, so the loss applied a second sigmoid, accuracy thresholded at 0
    # and predict_classes called every sample class 1
    def trunk():
        return Dense(5, activation="tanh", input_dim=4, seed=0, dtype="float64")
    plain = tn.Sequential([trunk(), *head()])
    behind = tn.Sequential([trunk(), *head(), *after(plain.output_shape[0])])
    behind.set_weights(plain.get_weights())
    metrics = ["accuracy", "auc"] if y is _BITS else ["accuracy"]
    for model in (plain, behind):
        model.compile("sgd", loss=loss, metrics=metrics)
    assert type(behind.loss) is type(plain.loss)
    assert type(plain.loss).__module__ == "tinynet.output_losses"
    assert behind.evaluate(_X, y) == plain.evaluate(_X, y)
    np.testing.assert_array_equal(behind.predict_proba(_X), plain.predict_proba(_X))
    np.testing.assert_array_equal(behind.predict_classes(_X), plain.predict_classes(_X))


@pytest.mark.parametrize("layers, loss", [
    # a softmax's rows need not be the output's rows once reshaped: its
    # probabilities flattened from a (3, 4) map sum to 4 a row
    (lambda: [Dense(12, input_dim=4), Reshape((3, 4)), Softmax(axis=1), Flatten()],
     "cross_entropy"),
    # Dropout scales kept probabilities past 1 in training (and zeroes others):
    # a loss of probabilities blew up there (a loss of 46 where logits gave 0.7)
    (lambda: [Dense(1, activation="sigmoid", input_dim=4), Dropout(0.5)],
     "binary_cross_entropy"),
    (lambda: [Dense(3, activation="softmax", input_dim=4), Dropout(0.2)], "cross_entropy")])
def test_reshaped_softmax_and_dropout_outputs_stay_logits_as_before(layers, loss):
    model = tn.Sequential(layers())
    model.compile("sgd", loss=loss)
    assert type(model.loss) in (tn.losses.CrossEntropy, tn.losses.BinaryCrossEntropy)
    assert output_losses.output_activation(model) is None


def test_a_sigmoid_map_then_cropping_and_flatten_is_a_probability_per_pixel():
    model = tn.Sequential([Reshape((4, 4, 1), input_dim=16),
                           Conv2D(1, 1, activation="sigmoid", seed=0),
                           Cropping2D(1), Flatten()])
    model.compile("sgd", loss="binary_cross_entropy")
    assert type(model.loss) is output_losses.SigmoidOutputBinaryCrossEntropy
    x = _RNG.standard_normal((6, 16))
    y = (_RNG.random((6, 4)) > 0.5).astype(np.float64)
    p = model.predict(x)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert model.evaluate(x, y)["loss"] == pytest.approx(expected, rel=1e-6)


def test_a_functional_output_behind_pass_through_layers_is_a_probability():
    inp = tn.mtl.Input((4,), dtype="float64")
    h = Dense(3, activation="softmax", seed=1)(inp)
    s = Dense(4, activation="sigmoid", seed=3)(inp)
    model = tn.mtl.Model(inp, {"a": Identity()(h), "b": Dense(2, seed=2)(inp),
                               "c": Flatten()(Reshape((2, 2))(s)), "d": Flatten()(h),
                               "e": Flatten()(Softmax(axis=1)(Reshape((2, 2))(s)))})
    model.compile("sgd", loss={"a": "cross_entropy", "b": "cross_entropy",
                               "c": "binary_cross_entropy", "d": "cross_entropy",
                               "e": "cross_entropy"})
    assert type(model.loss["a"]) is output_losses.SoftmaxOutputCrossEntropy
    assert type(model.loss["b"]) is tn.losses.CrossEntropy
    assert type(model.loss["c"]) is output_losses.SigmoidOutputBinaryCrossEntropy
    assert type(model.loss["d"]) is output_losses.SoftmaxOutputCrossEntropy  # rows kept
    assert type(model.loss["e"]) is tn.losses.CrossEntropy  # columns of a map: no rows
    p = model.predict(_X)["a"]
    expected = -np.mean(np.log(p[np.arange(40), _LABELS]))
    logs = model.evaluate(_X, {"a": _LABELS, "b": _LABELS % 2, "c": _BITS.repeat(4, axis=1),
                               "d": _LABELS, "e": _LABELS % 4})
    assert logs["a/loss"] == pytest.approx(expected, rel=1e-9)


def _fd_check(loss, p, target):
    value = loss.forward(p, target)
    analytic = loss.backward()
    numeric = numerical_grad(lambda: float(loss.forward(p, target)), p)
    assert max_rel_error(analytic, numeric, scale_floor=1e-3) < 1e-5
    return value


def test_a_softmax_output_with_binary_cross_entropy_is_the_bce_of_its_probabilities():
    # it was the logit BCE of the probabilities (a sigmoid applied to them)
    model = tn.Sequential([Dense(3, activation="softmax", input_dim=4, seed=0,
                                 dtype="float64")])
    model.compile("sgd", loss="binary_cross_entropy")
    assert type(model.loss) is output_losses.SigmoidOutputBinaryCrossEntropy
    y = (_RNG.random((40, 3)) > 0.5).astype(np.float64)
    p = model.predict(_X)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))   # Keras' from probabilities
    assert model.evaluate(_X, y)["loss"] == pytest.approx(expected, rel=1e-12)
    _fd_check(model.loss, p.copy(), y)


@pytest.mark.parametrize("config", [{}, {"label_smoothing": 0.2},
                                    {"weight": [1.0, 2.0, 0.5]}, {"reduction": "sum"}])
def test_a_sigmoid_output_with_cross_entropy_normalises_as_keras(config):
    # Keras' categorical cross-entropy of probabilities divides them by their
    # sum; tinynet took the sigmoids for logits (a softmax of probabilities)
    model = tn.Sequential([Dense(3, activation="sigmoid", input_dim=4, seed=0,
                                 dtype="float64")])
    model.compile("sgd", loss=tn.losses.CrossEntropy(**config))
    assert type(model.loss) is output_losses.NormalizedOutputCrossEntropy
    p = model.predict(_X)
    q = p / p.sum(axis=1, keepdims=True)
    # the same loss, from the logits of q: the logit CrossEntropy with the same settings
    expected = tn.losses.CrossEntropy(**config).forward(np.log(q), _LABELS)
    assert _fd_check(model.loss, p.copy(), _LABELS) == pytest.approx(expected, rel=1e-12)
    if not config:
        assert model.evaluate(_X, _LABELS)["loss"] == pytest.approx(expected, rel=1e-12)


def test_multi_label_targets_are_refused_by_the_class_metrics_before_training():
    # a perfect multi-label predictor scored accuracy 0.76, AUC 0.907 and
    # precision 0.534: the 0/1 rows were argmaxed as class probabilities
    x = _RNG.standard_normal((60, 3)).astype(np.float32)
    y = (x[:, :2] > 0).astype(np.int64)
    for metric in ("accuracy", "auc", "precision", "f1"):
        model = tn.Sequential([Dense(2, input_dim=3, seed=0)])
        model.compile("adam", loss="binary_cross_entropy", metrics=[metric])
        before = model.get_weights()
        with pytest.raises(ValueError, match=r"rows of class probabilities \(one-hot\) summing "
                                             r"to 1, received row \d+ \[1, 1\] summing to 2: "
                                             r"multi-label"):
            model.fit(x, y, epochs=1, verbose=0)
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)
    # one-hot rows, probability rows, rows of zeros (a sample padded out, its
    # weight 0) and NaN rows are class targets as before
    onehot = np.eye(3)[_LABELS]
    onehot[:4] = 0
    model = tn.Sequential([Dense(3, input_dim=4, seed=0)])
    model.compile("sgd", loss="cross_entropy", metrics=["accuracy"])
    weights = np.ones(40)
    weights[:4] = 0
    model.fit(_X, onehot, sample_weight=weights, epochs=1, verbose=0)
    acc = tn.metrics.Accuracy()
    assert acc(np.eye(3), np.array([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]])) == 1.0
    assert acc(np.eye(3), np.eye(3)) == 1.0
    soft = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])   # classes 1, 0, 2
    assert acc(np.eye(3), soft) == pytest.approx(1 / 3)


def test_predict_proba_of_a_binary_cross_entropy_model_is_a_sigmoid_per_label():
    # it was the softmax of the logits, whose rows sum to 1, while the same
    # model with a sigmoid head gave each label's probability
    logits = tn.Sequential([Dense(3, input_dim=4, seed=0)])
    logits.compile("adam", loss="binary_cross_entropy")
    sigmoid = tn.Sequential([Dense(3, input_dim=4, seed=0, activation="sigmoid")])
    np.testing.assert_allclose(logits.predict_proba(_X), sigmoid.predict_proba(_X), rtol=1e-6)
    logits.compile("adam", loss="cross_entropy")
    np.testing.assert_allclose(logits.predict_proba(_X).sum(axis=1), 1.0, rtol=1e-6)


def test_predict_proba_of_sigmoids_compiled_with_the_cross_entropy_is_what_its_loss_scores():
    # the loss takes the sigmoids divided by their sum as the class probabilities;
    # predict_proba gave the raw sigmoids (rows summing to anything in (0, 3))
    model = tn.Sequential([Dense(3, input_dim=4, seed=0, activation="sigmoid"), Identity()])
    raw = model.predict_proba(_X)                           # not compiled: the outputs
    np.testing.assert_array_equal(raw, model.predict(_X))
    model.compile("adam", loss="cross_entropy")
    proba = model.predict_proba(_X)
    np.testing.assert_allclose(proba, raw / raw.sum(axis=1, keepdims=True), rtol=1e-12)
    # their cross-entropy is the model's loss
    onehot = np.eye(3)[_LABELS]
    assert model.evaluate(_X, onehot)["loss"] == pytest.approx(
        -np.mean(np.log((proba * onehot).sum(axis=1))), rel=1e-6)
    np.testing.assert_array_equal(model.predict_classes(_X), proba.argmax(axis=1))
    # its AUC ranks those probabilities too, as scikit-learn's of predict_proba
    model.compile("adam", loss="cross_entropy", metrics=["auc"])
    skm = pytest.importorskip("sklearn.metrics")
    assert model.evaluate(_X, _LABELS)["auc"] == pytest.approx(
        skm.roc_auc_score(_LABELS, proba, multi_class="ovr"), abs=1e-12)
    assert model.evaluate(_X, _LABELS)["auc"] != tn.metrics.AUC()(raw, _LABELS)
    inp = tn.mtl.Input((4,))                                 # a task's head alike
    task = tn.mtl.Model(inp, {"t": Dense(3, seed=0, activation="sigmoid")(inp)})
    task.compile("adam", loss="cross_entropy", metrics=["auc"])
    assert task.evaluate(_X, {"t": _LABELS})["t/auc"] == model.evaluate(_X, _LABELS)["auc"]
    model.compile("adam", loss="binary_cross_entropy")      # one probability per label
    np.testing.assert_array_equal(model.predict_proba(_X), raw)
    binary = tn.Sequential([Dense(1, input_dim=4, seed=0, activation="sigmoid")])
    binary.compile("adam", loss="cross_entropy")            # one unit: P(class 1), as before
    np.testing.assert_array_equal(binary.predict_proba(_X), binary.predict(_X))


def _mine(pred, target):
    return float((pred.argmax(1) == target).mean())


class _MyMetric(tn.metrics.Metric):
    name = "mine_too"
    higher_is_better = True

    def __call__(self, pred, target):
        return 1.0


def test_a_model_with_a_metric_function_saves_and_loads_without_it(tmp_path):
    # save refused the model ("metric function 'mine' cannot be saved"), and
    # ModelCheckpoint failed that way after the first epoch had trained
    model = tn.Sequential([Dense(3, input_dim=4, seed=0)])
    model.compile("sgd", loss="cross_entropy", metrics=[_mine, "accuracy", _MyMetric()])
    with pytest.warns(UserWarning, match="metric function '_mine' is saved by its name only"):
        model.fit(_X, _LABELS, epochs=2, verbose=0, callbacks=[
            tn.callbacks.ModelCheckpoint(str(tmp_path / "ck_{epoch}.npz"), monitor="loss")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck_1.npz", "ck_2.npz"]
    with pytest.warns(UserWarning, match=r"the saved metric\(s\) \['_mine', '_MyMetric'\] are "
                                         r"a function or a class of your own"):
        loaded = tn.load(tmp_path / "ck_2.npz")
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    assert loaded.evaluate(_X, _LABELS) == {k: v for k, v in model.evaluate(_X, _LABELS).items()
                                            if k in ("loss", "accuracy")}


def test_a_multi_task_model_with_a_metric_function_saves_and_loads_without_it(tmp_path):
    inp = tn.mtl.Input((4,))
    model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(inp), "b": Dense(1, seed=2)(inp)})
    model.compile("sgd", loss={"a": "cross_entropy", "b": "mse"},
                  metrics={"a": [_mine, "accuracy"], "b": ["mae"]})
    with pytest.warns(UserWarning, match="saved by its name only"):
        model.save(tmp_path / "m.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = tn.load(tmp_path / "m.npz")
    assert any("load, task 'a': the saved metric(s) ['_mine']" in str(w.message)
               for w in caught)
    assert {t: [m.name for m in ms] for t, ms in loaded.metrics.items()} == {
        "a": ["accuracy"], "b": ["mae"]}


@pytest.mark.parametrize("units, activation", [(1, "sigmoid"), (3, "softmax")])
def test_predict_looks_past_dropout_which_training_does_not(units, activation):
    # Dropout is the identity in predict: its output there is the probabilities
    # (predict_proba squashed them again, predict_classes thresholded at 0),
    # while the loss pairs with the logit loss (in training it scales
    # probabilities past 1)
    model = tn.Sequential([Dense(units, activation=activation, input_dim=4, seed=1),
                           Dropout(0.2)])
    model.compile("sgd", loss="binary_cross_entropy" if units == 1 else "cross_entropy")
    assert type(model.loss).__module__ == "tinynet.losses"
    p = model.predict(_X)
    np.testing.assert_array_equal(model.predict_proba(_X), p)
    expected = (p[:, 0] > 0.5).astype(np.int64) if units == 1 else p.argmax(axis=1)
    np.testing.assert_array_equal(model.predict_classes(_X), expected)
    assert output_losses.output_activation(model, at_inference=True) == activation
    assert output_losses.output_activation(model) is None


def test_a_nested_model_returning_its_input_is_looked_out_of():
    # the walk stopped at the nested model's Input: the sigmoid before it was
    # not seen, and the logit loss took its probabilities
    xi = tn.mtl.Input((3,))
    inner = tn.mtl.Model(xi, Identity()(xi))
    inp = tn.mtl.Input((4,))
    model = tn.mtl.Model(inp, {"q": inner(Dense(3, activation="sigmoid", seed=0)(inp)),
                               "r": inner(Dense(3, seed=1)(inp))})
    model.compile("sgd", loss="binary_cross_entropy")
    assert type(model.loss["q"]) is output_losses.SigmoidOutputBinaryCrossEntropy
    assert type(model.loss["r"]) is tn.losses.BinaryCrossEntropy


def test_class_metrics_say_what_is_wrong_with_a_row_or_that_there_is_none():
    accuracy = tn.metrics.get("accuracy")
    with pytest.raises(ValueError, match="expected at least one sample, received 0"):
        accuracy(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"received row 1 \[1.5, -0.5, 0.0\], with a "
                                         r"negative entry"):
        accuracy(np.eye(3)[:2], np.array([[1.0, 0, 0], [1.5, -0.5, 0]]))
