"""Precision, recall, F1, ROC AUC, R² (and top-k's tie rule) against scikit-learn,
on whole data and accumulated over batches."""

import functools
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

import tinynet as tn
from tinynet import metrics
from tinynet.layers import Dense

AVERAGES = ("macro", "micro", "weighted")


def _quiet(fn, *args, **kwargs):
    """scikit-learn's value without its UndefinedMetricWarning (zero division)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _sk_prf(labels, predicted, average):
    return [_quiet(fn, labels, predicted, average=average)
            for fn in (skm.precision_score, skm.recall_score, skm.f1_score)]


def _ours_prf(pred, target, **kwargs):
    return [fn(pred, target, **kwargs) for fn in (metrics.precision, metrics.recall, metrics.f1)]


@pytest.mark.parametrize("seed", range(8))
def test_precision_recall_f1_match_sklearn_multiclass(seed):
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 60)), int(rng.integers(3, 7))
    pred = rng.standard_normal((n, classes))
    # classes that are never true, never predicted, or neither (left out of macro)
    labels = rng.integers(0, classes - 1, n)
    pred[:, 0] -= 10 * (seed % 2)  # class 0 never predicted on odd seeds
    predicted = pred.argmax(axis=1)
    for average in AVERAGES:
        expected = _sk_prf(labels, predicted, average)
        assert _ours_prf(pred, labels, average=average) == expected
        assert _ours_prf(pred, np.eye(classes)[labels], average=average) == expected
    assert _ours_prf(pred, labels) == _sk_prf(labels, predicted, "macro")  # the default


@pytest.mark.parametrize("seed", range(6))
def test_precision_recall_f1_match_sklearn_binary(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    logits = rng.standard_normal((n, 1)) + (seed - 3)  # seed 0: nothing predicted positive
    labels = rng.integers(0, 2, n) * (seed != 5)       # seed 5: no positive target
    predicted = (logits[:, 0] > 0).astype(int)
    assert _ours_prf(logits, labels) == _sk_prf(labels, predicted, "binary")  # the default
    assert _ours_prf(logits[:, 0], labels.astype(bool), average="binary") == \
        _sk_prf(labels, predicted, "binary")
    for average in AVERAGES:
        assert _ours_prf(logits, labels, average=average) == _sk_prf(labels, predicted, average)
    probs = 1 / (1 + np.exp(-logits))
    assert _ours_prf(probs, labels, threshold=0.5) == _sk_prf(labels, (probs[:, 0] > 0.5), "binary")
    # two softmax outputs: binary too, class 1 positive
    two = np.hstack([np.zeros_like(logits), logits])
    assert _ours_prf(two, labels) == _sk_prf(labels, predicted, "binary")


def test_micro_scores_equal_accuracy_for_single_label_classes():
    rng = np.random.default_rng(0)
    pred, labels = rng.standard_normal((50, 4)), rng.integers(0, 4, 50)
    assert _ours_prf(pred, labels, average="micro") == [metrics.accuracy(pred, labels)] * 3


def test_zero_division_counts_zero_as_sklearn():
    # class 2 never predicted: its precision is 0/0 -> 0; class 1 never true: recall 0
    pred = np.eye(3)[[0, 1, 0, 0]]
    labels = np.array([0, 0, 2, 2])
    assert metrics.precision(pred, labels) == _quiet(skm.precision_score, labels, [0, 1, 0, 0],
                                                     average="macro")
    assert metrics.precision(pred, labels) == pytest.approx((1 / 3 + 0 + 0) / 3)
    assert metrics.recall(pred, labels) == pytest.approx((1 / 2 + 0 + 0) / 3)


def _sk_auc(labels, scores):
    return skm.roc_auc_score(labels, scores, multi_class="ovr") if scores.ndim == 2 else \
        skm.roc_auc_score(labels, scores)


@pytest.mark.parametrize("seed", range(8))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 80))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 1 + seed, n).astype(float)  # seed 0: every score tied
    assert metrics.auc(scores, labels) == _sk_auc(labels, scores)
    assert metrics.auc(scores[:, None], labels[:, None]) == _sk_auc(labels, scores)
    # multi-class one-vs-rest, macro: probabilities with ties (rounded)
    classes = 3 + seed % 3
    labels = np.r_[np.arange(classes), rng.integers(0, classes, n)]
    logits = rng.standard_normal((len(labels), classes))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = np.round(probs, 1)
    probs /= probs.sum(axis=1, keepdims=True)
    assert metrics.auc(probs, labels) == _sk_auc(labels, probs)
    assert metrics.auc(probs, np.eye(classes)[labels]) == _sk_auc(labels, probs)


def test_auc_is_the_chance_a_positive_outscores_a_negative():
    rng = np.random.default_rng(3)
    scores, labels = rng.integers(0, 4, 30).astype(float), rng.integers(0, 2, 30)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert metrics.auc(scores, labels) == pytest.approx(pairs.mean(), abs=1e-15)


def test_auc_undefined_cases():
    with pytest.raises(ValueError, match="auc is undefined: the targets hold only one class"):
        metrics.auc(np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="one-vs-rest for class 2 .* 0 of 4"):
        metrics.auc(np.eye(3)[[0, 1, 0, 1]], np.array([0, 1, 0, 1]))
    assert np.isnan(metrics.auc(np.array([np.nan, 0.2]), np.array([0, 1])))
    # an epoch whose first batches hold one class: NaN until both have come
    states = metrics.MetricStates([metrics.AUC()])
    states.add(np.array([0.1, 0.2]), np.array([0, 0]))
    assert np.isnan(states.results()["auc"])
    states.add(np.array([0.3]), np.array([1]))
    assert states.results()["auc"] == 1.0


def test_fit_refuses_single_class_targets_for_auc_before_training():
    model = tn.Sequential([Dense(1, input_dim=2, seed=0)])
    model.compile("sgd", loss="binary_cross_entropy", metrics=["auc"])
    x = np.zeros((6, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="auc is undefined: the targets hold only one class"):
        model.fit(x, np.ones(6, dtype=int), verbose=0)
    with pytest.raises(ValueError, match="auc is undefined"):
        model.fit(x, np.arange(6) % 2, validation_data=(x, np.zeros(6, dtype=int)), verbose=0)


def test_fit_with_sorted_labels_logs_the_whole_epochs_auc():
    # the first batches hold class 0 only: the running AUC is NaN, the epoch's is not
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 2)).astype(np.float32), (np.arange(40) >= 30).astype(int)
    model = tn.Sequential([Dense(1, input_dim=2, seed=0)])
    model.compile(tn.optim.SGD(lr=0.0), loss="binary_cross_entropy", metrics=["auc"])
    seen = []

    class Logger(tn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["auc"])

    logger = Logger()
    history = model.fit(x, y, batch_size=10, shuffle=False, callbacks=[logger], verbose=0)
    assert np.isnan(seen[:3]).all() and seen[3] == history.history["auc"][0]
    assert history.history["auc"][0] == skm.roc_auc_score(y, model.predict(x)[:, 0])
    with pytest.raises(ValueError, match=r"auc expected predictions of shape \(n, classes\)"):
        metrics.auc(np.zeros((4, 2, 2)), np.array([0, 1, 0, 1]))


@pytest.mark.parametrize("seed", range(6))
def test_r2_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, outputs = int(rng.integers(2, 50)), int(rng.integers(1, 4))
    target = rng.standard_normal((n, outputs)) * 3 + 1
    pred = target + rng.standard_normal((n, outputs))
    if outputs > 1:  # a constant target column: predicted exactly (1) or not (0)
        target[:, 0] = 2.0
        pred[:, 0] = 2.0 if seed % 2 else 2.5
    assert metrics.r2(pred, target) == skm.r2_score(target, pred)
    assert metrics.r2(pred[:, :1], target[:, 0]) == skm.r2_score(target[:, 0], pred[:, 0])


def test_r2_of_one_sample_is_nan_as_sklearn():
    assert np.isnan(metrics.r2(np.array([[1.0]]), np.array([[2.0]])))
    assert np.isnan(_quiet(skm.r2_score, [2.0], [1.0]))


def test_r2_is_higher_is_better_and_refuses_other_shapes():
    with pytest.raises(ValueError, match="predictions' shape"):
        metrics.r2(np.zeros((3, 2)), np.zeros((3, 3)))


@pytest.mark.parametrize("name", ["accuracy", "top_k_accuracy", "precision", "recall", "f1",
                                  "auc", "r2", "mse", "mae"])
def test_no_samples_is_an_error_as_in_sklearn(name):
    metric = metrics.get(name)
    pred = np.zeros((0, 5))
    target = np.zeros(0, dtype=int) if name not in ("r2", "mse", "mae") else np.zeros((0, 5))
    with pytest.raises(ValueError, match=f"{metric.name} expected at least one sample, "
                                         f"received 0"):
        metric(pred, target)
    with pytest.raises(ValueError, match="minimum of 1 sample"):
        skm.accuracy_score([], [])


def test_top_k_ties_go_to_the_lower_index_as_argmax_unlike_sklearn():
    pred = np.array([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4]])
    labels = np.array([0, 2])
    # ours: the tie goes to class 0 (sample 0 a hit) and to class 1 (sample 1 a miss),
    # as np.argmax, so top-1 equals accuracy
    assert metrics.top_k_accuracy(pred, labels, k=1) == metrics.accuracy(pred, labels) == 0.5
    assert skm.accuracy_score(labels, pred.argmax(axis=1)) == 0.5
    # scikit-learn's top_k_accuracy_score gives ties to the higher index
    sk = skm.top_k_accuracy_score(labels, pred, k=1, labels=[0, 1, 2])
    assert sk == 0.5 and skm.top_k_accuracy_score([0], pred[:1], k=1, labels=[0, 1, 2]) == 0.0
    assert metrics.top_k_accuracy(pred[:1], labels[:1], k=1) == 1.0
    # without ties they agree
    rng = np.random.default_rng(0)
    pred, labels = rng.standard_normal((60, 5)), np.r_[np.arange(5), rng.integers(0, 5, 55)]
    for k in (1, 2, 4):
        assert metrics.top_k_accuracy(pred, labels, k=k) == \
            _quiet(skm.top_k_accuracy_score, labels, pred, k=k)


def test_bad_arguments():
    with pytest.raises(ValueError, match="F1Score expected average None or one of 'binary', "
                                         "'macro', 'micro', 'weighted', received 'samples'"):
        metrics.F1Score(average="samples")
    with pytest.raises(ValueError, match="precision with average='binary' expected two "
                                         "classes .* received predictions of 3 classes"):
        metrics.precision(np.zeros((2, 3)), np.array([0, 1]), average="binary")
    with pytest.raises(ValueError, match="top_4_accuracy expected k at most the number of "
                                         "classes 3, received k=4"):
        metrics.top_k_accuracy(np.zeros((2, 3)), np.array([0, 1]), k=4)
    with pytest.raises(ValueError, match="Recall expected threshold"):
        metrics.Recall(threshold=np.nan)
    with pytest.raises(ValueError, match="labels in"):
        metrics.f1(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"f1 expected predictions of shape"):
        metrics.f1(np.zeros((2, 3, 1)), np.array([0, 1]))


# ------------------------------------------------------------- over batches
NEW = ("accuracy", "precision", "recall", "f1", "auc")


def _batches(rng, n):
    cuts = np.sort(rng.choice(np.arange(1, n), size=5, replace=False))
    return np.split(rng.permutation(n), cuts)


@pytest.mark.parametrize("seed", range(4))
def test_states_merged_over_batches_equal_the_whole(seed):
    rng = np.random.default_rng(seed)
    n = 60
    labels = np.r_[np.arange(4), rng.integers(0, 4, n - 4)]
    probs = np.round(rng.dirichlet(np.ones(4), n), 2)
    target, pred = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    classification = [metrics.get(m) for m in NEW] + [metrics.F1Score("weighted"),
                                                      metrics.Precision("micro")]
    states, regression = metrics.MetricStates(classification), metrics.MetricStates(
        [metrics.R2Score(), metrics.MeanSquaredError()])
    for idx in _batches(rng, n):
        states.add(probs[idx], labels[idx])
        regression.add(pred[idx], target[idx])
    results = [m.result(state) for m, state in zip(states.metrics, states.states)]
    for metric, result in zip(classification, results):  # exact: counts, a sort of scores
        assert result == metric(probs, labels)
    assert regression.results()["r2"] == pytest.approx(skm.r2_score(target, pred), rel=1e-13)
    assert regression.results()["mse"] == pytest.approx(metrics.mse(pred, target), rel=1e-13)


def _frozen(model):
    """Train at a zero rate: every batch sees the same weights, so an epoch's
    metrics must equal the metrics of predict on all the training samples."""
    return tn.optim.SGD(lr=0.0)


def test_fit_logs_the_epoch_metric_not_a_mean_of_batch_scores():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((101, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(101) > 0).astype(int)
    model = tn.Sequential([Dense(1, input_dim=4, seed=0)])
    model.compile(_frozen(model), loss="binary_cross_entropy", metrics=list(NEW))
    x_val, y_val = x[:40], y[:40]
    history = model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0,
                        validation_data=(x_val, y_val))
    scores = model.predict(x)[:, 0]
    predicted = (scores > 0).astype(int)
    expected = {"accuracy": skm.accuracy_score(y, predicted),
                "precision": skm.precision_score(y, predicted),
                "recall": skm.recall_score(y, predicted), "f1": skm.f1_score(y, predicted),
                "auc": skm.roc_auc_score(y, scores)}
    val_scores = model.predict(x_val)[:, 0]
    for name, value in expected.items():
        assert history.history[name] == [value, value], name
    assert history.history["val_auc"][-1] == skm.roc_auc_score(y_val, val_scores)
    assert history.history["val_f1"][-1] == skm.f1_score(y_val, (val_scores > 0).astype(int))
    # a mean of batch F1s would differ (batches of 8 with few positives)
    batch_f1 = [skm.f1_score(y[i:i + 8], predicted[i:i + 8], zero_division=0)
                for i in range(0, 101, 8)]
    assert not np.isclose(np.average(batch_f1, weights=[len(y[i:i + 8])
                                                        for i in range(0, 101, 8)]),
                          expected["f1"])
    evaluated = model.evaluate(x, y, batch_size=7)
    assert {k: evaluated[k] for k in expected} == expected


def test_fit_r2_over_the_epoch_equals_r2_of_all_samples():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 3)).astype(np.float32)
    y = x @ np.array([[1.0, 0.5], [-1.0, 0.0], [0.3, 2.0]], dtype=np.float32)
    model = tn.Sequential([Dense(2, input_dim=3, seed=0)])
    model.compile(_frozen(model), loss="mse", metrics=["r2", "mse"])
    history = model.fit(x, y, epochs=1, batch_size=16, seed=3, verbose=0)
    expected = skm.r2_score(y.astype(np.float64), model.predict(x).astype(np.float64))
    assert history.history["r2"][0] == pytest.approx(expected, rel=1e-12)
    assert model.evaluate(x, y, batch_size=1000)["r2"] == expected


def test_mtl_fit_accumulates_each_task_metric_over_its_labelled_samples():
    rng = np.random.default_rng(2)
    n = 64
    x = rng.standard_normal((n, 5)).astype(np.float32)
    inp = tn.mtl.Input((5,))
    trunk = Dense(8, activation="relu", seed=0)(inp)
    model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(trunk), "b": Dense(1, seed=2)(trunk)})
    y_a = rng.integers(0, 3, n)
    y_a[rng.random(n) < 0.3] = -1  # missing labels
    y_b = rng.standard_normal(n)
    model.compile(tn.optim.SGD(lr=0.0), loss={"a": "cross_entropy", "b": "mse"},
                  metrics={"a": ["f1", "auc", "accuracy"], "b": ["r2"]})
    history = model.fit(x, {"a": y_a, "b": y_b}, epochs=1, batch_size=10, seed=0, verbose=0)
    out = model.predict(x)
    keep = y_a >= 0
    assert history.history["a/f1"][0] == skm.f1_score(y_a[keep], out["a"][keep].argmax(1),
                                                       average="macro")
    # (task a outputs logits: its AUC ranks their softmax, as scikit-learn's probabilities)
    assert history.history["a/auc"][0] == metrics.auc(out["a"][keep], y_a[keep],
                                                       from_logits=True)
    # fit's outputs come from batches of 10, predict's from one of 64: with the GEMM
    # engine on BLAS (TINYNET_GEMM=blas, or auto's choice on some machines) a float32
    # product rounds by batch shape, so the r2 values agree to float32's precision only
    assert history.history["b/r2"][0] == pytest.approx(
        skm.r2_score(y_b, out["b"][:, 0].astype(np.float64)), rel=1e-6)
    assert model.evaluate(x, {"a": y_a, "b": y_b})["a/f1"] == history.history["a/f1"][0]


# ------------------------------------------------------ registry, direction
def test_registry_names_and_history_keys():
    for name, cls in (("precision", metrics.Precision), ("recall", metrics.Recall),
                      ("f1", metrics.F1Score), ("f1_score", metrics.F1Score),
                      ("auc", metrics.AUC), ("roc_auc", metrics.AUC), ("r2", metrics.R2Score),
                      ("r2_score", metrics.R2Score)):
        assert type(metrics.get(name)) is cls
    x = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    y = np.arange(20) % 3
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    model.compile("adam", loss="cross_entropy", metrics=["f1", "auc", "precision", "recall"])
    history = model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert set(history.history) == {"loss", "f1", "auc", "precision", "recall"}


@pytest.mark.parametrize("monitor, mode", [
    ("val_f1", "max"), ("f1", "max"), ("val_auc", "max"), ("val_r2", "max"),
    ("precision", "max"), ("val_recall", "max"), ("val_left/f1", "max"),
    ("val_top_3_accuracy", "max"), ("val_mse", "min"), ("val_loss", "min"),
    ("val_acc", "max"), ("val_left/loss", "min"), ("val_accent/loss", "min"),
    ("val_my_acc", None), ("val_my_error", None)])  # (None: asked again when training starts)
def test_auto_mode_follows_the_registry(monitor, mode):
    assert tn.callbacks.EarlyStopping(monitor=monitor).mode == mode
    assert tn.callbacks.ModelCheckpoint("m.npz", monitor=monitor).mode == mode
    assert tn.callbacks.ReduceLROnPlateau(monitor=monitor).mode == mode


def test_delta_m_takes_the_new_metrics_as_higher_is_better():
    gains = tn.mtl.metrics.relative_gains({"a/f1": 0.9, "b/r2": 0.9, "c/auc": 0.9},
                                          {"a/f1": 0.8, "b/r2": 0.8, "c/auc": 0.8})
    assert all(g > 0 for g in gains.values())
    for name in ("precision", "recall", "f1", "auc", "r2"):
        assert metrics.higher_is_better(name) is True
    assert metrics.higher_is_better("mae") is False and metrics.higher_is_better("loss") is False


def test_every_built_in_and_lower_is_better_name_has_its_direction():
    # the built-in metrics say theirs (METRICS, read first); LOWER_IS_BETTER
    # holds the other names known to be minimised (the losses', the errors')
    for name, cls in metrics.METRICS.items():
        assert metrics.higher_is_better(name) is cls.higher_is_better
        assert metrics.higher_is_better(f"val_left/{name.upper()}") is cls.higher_is_better
    for name in metrics.LOWER_IS_BETTER:
        assert metrics.higher_is_better(name) is False
    assert {"mse", "mae", "mean_squared_error", "mean_absolute_error", "huber", "rmse",
            "cross_entropy"} <= metrics.LOWER_IS_BETTER
    assert not {n for n, cls in metrics.METRICS.items() if cls.higher_is_better} \
        & metrics.LOWER_IS_BETTER
    assert tn.mtl.metrics.LOWER_IS_BETTER is metrics.LOWER_IS_BETTER


def test_thresholded_metrics_take_one_half_after_a_sigmoid():
    head = Dense(1, activation="sigmoid")
    for name in ("precision", "recall", "f1"):
        fitted = metrics.for_output(metrics.get(name), head)
        assert type(fitted) is type(metrics.get(name)) and fitted.threshold == 0.5
    kept = metrics.F1Score(average="macro", threshold=0.2)
    assert metrics.for_output(kept, head) is kept


def test_save_and_load_keep_the_new_metrics(tmp_path):
    x = np.random.default_rng(0).standard_normal((30, 3)).astype(np.float32)
    y = np.arange(30) % 3
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    given = ["f1", metrics.Precision(average="weighted"), "auc", metrics.Recall("micro")]
    model.compile("adam", loss="cross_entropy", metrics=given)
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    config = model.get_compile_config()["metrics"]
    assert config[:1] == ["f1"] and config[2] == "auc"
    assert config[1] == {"class": "Precision", "config": {"average": "weighted",
                                                          "threshold": None}}
    model.save(tmp_path / "m.npz")
    again = tn.load(tmp_path / "m.npz")
    assert [(type(m), m.get_config()) for m in again.metrics] == \
        [(type(m), m.get_config()) for m in model.metrics]
    assert again.evaluate(x, y) == model.evaluate(x, y)


@pytest.mark.parametrize("seed", range(3))
def test_running_auc_and_r2_are_the_exact_values_up_to_rounding(seed):
    # running_result (fit's value after each batch) is kept as counts merged
    # batch by batch; result (the epoch's, evaluate's) is scikit-learn's
    rng = np.random.default_rng(seed)
    n, classes = 300, 4
    probs = rng.dirichlet(np.ones(classes), n).round(2)  # rounding makes ties
    labels = rng.integers(0, classes, n)
    target = rng.normal(size=(n, 3))
    pred = target + rng.normal(size=(n, 3))
    specs = [(metrics.AUC(), probs, labels), (metrics.AUC(), probs[:, :1], labels % 2),
             (metrics.R2Score(), pred, target)]
    for metric, p, t in specs:
        states = metrics.MetricStates([metric])
        for first in range(0, n, 37):
            states.add(p[first:first + 37], t[first:first + 37])
            exact = metric(p[:first + 37], t[:first + 37])
            assert states.results()[metric.name] == exact
            assert states.results(running=True)[metric.name] == pytest.approx(exact, rel=1e-13)
    auc = metrics.AUC()
    pos, neg = probs[labels % 2 == 1, 0], probs[labels % 2 == 0, 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    state = auc.batch_state(probs[:, :1], labels % 2)
    assert auc.running_result(state) == pairs.sum() / pairs.size  # the fraction, rounded once


def test_running_auc_and_r2_undefined_nan_and_one_sample():
    states = metrics.MetricStates([metrics.AUC(), metrics.R2Score()])
    states.add(np.array([[0.3]]), np.array([1]))
    assert all(np.isnan(v) for v in states.results(running=True).values())
    states.add(np.array([[0.1], [np.nan]]), np.array([0, 1]))
    assert np.isnan(states.results(running=True)["auc"]) and np.isnan(states.results()["auc"])
    with pytest.raises(ValueError, match="received 0"):
        metrics.R2Score().running_result(metrics.R2Score().batch_state(np.zeros((0, 1)),
                                                                       np.zeros(0)))


def test_fit_shows_the_running_auc_and_logs_the_exact_one():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((90, 3)).astype(np.float32)
    y = (x[:, 0] + rng.standard_normal(90) > 0).astype(int)
    model = tn.Sequential([tn.layers.Dense(1, input_dim=3, seed=0)])
    model.compile(tn.optim.SGD(lr=0.0), loss="binary_cross_entropy", metrics=["auc", "r2"])
    seen = []

    class Record(tn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(dict(logs))

    history = model.fit(x, y, epochs=1, batch_size=20, shuffle=False, callbacks=[Record()],
                        verbose=0)
    scores = model.predict(x)[:, 0]
    for batch, logs in enumerate(seen[:-1]):
        upto = 20 * (batch + 1)
        assert logs["auc"] == pytest.approx(skm.roc_auc_score(y[:upto], scores[:upto]),
                                            rel=1e-13)
    assert seen[-1]["auc"] == history.history["auc"][0] == skm.roc_auc_score(y, scores)


def test_named_metrics_of_one_kind_compile_log_and_save_together(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    y = np.arange(60) % 3
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    f1_micro = metrics.F1Score(average="micro", name="f1_micro")
    model.compile(tn.optim.SGD(lr=0.0), loss="cross_entropy",
                  metrics=[f1_micro, "f1", metrics.TopKAccuracy(2, name="top2")])
    stop = tn.callbacks.EarlyStopping(monitor="f1_micro", patience=5)
    plateau = tn.callbacks.ReduceLROnPlateau(monitor="top2", patience=5)
    assert stop.mode is plateau.mode is None  # unknown before training: not guessed
    history = model.fit(x, y, epochs=1, verbose=0, batch_size=64, callbacks=[stop, plateau])
    assert stop.mode == plateau.mode == "max"  # the model's metrics' direction
    predicted = model.predict(x).argmax(axis=1)
    assert history.history["f1_micro"] == [skm.f1_score(y, predicted, average="micro")]
    assert history.history["f1"] == [skm.f1_score(y, predicted, average="macro")]
    assert set(model.evaluate(x, y)) == {"loss", "f1_micro", "f1", "top2"}
    config = model.get_compile_config()["metrics"]
    assert config[0] == {"class": "F1Score", "config": {"average": "micro", "threshold": None,
                                                       "name": "f1_micro"}}
    assert repr(f1_micro) == "F1Score(average='micro', threshold=None, name='f1_micro')"
    model.save(tmp_path / "m.npz")
    again = tn.load(tmp_path / "m.npz")
    assert [m.name for m in again.metrics] == ["f1_micro", "f1", "top2"]
    assert again.evaluate(x, y) == model.evaluate(x, y)


def test_metric_names_twice_or_bad_are_refused():
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    with pytest.raises(ValueError, match=r"2 metrics are named 'f1'.*name='f1_2'"):
        model.compile("adam", loss="cross_entropy",
                      metrics=["f1", metrics.F1Score(average="micro")])
    with pytest.raises(ValueError, match="a metric and the 'loss' log key"):
        model.compile("adam", loss="cross_entropy", metrics=[metrics.AUC(name="loss")])
    for bad in ("", "a/b", 3):
        with pytest.raises(ValueError, match="expected name as a non-empty string"):
            metrics.Recall(name=bad)
    assert metrics.higher_is_better("val_f1_micro") is None
    assert metrics.higher_is_better("val_left/f1_micro", {"left/f1_micro": metrics.F1Score()})
    assert metrics.logged_metrics(object()) == {}


class _SlashName(metrics.Metric):
    name = "b/accuracy"        # a class attribute: name='s check never saw it
    higher_is_better = True

    def __call__(self, pred, target):
        return 0.5


def test_a_metric_class_named_with_a_slash_is_refused_at_compile():
    # task "a"'s metric "b/accuracy" was logged as "a/b/accuracy", overwriting
    # the accuracy of task "a/b" in evaluate's dict, the logs and History
    inp = tn.mtl.Input((4,))
    model = tn.mtl.Model(inp, {"a/b": Dense(3, seed=1)(inp), "a": Dense(3, seed=2)(inp)})
    with pytest.raises(ValueError, match=r"compile, task 'a': _SlashName expected name as a "
                                         r"non-empty string without '/', received 'b/accuracy'"):
        model.compile("adam", loss="cross_entropy",
                      metrics={"a/b": ["accuracy"], "a": [_SlashName()]})
    single = tn.Sequential([Dense(3, input_dim=4)])
    with pytest.raises(ValueError, match="_SlashName expected name as a non-empty string"):
        single.compile("adam", loss="cross_entropy", metrics=[_SlashName()])
    model.compile("adam", loss="cross_entropy", metrics=["accuracy"])   # a '/' in a task is fine
    x = np.random.default_rng(0).standard_normal((12, 4))
    assert sorted(model.evaluate(x, {"a/b": np.arange(12) % 3, "a": np.arange(12) % 3})) == [
        "a/accuracy", "a/b/accuracy", "a/b/loss", "a/loss", "loss"]


def test_mtl_named_metrics_log_per_task_and_twice_is_refused():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    inp = tn.mtl.Input((4,))
    model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(inp), "b": Dense(1, seed=2)(inp)})
    y = {"a": np.arange(40) % 3, "b": rng.standard_normal(40)}
    with pytest.raises(ValueError, match="task 'a': a metric and the 'weight' log key"):
        model.compile("adam", loss={"a": "cross_entropy", "b": "mse"},
                      metrics={"a": [metrics.Accuracy(name="weight")]})
    with pytest.raises(ValueError, match="task 'b': 2 metrics are named 'r2'"):
        model.compile("adam", loss={"a": "cross_entropy", "b": "mse"},
                      metrics={"b": ["r2", "r2_score"]})
    model.compile(tn.optim.SGD(lr=0.0), loss={"a": "cross_entropy", "b": "mse"},
                  metrics={"a": ["f1", metrics.F1Score(average="micro", name="f1_micro")],
                           "b": [metrics.MeanAbsoluteError(name="err")]})
    stop = tn.callbacks.EarlyStopping(monitor="val_a/f1_micro", patience=3)
    low = tn.callbacks.EarlyStopping(monitor="val_b/err", patience=3)
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_data=(x, y),
                        callbacks=[stop, low])
    assert (stop.mode, low.mode) == ("max", "min")
    predicted = model.predict(x)["a"].argmax(axis=1)
    assert history.history["a/f1_micro"] == [skm.f1_score(y["a"], predicted, average="micro")]
    assert history.history["val_a/f1_micro"] == history.history["a/f1_micro"]
    assert "b/err" in history.history


def _softmax64(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_multiclass_auc_of_logits_is_sklearns_of_the_softmax_probabilities():
    # column 0 of the logits ranks sample 1 above sample 0; its softmax
    # probability ranks them the other way (sample 1's other logits are larger)
    logits = np.array([[1.0, 0.0, 0.0], [2.0, 3.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    labels = np.array([0, 1, 1, 2])
    probs = _softmax64(logits)
    assert metrics.auc(logits, labels) != _sk_auc(labels, probs)
    assert metrics.auc(logits, labels, from_logits=True) == _sk_auc(labels, probs)
    assert metrics.auc(probs, labels) == _sk_auc(labels, probs)
    assert metrics.auc(logits[:, :1], labels % 2, from_logits=True) == \
        _sk_auc(labels % 2, logits[:, 0])  # binary: the sigmoid would rank as the logit
    with pytest.raises(TypeError):
        metrics.AUC(from_logits="yes")


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_compiled_auc_ranks_the_models_probabilities(activation):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((80, 4)).astype(np.float32)
    y = np.arange(80) % 3
    model = tn.Sequential([Dense(3, input_dim=4, activation=activation, seed=0)])
    model.compile("adam", loss="cross_entropy", metrics=["auc"])
    assert model.metrics[0].from_logits is (activation is None)
    assert model.get_compile_config()["metrics"] == ["auc"]
    out = model.predict(x).astype(np.float64)
    probs = out if activation else _softmax64(out)
    assert model.evaluate(x, y)["auc"] == _sk_auc(y, probs)
    history = model.fit(x, y, epochs=1, batch_size=30, verbose=0, validation_data=(x, y),
                        callbacks=[tn.callbacks.EarlyStopping("val_auc")])
    assert history.history["val_auc"] == [model.evaluate(x, y)["auc"]]


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a == b or (np.isnan(a) and np.isnan(b)), (ours, theirs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
def test_zero_division_matches_sklearn(seed, zero_division):
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 30)), int(rng.integers(3, 6))
    pred = rng.standard_normal((n, classes))
    labels = rng.integers(0, classes - 1, n)  # the last class is never true
    pred[:, 0] -= 10 * (seed % 2)  # class 0 never predicted on odd seeds
    predicted = pred.argmax(axis=1)
    for average in ("macro", "micro", "weighted"):
        theirs = [_quiet(fn, labels, predicted, average=average, zero_division=zero_division)
                  for fn in (skm.precision_score, skm.recall_score, skm.f1_score)]
        _same(_ours_prf(pred, labels, average=average, zero_division=zero_division), theirs)
    # binary: a positive class never predicted, never true, or neither
    for scores, truth in ((np.full(4, -1.0), np.array([0, 1, 0, 1])),
                          (np.array([1.0, -1.0, 1.0, -1.0]), np.zeros(4, int)),
                          (np.full(4, -1.0), np.zeros(4, int))):
        theirs = [_quiet(fn, truth, (scores > 0).astype(int), zero_division=zero_division)
                  for fn in (skm.precision_score, skm.recall_score, skm.f1_score)]
        _same(_ours_prf(scores, truth, zero_division=zero_division), theirs)
    # "nan" as saved (JSON has no NaN)
    _same([metrics.precision(np.full(4, -1.0), np.array([0, 1, 0, 1]), zero_division="nan")],
          [np.nan])


@pytest.mark.parametrize("seed", range(5))
def test_pos_label_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    logits, labels = rng.standard_normal(n), rng.integers(0, 2, n)
    predicted = (logits > 0).astype(int)
    for pos_label in (0, 1):
        theirs = [_quiet(fn, labels, predicted, pos_label=pos_label)
                  for fn in (skm.precision_score, skm.recall_score, skm.f1_score)]
        assert _ours_prf(logits, labels, pos_label=pos_label) == theirs
        two = np.stack([-logits, logits], axis=1)  # two output units: the arg-max
        assert _ours_prf(two, labels, average="binary", pos_label=pos_label) == theirs


def test_pos_label_and_zero_division_are_checked_and_saved():
    for bad in (2, -1, True, "1"):
        with pytest.raises(ValueError, match="expected pos_label 0 or 1"):
            metrics.Precision(pos_label=bad)
    with pytest.raises(ValueError, match="pos_label for average='binary' only"):
        metrics.Recall(average="macro", pos_label=0)
    with pytest.raises(ValueError, match="f1 with pos_label=0 expected two classes"):
        metrics.f1(np.eye(3), np.arange(3), pos_label=0)
    for bad in (0.5, "warn", None, True):
        with pytest.raises(ValueError, match="expected zero_division 0, 1 or nan"):
            metrics.F1Score(zero_division=bad)
    metric = metrics.F1Score(pos_label=0, zero_division=np.nan)
    config = metrics.to_config(metric)
    assert config == {"class": "F1Score", "config": {"average": None, "threshold": None,
                                                     "pos_label": 0, "zero_division": "nan"}}
    again = metrics.get(config)
    assert again.pos_label == 0 and np.isnan(again.zero_division)
    assert metrics.to_config(metrics.F1Score(zero_division=0)) == "f1"


def test_an_epoch_stopped_mid_way_logs_the_exact_auc_of_its_samples():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((90, 3)).astype(np.float32)
    y = (x[:, 0] + rng.standard_normal(90) > 0).astype(int)
    model = tn.Sequential([Dense(1, input_dim=3, seed=0)])
    model.compile(tn.optim.SGD(lr=0.0), loss="binary_cross_entropy", metrics=["auc", "r2"])

    class StopAfterTwo(tn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    history = model.fit(x, y, epochs=3, batch_size=20, shuffle=False,
                        callbacks=[StopAfterTwo()], verbose=0)
    scores = model.predict(x)[:40]
    assert history.history["auc"] == [skm.roc_auc_score(y[:40], scores[:, 0])]
    assert history.history["r2"] == [metrics.r2(scores, y[:40])]


@pytest.mark.parametrize("name, held", [
    ("lr", "the learning rate, logged by LearningRateScheduler and ReduceLROnPlateau"),
    ("l2sp_penalty", "the L2-SP penalty"), ("val_loss", "the validation loss")])
def test_a_metric_named_like_a_key_fit_or_a_callback_logs_is_refused(name, held):
    # a metric named "lr" was accepted, and LearningRateScheduler or
    # ReduceLROnPlateau overwrote its epoch values with the learning rate
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    with pytest.raises(ValueError, match=rf"a metric and the '{name}' log key \({held}.*\) "
                                         rf"are named '{name}'.*name='{name}_2'"):
        model.compile("adam", loss="cross_entropy", metrics=[metrics.Recall(name=name)])

    def lr(pred, target):  # a function metric takes the function's name
        return 0.0
    with pytest.raises(ValueError, match="a metric and the 'lr' log key"):
        model.compile("adam", loss="cross_entropy", metrics=["accuracy", lr])



def test_a_metric_named_like_another_metrics_validation_key_is_refused():
    # History recorded the training accuracy as "val_accuracy" (the metric of
    # that name overwrote the validation value, which went to val_val_accuracy)
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    with pytest.raises(ValueError, match=r"the metric 'val_accuracy' and the validation value "
                                         r"of the metric 'accuracy' would both be logged as "
                                         r"'val_accuracy'.*name='accuracy_val'"):
        model.compile("adam", loss="cross_entropy",
                      metrics=["accuracy", metrics.Accuracy(name="val_accuracy")])
    model.compile("adam", loss="cross_entropy",  # alone, it is its own key
                  metrics=[metrics.Accuracy(name="val_accuracy")])

def test_every_key_tinynets_callbacks_log_is_reserved():
    import importlib
    import pkgutil

    from tinynet.callbacks import CALLBACK_LOG_KEYS, Callback
    for module in pkgutil.walk_packages(tn.__path__, "tinynet."):
        if not module.name.startswith(("tinynet.kernels", "tinynet.__main__")):
            importlib.import_module(module.name)
    stack, added = [Callback], set()
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("tinynet."):
            added.update(cls.added_log_keys)
    assert added == set(CALLBACK_LOG_KEYS) == {"lr", "l2sp_penalty"}
    assert set(CALLBACK_LOG_KEYS) < set(tn.Sequential.RESERVED_LOG_KEYS)


def test_a_file_saved_with_a_metric_named_lr_still_loads_with_a_warning(tmp_path):
    # compile refuses the name now; a file saved before it did keeps its metric
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    model._compile("adam", "cross_entropy", [metrics.Recall(name="lr")], ("loss",))
    model.save(tmp_path / "m.npz")
    with pytest.warns(UserWarning, match=r"saved metric\(s\) \['lr'\] are named like log keys"
                                         r".*'lr': the learning rate.*name='lr_2'"):
        again = tn.load(tmp_path / "m.npz")
    assert [m.name for m in again.metrics] == ["lr"]


def test_a_file_saved_with_a_metric_named_like_a_validation_key_loads_with_a_warning(tmp_path):
    # it loaded silently, and fit then logged the training value of one metric
    # and the validation value of the other under "val_accuracy"
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    model._compile("adam", "cross_entropy", ["accuracy", metrics.Recall(name="val_accuracy")],
                   ("loss",))
    model.save(tmp_path / "m.npz")
    with pytest.warns(UserWarning, match=r"saved metric\(s\) \['val_accuracy'\] are named "
                                         r"like the validation keys fit logs for the saved "
                                         r"metric\(s\) \['accuracy'\].*name='accuracy_val'"):
        again = tn.load(tmp_path / "m.npz")
    assert [m.name for m in again.metrics] == ["accuracy", "val_accuracy"]


def _auc_r2_batches(seed):
    """Batches of scores with ties, 0.0 and -0.0, of two classes and of three
    (an AUC of each) and regression targets (R²)."""
    rng = np.random.default_rng(seed)
    n = 130
    probs = rng.dirichlet(np.ones(3), n).round(1)  # many ties
    probs[::7, 0] = -0.0
    labels = np.r_[0, 1, 2, rng.integers(0, 3, n - 3)]
    pred, target = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    cuts = np.sort(rng.choice(np.arange(1, n), 9, replace=False))
    return [(metrics.AUC(), probs[:, :1], labels % 2), (metrics.AUC(), probs, labels),
            (metrics.R2Score(), pred, target)], np.split(np.arange(n), cuts)


@pytest.mark.parametrize("seed", range(3))
def test_states_merged_when_read_equal_those_merged_batch_by_batch(seed):
    # read after every batch (a state and one batch: merge), or once at the end
    # (every batch at once: merge_all), or as merge did it one by one: the same bits
    specs, batches = _auc_r2_batches(seed)
    for metric, p, t in specs:
        every, once = metrics.MetricStates([metric]), metrics.MetricStates([metric])
        states = []
        for idx in batches:
            every.add(p[idx], t[idx])
            once.add(p[idx], t[idx])
            states.append(metric.batch_state(p[idx], t[idx]))
            every.results(), every.results(running=True)
        one_by_one = metrics.Metric.merge_all(metric, states)  # merge, left to right
        for running in (False, True):
            value = (metric.running_result if running else metric.result)(one_by_one)
            assert once.results(running)[metric.name] == every.results(running)[
                metric.name] == value


def test_the_batches_of_a_metric_of_samples_wait_until_a_value_is_read(monkeypatch):
    merged = []
    monkeypatch.setattr(metrics.AUC, "merge_all",
                        lambda self, states: merged.append(len(states))
                        or metrics.Metric.merge_all(self, states))
    states = metrics.MetricStates([metrics.AUC(), metrics.Accuracy()])
    for first in range(0, 40, 10):
        states.add(np.arange(first, first + 10.0)[:, None], np.arange(10) % 2)
    assert merged == [] and states.samples == 40  # the accuracy's sums merged at add
    whole = (np.arange(40.0)[:, None], np.arange(40) % 2)
    assert states.results() == {"auc": metrics.auc(*whole),
                                "accuracy": metrics.accuracy(*whole)}
    assert merged == [4]
    states.results(), states.results(running=True)  # kept: no merge to do
    assert merged == [4]
    monkeypatch.undo()  # AUC's own merge_all of three states checks their shapes
    with pytest.raises(ValueError, match="received 3 and then 1 columns"):
        metrics.AUC().merge_all([metrics.AUC().batch_state(np.eye(3)[[0, 1, 2]], [0, 1, 2]),
                                 *[metrics.AUC().batch_state(np.array([0.1, 0.9]), [0, 1])] * 2])


def _counting(monkeypatch):
    """Calls of AUC.result and AUC.running_result."""
    calls = {"result": 0, "running_result": 0}
    for name in calls:
        method = getattr(metrics.AUC, name)

        def counted(self, state, _method=method, _name=name):
            calls[_name] += 1
            return _method(self, state)
        monkeypatch.setattr(metrics.AUC, name, counted)
    return calls


class _ReadsAccuracy(tn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_batch_end(self, batch, logs=None):
        self.seen.append((logs["accuracy"], logs["auc"]))


def _fit_counted(callbacks):
    """``(history, weights)`` of 2 epochs of 7 batches (100 samples in 16s)
    of a model with accuracy and an AUC of 3 classes."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 3)).astype(np.float32)
    y = rng.integers(0, 3, 100)
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    model.compile("adam", loss="cross_entropy", metrics=["accuracy", "auc"])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1, callbacks=callbacks)
    return history.history, model.get_weights()


