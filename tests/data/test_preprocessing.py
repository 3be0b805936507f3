"""Splits, scalers and one-hot: properties and every documented error."""

import math
import re

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinynet.data import MinMaxScaler, Standardizer, one_hot, train_val_split

# millesimal values: extreme magnitudes (1e-300) only test the floating-point format
finite = st.integers(-10**6, 10**6).map(lambda i: i / 1000)
matrices = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1,
                                                   max_side=6), elements=finite)


@given(x=matrices)
def test_standardizer_moments_and_inverse(x):
    scaler = Standardizer().fit(x)
    z = scaler.transform(x)
    assert z.dtype == np.float64 and z.shape == x.shape
    varying = np.ptp(x, axis=0) > 0
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-7)
    np.testing.assert_allclose(z.std(axis=0)[varying], 1, rtol=1e-6)
    np.testing.assert_allclose(scaler.inverse_transform(z), x, atol=1e-9 * (1 + np.abs(x).max()))


@given(x=matrices, low=st.floats(-5, 5))
def test_minmax_maps_training_range(x, low):
    scaler = MinMaxScaler((low, low + 2.0)).fit(x)
    z = scaler.transform(x)
    varying = np.ptp(x, axis=0) > 0
    np.testing.assert_allclose(z.min(axis=0)[varying], low, atol=1e-9)
    np.testing.assert_allclose(z.max(axis=0)[varying], low + 2.0, atol=1e-9)
    np.testing.assert_allclose(z[:, ~varying], low, atol=1e-9)
    np.testing.assert_allclose(scaler.inverse_transform(z), x, atol=1e-9 * (1 + np.abs(x).max()))


def test_constant_feature_is_centred_not_divided_by_zero():
    x = np.array([[1.0, 7.0], [3.0, 7.0]])
    z = Standardizer().fit_transform(x)
    np.testing.assert_array_equal(z[:, 1], 0.0)
    assert np.isfinite(z).all()
    # the rounded mean of equal tiny values differs from them: still constant
    tiny = np.full((3, 1), 3.55530198e-121)
    np.testing.assert_array_equal(Standardizer().fit_transform(tiny), 0.0)


def test_statistics_come_from_training_data_only():
    train = np.array([[0.0], [2.0]])
    test = np.array([[4.0]])
    scaler = Standardizer().fit(train)
    np.testing.assert_allclose(scaler.transform(test), [[3.0]])
    np.testing.assert_allclose(MinMaxScaler().fit(train).transform(test), [[2.0]])


def test_uint8_images_become_float32_and_global_axis():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8).repeat(3, axis=0)
    z = MinMaxScaler(axis=None).fit_transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert Standardizer().fit(x).transform(x, dtype="float64").dtype == np.float64


@pytest.mark.parametrize("cls", [Standardizer, MinMaxScaler])
def test_state_dict_round_trip(cls):
    x = np.random.default_rng(0).normal(size=(20, 4))
    scaler = cls(axis=None).fit(x) if cls is Standardizer else cls((-1, 1)).fit(x)
    again = cls.from_state_dict({k: v.copy() for k, v in scaler.state_dict().items()})
    np.testing.assert_array_equal(again.transform(x), scaler.transform(x))


def test_state_dict_is_a_copy_both_ways():
    # the dict shared the fitted arrays: changing it changed the scaler, and back
    x = np.arange(6.0).reshape(3, 2)
    scaler = Standardizer().fit(x)
    state = scaler.state_dict()
    state["scale"][:] = 0.0
    assert (scaler.scale_ > 0).all()
    state = scaler.state_dict()
    again = Standardizer.from_state_dict(state)
    state["offset"][:] = 100.0
    np.testing.assert_array_equal(again.offset_, scaler.offset_)


def state_of(cls, **changes):
    x = np.arange(6.0).reshape(3, 2)
    state = cls().fit(x).state_dict()
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


