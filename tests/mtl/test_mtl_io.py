"""Saving and loading multi-task models: every architecture round-trips (same
predictions, same config, the same continued training to the last bit, the
weighting's learned state included), and broken files raise ModelFileError."""

import json

import numpy as np
import pytest

import tinynet as tn
from tinynet import io as model_io
from tinynet.io import ModelFileError
from tinynet.mtl import weighting as wt
from tinynet.layers import BatchNorm, Dense, Dropout
from tinynet.zipindex import read_index
from tests.io_helpers import (assert_truncations_refused, refused_within, rewrite_header,
                              write_zip, zip_parts)


def _dense(units, act="tanh", seed=0):
    return Dense(units, activation=act, seed=seed)


def _two_inputs():
    """Two inputs, one layer shared by both (two nodes), a Concatenate and an Add."""
    left, right = tn.mtl.Input((4,), name="left_x"), tn.mtl.Input((4,), name="right_x")
    shared = _dense(5, seed=1)
    h_left, h_right = shared(left), shared(right)
    joined = tn.mtl.Concatenate()([h_left, h_right])
    summed = tn.mtl.Add()([h_left, h_right])
    return tn.mtl.Model([left, right], {"cls": Dense(3, seed=2)(joined),
                                        "reg": Dense(2, seed=3)(summed)})


ARCHITECTURES = {
    "hard": lambda: tn.mtl.HardSharing(
        (4,), trunk=[_dense(6, seed=1), BatchNorm(), Dropout(0.2)],
        heads={"cls": [Dense(3, seed=2)], "reg": [_dense(4, seed=3), Dense(2, seed=4)]}),
    "soft": lambda: tn.mtl.SoftSharing(
        (4,), towers={"cls": [_dense(5, seed=1), Dense(3, seed=2)],
                      "reg": [_dense(5, seed=3), Dense(2, seed=4)]}, penalty=0.1),
    "cross_stitch": lambda: tn.mtl.CrossStitchNet(
        (4,), towers={"cls": [_dense(5, seed=1), _dense(5, seed=2), Dense(3, seed=3)],
                      "reg": [_dense(5, seed=4), _dense(5, seed=5), Dense(2, seed=6)]},
        stitch_after=[0, 1], per_unit=True),
    "mmoe": lambda: tn.mtl.MMoENet(
        (4,), n_experts=3, expert_units=4, bottom=[_dense(5, seed=1)],
        towers={"cls": [Dense(3, seed=2)], "reg": [Dense(2, seed=3)]}, seed=4),
    "two_inputs": _two_inputs,
    "softmax": lambda: tn.mtl.HardSharing(
        (4,), trunk=[_dense(6, seed=1)],
        heads={"cls": [Dense(3, activation="softmax", seed=2)], "reg": [Dense(2, seed=3)]}),
}


def _data(name, n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    if name == "two_inputs":
        x = [x, rng.standard_normal((n, 4)).astype(np.float32)]
    return x, {"cls": rng.integers(0, 3, n), "reg": rng.standard_normal((n, 2))}


def _compiled(name, weighting="equal"):
    model = ARCHITECTURES[name]()
    model.compile(tn.optim.Adam(lr=0.01), loss={"cls": "cross_entropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"]}, weighting=weighting)
    return model


def _trained(name, weighting="equal", epochs=2):
    model = _compiled(name, weighting)
    x, y = _data(name)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, seed=5)
    return model


def _assert_same_weights(a, b):
    wa, wb = model_io.get_weights(a), model_io.get_weights(b)
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        assert u.dtype == v.dtype and np.array_equal(u, v)


