"""BatchNorm and LayerNorm: gradients, running statistics, frozen mode,
state, configs, torch and errors."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tests.layers.layer_helpers import (assert_backward_twice_doubles, assert_gradients_ok,
                                        batch_sizes, seeds, well_spread, widths)

L = tn.layers


def _randomize(layer, rng, *per_sample_shape):
    """Non-trivial gamma/beta (and moving statistics) so every term matters."""
    layer.build(per_sample_shape, dtype=np.float64)
    width = per_sample_shape[-1]
    layer.gamma.value = rng.uniform(0.5, 2.0, width) * rng.choice([-1, 1], width)
    layer.beta.value = rng.standard_normal(width)
    if isinstance(layer, L.BatchNorm):
        layer.set_state({"moving_mean": rng.standard_normal(width),
                         "moving_variance": rng.uniform(0.5, 2.0, width)})
    return layer


@given(batch=st.integers(2, 5), width=widths, training=st.booleans(), seed=seeds,
       eps=st.sampled_from([1e-3, 1e-5]))
def test_batchnorm_gradients(batch, width, training, seed, eps):
    rng = np.random.default_rng(seed)
    layer = _randomize(L.BatchNorm(eps=eps), rng, width)
    x = well_spread(rng, (batch, width), axis=0)
    assert_gradients_ok(layer, x, rng, training=training)


@pytest.mark.parametrize("shape", [(1, 3), (1, 1, 3), (1, 1, 1, 3), (0, 3)])
def test_batchnorm_refuses_one_value_per_feature_in_training(shape):
    # one value per feature has zero variance: the output would be beta (all
    # zeros at initialisation), whatever the input; PyTorch raises too
    layer = L.BatchNorm(name="bn")
    x = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match=r"BatchNorm 'bn' expected more than 1 value per "
                                         r"feature in training mode .* received input of "
                                         rf"shape {re.escape(str(shape))}.*"
                                         r"n_samples % batch_size == 1"):
        layer.forward(x, training=True)
    assert layer.forward(x).shape == shape  # inference uses the moving statistics


def test_batchnorm_one_image_trains_over_its_pixels():
    # statistics over N*H*W: one 2x2 image has four values per channel
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 2, 3))
    y = L.BatchNorm(eps=1e-8).forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, rtol=1e-6)


def test_fit_with_a_last_batch_of_one_says_what_to_do_before_training():
    model = tn.Sequential([L.Dense(4, input_dim=3), L.BatchNorm(name="bn"), L.Dense(2)])
    model.compile("sgd", loss="cross_entropy")
    x = np.random.default_rng(0).standard_normal((9, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"fit: 9 samples in batches of 4 leave a last batch "
                                         r"of one sample, and BatchNorm 'bn' cannot train"):
        model.fit(x, np.arange(9) % 2, batch_size=4, verbose=0)
    # refused up front: not after most of an epoch had trained
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    model.fit(x, np.arange(9) % 2, batch_size=3, verbose=0)
    # batches of one: the advice was to avoid "n_samples % batch_size == 1"
    with pytest.raises(ValueError, match=r"fit: 9 sample\(s\) in batches of 1 make every "
                                         r"batch one sample.*batch_size of 2 or more"):
        model.fit(x, np.arange(9) % 2, batch_size=1, verbose=0)
    # a multi-task model's BatchNorm is found as well
    inp = tn.mtl.Input((3,))
    h = L.BatchNorm(name="bn2")(L.Dense(4)(inp))
    mtl = tn.mtl.Model(inp, {"a": L.Dense(2)(h), "b": L.Dense(1)(h)})
    mtl.compile("sgd", loss={"a": "cross_entropy", "b": "mse"})
    with pytest.raises(ValueError, match="BatchNorm 'bn2' cannot train"):
        mtl.fit(x, {"a": np.arange(9) % 2, "b": x[:, :1]}, batch_size=8, verbose=0)


@pytest.mark.parametrize("when", ["train_begin", "epoch_2"])
def test_a_batchnorm_unfrozen_by_a_callback_with_a_last_batch_of_one_is_refused_then(when):
    # checked only before the callbacks began: a BatchNorm unfrozen later
    # (GradualUnfreezing) crashed inside the layer at that epoch's last batch
    from tinynet.transfer import GradualUnfreezing, freeze
    model = tn.Sequential([L.Dense(8, input_dim=4, seed=1), L.BatchNorm(name="bn"),
                           L.Dense(8, seed=2), L.Dense(2, seed=3)])
    model.compile(tn.optim.Adam(lr=0.01), loss="cross_entropy")
    freeze(model, upto=-1)
    x = np.random.default_rng(0).standard_normal((33, 4)).astype(np.float32)
    batches = []

    class Unfreeze(tn.callbacks.Callback):
        def on_train_begin(self, logs=None):
            model.layers[1].trainable = True

    class Count(tn.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            batches.append(batch)

    unfreezing = Unfreeze() if when == "train_begin" else GradualUnfreezing()
    with pytest.raises(ValueError, match=r"fit: 33 samples in batches of 32 leave a last batch "
                                         r"of one sample, and BatchNorm 'bn' cannot train"):
        model.fit(x, np.arange(33) % 2, epochs=4, batch_size=32, verbose=0, seed=0,
                  callbacks=[unfreezing, Count()])
    # refused before the epoch's first batch (GradualUnfreezing: bn trains from epoch 2)
    assert len(batches) == (0 if when == "train_begin" else 4)


def test_fit_on_images_with_a_last_batch_of_one_is_fine():
    # one image has H*W values per channel: nothing to refuse
    model = tn.Sequential([L.Conv2D(2, 3, input_shape=(4, 4, 1)), L.BatchNorm(),
                           L.Flatten(), L.Dense(2)])
    model.compile("sgd", loss="cross_entropy")
    x = np.random.default_rng(0).standard_normal((5, 4, 4, 1)).astype(np.float32)
    model.fit(x, np.arange(5) % 2, batch_size=4, verbose=0)


@given(shape=st.tuples(batch_sizes, st.integers(1, 3), widths).filter(
    lambda s: s[0] * s[1] > 1), seed=seeds, training=st.booleans())
def test_batchnorm_gradients_3d_features_last(shape, seed, training):
    rng = np.random.default_rng(seed)
    layer = L.BatchNorm()
    # statistics run over batch and time: spread over their flattened product
    flat = well_spread(rng, (shape[0] * shape[1], shape[2]), axis=0)
    x = flat.reshape(shape)
    assert_gradients_ok(layer, x, rng, training=training)
    assert layer.gamma.shape == (shape[-1],)


# At width 2 the normalised output is +-1 whatever the input, so dx is ~1e-6 of
# the loss scale and finite differences measure rounding noise (one seed in many
# reached 1.14e-6); widths 1 and >= 3 keep a meaningful gradient.
layernorm_widths = st.integers(1, 5).filter(lambda w: w != 2)


@given(shape=st.one_of(st.tuples(batch_sizes, layernorm_widths),
                       st.tuples(batch_sizes, st.integers(1, 3), layernorm_widths)),
       seed=seeds)
def test_layernorm_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    layer = _randomize(L.LayerNorm(), rng, *shape[1:])
    x = well_spread(rng, shape, axis=-1)
    assert_gradients_ok(layer, x, rng)


@pytest.mark.parametrize("make", [L.BatchNorm, L.LayerNorm])
def test_backward_twice_doubles_param_grads(make):
    rng = np.random.default_rng(0)
    assert_backward_twice_doubles(make(), rng.standard_normal((4, 3)), rng, training=True)


# ------------------------------------------------------------ batch norm modes
def test_batchnorm_training_uses_batch_stats_and_updates_moving_ones():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3)) * 3 + 2
    layer = L.BatchNorm(momentum=0.9, eps=1e-3)
    y = layer.forward(x, training=True)
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_mean, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, 0.9 + 0.1 * x.var(0), rtol=1e-12)


def test_batchnorm_inference_uses_moving_stats_and_keeps_them():
    rng = np.random.default_rng(2)
    layer = L.BatchNorm(input_dim=3, dtype=np.float64)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    layer.set_state({"moving_mean": mean, "moving_variance": var})
    x = rng.standard_normal((5, 3))
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-12)
    np.testing.assert_array_equal(layer.moving_mean, mean)
    np.testing.assert_array_equal(layer.moving_variance, var)


@pytest.mark.parametrize("training", [True, False])
def test_frozen_batchnorm_uses_moving_stats_and_never_updates_them(training):
    rng = np.random.default_rng(3)
    layer = L.BatchNorm(input_dim=4, dtype=np.float32)
    layer.set_state({"moving_mean": rng.standard_normal(4),
                     "moving_variance": rng.uniform(0.5, 2, 4)})
    layer.gamma.value = rng.uniform(0.5, 2, 4)
    layer.trainable = False
    before = {k: v.copy() for k, v in layer.get_state().items()}
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = layer.forward(x, training=training)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    for key, value in layer.get_state().items():
        assert value.tobytes() == before[key].tobytes(), key
    inv_std = 1 / np.sqrt(before["moving_variance"] + np.float32(1e-3))
    np.testing.assert_allclose(y, (x - before["moving_mean"]) * inv_std * layer.gamma.value,
                               rtol=1e-5, atol=1e-6)
    # still passes gradients to its input (the fixed affine map's gradient)
    np.testing.assert_allclose(dx, dy * layer.gamma.value * inv_std, rtol=1e-5, atol=1e-6)
    assert all(not p.trainable for p in layer.parameters())
    assert layer.trainable_parameters() == []


def test_batchnorm_set_trainable_inside_a_frozen_container_does_not_train():
    # the one rule (layers/base.py): a frozen container wins over the flag of a
    # layer inside it, for its parameters and for its batch statistics alike
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((16, 4)) * 3 + 5).astype(np.float32)
    base = tn.Sequential([L.Dense(4, input_dim=4, seed=0), L.BatchNorm(name="bn")])
    model = tn.Sequential([base, L.Dense(3, seed=1)])
    base.trainable = False
    bn = base.layers[1]
    bn.trainable = True  # its own flag: kept, but the frozen base holds it
    assert bn.trainable and not bn.trains and bn.trainable_parameters() == []
    before = {k: v.copy() for k, v in bn.get_state().items()}
    model.compile(tn.optim.SGD(lr=0.1), loss="cross_entropy")
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0, seed=0)
    for key, value in bn.get_state().items():
        assert value.tobytes() == before[key].tobytes(), key
    h = base.layers[0].forward(x)
    y = bn.forward(h, training=True)
    inv_std = 1 / np.sqrt(before["moving_variance"] + np.float32(1e-3))
    np.testing.assert_allclose(y, (h - before["moving_mean"]) * inv_std, rtol=1e-5, atol=1e-5)
    # a last batch of one sample is no reason to refuse: the layer does not train
    model.fit(x[:9], np.arange(9) % 3, batch_size=4, verbose=0)
    base.trainable = True  # unfrozen: trains again, batch statistics and all
    assert bn.trains
    y = bn.forward(h, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    assert not np.array_equal(bn.moving_mean, before["moving_mean"])


def test_frozen_batchnorm_gradients_are_exact():
    rng = np.random.default_rng(4)
    layer = _randomize(L.BatchNorm(), rng, 3)
    layer.trainable = False
    assert_gradients_ok(layer, rng.standard_normal((4, 3)), rng, training=True)


def test_batchnorm_matches_torch_over_several_steps():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    layer = L.BatchNorm(momentum=0.9, eps=1e-5)
    ref = torch.nn.BatchNorm1d(4, momentum=0.1, eps=1e-5).double()
    for _ in range(3):
        x = rng.standard_normal((6, 4)) * 2 + 1
        dy = rng.standard_normal((6, 4))
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        yt.backward(torch.tensor(dy))
        layer.zero_grad()
        y = layer.forward(x, training=True)
        dx = layer.backward(dy)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), rtol=1e-10)
        ref.weight.grad = ref.bias.grad = None
        np.testing.assert_allclose(layer.moving_mean, ref.running_mean.numpy(), rtol=1e-12)

    # torch keeps the unbiased batch variance (Keras and tinynet the biased one):
    # with momentum 0 (torch: 1) the moving variance is the last batch's
    layer2 = L.BatchNorm(momentum=0.0, eps=1e-5)
    ref2 = torch.nn.BatchNorm1d(4, momentum=1.0, eps=1e-5).double()
    x = rng.standard_normal((6, 4))
    layer2.forward(x, training=True)
    ref2(torch.tensor(x))
    np.testing.assert_allclose(layer2.moving_variance * 6 / 5, ref2.running_var.numpy(),
                               rtol=1e-12)
    # inference: torch's eval formula on our statistics gives our output
    x = rng.standard_normal((3, 4))
    expected = torch.nn.functional.batch_norm(
        torch.tensor(x), torch.tensor(layer2.moving_mean),
        torch.tensor(layer2.moving_variance), torch.tensor(layer2.gamma.value),
        torch.tensor(layer2.beta.value), training=False, eps=1e-5).numpy()
    np.testing.assert_allclose(layer2.forward(x), expected, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_on_images_matches_torch_batchnorm2d(dtype, backend):
    """Statistics over batch, height and width (channels last here, NCHW in
    torch), on the kernel and the NumPy paths, with a large mean (where a
    one-pass variance would lose every digit in float32)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    layer = _randomize(L.BatchNorm(momentum=0.9, eps=1e-5), rng, 5, 4, 3).astype(dtype)
    layer.set_state({"moving_mean": np.zeros(3), "moving_variance": np.ones(3)})
    ref = torch.nn.BatchNorm2d(3, momentum=0.1, eps=1e-5).to(torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.gamma.value.astype(np.float64)))
        ref.bias.copy_(torch.tensor(layer.beta.value.astype(np.float64)))
    tol = 1e-10 if dtype == np.float64 else 2e-4
    with tn.kernels.use_backend(backend):
        for _ in range(3):
            x = (rng.standard_normal((4, 5, 4, 3)) * 2 + 300).astype(dtype)
            dy = rng.standard_normal(x.shape).astype(dtype)
            xt = torch.tensor(x.transpose(0, 3, 1, 2).astype(np.float64), requires_grad=True)
            ref(xt).backward(torch.tensor(dy.transpose(0, 3, 1, 2).astype(np.float64)))
            layer.zero_grad()
            y = layer.forward(x, training=True)
            dx = layer.backward(dy)
            expected = torch.nn.functional.batch_norm(
                torch.tensor(x.transpose(0, 3, 1, 2).astype(np.float64)), None, None,
                ref.weight, ref.bias, training=True, eps=1e-5).detach().numpy()
            np.testing.assert_allclose(y, expected.transpose(0, 2, 3, 1), rtol=tol, atol=tol)
            np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1),
                                       rtol=tol, atol=tol)
            np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), rtol=tol,
                                       atol=tol * 10)
            np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), rtol=tol,
                                       atol=tol * 10)
            ref.weight.grad = ref.bias.grad = None
            np.testing.assert_allclose(layer.moving_mean, ref.running_mean.numpy(), rtol=tol)


