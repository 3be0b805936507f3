"""Automatic layer names never collide with explicit ones (e.g. after loading)."""

import pytest

import tinynet as tn
from tests.threads import errors_in_threads
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


def _base(name):
    return name.rsplit("_", 1)[0]


def test_automatic_base_names_of_the_layer_classes():
    # The snake-case rule names every class; MMoE and MMoENet alone give their
    # own (auto_name="mmoe", "mmoe_net"), where the rule would read m_mo_e(_net).
    made = {
        "dense": Dense(2), "re_lu": ReLU(), "leaky_re_lu": tn.layers.LeakyReLU(),
        "layer_norm": tn.layers.LayerNorm(), "batch_norm": tn.layers.BatchNorm(),
        "conv2d": tn.layers.Conv2D(2, 3), "max_pool2d": tn.layers.MaxPool2D(2),
        "cross_stitch": tn.mtl.CrossStitch(), "mmoe": tn.mtl.MMoE(2, 2, 2),
        "sequential": tn.Sequential([Dense(1)]),
        "mmoe_net": tn.mtl.MMoENet((2,), n_experts=2, expert_units=2,
                                     towers={"a": [Dense(1)], "b": [Dense(1)]}),
    }
    assert {base: _base(layer.name) for base, layer in made.items()} == \
        {base: base for base in made}


def test_auto_name_is_the_classs_own_not_inherited():
    class ProbeMixture(tn.mtl.MMoE):
        pass

    class ProbeNamed(NamingProbe, auto_name="probe_named"):
        pass

    assert _base(ProbeMixture(2, 2, 2).name) == "probe_mixture"
    assert _base(ProbeNamed().name) == "probe_named"


def test_auto_name_must_be_an_identifier():
    with pytest.raises(TypeError, match="_BadName expected auto_name as an identifier such "
                                        "as 'mmoe', received 'two words'"):
        class _BadName(tn.layers.Layer, auto_name="two words"):
            pass


def test_layers_made_in_threads_at_once_get_names_of_their_own():
    # the counter's read-modify-write raced: two threads took one automatic
    # name, and a given name noted from a stale read set the counter back, so
    # a thread's next layer repeated a name of its own (257 repeats in 12,000
    # on 4 threads before the lock)
    names = []

    def make():
        for _ in range(3000):
            names.append(Dense(2).name)
            Dense(2, name="dense_1")   # noted: automatic names never repeat it

    assert errors_in_threads(*[make] * 4) == []
    assert len(set(names)) == len(names) == 12_000
