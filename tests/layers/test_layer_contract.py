"""What every layer promises: exports, dtype, untouched inputs, configs,
freezing and input errors."""

import json
import re

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers.base import LAYER_ALIASES, LAYER_CLASSES, layer_from_dict, layer_to_dict

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


@pytest.mark.parametrize("layer", [L.Dropout(0.5, seed=0), L.BatchNorm(),
                                   tn.Sequential([L.Dense(3)])], ids=type)
@pytest.mark.parametrize("training", ["False", 0, None, np.array([True])])
def test_training_must_be_a_bool(layer, training):
    # training="False" used to count as true: dropout at inference
    x, _ = _io()
    for call in (layer.forward, layer):
        with pytest.raises(TypeError, match="expected training as True or False"):
            call(x, training=training)
    assert layer(x, training=np.True_).shape[0] == 4  # NumPy's bool is a bool


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


# Every layer of tinynet.layers with an input it accepts: the dtype contract
# below runs over all of them.
IMAGE_FACTORIES = {
    "Conv2D": lambda: L.Conv2D(2, 3, activation="elu"),
    "Conv2D_gelu": lambda: L.Conv2D(2, 3, activation="gelu"),  # an activation without kernel
    "MaxPool2D": L.MaxPool2D,
    "MaxPool2D_same": lambda: L.MaxPool2D(3, strides=2, padding="same"),
    "AveragePooling2D": lambda: L.AveragePooling2D(3, strides=2, padding="same"),
    "GlobalAveragePooling2D": L.GlobalAveragePooling2D,
    "GlobalMaxPooling2D": L.GlobalMaxPooling2D,
    "Conv2D_dilated": lambda: L.Conv2D(2, 2, dilation_rate=2, activation="relu"),
    "Cropping2D": lambda: L.Cropping2D(((1, 0), (2, 1))),
    "Conv2D_linear": lambda: L.Conv2D(2, 3),  # g is dy itself
}
ALL_FACTORIES = {**FACTORIES, **IMAGE_FACTORIES, "Reshape": lambda: L.Reshape((5, 1)),
                 "Dense_gelu": lambda: L.Dense(3, activation="gelu"),
                 "Dense_linear": lambda: L.Dense(3)}


def _input_for(name, dtype=np.float32):
    rng = np.random.default_rng(0)
    shape = (2, 6, 6, 3) if name in IMAGE_FACTORIES else (4, 5)
    return rng.standard_normal(shape).astype(dtype), rng


def test_dtype_contract_covers_every_layer():
    # Keras' aliases (L.MaxPooling2D is L.MaxPool2D) are covered by their class
    covered = {type(make()).__name__ for make in ALL_FACTORIES.values()}
    assert covered == {getattr(L, name).__name__ for name in L.__all__} - {"Layer"}


def test_every_export_is_a_layer_class_by_its_own_name_or_a_registered_alias():
    for name in set(L.__all__) - {"Layer"}:
        cls = getattr(L, name)
        assert LAYER_CLASSES[LAYER_ALIASES.get(name, name)] is cls, name
        assert (name == cls.__name__) != (name in LAYER_ALIASES), name


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
@pytest.mark.parametrize("training", [False, True])
def test_the_other_float_dtype_is_cast_to_the_layers(name, training):
    # as Keras: a float32 layer casts float64 x and dy to float32 (and a
    # float64 layer float32 ones), in every layer and on every backend
    x32, rng = _input_for(name)
    for layer_dtype, other in ((np.float32, np.float64), (np.float64, np.float32)):
        x = x32.astype(layer_dtype)
        layer = ALL_FACTORIES[name]()
        layer.forward(x, training=training)  # builds in layer_dtype
        if layer.seed is not None:
            layer.set_rng(np.random.default_rng(1))
        y = layer.forward(x, training=training).copy()
        # float32 values, so that both casts of x and dy are exact
        dy = rng.standard_normal(y.shape).astype(np.float32).astype(layer_dtype)
        dx = layer.backward(dy).copy()
        if layer.seed is not None:
            layer.set_rng(np.random.default_rng(1))
        y_other = layer.forward(x.astype(other), training=training)
        dx_other = layer.backward(dy.astype(other))
        assert y_other.dtype == layer_dtype and dx_other.dtype == layer_dtype, name
        np.testing.assert_array_equal(y_other, y)
        np.testing.assert_array_equal(dx_other, dx)


