"""compile/fit/evaluate/predict: gradients of the real multi-task objective, masks,
per-task backward passes, softmax outputs, logs and errors."""

import io

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers import Dense
from tinynet.mtl import weighting as wt
from tinynet.mtl.training import task_masks
from tests.mtl.helpers import grad_error
from tests.fd import numerical_grad4


def trunk_model(seed, softmax=False, dtype="float64", n_in=5):
    inp = tn.mtl.Input((n_in,), dtype=dtype)
    h = Dense(4, activation="tanh", seed=seed)(inp)
    cls = Dense(3, activation="softmax" if softmax else None, seed=seed + 1)(h)
    reg = Dense(2, seed=seed + 2)(Dense(3, activation="tanh", seed=seed + 3)(h))
    return tn.mtl.Model(inp, {"cls": cls, "reg": reg})


def data(rng, n, n_in=5):
    x = rng.standard_normal((n, n_in))
    y = {"cls": rng.integers(0, 3, n), "reg": rng.standard_normal((n, 2))}
    return x, y


class TaskGradEqual(wt.Equal):
    """Equal weights through the per-task backward path (for testing it)."""

    needs_task_gradients = True


@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), w0=st.floats(0.1, 3.0),
       missing=st.booleans())
@example(seed=9021, n=1, w0=0.1, missing=False)  # second-order differences failed it
def test_weighted_masked_objective_gradient_matches_finite_differences(seed, n, w0, missing):
    rng = np.random.default_rng(seed)
    model = trunk_model(seed)
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"},
                  weighting={"cls": w0, "reg": 1.0})
    x, y = data(rng, n)
    if missing:
        keep_first = np.arange(n) > 0  # a task needs one labelled sample
        y["cls"][(rng.random(n) < 0.5) & keep_first] = -1
        y["reg"][(rng.random(n) < 0.5) & keep_first, 0] = np.nan
    masks = task_masks(y, None, n, model.loss)

    def objective():
        values, _, _ = model._task_losses(model.forward_all(x), y, masks)
        return float(values @ np.array([w0, 1.0]))

    model.zero_grad()
    values, grads, _ = model._task_losses(model.forward_all(x), y, masks)
    model.backward_all([g * w for g, w in zip(grads, [w0, 1.0])])
    for p in model.parameters():
        analytic = p.grad.copy()
        # fourth-order differences: the second-order ones' truncation (eps^2 f'''/6)
        # reached 2e-10 on a 1e-4 entry of the tanh trunk (seed 9021, n 1, w0 0.1:
        # 1.7e-6 against 1e-6); the fourth-order error there is 1e-8
        assert grad_error(analytic, numerical_grad4(objective, p.value)) < 1e-6, p.name


@given(seed=st.integers(0, 10_000))
def test_per_task_backward_passes_sum_to_the_joint_backward(seed):
    rng = np.random.default_rng(seed)
    x, y = data(rng, 7)
    grads = {}
    for method in (wt.Equal(), TaskGradEqual()):
        model = trunk_model(seed)
        model.compile(tn.optim.SGD(lr=0.0), loss={"cls": "cross_entropy", "reg": "mse"},
                      weighting=method)
        model.train_step([x], y, task_masks(y, None, 7), np.arange(7))
        grads[method.needs_task_gradients] = [p.grad.copy() for p in model.parameters()]
    for a, b in zip(grads[False], grads[True]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_softmax_output_trains_like_logits_with_cross_entropy():
    rng = np.random.default_rng(3)
    x, y = data(rng, 9)
    results = []
    for softmax in (False, True):
        model = trunk_model(11, softmax=softmax)
        model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"})
        model.zero_grad()
        values, grads, _ = model._task_losses(model.forward_all(x), y, task_masks(y, None, 9))
        model.backward_all(grads)
        results.append((values, [p.grad.copy() for p in model.parameters()]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_sigmoid_output_accuracy_thresholds_probabilities_at_one_half():
    inp = tn.mtl.Input((2,), dtype="float64")
    head = Dense(1, activation="sigmoid", seed=0)
    model = tn.mtl.Model(inp, {"o": head(inp)})
    model.compile("sgd", loss="binary_cross_entropy", metrics=["accuracy"])
    head.W.value[:] = [[2.0], [0.0]]
    head.b.value[:] = 0.0
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, 0.0], [-2.0, 0.0]])
    y = np.array([1.0, 0.0, 0.0, 0.0])
    probs = model.predict(x)["o"][:, 0]  # 0.88, 0.12, 0.73, 0.02
    scores = model.evaluate(x, {"o": y})
    assert scores["o/accuracy"] == 0.75  # thresholded at 0 it would be 0.25, all ones
    assert scores["o/loss"] == pytest.approx(
        -np.mean(y * np.log(probs) + (1 - y) * np.log(1 - probs)), rel=1e-12)