def _assert_same_predictions(a, b, x):
    pa, pb = a.predict(x), b.predict(x)
    assert list(pa) == list(pb) == a.output_names
    for task in pa:
        assert pa[task].dtype == pb[task].dtype and np.array_equal(pa[task], pb[task])


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("weighting", ["equal", "uncertainty", "gradnorm", "dwa", "pcgrad"])
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
# a gradient weighting on the models that share nothing warns that it trains as equal
@pytest.mark.filterwarnings("ignore:compile. weighting:UserWarning")
def test_round_trip_predicts_and_continues_training_identically(tmp_path, name, weighting):
    model = _trained(name, weighting)
    path = model.save(tmp_path / "m.npz")
    loaded = tn.load(path)
    assert type(loaded) is type(model) and loaded.compiled
    assert loaded.get_config() == model.get_config()
    assert model_io.weight_names(loaded) == model_io.weight_names(model)
    assert loaded.get_compile_config() == model.get_compile_config()
    _assert_same_weights(model, loaded)
    x, y = _data(name)
    _assert_same_predictions(model, loaded, x)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    # one more epoch on each: the optimizer and weighting state came along
    runs = [m.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0, seed=5)
            for m in (model, loaded)]
    assert runs[0].history == runs[1].history
    _assert_same_weights(model, loaded)
    state, loaded_state = model.get_training_state(), loaded.get_training_state()
    assert list(state) == list(loaded_state)
    for key in state:
        assert np.array_equal(state[key], loaded_state[key], equal_nan=True)


def _layers_used_twice():
    """A Dense and a Dropout (a generator of its own) each called at two nodes."""
    inp = tn.mtl.Input((4,))
    shared, drop = _dense(4, seed=1), Dropout(0.3, seed=7)
    h = drop(shared(inp))
    deeper = drop(shared(h))
    return tn.mtl.Model(inp, {"cls": Dense(3, seed=2)(deeper), "reg": Dense(2, seed=3)(h)})


@pytest.mark.parametrize("how", ["deepcopy", "file"])
@pytest.mark.parametrize("build", [_layers_used_twice, _two_inputs])
def test_a_copy_of_a_model_calling_a_layer_twice_trains_and_predicts_as_it(tmp_path, how,
                                                                             build):
    # which layers a model calls at several nodes (whose forward inputs it
    # keeps, to re-run them before their backward) was a set of their ids: a
    # deep copy kept the original's ids, and its fit failed with a stale cache
    import copy
    model = build()
    model.compile(tn.optim.Adam(lr=0.01), loss={"cls": "cross_entropy", "reg": "mse"},
                  weighting="uncertainty")
    x, y = _data("two_inputs" if build is _two_inputs else "used_twice")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=5)
    twin = copy.deepcopy(model) if how == "deepcopy" else tn.load(model.save(tmp_path / "m"))
    _assert_same_predictions(model, twin, x)
    runs = [m.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, verbose=0, seed=5)
            for m in (model, twin)]
    assert runs[0].history == runs[1].history
    _assert_same_weights(model, twin)
    _assert_same_predictions(model, twin, x)
    # the two train on their own: the copy's weights are not the original's
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=6)
    assert not np.array_equal(model_io.get_weights(model)[0], model_io.get_weights(twin)[0])


def test_the_weightings_learned_state_is_restored(tmp_path):
    for weighting, keys in [("uncertainty", ["log_vars"]), ("gradnorm", ["weights"]),
                            ("dwa", ["history"])]:
        model = _trained("hard", weighting, epochs=3)
        loaded = tn.load(model.save(tmp_path / f"{weighting}.npz"))
        for key in keys:
            saved = model.weighting.get_state()[key]
            assert np.array_equal(loaded.weighting.get_state()[key], saved)
            # trained away from the initial value, so restoring it is what matters
            fresh = _compiled("hard", weighting).weighting.get_state()[key]
            assert fresh.shape != saved.shape or not np.array_equal(fresh, saved)
    loaded_dwa = tn.load(tmp_path / "dwa.npz")
    assert len(loaded_dwa.weighting.history) == 3
    assert loaded_dwa.weighting.last_weights.sum() == pytest.approx(2.0)