def _forward_backward(layer, x, wrap):
    """Copies of ``y`` and ``dx`` of ``layer`` in training mode on ``wrap(x)``,
    with ``dy = wrap(a ramp)``; its random state reset first."""
    if layer.seed is not None:
        layer.set_rng(np.random.default_rng(1))
    y = layer.forward(wrap(x.copy()), training=True)
    dy = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
    return y.copy(), layer.backward(wrap(dy)).copy()


def _read_only(a):
    a.flags.writeable = False
    return a


class _Tagged(np.ndarray):
    """An ndarray subclass that changes nothing (np.matrix is 2-D only)."""


def _subclassed(a):
    return a.view(np.matrix if a.ndim == 2 else _Tagged)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("wrap", [_read_only, _subclassed], ids=["read-only", "subclass"])
@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
def test_read_only_and_subclassed_arrays_give_the_plain_arrays_results(name, wrap, backend):
    # read-only: dy (np.broadcast_to, a loss's cached array) into a Dense or
    # Conv2D without activation failed to compile in the Numba kernel (a
    # TypingError: its g is dy itself, which the kernel is typed to write);
    # subclasses: np.matrix failed inside NumPy (Softmax: its max() takes no
    # keepdims), and another subclass came back as itself from the NumPy path
    x, _ = _input_for(name)
    with tn.kernels.use_backend(backend):
        layer = ALL_FACTORIES[name]()
        results = [_forward_backward(layer, x, w) for w in (np.asarray, wrap)]
    for plain, other in zip(*results):
        assert type(other) is np.ndarray, name
        assert plain.tobytes() == other.tobytes(), name


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
def test_a_masked_array_is_refused_saying_to_fill_it(name, backend):
    # NumPy's masked semantics on the NumPy path, the data under the mask in
    # the kernels: two BatchNorm moving means for one input
    x, _ = _input_for(name)
    with tn.kernels.use_backend(backend):
        with pytest.raises(TypeError, match=r"expected input as a plain array, received a "
                                            r"masked array .* x\.filled\(x\.mean\(axis=0\)\)"):
            ALL_FACTORIES[name]().forward(np.ma.masked_array(x, mask=x > 1))


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floats_in_the_other_byte_order_are_the_same_floats(name, dtype):
    # ">f4" (a FITS file, np.frombuffer) was refused as "expected float32 or
    # float64 input, received >f4"; now taken as torch and Keras take it
    x, _ = _input_for(name, dtype)
    layer = ALL_FACTORIES[name]()
    layer.forward(x.astype(x.dtype.newbyteorder()))    # unbuilt: builds in dtype, native
    assert layer.dtype == dtype, name
    results = []
    for order in ("=", "S"):                           # native, then swapped
        if layer.seed is not None:
            layer.set_rng(np.random.default_rng(1))
        y = layer.forward(x.astype(x.dtype.newbyteorder(order)), training=True).copy()
        dy = np.linspace(-1, 1, y.size, dtype=dtype).reshape(y.shape)
        dx = layer.backward(dy.astype(dy.dtype.newbyteorder(order)))
        assert y.dtype == dtype and dx.dtype == dtype, name
        results.append((y, dx.copy()))
    for native, swapped in zip(*results):
        assert native.tobytes() == swapped.tobytes(), name


@pytest.mark.parametrize("name", sorted(IMAGE_FACTORIES))
@pytest.mark.parametrize("built", [False, True])
def test_one_image_without_its_batch_axis_is_explained(name, built):
    # an unbuilt layer read (6, 6, 3) as 6 images of per-sample shape (6, 3) and
    # said "received per-sample shape (6, 3)", a shape never passed
    x, _ = _input_for(name)
    layer = ALL_FACTORIES[name]()
    layer.name = "the_layer"
    if built:
        layer.forward(x)
    expected = "(batch, 6, 6, 3)" if built else "(batch, height, width, channels)"
    with pytest.raises(ValueError, match=re.escape(
            f"{type(layer).__name__} 'the_layer' expected input of shape {expected}, received "
            f"(6, 6, 3) (one image needs a batch axis: x[None]")):
        layer.forward(x[0])
    if built:   # a batch of one-channel images without their channel axis: said so
        layer = ALL_FACTORIES[name]()
        layer.forward(x[..., :1])
        with pytest.raises(ValueError, match=re.escape(
                "received (2, 6, 6) (one-channel images need a channel axis: x[..., None])")):
            layer.forward(x[..., 0])


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_other_floating_dtypes_are_refused(name, dtype):
    x, rng = _input_for(name)
    layer = ALL_FACTORIES[name]()
    layer.name = "the_layer"
    expected = (rf"{type(layer).__name__} 'the_layer' expected float32 or float64 input, "
                rf"received {np.dtype(dtype)} \(use x.astype\('float32'\)\)")
    with pytest.raises(TypeError, match=expected):
        layer.forward(x.astype(dtype))  # unbuilt: it would build in that dtype
    y = layer.forward(x, training=True)
    with pytest.raises(TypeError, match=expected):
        layer.forward(x.astype(dtype))
    with pytest.raises(TypeError, match=rf"expected float32 or float64 dy, received "
                                        rf"{np.dtype(dtype)} \(use dy.astype"):
        layer.backward(np.ones_like(y, dtype=dtype))