def test_masked_labels_do_not_matter():
    rng = np.random.default_rng(0)
    x, y = data(rng, 10)
    y["cls"][:4] = -1
    y2 = {"cls": y["cls"].copy(), "reg": y["reg"].copy()}
    y2["reg"][5:] = 100.0
    grads = []
    for targets, mask in ((y, {"reg": np.arange(10) < 5}), (y2, {"reg": np.arange(10) < 5})):
        model = trunk_model(1)
        model.compile(tn.optim.SGD(lr=0.0), loss={"cls": "cross_entropy", "reg": "mse"})
        model.train_step([x], targets, task_masks(targets, mask, 10, model.loss),
                         np.arange(10))
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_task_masks_detect_nan_and_negative_labels():
    y = {"a": np.array([0, -1, 2]), "b": np.array([[1.0, np.nan], [0, 0], [1, 1]]),
         "c": np.array([1.0, 2.0, 3.0]), "d": np.array([[1], [-1], [0]])}
    losses = {"a": tn.losses.CrossEntropy(), "b": tn.losses.MSE(), "c": tn.losses.MSE(),
              "d": tn.losses.BinaryCrossEntropy()}
    masks = task_masks(y, {"c": np.array([1, 1, 0])}, 3, losses)
    np.testing.assert_array_equal(masks["a"], [True, False, True])
    np.testing.assert_array_equal(masks["b"], [False, True, True])
    np.testing.assert_array_equal(masks["c"], [True, True, False])
    np.testing.assert_array_equal(masks["d"], [True, False, True])
    assert task_masks({"a": np.array([0, 1])}, None, 2, losses)["a"] is None
    with pytest.raises(ValueError, match="unknown tasks"):
        task_masks(y, {"z": np.ones(3)}, 3)
    with pytest.raises(ValueError, match="shape"):
        task_masks(y, {"a": np.ones(2)}, 3)