@pytest.mark.parametrize("weighting", [
    "equal", lambda: {"cls": 0.5, "reg": 2.0}, "uncertainty", "dwa", "gradnorm",
    lambda: wt.PCGrad(seed=3), "mgda", lambda: wt.MGDA("loss+")])
@pytest.mark.parametrize("seed", [9, None])
def test_resume_from_a_file_equals_an_uninterrupted_run(tmp_path, weighting, seed):
    # every weighting, with fit's seed or (PCGrad) its own generator's saved state
    make = weighting if callable(weighting) else lambda: weighting
    name = "hard" if seed is not None else "mmoe"  # (no unseeded dropout without a seed)
    x, y = _data(name)
    y["reg"][:3] = np.nan  # some batches lack a task
    full = _compiled(name, make())
    full_history = full.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=seed,
                            shuffle=seed is not None)
    part = _compiled(name, make())
    part.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=seed, shuffle=seed is not None)
    resumed = tn.load(part.save(tmp_path / "ckpt.npz"))
    rest = resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0, seed=seed,
                       shuffle=seed is not None)
    _assert_same_weights(full, resumed)
    assert rest.history["loss"] == full_history.history["loss"][2:]
    state, resumed_state = full.get_training_state(), resumed.get_training_state()
    assert all(np.array_equal(state[k], resumed_state[k], equal_nan=True) for k in state)


def _functional_with_own_dropout():
    inp = tn.mtl.Input((4,), name="x")
    h = Dropout(0.3, seed=7)(_dense(6, seed=1)(inp))
    model = tn.mtl.Model(inp, {"cls": Dense(3, seed=2)(h), "reg": Dense(2, seed=3)(h)})
    model.compile(tn.optim.Adam(lr=0.01), loss={"cls": "cross_entropy", "reg": "mse"})
    return model


def test_a_layers_own_generator_makes_an_unseeded_resume_exact(tmp_path):
    # the functional Model's Dropout(seed=7), trained without a fit seed: its
    # generator was not in the file, so the resumed run drew other masks
    x, y = _data("hard")
    fit = dict(batch_size=8, verbose=0, shuffle=False)
    full = _functional_with_own_dropout()
    full_history = full.fit(x, y, epochs=4, **fit)
    part = _functional_with_own_dropout()
    part.fit(x, y, epochs=2, **fit)
    resumed = tn.load(part.save(tmp_path / "ckpt.npz"))
    rest = resumed.fit(x, y, epochs=4, initial_epoch=2, **fit)
    _assert_same_weights(full, resumed)
    assert rest.history["loss"] == full_history.history["loss"][2:]


def test_graph_config_names_each_layer_once_and_each_tensor_it_reads():
    model = _two_inputs()
    config = model.get_config()
    assert [i["name"] for i in config["inputs"]] == ["left_x", "right_x"]
    classes = [spec["class"] for spec in config["layers"]]
    assert classes == ["Dense", "Concatenate", "Dense", "Add", "Dense"]
    shared_nodes = [node for node in config["nodes"] if node["layer"] == 0]
    assert [node["inputs"] for node in shared_nodes] == [[{"input": 0}], [{"input": 1}]]
    concat = config["nodes"][classes.index("Concatenate") + 1]
    assert concat["multi_input"] and concat["inputs"] == [{"node": 0, "output": 0},
                                                          {"node": 1, "output": 0}]
    assert [o["task"] for o in config["outputs"]] == ["cls", "reg"]
    json.dumps(config)  # JSON-safe
    rebuilt = tn.mtl.Model.from_config(config)
    assert rebuilt.get_config() == config
    assert len(rebuilt.layers) == 5 and rebuilt.layers[0].name == model.layers[0].name