@pytest.mark.parametrize("cls, changes, error, match", [
    # a zero or NaN scale divided silently (inf and NaN out); shapes failed in
    # NumPy's broadcasting; a missing entry was a bare KeyError
    (Standardizer, {"scale": np.array([0.0, 1.0])}, ValueError, r"'scale'.*> 0"),
    (Standardizer, {"scale": np.array([np.nan, 1.0])}, ValueError, r"'scale' finite"),
    (Standardizer, {"offset": np.array([np.inf, 1.0])}, ValueError, r"'offset'.*finite"),
    (Standardizer, {"offset": np.zeros(3)}, ValueError, r"'offset' of shape \(3,\).*\(2,\)"),
    (Standardizer, {"offset": np.array(["a", "b"])}, TypeError, "'offset' as real numbers"),
    (Standardizer, {"scale": np.array([1 + 1j, 1])}, TypeError, "'scale' as real numbers"),
    (Standardizer, {"axis": None}, ValueError, "'axis', which the state lacks"),
    (Standardizer, {"axis": np.array(1)}, ValueError, r"'axis' 0 .* or -1"),
    (Standardizer, {"axis": np.array(0.5)}, ValueError, r"'axis' 0 .* or -1"),
    (Standardizer, {"axis": np.array(-1)}, ValueError, r"'offset' of shape \(2,\).*\(\)"),
    (Standardizer, {"feature_range": np.array([0.0, 1.0])}, ValueError,
     r"unexpected entry 'feature_range'"),  # a MinMaxScaler's state
    (MinMaxScaler, {"feature_range": None}, ValueError, "'feature_range', which the state lacks"),
    (MinMaxScaler, {"feature_range": np.array([1.0, 0.0])}, ValueError, "low < high"),
    (MinMaxScaler, {"feature_range": np.array([0.0, 1.0, 2.0])}, TypeError, "a pair"),
])
def test_from_state_dict_refuses_what_state_dict_never_writes(cls, changes, error, match):
    with pytest.raises(error, match=match):
        cls.from_state_dict(state_of(cls, **changes))
    with pytest.raises(TypeError, match="expected a dict"):
        cls.from_state_dict([("offset", 0)])


@pytest.mark.parametrize("cls", [Standardizer, MinMaxScaler])
def test_floats_in_the_other_byte_order_scale_to_native_floats(cls):
    # a ">f4" array (a FITS file) scaled to ">f4", which the layers refused
    x = np.random.default_rng(0).random((6, 3)).astype(np.float32)
    swapped = x.astype(x.dtype.newbyteorder())
    scaler = cls().fit(swapped)
    out = scaler.transform(swapped)
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, cls().fit(x).transform(x))
    back = scaler.inverse_transform(out, dtype=np.dtype(">f8"))
    assert back.dtype == np.float64 and back.dtype.isnative


def test_complex_data_is_refused_not_cast_to_its_real_part():
    # fit cast complex to float64 with a warning, dropping the imaginary part
    for cls in (Standardizer, MinMaxScaler):
        with pytest.raises(TypeError, match="real numbers.*complex128"):
            cls().fit(np.array([[1j], [1.0]]))
        with pytest.raises(TypeError, match="real numbers.*complex64"):
            cls().fit(np.ones((2, 1))).transform(np.ones((2, 1), np.complex64))


@pytest.mark.parametrize("cls", [Standardizer, MinMaxScaler])
def test_scaler_errors(cls):
    with pytest.raises(ValueError, match="not fitted"):
        cls().transform(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        cls().state_dict()
    with pytest.raises(ValueError, match=r"fitted on samples of shape \(2,\)"):
        cls().fit(np.zeros((2, 2))).transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        cls().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="at least one sample"):
        cls().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="n_samples, n_features"):
        cls().fit(np.zeros(3))
    with pytest.raises(TypeError, match="numeric"):
        cls().fit(np.array([["a"]]))
    with pytest.raises(ValueError, match="axis"):
        cls(axis=1)
    with pytest.raises(ValueError, match="feature_range"):
        MinMaxScaler((1, 1))
    with pytest.raises(ValueError, match=r"MinMaxScaler expected feature_range's bounds in "
                                         r"\(-inf, inf\), received inf"):
        MinMaxScaler((0, np.inf))  # it used to give x - x_min
    # float() took True as 1.0 and "1" as 1.0; a scalar failed as "not iterable".
    with pytest.raises(TypeError, match="feature_range's bounds as a real number, received True"):
        MinMaxScaler((0, True))
    with pytest.raises(TypeError, match="feature_range's bounds as a real number, received '1'"):
        MinMaxScaler((0, "1"))
    with pytest.raises(TypeError, match=r"feature_range as a pair \(low, high\), received 1"):
        MinMaxScaler(1)
    assert MinMaxScaler(np.array([-1, 1])).feature_range == (-1.0, 1.0)
    with pytest.raises(ValueError, match="statistics overflow float64"):
        cls().fit(np.array([[-1e308], [1e308]]))  # NaN or zeros, with warnings only


