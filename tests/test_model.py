"""Sequential: structure, weights, configs, summary, gradients of a whole
model, compile/fit/evaluate/predict and every documented bad input."""

import io
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers import BatchNorm, Dense, Dropout, ReLU, Softmax, Tanh
from tinynet.optim import Adam

from fd import max_rel_error, numerical_grad


def _classification(n=48, d=10, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, rng.integers(0, classes, n)


def _mlp(d=10, classes=4, seed=0):
    model = tn.Sequential([Dense(16, activation="relu", input_dim=d), Dropout(0.2),
                           Dense(classes)])
    model.reset_parameters(seed)
    model.compile(optimizer=Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    return model


# ---------------------------------------------------------------- the issue
def test_issue_seed_example_runs_with_tinynet_names():
    rng = np.random.default_rng(0)
    x_train = rng.random((64, 784), dtype=np.float32)
    y_train = rng.integers(0, 10, 64)
    model = tn.Sequential([Dense(128, activation='relu', input_dim=784), Dropout(0.2),
                           Dense(10)])
    model.compile(optimizer=Adam(lr=0.001), loss='cross_entropy', metrics=['accuracy'])
    history = model.fit(x_train, y_train, epochs=2, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "accuracy"} and len(history.epoch) == 2
    model_new = tn.Sequential([Dense(128, activation='relu', input_dim=784), Dropout(0.2),
                               Dense(10)])
    model_new.set_weights(model.get_weights())
    assert np.array_equal(model_new.predict(x_train), model.predict(x_train))


def test_newcomer_trains_evaluates_saves_and_reloads_an_mlp_in_ten_lines(tmp_path):
    (x_train, y_train), (x_test, y_test) = tn.data.load_digits()
    x_train, x_test = x_train.astype("float32") / 16, x_test.astype("float32") / 16
    model = tn.Sequential([Dense(32, activation="relu", input_dim=64), Dense(10)])
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0, seed=0)
    scores = model.evaluate(x_test, y_test)
    model.save(tmp_path / "digits.npz")
    again = tn.load(tmp_path / "digits.npz")
    assert again.evaluate(x_test, y_test) == scores
    assert scores["accuracy"] > 0.5  # 10% is chance; three epochs reach far more


# ------------------------------------------------------------ structure
def test_model_builds_from_the_first_layers_input_dim():
    model = tn.Sequential([Dense(8, input_dim=5), ReLU(), Dense(3)])
    assert model.built and model.input_shape == (5,) and model.output_shape == (3,)
    assert [p.shape for p in model.parameters()] == [(5, 8), (8,), (8, 3), (3,)]
    assert model.count_params() == 5 * 8 + 8 + 8 * 3 + 3


def test_lazy_model_builds_on_first_forward_in_the_inputs_dtype():
    model = tn.Sequential([Dense(4), Tanh(), Dense(2)])
    assert not model.built
    y = model.forward(np.zeros((3, 7)))
    assert model.built and y.shape == (3, 2) and model.dtype == np.float64


def test_fit_takes_data_in_the_other_byte_order_as_the_same_numbers():
    # big-endian x, int labels and float targets (FITS, np.frombuffer): the
    # same training as the native arrays, not "expected float32 ... >f4"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 5)).astype(np.float32)
    labels, targets = rng.integers(0, 3, 24), rng.standard_normal((24, 3))
    swap = lambda a: a.astype(a.dtype.newbyteorder())  # noqa: E731
    for loss, y in (("cross_entropy", labels), ("mse", targets)):
        weights = []
        for xs, ys in ((x, y), (swap(x), swap(y))):
            model = tn.Sequential([Dense(3, seed=0)])
            model.compile(optimizer="sgd", loss=loss)
            model.fit(xs, ys, epochs=2, batch_size=8, shuffle=False, verbose=0)
            assert model.predict(xs).dtype == np.float32
            weights.append(model.get_weights())
        for a, b in zip(*weights):
            np.testing.assert_array_equal(a, b)


def test_predict_on_one_image_without_its_batch_axis_says_x_none():
    # "expected x of shape (batch, 8, 8, 2), received (8, 8, 2)", with no hint
    model = tn.Sequential([tn.layers.Conv2D(3, 3, seed=0), tn.layers.Flatten(),
                           Dense(2, seed=0)])
    model.build((8, 8, 2))
    image = np.zeros((8, 8, 2), np.float32)
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, 8, 8, 2\), received "
                                         r"\(8, 8, 2\); one sample needs a batch axis: "
                                         r"x\[None\]$"):
        model.predict(image)
    assert model.predict(image[None]).shape == (1, 2)


def test_add_pop_get_layer():
    model = tn.Sequential(name="m")
    model.add(Dense(4, input_dim=3, name="a"))
    assert model.built
    model.add(ReLU(name="r"))
    model.add(Dense(2, name="b"))
    assert model.output_shape == (2,) and model.layers[2].W.shape == (4, 2)
    assert model.get_layer("b") is model.layers[-1] is model.get_layer(-1)
    popped = model.pop()
    assert popped.name == "b" and model.output_shape == (4,)
    with pytest.raises(ValueError, match="no layer named 'rr'; did you mean 'r'"):
        model.get_layer("rr")
    with pytest.raises(IndexError):
        model.get_layer(5)
    with pytest.raises(ValueError, match="already in this Sequential"):
        model.add(model.layers[0])
    with pytest.raises(ValueError, match="already has a layer named 'a'"):
        model.add(Dense(3, name="a"))  # as Keras: get_layer("a") would be ambiguous
    assert len(model.layers) == 2
    with pytest.raises(TypeError, match="Layer instances"):
        model.add("dense")
    model.pop(), model.pop()
    with pytest.raises(ValueError, match="no layers to pop"):
        model.pop()


def test_layer_names_must_be_unique_as_in_keras():
    with pytest.raises(ValueError, match="already has a layer named 'h'.*unique names"):
        tn.Sequential([Dense(4, input_dim=3, name="h"), Dense(2, name="h")])
    loaded_name = Dense(2).name  # an automatic name is never one in use
    model = tn.Sequential([Dense(4, input_dim=3, name=f"dense_{int(loaded_name[6:]) + 1}")])
    model.add(Dense(2))  # so a new unnamed layer joins a model without a clash
    assert len({layer.name for layer in model.layers}) == 2


def test_a_file_with_repeated_layer_names_still_loads_renamed(tmp_path):
    # written before Sequential refused repeated names: weights go by position
    model = tn.Sequential([Dense(4, input_dim=3, name="h"), ReLU(), Dense(2, name="h2")])
    model.compile("adam", "mse")
    model.layers[2].name = "h"
    path = model.save(tmp_path / "old.npz")
    with pytest.warns(UserWarning, match="renamed 'h' -> 'h_"):
        loaded = tn.load(path)
    assert loaded.layers[0].name == "h" and loaded.layers[2].name.startswith("h_")
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_nested_models_share_weights_and_pass_gradients():
    base = tn.Sequential([Dense(6, activation="tanh", input_dim=4)], name="base")
    model = tn.Sequential([base, Dense(2)], name="outer")
    assert model.built and model.parameters()[:2] == base.parameters()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), model.layers[1].forward(base.forward(x)))
    model.zero_grad()
    model.forward(x)
    dx = model.backward(np.ones((5, 2), np.float32))
    assert dx.shape == x.shape and np.any(base.parameters()[0].grad != 0)
    base.trainable = False
    assert all(not p.trainable for p in base.parameters())
    assert "base (Sequential)" in model.summary(print_fn=None)


