"""Sequential.fit(class_weight={class: weight}), as Keras: per-sample weights by class."""

import warnings

import numpy as np
import pytest

import tinynet as tn
from tinynet import losses
from tinynet.class_weights import class_sample_weights


def _model(units=3, loss="cross_entropy", activation=None):
    model = tn.Sequential([tn.layers.Dense(units, input_dim=4, seed=0, dtype="float64",
                                           activation=activation)])
    model.compile(tn.optim.SGD(lr=0.1), loss=loss)
    return model


def _data(n=12, n_classes=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, n_classes, n)


def _fit(model, x, y, **kwargs):
    model.fit(x, y, epochs=2, batch_size=5, verbose=0, seed=1, **kwargs)
    return model.get_weights()


@pytest.mark.parametrize("one_hot", [False, True])
def test_class_weight_is_sample_weight_by_class(one_hot):
    x, y = _data()
    table = {0: 0.5, 1: 3.0, 2: 1.25}
    target = np.eye(3)[y] if one_hot else y
    by_class = _fit(_model(), x, target, class_weight=table)
    by_sample = _fit(_model(), x, target, sample_weight=np.array([table[k] for k in y]))
    plain = _fit(_model(), x, target)
    for a, b, c in zip(by_class, by_sample, plain):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, c) for a, c in zip(by_class, plain))


def test_class_weight_multiplies_sample_weight_and_missing_classes_keep_one():
    x, y = _data()
    s = np.linspace(0.5, 2.0, len(y))
    both = _fit(_model(), x, y, class_weight={1: 4.0}, sample_weight=s)
    product = _fit(_model(), x, y, sample_weight=s * np.where(y == 1, 4.0, 1.0))
    for a, b in zip(both, product):
        np.testing.assert_array_equal(a, b)


def test_class_weight_equals_cross_entropy_weight_for_labels():
    # fit's class_weight and CrossEntropy(weight=) give the same weighted mean
    x, y = _data()
    via_fit = _fit(_model(), x, y, class_weight={0: 0.5, 1: 3.0, 2: 1.25})
    via_loss = _fit(_model(loss=losses.CrossEntropy(weight=[0.5, 3.0, 1.25])), x, y)
    for a, b in zip(via_fit, via_loss):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("small", [1e-40, 1e-50])
def test_class_weight_and_cross_entropy_weight_agree_on_small_weights_in_float32(small):
    # CrossEntropy(weight=[1, 1e-40, 1]) gave float32 batches of class 1 an infinite
    # gradient (1e-50: a NaN one), then was refused at forward, while
    # fit(class_weight=) trained: both train now, as without class weights (the
    # batches hold class 1 alone, whose weights a mean divides out)
    x, _ = _data()
    y = np.ones(len(x), dtype=np.int64)
    models = [tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=0, dtype="float32")])
              for _ in range(3)]
    models[0].compile(tn.optim.SGD(lr=0.1), loss=losses.CrossEntropy(weight=[1.0, small, 1.0]))
    models[1].compile(tn.optim.SGD(lr=0.1), loss="cross_entropy")
    models[2].compile(tn.optim.SGD(lr=0.1), loss="cross_entropy")
    via_loss, via_fit = _fit(models[0], x, y), _fit(models[1], x, y,
                                                   class_weight={1: small})
    plain = _fit(models[2], x, y)
    for a, b, c in zip(via_loss, via_fit, plain):
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-6)


def test_binary_targets_on_one_sigmoid_output():
    x, y = _data(n_classes=2)
    for model_args in ({}, {"activation": "sigmoid"}):
        by_class = _fit(_model(1, "binary_cross_entropy", **model_args), x, y.astype(float),
                        class_weight={0: 1.0, 1: 5.0})
        by_sample = _fit(_model(1, "binary_cross_entropy", **model_args), x, y.astype(float),
                         sample_weight=np.where(y == 1, 5.0, 1.0))
        for a, b in zip(by_class, by_sample):
            np.testing.assert_array_equal(a, b)


def test_validation_is_not_weighted_by_class():
    x, y = _data(20)
    model = _model()
    history = model.fit(x[:15], y[:15], epochs=1, batch_size=5, verbose=0, seed=1,
                        validation_data=(x[15:], y[15:]), class_weight={0: 10.0, 1: 0.1})
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[15:], y[15:])["loss"], rel=1e-12)
    # validation_split: the held-out part is also unweighted by class
    model = _model()
    history = model.fit(x, y, epochs=1, batch_size=5, verbose=0, seed=1, validation_split=0.25,
                        class_weight={0: 10.0, 1: 0.1})
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[15:], y[15:])["loss"], rel=1e-12)


