"""The embedded UCI digits: shapes, dtypes, value range, split, licence file."""

from importlib import resources

import numpy as np

from tinynet.data import DIGITS_CLASSES, load_digits


def test_shapes_dtypes_and_values():
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert x_train.max() == 16 and x_test.max() <= 16
    assert set(np.unique(y_train)) == set(range(len(DIGITS_CLASSES)))


def test_split_is_stratified_and_disjoint():
    (x_train, y_train), (x_test, y_test) = load_digits()
    train_share = np.bincount(y_train, minlength=10) / len(y_train)
    test_share = np.bincount(y_test, minlength=10) / len(y_test)
    assert np.abs(train_share - test_share).max() < 0.01
    train_rows = {row.tobytes() for row in x_train}
    assert not any(row.tobytes() in train_rows for row in x_test)


def test_returns_fresh_arrays():
    (x_a, _), _ = load_digits()
    x_a[:] = 0
    (x_b, _), _ = load_digits()
    assert x_b.max() == 16


def test_licence_credit_ships_beside_the_data():
    text = resources.files("tinynet.data").joinpath("DIGITS_LICENSE.txt").read_text()
    assert "CC BY 4.0" in text and "Alpaydin" in text and "Kaynak" in text
