"""The functional API: graph building, forward/backward over a DAG, errors."""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers import BatchNorm, Dense
from tests.mtl.helpers import check_model_gradients

TOL = 1e-6


def two_input_two_output(units, seed, shared_twice=False):
    """Two inputs, a layer shared by both branches, a concatenation, two heads."""
    i1 = tn.mtl.Input((4,), dtype="float64")
    i2 = tn.mtl.Input((3,), dtype="float64")
    shared = Dense(units, activation="tanh", seed=seed)
    h1 = shared(Dense(5, seed=seed + 1, activation="tanh")(i1))
    h2 = Dense(5, seed=seed + 2)(i2)
    h2 = shared(h2) if shared_twice else Dense(units, seed=seed + 3)(h2)
    both = tn.mtl.Concatenate()([h1, h2])
    out_a = Dense(2, seed=seed + 4)(both)
    out_b = Dense(3, seed=seed + 5, activation="tanh")(tn.mtl.Add()([h1, h2]))
    return tn.mtl.Model([i1, i2], {"a": out_a, "b": out_b}), (i1, i2)


@given(batch=st.integers(1, 4), units=st.integers(1, 4), seed=st.integers(0, 10_000),
       shared_twice=st.booleans())
def test_dag_gradients_match_finite_differences(batch, units, seed, shared_twice):
    model, _ = two_input_two_output(units, seed, shared_twice)
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((batch, 4)), rng.standard_normal((batch, 3))]
    errors = check_model_gradients(model, xs, rng)
    assert max(errors.values()) < TOL, errors


def test_one_task_backward_leaves_the_other_head_untouched():
    model, _ = two_input_two_output(3, 0)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 4)), rng.standard_normal((5, 3))]
    errors = check_model_gradients(model, xs, rng, skip=(1,))
    assert max(errors.values()) < TOL
    for p in model.task_parameters("b"):
        assert not p.grad.any(), p.name


def test_backward_twice_doubles_gradients():
    model, _ = two_input_two_output(3, 1, shared_twice=True)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((3, 4)), rng.standard_normal((3, 3))]
    outs = model.forward_all(xs)
    dys = [rng.standard_normal(o.shape) for o in outs]
    model.zero_grad()
    model.backward_all(dys)
    once = [p.grad.copy() for p in model.parameters()]
    model.backward_all(dys)
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12, atol=1e-14)


def test_shared_and_task_parameters_partition_the_model():
    model, _ = two_input_two_output(3, 2)
    shared = {p.name for p in model.shared_parameters()}
    only_a = {p.name for p in model.task_parameters("a")}
    only_b = {p.name for p in model.task_parameters(1)}
    assert shared and only_a and only_b
    assert shared | only_a | only_b == {p.name for p in model.parameters()}
    assert not (shared & only_a) and not (shared & only_b) and not (only_a & only_b)


def test_seed_example_from_the_issue_runs():
    input1 = tn.mtl.Input(shape=(100,)); input2 = tn.mtl.Input(shape=(100,))
    hidden1 = Dense(64, activation="relu")(input1)
    hidden2 = Dense(64, activation="relu")(input2)
    output1 = Dense(10, activation="softmax")(hidden1)
    output2 = Dense(10, activation="softmax")(hidden2)
    model = tn.mtl.Model(inputs=[input1, input2], outputs=[output1, output2])
    x = np.random.default_rng(0).standard_normal((6, 100)).astype(np.float32)
    p1, p2 = model.forward([x, x])
    assert p1.shape == p2.shape == (6, 10) and p1.dtype == np.float32
    np.testing.assert_allclose(p1.sum(axis=1), 1, rtol=1e-5)
    assert model.output_names == [output1.name, output2.name]
    assert model.count_params() == 2 * (100 * 64 + 64 + 64 * 10 + 10)
    assert "Total params" in model.summary(print_fn=None)


def test_layers_still_compute_on_arrays():
    layer = Dense(2, seed=0)
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(layer(x), layer.forward(x))


def test_errors_are_clear():
    i1 = tn.mtl.Input((4,))
    i2 = tn.mtl.Input((4,))
    out = Dense(2)(i1)
    with pytest.raises(ValueError, match="positive integers"):
        tn.mtl.Input((0,))
    with pytest.raises(TypeError, match="takes one input"):
        Dense(2)([i1, i2])
    with pytest.raises(ValueError, match="not in inputs"):
        tn.mtl.Model(inputs=[i2], outputs=[out])
    with pytest.raises(ValueError, match="distinct output names"):
        tn.mtl.Model(inputs=i1, outputs=[out, out])
    with pytest.raises(TypeError, match="symbolic tensor"):
        tn.mtl.Model(inputs=np.zeros(3), outputs=out)
    shared = Dense(2)
    shared(i1)
    with pytest.raises(ValueError, match="built for input shape"):
        shared(Dense(3)(i2))
    model = tn.mtl.Model(inputs=i1, outputs=out)
    with pytest.raises(ValueError, match="shape"):
        model.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="expected 1 input"):
        model.forward([np.zeros((2, 4), np.float32)] * 2)
    with pytest.raises(RuntimeError, match="before forward"):
        tn.mtl.Model(inputs=i1, outputs=Dense(1)(i1)).backward(np.zeros((2, 1)))
    model.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="gradient of output"):
        model.backward(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="no task"):
        model.task_parameters("nope")