def test_layernorm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x, dy = rng.standard_normal((5, 2, 7)) * 3, rng.standard_normal((5, 2, 7))
    layer = _randomize(L.LayerNorm(), rng, 2, 7)
    ref = torch.nn.LayerNorm(7).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.gamma.value))
        ref.bias.copy_(torch.tensor(layer.beta.value))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("make, shape", [(L.BatchNorm, (1, 1, 7, 1)),
                                         (L.BatchNorm, (3, 2, 5, 4)),
                                         (L.LayerNorm, (2, 513))])
def test_float32_numpy_path_sums_in_float64_as_the_kernels_and_torch(make, shape):
    """Values near 100 that differ by 1e-3 (after a large bias): a float32
    sum put the NumPy path's mean an ulp or more off, which is 1 % of the
    spread, and its dx 1e-4 (relative) away where torch's float32 stays
    within 1e-6 (and gamma's gradient likewise). With float64 sums (the kernels', and PyTorch's on CPU) both
    backends come within a few times torch's own float32 error."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 1e-3 + 100).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)

    def torch_run(dtype):
        xt = torch.tensor(x, dtype=dtype, requires_grad=True)
        gamma = torch.ones(shape[-1], dtype=dtype, requires_grad=True)
        if make is L.BatchNorm:
            yt = torch.nn.functional.batch_norm(xt.movedim(-1, 1), None, None, gamma,
                                                training=True, eps=1e-3).movedim(1, -1)
        else:
            yt = torch.nn.functional.layer_norm(xt, (shape[-1],), gamma, eps=1e-5)
        yt.backward(torch.tensor(dy, dtype=dtype))
        return [t.detach().double().numpy() for t in (yt, xt.grad, gamma.grad)]

    exact, torch32 = torch_run(torch.float64), torch_run(torch.float32)

    def error(a, b):
        return np.abs(a - b).max() / np.abs(b).max()

    for backend in ("numba", "numpy"):
        with tn.kernels.use_backend(backend):
            layer = make()
            y = layer.forward(x, training=True)
            dx = layer.backward(dy)
        for ours, theirs, ref in zip((y, dx, layer.gamma.grad), torch32, exact):
            assert error(ours, ref) <= max(4 * error(theirs, ref), 1e-6), backend


def test_layernorm_same_in_training_and_inference():
    x = np.random.default_rng(7).standard_normal((4, 6))
    layer = L.LayerNorm()
    np.testing.assert_array_equal(layer.forward(x, training=True), layer.forward(x))


# --------------------------------------------------------- state, dtype, config
def test_state_round_trip_and_float32():
    rng = np.random.default_rng(8)
    layer = L.BatchNorm()
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32 and layer.moving_mean.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    state = layer.get_state()
    clone = L.BatchNorm.from_config(layer.get_config())
    clone.set_state(state)
    for key in state:
        np.testing.assert_array_equal(clone.get_state()[key], state[key])
    state["moving_mean"][:] = 99  # get_state hands out copies
    assert not np.any(layer.moving_mean == 99)
    layer.astype(np.float64)
    assert layer.moving_variance.dtype == np.float64 and layer.gamma.dtype == np.float64


@pytest.mark.parametrize("layer", [L.BatchNorm(momentum=0.9, eps=1e-4, name="bn"),
                                   L.LayerNorm(eps=1e-6, input_dim=3)])
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_set_state_errors():
    layer = L.BatchNorm(name="bn")
    with pytest.raises(ValueError, match="must be built"):
        layer.set_state({"moving_mean": np.zeros(3)})
    layer.build((3,))
    with pytest.raises(ValueError, match=r"unknown keys \['running_mean'\]"):
        layer.set_state({"running_mean": np.zeros(3)})
    with pytest.raises(ValueError, match=r"moving_variance expected shape \(3,\), "
                                         r"received \(4,\)"):
        layer.set_state({"moving_variance": np.ones(4)})
    # a variance is never negative: -1 would give NaN at inference, -1e-4 (above -eps)
    # silently wrong outputs; nothing is set when one key is bad
    before = layer.moving_mean.copy()
    for bad in ([-1.0, 1.0, 1.0], [1.0, -1e-4, 1.0], [np.nan, 1.0, 1.0], [np.inf, 1.0, 1.0]):
        with pytest.raises(ValueError, match=r"moving_variance expected values in \[0, inf\)"):
            layer.set_state({"moving_mean": np.full(3, 5.0), "moving_variance": bad})
        np.testing.assert_array_equal(layer.moving_mean, before)
    with pytest.raises(ValueError, match=r"finite values in moving_mean"):
        layer.set_state({"moving_mean": [0.0, np.nan, 0.0]})
    # the array set is the layer's own copy, in its dtype
    mine = np.array([0.5, 0.25, 2.0])
    layer.set_state({"moving_variance": mine})
    mine[0] = -7.0
    assert layer.moving_variance[0] == 0.5 and layer.moving_variance.dtype == layer.dtype


@pytest.mark.parametrize("make, error, match", [
    (lambda: L.BatchNorm(momentum=1.5), ValueError, r"momentum in \[0, 1\], received 1.5"),
    (lambda: L.BatchNorm(momentum=-0.1), ValueError, "momentum in"),
    (lambda: L.BatchNorm(momentum="0.9"), TypeError, "momentum as a real number"),
    (lambda: L.BatchNorm(eps=0.0), ValueError, r"eps in \(0, inf\)"),
    (lambda: L.LayerNorm(eps=-1e-5), ValueError, "LayerNorm expected eps"),
    # an infinite eps would normalise every input to 0: the output would be beta
    (lambda: L.BatchNorm(eps=float("inf")), ValueError, r"eps in \(0, inf\), received inf"),
    (lambda: L.LayerNorm(eps=float("inf")), ValueError, r"eps in \(0, inf\), received inf"),
])
def test_bad_settings(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("make, settings, torch_name", [
    (lambda: L.LayerNorm(7), "eps", "torch.nn.LayerNorm"),
    (lambda: L.BatchNorm(1), "momentum, eps", "torch.nn.BatchNorm1d"),
    (lambda: L.BatchNorm(64), "momentum, eps", "torch.nn.BatchNorm1d"),
    (lambda: L.BatchNorm(0.9, 1e-3), "momentum, eps", "torch.nn.BatchNorm1d"),
])
def test_positional_settings_are_refused(make, settings, torch_name):
    # PyTorch's first argument is the feature count: LayerNorm(7) used to be
    # taken as eps=7 (a silently different layer) and BatchNorm(1) as
    # momentum=1 (moving statistics that never move)
    with pytest.raises(TypeError, match=rf"takes its settings by keyword \({settings}\); "
                                        rf"its feature count comes from the input.*"
                                        rf"{torch_name}\(n\) is .*received"):
        make()


def test_bad_inputs():
    layer = L.BatchNorm(input_dim=4, name="bn1")
    with pytest.raises(ValueError, match=r"BatchNorm 'bn1' expected input of shape "
                                         r"\(batch, 4\), received \(2, 3\)"):
        layer.forward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        layer.forward(np.ones((2, 4), np.int32))
    with pytest.raises(RuntimeError, match="before forward"):
        L.LayerNorm().backward(np.ones((2, 3)))


def test_float32_layernorm_centres_in_float64_on_both_backends():
    """Rows near 1e4 with a spread of 1: their float32 mean is up to half an ulp
    (5e-4) off, which centring in float32 carried into every x_hat of the row
    (the NumPy path's error was 7e-3; the kernel, centring in float64, 1e-7)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((8, 64)) + 1e4).astype(np.float32)
    expected = L.LayerNorm().forward(x.astype(np.float64))
    outputs = {}
    for backend in ("numba", "numpy"):
        with tn.kernels.use_backend(backend):
            outputs[backend] = L.LayerNorm().forward(x)
        assert outputs[backend].dtype == np.float32
        np.testing.assert_allclose(outputs[backend], expected, atol=1e-5, err_msg=backend)
    np.testing.assert_allclose(outputs["numpy"], outputs["numba"], atol=1e-6)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # the float32 variance
def test_float32_batchnorm_of_values_whose_squares_overflow_matches_float64(backend):
    """Features of size 1e20..1e30 (their float32 squares pass 3.4e38): the
    output and gradients are the float64 layer's, not beta and 0, as they
    were with float32 squares (and are in PyTorch 2.13's float32 BatchNorm).
    The moving variance, state in float32, is inf there."""
    rng = np.random.default_rng(3)
    scales = np.array([1.0, 1e20, 1e25, 1e30])
    x = (rng.standard_normal((16, 4)) * scales + scales).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    narrow = _randomize(L.BatchNorm(), np.random.default_rng(4), 4).astype(np.float32)
    wide = _randomize(L.BatchNorm(), np.random.default_rng(4), 4).astype(np.float32)
    wide.astype(np.float64)   # the same parameters, in float64
    with tn.kernels.use_backend(backend):
        y, dx = narrow.forward(x, training=True), narrow.backward(dy)
    expected = wide.forward(x.astype(np.float64), training=True)
    expected_dx = wide.backward(dy.astype(np.float64))
    assert np.abs(expected).max() > 1.0 and np.isfinite(expected).all()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # dx is of size 1 / scale: compared scaled back
    np.testing.assert_allclose(dx * scales, expected_dx * scales, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(narrow.gamma.grad, wide.gamma.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(narrow.beta.grad, wide.beta.grad, rtol=1e-5, atol=1e-5)
    assert np.isfinite(narrow.moving_variance[0]) and np.isinf(narrow.moving_variance[1:]).all()


_TINY_EPS_CASES = {"BatchNorm-training": (L.BatchNorm, True), "BatchNorm-inference":
                   (L.BatchNorm, False), "LayerNorm": (L.LayerNorm, False)}


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("case", sorted(_TINY_EPS_CASES))
def test_an_eps_the_dtype_rounds_to_zero_is_refused_on_both_backends(case, backend):
    # eps=1e-50 is 0 in float32: a constant feature gave NaN on Numba (the
    # kernels add eps in x's dtype) and 0 on NumPy (its references in float64)
    make, training = _TINY_EPS_CASES[case]
    x = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]], np.float32)  # feature 0 constant
    if make is L.LayerNorm:
        x = x[:, :1].T.copy()
    with tn.kernels.use_backend(backend):
        with pytest.raises(ValueError, match=r"expected eps that float32 can hold \(not below "
                                             r"half its smallest positive number, 1\.4e-45\), "
                                             r"received eps=1e-50, which float32 rounds to 0"):
            make(eps=1e-50).forward(x, training=training)
        # checked once per eps and dtype: an eps set later on a layer that ran is checked
        layer = make(eps=1e-3)
        layer.forward(x, training=training)
        layer.eps = 1e-50
        with pytest.raises(ValueError, match="received eps=1e-50"):
            layer.forward(x, training=training)
        results = [make(eps=eps, dtype=dtype).forward(x, training=training)
                   for eps, dtype in ((1e-45, "float32"), (1e-50, "float64"))]
    for y in results:
        assert np.isfinite(y).all()
        if training or make is L.LayerNorm:
            np.testing.assert_array_equal(y[:, 0] if make is L.BatchNorm else y, 0)