def test_fit_computes_the_metrics_only_when_read_and_the_epochs_once(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 3)).astype(np.float32)
    y = rng.integers(0, 3, 100)
    fit = _fit_counted
    calls = _counting(monkeypatch)
    quiet = fit([])
    # nothing reads the batch logs: no running value, one exact value an epoch
    # (and one of fit's check of the targets on a dummy prediction)
    assert calls == {"result": 1 + 2, "running_result": 0}
    reader = _ReadsAccuracy()
    calls.update(result=0, running_result=0)
    read = fit([reader])
    assert calls == {"result": 1 + 2, "running_result": 2 * 6}  # 7 batches an epoch
    assert quiet[0] == read[0]
    assert all(np.array_equal(a, b) for a, b in zip(quiet[1], read[1]))
    # what a reader sees: the metrics of the epoch so far (frozen weights, in order)
    model = tn.Sequential([Dense(3, input_dim=3, seed=0)])
    model.compile(tn.optim.SGD(lr=0.0), loss="cross_entropy", metrics=["accuracy", "auc"])
    reader = _ReadsAccuracy()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False, callbacks=[reader])
    scores, by_hand, expected = model.predict(x), metrics.MetricStates(model.metrics), []
    for first in range(0, 100, 16):
        by_hand.add(scores[first:first + 16], y[first:first + 16])
        values = by_hand.results(running=first + 16 < 100)
        expected.append((values["accuracy"], values["auc"]))
    assert reader.seen == expected