@pytest.mark.parametrize("model_args, y, class_weight, error, message", [
    ({}, None, {3: 1.0}, ValueError, "names class 3, which the model does not have: its 3 "
                                     "classes are 0 to 2"),
    ({}, None, {-1: 1.0}, ValueError, "names class -1"),
    ({}, None, {1.0: 2.0}, TypeError, "keys as integer class labels"),
    ({}, None, {True: 2.0}, TypeError, "keys as integer class labels"),
    # the values are checked as every real hyper-parameter is (check_real), the
    # whole table as CrossEntropy(weight=) is (as_class_weight)
    ({}, None, {1: -2.0}, ValueError, r"expected class_weight\[1\] in \[0, inf\), received -2.0"),
    ({}, None, {1: np.inf}, ValueError, r"class_weight\[1\] in \[0, inf\), received inf"),
    ({}, None, {1: np.nan}, ValueError, r"class_weight\[1\] in \[0, inf\), received nan"),
    ({}, None, {1: "2"}, TypeError,
     r"class_weight\[1\] as a real number, received '2' of type str"),
    # a bool is not a number, here as everywhere in tinynet
    ({}, None, {0: True}, TypeError,
     r"class_weight\[0\] as a real number, received True of type bool"),
    ({}, None, {0: np.True_}, TypeError, r"class_weight\[0\] as a real number, received .*True"),
    # every class weighing 0 would make every loss 0: nothing would train
    ({}, None, {0: 0, 1: 0.0, 2: 0}, ValueError,
     "class_weight over the model's 3 classes .*at least one positive value, "
     "received all zeros"),
    ({"units": 1, "loss": "bce"}, np.arange(12) % 2, {0: 0, 1: 0}, ValueError,
     "class_weight over the model's 2 classes .*received all zeros"),
    ({}, None, [1.0, 2.0, 3.0], TypeError, "class_weight as a dict"),
    ({"units": 1, "loss": "mse"}, np.zeros(12), {0: 1.0}, ValueError,
     "class_weight needs class labels, but the loss is MSE, not a classification loss"),
    ({"units": 1, "loss": "bce"}, np.full(12, 0.5), {0: 1.0}, ValueError,
     r"targets that are classes \(0 or 1\)"),
    ({"units": 2, "loss": "bce"}, np.zeros((12, 2)), {0: 1.0}, ValueError,
     "2 sigmoid outputs .*pos_weight"),
])
def test_bad_class_weight_is_reported(model_args, y, class_weight, error, message):
    x, labels = _data()
    with pytest.raises(error, match=message):
        _model(**model_args).fit(x, labels if y is None else y, verbose=0,
                                 class_weight=class_weight)


def test_class_sample_weights_reads_columns_and_soft_rows_as_keras():
    loss = losses.CrossEntropy()
    table = {0: 2.0, 2: 3.0}
    np.testing.assert_array_equal(
        class_sample_weights(table, np.array([[0], [2], [1]]), loss, (3,), "t"), [2, 3, 1])
    soft = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_array_equal(class_sample_weights(table, soft, loss, (3,), "t"), [2, 3])


def test_training_samples_that_all_weigh_zero_are_refused():
    # the dict weighs class 2 by 1, but no training sample is of class 2
    x, y = _data()
    y = y % 2
    with pytest.raises(ValueError, match="every training sample weighs 0 .*nothing would train"):
        _model().fit(x, y, verbose=0, class_weight={0: 0.0, 1: 0.0})
    with pytest.raises(ValueError, match="every training sample weighs 0"):
        _model().fit(x, y, verbose=0, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="every training sample weighs 0"):
        _model().fit(x, y, verbose=0, sample_weight=(y == 1).astype(float),
                     class_weight={1: 0.0})


def test_a_batch_of_zero_weight_classes_trains_nothing_and_counts_nothing():
    # a legitimate batch (other classes weigh more): its loss and gradient are 0,
    # without a NumPy warning, and it counts for nothing in the epoch's loss
    x, _ = _data()
    y = np.array([2] * 5 + [0, 1] * 3 + [0])  # the first batch of 5: class 2 only
    fits = []
    for start in (0, 5):  # with and without that batch; the same later batches
        model = _model()
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            history = model.fit(x[start:], y[start:], epochs=1, batch_size=5, shuffle=False,
                                verbose=0, class_weight={2: 0.0, 0: 2.0})
        fits.append((history.history["loss"][0], model.get_weights()))
    (loss_all, weights_all), (loss_rest, weights_rest) = fits
    assert loss_all == pytest.approx(loss_rest, rel=1e-12)
    for a, b in zip(weights_all, weights_rest):
        np.testing.assert_array_equal(a, b)