@given(y=st.lists(st.integers(0, 4), min_size=1, max_size=30))
def test_one_hot_rows_pick_the_label(y):
    encoded = one_hot(y, 5)
    assert encoded.shape == (len(y), 5) and encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded.argmax(axis=1), y)
    np.testing.assert_array_equal(encoded.sum(axis=1), 1)
    assert one_hot(y).shape == (len(y), max(y) + 1)


def test_one_hot_in_the_other_byte_order_is_native():
    # it returned ">f4" rows, which the kernels (Numba) refuse when called directly
    other = np.dtype(np.float32).newbyteorder()               # not this machine's order
    encoded = one_hot([2, 0], 3, dtype=other)
    assert encoded.dtype == np.dtype(np.float32) and encoded.dtype.isnative
    np.testing.assert_array_equal(encoded, [[0, 0, 1], [1, 0, 0]])
    assert one_hot([1], 2, dtype="float64").dtype == np.float64


def test_one_hot_reads_a_column_of_labels_as_keras_does():
    # labels of shape (n, 1) were refused ("expected labels of shape (2,)");
    # Keras' to_categorical drops a trailing axis of 1
    column = np.array([[2], [0], [1]])
    np.testing.assert_array_equal(one_hot(column, 3), one_hot([2, 0, 1], 3))
    np.testing.assert_array_equal(one_hot(column), np.eye(3, dtype=np.float32)[[2, 0, 1]])
    assert one_hot(np.zeros((0, 1), int), 2).shape == (0, 2)
    for shape in [(2, 2), (1, 2), (2, 1, 1), ()]:
        with pytest.raises(ValueError, match=re.escape(
                f"one_hot expected labels of shape (n_samples,) or (n_samples, 1), "
                f"received {shape}")):
            one_hot(np.zeros(shape, int), 3)


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
        one_hot([0, 3], 3)
    with pytest.raises(ValueError, match="n_classes"):
        one_hot(np.array([], dtype=int))
    with pytest.raises(TypeError, match="integer"):
        one_hot([0.5, 1.0], 2)
    with pytest.raises(ValueError, match="one_hot expected n_classes as a positive integer, "
                                         "received 0"):
        one_hot(np.array([], dtype=int), 0)
    with pytest.raises(TypeError, match="n_classes as a positive integer"):
        one_hot([0, 1], 2.0)


