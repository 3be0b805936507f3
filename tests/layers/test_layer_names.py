"""Automatic layer names never collide with explicit ones (e.g. after loading)."""

import tinynet as tn
from tinynet.layers import Dense, ReLU


class NamingProbe(tn.layers.Layer):
    """A class no other test instantiates, so its name counter starts fresh
    whatever ran before (Dense's counter depends on test order)."""


def test_auto_name_skips_past_an_explicit_name():
    assert NamingProbe().name == "naming_probe_1"
    NamingProbe(name="naming_probe_41")
    assert NamingProbe().name == "naming_probe_42"


def test_loaded_model_then_new_layer_gets_a_fresh_name(tmp_path):
    model = tn.Sequential([Dense(4, input_dim=3), ReLU(), Dense(2)])
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = tn.load(path)
    fresh = Dense(5)
    assert fresh.name not in {layer.name for layer in loaded.layers}
