"""A meta-learner saved and loaded carries on bit for bit."""

import numpy as np
import pytest

import tinynet as tn
from tests.meta.test_algorithms import sine_model
from tinynet.meta import (ANIL, MAML, EpisodeSampler, MetaSGD, Pretrained, ProtoNet, Reptile,
                          SinusoidTasks)


def _digits():
    (x, y), _ = tn.data.load_digits()
    return EpisodeSampler(x / 16.0, y, n_way=3, k_shot=2, n_query=3, seed=0)


def _classifier(seed=0):
    return tn.Sequential([tn.layers.Dense(16, activation="relu", input_dim=64, seed=seed),
                          tn.layers.Dense(3, seed=seed + 1)])


BUILDS = {
    "MAML": lambda: (MAML(sine_model(), inner_lr=0.02, inner_steps=2, meta_lr=3e-3,
                          first_order=True), SinusoidTasks(5, seed=1)),
    "MetaSGD": lambda: (MetaSGD(sine_model(), meta_lr=3e-3), SinusoidTasks(5, seed=1)),
    "ANIL": lambda: (ANIL(_classifier(), head_layers=1, meta_lr=3e-3, inner_lr=0.3),
                     _digits()),
    "Reptile": lambda: (Reptile(sine_model(), inner_steps=3, meta_optimizer="sgd",
                                meta_lr=0.1), SinusoidTasks(5, seed=1)),
    "Pretrained": lambda: (Pretrained(sine_model(), inner_lr=0.05), SinusoidTasks(5, seed=1)),
    "ProtoNet": lambda: (ProtoNet(_classifier(), meta_lr=3e-3), _digits()),
}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_a_saved_learner_resumes_as_if_it_had_never_stopped(tmp_path, name):
    # before, model.save kept the weights only: Meta-SGD's learned rates, the
    # settings and Adam's moments were lost, so a resumed run trained otherwise
    whole, tasks = BUILDS[name]()
    whole.meta_fit(tasks, iterations=6, meta_batch_size=3, seed=0)
    first, tasks2 = BUILDS[name]()
    first.meta_fit(tasks2, iterations=3, meta_batch_size=3, seed=0)
    path = first.save(tmp_path / "learner.npz")
    resumed = tn.meta.load(path)
    assert type(resumed) is type(first) and resumed.history == first.history
    for attr in ("loss", "inner_lr", "inner_steps", "meta_lr", "meta_optimizer"):
        assert getattr(resumed, attr) == getattr(first, attr)
    # the second half of the run: a fresh sampler in the state the first half left
    _, tasks3 = BUILDS[name]()
    rng = np.random.default_rng(0)
    for _ in range(3):
        tasks3.sample(3, rng)
    _resume(resumed, tasks3, rng)
    np.testing.assert_array_equal(resumed.net.get_params(), whole.net.get_params())
    if name == "MetaSGD":
        for a, b in zip(resumed.lrs, whole.lrs):
            np.testing.assert_array_equal(a.value, b.value)
            assert not np.all(a.value == 0.01)  # they were learned, not reset
    assert resumed.history == whole.history


def _resume(learner, tasks, rng):
    """Three more iterations drawing from ``rng`` as meta_fit(seed=0) would have."""
    from tinynet.meta.base import check_task_batch

    opt = learner.optimizer
    for _ in range(3):
        batch = check_task_batch(tasks.sample(3, rng), "test")
        loss, grad = learner._meta_gradient(batch)
        learner._set_meta_grad(grad)
        opt.step()
        learner.history.append(float(loss))