@given(counts=st.lists(st.integers(2, 40), min_size=2, max_size=5),
       fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_stratified_split_keeps_class_shares(counts, fraction, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.arange(len(y))
    n_val = math.ceil(fraction * len(y))
    assume(len(counts) <= n_val <= len(y) - len(counts))  # a sample of each class in each
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x, y, fraction, stratify=True, seed=seed)
    assert len(x_val) == math.ceil(fraction * len(y))
    np.testing.assert_array_equal(np.sort(np.concatenate([x_tr, x_val])), x)
    np.testing.assert_array_equal(y[x_val], y_val)
    got = np.bincount(y_val, minlength=len(counts))
    exact = np.array(counts) * len(y_val) / len(y)
    # off by less than one sample, and by one more for each class whose share is
    # below 1 in a part (it gets one there, paid for by the others)
    forced = int(((exact < 1) | (exact > np.array(counts) - 1)).sum())
    np.testing.assert_array_less(np.abs(got - exact), 1.0 + forced)
    # every class in both parts (its share may round to 0 in one of them)
    assert set(y_tr) == set(y_val) == set(range(len(counts)))


def test_a_stratified_split_holds_every_class_in_both_parts():
    # 10 training samples of 100, 94 of them class 3: the shares (0.2 of classes 0-2)
    # rounded to 0 and training held class 3 alone, unsaid, as scikit-learn's does
    y = np.array([0] * 2 + [1] * 2 + [2] * 2 + [3] * 94)
    for val_size in (0.9, 90, 96, 4, 0.04):
        (_, y_tr), (_, y_val) = train_val_split(np.arange(100), y, val_size, stratify=True,
                                                seed=0)
        assert set(y_tr) == set(y_val) == {0, 1, 2, 3}
    (_, y_tr), (_, y_val) = train_val_split(np.arange(100), y, 0.9, stratify=True, seed=0)
    np.testing.assert_array_equal(np.bincount(y_tr), [1, 1, 1, 7])
    np.testing.assert_array_equal(np.bincount(y_val), [1, 1, 1, 87])
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return
    y_tr = train_test_split(np.arange(100), y, test_size=0.9, stratify=y, random_state=0)[2]
    assert set(y_tr) == {3}  # what tinynet does not copy


def test_split_seed_shuffle_and_count():
    x, y = np.arange(50), np.arange(50) % 3
    a = train_val_split(x, y, 10, seed=4)
    b = train_val_split(x, y, 10, seed=4)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    assert len(a[1][0]) == 10 and len(a[0][0]) == 40
    (_, _), (x_val, _) = train_val_split(x, y, 0.2, shuffle=False)
    np.testing.assert_array_equal(x_val, np.arange(40, 50))


@pytest.mark.parametrize("n, fraction, expected", [
    (10, 0.25, 3), (10, 0.35, 4), (10, 0.45, 5), (10, 0.05, 1), (5, 0.1, 1), (30, 0.05, 2),
    (100, 0.125, 13), (1437, 0.1, 144), (100, 0.07, 8)])
def test_a_fractional_split_takes_as_many_as_scikit_learn(n, fraction, expected):
    # round() halved to even (0.25 of 10 was 2, 0.125 of 100 was 12) and left 0.1
    # of 5 samples empty: a ValueError where scikit-learn gives 1
    # (stratified, each part needs one sample of each of the 2 classes)
    for stratify in (False, True) if expected >= 2 else (False,):
        (x_tr, _), (x_val, _) = train_val_split(np.arange(n), np.arange(n) % 2, fraction,
                                                stratify=stratify, seed=0)
        assert len(x_val) == expected and len(x_tr) == n - expected
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return
    assert len(train_test_split(np.arange(n), test_size=fraction, random_state=0)[1]) == \
        expected


def test_a_stratified_split_refuses_a_class_of_one_sample():
    # the lone sample went to the training part, the class absent from validation;
    # scikit-learn refuses such a class ("The least populated class in y has only
    # 1 member")
    y = np.array([0] * 5 + [1] * 4 + [2] + [7])
    with pytest.raises(ValueError, match=r"expected at least 2 samples of every class \(one "
                                         r"for each part\), received 1 sample of 2 "
                                         r"class\(es\): \[2, 7\]; split without stratify"):
        train_val_split(np.arange(11), y, 0.3, stratify=True, seed=0)
    assert len(train_val_split(np.arange(11), y, 0.3, seed=0)[1][0]) == 4


@pytest.mark.parametrize("val_size, part, size", [(3, "validation", 3), (0.2, "validation", 3),
                                                  (9, "training", 3), (0.8, "training", 2)])
def test_a_stratified_split_refuses_a_part_too_small_for_every_class(val_size, part, size):
    # 3 validation samples of 4 classes left one class out of validation, unsaid;
    # scikit-learn refuses it ("The test_size = 3 should be greater or equal to the
    # number of classes = 4"), and a training part too small likewise
    x, y = np.arange(12), np.repeat(np.arange(4), 3)
    with pytest.raises(ValueError, match=rf"expected at least 4 {part} samples \(one of each "
                                         rf"of the 4 classes\), received {size} of the 12 "
                                         rf"samples; split without stratify, or (raise|lower) "
                                         rf"val_size"):
        train_val_split(x, y, val_size, stratify=True, seed=0)
    for val_size in (4, 8):  # the limits: one of each class in the smaller part
        (_, y_tr), (_, y_val) = train_val_split(x, y, val_size, stratify=True, seed=0)
        assert set(y_tr) == set(y_val) == {0, 1, 2, 3}
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        return
    for val_size, ok in ((3, False), (4, True), (8, True), (9, False)):
        try:
            train_test_split(x, y, test_size=val_size, stratify=y, random_state=0)
        except ValueError as exc:
            assert not ok and "should be greater or equal to the number of classes" in str(exc)
        else:
            assert ok


@pytest.mark.parametrize("width", [5, 3])
def test_a_list_of_rows_is_split_as_one_array_as_sequential_fit_reads_it(width):
    # 5 rows of width 5 (or 3) were read as 5 inputs and split along the features
    rows = [np.arange(width, dtype=np.float32) + i for i in range(5)]
    y = np.arange(5) % 2
    (xt, yt), (xv, yv) = train_val_split(rows, y, 1, shuffle=False)
    assert isinstance(xt, np.ndarray) and xt.shape == (4, width)
    np.testing.assert_array_equal(xt, np.asarray(rows)[:4])
    np.testing.assert_array_equal(xv, np.asarray(rows)[4:])


def test_a_list_of_arrays_of_one_shape_is_read_by_the_number_of_samples():
    images, y = [np.full((4, 4), i, np.float32) for i in range(6)], np.arange(6) % 2
    (xt, _), _ = train_val_split(images, y, 1, shuffle=False)     # 6 samples
    assert isinstance(xt, np.ndarray) and xt.shape == (5, 4, 4)
    inputs = [np.zeros((6, 4)), np.ones((6, 4))]                     # 2 inputs
    (xt, _), _ = train_val_split(inputs, y, 1, shuffle=False)
    assert isinstance(xt, list) and [a.shape for a in xt] == [(5, 4), (5, 4)]
    one_hot_rows = [np.eye(3)[i % 3] for i in range(6)]              # 6 samples
    (_, yt), _ = train_val_split(np.zeros((6, 2)), one_hot_rows, 1, shuffle=False)
    assert isinstance(yt, np.ndarray) and yt.shape == (5, 3)
    (_, yt), _ = train_val_split(np.zeros((6, 2)), (y, y * 2), 1, shuffle=False)  # 2 tasks
    assert isinstance(yt, tuple) and [a.shape for a in yt] == [(5,), (5,)]
    with pytest.raises(ValueError, match=r"cannot tell how to read x, a list of 3 arrays "
                                         r"of shape \(3, 4\): as 3 samples .* or as 3 inputs"):
        train_val_split([np.zeros((3, 4))] * 3, np.arange(3), 1)
    with pytest.raises(ValueError, match=r"cannot tell how to read y, .* np.asarray\(y\)"):
        train_val_split(np.zeros((3, 2)), [np.eye(3)[i] for i in range(3)], 1)


class _ArrayLike:
    """An object NumPy converts through ``__array__`` (as pandas objects)."""

    def __init__(self, array):
        self.array = np.asarray(array)

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):  # rows come back as another _ArrayLike
        return _ArrayLike(self.array[index])


