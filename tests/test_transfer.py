"""Transfer learning: freezing, surgery, feature extraction, fine-tuning."""

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import tinynet as tn
from tinynet import transfer
from tests.fd import max_rel_error, numerical_grad


# ------------------------------------------------------------------ helpers
def mlp(seed=0, dtype="float64", widths=(6, 8, 8, 3)):
    """fc1 -> fc2 -> head, ReLU between; small enough for property tests."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        layers.append(tn.layers.Dense(n_out, activation=None if last else "relu",
                                      input_dim=n_in, dtype=dtype, seed=seed + i,
                                      name="head" if last else f"fc{i + 1}"))
    return tn.Sequential(layers)


def data(n=40, d=6, k=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, k, n)


def values(model):
    return [p.value.copy() for p in model.parameters()]


def compile_fit(model, x, y, epochs=2, optimizer="adam", lr=1e-2, **kw):
    model.compile(tn.optim.get(optimizer, model.parameters(), lr=lr, **kw),
                  loss="cross_entropy")
    return model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, seed=0)


def manual_grads(model, x, y):
    """Gradients of every parameter from a hand-run forward/backward pass."""
    model.zero_grad()
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    loss = tn.losses.CrossEntropy()
    loss.forward(h, y)
    dy = loss.backward()
    for layer in reversed(model.layers):
        dy = layer.backward(dy)
    return [p.grad.copy() for p in model.parameters()], dy


# ------------------------------------------------------------------ freezing
def test_freeze_by_index_name_and_range():
    model = mlp()
    assert transfer.freeze(model, upto="head") == ["fc1", "fc2"]
    assert [p.trainable for p in model.parameters()] == [False] * 4 + [True] * 2
    assert transfer.unfreeze(model, start=-2) == ["fc2", "head"]
    assert transfer.frozen_layers(model) == ["fc1"]
    transfer.freeze(model, layers=[0, "head"])
    assert transfer.trainable_layers(model) == ["fc2"]
    transfer.unfreeze(model, layers=range(0, 3))
    transfer.freeze(model, layers=slice(1, None))
    assert transfer.frozen_layers(model) == ["fc2", "head"]


def test_frozen_layers_inside_a_nested_model_are_named_by_their_path():
    # frozen_layers looked at model.layers only: fc1 frozen inside the base was
    # missing, and the base was listed as training whole.
    base = tn.Sequential([tn.layers.Dense(4, input_dim=3, name="fc1"), tn.layers.ReLU(),
                          tn.layers.Dense(4, name="fc2")], name="base")
    model = tn.Sequential([base, tn.layers.Dense(2, name="head")])
    base.layers[0].trainable = False
    assert transfer.frozen_layers(model) == ["base/fc1"]
    assert transfer.trainable_layers(model) == ["base/fc2", "head"]
    # frozen throughout, the base is named as freeze names it
    assert transfer.freeze(model, "base") == ["base"]
    assert transfer.frozen_layers(model) == ["base"]
    assert transfer.trainable_layers(model) == ["head"]
    base.layers[2].trainable = True  # a frozen base wins (Keras): fc2 does not train
    assert transfer.frozen_layers(model) == ["base"]
    base.trainable = True
    base.layers[0].trainable = False
    # deeper: a name per level; block's own flag is on (only its layers are
    # frozen), so it is looked into, and so is its partly frozen base
    outer = tn.Sequential([tn.Sequential([base], name="block"), tn.layers.Dense(1, name="top")])
    assert transfer.frozen_layers(outer) == ["block/base/fc1"]
    assert transfer.trainable_layers(outer) == ["block/base/fc2", "top"]
    base.trainable = False
    base.layers[2].trainable = True
    assert transfer.frozen_layers(outer) == ["block/base"]
    assert transfer.trainable_layers(outer) == ["top"]
    transfer.unfreeze(outer)
    assert transfer.frozen_layers(outer) == [] and transfer.trainable_layers(outer) == \
        ["block", "top"]



def test_the_lists_follow_the_flags_in_effect_under_a_frozen_model_or_parent():
    # a layer set trainable inside a frozen model (or a frozen nested model
    # that is partly looked into) was listed as training by its own flag,
    # though none of its parameters train
    model = tn.Sequential([tn.layers.Dense(4, input_dim=3, name="a"),
                           tn.layers.Dense(2, name="b")])
    model.trainable = False
    model.layers[1].trainable = True
    assert not any(p.trainable for p in model.parameters())
    assert transfer.frozen_layers(model) == ["a", "b"]
    assert transfer.trainable_layers(model) == []
    base = tn.Sequential([tn.layers.Dense(4, input_dim=3, name="fc1"),
                          tn.layers.Dense(4, name="fc2")], name="base")
    block = tn.Sequential([base, tn.layers.Dense(4, name="mid")], name="block")
    outer = tn.Sequential([block, tn.layers.Dense(1, name="top")])
    block.trainable = False
    base.trainable = True
    base.layers[1].trainable = False
    assert [p.trainable for p in outer.parameters()] == [False] * 6 + [True] * 2
    assert transfer.frozen_layers(outer) == ["block"]
    assert transfer.trainable_layers(outer) == ["top"]

def test_freeze_and_unfreeze_take_the_paths_frozen_layers_gives():
    # frozen_layers names "base/fc1"; freeze and unfreeze could not take it back
    base = tn.Sequential([tn.layers.Dense(4, input_dim=3, name="fc1"), tn.layers.ReLU(),
                          tn.layers.Dense(4, name="fc2")], name="base")
    model = tn.Sequential([base, tn.layers.Dense(2, name="head")])
    assert transfer.freeze(model, "base/fc1") == ["base/fc1"]
    assert not base.layers[0].trainable and base.layers[2].trainable and base.trainable
    assert transfer.frozen_layers(model) == ["base/fc1"]
    assert transfer.freeze(model, ["head", "base/fc2"]) == ["head", "base/fc2"]
    assert transfer.trainable_layers(model) == []
    assert transfer.frozen_layers(model) == ["base/fc1", "base/fc2", "head"]
    assert transfer.unfreeze(model, transfer.frozen_layers(model)) == \
        ["head", "base/fc1", "base/fc2"]
    assert transfer.frozen_layers(model) == []
    with pytest.raises(ValueError, match=r"'base' has no layer named 'fc3'.*did you mean"):
        transfer.freeze(model, ["head", "base/fc3"])
    assert transfer.frozen_layers(model) == []  # nothing set when a path is wrong
    with pytest.raises(ValueError, match=r"'base/fc1' has no layer named 'w'.*holds no layers"):
        transfer.freeze(model, "base/fc1/w")
    with pytest.raises(ValueError, match="no layer named 'bse'"):
        transfer.freeze(model, "bse/fc1")
    with pytest.raises(ValueError, match="not both"):
        transfer.freeze(model, "base/fc1", start=0)


def test_freeze_errors_name_the_problem():
    model = mlp()
    with pytest.raises(ValueError, match="no layer named 'fc3'.*did you mean"):
        transfer.freeze(model, layers="fc3")
    with pytest.raises(ValueError, match="index 5 out of range for a model of 3"):
        transfer.freeze(model, layers=5)
    with pytest.raises(ValueError, match="not both"):
        transfer.freeze(model, layers=0, upto=2)
    with pytest.raises(TypeError, match="layer index"):
        transfer.freeze(model, layers=1.5)
    with pytest.raises(TypeError, match="trainable as True or False, received 1"):
        transfer.set_trainable(model, 1)
    # NumPy's bool is a bool, as layer.trainable = np.False_ and check_bool take it
    assert transfer.set_trainable(model, np.False_, layers=0) == ["fc1"]
    assert transfer.frozen_layers(model) == ["fc1"] and model.layers[0].trainable is False


@pytest.mark.parametrize("kwargs, match", [
    # a slice would silently take everything, or nothing
    ({"upto": 10}, r"freeze expected upto in \[-3, 3\] for a model of 3 layers.*received 10"),
    ({"upto": -4}, r"freeze expected upto in \[-3, 3\].*received -4"),
    ({"start": 3}, r"freeze expected start in \[-3, 2\].*received 3"),
    ({"start": 2, "upto": 1}, r"freeze: the range start=2, upto=1 selects no layer of the 3"),
    ({"start": "head", "upto": "fc1"}, "selects no layer"),
    ({"upto": 0}, "selects no layer"),
])
def test_freeze_refuses_ranges_outside_the_model_or_empty(kwargs, match):
    model = mlp()
    with pytest.raises(ValueError, match=match):
        transfer.freeze(model, **kwargs)
    assert transfer.frozen_layers(model) == []  # nothing changed
    with pytest.raises(ValueError, match=match.replace("freeze", "unfreeze")):
        transfer.unfreeze(model, **kwargs)


@pytest.mark.parametrize("refs", [slice(5, None), slice(2, 1), [0, slice(3, 7)]])
def test_a_layer_slice_that_selects_nothing_is_refused_as_an_index_out_of_range_is(refs):
    # freeze(model, layers=slice(5, None)) froze nothing without a word
    model = mlp()
    with pytest.raises(ValueError, match=r"the layer slice slice\(.*\) selects none of the "
                                         r"model's 3 layers"):
        transfer.freeze(model, layers=refs)
    assert transfer.frozen_layers(model) == []
    assert transfer.freeze(model, layers=[]) == []  # an empty list still means no layer


def test_freeze_range_bounds_at_the_edges_are_fine():
    model = mlp()
    assert transfer.freeze(model, upto=3) == ["fc1", "fc2", "head"]
    assert transfer.unfreeze(model, start=-3, upto=-1) == ["fc1", "fc2"]
    assert transfer.unfreeze(model, start=2) == ["head"]


@given(frozen=st.lists(st.booleans(), min_size=3, max_size=3), seed=st.integers(0, 2**16),
       optimizer=st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]))
def test_frozen_params_bit_identical_and_others_learn(frozen, seed, optimizer):
    model = mlp(seed)
    x, y = data(seed=seed)
    # compile BEFORE freezing: the optimizer must honour the flag at each step
    model.compile(tn.optim.get(optimizer, model.parameters(), lr=1e-2), loss="cross_entropy")
    transfer.freeze(model, layers=[i for i, f in enumerate(frozen) if f])
    before = values(model)
    if all(frozen):  # Keras' warning: nothing to train
        with pytest.warns(UserWarning, match="has no trainable parameters"):
            model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=seed)
    else:
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=seed)
    for p, old in zip(model.parameters(), before):
        if p.trainable:
            assert not np.array_equal(p.value, old), p.name
        else:
            assert p.value.tobytes() == old.tobytes(), p.name


def test_gradients_flow_through_frozen_layers():
    x, y = data()
    free, part = mlp(), mlp()
    transfer.freeze(part, layers="fc2")
    grads_free, dx_free = manual_grads(free, x, y)
    grads_part, dx_part = manual_grads(part, x, y)
    # fc1 below the frozen fc2 gets exactly the gradient it gets unfrozen
    np.testing.assert_array_equal(grads_part[0], grads_free[0])
    np.testing.assert_array_equal(dx_part, dx_free)
    assert np.abs(grads_part[0]).sum() > 0
    # and it learns while fc2 stays bit-identical
    fc2_before = part.layers[1].W.value.copy()
    fc1_before = part.layers[0].W.value.copy()
    compile_fit(part, x, y)
    assert part.layers[1].W.value.tobytes() == fc2_before.tobytes()
    assert not np.array_equal(part.layers[0].W.value, fc1_before)


def test_a_frozen_base_nested_in_a_new_model_keras_style():
    base = mlp()
    base.pop()                                   # include_top=False
    base.trainable = False
    model = tn.Sequential([base, tn.layers.Dense(4, seed=9, name="new_head")])
    before = values(base)
    x, y = data(k=4)
    compile_fit(model, x, y)
    for p, old in zip(base.parameters(), before):
        assert p.value.tobytes() == old.tobytes()
    base.trainable = True
    compile_fit(model, x, y)
    assert not np.array_equal(base.parameters()[0].value, before[0])


# --------------------------------------------------------- frozen BatchNorm
def bn_model(seed, momentum):
    return tn.Sequential([
        tn.layers.Dense(8, input_dim=5, dtype="float64", seed=seed, name="fc1"),
        tn.layers.BatchNorm(momentum=momentum, name="bn"),
        tn.layers.ReLU(),
        tn.layers.Dense(3, seed=seed + 1, name="head"),
    ])


@given(seed=st.integers(0, 2**16), shift=st.floats(-3, 3), scale=st.floats(0.2, 5),
       momentum=st.floats(0.5, 0.99))
def test_frozen_batchnorm_keeps_moving_statistics_and_uses_them(seed, shift, scale,
                                                                momentum):
    model = bn_model(seed, momentum)
    x, y = data(n=32, d=5, seed=seed)
    compile_fit(model, x, y, epochs=1)          # moving statistics now hold something
    bn = model.layers[1]
    transfer.freeze(model, layers="bn")
    state = {k: np.array(v, copy=True) for k, v in bn.get_state().items()}
    params = values(model)[2:4]
    x_new = x * scale + shift                   # a different distribution
    compile_fit(model, x_new, y, epochs=2)
    for key, old in state.items():
        assert np.asarray(bn.get_state()[key]).tobytes() == old.tobytes(), key
    for p, old in zip(bn.parameters(), params):
        assert p.value.tobytes() == old.tobytes()
    # inference statistics in "training" mode: the same output as inference
    h = model.layers[0].forward(x_new)
    np.testing.assert_array_equal(bn.forward(h, training=True), bn.forward(h, training=False))
    np.testing.assert_array_equal(model.forward(x_new, training=True), model.predict(x_new))


# ------------------------------------------------------------- head surgery
def test_save_and_load_keep_every_frozen_flag_down_to_each_parameter(tmp_path):
    # a layer's flag is in its config, but a parameter frozen on its own (a
    # bias) or left training in a frozen layer came back trainable as its layer
    base = tn.Sequential([tn.layers.Dense(4, input_dim=3, name="fc1", seed=0),
                          tn.layers.BatchNorm(name="bn"), tn.layers.Dense(4, name="fc2", seed=1)],
                         name="base")
    model = tn.Sequential([base, tn.layers.Dense(2, name="head", seed=2)])
    transfer.freeze(model, "base/bn")
    model.get_layer("head").b.trainable = False   # the head's bias stays as it is
    base.layers[0].trainable = False
    base.layers[0].b.trainable = True             # fc1 frozen but for its bias
    model.compile("sgd", loss="cross_entropy")
    model.save(tmp_path / "m.npz")
    loaded = tn.load(tmp_path / "m.npz")
    assert ([(p.name, p.trainable) for p in loaded.parameters()]
            == [(p.name, p.trainable) for p in model.parameters()])
    assert transfer.frozen_layers(loaded) == transfer.frozen_layers(model)
    x, y = data(n=8, d=3, k=2)
    before = values(loaded)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    moved = [not np.array_equal(a, p.value) for a, p in zip(before, loaded.parameters())]
    assert moved == [p.trainable for p in loaded.parameters()]


def test_a_file_with_bad_trainable_flags_is_refused_and_one_without_them_loads(tmp_path):
    from tests.io_helpers import rewrite_header
    model = mlp()
    transfer.freeze(model, "fc1")
    model.save(tmp_path / "m.npz")
    for flags in ([True] * 5, [1, 1, 1, 1, 1, 1], "yes"):
        rewrite_header(tmp_path / "m.npz", tmp_path / "bad.npz",
                       lambda header, _: header.update(trainable=flags))
        with pytest.raises(tn.io.ModelFileError, match=r"expected 'trainable' as 6 true/false "
                                                       r"flags, one per parameter"):
            tn.load(tmp_path / "bad.npz")
    # a file written before the flags were saved: the layers' flags stand
    rewrite_header(tmp_path / "m.npz", tmp_path / "old.npz",
                   lambda header, _: header.pop("trainable"))
    assert transfer.frozen_layers(tn.load(tmp_path / "old.npz")) == ["fc1"]


def test_layer_references_as_arrays_are_lists_or_a_clear_error():
    # np.array([0, 1]) passed the "has __index__" test and failed in int()
    # with NumPy's "only 0-dimensional arrays can be converted"
    model = mlp()
    assert transfer.freeze(model, np.array([0, 1])) == ["fc1", "fc2"]
    assert transfer.select_layers(model, np.arange(1, 3)) == [1, 2]
    assert transfer.layer_index(model, np.array(2)) == 2  # 0-d: an index
    for call in (lambda: transfer.layer_index(model, np.array([0, 1])),
                 lambda: transfer.freeze(model, np.array([[0, 1]])),
                 lambda: transfer.unfreeze(model, upto=np.array([1, 2])),
                 lambda: transfer.extract_features(model, data()[0], layer=np.array([1]))):
        with pytest.raises(TypeError, match=r"expected a layer index .*received an array of "
                                            r"shape \((1, )?[12],?\)"):
            call()


def test_replace_head_keeps_base_and_changes_classes():
    model = mlp()
    base = values(model)[:4]
    old_head = model.layers[-1]
    removed = transfer.replace_head(model, [tn.layers.Dense(4, activation="relu", name="h1"),
                                            tn.layers.Dense(7, name="h2")])
    assert removed == [old_head]
    assert [layer.name for layer in model.layers] == ["fc1", "fc2", "h1", "h2"]
    assert model.predict(data()[0]).shape == (40, 7)
    for p, old in zip(model.parameters()[:4], base):
        np.testing.assert_array_equal(p.value, old)
    transfer.replace_head(model, tn.layers.Dense(2, name="h3"), n_remove=2)
    assert model.predict(data()[0]).shape == (40, 2)


def test_replace_head_errors():
    model = mlp()
    with pytest.raises(ValueError, match="cannot remove 3 layers from a model of 3"):
        transfer.replace_head(model, [tn.layers.Dense(2)], n_remove=3)
    with pytest.raises(ValueError, match="n_remove"):
        transfer.replace_head(model, [tn.layers.Dense(2)], n_remove=-1)
    with pytest.raises(TypeError, match="expected layers"):
        transfer.replace_head(model, ["dense"])
    # None failed with "'NoneType' object is not iterable"
    with pytest.raises(TypeError, match=r"replace_head expected new_layers as a Layer or a list "
                                        r"of Layers, received None"):
        transfer.replace_head(model, None)
    assert [layer.name for layer in model.layers] == ["fc1", "fc2", "head"]


def test_replace_head_that_does_not_fit_leaves_the_model_as_it_was():
    # the old head was popped before the new one failed to build on the
    # base's output: the model lost its head, and the caller the removed layers
    model = mlp()
    before = [layer.name for layer in model.layers]
    x = data()[0]
    expected = model.predict(x)
    conv = tn.layers.Conv2D(3, 3, name="conv")
    with pytest.raises(ValueError, match="Conv2D 'conv' expected input of shape"):
        transfer.replace_head(model, [tn.layers.Dense(4, name="h1"), conv], n_remove=2)
    assert [layer.name for layer in model.layers] == before
    assert model.output_shape == (3,)
    np.testing.assert_array_equal(model.predict(x), expected)


def test_copy_weights_from_an_unbuilt_source_is_refused_not_a_silent_no_op():
    # both unbuilt: nothing was copied, and the pairs were returned as copied
    src = tn.Sequential([tn.layers.Dense(3, name="fc1"), tn.layers.Dense(2, name="head")])
    dst = tn.Sequential([tn.layers.Dense(3, name="fc1"), tn.layers.Dense(2, name="head")])
    for target in (dst, mlp(widths=(6, 3, 2))):
        with pytest.raises(ValueError, match=r"copy_weights: the source layer 'fc1' is not "
                                             r"built, so it has no weights to copy"):
            transfer.copy_weights(src, target, by="name")


def test_copy_weights_refuses_values_set_weights_refuses_and_copies_nothing():
    # copy_weights cast 1e300 into float32 as inf, and copied NaN, silently,
    # where set_weights (and load) refuse both
    src, dst = mlp(seed=1, dtype="float64"), mlp(seed=2, dtype="float32")
    before = values(dst)
    for bad, match in ((1e300, "copy_weights: weight 'head/W' of layer 'head' expected "
                               "values within the range of float32"),
                       (np.nan, "copy_weights expected finite values in weight 'head/W' of "
                                "layer 'head'")):
        src.get_layer("head").W.value[0, 0] = bad
        with pytest.raises(ValueError, match=match):
            transfer.copy_weights(src, dst)
        assert all(np.array_equal(a, b) for a, b in zip(before, values(dst)))  # nothing copied
    src.get_layer("head").W.value[0, 0] = 0.5
    transfer.copy_weights(src, dst)
    assert dst.get_layer("head").W.value.dtype == np.float32
    np.testing.assert_array_equal(dst.get_layer("head").W.value,
                                  src.get_layer("head").W.value.astype(np.float32))


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("refusal", ["shape", "value"])
def test_a_refused_copy_into_an_unbuilt_model_leaves_its_layers_unbuilt(refusal, nested):
    # the check built each destination layer to compare shapes: a refused copy
    # left them built with weights from fresh entropy, which fit(seed=0) kept
    from tinynet.layers import Dense

    def model(classes, seeded=False):
        fc1 = Dense(8, name="fc1", seed=0 if seeded else None)
        base = tn.Sequential([fc1], name="base") if nested else fc1
        return tn.Sequential([base, Dense(classes, name="head", seed=1 if seeded else None)])

    src = model(3 if refusal == "value" else 4, seeded=True)
    src.build((6,))
    if refusal == "value":
        src.get_layer("head").W.value[0, 0] = np.nan
    x = np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32)
    y = np.arange(20) % 3
    trained = []
    for refused in (False, True):
        dst = model(3)
        if refused:
            with pytest.raises(ValueError, match="mismatch" if refusal == "shape" else "finite"):
                transfer.copy_weights(src, dst)
            assert not dst.built and not any(layer.built for layer in dst.layers)
            assert not any(layer.built for layer in tn.layers.base.walk_layers(dst))
        dst.compile(tn.optim.SGD(lr=0.1), loss="cross_entropy")
        dst.fit(x, y, epochs=1, seed=0, verbose=0)
        trained.append([p.value.copy() for p in dst.parameters()])
    assert all(np.array_equal(a, b) for a, b in zip(*trained))  # drawn from seed 0 both times


def test_copy_weights_by_index_and_by_name():
    src, dst = mlp(seed=1), mlp(seed=2)
    x = data()[0]
    assert transfer.copy_weights(src, dst) == [("fc1", "fc1"), ("fc2", "fc2"),
                                                ("head", "head")]
    np.testing.assert_array_equal(dst.predict(x), src.predict(x))
    # by name into a model with another head: the base is copied, the head left alone
    other = mlp(seed=3, widths=(6, 8, 8, 5))
    head_before = other.layers[-1].W.value.copy()
    other.layers[-1].name = "new_head"
    assert transfer.copy_weights(src, other, by="name") == [("fc1", "fc1"), ("fc2", "fc2")]
    np.testing.assert_array_equal(other.layers[1].W.value, src.layers[1].W.value)
    np.testing.assert_array_equal(other.layers[-1].W.value, head_before)


def test_copy_weights_mismatch_names_both_layers_and_copies_nothing():
    src, dst = mlp(seed=1), mlp(seed=2, widths=(6, 8, 8, 5))
    before = values(dst)
    with pytest.raises(ValueError, match=r"Dense 'head' \(W \(8, 3\).*Dense 'head' \(W \(8, 5\)"):
        transfer.copy_weights(src, dst)
    for p, old in zip(dst.parameters(), before):
        np.testing.assert_array_equal(p.value, old)
    with pytest.raises(ValueError, match="by='index' or by='name'"):
        transfer.copy_weights(src, dst, by="position")
    with pytest.raises(ValueError, match="same number of layers"):
        transfer.copy_weights(src, tn.Sequential([tn.layers.Dense(8, input_dim=6)]))
    with pytest.raises(ValueError, match="share no layer name"):
        transfer.copy_weights(src, tn.Sequential([tn.layers.Dense(8, input_dim=6)]), by="name")


# -------------------------------------------------------- feature extraction
@given(layer=st.sampled_from([0, 1, "fc2", -1]), batch_size=st.integers(1, 50),
       seed=st.integers(0, 2**16))
def test_extract_features_equals_a_manual_partial_forward(layer, batch_size, seed):
    model = mlp(seed)
    x = data(n=23, seed=seed)[0]
    stop = transfer.layer_index(model, layer) + 1
    h = x
    for lay in model.layers[:stop]:
        h = lay.forward(h)
    feats = transfer.extract_features(model, x, layer=layer, batch_size=batch_size)
    np.testing.assert_allclose(feats, h, rtol=1e-12, atol=1e-12)


def test_extract_features_between_forward_and_backward_changes_nothing():
    model = mlp()
    x, y = data()
    reference, _ = manual_grads(model, x, y)
    model.zero_grad()
    h = x
    for layer in model.layers:
        h = layer.forward(h, training=True)
    transfer.extract_features(model, x[:5] * 2, layer=-1)      # e.g. from a callback
    loss = tn.losses.CrossEntropy()
    loss.forward(h, y)
    dy = loss.backward()
    for layer in reversed(model.layers):
        dy = layer.backward(dy)
    for p, ref in zip(model.parameters(), reference):
        np.testing.assert_array_equal(p.grad, ref)


def test_preserved_caches_takes_a_layer_or_model_and_names_anything_else():
    # None or a list failed inside vars(): "vars() argument must have __dict__"
    model = mlp()
    with transfer.preserved_caches(model.layers[0]) as layer:
        assert layer is model.layers[0]
    for bad, name in ((None, "NoneType"), (model.layers, "list"), (3, "int")):
        with pytest.raises(TypeError, match=f"preserved_caches expected a model or a layer, "
                                            f"received {name}"):
            with transfer.preserved_caches(bad):
                pass


@pytest.mark.parametrize("arch", ["bn_dropout", "cnn"])
def test_extract_features_mid_training_changes_nothing_for_any_layer(arch):
    # only caches that were arrays (or tuples of arrays) were put back: a
    # BatchNorm's (x_hat, inv_std, flag), Dropout's output shape, Flatten's
    # input shape and a conv layer's (shapes, cols, ...) were left as the
    # inference pass made them, so the backward that followed failed or
    # computed other gradients
    from tinynet.recipes import cnn_layers

    def build():
        if arch == "cnn":
            return tn.Sequential(cnn_layers(36, filters=(2,), units=4, seed=0, named=True)
                                 + [tn.layers.Dense(3, name="head", seed=1)])
        return tn.Sequential([tn.layers.Dense(8, input_dim=36, seed=0, name="fc1"),
                              tn.layers.BatchNorm(name="bn"), tn.layers.Dropout(0.3, seed=1),
                              tn.layers.Dense(3, seed=2, name="head")])

    x, y = data(n=16, d=36, dtype="float32")

    def grads(extract):
        model = build()
        model.build((36,))
        model.zero_grad()
        h = x
        for layer in model.layers:
            h = layer.forward(h, training=True)
        if extract:
            transfer.extract_features(model, x[:5] * 2, layer=-1)
        loss = tn.losses.CrossEntropy()
        loss.forward(h, y)
        dy = loss.backward()
        for layer in reversed(model.layers):
            dy = layer.backward(dy)
        return [p.grad.copy() for p in model.parameters()] + [dy]

    for a, b in zip(grads(False), grads(True)):
        np.testing.assert_array_equal(a, b)


def test_extract_features_refuses_nan_and_inf():
    model = mlp()
    for bad in (np.nan, np.inf):
        x = data(n=4)[0]
        x[2, 1] = bad
        with pytest.raises(ValueError, match="extract_features expected finite x, received 1"):
            transfer.extract_features(model, x)


def test_extract_features_runs_in_inference_mode():
    model = tn.Sequential([tn.layers.Dense(8, activation="relu", input_dim=6, seed=0),
                           tn.layers.Dropout(0.5, seed=1), tn.layers.Dense(3, seed=2)])
    x = data(dtype="float32")[0]
    feats = transfer.extract_features(model, x, layer=1)
    np.testing.assert_array_equal(feats, model.layers[0].forward(x))   # dropout off
    assert feats.dtype == np.float32
    with pytest.raises(TypeError, match="floating"):
        transfer.extract_features(model, x.astype(int))
    with pytest.raises(ValueError, match="batch_size"):
        transfer.extract_features(model, x, batch_size=0)


# ------------------------------------------------------------- fine-tuning
def test_discriminative_param_groups_divide_by_factor_per_group():
    model = mlp()
    groups = transfer.discriminative_param_groups(model, 1e-2, factor=2.0)
    assert [g["lr"] for g in groups] == pytest.approx([2.5e-3, 5e-3, 1e-2])
    assert [len(g["params"]) for g in groups] == [2, 2, 2]
    assert groups[0]["params"][0] is model.layers[0].W
    two = transfer.discriminative_param_groups(model, 1.0, groups=[slice(0, 2), "head"])
    assert [g["lr"] for g in two] == pytest.approx([1 / 2.6, 1.0])
    assert [len(g["params"]) for g in two] == [4, 2]


def test_discriminative_rates_reach_the_optimizer():
    model = mlp()
    x, y = data()
    opt = tn.optim.SGD(transfer.discriminative_param_groups(model, 0.1, factor=4.0), lr=0.1)
    grads, _ = manual_grads(model, x, y)
    before = values(model)
    opt.step()
    for i, (p, old, g) in enumerate(zip(model.parameters(), before, grads)):
        lr = 0.1 / 4.0 ** (2 - i // 2)
        np.testing.assert_allclose(p.value, old - lr * g, rtol=1e-12, atol=1e-15)


def test_replace_head_keeps_the_discriminative_groups_of_the_layers_that_stay(tmp_path):
    # compile bound the groups again as one flat group at the head's rate: the
    # lower layers trained 6.8x (0.01 / 0.0015) faster than they were set to
    x, y = data()
    model = mlp()
    opt = tn.optim.Adam(transfer.discriminative_param_groups(model, 0.01, factor=2.0), lr=0.02,
                        betas=(0.8, 0.9))
    opt.param_groups[0]["betas"] = (0.5, 0.99)  # set by hand on the bottom group
    model.compile(opt, loss="cross_entropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    body = model.parameters()[:4]
    moments = {id(p): opt.state[p]["exp_avg"].copy() for p in body}
    transfer.replace_head(model, tn.layers.Dense(4, seed=9, name="head2"))
    model.compile(opt, loss="cross_entropy")
    assert model.optimizer is opt
    head = model.layers[-1].parameters()
    assert [g["params"] for g in opt.param_groups] == [body[:2], body[2:], head]
    # the new head takes the replaced head's group: its rate, not the defaults' 0.02
    assert [g["lr"] for g in opt.param_groups] == [0.0025, 0.005, 0.01]
    assert [g["betas"] for g in opt.param_groups] == [(0.5, 0.99), (0.8, 0.9), (0.8, 0.9)]
    assert set(opt.state) == set(body)  # the old head's state went, the body's stayed
    for p in body:
        assert opt.state[p]["step"] == 5
        np.testing.assert_array_equal(opt.state[p]["exp_avg"], moments[id(p)])
    model.fit(x, y[:40] % 4, epochs=1, batch_size=8, verbose=0, seed=0)
    model.save(tmp_path / "m.npz")
    loaded = tn.load(tmp_path / "m.npz")
    for a, b in zip(loaded.optimizer.param_groups, opt.param_groups, strict=True):
        assert len(a["params"]) == len(b["params"])
        assert {k: v for k, v in a.items() if k != "params"} == \
            {k: v for k, v in b.items() if k != "params"}
    for p, q in zip(model.parameters(), loaded.parameters(), strict=True):
        assert opt.state[p].keys() == loaded.optimizer.state[q].keys()
        for key, value in opt.state[p].items():
            np.testing.assert_array_equal(loaded.optimizer.state[q][key], value)
    # two groups, base and head: they collapsed into one at the base's rate
    # (the emptied head group dropped before counting the groups)
    opt = tn.optim.SGD([{"params": model.parameters()[:-2], "lr": 0.3},
                        {"params": model.parameters()[-2:], "lr": 0.1}], lr=0.2)
    model.compile(opt, loss="cross_entropy")
    transfer.replace_head(model, tn.layers.Dense(3, seed=9))
    model.compile(opt, loss="cross_entropy")
    params = model.parameters()
    assert [(g["params"], g["lr"]) for g in opt.param_groups] == \
        [(params[:-2], 0.3), (params[-2:], 0.1)]
    # none released (a layer added): the new parameters in a group of the defaults
    model.add(tn.layers.Dense(2, seed=4, name="top"))
    model.compile(opt, loss="cross_entropy")
    top = model.layers[-1].parameters()
    assert [(g["params"], g["lr"]) for g in opt.param_groups] == \
        [(params[:-2], 0.3), (params[-2:], 0.1), (top, 0.2)]
    # released from two groups (the head and the added layer popped, a new head):
    # neither group's rate is the new head's, so the defaults'
    model.pop()
    transfer.replace_head(model, tn.layers.Dense(3, seed=5))
    model.compile(opt, loss="cross_entropy")
    assert [(g["params"], g["lr"]) for g in opt.param_groups] == \
        [(params[:-2], 0.3), (model.layers[-1].parameters(), 0.2)]


def test_replace_head_with_fine_tune_groups_trains_the_new_head_at_the_head_rate():
    # fine_tune's base + head groups: compile after replace_head made one group
    # at the base's rate, 1/2.6 of the rate the replaced head trained at
    x, y = data()
    model = tn.Sequential([tn.layers.Dense(8, input_dim=6, seed=1), tn.layers.ReLU(),
                           tn.layers.Dense(3, seed=3)])
    opt = tn.optim.Adam(transfer.discriminative_param_groups(model, 0.01, factor=2.6), lr=0.01)
    model.compile(opt, loss="cross_entropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    before = [(len(g["params"]), g["lr"]) for g in opt.param_groups]
    assert before == [(2, 0.01 / 2.6), (2, 0.01)]
    transfer.replace_head(model, tn.layers.Dense(3, seed=9))
    model.compile(opt, loss="cross_entropy")
    assert [(len(g["params"]), g["lr"]) for g in opt.param_groups] == before
    assert opt.param_groups[1]["params"] == model.layers[-1].parameters()
    head = model.layers[-1].parameters()
    start = [p.value.copy() for p in head]
    model.fit(x, y, epochs=1, batch_size=40, verbose=0, seed=0)   # Adam's first step: lr
    for p, w in zip(head, start):
        np.testing.assert_allclose(np.abs(p.value - w).max(), 0.01, rtol=1e-6)


def test_layer_groups_and_errors():
    model = tn.Sequential([tn.layers.Dense(8, input_dim=6), tn.layers.ReLU(),
                           tn.layers.Dense(8), tn.layers.ReLU(), tn.layers.Dense(3)])
    assert transfer.layer_groups(model) == [[0, 1], [2, 3], [4]]
    assert transfer.layer_groups(model, 2) == [[0, 1], [2, 3, 4]]
    with pytest.raises(ValueError, match="between 1 and 3"):
        transfer.layer_groups(model, 4)
    with pytest.raises(ValueError, match="overlap"):
        transfer.layer_groups(model, [[0, 2], [2, 4]])
    with pytest.raises(ValueError, match="no parameters"):
        transfer.discriminative_param_groups(model, 1e-3, groups=[[0], [1], [2, 3, 4]])
    # its own name, not discriminative_lrs' (which it calls)
    with pytest.raises(ValueError, match=r"discriminative_param_groups expected base_lr in "
                                         r"\(0, inf\)"):
        transfer.discriminative_param_groups(model, -1.0)
    with pytest.raises(TypeError, match="discriminative_param_groups expected factor"):
        transfer.discriminative_param_groups(model, 1e-3, factor="2")


def test_gradual_unfreezing_unfreezes_one_group_per_epoch_from_the_top():
    model = mlp()
    x, y = data()
    cb = transfer.GradualUnfreezing()
    model.compile(tn.optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[cb])
    assert cb.schedule == [(0, ["head"]), (1, ["fc2", "head"]),
                           (2, ["fc1", "fc2", "head"]), (3, ["fc1", "fc2", "head"])]
    slow = transfer.GradualUnfreezing(every=2, keep_frozen="fc1")
    transfer.freeze(model)
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[slow])
    assert [names for _, names in slow.schedule] == [["head"], ["head"], ["fc2", "head"],
                                                    ["fc2", "head"]]
    with pytest.raises(ValueError, match="every"):
        transfer.GradualUnfreezing(every=0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(groups=2.5), TypeError, r"GradualUnfreezing expected groups \(None, a list"),
    (dict(groups=True), TypeError, r"GradualUnfreezing expected groups \(None, a list"),
    (dict(groups=0), ValueError, r"expected groups .* as a positive integer, received 0"),
    (dict(groups=[]), ValueError, "expected groups as a non-empty list"),
    (dict(groups=[[0, 1], [1, 2]]), ValueError,
     r"GradualUnfreezing: layer groups overlap at layer indices \[1\]"),
    (dict(groups=[[2], [0, 1]]), ValueError,
     r"GradualUnfreezing: expected layer groups bottom .* to top.*layers \[0, 1\] after "
     r"layers \[2\]"),
    (dict(groups=[1.5, 2]), TypeError, "expected each layer group as a layer index"),
    (dict(groups=[[], [1]]), ValueError, r"each layer group to select layers; received \[\]"),
    (dict(groups=[slice(0, 2.5)]), TypeError, "bounds are not indices or names"),
    (dict(groups=[slice(0, 2, 0)]), ValueError, "step is not a nonzero index"),
    (dict(keep_frozen=1.0), TypeError, "GradualUnfreezing expected keep_frozen as a layer"),
    (dict(keep_frozen=["fc1", np.zeros((2, 2), int)]), TypeError, r"shape \(2, 2\)"),
    (dict(keep_frozen=""), ValueError, "empty name"),
])
def test_gradual_unfreezing_refuses_bad_groups_when_made(kwargs, error, match):
    # used alone (not through fine_tune), these were refused only when fit started
    with pytest.raises(error, match=match):
        transfer.GradualUnfreezing(**kwargs)


def test_gradual_unfreezing_splits_keep_frozen_once_when_it_is_set():
    # keep_frozen was split into layer references and Layer objects twice,
    # when made (to check the references) and again at every epoch; now once,
    # whenever it is set: a value set after making is checked as one given
    # then (it was taken as it was, and failed, or not, at fit)
    cb = transfer.GradualUnfreezing(keep_frozen="fc1")
    with pytest.raises(TypeError, match="GradualUnfreezing expected keep_frozen as a layer"):
        cb.keep_frozen = 1.0
    model = mlp()
    x, y = data()
    model.compile(tn.optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy")
    cb.keep_frozen = ("fc2", model.layers[0])  # a tuple: references and a Layer
    assert cb.keep_frozen == ("fc2", model.layers[0])
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[cb])
    assert [names for _, names in cb.schedule] == [["head"]] * 3


def test_gradual_unfreezing_keeps_keep_frozen_as_a_tuple_that_cannot_change_unseen():
    # a list given was kept as it was, while what fit applies was split from
    # it when set: appending to it afterwards changed cb.keep_frozen and
    # nothing else
    given = ["fc1"]
    cb = transfer.GradualUnfreezing(keep_frozen=given)
    given.append("fc2")  # the caller's list, not the callback's
    assert cb.keep_frozen == ("fc1",)
    with pytest.raises(AttributeError):
        cb.keep_frozen.append("fc2")
    model = mlp()
    x, y = data()
    model.compile(tn.optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[cb])
    assert [names for _, names in cb.schedule] == [["head"], ["fc2", "head"], ["fc2", "head"]]
    cb.keep_frozen = given  # set again: taken, and checked, as given
    assert cb.keep_frozen == ("fc1", "fc2")
    assert transfer.GradualUnfreezing(keep_frozen="fc1").keep_frozen == ("fc1",)
    assert transfer.GradualUnfreezing().keep_frozen == ()


@pytest.mark.parametrize("gradual", [False, True])
def test_fine_tune_and_gradual_unfreezing_keep_layers_frozen_through_one_helper(
        gradual, monkeypatch):
    # phase 2 of fine_tune froze keep_frozen with a loop of its own
    from tinynet.transfer import finetune
    frozen = []
    helper = finetune._freeze_kept
    monkeypatch.setattr(finetune, "_freeze_kept",
                        lambda layers: frozen.append([layer.name for layer in layers])
                        or helper(layers))
    x, y = data(n=32, d=6)
    model, base = nested_bn_model(x)
    transfer.fine_tune(model, x, y, head_epochs=1, epochs=2, gradual=gradual, batch_size=8)
    # fc1 (frozen by the user) and the BatchNorm of the base: at phase 2's start, then
    # when GradualUnfreezing begins and at each epoch
    assert frozen == [["fc1", "bn"]] * (4 if gradual else 1)
    assert not base.layers[1].trainable


def test_gradual_unfreezing_leaves_model_dependent_references_to_fit():
    # names, negative indices and slices depend on the model: taken when made
    for kwargs in (dict(groups=["fc1", slice("fc2", None)]), dict(groups=[[-3], [-2, -1]]),
                   dict(groups=[np.arange(1), range(1, 3)]), dict(groups=3),
                   dict(keep_frozen=["fc1", 0, slice(None, 2)])):
        transfer.GradualUnfreezing(**kwargs)
    model = mlp()
    x, y = data()
    model.compile(tn.optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy")
    late = transfer.GradualUnfreezing(groups=[["fc2"], ["fc1"]])  # out of order by name
    with pytest.raises(ValueError, match="bottom .* to top"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[late])


def test_gradual_unfreezing_keeps_lower_groups_bit_identical_until_their_turn():
    model = mlp()
    x, y = data()
    fc1 = model.layers[0].W.value.copy()
    model.compile(tn.optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0,
              callbacks=[transfer.GradualUnfreezing()])
    assert model.layers[0].W.value.tobytes() == fc1.tobytes()   # fc1's turn is epoch 2


# ---------------------------------------------------- fine_tune end to end
@pytest.fixture(scope="module")
def digits_split():
    from tinynet.transfer.experiment import class_split
    (x, y), (xt, yt) = tn.data.load_digits()
    x, xt = x.astype("float32") / 16, xt.astype("float32") / 16
    return ((class_split(x, y, range(5)), class_split(xt, yt, range(5))),
            (class_split(x, y, range(5, 10)), class_split(xt, yt, range(5, 10))))


def test_fine_tune_two_phases_on_digits(digits_split):
    (src, _), ((x, y), (xt, yt)) = digits_split
    model = tn.Sequential([tn.layers.Dense(32, activation="relu", input_dim=64, seed=0),
                           tn.layers.Dense(5, seed=1)])
    model.compile("adam", loss="cross_entropy")
    model.fit(*src, epochs=10, batch_size=32, verbose=0, seed=0)
    transfer.replace_head(model, tn.layers.Dense(5, seed=2))
    base = model.layers[0].W.value.copy()
    only_head = transfer.fine_tune(model, x[:100], y[:100], head_epochs=2, epochs=0, seed=0)
    assert len(only_head.head.history["loss"]) == 2 and only_head.fine_tune is None
    assert model.layers[0].W.value.tobytes() == base.tobytes()      # base frozen in phase 1
    hist = transfer.fine_tune(model, x, y, head_epochs=10, epochs=3, head_lr=1e-2, lr=1e-3,
                              factor=2.6, gradual=True, seed=0, metrics=["accuracy"])
    assert len(hist.head.history["loss"]) == 10 and len(hist.fine_tune.history["loss"]) == 3
    assert not np.array_equal(model.layers[0].W.value, base)          # base tuned in phase 2
    assert np.mean(model.predict(xt).argmax(1) == yt) > 0.8           # chance is 0.2
    with pytest.raises(ValueError, match="head"):
        transfer.fine_tune(model, x, y, head=2)


def test_fine_tune_keeps_batchnorm_and_user_frozen_layers_frozen():
    model = bn_model(0, 0.9)
    x, y = data(n=32, d=5)
    compile_fit(model, x, y, epochs=1)
    state = {k: np.array(v, copy=True) for k, v in model.layers[1].get_state().items()}
    transfer.freeze(model, layers=0)
    fc1 = model.layers[0].W.value.copy()
    transfer.fine_tune(model, x, y, head_epochs=1, epochs=2, batch_size=8, seed=0)
    assert model.layers[0].W.value.tobytes() == fc1.tobytes()
    for key, old in state.items():
        assert np.asarray(model.layers[1].get_state()[key]).tobytes() == old.tobytes()


class _CountEpochs(tn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"lr": -1}, ValueError, r"fine_tune expected lr in \(0, inf\), received -1.0"),
    ({"lr": "1e-4"}, TypeError, "fine_tune expected lr as a real number, received '1e-4'"),
    ({"factor": -2}, ValueError, r"expected factor in \(0, inf\)"),
    ({"head_lr": float("inf")}, ValueError, r"expected head_lr in \(0, inf\), received inf"),
    ({"l2sp": -1}, ValueError, r"fine_tune expected l2sp in \[0, inf\), received -1"),
    ({"l2sp": "0.1"}, TypeError, "fine_tune expected l2sp as a real number"),
    ({"gradual": True, "every": 0}, ValueError, "every as a positive int"),
    ({"groups": [[0], [0, 1]]}, ValueError, "overlap"),
    ({"seed": -1}, ValueError, "fine_tune expected seed"),
    ({"batch_size": 0}, ValueError, "fine_tune expected batch_size"),
    ({"callbacks": 3}, TypeError, "fine_tune expected a list of callbacks"),
    # any string was true: "no" turned gradual unfreezing on, "False" kept BatchNorm frozen
    ({"gradual": "no"}, TypeError, "fine_tune expected gradual as True or False, received 'no'"),
    ({"keep_batchnorm_frozen": "False"}, TypeError,
     "fine_tune expected keep_batchnorm_frozen as True or False"),
])
def test_fine_tune_checks_phase_2_arguments_before_phase_1_trains(kwargs, error, match):
    model = mlp()
    x, y = data(n=16, d=6)
    before = values(model)
    count = _CountEpochs()
    call = {"callbacks": [count], **kwargs}
    with pytest.raises(error, match=match):
        transfer.fine_tune(model, x, y, head_epochs=3, epochs=2, **call)
    assert count.epochs == 0  # used to train the head for 3 epochs first
    assert all(np.array_equal(a, b) for a, b in zip(values(model), before))
    assert transfer.frozen_layers(model) == [] and model.optimizer is None


@pytest.mark.parametrize("where", ["y", "validation_data", "callback"])
def test_a_failed_fine_tune_restores_trainable_flags_and_compile_settings(where, tmp_path):
    model = mlp()
    x, y = data(n=16, d=6)
    transfer.freeze(model, layers="fc1")  # the user's own frozen layer stays frozen
    model.compile(tn.optim.SGD(model.parameters(), lr=0.5), loss="mse", metrics=["mae"])
    optimizer, loss, metrics = model.optimizer, model.loss, model.metrics

    class Fail(tn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:  # phase 2's second epoch (phase 1 has only epoch 0)
                raise RuntimeError("stop here")

    kwargs = {"y": (y + 5, ValueError, r"labels in \[0, 2\]"),
              "validation_data": (y, ValueError, r"labels in \[0, 2\]"),
              "callback": (y, RuntimeError, "stop here")}
    labels, error, match = kwargs[where]
    extra = ({"validation_data": (x, y + 5)} if where == "validation_data" else
             {"callbacks": [Fail()], "head_epochs": 1, "epochs": 2}
             if where == "callback" else {})
    with pytest.raises(error, match=match):
        transfer.fine_tune(model, x, labels, **{"head_epochs": 2, "epochs": 2, **extra})
    assert [layer.trainable for layer in model.layers] == [False, True, True]
    assert model.optimizer is optimizer and model.loss is loss and model.metrics is metrics
    model.save(tmp_path / "m.npz")  # the file keeps the user's loss and metrics, not fine_tune's
    loaded = tn.load(tmp_path / "m.npz")
    assert type(loaded.loss).__name__ == "MSE" and loaded.get_config() == model.get_config()
    model.fit(x, y.astype(np.float64)[:, None].repeat(3, axis=1), verbose=0)  # still usable


# ---------------------------------------------------------- demo, benchmark
def test_demo_part_follows_the_demo_contract():
    from tinynet.transfer import demo
    out = demo.run(seed=0, verbose=0)
    assert set(out) == {"title", "columns", "rows", "notes"}
    assert len(out["rows"]) == 4 and all(len(r) == len(out["columns"]) for r in out["rows"])
    assert all(0 <= v <= 1 for row in out["rows"] for v in row[1:])


def test_quick_benchmark_writes_its_report(tmp_path):
    from benchmarks import transfer as bench
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    import json
    results = json.loads((tmp_path / "transfer.json").read_text())["results"]["digits"]
    assert set(results["accuracy"]) >= {"scratch", "features", "fine_tune", "discriminative"}
    assert "target test accuracy" in (tmp_path / "transfer.md").read_text()
    # re-rendered from its JSON, the report is still the quick run's, with its command
    assert bench.main(["--from-json", str(tmp_path / "transfer.json"),
                       "--out", str(tmp_path / "again")]) == 0
    text = (tmp_path / "again" / "transfer.md").read_text()
    assert text.startswith("**Quick run: smoke test, numbers not meaningful.**")
    assert "Command: `python -m benchmarks transfer --quick`" in text


def test_fine_tune_groups_a_multi_layer_head_as_the_top_group():
    model = mlp()
    transfer.replace_head(model, [tn.layers.Dense(4, activation="relu", name="h1"),
                                  tn.layers.Dense(3, name="h2")])
    x, y = data()
    seen = []

    class Record(tn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(transfer.trainable_layers(self.model))

    transfer.fine_tune(model, x, y, head=2, head_epochs=1, epochs=3, gradual=True, factor=2.6,
                       callbacks=[Record()], batch_size=8)
    assert seen == [["h1", "h2"], ["h1", "h2"], ["fc2", "h1", "h2"],
                    ["fc1", "fc2", "h1", "h2"]]


def test_experiment_standardised_features_use_training_statistics(digits_split):
    from tinynet.transfer import experiment
    (src, _), ((x, y), _) = digits_split
    cfg = experiment.Config(hidden=(16,), pretrain_epochs=1, steps=4,
                            standardize_features=True)
    base = experiment.build_mlp(64, 5, cfg.hidden, seed=0)
    head, inputs = experiment._run_method("features_fc1", base, x[:40], y[:40], 5, cfg, seed=0)
    train = inputs(x[:40])
    live = train.std(axis=0) > 0
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0)[live], 1, rtol=1e-4)
    raw = transfer.extract_features(base, x[40:60], layer=0)
    # test images use the training statistics, not their own
    assert not np.allclose(inputs(x[40:60]).mean(axis=0)[live], 0, atol=1e-3)
    np.testing.assert_allclose(inputs(x[40:60])[:, ~live], raw[:, ~live]
                               - transfer.extract_features(base, x[:40], layer=0)[:, ~live].mean(0))
    assert head.predict(inputs(x[40:60])).shape == (20, 5)
    # a unit that never fires on the training images is centred, not divided by 0
    assert np.isfinite(inputs(x)).all()


def test_experiment_accuracy_counts_a_diverged_prediction_as_wrong():
    # the arg-max read a row of NaN as class 0: a diverged model scored the
    # share of class 0 (here all of it) instead of nothing
    from tinynet.transfer import experiment
    model = experiment.build_mlp(4, 3, (5,), seed=0)
    x, y = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32), np.zeros(6, int)
    right = float(np.mean(model.predict(x).argmax(axis=1) == y))
    assert experiment._accuracy(model, x, y) == right
    model.layers[-1].b.value[:] = np.nan
    assert experiment._accuracy(model, x, y) == 0.0


# ---------------------------------------------------------------- L2-SP
@given(seed=st.integers(0, 2**16), alpha=st.floats(1e-3, 10.0))
@example(seed=1056, alpha=1.0)
def test_l2sp_gradient_matches_finite_differences_of_its_value(seed, alpha):
    model = mlp(seed)
    params = model.parameters()
    penalty = transfer.L2SP(params, alpha)
    rng = np.random.default_rng(seed)
    for p in params:
        p.value += rng.standard_normal(p.value.shape)       # move away from the anchors
        p.zero_grad()
    penalty.add_grad()
    for p in params:
        # the penalty is quadratic: central differences are exact for any eps,
        # and a larger one keeps rounding (~1e-16 * value / eps) small; entries
        # far below the largest are judged against it (seed=1056, alpha=1.0
        # has a gradient entry of 1.6e-10, whose rounding failed a 1e-6 ratio)
        expected = numerical_grad(penalty.value, p.value, eps=1e-3)
        assert max_rel_error(p.grad, expected, scale_floor=1e-3) < 1e-6


def test_l2sp_skips_frozen_params_and_pulls_weights_toward_the_anchors():
    model = mlp(0)
    fc1, fc2 = model.layers[0], model.layers[1]
    penalty = transfer.L2SP(fc1.parameters() + fc2.parameters(), alpha=0.5)
    start = [p.value.copy() for p in fc1.parameters()]
    fc2.trainable = False
    opt = penalty.attach(tn.optim.SGD(model.parameters(), lr=0.1))
    for p in model.parameters():
        p.value += 1.0                                        # displaced by 1 everywhere
        p.zero_grad()                                         # no loss gradient: penalty only
    opt.step()
    for p, w0 in zip(fc1.parameters(), start):                # w - lr * alpha * (w - w0)
        np.testing.assert_allclose(p.value, w0 + 1.0 - 0.1 * 0.5 * 1.0)
    assert all(not p.grad.any() for p in fc2.parameters())    # frozen: untouched


def test_fine_tune_l2sp_keeps_the_base_nearer_the_pretrained_weights():
    x, y = data(n=40, d=6)
    moved = {}
    for alpha in (0.0, 10.0):
        model = mlp(0)
        pretrained = model.layers[0].W.value.copy()
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=5, lr=1e-2, l2sp=alpha,
                           batch_size=8, seed=0)
        moved[alpha] = np.linalg.norm(model.layers[0].W.value - pretrained)
    assert 0 < moved[10.0] < 0.5 * moved[0.0]


def test_l2sp_off_is_bit_identical_and_bad_alpha_is_an_error():
    x, y = data(n=16, d=6)
    weights = []
    for kw in ({}, {"l2sp": 0.0}):
        model = mlp(1)
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=1, batch_size=8, seed=0, **kw)
        weights.append(b"".join(p.value.tobytes() for p in model.parameters()))
    assert weights[0] == weights[1]
    with pytest.raises(ValueError, match="alpha"):
        transfer.L2SP(mlp().parameters(), -1.0)
    with pytest.raises(TypeError, match="L2SP expected alpha as a real number, received True"):
        transfer.L2SP(mlp().parameters(), True)
    # NumPy's integers are numbers too (they were refused as not numbers)
    assert transfer.L2SP(mlp().parameters(), np.int64(1), beta=np.uint8(0)).alpha == 1.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_l2sp_penalty_is_logged_apart_from_the_loss_as_its_epoch_mean(dtype):
    # the penalty was in no log: "loss" is the compiled loss alone, and
    # "l2sp_penalty" the mean of Omega at each step's weights (batches 8, 8, 4)
    x, y = data(n=20, dtype=dtype)
    runs = {}
    for logged in (False, True):
        model = mlp(0, dtype=dtype)
        model.compile(tn.optim.SGD(model.parameters(), lr=0.1), loss="cross_entropy")
        penalty = transfer.L2SP(model.layers[0].parameters() + model.layers[1].parameters(),
                                alpha=2.0, new_params=model.layers[2], beta=0.5)
        penalty.attach(model.optimizer)
        for p in model.parameters():
            p.value += 0.1  # away from the anchors, and the head from 0
        seen = []

        class Before(tn.callbacks.Callback):
            def on_batch_begin(self, batch, logs=None):
                seen.append(penalty.value())  # the weights this step is taken at

        callbacks = [Before()] + ([penalty.logger()] if logged else [])
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                            callbacks=callbacks)
        runs[logged] = (history.history, b"".join(p.value.tobytes()
                                                  for p in model.parameters()))
    (plain, plain_weights), (logs, weights) = runs[False], runs[True]
    assert weights == plain_weights and logs["loss"] == plain["loss"]  # training as it was
    assert "l2sp_penalty" not in plain and penalty.steps == 6
    sizes = np.array([8, 8, 4])
    expected = [np.dot(seen[3 * e:3 * e + 3], sizes) / 20 for e in (0, 1)]
    np.testing.assert_allclose(logs["l2sp_penalty"], expected, rtol=1e-6)
    assert penalty.last_value == pytest.approx(seen[-1], rel=1e-6)


def test_fine_tune_with_l2sp_logs_the_penalty_in_phase_2_only():
    x, y = data(n=16)
    history = transfer.fine_tune(mlp(1), x, y, head_epochs=1, epochs=2, batch_size=8, seed=0,
                                 l2sp=0.1)
    assert "l2sp_penalty" not in history.head.history
    assert len(history.fine_tune.history["l2sp_penalty"]) == 2
    assert history.fine_tune.history["l2sp_penalty"][1] > 0  # the base has left its anchors
    plain = transfer.fine_tune(mlp(1), x, y, head_epochs=0, epochs=1, batch_size=8, seed=0)
    assert "l2sp_penalty" not in plain.fine_tune.history
    # a History among the user's callbacks records it too (the logger runs first)
    mine = tn.callbacks.History()
    transfer.fine_tune(mlp(1), x, y, head_epochs=0, epochs=1, batch_size=8, seed=0,
                       l2sp_beta=0.1, callbacks=[mine])
    assert len(mine.history["l2sp_penalty"]) == 1


def test_a_history_given_to_fine_tune_keeps_each_phase_apart():
    # fit returns the user's History; phase 2 began new records in it, so the
    # returned head history (the same object) showed phase 2's epochs
    x, y = data(n=16)
    mine = tn.callbacks.History()
    history = transfer.fine_tune(mlp(1), x, y, head_epochs=3, epochs=2, batch_size=8, seed=0,
                                 callbacks=[mine])
    assert history.fine_tune is mine and history.head is not mine
    assert history.head.epoch == [0, 1, 2] and len(history.head.history["loss"]) == 3
    assert mine.epoch == [0, 1] and len(mine.history["loss"]) == 2


def test_l2sp_logger_refuses_a_penalty_that_is_not_stepping():
    x, y = data(n=16)
    model = mlp(0)
    model.compile("sgd", loss="cross_entropy")
    penalty = transfer.L2SP(model, alpha=0.1)  # never attached
    with pytest.raises(RuntimeError, match="L2SPLogger: batch 0 took 0 steps of the optimizer "
                                           "the penalty is attached to, not 1"):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[penalty.logger()])
    with pytest.raises(TypeError, match="L2SPLogger expected an L2SP penalty, received float"):
        transfer.L2SPLogger(0.1)


# ------------------------------------------------------------ the CNN experiment
def test_cnn_layers_shapes_names_and_clear_errors():
    from tinynet.recipes import cnn_layers
    model = tn.Sequential(cnn_layers(784, named=True))
    model.build((784,))
    assert [layer.name for layer in model.layers] == [
        "image", "conv1", "pool1", "conv2", "pool2", "flatten", "fc1"]
    assert model.layers[-2].output_shape == (1600,)         # 5x5x64, as the docstring says
    assert sum(p.value.size for p in model.parameters()) == 223_744
    auto = cnn_layers(784)
    assert not {layer.name for layer in auto} & {"conv1", "fc1"}
    with pytest.raises(ValueError, match="square grey image, received 63"):
        cnn_layers(63)
    with pytest.raises(ValueError, match="8x8 image is too small.*at least 10 pixels"):
        cnn_layers(64)
    with pytest.raises(ValueError, match="9x9 image is too small"):
        cnn_layers(81)
    small = tn.Sequential(cnn_layers(100))                   # the stated minimum, 10x10
    small.build((100,))
    assert small.layers[-2].output_shape == (64,)           # 1x1x64


def test_cnn_layers_with_batch_norm_put_it_before_each_relu_and_drop_the_biases():
    from tinynet.layers import BatchNorm, Conv2D, Dense, ReLU
    from tinynet.layers.activations import Identity
    from tinynet.recipes import cnn_layers
    model = tn.Sequential(cnn_layers(784, named=True, batch_norm=True))
    model.build((784,))
    assert [layer.name for layer in model.layers] == [
        "image", "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
        "flatten", "fc1", "bn3", "relu3"]
    # the 224 biases become 2 x 224 gammas and betas
    assert model.count_params() == 223_744 - 224 + 2 * 224
    for i in (1, 5, 10):
        layer, norm, relu = model.layers[i:i + 3]
        assert isinstance(layer, (Conv2D, Dense)) and not layer.use_bias
        assert type(layer.activation) is Identity
        assert isinstance(norm, BatchNorm) and type(relu) is ReLU
    # same kernels as the CNN without BatchNorm of the same seed
    plain = tn.Sequential(cnn_layers(784, named=True))
    plain.build((784,))
    for name in ("conv1", "conv2", "fc1"):
        np.testing.assert_array_equal(model.get_layer(name).W.value,
                                      plain.get_layer(name).W.value)
    # it trains: the moving statistics follow the batches
    x = np.random.default_rng(0).random((8, 784)).astype(np.float32)
    model.add(tn.layers.Dense(3))
    model.compile("adam", loss="cross_entropy")
    model.fit(x, np.arange(8) % 3, epochs=1, batch_size=4, verbose=0)
    assert not np.all(model.get_layer("bn1").moving_mean == 0)


def test_experiment_runs_the_cnn_and_transfers_its_conv_features(digits_split):
    from tinynet.transfer import experiment
    source, target = digits_split
    cfg = experiment.Config(arch="cnn", filters=(4,), units=8, pretrain_epochs=1, steps=4)
    pretrained = {}
    res = experiment.run(source, target, budgets=(3,), seeds=(0,), config=cfg,
                         methods=("scratch", "features_conv", "fine_tune", "discriminative"),
                         pretrained=pretrained)
    assert res["config"]["arch"] == "cnn" and res["config"]["filters"] == [4]
    assert all(0 <= v[3][0] <= 1 for v in res["accuracy"].values())
    base = pretrained[0]
    assert [layer.name for layer in base.layers][-3:] == ["flatten", "fc1", "head"]
    (x, y), _ = target
    head, inputs = experiment._run_method("features_conv", base, x[:15], y[:15], 5, cfg, seed=0)
    assert inputs(x[:2]).shape == (2, 36)                  # 8x8 -> 6x6x4 -> 3x3x4, flattened
    copy = experiment._transfer_copy(base, 5, cfg, seed=0)
    for a, b in zip(copy.layers[:-1], base.layers[:-1]):   # the base's weights, a new head
        for pa, pb in zip(a.parameters(), b.parameters()):
            np.testing.assert_array_equal(pa.value, pb.value)
    assert len(transfer.layer_groups(copy)) == 3           # conv1, fc1, head


def test_experiment_config_refuses_an_unknown_architecture():
    from tinynet.transfer import experiment
    with pytest.raises(ValueError, match="arch as one of 'mlp', 'cnn', received 'rnn'"):
        experiment.Config(arch="rnn")


@pytest.mark.parametrize("kwargs, error, match", [
    # each ran: head_fraction 2 or -1 and steps <= 0 trained a silently
    # different budget, "no" standardised the features, hidden=8 and a
    # non-number head_fraction failed deep inside (int not iterable, __round__)
    ({"head_fraction": 2.0}, ValueError, r"head_fraction in \(0, 1\), received 2.0"),
    ({"head_fraction": -1}, ValueError, r"head_fraction in \(0, 1\), received -1"),
    ({"head_fraction": "x"}, TypeError, "head_fraction as a real number, received 'x'"),
    ({"steps": 0}, ValueError, "steps as a positive integer, received 0"),
    ({"pretrain_epochs": 0}, ValueError, "pretrain_epochs as a positive integer, received 0"),
    ({"batch_size": 2.5}, TypeError, "batch_size as a positive integer, received 2.5"),
    ({"standardize_features": "no"}, TypeError, "standardize_features as True or False"),
    ({"hidden": 8}, TypeError, r"hidden as a non-empty sequence of positive integers "
                               r"\(one width per hidden layer\), received 8"),
    ({"hidden": ()}, ValueError, r"hidden as a non-empty sequence of positive integers"),
    ({"filters": (4, 0)}, ValueError, r"filters as a non-empty sequence of positive integers"),
    ({"units": 0}, ValueError, "units as a positive integer, received 0"),
    ({"lr": 0}, ValueError, r"lr in \(0, inf\), received 0"),
    ({"fine_tune_lr": "1e-3"}, TypeError, "fine_tune_lr as a real number"),
    ({"l2sp": -1}, ValueError, r"l2sp in \[0, inf\), received -1"),
    ({"label_smoothing": 1}, ValueError, r"label_smoothing in \[0, 1\), received 1"),
])
def test_experiment_config_checks_every_setting(kwargs, error, match):
    from tinynet.transfer import experiment
    with pytest.raises(error, match="Config expected " + match):
        experiment.Config(**kwargs)


def test_experiment_run_checks_its_arguments_before_pretraining(digits_split):
    # an unknown method was found after pretraining (minutes, in the
    # benchmark); methods="scratch" was read letter by letter, budget 0 died
    # in a ZeroDivisionError, and config={...} in an AttributeError
    from tinynet.transfer import experiment
    source, target = digits_split
    cfg = experiment.Config(hidden=(4,), pretrain_epochs=1, steps=2)
    for kwargs, error, match in [
            ({"methods": ("scratch", "xx")}, ValueError,
             r"run expected methods among 'scratch', 'features', 'fine_tune', 'discriminative', "
             r"'features_fc1', 'features_conv', 'l2sp'; received 'xx'"),
            ({"methods": "scratch"}, TypeError, r"run expected methods as a list or tuple of "
                                                r"names, received 'scratch'"),
            ({"budgets": (5, 0)}, ValueError, "run expected each budget as a positive integer, "
                                              "received 0"),
            ({"budgets": ()}, ValueError, "run expected at least one budget"),
            ({"seeds": (0, 1.5)}, TypeError, "run expected each seed as an integer >= 0, "
                                             "received 1.5 of type float"),
            ({"seeds": (-1,)}, ValueError, "run expected each seed as an integer >= 0, "
                                           "received -1"),
            ({"methods": ("features_conv",)}, ValueError,
             r"run: method 'features_conv' needs Config\(arch='cnn'\)"),
            ({"config": {"steps": 3}}, TypeError, r"run expected config as a Config \(or None\), "
                                                  r"received dict")]:
        pretrained = {}
        args = {"budgets": (5,), "seeds": (0,), "config": cfg, **kwargs}
        with pytest.raises(error, match=match):
            experiment.run(source, target, pretrained=pretrained, **args)
        assert pretrained == {}  # nothing was pretrained


def test_experiment_gives_the_two_phase_methods_the_step_budget_of_the_others(digits_split,
                                                                            monkeypatch):
    # each phase was rounded up to one epoch: a budget of one epoch gave
    # fine_tune and discriminative two, twice the steps of scratch and features
    from tinynet.transfer import experiment
    source, target = digits_split
    cfg = experiment.Config(hidden=(4,), pretrain_epochs=1, steps=2)  # 50 images: 2 batches
    for methods, named in ((("fine_tune",), "'fine_tune'"),
                           (("scratch", "discriminative", "l2sp"), "'discriminative', 'l2sp'")):
        pretrained = {}
        with pytest.raises(ValueError, match=rf"run: the two-phase method\(s\) {named} .* at "
                                             rf"least 2 epochs; Config\(steps=2\) is 1 epoch of 2 "
                                             rf"batch\(es\) of 50 images \(batch_size 32\): pass "
                                             rf"steps > 2"):
            experiment.run(source, target, budgets=(10,), seeds=(0,), methods=methods,
                           config=cfg, pretrained=pretrained)
        assert pretrained == {}  # refused before pretraining
    (x, y), _ = target
    base = experiment.build_mlp(64, 5, (4,), seed=0)
    with pytest.raises(ValueError, match="at least 2 epochs"):
        experiment._run_method("fine_tune", base, x[:50], y[:50], 5, cfg, seed=0)
    phases = []
    monkeypatch.setattr(experiment, "fine_tune",
                        lambda *args, head_epochs, epochs, **kwargs:
                        phases.append((head_epochs, epochs)))
    for steps, fraction in ((3, 0.25), (8, 0.25), (4, 0.9)):  # 2, 4 and 2 epochs
        cfg = experiment.Config(hidden=(4,), steps=steps, head_fraction=fraction)
        experiment._run_method("discriminative", base, x[:50], y[:50], 5, cfg, seed=0)
    assert phases == [(1, 1), (1, 3), (1, 1)]


def test_class_split_and_sample_per_class_check_their_arguments():
    # class_split(x, y, [0, 0]) labelled class 0 as 1 (the later of the two
    # numbers it was given), [-1, 0] wrote -1 into the lookup's last entry;
    # both returned wrong labels silently. The rest failed deep in NumPy.
    from tinynet.transfer.experiment import class_split, sample_per_class
    x, y = np.zeros((6, 2)), np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(class_split(x, y, [2, 0])[1], [1, 0, 1, 0])
    for classes, error, match in (([0, 0], ValueError, r"distinct class ids, received \[0, 0\]"),
                                  ([-1, 0], ValueError, r"class ids >= 0, received \[-1, 0\]"),
                                  ([], ValueError, "at least one class"),
                                  ([1.5], TypeError, r"integer class ids, received \[1.5\]"),
                                  (3, TypeError, "a sequence of class ids, received 3")):
        with pytest.raises(error, match="class_split expected " + match):
            class_split(x, y, classes)
    with pytest.raises(ValueError, match="class_split expected one label per sample of x "
                                         r"\(6\), received 3"):
        class_split(x, y[:3], [0])
    rng = np.random.default_rng(0)
    assert len(sample_per_class(y, 2, rng)) == 6
    for n, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="sample_per_class expected n_per_class as a positive "
                                        "integer"):
            sample_per_class(y, n, rng)
    with pytest.raises(TypeError, match="sample_per_class expected rng as a "
                                        "numpy.random.Generator, received int"):
        sample_per_class(y, 1, 0)


def test_discriminative_lrs_names_itself_in_its_errors():
    with pytest.raises(ValueError, match=r"discriminative_lrs expected base_lr in \(0, inf\), "
                                         r"received 0.0"):
        transfer.discriminative_lrs(3, 0)
    # NumPy's integers are numbers too (they were refused as not numbers)
    assert transfer.discriminative_lrs(2, np.int64(1), factor=np.int32(2)) == [0.5, 1.0]
    with pytest.raises(TypeError, match="discriminative_lrs expected factor"):
        transfer.discriminative_lrs(3, 1e-3, factor="2")
    for bad in (0, -1, 2.5):  # 0 and -1 gave [] silently, 2.5 range()'s TypeError
        with pytest.raises((ValueError, TypeError), match="discriminative_lrs expected n_groups"):
            transfer.discriminative_lrs(bad, 1e-3)


def test_layer_groups_that_leave_out_a_layer_with_parameters_are_refused():
    # fc2 in no group: discriminative_param_groups left it out of the optimizer,
    # so fine_tune(factor=...) never trained it, silently
    model = mlp()
    x, y = data(n=16)
    fc2 = model.layers[1].W.value.copy()
    with pytest.raises(ValueError, match="discriminative_param_groups expected every layer "
                                         "with parameters in a layer group; no group holds "
                                         "'fc2'"):
        transfer.discriminative_param_groups(model, 1e-2, groups=[["fc1"], ["head"]])
    count = _CountEpochs()
    for kwargs in ({"factor": 2.6}, {"gradual": True}):
        with pytest.raises(ValueError, match="fine_tune expected every layer with parameters "
                                             "in a layer group; no group holds 'fc2'"):
            transfer.fine_tune(model, x, y, head_epochs=1, epochs=2, groups=[["fc1"], ["head"]],
                               callbacks=[count], **kwargs)
    assert count.epochs == 0 and model.layers[1].W.value.tobytes() == fc2.tobytes()
    # parameter-free layers may stay out of every group
    relu = tn.Sequential([tn.layers.Dense(4, input_dim=6), tn.layers.ReLU(), tn.layers.Dense(3)])
    assert len(transfer.discriminative_param_groups(relu, 1e-2, groups=[[0], [2]])) == 2


def nested_bn_model(x):
    """Sequential([base, head]) whose base holds fc1 (frozen by the user), a
    BatchNorm with moving statistics and fc2: the Keras layout of a base."""
    base = tn.Sequential([tn.layers.Dense(8, input_dim=6, dtype="float64", seed=0, name="fc1"),
                          tn.layers.BatchNorm(name="bn"), tn.layers.ReLU(),
                          tn.layers.Dense(8, activation="relu", seed=1, name="fc2")],
                         name="base")
    base.compile("adam", loss="mse")
    base.fit(x, np.ones((len(x), 8)), epochs=1, batch_size=8, verbose=0, seed=0)
    base.layers[0].trainable = False
    return tn.Sequential([base, tn.layers.Dense(3, seed=2, name="head")]), base


@pytest.mark.parametrize("gradual", [False, True])
def test_fine_tune_keeps_frozen_layers_inside_a_nested_base_frozen(gradual):
    # setting the nested base trainable unfroze its BatchNorm (its moving
    # statistics drifted to the new data) and the user's frozen fc1
    x, y = data(n=32, d=6)
    model, base = nested_bn_model(x)
    fc1, bn = base.layers[0], base.layers[1]
    state = {k: np.array(v, copy=True) for k, v in bn.get_state().items()}
    before = {p.name: p.value.copy() for p in fc1.parameters() + bn.parameters()}
    fc2 = base.layers[3].W.value.copy()
    seen = []

    class Record(tn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((fc1.trainable, bn.trainable, base.layers[3].trainable))

    transfer.fine_tune(model, x * 3 + 1, y, head_epochs=1, epochs=2, batch_size=8, seed=0,
                       gradual=gradual, callbacks=[Record()])
    assert seen == [(False, False, False), (False, False, not gradual), (False, False, True)]
    for key, old in state.items():
        assert np.asarray(bn.get_state()[key]).tobytes() == old.tobytes(), key
    for p in fc1.parameters() + bn.parameters():
        assert p.value.tobytes() == before[p.name].tobytes(), p.name
    assert not np.array_equal(base.layers[3].W.value, fc2)       # the rest of the base tuned
    assert not fc1.trainable and not bn.trainable               # still frozen afterwards


def test_a_failed_fine_tune_restores_the_flags_inside_a_nested_base():
    x, y = data(n=32, d=6)
    model, base = nested_bn_model(x)
    flags = [layer.trainable for layer in base.layers]

    class Fail(tn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=2, batch_size=8,
                           callbacks=[Fail()])
    assert [layer.trainable for layer in base.layers] == flags == [False, True, True, True]
    assert [p.trainable for p in model.parameters()] == [False] * 2 + [True] * 6


def test_gradual_unfreezing_keeps_layer_objects_frozen_even_inside_a_nested_model():
    x, y = data(n=32, d=6)
    model, base = nested_bn_model(x)
    bn = base.layers[1]
    cb = transfer.GradualUnfreezing(keep_frozen=[bn])
    model.compile(tn.optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    # the base trains from epoch 1, its BatchNorm kept frozen inside it
    assert cb.schedule == [(0, ["head"]), (1, ["base/fc1", "base/fc2", "head"])]
    assert transfer.frozen_layers(model) == ["base/bn"]
    assert not bn.trainable and base.layers[3].trainable
    stranger = tn.layers.Dense(2, name="stranger")
    with pytest.raises(ValueError, match="keep_frozen holds .*'stranger'.*not a layer of the "
                                         "model"):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0,
                  callbacks=[transfer.GradualUnfreezing(keep_frozen=stranger)])


def test_copy_weights_copies_the_state_of_a_batchnorm_inside_a_nested_model():
    # only the top layer's own state was copied: a nested base's moving
    # statistics stayed the destination's, so the copy predicted differently
    x, y = data(n=32, d=6)
    src, _ = nested_bn_model(x * 3 + 2)
    dst, _ = nested_bn_model(x)
    transfer.copy_weights(src, dst)
    np.testing.assert_array_equal(dst.predict(x), src.predict(x))
    for got, want in zip(dst.get_weights(), src.get_weights()):
        np.testing.assert_array_equal(got, want)
    other = tn.Sequential([tn.Sequential([tn.layers.Dense(8, input_dim=6, name="fc1"),
                                          tn.layers.LayerNorm(name="ln"), tn.layers.ReLU(),
                                          tn.layers.Dense(8, name="fc2")], name="base"),
                           tn.layers.Dense(3, name="head")])
    before = values(other)
    with pytest.raises(ValueError, match="different layer types inside: Dense, BatchNorm, "
                                         "ReLU, Dense vs Dense, LayerNorm, ReLU, Dense"):
        transfer.copy_weights(src, other)
    assert all(np.array_equal(a, b) for a, b in zip(values(other), before))


@pytest.mark.parametrize("metrics, logged", [(None, {"loss"}), ("accuracy", {"loss", "accuracy"})])
def test_fine_tune_takes_metrics_as_compile_does(metrics, logged):
    # list(metrics) gave "'NoneType' object is not iterable" and, for a single
    # name, "unknown metric 'a'" (the name split into letters)
    x, y = data(n=16)
    hist = transfer.fine_tune(mlp(), x, y, head_epochs=1, epochs=1, batch_size=8,
                              metrics=metrics)
    assert set(hist.head.history) == set(hist.fine_tune.history) == logged


def test_extract_features_refuses_a_model_not_built():
    # it built the model on the spot: features of random weights, silently
    model = tn.Sequential([tn.layers.Dense(8, name="fc1"), tn.layers.Dense(3)])
    with pytest.raises(ValueError, match="extract_features: the model is not built"):
        transfer.extract_features(model, data()[0], layer="fc1")
    assert not model.built


def test_l2sp_takes_a_model_or_params_and_names_anything_else():
    model = mlp()
    assert transfer.L2SP(model, 0.1).params == model.parameters()
    assert transfer.L2SP(model.layers[0], 0.1).params == model.layers[0].parameters()
    with pytest.raises(TypeError, match=r"list of Param \(or a layer or model\), received an "
                                        r"item of type Dense "
                                        r"\(pass layer.parameters\(\)\)"):
        transfer.L2SP(model.layers, 0.1)
    with pytest.raises(TypeError, match="L2SP expected params as a list of Param"):
        transfer.L2SP(3, 0.1)


def test_fine_tune_of_an_unbuilt_model_says_it_has_no_pretrained_weights():
    # it said "the head 1 ('head') has no parameters to train; count the
    # layers below it too", which sent the user after the wrong mistake
    model = tn.Sequential([tn.layers.Dense(4, name="fc1"), tn.layers.Dense(3, name="head")])
    x, y = data()
    with pytest.raises(ValueError, match=r"fine_tune: the model is not built, so it has no "
                                         r"pretrained weights"):
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=1)
    assert not model.built


def test_l2sp_refuses_an_unbuilt_model_and_an_empty_penalty():
    # an unbuilt model has no parameters yet: the penalty took none, no
    # anchors, and training built the weights and ran with no penalty at all
    unbuilt = tn.Sequential([tn.layers.Dense(4), tn.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"L2SP expected params of a built model, received "
                                         r"Sequential '.*', which is not built"):
        transfer.L2SP(unbuilt, 0.1)
    with pytest.raises(ValueError, match=r"L2SP expected new_params of a built layer, "
                                         r"received Dense '.*', which is not built"):
        transfer.L2SP(mlp(), 0.1, new_params=tn.layers.Dense(3), beta=0.1)
    with pytest.raises(ValueError, match=r"L2SP expected parameters to penalise, received none"):
        transfer.L2SP([], 0.1)
    assert transfer.L2SP([], 0.1, new_params=mlp(), beta=0.1).params == []  # beta alone


def test_l2sp_refuses_a_parameter_given_twice_naming_it():
    # L2SP([p, p]) penalised p twice: value 3.0 for 1.5, gradient 2 for 1
    model = mlp()
    w, b = model.get_layer("head").parameters()
    for params, new_params, where in (([w, b, w], (), "params"), ([], [b, w, b], "new_params")):
        with pytest.raises(ValueError, match=rf"L2SP received a parameter twice in {where}: "
                                             rf"'{(w if where == 'params' else b).name}' "
                                             rf"\(at positions 0 and 2\) \("):
            transfer.L2SP(params, 0.1, new_params=new_params, beta=0.1)
    p = tn.param.Param(np.zeros(3))
    with pytest.raises(ValueError, match=r"twice in params: an unnamed one \(at positions 1 "
                                         r"and 3\) \(its"):
        transfer.L2SP([w, p, b, p], 1.0)
    penalty = transfer.L2SP([p], 1.0)
    p.value[...] = 1.0
    assert penalty.add_grad() == 1.5 and np.array_equal(p.grad, np.ones(3))


def test_l2sp_attach_checks_its_optimizer_and_adds_the_gradient_once():
    model = mlp()
    x, y = data()
    model.compile(tn.optim.SGD(lr=0.1), loss="cross_entropy")
    penalty = transfer.L2SP(model.layers[0], 0.5)
    for bad in (None, "adam", tn.optim.SGD):
        with pytest.raises(TypeError, match=r"L2SP.attach expected a tinynet optimizer "
                                            r"\(model.optimizer after model.compile\), received"):
            penalty.attach(bad)
    penalty.attach(model.optimizer)
    # a second attach wrapped the step again: the gradient was added twice
    with pytest.raises(ValueError, match="L2SP.attach: this penalty is already attached to "
                                         "this optimizer"):
        penalty.attach(model.optimizer)
    # an optimizer that does not step the penalised parameters would ignore it
    other = tn.optim.SGD(mlp(seed=5).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"L2SP.attach: the optimizer does not hold 2 of the "
                                         r"penalised parameters \('fc1/W', 'fc1/b'\)"):
        penalty.attach(other)
    # attached once, one step moves fc1 by lr * alpha * (w - w0) beyond the loss's gradient
    w = model.layers[0].W
    w.value = w.value + 1.0
    model.zero_grad()
    before = w.value.copy()
    model.optimizer.step()  # the loss's gradient is 0 here
    np.testing.assert_allclose(w.value, before - 0.1 * 0.5 * 1.0)



@pytest.mark.parametrize("first_out", [False, True])
def test_l2sp_detach_restores_the_plain_step_in_any_order(first_out):
    model = mlp()
    model.compile(tn.optim.SGD(lr=0.1), loss="cross_entropy")
    first, second = transfer.L2SP(model.layers[0], 0.5), transfer.L2SP(model.layers[0], 0.25)
    with pytest.raises(ValueError, match="L2SP.detach: this penalty is not attached to this "
                                         "optimizer"):
        first.detach(model.optimizer)
    first.attach(model.optimizer)
    second.attach(model.optimizer)
    if first_out:  # (step wrappers had to be unwrapped last attached first)
        first, second = second, first
    w = model.layers[0].W
    anchor = w.value.copy()

    def step():  # from 1 away from both anchors; the loss's gradient is 0 here
        w.value = anchor + 1.0
        model.zero_grad()
        model.optimizer.step()
        return w.value - (anchor + 1.0)

    np.testing.assert_allclose(step(), -0.1 * (0.5 + 0.25))   # both penalties
    assert second.detach(model.optimizer) is model.optimizer
    np.testing.assert_allclose(step(), -0.1 * first.alpha)    # the one left alone
    first.detach(model.optimizer)
    assert model.optimizer.penalties == []
    assert not step().any()
    first.attach(model.optimizer)                             # and it may attach again
    assert step().any()


@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
def test_l2sp_trains_a_multi_task_model(max_grad_norm):
    # its step is optimizer.step(unclipped=...): the wrapper L2SP.attach put
    # in place of step took no arguments, a TypeError at the first batch
    from tinynet.mtl import experiments as ex
    x, _ = data(n=24, d=8)
    ys = {"a": np.arange(24) % 3, "b": np.arange(24) % 2}
    moved = {}
    for alpha in (0.0, 10.0):
        model = ex.hard_sharing(8, [16], {"a": 3, "b": 2}, seed=0)
        model.compile(tn.optim.Adam(lr=1e-2, max_grad_norm=max_grad_norm),
                      loss="cross_entropy")
        trunk = model.parameters()[:2]
        start = [p.value.copy() for p in trunk]
        penalty = transfer.L2SP(trunk, alpha=alpha)
        penalty.attach(model.optimizer)
        history = model.fit(x, ys, epochs=3, batch_size=8, verbose=0, seed=0,
                            callbacks=[penalty.logger()])
        assert penalty.steps == 9 and len(history.history["l2sp_penalty"]) == 3
        moved[alpha] = sum(np.linalg.norm(p.value - w) for p, w in zip(trunk, start))
    assert 0 < moved[10.0] < moved[0.0]


def test_fine_tune_detaches_its_l2sp_penalty_when_phase_2_ends():
    # a later fit used to keep pulling toward the pretrained weights, unlogged,
    # unlike the same model saved and loaded (a file holds no penalty)
    x, y = data(n=16, d=6)
    model = mlp(0)
    transfer.fine_tune(model, x, y, head_epochs=1, epochs=1, batch_size=8, seed=0, l2sp=10.0)
    assert "step" not in vars(model.optimizer)
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    assert "l2sp_penalty" not in history.history

def test_a_layer_name_held_twice_is_refused_not_resolved_to_the_first():
    # replace_head let a new head be named "fc1" like a base layer; then
    # freeze(model, layers="fc1") froze the base layer only, silently
    model = mlp()
    before = [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match=r"model has 2 layers named 'fc1' \(at indices 0, 2\): "
                                         r"replace_head expected new layers with names not in "
                                         r"use"):
        transfer.replace_head(model, tn.layers.Dense(3, name="fc1"))
    assert [layer.name for layer in model.layers] == before          # nothing removed
    transfer.replace_head(model, tn.layers.Dense(3, name="head"))   # the removed name is free
    with pytest.raises(ValueError, match="already has a layer named 'a'"):
        tn.Sequential([tn.layers.Dense(4, input_dim=6, name="a"), tn.layers.Dense(4, name="a")])
    # Sequential refuses a repeated name; one set by hand afterwards is still refused here
    twice = tn.Sequential([tn.layers.Dense(4, input_dim=6, name="a"), tn.layers.Dense(4, name="a2"),
                           tn.layers.Dense(2, name="b")])
    twice.layers[1].name = "a"
    for call in (lambda: transfer.freeze(twice, layers="a"),
                 lambda: transfer.extract_features(twice, data()[0], layer="a"),
                 lambda: transfer.fine_tune(twice, *data(k=2), head="a")):
        with pytest.raises(ValueError, match=r"2 layers named 'a' \(at indices 0, 1\): the name "
                                             r"picks no single layer: pass an index"):
            call()
    assert transfer.frozen_layers(twice) == []
    other = tn.Sequential([tn.layers.Dense(4, input_dim=6, name="a"),
                           tn.layers.Dense(2, name="b")])
    with pytest.raises(ValueError, match="copy_weights by name cannot tell which of the source"):
        transfer.copy_weights(twice, other, by="name")


@given(seed=st.integers(0, 2**16), alpha=st.floats(1e-3, 10.0), beta=st.floats(1e-3, 10.0))
def test_l2sp_plain_l2_on_new_params_matches_finite_differences(seed, alpha, beta):
    # Li et al.'s penalty: alpha/2 ||w_S - w0_S||^2 + beta/2 ||w_new||^2
    model = mlp(seed)
    base, head = model.layers[0].parameters() + model.layers[1].parameters(), \
        model.layers[2].parameters()
    penalty = transfer.L2SP(base, alpha, new_params=head, beta=beta)
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.value += rng.standard_normal(p.value.shape)
        p.zero_grad()
    penalty.add_grad()
    for p in model.parameters():
        # quadratic: central differences are exact for any eps, and a large one
        # keeps their rounding (~1e-16 * value / eps) below the smallest entries
        expected = numerical_grad(penalty.value, p.value, eps=0.5)
        assert max_rel_error(p.grad, expected, scale_floor=1e-3) < 1e-6
    for p in head:                                           # beta * w, toward zero
        np.testing.assert_allclose(p.grad, beta * p.value)


def test_l2sp_beta_pulls_the_head_to_zero_in_fine_tune_and_bad_settings_are_errors():
    x, y = data(n=40, d=6)
    norms = {}
    for beta in (0.0, 5.0):
        model = mlp(0)
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=5, lr=1e-2, l2sp_beta=beta,
                           batch_size=8, seed=0)
        norms[beta] = np.linalg.norm(model.layers[-1].W.value)
    assert norms[5.0] < 0.5 * norms[0.0]
    model = mlp()
    with pytest.raises(ValueError, match="L2SP expected params and new_params apart, received "
                                         "'head/W', 'head/b' in both"):
        transfer.L2SP(model, 0.1, new_params=model.layers[-1], beta=0.1)
    with pytest.raises(ValueError, match=r"L2SP expected beta in \[0, inf\), received -1.0"):
        transfer.L2SP(model.layers[0], 0.1, beta=-1.0)
    with pytest.raises(ValueError, match=r"fine_tune expected l2sp_beta in \[0, inf\)"):
        transfer.fine_tune(model, x, y, l2sp_beta=-1)


def test_a_model_saved_after_surgery_and_freezing_loads_back_identically(tmp_path):
    # flags of a nested base that differ inside it, a new head, Adam state of
    # the layers that trained: all back from the file, and training resumes
    # (unfrozen) to the same bits as without the round trip
    x, y = data(n=32, d=6)
    model, base = nested_bn_model(x)
    transfer.replace_head(model, [tn.layers.Dense(5, seed=7, name="new_head")])
    for layer in base.layers:          # (a frozen base would keep fc2 frozen: Keras' rule)
        layer.trainable = False
    base.layers[3].trainable = True                      # fc2 trains, the rest of the base not
    compile_fit(model, x, y % 5, epochs=1)
    model.save(tmp_path / "m.npz")
    loaded = tn.load(tmp_path / "m.npz")
    flags = lambda m: ([layer.trainable for layer in m.layers[0].layers + m.layers[1:]],
                       [p.trainable for p in m.parameters()])
    assert flags(loaded) == flags(model) == ([False, False, False, True, True],
                                             [False] * 4 + [True] * 4)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    for m in (model, loaded):
        transfer.unfreeze(m)
        m.fit(x, y % 5, epochs=3, initial_epoch=1, batch_size=8, verbose=0, seed=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_layer_groups_out_of_order_are_refused():
    # [["head"], ["fc1", "fc2"]] gave the head the lowest rate (1/2.6 of the
    # base's) and gradual unfreezing began with the base, silently
    model = mlp()
    for groups, match in (([["head"], ["fc1", "fc2"]], r"received \['fc1', 'fc2'\] after "
                                                        r"\['head'\]"),
                          ([[0, 2], [1]], r"received \['fc2'\] after \['fc1', 'head'\]")):
        with pytest.raises(ValueError, match="expected layer groups bottom \\(input side\\) to "
                                             "top, each above the ones before it; " + match):
            transfer.discriminative_param_groups(model, 1e-2, groups=groups)
        with pytest.raises(ValueError, match="bottom"):
            transfer.fine_tune(model, *data(n=16), groups=groups, factor=2.6)
    assert transfer.layer_groups(model, [slice(0, 2), "head"]) == [[0, 1], [2]]


def test_fine_tune_refuses_a_head_without_parameters():
    # head=1 on a Softmax top trained nothing in phase 1, silently
    model = tn.Sequential([tn.layers.Dense(8, activation="relu", input_dim=6, name="fc1"),
                           tn.layers.Dense(3, name="new_head"), tn.layers.Softmax(name="probs")])
    x, y = data(n=16)
    count = _CountEpochs()
    with pytest.raises(ValueError, match=r"fine_tune: the head 1 \('probs'\) has no parameters "
                                         r"to train; count the layers below it too"):
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=1, callbacks=[count])
    assert count.epochs == 0
    hist = transfer.fine_tune(model, x, y, head="new_head", head_epochs=1, epochs=1,
                              batch_size=8)
    assert len(hist.head.history["loss"]) == 1


def test_fine_tune_refuses_phases_that_would_train_nothing():
    # layers frozen before the call stay frozen: with the head frozen, phase 1
    # trained nothing, and with every layer frozen neither phase did, silently
    model = mlp()
    x, y = data(n=16)
    before = values(model)
    transfer.freeze(model, "head")
    count = _CountEpochs()
    with pytest.raises(ValueError, match=r"fine_tune: every parameter of the head \('head'\) "
                                         r"is frozen, so phase 1 would train nothing"):
        transfer.fine_tune(model, x, y, head_epochs=1, epochs=1, callbacks=[count])
    transfer.freeze(model)
    with pytest.raises(ValueError, match=r"fine_tune: every parameter of the model is frozen "
                                         r"\(or a BatchNorm kept frozen\), so phase 2 would "
                                         r"train nothing"):
        transfer.fine_tune(model, x, y, head_epochs=0, epochs=1, callbacks=[count])
    assert count.epochs == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, values(model)))
    # a frozen head with phase 1 skipped, or a frozen base, is a choice, not a no-op
    transfer.unfreeze(model, upto="head")
    hist = transfer.fine_tune(model, x, y, head_epochs=0, epochs=1, batch_size=8)
    assert len(hist.fine_tune.history["loss"]) == 1


def test_layer_groups_of_an_unbuilt_model_say_it_is_not_built():
    # "model has no layers with parameters to group" of Dense layers that
    # have parameters as soon as they are built
    model = tn.Sequential([tn.layers.Dense(4, name="fc1"), tn.layers.Dense(3, name="head")])
    for call in (lambda: transfer.layer_groups(model),
                 lambda: transfer.discriminative_param_groups(model, 1e-3)):
        with pytest.raises(ValueError, match=r"the model is not built, so its layers have no "
                                             r"parameters yet \(train, load or build it first\)"):
            call()


def test_layer_groups_take_a_numpy_integer_count():
    # fine_tune accepted np.int64 groups, then layer_groups refused them with
    # "expected groups as None, an int or a list ..., received 2 of type int64"
    model = mlp()
    assert transfer.layer_groups(model, np.int64(2)) == transfer.layer_groups(model, 2)
    hist = transfer.fine_tune(model, *data(n=16), groups=np.int64(2), factor=2.0,
                              head_epochs=0, epochs=1, batch_size=8)
    assert len(hist.fine_tune.history["loss"]) == 1


def test_copying_every_layer_into_an_unbuilt_model_builds_it():
    # its layers were built and holding the weights, but the model itself said
    # "not built", so predict refused until a fit
    from tinynet.layers import Dense, Dropout, ReLU

    def layers():
        return [Dense(4, name="a"), ReLU(), Dropout(0.1), Dense(2, name="b")]

    src = tn.Sequential([Dense(4, input_dim=3, name="a", seed=0), ReLU(), Dropout(0.1),
                         Dense(2, name="b", seed=1)])
    dst = tn.Sequential(layers())
    transfer.copy_weights(src, dst)
    assert dst.built
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    np.testing.assert_array_equal(dst.predict(x), src.predict(x))
    part = tn.Sequential(layers())
    transfer.copy_weights(src, part, layers=[0])
    assert not part.built  # the rest is left for build or fit to draw
