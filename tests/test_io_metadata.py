"""Metadata kept with a saved model (e.g. the preprocessing its inputs need)."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import Dense


def _model():
    model = tn.Sequential([Dense(3, input_dim=4, seed=0)])
    return model


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "m.npz"
    _model().save(path, metadata={"preprocessing": {"scale": 255.0}, "classes": ["a", "b"]})
    loaded = tn.load(path)
    assert loaded.metadata == {"preprocessing": {"scale": 255.0}, "classes": ["a", "b"]}
    # a loaded model keeps its metadata when saved again
    loaded.save(tmp_path / "again.npz")
    assert tn.load(tmp_path / "again.npz").metadata == loaded.metadata


def test_no_metadata_loads_as_empty_dict(tmp_path):
    path = tmp_path / "m.npz"
    _model().save(path)
    assert tn.load(path).metadata == {}


@pytest.mark.parametrize("bad", [["not", "a", "dict"], {"x": np.zeros(2)}, {"x": float("nan")}])
def test_metadata_must_be_a_json_object(tmp_path, bad):
    with pytest.raises(TypeError, match="metadata"):
        _model().save(tmp_path / "m.npz", metadata=bad)
    assert not (tmp_path / "m.npz").exists()


# ------------------------------------------------------------- extra arrays
def test_extra_arrays_round_trip_and_make_a_version_3_file(tmp_path):
    from tests.io_helpers import rewrite_header

    extra = {"lrs/0": np.arange(6, dtype=np.float32).reshape(2, 3), "steps": np.int64(7),
             "mask": np.array([True, False]),
             "col": np.zeros((3, 2), np.float64)[:, 0]}  # not contiguous
    path = tn.io.save(_model(), tmp_path / "m.npz", extra_arrays=extra)
    loaded = tn.load(path)
    assert list(loaded.extra_arrays) == list(extra)
    for name, value in extra.items():
        np.testing.assert_array_equal(loaded.extra_arrays[name], value)
        assert loaded.extra_arrays[name].dtype == np.asarray(value).dtype
        assert loaded.extra_arrays[name].shape == np.shape(value)  # a 0-d one stays 0-d
    seen = {}
    rewrite_header(path, tmp_path / "copy.npz", lambda h, a: seen.update(h))
    assert seen["version"] == 3 and seen["extra_arrays"] == list(extra)
    # without extra arrays a Sequential file stays version 1, which older readers take
    plain = tn.io.save(_model(), tmp_path / "plain.npz")
    seen.clear()
    rewrite_header(plain, tmp_path / "copy2.npz", lambda h, a: seen.update(h))
    assert seen["version"] == 1 and "extra_arrays" not in seen
    assert tn.load(plain).extra_arrays == {}


@pytest.mark.parametrize("bad, error, match", [
    (["not a dict"], TypeError, "extra_arrays as a dict"),
    ({"": np.zeros(2)}, TypeError, "names as non-empty str"),
    ({3: np.zeros(2)}, TypeError, "names as non-empty str"),
    ({"x": np.array(["a"])}, TypeError, r"extra_arrays\['x'\] as a numeric array"),
    ({"x": np.array([object()])}, TypeError, "numeric array"),
    ({"x": np.zeros(2, complex)}, TypeError, "numeric array"),
])
def test_extra_arrays_that_a_file_cannot_hold_are_refused_before_writing(tmp_path, bad, error,
                                                                         match):
    with pytest.raises(error, match=match):
        tn.io.save(_model(), tmp_path / "m.npz", extra_arrays=bad)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("change, match", [
    (lambda h, a: h.update(extra_arrays="x"), "list of distinct names"),
    (lambda h, a: h.update(extra_arrays=["a", "a"]), "list of distinct names"),
    (lambda h, a: h.update(extra_arrays=["a", "b"]), "lacks the extra arrays"),
])
def test_a_malformed_extra_arrays_list_is_a_model_file_error(tmp_path, change, match):
    from tests.io_helpers import rewrite_header

    path = tn.io.save(_model(), tmp_path / "m.npz", extra_arrays={"a": np.zeros(2)})
    bad = rewrite_header(path, tmp_path / "bad.npz", change)
    with pytest.raises(tn.io.ModelFileError, match=match):
        tn.load(bad)


def test_a_loaded_model_saved_again_keeps_its_extra_arrays_as_it_keeps_its_metadata(tmp_path):
    # save defaulted metadata to the model's own but extra_arrays to none: a
    # loaded model saved again lost its arrays and kept the metadata naming them
    extra = {"lrs/0": np.arange(3.0), "steps": np.int64(7)}
    path = tn.io.save(_model(), tmp_path / "m.npz", metadata={"a": 1}, extra_arrays=extra)
    saves = {"model.save": lambda m, p: m.save(p), "io.save": lambda m, p: tn.io.save(m, p),
             # the two default each on its own, as metadata always did
             "new metadata": lambda m, p: m.save(p, metadata={"b": 2})}
    for how, save in saves.items():
        again = tn.load(save(tn.load(path), tmp_path / f"{how}.npz"))
        assert list(again.extra_arrays) == list(extra), how
        for name, value in extra.items():
            np.testing.assert_array_equal(again.extra_arrays[name], value)
            assert again.extra_arrays[name].dtype == np.asarray(value).dtype
        assert again.metadata == ({"b": 2} if how == "new metadata" else {"a": 1})
    replaced = tn.load(tn.load(path).save(tmp_path / "r.npz", extra_arrays={"x": np.ones(2)}))
    assert list(replaced.extra_arrays) == ["x"] and replaced.metadata == {"a": 1}
    assert tn.load(tn.load(path).save(tmp_path / "none.npz", extra_arrays={})).extra_arrays == {}


def test_a_checkpoint_of_a_loaded_model_keeps_its_extra_arrays(tmp_path):
    # ModelCheckpoint saves through model.save: a run resumed from a file
    # with extra arrays writes checkpoints that keep them
    path = tn.io.save(_model(), tmp_path / "m.npz", extra_arrays={"lrs/0": np.arange(3.0)})
    model = tn.load(path)
    model.compile("sgd", loss="mse")
    x = np.random.default_rng(0).random((8, 4))
    checkpoint = tn.callbacks.ModelCheckpoint(tmp_path / "ckpt.npz", monitor="loss")
    model.fit(x, x[:, :3], epochs=1, verbose=0, callbacks=[checkpoint], seed=0)
    np.testing.assert_array_equal(tn.load(tmp_path / "ckpt.npz").extra_arrays["lrs/0"],
                                  np.arange(3.0))


def test_a_loaded_multi_task_model_saved_again_keeps_its_extra_arrays(tmp_path):
    i = tn.mtl.Input(shape=(4,))
    h = Dense(3, seed=0)(i)
    model = tn.mtl.Model(i, {"a": Dense(2, seed=1)(h), "b": Dense(1, seed=2)(h)})
    path = model.save(tmp_path / "m.npz", extra_arrays={"k": np.arange(2)})
    again = tn.load(tn.load(path).save(tmp_path / "again.npz"))
    assert isinstance(again, tn.mtl.Model)
    np.testing.assert_array_equal(again.extra_arrays["k"], np.arange(2))