def test_an_object_with_array_comes_back_an_ndarray_and_can_stratify():
    x, y = _ArrayLike(np.arange(20.).reshape(10, 2)), _ArrayLike(np.arange(10) % 2)
    for stratify in (False, True):
        (xt, yt), (xv, yv) = train_val_split(x, y, 0.3, stratify=stratify, seed=0)
        assert all(type(a) is np.ndarray for a in (xt, yt, xv, yv))
        np.testing.assert_array_equal(xt[:, 0] / 2 % 2, yt)   # rows stay together
        np.testing.assert_array_equal(xv[:, 0] / 2 % 2, yv)
        assert len(yv) == 3 and (set(yv.tolist()) == {0, 1} or not stratify)


def test_pandas_objects_come_back_ndarrays_and_can_stratify():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(np.arange(20.).reshape(10, 2), columns=["a", "b"],
                      index=np.arange(10) * 3)
    s = pd.Series(np.arange(10) % 2, index=np.arange(10) * 3)
    for stratify in (False, True):
        (xt, yt), (xv, yv) = train_val_split(df, s, 0.3, stratify=stratify, seed=0)
        assert all(type(a) is np.ndarray for a in (xt, yt, xv, yv))
        np.testing.assert_array_equal(xv[:, 0] / 2 % 2, yv)