@pytest.mark.parametrize("bad, error, message", [
    (np.full(6, 0.5), ValueError, "values True/False or 0/1, received 6 other value"),
    (np.array([1, 1, 2, 0, 1, 1]), ValueError, "received 1 other value\\(s\\) such as 2"),
    (np.array([1, 1, np.nan, 0, 1, 1]), ValueError, "such as nan"),
    (np.array(["yes", "no"] * 3), TypeError, "as booleans \\(or 0/1\\), received dtype <U3"),
])
def test_a_mask_that_is_not_booleans_or_0_1_is_refused(bad, error, message):
    # astype(bool) read each of these as "all labelled": evaluate reported the
    # loss over every sample and fit trained on the samples meant to be left out.
    model, x, y = compiled_model()
    before = model.get_weights()
    with pytest.raises(error, match="evaluate expected mask\\['cls'\\] .*" + message):
        model.evaluate(x, y, mask={"cls": bad})
    with pytest.raises(error, match="fit expected mask\\['cls'\\] .*" + message):
        model.fit(x, y, mask={"cls": bad}, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # 0/1 numbers and booleans mean the same.
    keep = np.array([1, 0, 1, 1, 0, 1])
    assert model.evaluate(x, y, mask={"cls": keep}) == \
        model.evaluate(x, y, mask={"cls": keep.astype(bool)})
    with pytest.raises(TypeError, match="evaluate expected mask as a dict \\{task: bool "
                                        "array\\}.*received ndarray"):
        model.evaluate(x, y, mask=keep.astype(bool))


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_negative_integer_regression_targets_are_values_not_missing(loss):
    x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    model = tn.mtl.HardSharing((4,), trunk=[Dense(8, seed=0)],
                               heads={"cls": [Dense(3, seed=1)], "reg": [Dense(1, seed=2)]})
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": loss})
    y_int = np.array([-3, 2] * 10)
    assert task_masks({"reg": y_int}, None, 20, model.loss)["reg"] is None
    got = model.evaluate(x, {"cls": np.arange(20) % 3, "reg": y_int})["reg/loss"]
    want = model.evaluate(x, {"cls": np.arange(20) % 3, "reg": y_int.astype(np.float32)})
    assert got == pytest.approx(want["reg/loss"], rel=1e-6)
    # NaN stays the missing marker of a regression target.
    y_nan = y_int.astype(np.float32)
    y_nan[y_int < 0] = np.nan
    out = model.predict(x)["reg"][:, 0]
    kept = model.evaluate(x, {"cls": np.arange(20) % 3, "reg": y_nan})["reg/loss"]
    if loss == "mse":
        assert kept == pytest.approx(float(np.mean((out[y_int >= 0] - 2.0) ** 2)), rel=1e-5)


@pytest.mark.parametrize("absent", ["cls", "reg", "mask"])
def test_a_task_without_any_labelled_sample_is_an_error(absent):
    rng = np.random.default_rng(0)
    x, y = data(rng, 6)
    mask = None
    if absent == "cls":
        y["cls"][:] = -1
    elif absent == "reg":
        y["reg"][:, 1] = np.nan
    else:
        mask = {"reg": np.zeros(6, bool)}
    task = "cls" if absent == "cls" else "reg"
    why = {"cls": "6 with a negative class label", "reg": "6 with a NaN target",
           "mask": "6 with mask False"}[absent]
    model = trunk_model(0)
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"})
    before = model.get_weights()
    message = f"labelled sample for task '{task}'.*all 6 samples are missing \\({why}\\)"
    with pytest.raises(ValueError, match="fit expected at least one " + message):
        model.fit(x, y, mask=mask, verbose=0)
    with pytest.raises(ValueError, match="evaluate expected at least one " + message):
        model.evaluate(x, y, mask=mask)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Absent from some batches only: fine.
    x, y = data(rng, 8)
    y["reg"][4:] = np.nan
    history = model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    assert np.isfinite(history.history["reg/loss"]).all()


@pytest.mark.parametrize("weighting", ["equal", "uncertainty", "dwa", "gradnorm", "pcgrad",
                                       "mgda", "mgda_ub", {"cls": 2.0, "reg": 0.5}])
def test_fit_logs_every_task_and_learns(weighting):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)).astype(np.float32)
    y = {"cls": (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0),
         "reg": np.stack([x[:, 2], x[:, 3] - x[:, 4]], axis=1).astype(np.float32)}
    y["reg"][::4] = np.nan
    model = trunk_model(0, dtype="float32")
    model.compile(tn.optim.Adam(lr=0.02), loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"], "reg": ["mae"]}, weighting=weighting)
    before = model.evaluate(x, y)
    out = io.StringIO()
    history = model.fit(x, y, epochs=6, batch_size=32, seed=0, validation_data=(x, y),
                        verbose=2, stream=out)
    after = model.evaluate(x, y)
    assert model.history is history
    for key in ("loss", "cls/loss", "reg/loss", "cls/accuracy", "reg/mae", "val_cls/accuracy",
                "val_reg/mae"):
        assert len(history.history[key]) == 6, key
    assert "cls/accuracy" in out.getvalue()
    assert after["loss"] < before["loss"]
    assert np.isfinite(after["reg/loss"])
    if weighting in ("uncertainty", "gradnorm", "dwa", "mgda", "mgda_ub", "pcgrad"):
        assert "cls/weight" in history.history
    preds = model.predict(x[:7])
    assert set(preds) == {"cls", "reg"} and preds["reg"].shape == (7, 2)


@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm", "pcgrad", "mgda", "mgda_ub"])
def test_a_task_absent_from_the_batch_is_left_out_of_the_weighting(weighting):
    # No "reg" label in the batch: the update must be the one "cls" alone asks for
    # (all these start from weights 1), not zero (MGDA's alpha on the zero gradient).
    rng = np.random.default_rng(4)
    x, y = data(rng, 8)
    y["reg"][:] = np.nan
    grads = {}
    for method in ("equal", weighting):
        model = trunk_model(5)
        model.compile(tn.optim.SGD(lr=0.0), loss={"cls": "cross_entropy", "reg": "mse"},
                      weighting=method)
        # task_masks would refuse "reg" (no label at all): a batch of a larger set.
        model.train_step([x], y, {"cls": None, "reg": np.zeros(8, bool)}, np.arange(8))
        grads[method] = [p.grad.copy() for p in model.parameters()]
    assert np.abs(grads["equal"][0]).max() > 0
    for a, b in zip(grads["equal"], grads[weighting]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
    w = model.weighting
    if weighting in ("mgda", "mgda_ub"):
        np.testing.assert_array_equal(w.last_weights, [1.0, 0.0])
    if weighting == "uncertainty":
        assert w.log_vars.grad[1] == 0 and w.log_vars.grad[0] != 0
    if weighting == "gradnorm":
        assert w.weights.grad[1] == 0 and np.isnan(w.initial_losses[1])


def test_mgda_trains_the_trunk_when_a_task_is_absent_from_most_batches():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y_b = rng.standard_normal(20).astype(np.float32)
    y_b[5:] = np.nan  # 3 of the 4 unshuffled batches have no "b" label
    model = tn.mtl.HardSharing((4,), trunk=[Dense(8, name="trunk", seed=0)],
                               heads={"a": [Dense(3, seed=1)], "b": [Dense(1, seed=2)]})
    model.compile(tn.optim.SGD(lr=0.1), loss={"a": "cross_entropy", "b": "mse"},
                  weighting="mgda")
    trunk = model.get_layer("trunk").parameters()[0]
    start = trunk.value.copy()
    history = model.fit(x, {"a": np.arange(20) % 3, "b": y_b}, batch_size=5, shuffle=False,
                        verbose=0)
    assert np.abs(trunk.value - start).max() > 1e-3
    # "a/weight" is a mean over the batches with a label of "a": 1 in the three alone.
    assert history.history["a/weight"][0] > 0.75


def _frozen_with_missing_labels(weighting):
    """A model that does not learn (lr=0) and 12 samples: only the first of three
    unshuffled batches of 4 has "reg" labels, and the first sample no "cls" label."""
    rng = np.random.default_rng(6)
    x, y = data(rng, 12)
    y["reg"][4:] = np.nan
    y["cls"][0] = -1
    model = trunk_model(7)
    model.compile(tn.optim.SGD(lr=0.0), loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"]}, weighting=weighting)
    return model, x, y


@pytest.mark.parametrize("weighting", ["equal", "dwa", "mgda"])
def test_epoch_means_of_a_task_count_only_its_labelled_samples(weighting):
    model, x, y = _frozen_with_missing_labels(weighting)
    exact = model.evaluate(x, y)
    history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    for key in ("loss", "cls/loss", "reg/loss", "cls/accuracy"):
        assert history.history[key][0] == pytest.approx(exact[key], rel=1e-12), key
    if weighting == "dwa":
        np.testing.assert_allclose(model.weighting.history[0],
                                   [exact["cls/loss"], exact["reg/loss"]], rtol=1e-12)


def test_sample_weights_of_a_task_weight_its_loss_as_repeated_samples():
    # Keras' multi-output sample_weight: one full-batch SGD step with integer
    # weights is the step on the samples repeated that many times; the weights
    # of "cls" leave "reg" alone
    rng = np.random.default_rng(3)
    x, y = data(rng, 6)
    counts = np.array([1, 3, 0, 2, 1, 1])

    def one_step(x, y, **kw):
        model = trunk_model(7)
        model.compile(tn.optim.SGD(lr=0.1), loss={"cls": "cross_entropy", "reg": "mse"})
        model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0, **kw)
        return [p.value.copy() for p in model.parameters()]

    weighted = one_step(x, y, sample_weight={"cls": counts})
    rows = np.repeat(np.arange(6), counts)
    cls_model = trunk_model(7)
    cls_model.compile(tn.optim.SGD(lr=0.1), loss={"cls": "cross_entropy", "reg": "mse"},
                      weighting={"cls": 1.0, "reg": 0.0})
    cls_model.fit(x[rows], {"cls": y["cls"][rows], "reg": y["reg"][rows]}, epochs=1,
                  batch_size=len(rows), shuffle=False, verbose=0)
    reg_model = trunk_model(7)
    reg_model.compile(tn.optim.SGD(lr=0.1), loss={"cls": "cross_entropy", "reg": "mse"},
                      weighting={"cls": 0.0, "reg": 1.0})
    reg_model.fit(x, y, epochs=1, batch_size=6, shuffle=False, verbose=0)
    # the step is the sum of the two tasks' steps (SGD is linear in the gradient)
    start = [p.value.copy() for p in trunk_model(7).parameters()]
    assert len(start) == len(weighted) == 8
    for w, c, r, b in zip(weighted, cls_model.parameters(), reg_model.parameters(), start):
        np.testing.assert_allclose(w - b, (c.value - b) + (r.value - b), rtol=1e-10,
                                   atol=1e-13)
    assert not np.allclose(weighted[0], one_step(x, y)[0])  # the weights did something


def test_evaluate_weights_each_task_loss_exactly_and_not_its_metrics():
    rng = np.random.default_rng(4)
    x, y = data(rng, 9)
    y["cls"][[1, 5]] = -1  # missing labels take no weight whatever it says
    model = trunk_model(2)
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"]})
    w = rng.random(9) + 0.1
    scores = model.evaluate(x, y, sample_weight=w, batch_size=4)
    out = model.predict(x)
    keep = y["cls"] >= 0
    per = -tn.losses.log_softmax(out["cls"])[np.arange(9), np.where(keep, y["cls"], 0)]
    assert scores["cls/loss"] == pytest.approx((w * per)[keep].sum() / w[keep].sum(),
                                               rel=1e-12)
    sq = ((out["reg"] - y["reg"]) ** 2).mean(axis=1)
    assert scores["reg/loss"] == pytest.approx((w * sq).sum() / w.sum(), rel=1e-12)
    plain = model.evaluate(x, y)
    assert scores["cls/accuracy"] == plain["cls/accuracy"]
    # one array for every task, a dict per task, tasks left out weigh 1
    assert model.evaluate(x, y, sample_weight={"cls": w})["reg/loss"] == plain["reg/loss"]
    assert model.evaluate(x, y, sample_weight={"cls": w, "reg": w}) == scores


def test_epoch_loss_means_are_exact_with_sample_weights():
    # lr=0: the epoch's logged task losses are evaluate's weighted means, the
    # batches weighted by their total weight, not their labelled counts
    model, x, y = _frozen_with_missing_labels("equal")
    w = np.random.default_rng(5).random(len(x)) * 3
    exact = model.evaluate(x, y, sample_weight=w)
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                        sample_weight=w, validation_data=(x, y, None, w))
    for key in ("loss", "cls/loss", "reg/loss", "cls/accuracy"):
        assert history.history[key][0] == pytest.approx(exact[key], rel=1e-12), key
        assert history.history[f"val_{key}"][0] == pytest.approx(exact[key], rel=1e-12), key


def test_task_weights_whose_sum_overflows_are_scaled_not_nan():
    # np.full(n, 1e308) summed to inf and every weighted loss was NaN
    model, x, y = _frozen_with_missing_labels("equal")
    twin, *_ = _frozen_with_missing_labels("equal")
    big, ones = np.full(len(x), 1e308), np.ones(len(x))
    kwargs = dict(epochs=1, batch_size=4, shuffle=False, verbose=0)
    history = model.fit(x, y, sample_weight={"cls": big, "reg": big}, **kwargs)
    expected = twin.fit(x, y, sample_weight=ones, **kwargs)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history == expected.history
    assert model.evaluate(x, y, sample_weight=big) == model.evaluate(x, y, sample_weight=ones)


def test_bad_sample_weights_are_refused_before_training():
    rng = np.random.default_rng(6)
    x, y = data(rng, 5)
    model = trunk_model(1)
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"})
    for bad, error, message in (
            ({"clss": np.ones(5)}, ValueError, r"sample weights for unknown tasks \['clss'\]"),
            (np.ones(4), ValueError, r"sample_weight of shape \(5,\)"),
            ({"reg": -np.ones(5)}, ValueError, r"sample_weight\['reg'\]"),
            ({"reg": np.zeros(5)}, ValueError, r"positive sample_weight\['reg'\] for at least "
                                               r"one labelled sample of task 'reg'"),
            (["a"] * 5, TypeError, "sample_weight as a numeric array")):
        with pytest.raises(error, match=message):
            model.fit(x, y, verbose=0, sample_weight=bad)
    y["cls"][:3] = -1  # labelled: samples 3 and 4, both weighing 0
    with pytest.raises(ValueError, match="received 0 for all 2 of them"):
        model.evaluate(x, y, sample_weight={"cls": [1, 1, 1, 0, 0]})
    with pytest.raises(ValueError, match="sample_weight_val"):
        model.fit(x, y, verbose=0, validation_data=(x, y, None, None, None))


@pytest.mark.parametrize("weighting", ["equal", "mgda"])
def test_the_live_bar_shows_the_epoch_means_over_the_labelled_samples_so_far(weighting):
    # With lr=0 and no shuffle, the epoch log of the first k batches is evaluate on
    # them; the bar showed batch-size-weighted means (reg/loss halved in frame 2).
    from tests.test_progress import Clock, FakeTTY, shown
    from tinynet.progress import ProgressBar, format_logs
    model, x, y = _frozen_with_missing_labels(weighting)
    stream = FakeTTY()
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                        callbacks=[ProgressBar(stream=stream, clock=Clock(0.5))])
    frames = [shown(frame) for frame in stream.getvalue().split("\r")[1:]]
    assert len(frames) == 3
    for k, frame in zip((4, 8, 12), frames):
        exact = shown(format_logs(model.evaluate(x[:k], {t: v[:k] for t, v in y.items()})))
        assert {key: frame[key] for key in exact} == exact, k
    assert frames[-1] == shown(format_logs({key: values[-1] for key, values
                                            in history.history.items()}))
    if weighting == "mgda":  # "reg" has a weight in the first batch only
        assert frames[0]["reg/weight"] == frames[1]["reg/weight"] == frames[2]["reg/weight"]