@pytest.mark.parametrize("dtype", ["float16", np.longdouble, "int32"])
def test_layer_dtype_must_be_float32_or_float64(dtype):
    with pytest.raises(TypeError, match="Dense 'd' expected dtype float32 or float64"):
        L.Dense(3, dtype=dtype, name="d")
    with pytest.raises(TypeError, match="expected dtype float32 or float64"):
        L.Dense(3, input_dim=2).astype(dtype)


@pytest.mark.parametrize("native", [np.float32, np.float64])
def test_a_layer_dtype_in_the_other_byte_order_is_the_native_float(native):
    # the machine's other order (">f4" on little-endian), which was refused
    swapped = np.dtype(native).newbyteorder()
    assert not swapped.isnative
    dtype = L.Dense(3, dtype=swapped).dtype
    assert dtype == native and dtype.isnative


def test_astype_converts_the_activation_of_a_dense_layer():
    layer = L.Dense(3, activation="gelu", input_dim=5)
    x, _ = _io()
    layer.forward(x)  # builds the GELU in float32
    layer.astype(np.float64)
    y = layer.forward(x.astype(np.float64))
    assert y.dtype == np.float64 and layer.backward(np.ones_like(y)).dtype == np.float64


@pytest.mark.parametrize("value", ["no", 0, None])
def test_trainable_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"Dense 'd' expected trainable as True or False, "
                                        rf"received {re.escape(repr(value))}"):
        L.Dense(3, trainable=value, name="d")
    layer = L.Dense(3, name="d")
    with pytest.raises(TypeError, match="expected trainable as True or False"):
        layer.trainable = value
    assert layer.trainable is True
    layer.trainable = np.bool_(False)
    assert layer.trainable is False


@pytest.mark.parametrize("seed, error", [("a", TypeError), (1.5, TypeError), (True, TypeError),
                                         ([1, 2], TypeError), (-1, ValueError)])
@pytest.mark.parametrize("name", ["Dense", "Dropout"])
def test_a_bad_seed_is_refused_when_the_layer_is_made(name, seed, error):
    # it used to be kept, and failed at the first forward pass in NumPy's
    # SeedSequence ("SeedSequence expects int or sequence of ints ..."), or was
    # taken (True, a list) and written to the config
    make = {"Dense": lambda **kw: L.Dense(3, **kw), "Dropout": lambda **kw: L.Dropout(0.5, **kw)}
    with pytest.raises(error, match=rf"{name} 'the_layer' expected seed as None or a "
                                    rf"non-negative integer, received {re.escape(repr(seed))}"):
        make[name](seed=seed, name="the_layer")
    layer = make[name](seed=np.int64(3))
    assert layer.seed == 3 and json.dumps(layer.get_config())  # a NumPy int is not JSON


@pytest.mark.parametrize("make, match", [
    (lambda: L.LayerNorm(epsilon=1e-5),
     r"LayerNorm got an unexpected keyword argument 'epsilon'; did you mean 'eps'\? "
     r"\(it takes .*eps.*seed"),
    (lambda: L.Conv2D(2, 3, groups=2),
     r"Conv2D got an unexpected keyword argument 'groups' \(it takes .*filters, "
     r"kernel_size, strides, padding, activation.*dilation_rate"),
    (lambda: L.MaxPool2D(2, data_format="channels_first"),
     r"MaxPool2D got an unexpected keyword argument 'data_format' \(it takes pool_size, "
     r"strides, padding, "),
    (lambda: L.AveragePooling2D(2, dilation=2),
     r"AveragePooling2D got an unexpected keyword argument 'dilation' \(it takes pool_size, "),
    (lambda: L.Dense(3, input_dims=4), r"Dense got an unexpected keyword argument "
                                       r"'input_dims'; did you mean 'input_dim'\?"),
])
def test_an_unknown_keyword_names_the_layer_and_what_it_takes(make, match):
    # Python's own message named Layer.__init__, not the class the user made
    with pytest.raises(TypeError, match=match):
        make()