@pytest.mark.parametrize("name", ["MAML", "MetaSGD"])
def test_a_learner_file_loaded_as_a_model_and_saved_again_is_the_same_learner(tmp_path, name):
    # tinynet.load then model.save dropped the file's extra arrays (Meta-SGD's
    # learned rates, the meta-optimizer's state) and kept the metadata that
    # names them: Meta-SGD's file no longer loaded ("expected 4 learned rate
    # arrays, received 0"), MAML's loaded with a fresh Adam and trained otherwise
    learner, tasks = BUILDS[name]()
    learner.meta_fit(tasks, iterations=3, meta_batch_size=2, seed=0)
    path = learner.save(tmp_path / "learner.npz")
    again = tn.load(path).save(tmp_path / "again.npz")
    original, resaved = tn.meta.load(path), tn.meta.load(again)
    for resumed in (original, resaved):
        resumed.meta_fit(BUILDS[name]()[1], iterations=3, meta_batch_size=2, seed=1)
    np.testing.assert_array_equal(resaved.net.get_params(), original.net.get_params())
    assert resaved.history == original.history
    for a, b in zip(getattr(resaved, "lrs", []), original.lrs if name == "MetaSGD" else []):
        np.testing.assert_array_equal(a.value, b.value)
    for key, value in original.optimizer.state_dict().items():
        np.testing.assert_array_equal(resaved.optimizer.state_dict()[key], value)


def test_an_untrained_learner_and_a_new_head_round_trip(tmp_path):
    base = Pretrained(sine_model(), inner_lr=0.05)
    base.new_head(1, fine_tune="head")
    loaded = tn.meta.load(base.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(loaded._lr_mask, base._lr_mask)
    task = SinusoidTasks(5, seed=2).sample(1)
    a = base.adapt(task.support_x[0], task.support_y[0], steps=3)
    b = loaded.adapt(task.support_x[0], task.support_y[0], steps=3)
    np.testing.assert_array_equal(a.predict(task.query_x[0]), b.predict(task.query_x[0]))


def test_a_learner_on_a_list_of_layers_comes_back_on_a_sequential(tmp_path):
    layers = [tn.layers.Dense(8, activation="tanh", input_dim=1, seed=0),
              tn.layers.Dense(1, input_dim=8, seed=1)]
    maml = MAML(layers)
    loaded = tn.meta.load(maml.save(tmp_path / "m.npz"))
    assert isinstance(loaded.model, tn.Sequential)
    np.testing.assert_array_equal(loaded.net.get_params(), maml.net.get_params())


def test_the_users_metadata_is_kept_and_the_learners_key_is_not_left_on_the_model(tmp_path):
    maml = MAML(sine_model())
    loaded = tn.meta.load(maml.save(tmp_path / "m.npz", metadata={"note": "sines"}))
    assert loaded.model.metadata == {"note": "sines"}
    assert not hasattr(loaded.model, "extra_arrays")
    # the file is a model file too
    assert isinstance(tn.load(tmp_path / "m.npz"), tn.Sequential)


def test_what_cannot_be_saved_is_refused_before_writing(tmp_path):
    class Mine(MAML):
        pass

    with pytest.raises(TypeError, match="expected one of MAML.*received Mine"):
        Mine(sine_model()).save(tmp_path / "a.npz")
    own = MAML(sine_model(), meta_optimizer=lambda params: tn.optim.SGD(params, lr=0.1))
    with pytest.raises(TypeError, match="callable of your own"):
        own.save(tmp_path / "b.npz")
    assert not list(tmp_path.iterdir())


def test_a_nan_meta_optimizer_state_is_refused_before_writing(tmp_path):
    learner = MetaSGD(sine_model())
    learner.meta_fit(SinusoidTasks(5, seed=1), iterations=1, meta_batch_size=2, seed=0)
    state = learner._optimizer.state[learner._optimizer.params[0]]
    state["exp_avg_sq"].flat[0] = np.nan  # tinynet.meta.load would refuse the file
    with pytest.raises(ValueError, match=r"tinynet.meta.save \(MetaSGD's meta-optimizer\): "
                                         r".*'state.0.exp_avg_sq'.*; tinynet.meta.load would "
                                         r"refuse it: nothing saved$"):
        learner.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())
    state["exp_avg_sq"].flat[0] = 0.0
    tn.meta.load(learner.save(tmp_path / "m.npz"))