@pytest.mark.parametrize("weighting", ["equal", "mgda"])
def test_a_task_without_a_label_yet_shows_no_value(weighting):
    # "reg" is labelled in the last of three batches only: before it, its mean
    # is undefined, not 0 (as fit_loop's running mean read). The bar leaves it
    # out; the log of an epoch stopped before it has NaN (it had no key, so
    # that History lacked the task's columns when no other epoch had them).
    from tests.test_progress import Clock, FakeTTY, shown
    from tinynet.callbacks import Callback
    from tinynet.progress import ProgressBar
    model, x, y = _frozen_with_missing_labels(weighting)
    y["reg"][:] = np.nan
    y["reg"][8:] = np.random.default_rng(0).standard_normal((4,) + y["reg"].shape[1:])
    stream = FakeTTY()
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
              callbacks=[ProgressBar(stream=stream, clock=Clock(0.5))])
    frames = [shown(frame) for frame in stream.getvalue().split("\r")[1:]]
    assert [sorted(k for k in frame if k.startswith("reg/")) for frame in frames] == [
        [], [], ["reg/loss"] + (["reg/weight"] if weighting == "mgda" else [])]
    assert "cls/loss" in frames[0]

    class StopAfterFirstBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                        callbacks=[StopAfterFirstBatch()])
    reg = sorted(key for key in history.history if key.startswith("reg/"))
    assert reg == ["reg/loss"] + (["reg/weight"] if weighting == "mgda" else [])
    assert all(np.isnan(history.history[key]).all() for key in reg)
    assert history.history["cls/loss"][0] > 0
    assert sorted(history.history) == sorted(model._log_keys(validation=False))