def test_inputs_that_would_take_data_and_ignore_it_are_refused(tmp_path):
    # Each of these built a model that silently dropped an array given to it.
    a, b = tn.mtl.Input((3,), name="a"), tn.mtl.Input((3,), name="b")
    with pytest.raises(ValueError, match="every input to reach an output, received inputs "
                                         "\\['b'\\] that no output depends on"):
        tn.mtl.Model([a, b], Dense(1)(a))  # the second branch forgotten
    with pytest.raises(ValueError, match="each input once, received 'a' twice"):
        tn.mtl.Model([a, a], Dense(1)(a))  # the first array was ignored
    twin = tn.mtl.Input((3,), name="a")
    with pytest.raises(ValueError, match="distinct input names .* received \\['a', 'a'\\]"):
        tn.mtl.Model([a, twin], {"p": Dense(1)(a), "q": Dense(1)(twin)})
    # A file written before these checks still loads; a dict of arrays cannot
    # say which input "a" means, so a list is asked for.
    old = tn.mtl.Model([a, twin, b], {"p": Dense(1, seed=0)(a), "q": Dense(1, seed=1)(twin)},
                       _from_file=True)
    loaded = tn.load(old.save(tmp_path / "old.npz"))
    xs = [np.full((2, 3), v, np.float32) for v in (1.0, 2.0, 3.0)]
    for task, out in loaded.predict(xs).items():
        np.testing.assert_array_equal(out, old.predict(xs)[task])
    with pytest.raises(ValueError, match="inputs of one name, \\['a', 'a', 'b'\\]: pass a "
                                         "list"):
        loaded.predict({"a": xs[0], "b": xs[2]})


def test_a_task_named_val_and_another_tasks_name_is_refused(tmp_path):
    # fit logged task "val_c"'s training loss and task "c"'s validation loss
    # under one key, "val_c/loss": one was silently lost from History
    def heads(**kwargs):
        i = tn.mtl.Input((4,))
        h = Dense(3, seed=0)(i)
        return tn.mtl.Model(i, {"c": Dense(1, seed=1)(h), "val_c": Dense(1, seed=2)(h)},
                            **kwargs)

    with pytest.raises(ValueError, match=r"the task\(s\) \['val_c'\] are named like the "
                                         r"validation logs of the task\(s\) \['c'\] "
                                         r"\('val_c/loss' would hold both .*e\.g\. 'c_val'"):
        heads()
    i = tn.mtl.Input((4,))
    tn.mtl.Model(i, {"val": Dense(1)(i), "c_val": Dense(1)(i), "val_": Dense(1)(i)})  # no clash
    # a file saved before the check still loads (evaluate and predict are
    # not affected), with a warning
    with pytest.warns(UserWarning, match="named like the validation logs"):
        old = heads(_from_file=True)
    old.compile(tn.optim.SGD(lr=0.0), loss="mse")
    with pytest.warns(UserWarning, match=r"\['val_c'\] are named like the validation logs "
                                         r"of the task\(s\) \['c'\].*e\.g\. 'c_val'"):
        loaded = tn.load(old.save(tmp_path / "old.npz"))
    assert loaded.output_names == ["c", "val_c"]
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = {"c": np.zeros((16, 1)), "val_c": np.full((16, 1), 100.0)}
    assert loaded.evaluate(x, y) == old.evaluate(x, y)


@given(seed=st.integers(0, 10_000), shared_twice=st.booleans(), skip=st.sampled_from([
    (), (0,), (1,)]))
def test_backward_without_input_gradients_gives_the_same_parameter_gradients(
        seed, shared_twice, skip):
    model, _ = two_input_two_output(3, seed, shared_twice)
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((4, 4)), rng.standard_normal((4, 3))]
    outs = model.forward_all(xs, training=True)
    dys = [None if i in skip else rng.standard_normal(o.shape) for i, o in enumerate(outs)]
    model.zero_grad()
    assert [dx.shape for dx in model.backward_all(dys)] == [(4, 4), (4, 3)]
    full = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    assert model.backward_all(dys, need_dx=False) is None
    for p, g in zip(model.parameters(), full):
        np.testing.assert_array_equal(p.grad, g)


def test_backward_without_input_gradients_skips_what_only_they_need():
    calls = []

    class DenseSpy(Dense):
        def backward(self, dy, need_dx=True):
            calls.append((self.name, need_dx))
            return super().backward(dy, need_dx)

    class SpyReshape(tn.layers.Reshape):
        def backward(self, dy):
            calls.append((self.name, "reshape"))
            return super().backward(dy)

    inp = tn.mtl.Input((2, 3), dtype="float64")
    trunk = DenseSpy(4, activation="relu", seed=0, name="trunk")(SpyReshape((6,), name="flat")(inp))
    model = tn.mtl.Model(inp, {"a": DenseSpy(2, seed=1, name="a")(trunk),
                               "b": DenseSpy(1, seed=2, name="b")(trunk)})
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    outs = model.forward_all(x, training=True)
    model.backward_all([np.ones_like(o) for o in outs], need_dx=False)
    assert sorted(calls) == [("a", True), ("b", True), ("trunk", False)]
    calls.clear()
    model.backward_all([np.ones_like(o) for o in outs])
    assert ("flat", "reshape") in calls and ("trunk", True) in calls