def test_each_argument_is_walked_once_and_every_leaf_comes_back_an_ndarray(monkeypatch):
    # the other argument of a list of arrays of one shape was walked to count its
    # samples, then both again to align them, and again to np.asarray the leaves
    from tinynet.data import batches
    walks, walk = [], batches._numbers_as_arrays

    def spy(arrays, path="arrays", *args, **kwargs):
        walks.append(path)
        return walk(arrays, path, *args, **kwargs)

    monkeypatch.setattr(batches, "_numbers_as_arrays", spy)
    images, y = [np.full((4, 4), i, np.float32) for i in range(6)], np.arange(6) % 2
    one_hot_rows = [np.eye(2)[label] for label in y]
    for x, targets in ((images, {"a": _ArrayLike(y)}),                 # x read by y
                       (_ArrayLike(np.zeros((6, 2))), one_hot_rows),    # y read by x
                       (_ArrayLike(np.zeros((6, 2))), [_ArrayLike(y), y])):
        walks.clear()
        (x_tr, y_tr), (x_val, y_val) = train_val_split(x, targets, 1, shuffle=False)
        assert sorted(path for path in walks if path in ("x", "y")) == ["x", "y"]
        for part, n in (((x_tr, y_tr), 5), ((x_val, y_val), 1)):
            assert all(type(a) is np.ndarray and len(a) == n for a in _leaves(part))


def _leaves(arrays):
    if isinstance(arrays, dict):
        arrays = list(arrays.values())
    if isinstance(arrays, (list, tuple)):
        return [leaf for item in arrays for leaf in _leaves(item)]
    return [arrays]


