"""What every layer promises: exports, dtype, untouched inputs, configs,
freezing and input errors."""

import json

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers.base import LAYER_CLASSES, layer_from_dict, layer_to_dict

L = tn.layers

FACTORIES = {
    "Dense": lambda: L.Dense(3, activation="elu"),
    "Identity": L.Identity, "ReLU": L.ReLU, "LeakyReLU": lambda: L.LeakyReLU(0.2),
    "ELU": L.ELU, "GELU": L.GELU, "SiLU": L.SiLU, "Sigmoid": L.Sigmoid, "Tanh": L.Tanh,
    "Softmax": L.Softmax, "Dropout": lambda: L.Dropout(0.3, seed=1),
    "BatchNorm": L.BatchNorm, "LayerNorm": L.LayerNorm, "Flatten": L.Flatten,
}


def test_exports():
    expected = {"Layer", "Dense", "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU",
                "Sigmoid", "Tanh", "Softmax", "Dropout", "BatchNorm", "LayerNorm", "Flatten"}
    assert expected <= set(L.__all__)
    for name in expected - {"Layer"}:
        assert LAYER_CLASSES[name] is getattr(L, name)


def _io(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 5)).astype(dtype), rng


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("training", [False, True])
def test_dtype_kept_and_inputs_untouched(name, training):
    x, rng = _io()
    layer = FACTORIES[name]()
    x0 = x.copy()
    y = layer.forward(x, training=training)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy0 = dy.copy()
    dx = layer.backward(dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32, (y.dtype, dx.dtype)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    assert all(p.dtype == np.float32 for p in layer.parameters())


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_float64_works(name):
    x, rng = _io(dtype=np.float64)
    layer = FACTORIES[name]()
    y = layer.forward(x, training=True)
    assert y.dtype == np.float64 and layer.backward(np.ones_like(y)).dtype == np.float64


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_config_round_trip_after_build(name):
    x, _ = _io()
    layer = FACTORIES[name]()
    layer.forward(x)
    clone = layer_from_dict(json.loads(json.dumps(layer_to_dict(layer))))  # JSON-safe
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    assert clone.built and clone.output_shape == layer.output_shape
    assert [p.shape for p in clone.parameters()] == [p.shape for p in layer.parameters()]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_frozen_layer_passes_gradients(name):
    x, rng = _io(dtype=np.float64)
    layer = FACTORIES[name]()
    layer.forward(x)
    dy = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dy)
    layer.trainable = False
    assert not layer.trainable and all(not p.trainable for p in layer.parameters())
    # inference mode: a frozen layer computes exactly what it did before
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), dx)
    assert layer.get_config()["trainable"] is False


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_input_errors_name_the_layer(name):
    layer = FACTORIES[name]()
    layer.name = "the_layer"
    with pytest.raises(TypeError, match=f"{type(layer).__name__} 'the_layer' expected input "
                                        f"of a floating-point dtype, received dtype int32"):
        layer.forward(np.ones((2, 5), np.int32))
    layer.forward(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=rf"{type(layer).__name__} 'the_layer' expected input "
                                         rf"of shape \(batch, 5\), received \(2, 6\)"):
        layer.forward(np.ones((2, 6), np.float32))