def test_the_nodes_a_backward_pass_skips_follow_a_layer_that_gains_parameters():
    # the skipped nodes are kept from step to step; a tower that gains a Dense
    # (Sequential.add) makes the heads after it no longer skippable
    inp = tn.mtl.Input((4,), dtype="float64")
    tower = tn.Sequential([tn.layers.ReLU()])
    h = tower(inp)
    model = tn.mtl.Model(inp, {"a": Dense(2, seed=0)(h), "b": Dense(1, seed=1)(h)})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))

    def grads(need_dx):
        model.zero_grad()
        outs = model.forward_all(x, training=True)
        model.backward_all([np.ones_like(o) for o in outs], need_dx=need_dx)
        return [p.grad.copy() for p in model.parameters()]

    grads(False)  # the heads read a tensor no parameter made: skippable
    assert model._nodes_before_parameters() is model._nodes_before_parameters()  # kept
    tower.add(Dense(4, seed=2))
    with_dx, without = grads(True), grads(False)
    assert len(without) == 6 and np.abs(without[0]).sum() > 0  # the tower's kernel trains
    for a, b in zip(with_dx, without):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("channels", [1, 6])   # column matrix column- / row-major
def test_a_conv_layer_shared_by_two_inputs_gets_exact_gradients(channels):
    """Conv2D keeps its column matrix in a buffer reused from call to call:
    the second input's forward overwrites the first's, and the graph's re-run
    before the first node's backward must restore it (finite differences)."""
    from tinynet.layers import Conv2D, Flatten
    i1 = tn.mtl.Input((5, 5, channels), dtype="float64")
    i2 = tn.mtl.Input((5, 5, channels), dtype="float64")
    conv = Conv2D(3, 3, activation="tanh", seed=0)
    h = tn.mtl.Add()([Flatten()(conv(i1)), Flatten()(conv(i2))])
    model = tn.mtl.Model([i1, i2], {"y": Dense(2, seed=1)(h)})
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, 5, 5, channels)) for _ in range(2)]
    errors = check_model_gradients(model, xs, rng)
    assert max(errors.values()) < TOL, errors


def training_gradient_errors(model, xs, rng):
    """As check_model_gradients in training mode, with every layer's random
    state put back before each forward (so each sees the same dropout masks)
    and BatchNorm's batch statistics (training) used throughout."""
    from tests.fd import grad_error, numerical_grad
    from tinynet.layers.base import walk_layers
    layers = list(walk_layers(model))
    rng_states = [layer.rng.bit_generator.state for layer in layers]

    def forward():
        for layer, state in zip(layers, rng_states):
            layer.rng.bit_generator.state = state
        return model.forward_all(xs, training=True)

    rs = [rng.standard_normal(o.shape) for o in forward()]

    def loss():
        return float(sum(np.sum(o * r) for o, r in zip(forward(), rs)))

    model.zero_grad()
    forward()
    dxs = model.backward_all(rs)
    errors = {f"x{i}": grad_error(dx, numerical_grad(loss, x, 1e-5))
              for i, (x, dx) in enumerate(zip(xs, dxs))}
    for p in model.parameters():
        errors[p.name] = grad_error(p.grad.copy(), numerical_grad(loss, p.value, 1e-5))
    return errors


def test_a_shared_sequential_is_re_run_with_its_layers_own_random_state_and_statistics():
    """A container called at two nodes (a Sequential tower shared by two
    inputs) is re-run before its earlier node's backward: the re-run must put
    back the random state of the layers inside it (a Dropout with its own
    seed draws from its own generator, not the Sequential's) and their
    running statistics (BatchNorm's moving mean), or the gradients belong to
    another dropout mask and a backward pass moves the statistics."""
    from tinynet.layers import BatchNorm, Dropout
    tower = tn.Sequential([Dense(4, activation="tanh", seed=1), Dropout(0.5, seed=3),
                           BatchNorm(), Dense(2, seed=2)])
    i1 = tn.mtl.Input((3,), dtype="float64")
    i2 = tn.mtl.Input((3,), dtype="float64")
    model = tn.mtl.Model([i1, i2], {"a": tower(i1), "b": tower(i2)})
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 3)), rng.standard_normal((5, 3))]
    errors = training_gradient_errors(model, xs, rng)
    assert max(errors.values()) < 1e-6, errors
    batch_norm = tower.layers[2]
    outs = model.forward_all(xs, training=True)
    after_forward = {k: v.copy() for k, v in batch_norm.get_state().items()}
    model.backward_all([np.ones_like(o) for o in outs])
    for key, value in batch_norm.get_state().items():
        np.testing.assert_array_equal(value, after_forward[key], err_msg=key)


def test_a_layer_both_inside_a_container_and_in_the_graph_is_refused():
    """A Dense inside a Sequential, called in the graph as well: its one
    forward cache served two calls the graph does not know share it (gradients
    off by ~2 relative), its parameters were counted, trained and saved twice,
    and loading split it into two unshared layers. Refused, naming both places."""
    inner = Dense(3, activation="tanh", seed=7)
    tower = tn.Sequential([inner, Dense(2, seed=8)], name="tower")
    i1, i2 = tn.mtl.Input((3,)), tn.mtl.Input((3,))
    with pytest.raises(ValueError, match=rf"'{inner.name}'.*Sequential 'tower'"):
        tn.mtl.Model([i1, i2], {"a": tower(i1), "b": inner(i2)})
    other = tn.Sequential([inner, Dense(2)], name="other")
    with pytest.raises(ValueError, match=rf"'{inner.name}'.*'tower'.*'other'"):
        tn.mtl.Model([i1, i2], {"a": tower(i1), "b": other(i2)})
    model = tn.mtl.Model([i1, i2], {"a": tower(i1), "b": tower(i2)})  # one layer, two calls
    assert model.count_params() == tower.count_params() == 3 * 3 + 3 + 3 * 2 + 2