def test_subclass_extras_are_restored(tmp_path):
    soft = _trained("soft")
    loaded = tn.load(soft.save(tmp_path / "soft.npz"))
    assert loaded.penalty == soft.penalty == 0.1
    assert [[p.name for p in g] for g in loaded.coupled] == \
        [[p.name for p in g] for g in soft.coupled]
    own = {id(p) for p in loaded.parameters()}  # the loaded model's, not copies
    assert all(id(p) in own for group in loaded.coupled for p in group)
    stitch = tn.load(_trained("cross_stitch").save(tmp_path / "cs.npz"))
    assert [type(u) for u in stitch.stitches] == [tn.mtl.CrossStitch] * 2
    assert all(u.per_unit for u in stitch.stitches)
    assert all(any(u is layer for layer in stitch.layers) for u in stitch.stitches)
    mmoe = tn.load(_trained("mmoe").save(tmp_path / "mmoe.npz"))
    assert isinstance(mmoe.mmoe, tn.mtl.MMoE) and any(mmoe.mmoe is la for la in mmoe.layers)


def test_a_softmax_output_saves_the_users_loss_and_reloads_its_twin(tmp_path):
    model = _trained("softmax")
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["__tinynet__"].tobytes().decode())
    assert header["compile"]["loss"]["cls"]["class"] == "CrossEntropy"
    loaded = tn.load(path)
    assert type(loaded.loss["cls"]) is type(model.loss["cls"])
    assert type(loaded.loss["cls"]).__name__ != "CrossEntropy"
    probs = loaded.predict(_data("softmax")[0])["cls"]
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_file_is_version_2_with_only_numeric_arrays(tmp_path):
    path = _trained("hard", "uncertainty").save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)
        header = json.loads(archive["__tinynet__"].tobytes().decode())
        assert "training_0000" in archive.files
    assert header["version"] == 2 and header["model"]["class"] == "HardSharing"
    assert "weighting/log_vars" in header["training_state"]
    assert header["compile"]["weighting"] == {"class": "Uncertainty", "config": {"init": 0.0}}
    # the optimizer's second group (the log-variances) indexes past the model's parameters
    n_params = len(tn.load(path).parameters())
    assert header["optimizer_groups"][1] == [n_params]


def test_single_input_and_output_model_stays_single(tmp_path):
    inp = tn.mtl.Input(3)
    model = tn.mtl.Model(inp, Dense(2, seed=0)(_dense(4, seed=1)(inp)))
    loaded = tn.load(model.save(tmp_path / "m.npz"))
    x = np.ones((5, 3), np.float32)
    out = loaded.forward(x)
    assert isinstance(out, np.ndarray) and np.array_equal(out, model.forward(x))
    assert loaded.output_names == model.output_names


def test_uncompiled_and_compile_false_load_uncompiled(tmp_path):
    x, _ = _data("mmoe")
    plain = ARCHITECTURES["mmoe"]()
    loaded = tn.load(plain.save(tmp_path / "plain.npz"))
    assert not loaded.compiled
    _assert_same_predictions(plain, loaded, x)
    skipped = tn.load(_trained("mmoe", "gradnorm").save(tmp_path / "c.npz"), compile=False)
    assert not skipped.compiled and skipped.get_training_state() == {}


def test_static_weights_and_weighting_lr_survive_without_the_optimizer(tmp_path):
    model = ARCHITECTURES["hard"]()
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"},
                  loss_weights={"cls": np.float32(2.0), "reg": 0.5})
    loaded = tn.load(model.save(tmp_path / "s.npz", include_optimizer=False))
    assert list(loaded.weighting.last_weights) == [2.0, 0.5]
    model = _compiled("hard", "uncertainty")
    model.compile("sgd", loss="mse", weighting="uncertainty", weighting_lr=0.25)
    loaded = tn.load(model.save(tmp_path / "u.npz", include_optimizer=False))
    assert loaded.optimizer.param_groups[1]["lr"] == 0.25
    # a rate is checked as a real number ("0.25" and True were taken by float())
    for bad, error in (("0.25", TypeError), (True, TypeError), (0.0, ValueError),
                       (float("nan"), ValueError)):
        with pytest.raises(error, match="compile expected weighting_lr"):
            model.compile("sgd", loss="mse", weighting="uncertainty", weighting_lr=bad)
    model.compile("sgd", loss="mse", weighting="uncertainty", weighting_lr=np.float32(0.5))
    assert model.optimizer.param_groups[1]["lr"] == 0.5