def test_a_built_inner_model_must_fit_the_outer_shape():
    base = tn.Sequential([Dense(6, input_dim=4)])
    with pytest.raises(ValueError, match="was built for input \\(batch, 4\\) but receives "
                                         "\\(batch, 3\\)"):
        tn.Sequential([Dense(3, input_dim=2), base])


def test_config_round_trip_rebuilds_the_same_architecture():
    base = tn.Sequential([Dense(6, activation="relu", input_dim=4), BatchNorm()], name="b")
    model = tn.Sequential([base, Dropout(0.5), Dense(3, use_bias=False)], name="m")
    config = model.get_config()
    clone = tn.Sequential.from_config(config)
    assert clone.get_config() == config
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    assert clone.weight_names() == model.weight_names()


def test_summary_lists_layers_shapes_and_counts(capsys):
    model = tn.Sequential([Dense(16, activation="relu", input_dim=8, name="hidden"),
                           BatchNorm(name="bn"), Dense(4, name="out")], name="net")
    model.get_layer("out").trainable = False
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert 'Model: "net"' in text
    assert "hidden (Dense)" in text and "(batch, 16)" in text and "144" in text
    assert "bn (BatchNorm)" in text and "out (Dense)" in text and "(batch, 4)" in text
    total = 8 * 16 + 16 + 4 * 16 + 16 * 4 + 4  # BatchNorm: gamma, beta, 2 moving stats
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {8 * 16 + 16 + 2 * 16:,}" in text
    assert f"Non-trainable params: {2 * 16 + 16 * 4 + 4:,}" in text


def test_summary_of_an_unbuilt_model():
    text = tn.Sequential([Dense(3)]).summary(print_fn=None)
    assert "? (not built)" in text and "Total params: 0" in text


# -------------------------------------------------------------- weights
def test_get_set_weights_include_batchnorm_statistics():
    model = tn.Sequential([Dense(5, input_dim=3), BatchNorm(), Dense(2)])
    x = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    model.forward(x, training=True)  # moves the running statistics
    clone = tn.Sequential([Dense(5, input_dim=3), BatchNorm(), Dense(2)])
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))
    assert any(name.endswith("moving_mean") for name in model.weight_names())
    weights = model.get_weights()
    weights[0][...] = 42  # a copy: the model is untouched
    assert not np.any(model.parameters()[0].value == 42)


def test_set_weights_errors_name_the_parameter():
    model = tn.Sequential([Dense(4, input_dim=3, name="fc1"), Dense(2, name="fc2")])
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"expected 4 arrays \(fc1/W, fc1/b, fc2/W, fc2/b\), "
                                         r"received 3"):
        model.set_weights(weights[:3])
    bad = [w.copy() for w in weights]
    bad[2] = np.zeros((4, 3))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"weight 2 \('fc2/W'\) expected shape \(4, 2\), "
                                         r"received \(4, 3\)"):
        model.set_weights(bad)
    for got, want in zip(model.get_weights(), before):  # nothing was half-applied
        assert np.array_equal(got, want)
    bad[2] = np.array([["a"] * 2] * 4)
    with pytest.raises(TypeError, match="numeric"):
        model.set_weights(bad)
    with pytest.raises(TypeError, match="list of arrays"):
        model.set_weights(np.zeros(3))
    with pytest.raises(ValueError, match="not built"):
        tn.Sequential([Dense(2)]).set_weights([np.zeros((3, 2)), np.zeros(2)])