def test_an_epoch_stopped_before_a_tasks_first_label_logs_nan_for_its_metrics():
    from tinynet.callbacks import Callback
    model, x, y = _frozen_with_missing_labels("dwa")
    model.compile(tn.optim.SGD(lr=0.0), loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"], "reg": ["mae"]}, weighting="dwa")
    y["reg"][:] = np.nan  # labels in the last batch only
    y["reg"][8:] = np.random.default_rng(0).standard_normal((4,) + y["reg"].shape[1:])
    epoch_logs = []

    class StopInSecondEpoch(Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.stop_training = self.epoch == 1

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            epoch_logs.append(dict(logs))

    history = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0,
                        callbacks=[StopInSecondEpoch()])
    assert len(history.epoch) == 2
    for key in ("reg/loss", "reg/mae", "reg/weight"):
        assert np.isfinite(history.history[key][0]) and np.isnan(history.history[key][1]), key
        assert np.isnan(epoch_logs[1][key])  # the callbacks see the NaN too
    assert np.isfinite(history.history["cls/accuracy"]).all()
    assert len(model.weighting.history) == 1  # DWA does not record the stopped epoch


def test_dwa_weights_move_after_two_epochs():
    rng = np.random.default_rng(1)
    x, y = data(rng, 64)
    model = trunk_model(2, dtype="float64")
    model.compile(tn.optim.Adam(lr=0.05), loss={"cls": "cross_entropy", "reg": "mse"},
                  weighting="dwa")
    history = model.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=0)
    weights = np.array(history.history["cls/weight"])
    np.testing.assert_array_equal(weights[:2], [1.0, 1.0])
    assert weights[3] != 1.0