# ------------------------------------------------------------------ refusals
def test_save_refuses_nan_weights_and_nan_weighting_parameters(tmp_path):
    path = tmp_path / "m.npz"
    model = _trained("hard", "uncertainty")
    model.save(path)
    before = path.read_bytes()
    model.weighting.log_vars.value = np.array([np.nan, 0.0])
    with pytest.raises(ValueError, match="finite weight 'uncertainty/log_vars'.*nothing saved"):
        model.save(path)
    model = _trained("hard")
    model.layers[0].parameters()[0].value[0, 0] = np.inf
    with pytest.raises(ValueError, match="nothing saved"):
        model.save(path)
    assert path.read_bytes() == before


def _good_file(tmp_path, name="two_inputs", weighting="gradnorm"):
    return _trained(name, weighting).save(tmp_path / "good.npz")


def _node(header, i):
    return header["model"]["config"]["nodes"][i]


@pytest.mark.parametrize("change, match", [
    (lambda h, a: _node(h, 2)["inputs"].__setitem__(0, {"node": 9, "output": 0}),
     r"node 2 reads the tensor \{'node': 9, 'output': 0\}, which does not exist"),
    (lambda h, a: _node(h, 0)["inputs"].__setitem__(0, {"node": 3, "output": 0}),
     "node 0 reads the tensor .* which does not exist"),
    (lambda h, a: _node(h, 0)["inputs"].__setitem__(0, {"input": 2}), "does not exist"),
    (lambda h, a: _node(h, 0)["inputs"].__setitem__(0, {"node": 0, "output": -1}),
     "does not exist"),
    (lambda h, a: _node(h, 0)["inputs"].__setitem__(0, "left_x"), "does not exist"),
    (lambda h, a: _node(h, 2)["inputs"].__setitem__(0, {"node": 0, "output": 1}),
     "does not exist"),
    (lambda h, a: h["model"]["config"]["outputs"][0].update(tensor={"node": 99, "output": 0}),
     "output 0 reads the tensor"),
    (lambda h, a: _node(h, 0).update(layer=17), "node 0 expected a layer index"),
    (lambda h, a: _node(h, 0).update(layer=True), "layer"),
    (lambda h, a: _node(h, 0).pop("inputs"), "node 0 expected the key 'inputs'"),
    (lambda h, a: h["model"]["config"].pop("nodes"), "expected the key 'nodes'"),
    (lambda h, a: h["model"]["config"].update(nodes={"0": 1}), "'nodes' as list"),
    (lambda h, a: h["model"]["config"]["inputs"][0].update(shape=[0]), "positive integers"),
    (lambda h, a: h["model"]["config"]["layers"].pop(), "layer index|lead to an output"),
    (lambda h, a: h["model"]["config"].update(colour="red"), "unknown keys"),
    (lambda h, a: h["model"].update(config=[]), "cannot rebuild"),
])
def test_a_graph_that_does_not_hold_together_is_a_model_file_error(tmp_path, change, match):
    bad = rewrite_header(_good_file(tmp_path), tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match="cannot rebuild the model it describes") as info:
        tn.load(bad)
    assert info.match(match)