def test_a_plain_model_file_is_not_a_learner(tmp_path):
    path = sine_model().save(tmp_path / "model.npz")
    with pytest.raises(tn.io.ModelFileError, match="holds a model but no meta-learner"):
        tn.meta.load(path)


@pytest.mark.parametrize("change, match", [
    (lambda spec, extra: spec.update({"class": "Nope"}), "unknown meta-learner class"),
    (lambda spec, extra: spec["settings"].update(inner_lr=-1.0), "inner_lr"),
    (lambda spec, extra: spec.update(history="x"), "history"),
    (lambda spec, extra: extra.__setitem__("lrs/0", extra["lrs/0"].ravel()[:2]), "learned rates"),
    (lambda spec, extra: extra.__setitem__("lrs/0", extra["lrs/0"] * np.nan), "learned rates"),
    # finite in float64, inf once cast to the float32 model's rates: was loaded as inf
    (lambda spec, extra: extra.__setitem__("lrs/0", extra["lrs/0"].astype(np.float64) * 1e300),
     "learned rates.*overflow"),
])
def test_a_learner_file_that_does_not_hold_together_is_a_model_file_error(tmp_path, change,
                                                                          match):
    learner = MetaSGD(sine_model())
    learner.meta_fit(SinusoidTasks(5, seed=1), iterations=1, meta_batch_size=2, seed=0)
    path = learner.save(tmp_path / "m.npz")
    model = tn.load(path, compile=False)
    spec = model.metadata["tinynet_meta"]
    extra = dict(model.extra_arrays)
    change(spec, extra)
    bad = tn.io.save(model, tmp_path / "bad.npz", include_optimizer=False,
                     metadata=model.metadata, extra_arrays=extra)
    with pytest.raises(tn.io.ModelFileError, match=match):
        tn.meta.load(bad)


def test_a_learner_whose_training_diverged_can_be_saved_and_keeps_its_history(tmp_path):
    # meta_fit records the non-finite loss it stopped at; JSON has no NaN or
    # infinity, so save raised "Out of range float values are not JSON
    # compliant" for exactly the learner whose last finite weights one wants
    batch = SinusoidTasks(5, seed=1).sample(4).astype(np.float64)
    batch.support_y[0, 0] = 1e200
    learner = MAML(sine_model(), inner_lr=1.0, inner_steps=3)
    learner.history = [0.5, float("inf"), float("-inf")]  # e.g. from an earlier run
    with pytest.warns(RuntimeWarning, match="non-finite"), np.errstate(all="ignore"):
        learner.meta_fit(batch, iterations=2, meta_batch_size=4, seed=0)
    assert np.isnan(learner.history[-1])
    loaded = tn.meta.load(learner.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.history, learner.history)
    assert all(type(v) is float for v in loaded.history)
    np.testing.assert_array_equal(loaded.net.get_params(), learner.net.get_params())


@pytest.mark.parametrize("history", [["x"], ["NaN!"], [True], [None]])
def test_a_history_entry_that_is_no_number_is_a_model_file_error(tmp_path, history):
    learner = MAML(sine_model())
    path = learner.save(tmp_path / "m.npz")
    model = tn.load(path, compile=False)
    model.metadata["tinynet_meta"]["history"] = history
    bad = tn.io.save(model, tmp_path / "bad.npz", include_optimizer=False,
                     metadata=model.metadata)
    with pytest.raises(tn.io.ModelFileError, match="history"):
        tn.meta.load(bad)