def test_layer_names_are_unique_in_a_model_as_in_sequential(tmp_path):
    """get_layer, the weight names and the summary find a layer by name: two
    layers of one name (inside a called Sequential too) are refused, as
    Sequential and Keras refuse them; a saved file still loads."""
    i = tn.mtl.Input((3,))
    first, second = Dense(2, name="d"), Dense(2, name="d")
    with pytest.raises(ValueError, match=r"two layers named 'd'"):
        tn.mtl.Model(i, {"p": first(i), "q": second(i)})
    tower = tn.Sequential([Dense(2, name="e")])
    with pytest.raises(ValueError, match=r"two layers named 'e'.*Sequential"):
        tn.mtl.Model(i, {"p": tower(i), "q": Dense(2, name="e")(i)})
    config = tn.mtl.Model(i, {"p": first(i), "q": Dense(2, name="f")(i)}).get_config()
    config["layers"][1]["config"]["name"] = "d"  # as a file saved before the check
    assert [la.name for la in tn.mtl.Model.from_config(config).layers] == ["d", "d"]


def test_a_model_built_frozen_freezes_its_layers():
    """Model(..., trainable=False) said it was frozen and trained every weight
    anyway: it freezes its layers, as setting model.trainable = False does."""
    i = tn.mtl.Input((3,))
    model = tn.mtl.Model(i, Dense(2, seed=0)(i), trainable=False)
    assert not model.trainable and model.trainable_parameters() == []
    assert not any(la.trainable for la in model.layers)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concatenate_along_an_axis_of_image_inputs_has_exact_gradients(axis):
    """Concatenate(axis=...) as Keras: the axis counts the batch dimension,
    so -1 joins channels of (height, width, channels) maps; the other
    dimensions must agree."""
    shapes = {1: [(2, 3, 2), (1, 3, 2)], 2: [(2, 3, 2), (2, 1, 2)],
              -1: [(2, 3, 2), (2, 3, 1)]}[axis]
    ins = [tn.mtl.Input(s, dtype="float64") for s in shapes]
    joined = tn.mtl.Concatenate(axis=axis)(ins)
    k = axis - 1 if axis > 0 else 3 + axis  # the per-sample axis
    assert joined.shape == tuple(a + b if i == k else a for i, (a, b) in enumerate(zip(*shapes)))
    model = tn.mtl.Model(ins, {"y": Dense(2, seed=0)(tn.layers.Flatten()(joined))})
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((2, *s)) for s in shapes]
    errors = check_model_gradients(model, xs, rng)
    assert max(errors.values()) < TOL, errors
    loaded = tn.mtl.Model.from_config(model.get_config())
    assert loaded.layers[0].axis == axis


def test_concatenate_axis_errors_and_1d_default():
    a, b = tn.mtl.Input((3,)), tn.mtl.Input((2,))
    assert tn.mtl.Concatenate(axis=1)([a, b]).shape == tn.mtl.Concatenate()([a, b]).shape == (5,)
    with pytest.raises(ValueError, match=r"axis.*batch"):
        tn.mtl.Concatenate(axis=0)
    with pytest.raises(ValueError, match=r"axis 2 .*per-sample shapes \[\(3,\), \(2,\)\]"):
        tn.mtl.Concatenate(axis=2)([a, b])
    with pytest.raises(ValueError, match=r"one shape except along axis -1.*\(4, 3\)"):
        tn.mtl.Concatenate()([tn.mtl.Input((4, 3)), tn.mtl.Input((5, 3))])
    with pytest.raises(ValueError, match=r"same number of dimensions"):
        tn.mtl.Concatenate()([a, tn.mtl.Input((2, 3))])


@pytest.mark.parametrize("merge", [tn.mtl.Concatenate, tn.mtl.Add])
def test_merge_layers_compute_in_their_dtype_as_other_layers(merge):
    """A layer casts its input to its dtype (float32 by default); the merges
    did not, so a float32 model whose output is a merge returned (and took the
    loss of) float64 predictions for float64 data, and one float64 input
    promoted a whole branch."""
    a, b = tn.mtl.Input((3,)), tn.mtl.Input((3,))
    model = tn.mtl.Model([a, b], {"m": merge()([a, b])})
    x64 = np.ones((2, 3))
    out, = model.forward_all([x64, x64.astype("float32")])
    assert out.dtype == np.float32
    assert model.predict([x64, x64])["m"].dtype == np.float32