def test_uncertainty_log_variances_are_trained():
    rng = np.random.default_rng(2)
    x, y = data(rng, 64)
    model = trunk_model(2)
    model.compile(tn.optim.Adam(lr=0.05), loss={"cls": "cross_entropy", "reg": "mse"},
                  weighting="uncertainty")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=0)
    assert np.abs(model.weighting.log_vars.value).max() > 0


def test_training_errors():
    model = trunk_model(0)
    x, y = data(np.random.default_rng(0), 4)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="loss="):
        model.compile("sgd")
    with pytest.raises(ValueError, match="unknown tasks"):
        model.compile("sgd", loss={"cls": "mse", "nope": "mse"})
    with pytest.raises(ValueError, match="a loss for task 'reg'"):
        model.compile("sgd", loss={"cls": "cross_entropy"})
    with pytest.raises(ValueError, match="not both"):
        model.compile("sgd", loss="mse", weighting="mgda", loss_weights=[1, 2])
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"})
    with pytest.raises(ValueError, match="missing \\['reg'\\]"):
        model.fit(x, {"cls": y["cls"]}, verbose=0)
    with pytest.raises(ValueError, match="one per sample"):
        model.fit(x, {"cls": y["cls"][:3], "reg": y["reg"]}, verbose=0)
    with pytest.raises(TypeError, match="dict"):
        model.fit(x, y["cls"], verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, verbose=0, validation_data=(x,))
    with pytest.raises(ValueError, match="input array"):
        model.predict([x, x])


def compiled_model():
    """A compiled trunk model and 6 samples of data for it."""
    model = trunk_model(0)
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"})
    return (model,) + data(np.random.default_rng(0), 6)


def test_non_finite_inputs_are_refused_before_training():
    model, x, y = compiled_model()
    before = model.get_weights()
    bad = x.copy()
    bad[1, 2] = np.nan
    bad[3, 0] = np.inf
    message = "expected finite input 'input_\\d+', received 2 NaN or infinite value"
    with pytest.raises(ValueError, match="fit " + message):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="fit \\(validation_data\\) " + message):
        model.fit(x, y, verbose=0, validation_data=(bad, y))
    with pytest.raises(ValueError, match="evaluate " + message):
        model.evaluate(bad, y)
    with pytest.raises(ValueError, match="predict " + message):
        model.predict(bad)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_argument_errors_of_fit_evaluate_predict_are_clear():
    model, x, y = compiled_model()
    for size, error in ((0, ValueError), (-1, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="predict expected batch_size as a positive integer"):
            model.predict(x, batch_size=size)
        with pytest.raises(error, match="evaluate expected batch_size as a positive integer"):
            model.evaluate(x, y, batch_size=size)
    # Empty input: refused, as Sequential does.
    with pytest.raises(ValueError, match="predict expected at least one sample, received "
                                         "input 'input_\\d+' of shape \\(0, 5\\)"):
        model.predict(x[:0])
    with pytest.raises(ValueError, match="evaluate expected at least one sample"):
        model.evaluate(x[:0], {"cls": y["cls"][:0], "reg": y["reg"][:0]})
    # A list of samples is one array for a model with one input.
    preds = model.predict(x.tolist())
    np.testing.assert_array_equal(preds["reg"], model.predict(x)["reg"])
    assert model.evaluate(x.tolist(), y) == model.evaluate(x, y)
    with pytest.raises(ValueError, match="expected 1 input array.*received a list of 2"):
        model.predict([x, x])


def test_dict_inputs_name_the_missing_and_unknown_ones():
    a, b = tn.mtl.Input((3,), name="a"), tn.mtl.Input((2,), name="b")
    model = tn.mtl.Model([a, b], {"t": Dense(1)(tn.mtl.Concatenate()([a, b]))})
    model.compile("sgd", loss="mse")
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match="missing input 'b'; unknown input 'bb'; did you "
                                         "mean 'b'\\?"):
        model.fit({"a": x1, "bb": x2}, {"t": np.zeros(4)}, verbose=0)
    assert model.predict({"a": x1, "b": x2})["t"].shape == (4, 1)
    with pytest.raises(ValueError, match="input 'b' of shape \\(batch, 2\\), received"):
        model.predict({"a": x1, "b": x1})


