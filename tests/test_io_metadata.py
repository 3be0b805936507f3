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