def test_the_live_bar_has_the_metrics_computed_only_for_the_batches_it_draws(monkeypatch):
    # the live bar counted as a reader of every batch: a running AUC after
    # each of the 6 batches but the last, drawn or not
    import io

    from tinynet.progress import ProgressBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    class Clock:  # every reading 0.04 s later: the bar (10 a second) draws every 3rd batch
        now = 0.0

        def __call__(self):
            self.now += 0.04
            return self.now

    fit = _fit_counted
    calls = _counting(monkeypatch)
    quiet = fit([])
    stream = Tty()
    calls.update(result=0, running_result=0)
    shown = fit([ProgressBar(stream=stream, clock=Clock())])
    frames = [f for f in stream.getvalue().split("\r") if "ETA" in f]
    assert len(frames) == 2 * 2 and all(" - auc: " in f for f in frames)
    assert calls == {"result": 1 + 2, "running_result": len(frames)}
    assert quiet[0] == shown[0]
    assert all(np.array_equal(a, b) for a, b in zip(quiet[1], shown[1]))
    # a callback of the user's beside the bar still gets every batch's metrics
    reader = _ReadsAccuracy()
    calls.update(result=0, running_result=0)
    fit([ProgressBar(stream=Tty(), clock=Clock()), reader])
    assert calls == {"result": 1 + 2, "running_result": 2 * 6} and len(reader.seen) == 2 * 7