def test_summary_tells_the_calls_of_a_shared_layer_apart():
    """A layer called at two nodes: its rows and the tensors read from it
    said "shared" twice ("Connected to: shared, shared"); each call is
    numbered, and its parameters are counted once."""
    left, right = tn.mtl.Input((4,), name="left"), tn.mtl.Input((4,), name="right")
    shared = Dense(5, name="shared")
    joined = tn.mtl.Concatenate(name="join")([shared(left), shared(right)])
    text = tn.mtl.Model([left, right], {"y": Dense(1, name="y")(joined)}).summary(
        print_fn=None)
    rows = [line.split("  ") for line in text.splitlines()]
    rows = {r[0]: [c.strip() for c in r[1:] if c.strip()] for r in rows}
    assert rows["shared (Dense, call 1)"] == ["(batch, 5)", "25", "left"]
    assert rows["shared (Dense, call 2)"] == ["(batch, 5)", "0", "right"]
    assert rows["join (Concatenate)"] == ["(batch, 10)", "0", "shared (call 1), shared (call 2)"]
    assert "Total params: 36 " in text


def test_a_functional_model_is_a_layer_of_another(tmp_path):
    """Keras' nesting: a Model called on symbolic tensors is one node of the
    outer graph (several inputs and outputs too); called twice it shares its
    weights (exact gradients, finite differences), freezing it freezes its
    layers, and save/load keeps it one shared, frozen model."""
    a, b = tn.mtl.Input((2,), dtype="float64"), tn.mtl.Input((2,), dtype="float64")
    h = Dense(4, activation="tanh", seed=0)(tn.mtl.Concatenate()([a, b]))
    inner = tn.mtl.Model([a, b], {"p": Dense(2, seed=1)(h), "q": h}, name="inner")
    encoder_in = tn.mtl.Input((3,), dtype="float64")
    encoder = tn.mtl.Model(encoder_in, Dense(2, activation="tanh", seed=2)(encoder_in),
                           name="encoder")
    x1, x2 = tn.mtl.Input((3,), dtype="float64"), tn.mtl.Input((3,), dtype="float64")
    p, q = inner([encoder(x1), tn.mtl.Add()([encoder(x2), encoder(x1)])])
    outer = tn.mtl.Model([x1, x2], {"p": p, "q": Dense(1, seed=3)(q)})
    assert [type(la).__name__ for la in outer.layers] == ["Model", "Add", "Model", "Dense"]
    assert outer.count_params() == inner.count_params() + encoder.count_params() + 5
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 3)), rng.standard_normal((3, 3))]
    errors = check_model_gradients(outer, xs, rng)
    assert max(errors.values()) < TOL, errors
    encoder.trainable = False
    assert len(outer.trainable_parameters()) == len(outer.parameters()) - 2
    outer.save(tmp_path / "nested.npz")
    loaded = tn.load(tmp_path / "nested.npz")
    for k, (mine, theirs) in enumerate(zip(outer.forward_all(xs), loaded.forward_all(xs))):
        np.testing.assert_array_equal(mine, theirs, err_msg=str(k))
    models = [la for la in loaded.layers if isinstance(la, tn.mtl.Model)]
    assert [m.name for m in models] == ["encoder", "inner"]
    assert not models[0].trainable and not any(p.trainable for p in models[0].parameters())
    assert sum(node.layer is models[0] for node in loaded._nodes) == 3  # one model, shared


def test_a_nested_model_is_called_on_what_it_was_built_for():
    i = tn.mtl.Input((4,))
    one = tn.mtl.Model(i, Dense(2)(i))
    with pytest.raises(ValueError, match=r"expected input 'input_\d+' of shape \(batch, 4\), "
                                         r"received a tensor of shape \(batch, 3\)"):
        one(tn.mtl.Input((3,)))
    with pytest.raises(ValueError, match=r"expected 1 input tensor\(s\).*received 2"):
        one([tn.mtl.Input((4,)), tn.mtl.Input((4,))])
    assert one([tn.mtl.Input((4,))]).shape == (2,)  # a list of one, as Keras takes


def test_a_nested_model_ending_in_softmax_gets_the_probability_loss():
    """compile swaps a logit cross-entropy for its probability twin on an
    output that ends in softmax, looking through a nested model to the layer
    that produces the output."""
    i = tn.mtl.Input((4,))
    classifier = tn.mtl.Model(i, Dense(3, activation="softmax")(i))
    j = tn.mtl.Input((4,))
    outer = tn.mtl.Model(j, {"c": classifier(j)})
    outer.compile("sgd", loss="cross_entropy")
    assert type(outer.loss["c"]).__name__ == "SoftmaxOutputCrossEntropy"


def test_a_nested_models_task_heads_stay_private_to_their_outer_task():
    """A nested model's parameters that reach only one of its outputs (a task
    head inside it) belong to the outer task fed by that output, not to the
    shared set the gradient weightings (PCGrad, MGDA) combine."""
    i = tn.mtl.Input((3,))
    trunk = Dense(4, name="trunk")(i)
    inner = tn.mtl.Model(i, {"p": Dense(2, name="head_p")(trunk),
                             "q": Dense(2, name="head_q")(trunk)})
    j = tn.mtl.Input((3,))
    p, q = inner(j)
    outer = tn.mtl.Model(j, {"a": p, "b": q})
    assert [x.name for x in outer.shared_parameters()] == ["trunk/W", "trunk/b"]
    assert [x.name for x in outer.task_parameters("a")] == ["head_p/W", "head_p/b"]