@pytest.mark.parametrize("change, error, match", [
    # a cast would drop the imaginary part (NumPy only warns)
    (lambda w: w.astype(np.complex128) + 1j, TypeError, r"weight 0 \('fc1/W'\) expected a "
                                                        r"real numeric array.*complex128"),
    (lambda w: np.where(np.arange(w.size).reshape(w.shape) == 1, np.nan, w), ValueError,
     r"finite values in weight 0 \('fc1/W'\), received 1 NaN"),
    (lambda w: np.full(w.shape, -np.inf), ValueError, "finite values in weight 0"),
    # finite in float64, infinite once cast to the model's float32
    (lambda w: np.full(w.shape, 1e300), ValueError,
     r"weight 0 \('fc1/W'\) expected values within the range of float32, received "
     r"values up to 1e\+300"),
])
def test_set_weights_refuses_values_that_would_end_up_wrong(change, error, match):
    model = tn.Sequential([Dense(4, input_dim=3, name="fc1"), Dense(2, name="fc2")])
    before = model.get_weights()
    bad = [w.copy() for w in before]
    bad[0] = change(bad[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy warning on the way to the error
        with pytest.raises(error, match=match):
            model.set_weights(bad)
    for got, want in zip(model.get_weights(), before):
        assert np.array_equal(got, want)
    model.set_weights([w.astype(np.float64) for w in before])  # a finite cast is fine


# ------------------------------------------------------------ gradients
def _numerical_grad(f, x, eps=1e-4):
    """Central differences with one Richardson step: (4 D(eps/2) - D(eps)) / 3.

    BatchNorm makes the first layer's gradients small (1e-5 and less) while
    the loss is O(1), so plain central differences at eps=1e-6 carry rounding
    noise of ~1e-16 |L| / eps = 1e-10 on every entry (1e-5 relative), and a
    larger eps brings O(eps^2) truncation error on the large entries. The
    extrapolation cancels the eps^2 term, so eps=1e-4 is safe for both; what
    remains is a few 1e-12 of absolute noise, hence FLOOR below.
    """
    return (4 * numerical_grad(f, x, eps / 2) - numerical_grad(f, x, eps)) / 3


#: Absolute errors below FLOOR * 1e-6 = 1e-10 pass. The differences' own noise is
#: ~eps_mach * |L| / eps per difference, and the extrapolation weights D(eps/2) by 4/3,
#: which with the forward's accumulated rounding measured up to 7e-12 (over 300
#: seeds; two of them exceeded the 1e-12 this floor used to give). A wrong backward
#: errs by the size of the gradient itself, 1e-5 and more here, far above 1e-10.
FLOOR = 1e-4


@given(st.integers(1, 5), st.integers(1, 4), st.integers(2, 4), st.integers(0, 2**31))
def test_whole_model_gradients_match_finite_differences(batch, width, classes, seed):
    rng = np.random.default_rng(seed)
    model = tn.Sequential([Dense(5, input_dim=width, dtype="float64"), Tanh(),
                           BatchNorm(dtype="float64"), Dense(classes)])
    model.reset_parameters(rng)
    loss = tn.losses.CrossEntropy()
    # With 2 samples BatchNorm's output is +-1 whatever its input (a zero gradient
    # up to eps), and with 3 its curvature is extreme; from 4 samples on, the
    # extrapolated differences resolve every gradient to 1e-6.
    x = rng.standard_normal((batch + 3, width))
    y = rng.integers(0, classes, batch + 3)

    def objective():
        return loss.forward(model.forward(x, training=True), y)

    model.zero_grad()
    objective()
    dx = model.backward(loss.backward())
    assert max_rel_error(dx, _numerical_grad(objective, x), scale_floor=1e-3,
                         floor=FLOOR) < 1e-6
    for p in model.parameters():
        assert max_rel_error(p.grad, _numerical_grad(objective, p.value),
                             scale_floor=1e-3, floor=FLOOR) < 1e-6, p.name


def test_backward_twice_accumulates_twice():
    model = tn.Sequential([Dense(3, input_dim=2, dtype="float64"), Tanh(), Dense(2)])
    x = np.random.default_rng(0).standard_normal((4, 2))
    model.zero_grad()
    model.forward(x)
    model.backward(np.ones((4, 2)))
    once = [p.grad.copy() for p in model.parameters()]
    model.backward(np.ones((4, 2)))
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g)


# ---------------------------------------------------- compile, fit, predict
def test_a_layer_run_elsewhere_between_forward_and_backward_is_refused():
    """A layer keeps the cache of its last forward. Run again between the
    model's forward and backward -- called directly, by another Sequential
    holding it, or inside a nested model -- it made the model's backward
    silently return the gradients of that other run; now a RuntimeError
    says so (before any gradient is touched, when the layer is the model's own)."""
    rng = np.random.default_rng(0)
    shared = Dense(4, activation="tanh", seed=0, name="shared_dense")
    inner = tn.Sequential([shared, Dense(4, seed=1)], input_dim=3)
    model = tn.Sequential([inner, Dense(2, seed=2, name="head")])
    other = tn.Sequential([shared])
    x, x2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    dy = rng.standard_normal((5, 2))
    refused = [lambda: model.layers[1](rng.standard_normal((5, 4))),  # the head, directly
               lambda: Dense.forward(model.get_layer("head"), rng.standard_normal((5, 4))),
               lambda: shared.forward(x2),                 # inside the nested model
               lambda: other.forward(x2)]                 # another model holding it
    names = ["Sequential '.*': Dense 'head'"] * 2 + ["Sequential '.*': Dense 'shared_dense'"] * 2
    for k, (between, name) in enumerate(zip(refused, names)):
        model.zero_grad()
        model.forward(x)
        between()
        with pytest.raises(RuntimeError, match=name + " ran a forward pass since this "
                           "model's forward .*call the model's forward again"):
            model.backward(dy, need_dx=False)
        assert k >= 2 or not any(p.grad.any() for p in model.parameters())
    model.zero_grad()
    model.forward(x)
    model.backward(dy)  # its own forward again: fine
    want = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    other.forward(x2)   # before the model's forward: nothing stale
    model.forward(x)
    model.backward(dy)
    for p, g in zip(model.parameters(), want):
        np.testing.assert_array_equal(p.grad, g)


def _functional_around(layer):
    inp = tn.mtl.Input((3,))
    return tn.mtl.Model(inp, layer(inp))


@pytest.mark.parametrize("wrap", [lambda h: tn.Sequential([h]), _functional_around],
                         ids=["Sequential", "mtl.Model"])
def test_a_model_dropped_after_a_forward_is_freed_though_its_layers_live_on(wrap):
    # each layer held the container (or graph node) whose forward its cache
    # holds by strong reference: a dropped model lived as long as its layers
    import gc
    import weakref
    layer = Dense(2, input_dim=3, seed=0)
    model = wrap(layer)
    x = np.random.default_rng(0).standard_normal((4, 3))
    model.predict(x)
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None
    assert layer._cache_owner is None
    # a model whose layer last ran in one since freed still refuses its backward
    other = wrap(layer)
    other.forward(x, training=True)
    wrap(layer).forward(x, training=True)  # dropped at once
    gc.collect()
    with pytest.raises(RuntimeError, match="ran a forward pass since this model's forward"):
        (other.backward_all if isinstance(other, tn.mtl.Model) else other.backward)(
            [np.ones((4, 2))] if isinstance(other, tn.mtl.Model) else np.ones((4, 2)))


@pytest.mark.parametrize("collect", [False, True])
def test_a_deep_copy_made_between_forward_and_backward_backpropagates(collect):
    # the copy's layers refer (weakly) to the copy as their cache's owner,
    # not to the original, also once the original is freed
    import copy
    import gc
    rng = np.random.default_rng(0)
    model = tn.Sequential([Dense(4, input_dim=3, activation="tanh", seed=0), Dense(2, seed=1)])
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    model.forward(x, training=True)
    twin = copy.deepcopy(model)
    expected = [model.backward(dy), *(p.grad.copy() for p in model.parameters())]
    if collect:
        del model
        gc.collect()
    got = [twin.backward(dy), *(p.grad for p in twin.parameters())]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("make", [
    lambda: tn.Sequential([ReLU(input_dim=3), Tanh()]),                  # no weights at all
    lambda: tn.Sequential([Dense(3, input_dim=3, seed=0)], trainable=False),  # all frozen
    lambda: tn.Sequential([Tanh()])])                                    # not built yet
def test_a_model_with_nothing_to_train_compiles_and_fits_as_keras(make, tmp_path):
    """compile raised "has no parameters to train" for a model of activations
    only. Keras 3 compiles it, and its fit warns "The model does not have any
    trainable weights" and runs, logging the loss and metrics; so does tinynet."""
    model = make()
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    model.compile("adam", loss="mse", metrics=["mae"])
    before = model.get_weights()
    with pytest.warns(UserWarning, match="Sequential '.*' has no trainable parameters .*the "
                                         "loss and metrics are still computed"):
        history = model.fit(x, x, epochs=2, batch_size=4, verbose=0, shuffle=False)
    assert history.history["loss"][0] == history.history["loss"][1] > 0
    assert model.evaluate(x, x) == pytest.approx({"loss": history.history["loss"][0],
                                                  "mae": history.history["mae"][0]}, rel=1e-6)
    assert model.predict(x).shape == (6, 3)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.save(tmp_path / "m.npz")
    assert tn.load(tmp_path / "m.npz").evaluate(x, x) == model.evaluate(x, x)


def test_a_frozen_nested_model_keeps_a_layer_set_trainable_inside_it_frozen(tmp_path):
    """Keras' rule: a layer set trainable inside a frozen nested model does
    not train (the frozen parent wins). It trained. Each layer keeps its own
    flag, through save and load too, and unfreezing the parent lets it train."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    base = tn.Sequential([Dense(4, input_dim=3, seed=0, name="fc1"),
                          Dense(4, seed=1, name="fc2")], name="base")
    model = tn.Sequential([base, Dense(2, seed=2, name="head")])
    base.trainable = False
    base.get_layer("fc2").trainable = True
    late = Dense(4, seed=3, name="late")
    base.add(late)           # joins a frozen model: frozen too, its own flag on
    assert base.get_layer("fc2").trainable and late.trainable and not base.trainable
    assert [p.name for p in model.trainable_parameters()] == ["head/W", "head/b"]
    model.compile("sgd", loss="cross_entropy")
    for m in (model, tn.load(model.save(tmp_path / "m.npz"))):
        inner = m.layers[0]
        assert [la.trainable for la in (inner, *inner.layers)] == [False, False, True, True]
        before = inner.get_weights()
        m.fit(x, y, epochs=2, batch_size=4, verbose=0)
        for a, b in zip(before, inner.get_weights()):
            np.testing.assert_array_equal(a, b)
    base.trainable = True    # sets every flag inside it, as Keras
    assert len(model.trainable_parameters()) == 8
    popped = base.pop()
    base.trainable = False
    assert popped.trainable and all(p.trainable for p in popped.parameters())  # not held now


def test_parameter_flags_follow_one_rule_through_adopt_pop_build_and_setter():
    """Layer._sync_param_flags serves add_param, the trainable setter, adopt
    and release: a frozen container switches a layer's parameters off
    whatever their flags; an unfrozen one, and popping a layer whose own
    flag is off, keep a flag set by hand on a Param; popping a layer whose
    own flag is on lets it train again; setting the layer's flag sets them all."""
    def flags(layer):
        return [p.trainable for p in layer.parameters()]

    fc = Dense(3, input_dim=2, name="fc")
    fc.trainable = False
    fc.b.trainable = True                  # frozen but for its bias
    outer = tn.Sequential([fc])            # adopted by an unfrozen container: kept
    assert flags(fc) == [False, True]
    outer.pop()
    assert flags(fc) == [False, True]
    frozen = tn.Sequential([Dense(2, input_dim=2)])
    frozen.trainable = False
    frozen.add(fc)                         # the frozen container wins
    assert flags(fc) == [False, False]
    frozen.pop()                           # its own flag is off: stays off
    assert flags(fc) == [False, False] and not fc.trainable
    late = Dense(3, name="late")           # built inside the frozen container
    frozen.add(late)
    assert late.trainable and flags(late) == [False, False]
    frozen.pop()                           # its own flag is on: trains again
    assert flags(late) == [True, True]
    fc.trainable = True                    # the layer's flag sets every parameter's
    assert flags(fc) == [True, True]


def test_fit_lowers_the_loss_and_evaluate_reports_metrics():
    x, y = _classification()
    model = _mlp()
    before = model.evaluate(x, y)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0, seed=0)
    after = model.evaluate(x, y)
    assert set(after) == {"loss", "accuracy"}
    assert after["loss"] < before["loss"] and history.history["loss"][-1] < \
        history.history["loss"][0]