def test_a_learner_file_whose_model_was_changed_says_how_to_save_it(tmp_path):
    # loaded with tn.load, a layer changed and saved, the file keeps the learner's
    # arrays for the old layers: meta.load refuses it, saying what to do instead
    from tinynet.layers import Dense
    learner, tasks = BUILDS["MAML"]()
    learner.meta_fit(tasks, iterations=2, meta_batch_size=2, seed=0)
    model = tn.load(learner.save(tmp_path / "learner.npz"))
    width = model.layers[-1].units
    model.pop()
    model.add(Dense(width + 3))
    path = model.save(tmp_path / "changed.npz")
    with pytest.raises(tn.io.ModelFileError, match=r"cannot rebuild the meta-learner .* save "
                                                    r"the learner with tn.meta.save, or the "
                                                    r"model with extra_arrays=\{\}"):
        tn.meta.load(path)
    tn.load(path, compile=False)   # the model itself still loads


def _arrays(path):
    import json
    with np.load(path) as data:
        header = json.loads(bytes(data["__tinynet__"]).decode())
        return header, sorted(data.files)


@pytest.mark.parametrize("route", ["the loaded model", "the learner"])
def test_include_optimizer_false_writes_no_meta_optimizer_state(tmp_path, route):
    # a model loaded from a learner's file and saved with include_optimizer=False
    # still wrote the meta-optimizer's moments as its extra arrays (and a learner
    # could not be saved without them); such a file loads, the optimizer afresh
    learner, tasks = BUILDS["MetaSGD"]()
    learner.meta_fit(tasks, iterations=2, meta_batch_size=2, seed=0)
    if route == "the loaded model":
        model = tn.load(learner.save(tmp_path / "learner.npz"))
        assert any(tn.io.is_optimizer_array(k) for k in model.extra_arrays)
        path = model.save(tmp_path / "light.npz", include_optimizer=False)
    else:
        path = learner.save(tmp_path / "light.npz", include_optimizer=False)
    header, files = _arrays(path)
    names = header.get("extra_arrays") or []
    assert names and not any(tn.io.is_optimizer_array(k) for k in names)
    assert not any(k.startswith("optimizer_") for k in files)
    assert len(files) == 1 + len(header["weights"]) + len(names)
    resumed = tn.meta.load(path)
    np.testing.assert_array_equal(resumed.net.get_params(), learner.net.get_params())
    for a, b in zip(resumed.lrs, learner.lrs):
        np.testing.assert_array_equal(a.value, b.value)
    assert resumed.optimizer.state == {}
    resumed.meta_fit(tasks, iterations=1, meta_batch_size=2, seed=1)
    assert all(s["step"] == 1 for s in resumed.optimizer.state.values())
    # with the optimizer (the default), the loaded model keeps it when saved again
    kept = tn.load(learner.save(tmp_path / "full.npz")).save(tmp_path / "again.npz")
    assert sum(tn.io.is_optimizer_array(k) for k in _arrays(kept)[0]["extra_arrays"]) > 0


def test_the_meta_optimizer_prefix_is_one_save_knows_for_optimizer_state():
    from tinynet.meta import saving
    assert tn.io.is_optimizer_array(saving._OPT + "state.0.exp_avg")
    assert not tn.io.is_optimizer_array(saving._LRS + "0")
    assert not tn.io.is_optimizer_array(saving._MASK)
    assert not tn.io.is_optimizer_array("optimizer")  # no "/": a name of the caller's
    assert not tn.io.is_optimizer_array("lr_finder_optimizer/lrs")  # the user's own


def test_include_optimizer_false_keeps_the_users_own_arrays_named_like_an_optimizer(tmp_path):
    # only the meta-optimizer's prefix is optimizer state: an array of the user's
    # whose name merely ends in "optimizer" was dropped by an earlier rule
    model = tn.Sequential([tn.layers.Dense(2, input_dim=3, seed=0)])
    mine = {"lr_finder_optimizer/lrs": np.arange(3.0), "preprocessing/mean": np.ones(3)}
    first = model.save(tmp_path / "m.npz", extra_arrays=mine)
    again = tn.load(first).save(tmp_path / "again.npz", include_optimizer=False)
    kept = tn.load(again).extra_arrays
    assert sorted(kept) == sorted(mine)
    np.testing.assert_array_equal(kept["lr_finder_optimizer/lrs"], np.arange(3.0))