def test_a_merge_called_on_one_tensor_says_it_takes_a_list():
    # Was "expected a list of per-sample input shapes, received (2,)".
    a = tn.mtl.Input((2,))
    for merge in (tn.mtl.Concatenate(), tn.mtl.Add()):
        with pytest.raises(TypeError, match=r"takes a list of tensors \(one per input\), "
                                            r"received one SymbolicTensor"):
            merge(a)


def test_models_sharing_layers_may_run_in_turn_before_a_backward():
    """Two models over one layer (an encoder model and the model it is nested
    in, or two graphs over shared layers): a forward of the other between one
    model's forward and backward left the layer's cache (and a nested model's
    values) from the other's data, and the gradients were silently those of
    the wrong input. A layer called at several nodes is re-run (exact
    gradients); one called once (here or inside a nested model) is a
    RuntimeError."""
    from tinynet.layers import Dropout
    i = tn.mtl.Input((3,), dtype="float64")
    shared = Dense(4, activation="tanh", seed=0, name="shared")
    encoder = tn.mtl.Model(i, Dropout(0.3, seed=1)(shared(i)))
    j1, j2 = tn.mtl.Input((3,), dtype="float64"), tn.mtl.Input((3,), dtype="float64")
    twice = tn.mtl.Model([j1, j2], Dense(2, seed=2)(tn.mtl.Add()([encoder(j1), encoder(j2)])))
    k = tn.mtl.Input((3,), dtype="float64")
    other = tn.mtl.Model(k, shared(k))
    once = tn.mtl.Model(k, Dense(2, seed=3)(encoder(k)))
    rng = np.random.default_rng(0)
    x, x_other = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    dy = rng.standard_normal((4, 2))

    def gradients(*between):
        twice.zero_grad()
        twice.set_rng(np.random.default_rng(5))
        twice.forward([x, 2 * x], training=True)
        for model in between:
            model.forward(x_other, training=True)
        dx = twice.backward(dy)
        return dx + [p.grad.copy() for p in twice.parameters()]

    alone = gradients()
    for got, want in zip(gradients(encoder), alone):  # encoder: called twice, re-run
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    with pytest.raises(RuntimeError, match=r"Dense 'shared' ran a forward pass since "):
        gradients(other)  # its layer is called once inside the encoder
    once.forward(x)
    other.forward(x_other)
    with pytest.raises(RuntimeError, match=r"ran a forward pass since this model's "
                                           r"forward.*call the model's forward again"):
        once.backward(dy)
    once.forward(x)
    once.backward(dy)


def test_a_layer_called_directly_between_forward_and_backward_is_noticed():
    """``model.layers[k](x2)`` (or a layer of a Sequential node run on its
    own) between the model's forward and backward left the layer's cache
    from x2, and the backward silently returned the gradients of that call.
    Now a layer called once is a RuntimeError, and one called at several
    nodes is re-run (exact gradients), as after another model ran it."""
    from tinynet.layers import Tanh
    rng = np.random.default_rng(0)
    a = tn.mtl.Input((3,), dtype="float64")
    tower = Dense(3, activation="tanh", seed=0, name="tower")   # called twice
    deep = Dense(4, seed=1, name="deep")
    stack = tn.Sequential([Dense(4, seed=2, name="in_stack"), Tanh()])
    h = stack(deep(tower(tower(a))))
    model = tn.mtl.Model(a, Dense(2, seed=3, name="head")(h))
    x = rng.standard_normal((5, 3))
    dy = rng.standard_normal((5, 2))

    def gradients(between=None):
        model.zero_grad()
        model.forward(x)
        if between is not None:
            between()
        dx = model.backward(dy)
        return [dx] + [p.grad.copy() for p in model.parameters()]

    alone = gradients()
    for got, want in zip(gradients(lambda: tower(rng.standard_normal((5, 3)))), alone):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for between, who in ((lambda: model.get_layer("deep")(rng.standard_normal((5, 3))),
                          "Model '.*': Dense 'deep'"),
                         (lambda: model.get_layer("head").forward(rng.standard_normal((5, 4))),
                          "Model '.*': Dense 'head'"),
                         (lambda: stack.layers[0](rng.standard_normal((5, 4))),
                          "Sequential '.*': Dense 'in_stack'")):
        with pytest.raises(RuntimeError, match=who + " ran a forward pass since this model's "
                                                     "forward .*call the model's forward again"):
            gradients(between)
    for got, want in zip(gradients(), alone):  # its own forward again: exact
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_a_frozen_nested_model_keeps_a_layer_set_trainable_inside_it_frozen(tmp_path):
    """Keras' rule for a Model used as a layer: frozen, it keeps a layer set
    trainable inside it from training (that layer trained). Flags survive
    save and load, each layer's own and the nested model's."""
    i = tn.mtl.Input((3,), name="i")
    encoder = tn.mtl.Model(i, Dense(4, seed=1, name="enc2")(Dense(4, seed=0, name="enc1")(i)),
                           name="encoder")
    j = tn.mtl.Input((3,), name="j")
    model = tn.mtl.Model(j, {"t": Dense(1, seed=2, name="head")(encoder(j))})
    encoder.trainable = False
    encoder.get_layer("enc2").trainable = True
    assert [p.name for p in model.trainable_parameters()] == ["head/W", "head/b"]
    model.compile("sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((6, 3))
    for m in (model, tn.load(model.save(tmp_path / "m.npz"))):
        inner = m.get_layer("encoder")
        assert [inner.trainable, inner.get_layer("enc1").trainable,
                inner.get_layer("enc2").trainable] == [False, False, True]
        before = inner.get_weights()
        m.fit(x, {"t": np.ones((6, 1))}, epochs=2, batch_size=3, verbose=0)
        for a, b in zip(before, inner.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_a_model_takes_its_inputs_by_name_everywhere():
    """Keras accepts a dict {input name: array} in fit/evaluate/predict and
    a dict of tensors when a Model is called as a layer; the latter failed
    deep inside with an error about arrays. Missing and unknown names are
    named."""
    a, b = tn.mtl.Input((3,), name="a"), tn.mtl.Input((2,), name="b")
    pair = tn.mtl.Model([a, b], Dense(2, seed=0, name="mix")(tn.mtl.Concatenate()([a, b])),
                        name="pair")
    p, q = tn.mtl.Input((3,), name="p"), tn.mtl.Input((2,), name="q")
    model = tn.mtl.Model([p, q], {"t": Dense(1, seed=1)(pair({"b": q, "a": p}))})
    assert model.get_config()["nodes"][0]["inputs"] == [{"input": 0}, {"input": 1}]
    rng = np.random.default_rng(0)
    xp, xq, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2)), np.ones((6, 1))
    by_name, in_order = {"q": xq, "p": xp}, [xp, xq]
    np.testing.assert_array_equal(pair.forward({"a": xp, "b": xq}), pair.forward([xp, xq]))
    np.testing.assert_array_equal(model.predict(by_name)["t"], model.predict(in_order)["t"])
    model.compile("sgd", loss="mse")
    assert model.evaluate(by_name, {"t": y}) == model.evaluate(in_order, {"t": y})
    history = model.fit(by_name, {"t": y}, validation_data=(by_name, {"t": y}), epochs=1,
                        verbose=0)
    assert history.history["val_loss"][0] == model.evaluate(in_order, {"t": y})["loss"]
    for bad, message in (({"a": p}, "missing input 'b'"),
                         ({"a": p, "b": q, "c": q}, "unknown input 'c'")):
        with pytest.raises(ValueError, match=f"Model 'pair' expected inputs \\['a', 'b'\\], "
                                             f"received {message}"):
            pair(bad)
    with pytest.raises(TypeError, match="received a dict \\(only a tn.mtl.Model takes"):
        Dense(2)({"a": p})