def test_sample_weights_near_the_largest_float_times_a_class_weight_do_not_overflow():
    # 1e308 * 4 was inf: the logged loss NaN, and the loss refused the batch's weights;
    # the sum of the sample weights alone (what summable_weights tested) was finite
    x, y = _data()
    s = np.linspace(0.5, 2.0, len(y))
    big = s * 1e307  # sum 1.5e308; times 100 each one of class 1 is inf
    assert np.isfinite(big.sum()) and 1 in y
    both = _fit(_model(), x, y, class_weight={1: 100.0}, sample_weight=big)
    product = _fit(_model(), x, y, sample_weight=s * np.where(y == 1, 100.0, 1.0))
    for a, b in zip(both, product):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_sample_weights_near_the_largest_float_times_the_losses_class_weight():
    # the same product inside CrossEntropy(weight=): its mean's denominator sums w_i c_{y_i}
    x, y = _data()
    s = np.linspace(0.5, 2.0, len(y))
    big = s * 1e307

    def model():
        return _model(loss=losses.CrossEntropy(weight=[0.5, 300.0, 1.25]))

    scores = model().evaluate(x, y, sample_weight=big)
    assert scores["loss"] == pytest.approx(model().evaluate(x, y, sample_weight=s)["loss"],
                                           rel=1e-12)
    for a, b in zip(_fit(model(), x, y, sample_weight=big), _fit(model(), x, y, sample_weight=s)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    inp = tn.mtl.Input((4,), name="x")
    mtl = tn.mtl.Model(inp, {"a": tn.layers.Dense(3, seed=0, dtype="float64")(inp)})
    mtl.compile("sgd", loss={"a": losses.CrossEntropy(weight=[0.5, 300.0, 1.25])})
    assert mtl.evaluate(x, {"a": y}, sample_weight=big)["loss"] == pytest.approx(
        mtl.evaluate(x, {"a": y}, sample_weight=s)["loss"], rel=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy"])
@pytest.mark.parametrize("scale, sample_scale", [(2.0 ** -1000, 1e-30), (2.0 ** 1020, 1.0),
                                                 (2.0 ** -1060, 1.0)])
def test_class_weights_near_the_float_limits_train_as_the_ordinary_table(loss, scale,
                                                                         sample_scale):
    # tiny class weights times small sample weights underflowed to 0 (fit
    # refused every sample as weighing 0) or to subnormals (digits lost): a
    # power of two times a table is the same run as the table, to the bit
    x, y = _data(20, 2 if loss == "binary_cross_entropy" else 3)
    units = 1 if loss == "binary_cross_entropy" else 3
    sample_weight = np.linspace(0.5, 2.0, len(y)) * sample_scale
    table = {0: 0.5, 1: 3.0, 2: 1.25}
    runs = [_fit(_model(units, loss), x, y, sample_weight=sample_weight,
                 class_weight={k: v * s for k, v in table.items() if k < 2 or units == 3})
            for s in (1.0, scale)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_a_class_weight_dict_too_wide_to_scale_exactly_is_refused():
    # {0: 1e300, 1: 1e-300} divided by 2**997 weighed class 1 0: fit trained as if
    # its samples were not there
    x, y = _data()
    with pytest.raises(ValueError, match=r"fit expected class_weight whose largest is at "
                                         r"most 2\*\*1021 .* received weights from 1e\+300 "
                                         r"down to 1e-300 .* weight 1 = 1e-300 would become 0"):
        _fit(_model(), x, y, class_weight={0: 1e300, 1: 1e-300})
    # both ends of the widest table always divided exactly (2**1021 apart): data of one
    # class trains as without class weights (the weights of a mean are all equal)
    for k in (0, 1):
        one = np.full(len(y), k)
        weighted = _fit(_model(), x, one, class_weight={0: 2.0 ** 1000, 1: 2.0 ** -21})
        for a, b in zip(weighted, _fit(_model(), x, one)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("table", [{0: 1e20}, {0: 1e-20, 1: 1e-20, 2: 3e-20}, {0: 2.0, 2: 0.5}])
def test_class_weights_of_a_summed_loss_are_used_as_given(table):
    # a sum scales with the weights: fit(class_weight=) with reduction="sum"
    # is the loss's own class weights, never a table divided by a power of two
    # (which left the mean unchanged but shrank the sum and its steps by 2**67)
    x, y = _data(12, 3)
    weight = [table.get(k, 1.0) for k in range(3)]
    by_dict = _model(loss=losses.CrossEntropy(reduction="sum"))
    by_loss = _model(loss=losses.CrossEntropy(weight=weight, reduction="sum"))
    history = by_dict.fit(x, y, epochs=1, batch_size=5, verbose=0, seed=1,
                          class_weight=table).history
    reference = by_loss.fit(x, y, epochs=1, batch_size=5, verbose=0, seed=1).history
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-12)
    for a, b in zip(by_dict.get_weights(), by_loss.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