def _old_auc_columns(auc, pred, target):
    """The AUC state as batch_state made it before it was vectorised: each
    column's positives and negatives sorted apart, a column at a time."""
    pred = np.asarray(pred, dtype=np.float64)
    labels = metrics._class_targets(target, pred, "auc")
    if metrics._is_binary_output(pred):
        columns = [(pred.reshape(-1), labels == 1)]
    else:
        scores = metrics.softmax(pred) if auc.from_logits else pred
        columns = [(scores[:, c], labels == c) for c in range(pred.shape[1])]
    return (metrics._is_binary_output(pred),
            tuple(metrics._Ranks(np.sort(s[p]), np.sort(s[~p])) for s, p in columns))


def _auc_cases():
    rng = np.random.default_rng(5)
    ties = rng.integers(0, 4, (60, 3)) / 4.0  # many ties within and across columns
    yield "ties", ties, rng.integers(0, 3, 60), False
    yield "constant", np.full((40, 3), 0.25), rng.integers(0, 3, 40), False
    absent = rng.integers(0, 2, 50)  # class 2 never occurs
    yield "class absent", rng.random((50, 3)), absent, False
    logits = rng.standard_normal((70, 4)) * 3
    yield "logits", logits, rng.integers(0, 4, 70), True
    with_nan = rng.random((30, 3))
    with_nan[7, 1] = np.nan
    yield "nan", with_nan, rng.integers(0, 3, 30), False
    signed_zero = np.where(rng.random((40, 2)) < 0.5, 0.0, -0.0)
    yield "signed zero", signed_zero, rng.integers(0, 2, 40), False
    yield "binary ties", rng.integers(0, 3, 45) / 2.0, rng.integers(0, 2, 45), False
    yield "binary (n, 1)", rng.random((45, 1)), rng.integers(0, 2, 45), False
    yield "one-hot targets", rng.random((30, 3)), np.eye(3)[rng.integers(0, 3, 30)], False