@pytest.mark.filterwarnings("ignore")  # the overflows of a diverging run
def test_a_diverging_run_through_a_batchnorm_called_twice_reaches_its_nan_loss():
    # the replay put the BatchNorm's saved statistics back through the checked
    # set_state, which refuses NaN: fit raised inside the backward pass instead of
    # reaching the NaN loss TerminateOnNaN stops on; astype refused them too
    inp = tn.mtl.Input((4,))
    bn = BatchNorm()
    h = bn(Dense(4, seed=1)(inp))
    deeper = bn(Dense(4, seed=4)(h))
    model = tn.mtl.Model(inp, {"cls": Dense(3, seed=2)(deeper), "reg": Dense(2, seed=3)(h)})
    model.compile(tn.optim.SGD(lr=1e8), loss={"cls": "cross_entropy", "reg": "mse"})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = {"cls": rng.integers(0, 3, 64), "reg": rng.standard_normal((64, 2)).astype(np.float32)}
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, seed=0,
                        callbacks=[tn.callbacks.TerminateOnNaN()])
    assert not np.isfinite(history.history["loss"][-1])
    assert not np.isfinite(bn.moving_mean).all()
    model.astype("float64")
    assert bn.moving_mean.dtype == np.float64


def _shared_twice_model():
    """A trunk whose Dense runs at two nodes, a Dropout between, two heads
    (float64: the gradients compare exactly)."""
    from tinynet.layers import Dropout
    inp = tn.mtl.Input((4,), dtype="float64")
    shared, drop = Dense(4, activation="tanh", seed=1), Dropout(0.3, seed=7)
    z = shared(drop(shared(inp)))
    return tn.mtl.Model(inp, {"a": Dense(3, seed=2)(z), "b": Dense(2, seed=3)(z)}), z


def _copied_after_forward(seed):
    """``(model, z, twin, dys)``: the model of :func:`_shared_twice_model` run
    forward, its deep copy made then, and gradients for its outputs."""
    import copy
    rng = np.random.default_rng(seed)
    model, z = _shared_twice_model()
    outs = model.forward_all(rng.normal(size=(6, 4)), training=True)
    return model, z, copy.deepcopy(model), [rng.normal(size=o.shape) for o in outs]


@pytest.mark.parametrize("collect", [False, True])
def test_a_deep_copy_made_between_forward_and_backward_runs_that_forwards_backward(collect):
    # the per-forward caches were keyed by the ids of the original's tensors:
    # the copy's backward found none of its own (KeyError)
    import gc
    model, z, twin, dys = _copied_after_forward(0)
    model.zero_grad()
    expected_dx = model.backward_all(dys)[0]
    expected = [p.grad.copy() for p in model.parameters()]
    if collect:  # the original's tensors gone, their ids free for reuse
        del model, z
        gc.collect()
    twin.zero_grad()
    np.testing.assert_array_equal(twin.backward_all(dys)[0], expected_dx)
    for p, g in zip(twin.parameters(), expected):
        np.testing.assert_array_equal(p.grad, g)