def test_split_takes_several_inputs_and_tasks_as_fit_does():
    # np.asarray(x) failed: [x1, x2] with NumPy's "inhomogeneous shape", a dict of
    # targets as shape (), [y, y] as shape (2, 10)
    x1, x2 = np.arange(30.).reshape(10, 3), np.arange(20.).reshape(10, 2) * 2
    y = np.arange(10) % 3
    (xt, yt), (xv, yv) = train_val_split(x1, y, 0.3, seed=0)
    for x, targets in (([x1, x2], y), (x1, {"a": y, "b": y * 10}), ((x1, x2), [y, y * 10]),
                       ({"img": x1}, (y, [y, y * 10]))):
        (x_tr, y_tr), (x_val, y_val) = train_val_split(x, targets, 0.3, seed=0)
        assert type(x_tr) is type(x_val) is type(x) and type(y_tr) is type(targets)
        # every leaf split by the same rows as the one-array split
        first = lambda a: a if isinstance(a, np.ndarray) else first(  # noqa: E731
            next(iter(a.values())) if isinstance(a, dict) else a[0])
        np.testing.assert_array_equal(first(x_tr), xt)
        np.testing.assert_array_equal(first(x_val), xv)
        np.testing.assert_array_equal(first(y_tr), yt)
        np.testing.assert_array_equal(first(y_val), yv)
    (x_tr, _), (x_val, y_val) = train_val_split([x1, x2], {"a": y, "b": y * 10}, 0.3, seed=0)
    np.testing.assert_array_equal(x_tr[1][:, 0], x_tr[0][:, 0] * 4 / 3)   # rows stay together
    np.testing.assert_array_equal(y_val["b"], y_val["a"] * 10)
    (_, y_tr), _ = train_val_split([x1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], [0] * 10, 0.3, seed=0)
    assert isinstance(y_tr, np.ndarray) and y_tr.shape == (7,)  # a list of numbers: one array
    # tasks as lists of labels, as tinynet.mtl.Model.fit takes them (they were read
    # as one (2, 10) array: "received 2 in y")
    for tasks in ([y.tolist(), (y * 10).tolist()], (y.tolist(), (y * 10).tolist())):
        (_, y_tr), (_, y_val) = train_val_split(x1, tasks, 0.3, seed=0)
        assert type(y_tr) is type(tasks) and len(y_tr) == 2
        np.testing.assert_array_equal(y_tr[0], yt)
        np.testing.assert_array_equal(y_val[1], yv * 10)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros(5), np.zeros(4)), {}, ValueError, "same number of samples"),
    ((np.zeros(5), np.zeros(5), 1.5), {}, ValueError, r"fraction val_size in \(0, 1\)"),
    ((np.zeros(5), np.zeros(5), 5), {}, ValueError, "between 1 and 4"),
    ((np.zeros(1), np.zeros(1), 0.5), {}, ValueError,
     r"expected at least 2 samples \(one for each part\), received 1$"),
    ((np.zeros(0), np.zeros(0), 1), {}, ValueError, r"at least 2 samples .* received 0$"),
    ((np.zeros(5), np.zeros(5), "a"), {}, TypeError, "val_size"),
    ((np.zeros(4), np.zeros((4, 2)), 0.5), {"stratify": True}, ValueError, "class labels"),
    ((np.zeros(4), {"a": np.zeros(4)}, 0.5), {"stratify": True}, ValueError,
     r"expected y as one array of class labels of shape \(4,\), received a dict of arrays"),
    (([np.zeros(4), np.zeros(3)], np.zeros(4)), {}, ValueError,
     r"expected every array to have the same number of samples, 4 \(like x\[0\]\), "
     r"received 3 in x\[1\]"),
    ((np.zeros(4), [np.zeros(4), 1.0]), {}, ValueError, r"received a scalar at y\[1\]"),
    # a list of arrays of one shape, read by the other's number of samples as
    # several arrays, which then do not fit it: x's first leaf is the measure
    (([np.zeros((3, 4))] * 2, np.zeros(5)), {}, ValueError,
     r"same number of samples, 3 \(like x\[0\]\), received 5 in y$"),
    ((np.zeros((5, 2)), [np.zeros(3)] * 2), {}, ValueError,
     r"same number of samples, 5 \(like x\), received 3 in y\[0\]$"),
    (([np.zeros((3, 4))] * 2, (np.zeros(3), np.zeros(4))), {}, ValueError,
     r"same number of samples, 3 \(like y\[0\]\), received 4 in y\[1\]$"),
    ((np.zeros(4), None), {}, ValueError, r"expected y as an array of shape \(n_samples, "
     r"\.\.\.\), or a dict, list or tuple of them, received None \(NoneType\)$"),
    ((np.zeros(4), 3), {}, ValueError, r"expected y as an array .* received 3 \(int\)$"),
    ((2.0, np.zeros(4)), {}, ValueError, r"expected x as an array .* received 2.0 \(float\)$"),
    ((np.zeros(4), np.zeros(4), 0.5), {"stratify": True, "shuffle": False}, ValueError,
     "shuffle"),
    ((np.zeros(4), np.zeros(4), 0.5), {"shuffle": "False"}, TypeError,
     "shuffle as True or False"),
    ((np.zeros(4), np.zeros(4), 0.5), {"stratify": "no"}, TypeError,
     "stratify as True or False"),
])
def test_split_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_val_split(*args, **kwargs)


@pytest.mark.parametrize("feature_range", [(-1e308, 1e308), (0, 5e-309), [-1.7e308, 1e308]])
def test_a_feature_range_whose_width_float64_cannot_divide_by_is_refused(feature_range):
    # (-1e308, 1e308): the width overflowed, every scale x/inf = 0 became 1,
    # and transform gave the data back unscaled ([0, 10] for [0, 10]); a
    # subnormal width makes a constant feature's scale 1 / width infinite
    with pytest.raises(ValueError, match=r"MinMaxScaler expected feature_range \(low, high\) "
                                         r"with a width .* float64 holds and divides by"):
        MinMaxScaler(feature_range)
    with pytest.raises(ValueError, match="feature_range"):
        MinMaxScaler.from_state_dict({"offset": np.zeros(1), "scale": np.ones(1),
                                      "axis": np.asarray(0),
                                      "feature_range": np.array(feature_range)})
    # the widest and narrowest widths it divides by
    for bounds, spread in (((-8e307, 8e307), 10.0), ((0, 6e-309), 1e-300)):
        MinMaxScaler(bounds).fit(np.array([[0.0, 1.0], [spread, 1.0]]))


