"""The embedded UCI digits: shapes, dtypes, value range, split, licence file."""

from importlib import resources

import numpy as np
import pytest

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


def test_the_maintainer_script_replaces_digits_npz_atomically(tmp_path, monkeypatch):
    # tools/make_digits.py wrote the package's digits.npz in place: a failure
    # part-way (here after the first array) left a broken file behind
    import importlib.util
    import os
    import sys
    import types
    from pathlib import Path

    import numpy.lib._npyio_impl as npyio

    script = Path(__file__).resolve().parents[2] / "tools" / "make_digits.py"
    spec = importlib.util.spec_from_file_location("make_digits", script)
    make_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_digits)
    (x_train, y_train), (x_test, y_test) = load_digits()
    fake = types.ModuleType("sklearn.datasets")
    fake.load_digits = lambda: types.SimpleNamespace(
        data=np.concatenate([x_train, x_test]).astype(np.float64),
        target=np.concatenate([y_train, y_test]))
    monkeypatch.setitem(sys.modules, "sklearn", types.ModuleType("sklearn"))
    monkeypatch.setitem(sys.modules, "sklearn.datasets", fake)
    tmp_path = tmp_path / "data"
    tmp_path.mkdir()
    out = tmp_path / "digits.npz"
    out.write_bytes(b"the old file")
    monkeypatch.setattr(make_digits, "OUT", out)
    write_array, calls = npyio.format.write_array, []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write_array(*args, **kwargs)

    monkeypatch.setattr(npyio.format, "write_array", fail_second)
    try:
        make_digits.main()
    except OSError:
        pass
    assert out.read_bytes() == b"the old file"
    assert os.listdir(tmp_path) == ["digits.npz"]
    monkeypatch.setattr(npyio.format, "write_array", write_array)
    make_digits.main()
    with np.load(out) as data:
        assert data["x_train"].shape == (1437, 64) and data["y_test"].shape == (360,)


def test_the_maintainer_script_reproduces_the_shipped_digits(tmp_path, monkeypatch):
    # the script takes its stratified split from train_val_split; run on
    # scikit-learn's digits it must still write exactly the arrays shipped
    import importlib.util
    from pathlib import Path

    pytest.importorskip("sklearn")
    script = Path(__file__).resolve().parents[2] / "tools" / "make_digits.py"
    spec = importlib.util.spec_from_file_location("make_digits", script)
    make_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_digits)
    monkeypatch.setattr(make_digits, "OUT", tmp_path / "digits.npz")
    make_digits.main()
    shipped = resources.files("tinynet.data").joinpath("digits.npz")
    with np.load(tmp_path / "digits.npz") as made, shipped.open("rb") as f, np.load(f) as ref:
        assert sorted(made.files) == sorted(ref.files)
        for name in ref.files:
            assert made[name].dtype == ref[name].dtype, name
            np.testing.assert_array_equal(made[name], ref[name], err_msg=name)