@pytest.mark.parametrize("change, match", [
    (lambda h, a: a.pop("training_0000"), "training state.*lacks the arrays "
                                           "\\['training_0000'\\]"),
    (lambda h, a: a.update(training_0001=np.ones(5)), "training state.*'weights' as a real "
                                                       "array of shape \\(2,\\)"),
    (lambda h, a: a.update(training_0001=np.array([np.nan, 1.0])), "finite 'weights'"),
    # GradNorm's L_t(0) (NaN until seen) took +-inf, 0 and negative losses
    (lambda h, a: a.update(training_0002=np.array([np.inf, 1.0])),
     r"training state.*'initial_losses' expected values in \[1e-12, inf\) or NaN"),
    (lambda h, a: a.update(training_0002=np.array([-5.0, 1.0])),
     r"holds values training cannot resume from.*'initial_losses' expected values in.*"
     r"\(load\(path, compile=False\) skips them\)"),
    (lambda h, a: h.update(training_state=h["training_state"][:1]), "training state"),
    (lambda h, a: h["compile"]["weighting"].update({"class": "GradNorn"}),
     "compile settings.*unknown weighting class 'GradNorn'.*did you mean 'GradNorm'"),
    (lambda h, a: h["compile"]["loss"].update(cls="oops"), "compile settings"),
    (lambda h, a: h["compile"].pop("weighting"), "compile settings"),
    (lambda h, a: h["optimizer_groups"][1].__setitem__(0, 999), "optimizer state"),
    (lambda h, a: h["optimizer_groups"][1].__setitem__(0, -1), "optimizer state"),
])
def test_a_training_set_up_that_does_not_fit_is_a_model_file_error(tmp_path, change, match):
    bad = rewrite_header(_good_file(tmp_path), tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=match):
        tn.load(bad)


@pytest.mark.parametrize("name, change, match", [
    ("soft", lambda c: c.update(coupled=[[0, 999]]), "coupled"),
    ("soft", lambda c: c.update(penalty=-1), "non-negative penalty"),
    ("soft", lambda c: c.pop("penalty"), "non-negative penalty"),
    ("cross_stitch", lambda c: c.update(stitches=[0]), "'stitches' as indices of CrossStitch"),
    ("mmoe", lambda c: c.update(mmoe=99), "'mmoe' as indices of MMoE"),
])
def test_broken_subclass_extras_are_a_model_file_error(tmp_path, name, change, match):
    bad = rewrite_header(_good_file(tmp_path, name, "equal"), tmp_path / "bad.npz",
                   lambda h, a: change(h["model"]["config"]))
    with pytest.raises(ModelFileError, match=match):
        tn.load(bad)


def test_truncated_and_corrupt_files(tmp_path):
    assert_truncations_refused(_good_file(tmp_path), tmp_path)
    newer = model_io.VERSION + 1
    bad = rewrite_header(tmp_path / "good.npz", tmp_path / "newer.npz",
                         lambda h, a: h.update(version=newer))
    with pytest.raises(ModelFileError, match=f"version {newer}.*upgrade tinynet"):
        tn.load(bad)


def _mmoe_config(header):
    layers = header["model"]["config"]["layers"]
    return next(layer["config"] for layer in layers if layer["class"] == "MMoE")


@pytest.mark.parametrize("change, what", [
    (lambda c: c.update(n_experts=2000, units=2000), r"W_experts of shape \(5, 4000000\)"),
    (lambda c: c.update(input_shape=[6_000_000]), r"W_experts of shape \(6000000, 12\)"),
])
def test_a_graph_asking_for_more_weights_than_the_file_stores_is_refused_unbuilt(
        tmp_path, change, what):
    # before, load built the experts (a few hundred MB) and only then compared shapes
    bad = rewrite_header(_good_file(tmp_path, "mmoe", "equal"), tmp_path / "bad.npz",
                         lambda h, a: change(_mmoe_config(h)))
    refused_within(bad, rf"cannot rebuild the model it describes: .*{what} .* more than the "
                        rf"[\d,]+ values left of the [\d,]+ the file allows")