@pytest.mark.parametrize("make, x, match", [
    (lambda: Standardizer(), [[0.0], [1e-200]], r"spread 1e-200 or less\); rescale"),
    (lambda: Standardizer(axis=None), [[0.0, 0.0], [1e-200, 0.0]], "spread 1e-200"),
    (lambda: MinMaxScaler((0, 1e300)), [[0.0, 5.0], [1e-30, 5.0]],
     r"spread 1e-30 or less\); rescale the data first \(or use a feature_range of"),
])
def test_a_varying_feature_whose_scale_underflows_is_refused_not_left_unscaled(make, x, match):
    # the scale underflowed to 0 and fit replaced it by 1, as if the feature
    # were constant: transform then returned it merely shifted
    with pytest.raises(ValueError, match=f"fit: the scale of 1 feature\\(s\\) that are not "
                                         f"constant underflows float64 to 0.*{match}"):
        make().fit(np.array(x))
    # a constant feature is no underflow: its scale is set, not computed
    assert make().fit(np.array(x)[:1]).scale_.min() > 0


@pytest.mark.parametrize("feature_range, expected", [
    ((0, 1), [1.0, -1.0]), ((-1, 1), [1.0, -3.0]), ((0, 10), [10.0, -10.0]),
    ((2, 2.5), [2.5, 1.5])])
def test_a_constant_feature_takes_a_range_of_1_as_in_scikit_learn(feature_range, expected):
    # its scale was 1 whatever feature_range: (-1, 1) mapped 6 and 4 to 0 and -2
    # where scikit-learn gives 1 and -3
    x_train = np.array([[0.0, 5.0], [10.0, 5.0]])  # feature 1 is constant (5)
    x_test = np.array([[5.0, 6.0], [5.0, 4.0]])
    scaler = MinMaxScaler(feature_range).fit(x_train)
    out = scaler.transform(x_test)
    np.testing.assert_allclose(out[:, 1], expected)
    np.testing.assert_allclose(scaler.transform(x_train)[:, 1], feature_range[0])
    np.testing.assert_allclose(scaler.inverse_transform(out), x_test)
    restored = MinMaxScaler.from_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(restored.transform(x_test), out)
    try:
        from sklearn.preprocessing import MinMaxScaler as SKMinMaxScaler
    except ImportError:
        return
    np.testing.assert_allclose(out, SKMinMaxScaler(feature_range=feature_range)
                               .fit(x_train).transform(x_test))


def test_a_global_scalers_statistics_are_0d_arrays_as_from_state_dict():
    # the scalers' underflow check once left MinMaxScaler(axis=None).scale_ a
    # NumPy scalar (no item assignment), unlike one rebuilt from its state_dict
    x = np.array([[0.0, 1.0], [2.0, 5.0]])
    for scaler in (MinMaxScaler(axis=None).fit(x), Standardizer(axis=None).fit(x)):
        assert isinstance(scaler.scale_, np.ndarray) and scaler.scale_.shape == ()
        again = type(scaler).from_state_dict(scaler.state_dict())
        assert type(again.scale_) is type(scaler.scale_)


def test_masked_arrays_are_refused_by_the_scalers_and_the_split():
    # np.asarray dropped the mask: the statistics, or the parts, held the data
    # under it (1e6 here) without a word
    x = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0], [1e6, 6.0], [5.0, 8.0]],
                           mask=[[0, 0], [0, 0], [1, 0], [0, 0]])
    match = r"received a masked array .* x\.filled\(x\.mean\(axis=0\)\)"
    for cls in (Standardizer, MinMaxScaler):
        with pytest.raises(TypeError, match=f"{cls.__name__} expected x as a plain array, "
                                            f"{match}"):
            cls().fit(x)
    with pytest.raises(TypeError, match="train_val_split expected each array of x and y as a "
                                        "plain array, " + match):
        train_val_split(x, np.arange(4), 0.5, seed=0)
    plain = Standardizer().fit(x.filled(x.mean(axis=0)))
    np.testing.assert_allclose(plain.offset_, [3.0, 5.0])