def _same_ranks(a, b):
    return all(np.array_equal(x.positives, y.positives, equal_nan=True)
               and np.array_equal(x.negatives, y.negatives, equal_nan=True)
               for x, y in zip(a, b, strict=True))


def _auc_value(value, state):
    try:
        return value(state)
    except metrics.UndefinedMetricError as exc:
        return str(exc)


@pytest.mark.parametrize("case", list(_auc_cases()), ids=lambda c: c[0])
def test_the_vectorised_auc_state_equals_the_column_by_column_one(case):
    _, pred, target, from_logits = case
    auc = metrics.AUC(from_logits=from_logits)
    cuts = [0, 7, 8, 20, len(pred)]  # a batch of one among them
    parts = [(pred[a:b], target[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    new = [auc.batch_state(*part) for part in parts]
    old = [_old_auc_columns(auc, *part) for part in parts]
    for n, o in zip(new, old):
        assert n[0] == o[0] and _same_ranks(auc._ranks(n), o[1])
    # all at once (a quiet epoch), one by one (a reader after every batch), and
    # batches after a read (a ranked state first): the same values to the bit
    binary = old[0][0]
    old_all = (binary, tuple(metrics._Ranks.merge_all(list(c)) for c in zip(*[o[1] for o in old])))
    one_by_one = functools.reduce(auc.merge, new)
    old_one_by_one = functools.reduce(auc.merge, old)
    after_read = auc.merge_all([auc.merge(new[0], new[1]), *new[2:]])
    for state in (auc.merge_all(new), one_by_one, after_read):
        assert _same_ranks(auc._ranks(state), old_all[1])
        assert repr(_auc_value(auc.result, state)) == repr(_auc_value(auc.result, old_all))
    assert repr(_auc_value(auc.running_result, one_by_one)) == \
        repr(_auc_value(auc.running_result, old_one_by_one))
    assert repr(_auc_value(auc.result, new[0])) == repr(_auc_value(auc.result, old[0]))
    # (a direct call: one batch)
    assert repr(_auc_value(lambda _: auc(pred, target), None)) == \
        repr(_auc_value(auc.result, old_all))


def test_mtl_fit_computes_the_task_metrics_only_when_read(monkeypatch):
    # its epoch callback counted as a reader: every task's running AUC after every batch
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y_a, y_b = rng.integers(0, 3, 60), rng.integers(0, 2, 60)
    y_a[rng.random(60) < 0.3] = -1  # missing labels

    class Reads(tn.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_end(self, batch, logs=None):
            self.seen.append({k: v for k, v in logs.items() if k.endswith("auc")})

    def fit(callbacks, lr=0.01, shuffle=True):
        inp = tn.mtl.Input((4,))
        trunk = Dense(6, activation="relu", seed=0)(inp)
        model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(trunk), "b": Dense(1, seed=2)(trunk)})
        model.compile(tn.optim.SGD(lr=lr), loss={"a": "cross_entropy", "b": "bce"},
                      metrics={"a": ["auc", "accuracy"], "b": ["auc"]})
        history = model.fit(x, {"a": y_a, "b": y_b}, epochs=2, batch_size=16, seed=0,
                            verbose=0, callbacks=callbacks, shuffle=shuffle)
        return history.history, model

    calls = _counting(monkeypatch)
    quiet = fit([])
    # fit's checks of the targets (one a task), then one exact value a task an epoch
    assert calls == {"result": 2 + 2 * 2, "running_result": 0}
    calls.update(result=0, running_result=0)
    reader = Reads()
    read = fit([reader])
    # a running value a task after each batch but the last (4 an epoch), the exact one then
    assert calls == {"result": 2 + 2 * 2, "running_result": 2 * 2 * 3}
    assert quiet[0] == read[0]
    assert all(np.array_equal(a, b) for a, b in zip(quiet[1].get_weights(),
                                                    read[1].get_weights()))
    assert [sorted(s) for s in reader.seen] == [["a/auc", "b/auc"]] * 8
    # what it sees: the AUC of the task's labelled samples so far (frozen weights, in order)
    reader = Reads()
    _, model = fit([reader], lr=0.0, shuffle=False)
    out = model.predict(x)
    for k, seen in enumerate(reader.seen[:4]):
        end = min(16 * (k + 1), 60)
        keep = y_a[:end] >= 0
        states = metrics.MetricStates([model.metrics["a"][0]])
        states.add(out["a"][:end][keep], y_a[:end][keep])
        assert seen["a/auc"] == states.results(running=end < 60)["auc"]