def test_a_cross_stitch_over_huge_inputs_is_refused_unbuilt(tmp_path):
    left, right = tn.mtl.Input((4,), name="left_x"), tn.mtl.Input((4,), name="right_x")
    a, b = tn.mtl.CrossStitch(per_unit=True)([left, right])
    good = tn.mtl.Model([left, right], {"a": a, "b": b}).save(tmp_path / "good.npz")

    def huge(header, arrays):
        config = header["model"]["config"]
        for inp in config["inputs"]:
            inp.update(shape=[10_000_000])
        config["layers"][0]["config"].update(input_shape=[[10_000_000]] * 2)
    bad = rewrite_header(good, tmp_path / "bad.npz", huge)
    refused_within(bad, r"would create the parameters cross_stitch_\d+/alpha\* of shape "
                        r"\(2, 2, 10000000\) \(40,000,000 values\), more than the [\d,]+ "
                        r"values left of the [\d,]+ the file allows \(it stores 16 weight values\)")


def test_get_and_set_weights_cover_batchnorm_state_and_check_shapes():
    trained, x = _trained("hard"), _data("hard")[0]
    fresh = ARCHITECTURES["hard"]()
    weights = trained.get_weights()
    names = trained.weight_names()
    assert len(weights) == len(names) == len(trained.parameters()) + 2
    assert names[-2].endswith("/moving_mean") and names[-1].endswith("/moving_variance")
    fresh.set_weights(weights)
    _assert_same_predictions(trained, fresh, x)  # inference reads the moving statistics
    bad = [w.copy() for w in weights]
    bad[0] = bad[0][:, :1]
    with pytest.raises(ValueError, match=r"weight 0 .* shape"):
        fresh.set_weights(bad)


def test_names_of_a_loaded_model_are_not_given_again(tmp_path):
    def rename(header, arrays):
        header["model"]["config"]["inputs"][0]["name"] = "input_7777"
    path = rewrite_header(_good_file(tmp_path), tmp_path / "renamed.npz", rename)
    loaded = tn.load(path)
    assert loaded.inputs[0].name == "input_7777"
    assert tn.mtl.Input((2,)).name == "input_7778"  # automatic names stay unique
    with pytest.raises(TypeError, match="Input expected name as a non-empty string"):
        tn.mtl.Input((2,), name="")


@pytest.mark.parametrize("name", ["mmoe", "cross_stitch"])
def test_a_multi_task_file_is_far_below_the_index_caps_and_loads_as_zip64(tmp_path, name):
    model = _trained(name, "uncertainty")  # with the optimizer's and the weighting's state
    good = model.save(tmp_path / "good.npz")
    with open(good, "rb") as f:
        index = read_index(f)
    assert 100 * index.entries < model_io.MAX_MEMBERS
    assert 100 * index.size < model_io.MAX_INDEX_BYTES
    path = write_zip(tmp_path / "zip64.npz", *zip_parts(good), zip64=True)
    loaded = tn.load(path)
    _assert_same_weights(loaded, model)
    _assert_same_predictions(loaded, model, _data(name)[0])


def test_a_file_saved_when_mmoe_was_named_m_mo_e_still_loads(tmp_path, monkeypatch):
    # MMoE's automatic name was m_mo_e_<k> (the snake-case rule) until it was
    # given "mmoe"; names are stored in the file, so an old file keeps its own.
    with monkeypatch.context() as patch:
        patch.setattr(tn.mtl.MMoE, "_auto_name", "m_mo_e")
        model = _trained("mmoe")
    old_name = next(layer.name for layer in model.layers if isinstance(layer, tn.mtl.MMoE))
    assert old_name.startswith("m_mo_e_")
    path = model.save(tmp_path / "old.npz")
    loaded = tn.load(path)
    assert old_name in [layer.name for layer in loaded.layers]
    assert any(name.startswith(f"{old_name}/") for name in loaded.weight_names())
    _assert_same_weights(model, loaded)
    _assert_same_predictions(model, loaded, _data("mmoe")[0])
    assert tn.mtl.MMoE(2, 2, 2).name.startswith("mmoe_")