def test_a_deep_copy_backpropagates_in_two_halves_through_its_own_tensor():
    model, z, twin, dys = _copied_after_forward(1)
    twin_z = twin.shared_representation()
    assert twin_z is not z and twin_z.name == z.name
    results = []
    for m, t in ((model, z), (twin, twin_z)):
        m.zero_grad()
        dz = m.backward_to(dys, t)
        m.backward_from(t, dz)
        results.append((dz, [p.grad.copy() for p in m.parameters()]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for g0, g1 in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(g0, g1)
    # the original's tensor is no tensor of the copy's
    with pytest.raises(ValueError, match="backward_to expected one of the model's own tensors"):
        twin.backward_to(dys, z)
    with pytest.raises(ValueError, match="backward_from expected one of the model's own"):
        twin.backward_from(z, results[0][0])


# ------------------ a setting of a shared layer changed between the forward and the backward

def _leaky_tower(alpha):
    return tn.Sequential([Dense(4, seed=4), tn.layers.LeakyReLU(alpha)])


def _set_tower_alpha(tower, alpha):
    tower.layers[1].alpha = alpha


def _set_activation_alpha(dense, alpha):
    dense.activation.alpha = alpha


# (shared layer with the setting `first`, how to change it, first, then)
SHARED_CHANGES = [
    (tn.layers.LeakyReLU, lambda act, a: setattr(act, "alpha", a), 0.1, 0.9),
    (lambda a: Dense(4, activation=tn.layers.LeakyReLU(a), seed=4), _set_activation_alpha,
     0.1, 0.9),
    (lambda act: Dense(4, activation=act, seed=4), lambda d, act: setattr(d, "activation", act),
     "softmax", "tanh"),
    (lambda act: Dense(4, activation=act, seed=4), lambda d, act: setattr(d, "activation", act),
     "leaky_relu", "elu"),
    (_leaky_tower, _set_tower_alpha, 0.1, 0.9),
]


def _calling_twice(shared):
    """``shared`` called on two branches (its backward re-runs one of them)."""
    i = tn.mtl.Input((3,), dtype="float64")
    a = shared(Dense(4, seed=1)(i))
    b = shared(Dense(4, seed=2)(i))
    return tn.mtl.Model(i, Dense(2, seed=3)(tn.mtl.Add()([a, b])))


def _gradients(model, x, dy, change=None):
    model.zero_grad()
    model.forward_all(x, training=True)
    if change is not None:
        change()
    dx = model.backward_all([dy])[0]
    return [dx, *(p.grad.copy() for p in model.parameters())]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("make, change, first, then", SHARED_CHANGES,
                         ids=["LeakyReLU.alpha", "Dense.activation.alpha",
                              "Dense.activation", "Dense.fused_activation", "Sequential"])
def test_a_shared_layer_changed_before_the_backward_reruns_with_its_forwards_settings(
        backend, make, change, first, then):
    # the re-run of the shared layer's first call took the new setting: the
    # gradient of a function the forward never computed (1.67 off for alpha)
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    with tn.kernels.use_backend(backend):
        shared = make(first)
        model = _calling_twice(shared)
        got = _gradients(model, x, dy, lambda: change(shared, then))
        expected = _gradients(_calling_twice(make(first)), x, dy)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
        # the new setting holds on, from the next forward
        later = _gradients(_calling_twice(make(then)), x, dy)
        for g, e in zip(_gradients(model, x, dy), later, strict=True):
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_deep_copy_reruns_its_shared_layer_with_its_forwards_settings(backend):
    # what the replay keeps of a setting belongs to the copy's layers
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    with tn.kernels.use_backend(backend):
        model = _calling_twice(tn.layers.LeakyReLU(0.1))
        model.forward_all(x, training=True)
        twin = copy.deepcopy(model)
        twin.zero_grad()
        twin.layers[1].alpha = 0.9  # the shared LeakyReLU
        got = [twin.backward_all([dy])[0], *(p.grad.copy() for p in twin.parameters())]
        expected = _gradients(_calling_twice(tn.layers.LeakyReLU(0.1)), x, dy)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
        assert twin.layers[1].alpha == 0.9 and model.layers[1].alpha == 0.1


def test_a_flatten_called_at_two_nodes_trains():
    # Flatten overrides Reshape's target_shape setting with a plain class attribute,
    # and a layer called at several nodes (which records its settings per node)
    # crashed the first forward: "'NoneType' object has no attribute 'fixed'"
    inp = tn.mtl.Input((12,), dtype="float64")
    flat = tn.layers.Flatten()
    mixed = Dense(12, activation="tanh", seed=4, dtype="float64")(inp)
    heads = {"a": Dense(2, seed=1)(flat(tn.layers.Reshape((2, 3, 2))(inp))),
             "b": Dense(3, seed=2)(flat(tn.layers.Reshape((2, 3, 2))(mixed)))}
    model = tn.mtl.Model(inp, heads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 12))
    errors = check_model_gradients(model, [x], rng)
    assert max(errors.values()) < TOL, errors
    model.compile("sgd", loss="cross_entropy")
    y = {"a": np.arange(5) % 2, "b": np.arange(5) % 3}
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=3, batch_size=5, verbose=0)
    assert model.evaluate(x, y)["loss"] < before
