"""Metrics against small hand-written references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet import metrics
from tinynet.layers import Dense


def _slow_top_k(pred, labels, k):
    """Reference: rank every row with a stable sort (ties to the lower index);
    a row holding a NaN is never a hit."""
    hits = 0
    for row, label in zip(pred, labels):
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))
        hits += label in order[:k] and not np.isnan(row).any()
    return hits / len(labels)


def test_accuracy_from_logits_and_probabilities_agree():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 2])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert metrics.accuracy(logits, labels) == 0.5
    assert metrics.accuracy(probs, labels) == 0.5
    one_hot = np.eye(3)[labels]
    assert metrics.accuracy(logits, one_hot) == 0.5


def test_binary_accuracy_thresholds_a_logit_at_zero():
    logits = np.array([[-1.0], [0.5], [2.0], [-0.1]])
    labels = np.array([0, 1, 0, 1])
    assert metrics.accuracy(logits, labels) == 0.5
    assert metrics.accuracy(logits[:, 0], labels) == 0.5
    probs = np.array([0.2, 0.6, 0.7, 0.4])
    assert metrics.Accuracy(threshold=0.5)(probs, labels) == 0.5


def test_binary_accuracy_takes_boolean_targets_as_the_bce_loss_does():
    logits = np.array([[-1.0], [0.5], [2.0], [-0.1]])
    targets = np.array([False, True, False, True])
    assert metrics.accuracy(logits, targets) == 0.5
    assert metrics.accuracy(logits, targets[:, None]) == 0.5
    model = tn.Sequential([tn.layers.Dense(1, input_dim=2)])
    model.compile("sgd", loss="binary_cross_entropy", metrics=["accuracy"])
    x = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    assert set(model.evaluate(x, x[:, 0] > 0)) == {"loss", "accuracy"}


@given(st.integers(1, 12), st.integers(2, 6), st.integers(1, 6), st.integers(0, 10_000))
def test_top_k_matches_slow_reference(n, classes, k, seed):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 3, size=(n, classes)).astype(np.float64)  # many ties
    pred[rng.random(pred.shape) < 0.15] = np.nan  # a diverging model
    labels = rng.integers(0, classes, size=n)
    k = min(k, classes)  # a larger k is refused
    assert metrics.top_k_accuracy(pred, labels, k=k) == pytest.approx(
        _slow_top_k(pred, labels, k))


def test_a_sample_whose_scores_hold_a_nan_is_never_a_hit():
    # all-NaN predictions (a diverged model) used to count every sample as a hit,
    # then (NaN ranked above every number, as np.argmax reads it) every sample
    # whose label was among the first k classes: accuracy 0.5, top-2 0.75 here,
    # though the docstring promised a diverged model no hits
    labels = np.array([0, 0, 1, 2])
    nan = np.full((4, 3), np.nan)
    for k in (1, 2, 3):
        assert metrics.top_k_accuracy(nan, labels, k=k) == 0.0
    assert metrics.accuracy(nan, labels) == 0.0
    assert metrics.accuracy(nan, np.eye(3)[labels]) == 0.0
    pred = np.array([[np.nan, 2.0, 1.0], [0.5, np.nan, 0.1], [0.5, 0.2, 0.1]])
    for k in (1, 2, 3):
        assert metrics.top_k_accuracy(pred, np.array([1, 0, 0]), k=k) == pytest.approx(1 / 3)
    assert metrics.accuracy(pred, np.array([1, 0, 0])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("threshold, pred", [(None, [np.nan, np.nan, 1.0, -1.0]),
                                             (0.5, [np.nan, np.nan, 0.7, 0.2])])
def test_a_nan_binary_prediction_is_never_correct(threshold, pred):
    # NaN > threshold is False: a NaN prediction was class 0, right for label 0
    metric = metrics.Accuracy(threshold=threshold)
    pred, labels = np.array(pred), np.array([0, 1, 1, 0])
    assert metric(pred, labels) == metric(pred[:, None], labels) == 0.5
    assert metric(pred, labels.astype(bool)) == 0.5


def test_a_nan_prediction_is_no_class_in_the_confusion_metrics():
    # precision, recall and F1 read an all-NaN row as class 0 (its arg-max): here
    # micro P/R/F1 were 1.0 while the accuracy was 0.75
    pred = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 4.0], [np.nan] * 3])
    labels = np.array([0, 1, 2, 0])
    assert metrics.accuracy(pred, labels) == 0.75
    micro = {m: getattr(metrics, m)(pred, labels, average="micro")
             for m in ("precision", "recall", "f1")}
    # recall: hits / samples (the accuracy); precision: hits / predictions made
    assert micro == {"precision": 1.0, "recall": 0.75, "f1": 2 * 3 / (4 + 3)}
    # the NaN sample is a false negative of class 0 and a false positive of none
    assert metrics.recall(pred, labels, average=None) == np.mean([0.5, 1.0, 1.0])
    assert metrics.precision(pred, labels) == 1.0
    state = metrics.Recall().batch_state(pred, labels)
    assert state.tolist() == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]]
    # a class whose every sample is NaN stays in the averages: never predicted
    nan = np.full((3, 3), np.nan)
    assert metrics.recall(nan, [0, 1, 2]) == metrics.f1(nan, [0, 1, 2]) == 0.0
    assert np.isnan(metrics.precision(nan, [0, 1, 2], zero_division="nan"))


@pytest.mark.parametrize("threshold, pred", [(None, [np.nan, 1.0, -1.0, np.nan]),
                                             (0.5, [np.nan, 0.7, 0.2, np.nan])])
def test_a_nan_binary_prediction_is_no_class_in_the_confusion_metrics(threshold, pred):
    # NaN > threshold is False: a NaN was a prediction of class 0 (a true negative)
    pred, labels = np.array(pred), np.array([0, 1, 0, 1])
    assert metrics.recall(pred, labels, threshold=threshold) == 0.5
    assert metrics.precision(pred, labels, threshold=threshold) == 1.0
    assert metrics.recall(pred[:, None], labels, threshold=threshold, pos_label=0) == 0.5
    assert metrics.precision(pred, labels, threshold=threshold, pos_label=0) == 1.0
    assert metrics.f1(pred, labels, threshold=threshold, average="micro") == 2 * 2 / (4 + 2)


def test_the_confusion_metrics_of_batches_with_and_without_nan_merge():
    rng = np.random.default_rng(0)
    pred, labels = rng.standard_normal((40, 4)), rng.integers(0, 4, 40)
    pred[rng.random(40) < 0.2, 1] = np.nan
    for metric in (metrics.Precision(average="micro"), metrics.Recall(), metrics.F1Score()):
        states = [metric.batch_state(pred[i:i + 7], labels[i:i + 7]) for i in range(0, 40, 7)]
        assert metric.result(metric.merge_all(states)) == metric(pred, labels)


def test_infinite_scores_are_ranked_as_any_other():
    # -inf masks a class out (a NaN is no score; an infinite one is)
    pred = np.array([[-np.inf, 2.0, 1.0], [np.inf, 0.0, 5.0], [-np.inf, -np.inf, -np.inf]])
    labels = np.array([1, 0, 0])
    assert metrics.accuracy(pred, labels) == metrics.top_k_accuracy(pred, labels, k=1) == 1.0
    assert metrics.top_k_accuracy(pred, np.array([2, 2, 1]), k=2) == 1.0
    assert metrics.accuracy(np.array([np.inf, -np.inf]), np.array([1, 0])) == 1.0
    assert metrics._class_hits(pred, labels, finite_only=True).tolist() == [False] * 3


@given(st.integers(0, 10_000), st.sampled_from([1, 2, 3]), st.booleans())
def test_class_hits_over_leading_axes_matches_a_reference(seed, k, finite_only):
    # the arg-max path finds a NaN row by its arg-max (np.argmax takes the first
    # NaN): checked against a pass over every score, on strided arrays too
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(3, 7, 8)).astype(np.float32)[:, :, ::2]
    scores[rng.random(scores.shape) < 0.1] = np.nan
    scores[rng.random(scores.shape) < 0.1] = rng.choice([np.inf, -np.inf])
    labels = rng.integers(0, 4, size=(3, 7))
    bad = (~np.isfinite(scores) if finite_only else np.isnan(scores)).any(axis=-1)
    expected = np.array([[_slow_top_k(np.nan_to_num(row[None], nan=0.0), [label], k) == 1
                          for row, label in zip(rows, task)]
                         for rows, task in zip(scores, labels)]) & ~bad
    got = metrics._class_hits(scores, labels, k, finite_only)
    assert got.shape == (3, 7) and np.array_equal(got, expected)


def test_top_k_with_nan_matches_torch_topk_on_the_rows_without():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    pred = rng.standard_normal((40, 6))  # no ties: torch.topk's order among equals is unset
    pred[rng.random(pred.shape) < 0.1] = np.nan
    labels = rng.integers(0, 6, 40)
    finite = ~np.isnan(pred).any(axis=1)
    assert 5 < finite.sum() < 35
    for k in (1, 2, 4):
        top = torch.tensor(pred).topk(k, dim=1).indices.numpy()
        expected = np.mean([label in row for label, row in zip(labels, top)] & finite)
        assert metrics.top_k_accuracy(pred, labels, k=k) == expected


def test_top_1_equals_accuracy_without_ties():
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((50, 7))
    labels = rng.integers(0, 7, 50)
    assert metrics.top_k_accuracy(pred, labels, k=1) == metrics.accuracy(pred, labels)


def test_mse_mae():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[1.0, 0.0], [0.0, 4.0]])
    assert metrics.mse(pred, target) == pytest.approx((4 + 9) / 4)
    assert metrics.mae(pred, target) == pytest.approx((2 + 3) / 4)
    # (n,) targets for an (n, 1) output are accepted
    assert metrics.mse(np.array([[1.0], [2.0]]), np.array([0.0, 0.0])) == 2.5


@pytest.mark.parametrize("target_dtype", [np.float32, np.int64])
def test_mse_and_mae_of_float32_predictions_are_accumulated_in_float64(target_dtype):
    """As R2Score and scikit-learn: in float32 a difference of 2e19 squared to
    inf (and 3e38 - (-3e38) was inf already); the means are finite."""
    pred = np.array([[2e19], [3e38], [1.0]], np.float32)
    target = np.array([[0], [-3e38 if target_dtype == np.float32 else 0], [0]], target_dtype)
    diff = pred.astype(np.float64) - target.astype(np.float32).astype(np.float64)
    assert metrics.mse(pred[:1], target[:1]) == float(diff[0, 0]) ** 2
    assert metrics.mae(pred, target) == np.mean(np.abs(diff))
    state = metrics.MeanSquaredError().batch_state(pred[::2], target[::2])
    assert np.isfinite(state).all()


def test_regression_metrics_take_targets_as_the_losses_do():
    pred = np.array([[1.0], [2.0], [4.0]])
    for target in (np.array([1, 2, 3]), np.array([[1], [2], [3]]), np.array([1.0, 2.0, 3.0])):
        # integer targets were refused with a TypeError (after fit's first step),
        # though the MSE loss takes them
        assert metrics.mse(pred, target) == pytest.approx(1 / 3)
        assert metrics.mae(pred, target) == tn.losses.MAE()(pred, target)
    # any reshape that kept the batch and the size was made: (n, 3, 2) targets
    # for (n, 2, 3) predictions compared the wrong elements without a word
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 3, 2))
    for metric in (metrics.mse, metrics.mae):
        with pytest.raises(ValueError, match=r"targets of the predictions' shape \(4, 2, 3\), "
                                             r"received \(4, 3, 2\)"):
            metric(pred, target)
        with pytest.raises(ValueError, match="predictions' shape"):
            metric(pred, target.reshape(4, 6))


def test_get_names_instances_functions_and_configs():
    assert isinstance(metrics.get("accuracy"), metrics.Accuracy)
    assert isinstance(metrics.get("acc"), metrics.Accuracy)
    assert metrics.get("top_3_accuracy").k == 3
    assert metrics.get("top3_accuracy").name == "top_3_accuracy"
    assert metrics.get("top_k_accuracy").k == 5

    def my_metric(pred, target):
        return 1.0

    assert metrics.get(my_metric).name == "my_metric"
    for metric in (metrics.Accuracy(), metrics.Accuracy(0.5), metrics.Accuracy(0.0),
                   metrics.TopKAccuracy(2),
                   metrics.MeanAbsoluteError()):
        again = metrics.get(metrics.to_config(metric))
        assert type(again) is type(metric) and again.get_config() == metric.get_config()
    with pytest.warns(UserWarning, match="saved by its name only"):   # (it refused: see
        saved = metrics.to_config(metrics.get(my_metric))              # test_output_pairing)
    assert saved == {"function": "my_metric"}


@pytest.mark.parametrize("spec, k, name", [
    ("top_5_accuracy", 5, "top_5_accuracy"), ("top5_accuracy", 5, "top_5_accuracy"),
    ("Top-5-Accuracy", 5, "top_5_accuracy"), ("top_3_accuracy", 3, "top_3_accuracy"),
    ("top_k_accuracy", 5, "top_k_accuracy"), ("top_k", 5, "top_k_accuracy")])
def test_a_top_k_accuracy_asked_for_by_name_logs_under_that_name(spec, k, name):
    # "top_5_accuracy" gave TopKAccuracy(5), named "top_k_accuracy" (Keras' default
    # name), while "top_3_accuracy" kept its name: a monitor of
    # "val_top_5_accuracy" was refused
    metric = metrics.get(spec)
    assert type(metric) is metrics.TopKAccuracy and (metric.k, metric.name) == (k, name)
    assert metrics.to_config(metric) == name  # saved by its name, and read back as it
    again = metrics.get(metrics.to_config(metric))
    assert (again.k, again.name, again.get_config()) == (k, name, metric.get_config())


def test_top_k_accuracy_keeps_a_name_given_and_keras_default_name():
    assert metrics.TopKAccuracy().name == metrics.TopKAccuracy(5).name == "top_k_accuracy"
    assert metrics.TopKAccuracy(2).name == "top_2_accuracy"
    for k in (2, 5):
        mine = metrics.TopKAccuracy(k, name="mine")
        assert mine.name == "mine" and mine.get_config() == {"k": k, "name": "mine"}
        again = metrics.get(metrics.to_config(mine))
        assert (again.k, again.name) == (k, "mine")


def test_for_output_thresholds_an_unset_accuracy_at_one_half_after_a_sigmoid():
    sigmoid_head = Dense(1, activation="sigmoid")
    fitted = metrics.for_output(metrics.get("accuracy"), sigmoid_head)
    assert type(fitted) is metrics.Accuracy and fitted.threshold == 0.5
    probs, labels = np.array([[0.2], [0.6], [0.7], [0.4]]), np.array([0, 1, 0, 1])
    assert fitted(probs, labels) == 0.5
    for head in (Dense(1), Dense(3, activation="softmax"),
                 Dense(1, activation="tanh")):
        assert metrics.for_output(metrics.get("accuracy"), head).threshold is None
    for kept in (metrics.Accuracy(threshold=0.0), metrics.TopKAccuracy(1),
                 metrics.MeanSquaredError()):
        assert metrics.for_output(kept, sigmoid_head) is kept


def test_unknown_metric_suggests():
    with pytest.raises(ValueError, match="unknown metric 'acuracy'; did you mean 'accuracy'"):
        metrics.get("acuracy")
    with pytest.raises(TypeError):
        metrics.get(3)


def test_bad_inputs():
    pred = np.zeros((3, 4))
    with pytest.raises(ValueError, match="labels in \\[0, 3\\]"):
        metrics.accuracy(pred, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="3 labels"):
        metrics.accuracy(pred, np.array([0, 1]))
    with pytest.raises(TypeError, match="floating-point"):
        metrics.accuracy(np.zeros((3, 4), dtype=int), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        metrics.mse(pred, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="finite"):
        metrics.mae(pred, np.full((3, 4), np.nan))
    with pytest.raises(ValueError):
        metrics.TopKAccuracy(0)
    # a NaN threshold made every binary prediction class 0
    for threshold, error in ((np.nan, ValueError), (np.inf, ValueError), ("0.5", TypeError),
                             (True, TypeError)):
        with pytest.raises(error, match="Accuracy expected threshold"):
            metrics.Accuracy(threshold=threshold)
    # ragged lists: NumPy's own ValueError, naming no metric, before
    for metric in (metrics.accuracy, metrics.top_k_accuracy, metrics.mse):
        with pytest.raises(TypeError, match="expected targets as a numeric array"):
            metric(pred, [[0, 1], [1], [0, 0]])