def test_validation_data_is_checked_before_the_first_epoch():
    model, x, y = compiled_model()
    before = model.get_weights()
    epochs = []

    class Count(tn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(epoch)

    bad = [
        ((x, {"cls": y["cls"], "regg": y["reg"]}), "missing \\['reg'\\], unknown \\['regg'\\]"),
        ((x[:, :3], y), "input 'input_\\d+' of shape \\(batch, 5\\), received \\(6, 3\\)"),
        ((x, {"cls": y["cls"] + 3, "reg": y["reg"]}), "task 'cls': CrossEntropy expected "
                                                      "labels in \\[0, 2\\]"),
        ((x, {"cls": y["cls"], "reg": y["reg"][:, :1]}), "task 'reg': MSE expected targets"),
    ]
    for validation_data, message in bad:
        with pytest.raises((ValueError, TypeError),
                           match="fit \\(validation_data\\),? .*" + message):
            model.fit(x, y, epochs=2, verbose=0, callbacks=[Count()],
                      validation_data=validation_data)
    # Bad training labels fail before the first batch too, not in a later one.
    y_bad = {"cls": np.r_[y["cls"][:5], 7], "reg": y["reg"]}
    with pytest.raises(ValueError, match="fit, task 'cls'"):
        model.fit(x, y_bad, batch_size=1, shuffle=False, verbose=0, callbacks=[Count()])
    assert epochs == []
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_takes_one_callback_or_a_list_as_sequential_does():
    model, x, y = compiled_model()
    history = tn.callbacks.History()
    model.fit(x, y, epochs=2, batch_size=3, verbose=0, callbacks=history)
    assert len(history.history["loss"]) == 2
    with pytest.raises(TypeError, match="expected a list of callbacks, received str"):
        model.fit(x, y, epochs=1, verbose=0, callbacks="early_stopping")


def test_a_metric_that_does_not_suit_a_task_fails_before_training_and_names_it():
    model = tn.mtl.HardSharing((5,), trunk=[Dense(4, seed=0)],
                               heads={"cls": [Dense(3, seed=1)], "reg": [Dense(1, seed=2)]})
    x, y = data(np.random.default_rng(0), 6)
    y["reg"] = y["reg"][:, :1]
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"}, metrics="accuracy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(TypeError, match="fit, task 'reg': accuracy expected integer class "
                                        "labels"):
        model.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": "accuracy", "reg": "mae"})
    model.fit(x, y, epochs=1, verbose=0)


def test_evaluate_names_the_task_whose_targets_do_not_fit():
    # Two tasks with one loss: "MSE expected targets of the predictions' shape"
    # alone did not say which of them was given the wrong array.
    inp = tn.mtl.Input((5,))
    model = tn.mtl.Model(inp, {"near": Dense(2, seed=0)(inp), "far": Dense(2, seed=1)(inp)})
    model.compile("sgd", loss="mse", metrics="mae")
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="evaluate, task 'far': MSE expected targets of the "
                                         "predictions' shape \\(6, 2\\), received \\(6, 3\\)"):
        model.evaluate(x, {"near": np.zeros((6, 2)), "far": np.zeros((6, 3))})
    assert set(model.evaluate(x, {"near": np.zeros((6, 2)), "far": np.ones((6, 2))})) == {
        "loss", "near/loss", "near/mae", "far/loss", "far/mae"}


# ------------------------------------------------- the keys fit tells the callbacks
def _fit_setup(weighting="equal"):
    rng = np.random.default_rng(0)
    x, y = data(rng, 40)
    model = trunk_model(0)
    model.compile("adam", loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"]}, weighting=weighting)
    return model, x, y


@pytest.mark.parametrize("weighting", ["equal", "dwa", "mgda"])
@pytest.mark.parametrize("validation", [False, True])
def test_the_keys_fit_announces_are_the_keys_it_logs(weighting, validation):
    # fit hands them to the callbacks (params["metrics"]) to check monitors before
    # training; a key missing from the list would refuse a valid monitor
    model, x, y = _fit_setup(weighting)
    seen = {}

    class Spy(tn.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["keys"] = list(self.params["metrics"])

    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[Spy()],
                        validation_data=(x, y) if validation else None)
    assert sorted(seen["keys"]) == sorted(history.history)


def test_a_monitor_of_a_key_fit_never_logs_is_refused_before_training():
    # it used to fail only after the first epoch had trained
    model, x, y = _fit_setup()
    before = [p.value.copy() for p in model.parameters()]
    stop = tn.callbacks.EarlyStopping(monitor="cls/val_accuracy")
    with pytest.raises(ValueError, match=r"'cls/val_accuracy', which fit will not log.*"
                                         r"val_cls/accuracy"):
        model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[stop])
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.value, b)
    # the keys it does log are accepted, a task's and a weight's included
    model, x, y = _fit_setup("dwa")
    for monitor in ("val_cls/accuracy", "reg/loss", "cls/weight"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
                  callbacks=[tn.callbacks.EarlyStopping(monitor=monitor, mode="max")])


def test_a_sum_loss_logs_the_mean_batch_sum_in_fit_validation_and_evaluate():
    # reduction="sum" as Sequential logs it: each batch's sum, averaged over the
    # batches (weighted by the task's labelled samples), so that "cls/loss",
    # "val_cls/loss" and evaluate(batch_size=4) agree on the same data (lr=0);
    # the whole data's sum would be about len(x) / batch_size times larger
    model, x, y = _frozen_with_missing_labels("equal")
    model.compile(tn.optim.SGD(lr=0.0),
                  loss={"cls": tn.losses.CrossEntropy(reduction="sum"),
                        "reg": tn.losses.MSE(reduction="sum")})
    w = np.random.default_rng(5).random(len(x)) * 3
    out = model.predict(x)
    keep = y["cls"] >= 0
    per = -tn.losses.log_softmax(out["cls"])[np.arange(len(x)), np.where(keep, y["cls"], 0)]
    sums = [(w * per * keep)[b:b + 4].sum() for b in (0, 4, 8)]
    expected = np.dot(sums, [3, 4, 4]) / 11  # batch sums weighted by labelled samples
    exact = model.evaluate(x, y, sample_weight=w, batch_size=4)
    assert exact["cls/loss"] == pytest.approx(expected, rel=1e-12)
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                        sample_weight=w, validation_data=(x, y, None, w))
    for key in ("loss", "cls/loss", "reg/loss"):
        assert history.history[key][0] == pytest.approx(exact[key], rel=1e-12), key
        assert history.history[f"val_{key}"][0] == pytest.approx(exact[key], rel=1e-12), key