def test_evaluate_equals_the_loss_and_metric_on_the_whole_set():
    x, y = _classification(n=37)
    model = _mlp()
    scores = model.evaluate(x, y, batch_size=8)
    logits = model.predict(x)
    assert scores["loss"] == pytest.approx(tn.losses.CrossEntropy()(logits, y), rel=1e-6)
    assert scores["accuracy"] == pytest.approx(tn.metrics.accuracy(logits, y))


def test_predict_is_independent_of_batch_size_and_helpers_agree():
    x, _ = _classification(n=25)
    model = _mlp()
    logits = model.predict(x, batch_size=25)
    # in float32 a batch of 4 may take another GEMM kernel (another summation
    # order): entries agree to a few ulps of the largest logit, not of their own
    np.testing.assert_allclose(model.predict(x, batch_size=4), logits, rtol=1e-6,
                               atol=1e-6 * np.abs(logits).max())
    wide = _mlp().astype(np.float64)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(wide.predict(x64, batch_size=4), wide.predict(x64, batch_size=25),
                               rtol=1e-12, atol=1e-14)
    probs = model.predict_proba(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.predict_classes(x), logits.argmax(axis=1))


def test_binary_model_helpers():
    model = tn.Sequential([Dense(1, input_dim=2)])
    model.compile(optimizer="sgd", loss="binary_cross_entropy", metrics=["accuracy"])
    x = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    logits = model.predict(x)
    assert model.predict_proba(x).shape == (2, 1)  # Keras 2's, as documented (not sklearn's)
    np.testing.assert_allclose(model.predict_proba(x), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_array_equal(model.predict_classes(x), (logits[:, 0] > 0).astype(int))


@pytest.mark.parametrize("units, activation, outputs, expected", [
    (3, None, [[np.nan] * 3, [1.0, np.nan, 0.0], [0.0, 2.0, np.inf]], [-1, -1, 2]),
    (1, None, [[np.nan], [1.0], [-1.0]], [-1, 1, 0]),
    (1, "sigmoid", [[np.nan], [0.7], [0.2]], [-1, 1, 0])])
def test_predict_classes_labels_a_nan_output_no_class(units, activation, outputs, expected):
    # the arg-max read a row of NaN as class 0 (NaN > threshold: class 0 too), so
    # predict_classes(x) == y counted a diverged model right on class 0
    model = tn.Sequential([Dense(units, activation=activation, input_dim=2)])
    outputs = np.array(outputs, np.float32)
    model.predict = lambda x, batch_size=32, **progress: outputs   # (verbose, stream)
    labels = model.predict_classes(np.zeros((3, 2), np.float32))
    assert labels.dtype == np.int64 and labels.tolist() == expected
    # one rule: the compiled "accuracy" counts a sample right iff predict_classes does
    accuracy = tn.metrics.for_output(tn.metrics.Accuracy(), model)
    for row, label in zip(outputs, labels):
        for c in range(max(2, units)):
            assert accuracy(row[None], [c]) == (label == c)


@pytest.mark.parametrize("units, activation, loss, outputs, expected", [
    # one unit: logit > 0, or probability > 0.5 after a sigmoid
    (1, None, "binary_cross_entropy", [[0.3], [-0.1], [0.7]], [1, 0, 1]),
    (1, "sigmoid", "binary_cross_entropy", [[0.3], [0.2], [0.7]], [0, 0, 1]),
    # a softmax over one unit is 1 everywhere: > 0, class 1 (not a sigmoid's 0.5)
    (1, "softmax", "cross_entropy", [[1.0], [1.0], [1.0]], [1, 1, 1]),
    # two units or more: the arg-max, whatever the activation or loss
    (2, None, "cross_entropy", [[0.3, -0.1], [-0.2, 0.4], [0.0, 0.0]], [0, 1, 0]),
    (2, "softmax", "cross_entropy", [[0.6, 0.4], [0.3, 0.7], [0.5, 0.5]], [0, 1, 0]),
    (2, "sigmoid", "binary_cross_entropy", [[0.3, 0.4], [0.2, 0.1], [0.7, 0.9]], [1, 0, 1]),
    (3, "sigmoid", "cross_entropy", [[0.3, 0.4, 0.2], [0.9, 0.1, 0.2], [0.1, 0.2, 0.6]],
     [1, 0, 2])])
def test_predict_classes_thresholds_one_unit_only(units, activation, loss, outputs, expected):
    # predict_classes and the metrics take one rule for "binary" (one output unit)
    model = tn.Sequential([Dense(units, activation=activation, input_dim=2)])
    model.compile("sgd", loss=loss)
    outputs = np.array(outputs, np.float32)
    model.predict = lambda x, batch_size=32, **progress: outputs   # (verbose, stream)
    assert model.predict_classes(np.zeros((3, 2), np.float32)).tolist() == expected
    assert (tn.metrics._is_binary_output(outputs)) == (units == 1)


# ------------------------------------- outputs that are already probabilities
def _softmax_heads(d=4, classes=3, seed=0):
    """Three ways to end in a softmax, with the same weights: a fused activation,
    a Softmax layer, a nested Sequential that ends in one."""
    models = [tn.Sequential([Dense(classes, activation="softmax", input_dim=d,
                                   dtype="float64")]),
              tn.Sequential([Dense(classes, input_dim=d, dtype="float64"), Softmax()]),
              tn.Sequential([tn.Sequential([Dense(classes, input_dim=d, dtype="float64"),
                                            Softmax()])])]
    for model in models:
        model.reset_parameters(seed)
    return models


@pytest.mark.parametrize("head", range(3))
def test_softmax_output_loss_is_the_cross_entropy_of_its_probabilities(head):
    model = _softmax_heads()[head]
    model.compile("adam", loss="cross_entropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 4)), np.arange(20) % 3
    probs = model.predict(x)
    true_ce = -np.log(probs[np.arange(20), y]).mean()
    scores = model.evaluate(x, y)
    assert scores["loss"] == pytest.approx(true_ce, rel=1e-12)
    assert scores["accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == y))
    np.testing.assert_array_equal(model.predict_proba(x), probs)  # no second softmax
    np.testing.assert_array_equal(model.predict_classes(x), probs.argmax(axis=1))


@pytest.mark.parametrize("soft_targets", [False, True])
def test_softmax_output_passes_the_linear_models_gradient_to_the_logits(soft_targets):
    """dL/dz through the softmax is (p - t)/B, as CrossEntropy gives a linear head."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 4))
    y = rng.dirichlet(np.ones(3), 7) if soft_targets else rng.integers(0, 3, 7)
    fused, layered, _ = _softmax_heads(seed=3)
    linear = tn.Sequential([Dense(3, input_dim=4, dtype="float64")])
    linear.set_weights(fused.get_weights())
    grads = []
    for model in (linear, fused, layered):
        model.compile("sgd", loss=tn.losses.CrossEntropy(label_smoothing=0.1))
        model.zero_grad()
        model.loss.forward(model.forward(x, training=True), y)
        dx = model.backward(model.loss.backward())
        grads.append([dx] + [p.grad.copy() for p in model.parameters()])
    logits = linear.predict(x)
    target = tn.losses.CrossEntropy(label_smoothing=0.1)._check_target(logits, y)
    dz = (tn.losses.softmax(logits) - target) / len(x)
    np.testing.assert_allclose(layered.layers[1].backward(
        layered.loss.backward()), dz, rtol=1e-12, atol=1e-15)
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)


@given(st.integers(1, 6), st.integers(2, 4), st.booleans(), st.integers(0, 2**31))
def test_softmax_and_sigmoid_outputs_pass_gradcheck_with_the_swapped_loss(batch, classes,
                                                                        sigmoid, seed):
    rng = np.random.default_rng(seed)
    units, activation = (1, "sigmoid") if sigmoid else (classes, "softmax")
    model = tn.Sequential([Dense(5, activation="tanh", input_dim=3, dtype="float64"),
                           Dense(units, activation=activation)])
    model.reset_parameters(rng)
    model.compile("sgd", loss="binary_cross_entropy" if sigmoid else "cross_entropy")
    assert type(model.loss).__name__ == ("SigmoidOutputBinaryCrossEntropy" if sigmoid
                                         else "SoftmaxOutputCrossEntropy")
    y = rng.random((batch, 1)) if sigmoid else rng.integers(0, classes, batch)
    result = tn.gradcheck(model, rng.standard_normal((batch, 3)), y, loss=model.loss)
    assert result.passed, str(result)


def test_sigmoid_output_probabilities_classes_accuracy_and_loss():
    model = tn.Sequential([Dense(1, activation="sigmoid", input_dim=2)])
    model.set_weights([np.array([[2.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    model.compile("sgd", loss="binary_cross_entropy", metrics=["accuracy"])
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, 0.0], [-2.0, 0.0]], np.float32)
    y = np.array([1, 0, 0, 0])
    probs = model.predict(x)[:, 0]  # 0.88, 0.12, 0.73, 0.02
    np.testing.assert_array_equal(model.predict_proba(x)[:, 0], probs)
    np.testing.assert_array_equal(model.predict_classes(x), [1, 0, 1, 0])
    scores = model.evaluate(x, y)
    assert scores["accuracy"] == 0.75  # thresholded at 0 it would be 0.25, all ones
    true_bce = -np.mean(y * np.log(probs) + (1 - y) * np.log(1 - probs))
    assert scores["loss"] == pytest.approx(true_bce, rel=1e-6)
    # an Accuracy the user set a threshold on keeps it
    model.compile("sgd", loss="binary_cross_entropy",
                  metrics=[tn.metrics.Accuracy(threshold=0.8)])
    assert model.evaluate(x, y)["accuracy"] == 1.0


def test_add_and_pop_fit_the_loss_to_the_new_last_layer():
    model = tn.Sequential([Dense(3, input_dim=4), Softmax()])
    model.compile("sgd", loss="cross_entropy")
    assert type(model.loss).__name__ == "SoftmaxOutputCrossEntropy"
    model.pop()
    assert type(model.loss) is tn.losses.CrossEntropy
    model.add(Softmax())
    assert type(model.loss).__name__ == "SoftmaxOutputCrossEntropy"
    assert model.get_compile_config()["loss"]["class"] == "CrossEntropy"


def test_validation_split_holds_out_the_last_samples():
    x, y = _classification(n=40)
    model = _mlp()
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0, seed=0)
    # fit trained on the first 30 and validated on the last 10
    model_2 = _mlp()
    history_2 = model_2.fit(x[:30], y[:30], epochs=1, validation_data=(x[30:], y[30:]),
                            verbose=0, seed=0)
    assert history.history == history_2.history
    # any real number: np.float32(0.25) was refused as not "in [0, 1)"
    history_3 = _mlp().fit(x, y, epochs=1, validation_split=np.float32(0.25), verbose=0, seed=0)
    assert history_3.history == history.history


def test_float64_inputs_are_cast_to_a_float32_model():
    x, y = _classification()
    model = _mlp()
    model.fit(x.astype(np.float64), y, epochs=1, verbose=0)
    assert model.predict(x.astype(np.float64)).dtype == np.float32


def test_frozen_layer_stays_bit_identical_during_fit():
    x, y = _classification()
    model = _mlp()
    first = model.layers[0]
    first.trainable = False
    frozen = [p.value.copy() for p in first.parameters()]
    model.fit(x, y, epochs=2, verbose=0)
    for p, before in zip(first.parameters(), frozen):
        assert np.array_equal(p.value, before)
    assert not np.array_equal(model.layers[2].W.value, _mlp().layers[2].W.value)



def test_sequential_trainable_false_freezes_its_layers_and_a_file_keeps_each_flag(tmp_path):
    # the model said it was frozen while fit trained every weight
    built = tn.Sequential([Dense(4, input_dim=3), Dense(2)], trainable=False)
    lazy = tn.Sequential([Dense(4), Dense(2)], trainable=False)
    lazy.build((None, 3))
    for model in (built, lazy):
        assert model.parameters() and not any(p.trainable for p in model.parameters())
        assert not any(layer.trainable for layer in model.layers)
    built.layers[1].trainable = True                     # one layer thawed inside the model
    path = built.save(str(tmp_path / "m.npz"))
    loaded = tn.load(path)
    assert not loaded.trainable
    assert [layer.trainable for layer in loaded.layers] == [False, True]
    assert [p.trainable for p in loaded.parameters()] == [p.trainable for p in built.parameters()]

def test_compile_by_names_and_unknown_names():
    model = tn.Sequential([Dense(2, input_dim=3)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    assert isinstance(model.optimizer, tn.optim.SGD) and model.optimizer.params
    with pytest.raises(ValueError, match="unknown optimizer 'adma'; did you mean 'adam'"):
        model.compile(optimizer="adma", loss="mse")
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(optimizer="adam", loss="cross_entropie")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'; did you mean 'accuracy'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="expected a loss"):
        model.compile(optimizer="adam")
    with pytest.raises(TypeError, match="optimizer name or object"):
        model.compile(optimizer=3, loss="mse")
    with pytest.raises(ValueError, match="2 metrics are named .mae.*give one a name of its own"):
        model.compile(optimizer="adam", loss="mse", metrics=["mae", "mae"])


def test_an_unbound_optimizer_is_bound_when_a_lazy_model_builds():
    x, y = _classification()
    model = tn.Sequential([Dense(4)])
    optimizer = Adam(lr=0.01)
    model.compile(optimizer=optimizer, loss="cross_entropy")
    assert not optimizer.params
    model.fit(x, y, epochs=1, verbose=0)
    assert optimizer.params == model.parameters()


def test_reset_parameters_rebinds_the_optimizer():
    x, y = _classification()
    model = _mlp()
    model.fit(x, y, verbose=0)
    model.reset_parameters(1)
    model.fit(x, y, verbose=0)
    assert [id(p) for p in model.optimizer.params] == [id(p) for p in model.parameters()]


def test_fit_and_evaluate_need_compile():
    x, y = _classification()
    with pytest.raises(RuntimeError, match="compile"):
        tn.Sequential([Dense(2, input_dim=10)]).fit(x, y)
    with pytest.raises(RuntimeError, match="compile"):
        tn.Sequential([Dense(2, input_dim=10)]).evaluate(x, y)


# --------------------------------------------------------------- bad input
X, Y = _classification(n=12)


@pytest.mark.parametrize("x, y, error, match", [
    (X[:, :7], Y, ValueError, r"expected x of shape \(batch, 10\), received \(12, 7\)"),
    (X[0], Y, ValueError, "n_samples, features"),
    (X.astype(np.int64), Y, TypeError, "floating-point.*astype"),
    (X.astype(object), Y, TypeError, "floating-point"),
    (X.astype(np.float16), Y, TypeError,
     r"Sequential '.*'\.(fit|evaluate) expected float32 or float64 x, received float16 "
     r"\(use x\.astype\('float32'\)\)"),
    (np.where(np.arange(12)[:, None] == 3, np.nan, X), Y, ValueError, "finite x"),
    (np.where(np.arange(12)[:, None] == 3, np.inf, X), Y, ValueError, "finite x"),
    (X, np.where(np.arange(12) == 2, np.nan, Y.astype(float)), ValueError, "finite targets"),
    (X, Y[:11], ValueError, "expected 12 targets"),
    (X, np.where(np.arange(12) == 5, 4, Y), ValueError, r"labels in \[0, 3\]"),
    (X, np.where(np.arange(12) == 5, -1, Y), ValueError, r"labels in \[0, 3\]"),
    (X, Y.astype(str), TypeError, "numeric targets"),
    (X[:0], Y[:0], ValueError, "at least one sample"),
])
def test_fit_and_evaluate_refuse_bad_data(x, y, error, match):
    model = _mlp()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(x, y, verbose=0)
    with pytest.raises(error, match=match):
        model.evaluate(x, y)
    for got, want in zip(model.get_weights(), before):  # refused before any step
        assert np.array_equal(got, want)


def test_a_metric_that_does_not_suit_the_targets_fails_before_training():
    # only the loss was tried on the targets first: accuracy on a regression
    # raised after the first optimizer step had changed the weights
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    model = tn.Sequential([tn.layers.Dense(1, input_dim=3, dtype="float64")])
    model.compile("sgd", loss="mse", metrics=["accuracy"])
    before = model.get_weights()
    with pytest.raises(TypeError, match="accuracy expected integer class labels"):
        model.fit(x, y, verbose=0)
    for got, want in zip(model.get_weights(), before):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad", "adamw"])
def test_a_lazy_model_refuses_float16_before_building(optimizer):
    # unbuilt, it would build in float16, which no kernel or optimizer state supports
    model = tn.Sequential([tn.layers.Dense(8), tn.layers.Dense(3)])
    model.compile(optimizer, loss="cross_entropy")
    with pytest.raises(TypeError, match="expected float32 or float64 x, received float16"):
        model.fit(np.ones((32, 4), np.float16), np.arange(32) % 3, verbose=0)
    assert not model.built


def test_bad_validation_data_is_refused_before_training():
    model = _mlp()
    with pytest.raises(ValueError, match=r"labels in \[0, 3\]"):
        model.fit(X, Y, validation_data=(X, Y + 4), verbose=0)
    with pytest.raises(TypeError, match="tuple"):
        model.fit(X, Y, validation_data=X, verbose=0)
    with pytest.raises(ValueError, match="not both"):
        model.fit(X, Y, validation_data=(X, Y), validation_split=0.5, verbose=0)


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_size": 0}, ValueError), ({"batch_size": -1}, ValueError),
    ({"batch_size": 2.0}, TypeError), ({"epochs": -1}, ValueError),
    ({"validation_split": 1.0}, ValueError), ({"validation_split": 0.99}, ValueError),
    ({"validation_split": float("nan")}, ValueError), ({"validation_split": True}, TypeError),
    ({"validation_split": "0.2"}, TypeError),
    ({"verbose": 5}, ValueError), ({"shuffle": "no"}, TypeError),
])
def test_fit_refuses_bad_settings(kwargs, error):
    with pytest.raises(error):
        _mlp().fit(X, Y, **{"verbose": 0, **kwargs})


@pytest.mark.parametrize("seed, error", [("a", TypeError), (1.5, TypeError),
                                         (True, TypeError), (-1, ValueError)])
def test_fit_seed_must_be_a_non_negative_integer(seed, error):
    # the seed feeds NumPy's SeedSequence: say so before NumPy does
    with pytest.raises(error, match=r"fit expected seed as None or a non-negative integer, "
                                    rf"received {seed!r}"):
        _lazy_mlp().fit(X, Y, verbose=0, seed=seed)


def test_fit_seed_accepts_numpy_integers():
    a, b = _lazy_mlp(), _lazy_mlp()
    a.fit(X, Y, verbose=0, seed=3)
    b.fit(X, Y, verbose=0, seed=np.int64(3))
    for u, v in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(u, v)


def _lazy_mlp():
    model = tn.Sequential([Dense(8, activation="relu"), Dense(4)])  # built by fit
    model.compile(optimizer="sgd", loss="cross_entropy")
    return model


def test_predict_and_evaluate_refuse_an_unbuilt_model_so_fit_seed_stays_reproducible():
    # building here would draw unseeded weights that fit(seed=0) then keeps
    model = _lazy_mlp()
    with pytest.raises(ValueError, match="predict: the model is not built.*call fit first"):
        model.predict(X)
    with pytest.raises(ValueError, match="evaluate: the model is not built"):
        model.evaluate(X, Y)
    with pytest.raises(ValueError, match="not built"):
        model.predict_classes(X)
    assert not model.built
    model.fit(X, Y, verbose=0, seed=0)
    fresh = _lazy_mlp()
    fresh.fit(X, Y, verbose=0, seed=0)
    for u, v in zip(model.get_weights(), fresh.get_weights()):
        assert np.array_equal(u, v)
    model.predict(X)  # built now


def test_predict_bad_input():
    model = _mlp()
    with pytest.raises(ValueError, match=r"\(batch, 10\)"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="at least one sample"):
        model.predict(X[:0])
    with pytest.raises(ValueError):
        model.predict(X, batch_size=0)
    with pytest.raises(TypeError):
        model.predict(X.astype(np.int32))


@pytest.mark.parametrize("call, error, match", [
    # each used to fail inside Python or NumPy: "'int' object is not iterable",
    # "SeedSequence expects int...", "setting an array element with a sequence"
    (lambda: tn.Sequential([Dense(2)]).build(5), TypeError,
     "expected an input shape as a tuple of positive integers such as \\(784,\\), received 5"),
    (lambda: Dense(2, input_shape=5), TypeError, "expected an input shape as a tuple"),
    (lambda: tn.Sequential([Dense(2)]).build((5,), seed="a"), TypeError,
     "build expected seed as None or a non-negative integer, received 'a'"),
    (lambda: _mlp().reset_parameters("a"), TypeError,
     "reset_parameters expected seed as None or a non-negative integer"),
    (lambda: _mlp().reset_parameters(-1), ValueError,
     "reset_parameters expected seed as None or a non-negative integer, received -1"),
    (lambda: _mlp().fit(X[:2], [[1, 2], [1]], verbose=0), TypeError,
     "fit expected targets y as a numeric array, received list that NumPy cannot convert"),
])
def test_bad_shapes_seeds_and_targets_get_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_multi_task_model_is_refused_as_a_layer_of_a_sequential():
    # it failed at build with "expected an input shape of positive integers,
    # received ((3,),)", or "built for input (batch, (3,))"
    multi = tn.mtl.HardSharing((3,), trunk=[Dense(4)], heads={"a": [Dense(1)], "b": [Dense(1)]})
    with pytest.raises(TypeError, match="cannot hold .*a tinynet.mtl.Model.*call it on tensors"):
        tn.Sequential([multi])
    model = tn.Sequential([Dense(3, input_dim=3)])
    with pytest.raises(TypeError, match="a model inside another is not supported"):
        model.add(multi)


def test_the_refusal_of_a_multi_task_model_in_a_sequential_counts_its_inputs_and_outputs():
    # it said "(several inputs or outputs)" of a model with one of each
    inp = tn.mtl.Input((3,))
    single = tn.mtl.Model(inp, Dense(2)(inp), name="single")
    with pytest.raises(TypeError, match=r"cannot hold Model 'single', a tinynet.mtl.Model \(1 "
                                        r"input, 1 output\): a model inside another is not "
                                        r"supported in a Sequential, even with one input"):
        tn.Sequential([single])
    multi = tn.mtl.HardSharing((3,), trunk=[Dense(4)], heads={"a": [Dense(1)], "b": [Dense(1)]})
    with pytest.raises(TypeError, match=r"\(1 input, 2 outputs\): a model inside another is "
                                        r"not supported in a Sequential; call it") as refused:
        tn.Sequential([multi])
    assert "even with one input" not in str(refused.value)  # it said so of 2 outputs


# ------------------------------------------------------------- sample weights
def _weighted_setup(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 4))
    y = rng.integers(0, 3, 30)
    w = rng.random(30) * 2
    model = tn.Sequential([Dense(5, activation="tanh", input_dim=4, seed=seed, dtype="float64"),
                           Dense(3, seed=seed + 1, dtype="float64")])
    model.compile(tn.optim.SGD(lr=0.1), loss="cross_entropy", metrics=["accuracy"])
    return model, x, y, w


def test_fit_with_sample_weight_steps_on_the_weighted_mean_loss():
    # one full batch: the step is the gradient of sum(w_i l_i) / sum(w_i), which
    # equals training on the samples repeated w_i times for integer weights
    model, x, y, _ = _weighted_setup()
    counts = np.array([0, 1, 2, 3, 1] * 6)
    twin, *_ = _weighted_setup()
    model.fit(x, y, epochs=1, batch_size=30, shuffle=False, verbose=0, sample_weight=counts)
    twin.fit(np.repeat(x, counts, axis=0), np.repeat(y, counts), epochs=1,
             batch_size=int(counts.sum()), shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_evaluate_with_sample_weight_is_the_weighted_mean_over_every_batch():
    model, x, y, w = _weighted_setup()
    per_sample = [model.evaluate(x[i:i + 1], y[i:i + 1])["loss"] for i in range(30)]
    expected = float(np.dot(w, per_sample) / w.sum())
    for batch_size in (1, 7, 30):
        scores = model.evaluate(x, y, batch_size=batch_size, sample_weight=w)
        assert scores["loss"] == pytest.approx(expected, rel=1e-12)
        assert scores["accuracy"] == model.evaluate(x, y)["accuracy"]  # metrics unweighted
    assert model.evaluate(x, y, sample_weight=np.zeros(30))["loss"] == 0.0
    assert model.evaluate(x, y, sample_weight=np.ones(30))["loss"] == pytest.approx(
        model.evaluate(x, y)["loss"], rel=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", {"class": "CrossEntropy",
                                                    "config": {"weight": [1.0, 3.0, 0.5]}}])
def test_the_epoch_loss_of_a_weighted_fit_is_the_weighted_mean_of_the_epoch(loss):
    # lr=0: the logged training loss of an epoch is evaluate's weighted mean on
    # the same data (each batch's weighted mean counts by its total weight,
    # not its size), as its val_loss is, and as Keras' are equal
    model, x, y, w = _weighted_setup()
    model.compile(tn.optim.SGD(lr=0.0), loss=loss)
    for kwargs in ({"sample_weight": w}, {"class_weight": {0: 2.0, 1: 0.5}}):
        history = model.fit(x, y, epochs=1, batch_size=7, shuffle=False, verbose=0,
                            validation_data=(x, y, w if "sample_weight" in kwargs else None),
                            **kwargs)
        by_class = np.array([2.0, 0.5, 1.0])[y] if "class_weight" in kwargs else w
        exact = model.evaluate(x, y, sample_weight=by_class, batch_size=7)["loss"]
        assert history.history["loss"][0] == pytest.approx(exact, rel=1e-12), kwargs
    # all the weights of the first batch 0: it counts for nothing, not as a loss of 0
    w[:7] = 0
    history = model.fit(x, y, epochs=1, batch_size=7, shuffle=False, verbose=0, sample_weight=w)
    assert history.history["loss"][0] == pytest.approx(
        model.evaluate(x, y, sample_weight=w)["loss"], rel=1e-12)


@pytest.mark.parametrize("scale", [1e308, np.finfo(np.float64).max])
def test_weights_whose_sum_overflows_give_the_mean_of_their_scaled_copy(scale):
    # np.full(n, 1e308) summed to inf: the logged loss was inf/inf, NaN; the
    # weighted mean does not change when every weight is scaled, so fit and
    # evaluate divide by the largest weight (only then: ordinary weights stay)
    model, x, y, w = _weighted_setup()
    twin, *_ = _weighted_setup()
    big = w / w.max() * scale
    with np.errstate(over="ignore"):
        assert not np.isfinite(big.sum())
    kwargs = dict(epochs=2, batch_size=7, shuffle=False, verbose=0)
    history = model.fit(x, y, sample_weight=big, validation_data=(x, y, big), **kwargs)
    expected = twin.fit(x, y, sample_weight=big / scale, validation_data=(x, y, big / scale),
                        **kwargs)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history == expected.history  # the same run, to the bit
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.evaluate(x, y, sample_weight=big) == \
        model.evaluate(x, y, sample_weight=big / scale)
    full = model.fit(x, y, sample_weight=np.full(30, 1e308), **kwargs)  # the case reported
    ones = twin.fit(x, y, sample_weight=np.ones(30), **kwargs)
    assert full.history == ones.history


def test_summable_weights_changes_nothing_when_the_sum_is_finite():
    from tinynet.checks import summable_weights
    w = np.array([1e307, 3.0, 0.0])
    assert summable_weights(w) is w and summable_weights(None) is None
    np.testing.assert_array_equal(summable_weights(np.array([1e308, 1e308, 0.0])), [1, 1, 0])


def test_validation_split_and_validation_data_carry_the_weights():
    model, x, y, w = _weighted_setup()
    history = model.fit(x, y, epochs=1, verbose=0, sample_weight=w, validation_split=0.2,
                        shuffle=False)
    # the held-out last 6 samples, scored with their weights after the epoch
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[24:], y[24:], sample_weight=w[24:])["loss"], rel=1e-12)
    history = model.fit(x[:24], y[:24], epochs=1, verbose=0,
                        validation_data=(x[24:], y[24:], w[24:]))
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(x[24:], y[24:], sample_weight=w[24:])["loss"], rel=1e-12)


@pytest.mark.parametrize("weight, error, match", [
    (np.ones(29), ValueError, r"sample_weight of shape \(30,\) \(one per sample\)"),
    (-np.ones(30), ValueError, "non-negative sample_weight"),
    (np.full(30, np.nan), ValueError, "finite"),
    (np.array(["a"] * 30), TypeError, "sample_weight as a numeric array"),
])
def test_bad_sample_weights_are_refused_before_training(weight, error, match):
    model, x, y, _ = _weighted_setup()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(x, y, epochs=1, verbose=0, sample_weight=weight)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(error, match=match):
        model.evaluate(x, y, sample_weight=weight)


def test_fit_does_not_warn_of_nothing_to_train_when_a_callback_unfreezes_first():
    # the check runs at the first step, after on_train_begin/on_epoch_begin
    model = tn.Sequential([Dense(2, input_dim=3, seed=0)], trainable=False)
    model.compile("sgd", loss="mse")

    class Unfreeze(tn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.trainable = True

    x = np.ones((4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, np.zeros((4, 2)), verbose=0, callbacks=[Unfreeze()])


def test_batch_size_none_means_keras_32():
    # Keras' fit, evaluate and predict take batch_size=None for 32; tinynet
    # raised a TypeError
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((70, 4)), rng.integers(0, 3, 70)
    runs = []
    for batch_size in (None, 32):
        model = tn.Sequential([Dense(5, activation="relu"), Dense(3)])
        model.compile("adam", loss="cross_entropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0, seed=0)
        runs.append((history.history, model.evaluate(x, y, batch_size=batch_size),
                     model.predict(x, batch_size=batch_size)))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    with pytest.raises(TypeError, match="batch_size as a positive integer"):
        model.predict(x, batch_size=32.0)


class _ShapeRecorder(tn.losses.CrossEntropy):
    """A cross-entropy that notes the number of rows of every prediction it sees."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def forward(self, pred, target, sample_weight=None, mask=None):
        self.rows.append(np.shape(pred)[0])
        return super().forward(pred, target, sample_weight=sample_weight, mask=mask)


def test_the_target_check_before_training_holds_no_prediction_sized_array(monkeypatch):
    # it made np.zeros((n, *output_shape)) for the whole set: memory for large outputs
    monkeypatch.setattr(tn.training, "CHECK_ELEMENTS", 30)  # 3 samples of 10 outputs
    model = tn.Sequential([Dense(10, input_dim=4, seed=0)])
    model.compile("sgd", loss=_ShapeRecorder(), metrics=["accuracy", "auc"])
    x, y = np.zeros((100, 4), np.float32), np.arange(100) % 10
    model.evaluate(x, y, batch_size=2)
    assert max(model.loss.rows) == 3
    # a chunk of one class leaves the AUC undefined there; the whole set has all ten
    model.evaluate(x, np.sort(y), batch_size=2)


@pytest.mark.parametrize("bad, match", [
    (lambda y: np.where(np.arange(100) == 97, 12, y), r"received values in \[0, 12\]"),
    (lambda y: np.stack([y, y], axis=1), r"of the logits' shape \(100, 10\), received \(100, 2\)"),
])
def test_the_chunked_target_check_reports_the_whole_set(monkeypatch, bad, match):
    monkeypatch.setattr(tn.training, "CHECK_ELEMENTS", 30)
    model = tn.Sequential([Dense(10, input_dim=4, seed=0)])
    model.compile("sgd", loss="cross_entropy", metrics=["accuracy"])
    with pytest.raises(ValueError, match=match):
        model.fit(np.zeros((100, 4), np.float32), bad(np.arange(100) % 10), verbose=0)


def test_the_chunked_target_check_of_a_multi_task_model_reports_the_whole_set(monkeypatch):
    monkeypatch.setattr(tn.training, "CHECK_ELEMENTS", 30)
    inp = tn.mtl.Input((4,), name="x")
    model = tn.mtl.Model(inp, {"a": Dense(10, seed=0)(inp)})
    model.compile("sgd", loss={"a": "cross_entropy"}, metrics={"a": ["accuracy"]})
    x, y = np.zeros((100, 4), np.float32), np.arange(100) % 10
    model.evaluate(x, {"a": y})
    with pytest.raises(ValueError, match=r"task 'a'.*received values in \[0, 12\]"):
        model.evaluate(x, {"a": np.where(np.arange(100) == 97, 12, y)})


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_evaluate_and_predict_take_keras_verbose(capsys):
    # model.evaluate(x, y, verbose=0) and model.predict(x, verbose=0), common
    # Keras calls, raised TypeError. Silent by default (as before); 1, 2 or
    # "auto" show the batches as fit shows an epoch; the values are the same
    x, y = _classification()
    model = _mlp()
    model.compile(optimizer=Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy", "auc"])
    quiet, outputs = model.evaluate(x, y), model.predict(x)
    assert model.evaluate(x, y, verbose=0) == quiet
    np.testing.assert_array_equal(model.predict(x, verbose=0), outputs)
    np.testing.assert_array_equal(model.predict_classes(x, verbose=0), outputs.argmax(-1))
    assert capsys.readouterr().out == ""
    for verbose in (1, 2, "auto"):  # (capsys is no terminal: one line)
        assert model.evaluate(x, y, verbose=verbose) == quiet
        assert re.fullmatch(r"evaluate - \S+ - loss: \d\.\d{4} - accuracy: \d\.\d{4} - "
                            r"auc: \d\.\d{4}\n", capsys.readouterr().out)
        np.testing.assert_array_equal(model.predict(x, verbose=verbose), outputs)
        assert re.fullmatch(r"predict - \S+\n", capsys.readouterr().out)
    # on a terminal, a live bar with the running values, ending in the exact ones
    terminal = _Terminal()
    assert model.evaluate(x, y, batch_size=1, verbose=1, stream=terminal) == \
        model.evaluate(x, y, batch_size=1)
    frames = terminal.getvalue().split("\r")[1:]
    assert frames[0].startswith("evaluate   1/48 [>") and " ETA " in frames[0]
    assert frames[-1].startswith("evaluate  48/48 [====") and frames[-1].endswith("\n")
    assert f"auc: {quiet['auc']:.4f}" in frames[-1]
    for verbose in ("auto", 2):  # "auto" draws the live bar as 1 (not one line, as 2)
        for call in (model.evaluate, model.predict):
            terminal = _Terminal()
            call(*((x, y) if call == model.evaluate else (x,)), batch_size=1,
                 verbose=verbose, stream=terminal)
            frames = terminal.getvalue().split("\r")[1:]
            label = call.__name__
            assert (frames[-1].startswith(f"{label}  48/48 [====") if verbose == "auto"
                    else frames == []), (label, verbose)
    for call in (lambda: model.evaluate(x, y, verbose=3), lambda: model.predict(x, verbose="1")):
        with pytest.raises(ValueError, match=r"\.(evaluate|predict) expected verbose 0, 1, 2 "
                                             r"or 'auto', received (3|'1')"):
            call()


def test_fit_refuses_validation_data_with_validation_split_saying_why():
    # Keras ignores validation_split when given validation_data; tinynet refuses
    # (a clear error, kept), and the message now says what to pass
    x, y = _classification()
    with pytest.raises(ValueError, match=r"takes validation_data or validation_split, not "
                                         r"both \(received validation_data and "
                                         r"validation_split=0\.25\): pass validation_data"):
        _mlp().fit(x, y, validation_data=(x, y), validation_split=0.25, verbose=0)