@pytest.mark.parametrize("frozen", [False, True])
def test_a_model_with_nothing_to_train_compiles_and_fits_as_keras(frozen, tmp_path):
    """compile failed ("SGD received a parameter group without parameters")
    for a model of activations only, or one frozen whole. Keras 3 compiles
    it, and its fit warns and runs, logging the losses; so does tinynet."""
    from tinynet.layers import ReLU
    a = tn.mtl.Input((3,), name="a")
    outputs = ({"t": Dense(2, seed=0)(a), "u": ReLU()(a)} if frozen
               else {"t": tn.layers.Tanh()(a), "u": ReLU()(a)})
    model = tn.mtl.Model(a, outputs, trainable=not frozen)
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = {"t": np.zeros((5, 2 if frozen else 3)), "u": np.ones((5, 3))}
    with pytest.warns(UserWarning, match="no trainable parameter of this model is shared"):
        model.compile("sgd", loss="mse", metrics={"u": ["mae"]}, weighting="pcgrad")
    before = model.get_weights()
    with pytest.warns(UserWarning, match="Model '.*' has no trainable parameters"):
        history = model.fit(x, y, epochs=2, batch_size=2, shuffle=False, verbose=0)
    for w, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w, v)
    assert history.history["loss"][0] == history.history["loss"][1] > 0
    logs = model.evaluate(x, y)
    assert logs["u/mae"] == pytest.approx(history.history["u/mae"][0])
    model.save(tmp_path / "m.npz")
    with pytest.warns(UserWarning, match="no trainable parameter of this model is shared"):
        loaded = tn.load(tmp_path / "m.npz")
    assert loaded.evaluate(x, y) == logs


def test_batch_size_none_means_keras_32_in_a_multi_task_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70, 4))
    y = {"a": rng.integers(0, 3, 70), "b": rng.standard_normal((70, 1))}
    runs = []
    for batch_size in (None, 32):
        inp = tn.mtl.Input((4,), name="x")
        h = Dense(6, activation="relu", seed=0)(inp)
        model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(h), "b": Dense(1, seed=2)(h)})
        model.compile("adam", loss={"a": "cross_entropy", "b": "mse"})
        history = model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0, seed=0)
        runs.append((history.history, model.evaluate(x, y, batch_size=batch_size),
                     model.predict(x, batch_size=batch_size)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    for task in ("a", "b"):
        np.testing.assert_array_equal(runs[0][2][task], runs[1][2][task])


def test_a_task_loss_with_class_weights_near_the_largest_float_trains_as_the_ordinary_one():
    # its weighted mean's sums overflowed: the task loss, the total and the
    # weights were NaN; a power of two times the table is the same run
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), {"a": rng.integers(0, 3, 40), "b": rng.normal(size=(40, 1))}
    runs = []
    for scale in (1.0, 2.0 ** 1000):
        inp = tn.mtl.Input((5,), dtype="float64")
        h = Dense(4, seed=0)(inp)
        model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(h), "b": Dense(1, seed=2)(h)})
        table = np.array([1.0, 2.0, 0.5]) * scale
        model.compile(tn.optim.SGD(lr=0.1),
                      loss={"a": tn.losses.CrossEntropy(weight=table), "b": "mse"})
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0,
                            sample_weight={"a": np.linspace(0.5, 2.0, 40)})
        runs.append((history.history, model.evaluate(x, y)))
    assert runs[0] == runs[1] and np.isfinite(runs[0][0]["loss"]).all()


def test_evaluate_and_predict_take_keras_verbose(capsys):
    # model.evaluate(x, y, verbose=0) and predict(x, verbose=0) raised TypeError;
    # silent by default, one line at 1, 2 or "auto" (capsys is no terminal)
    model, x, y = _fit_setup()
    quiet, outputs = model.evaluate(x, y), model.predict(x)
    assert model.evaluate(x, y, verbose=0) == quiet and capsys.readouterr().out == ""
    for verbose in (1, 2, "auto"):
        assert model.evaluate(x, y, verbose=verbose) == quiet
        line = capsys.readouterr().out
        assert line.startswith("evaluate - ") and line.endswith(
            f" - cls/accuracy: {quiet['cls/accuracy']:.4f}\n")
        predicted = model.predict(x, verbose=verbose)
        assert all(np.array_equal(predicted[t], outputs[t]) for t in outputs)
        assert capsys.readouterr().out.startswith("predict - ")
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    model.evaluate(x, y, batch_size=8, verbose=1, stream=terminal)
    frames = terminal.getvalue().split("\r")[1:]
    assert frames[0].startswith("evaluate  1/5 [") and frames[-1].startswith("evaluate  5/5 [")
    with pytest.raises(ValueError, match="evaluate expected verbose 0, 1, 2 or 'auto', "
                                         "received 3"):
        model.evaluate(x, y, verbose=3)
