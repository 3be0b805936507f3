"""A model copied with ``copy.deepcopy`` or ``pickle`` is a model of its own that
trains exactly as the original goes on training (tinynet.io saves without
pickling; this is for users who copy or pickle objects: joblib, multiprocessing,
keeping a best model).

The weak references between layers, their containers, the parameters a
container released and a multi-task weighting's model made a trained model
unpicklable, and a deep copy's layers took the *original* model for their
container (tinynet._weak)."""

import copy
import gc
import pickle

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, Reshape
from tinynet.mtl import experiments as ex


def _pickled(obj):
    return pickle.loads(pickle.dumps(obj))


COPIES = {"deepcopy": copy.deepcopy, "pickle": _pickled}

_RNG = np.random.default_rng(0)
_X = _RNG.random((24, 16)).astype(np.float32)
_CLASSES = {"left": _RNG.integers(0, 3, 24), "right": _RNG.integers(0, 3, 24)}


def _mlp():
    model = tn.Sequential([Dense(8, activation="relu", input_dim=16, seed=0), Dropout(0.2, seed=1),
                           Dense(3, seed=2)])
    model.compile(tn.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    return model, _X, _CLASSES["left"]


def _cnn():
    model = tn.Sequential([Reshape((4, 4, 1), input_dim=16), Conv2D(4, 3, padding="same", seed=0),
                           BatchNorm(), MaxPool2D(2), Flatten(), Dense(3, seed=1)])
    model.compile(tn.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
    return model, _X, _CLASSES["left"]


def _mtl(build, weighting):
    def make():
        model = build()
        model.compile(tn.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"],
                      weighting=weighting)
        return model, _X, _CLASSES
    return make


TASKS = {"left": 3, "right": 3}
MODELS = {
    "mlp": _mlp, "cnn": _cnn,
    "hard-uncertainty": _mtl(lambda: ex.hard_sharing(16, [8], TASKS, seed=0), "uncertainty"),
    "hard-gradnorm": _mtl(lambda: ex.hard_sharing(16, [8], TASKS, seed=0), "gradnorm"),
    "hard-pcgrad": _mtl(lambda: ex.hard_sharing(16, [8], TASKS, seed=0), "pcgrad"),
    "mmoe-dwa": _mtl(lambda: ex.mmoe(16, 2, 4, [4], TASKS, seed=0), "dwa"),
    "cross-stitch": _mtl(lambda: ex.cross_stitch(16, [8], TASKS, seed=0), "equal"),
    "soft": _mtl(lambda: ex.soft_sharing(16, [8], TASKS, 1e-2, seed=0), "equal"),
}


def _weights(model):
    return [p.value.copy() for p in model.parameters()]


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("name", MODELS)
def test_a_trained_model_copies_and_the_copy_trains_as_the_original_goes_on(name, how):
    model, x, y = MODELS[name]()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=3)
    twin = COPIES[how](model)
    for a, b in zip(_weights(model), _weights(twin), strict=True):
        np.testing.assert_array_equal(a, b)
    runs = [m.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0, seed=3)
            for m in (model, twin)]
    assert runs[0].history == runs[1].history
    for a, b in zip(_weights(model), _weights(twin), strict=True):
        np.testing.assert_array_equal(a, b)
    # two models: training the copy leaves the original as it was
    before = _weights(model)
    twin.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=4)
    for a, b in zip(before, _weights(model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(twin)))


@pytest.mark.parametrize("how", COPIES)
def test_a_model_with_an_l2sp_penalty_copies_with_its_own_penalty(how):
    # the penalty wrapped optimizer.step in a closure: the copy's step stepped
    # the original's optimizer (the copy did not train, the original moved),
    # and a pickle failed ("Can't pickle local object")
    from tinynet.transfer import L2SP
    model, x, y = _mlp()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=3)
    penalty = L2SP(model.layers[0], alpha=1.0)
    penalty.attach(model.optimizer)
    twin, twin_penalty = COPIES[how]((model, penalty))
    assert twin.optimizer.penalties == [twin_penalty] and twin_penalty is not penalty
    before = _weights(model)
    runs = [m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=3, callbacks=[p.logger()])
            for m, p in ((twin, twin_penalty), (model, penalty))]
    assert runs[0].history == runs[1].history and runs[0].history["l2sp_penalty"][1] > 0
    for a, b in zip(_weights(model), _weights(twin), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(twin)))
    # training the copy leaves the original where it was
    before = _weights(model)
    twin.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=4)
    for a, b in zip(before, _weights(model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert twin_penalty.steps == 9 and penalty.steps == 6


def test_a_model_pickled_before_optimizer_penalties_trains_after_loading():
    # main's optimizers had no penalties attribute: step raised AttributeError
    model, x, y = _mlp()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=3)
    del model.optimizer.__dict__["penalties"]                # as main pickled it
    twin = _pickled(model)
    assert twin.optimizer.penalties == []
    model.optimizer.penalties = []
    runs = [m.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=4) for m in (twin, model)]
    assert runs[0].history == runs[1].history


def test_a_shallow_copy_of_an_optimizer_has_a_penalty_list_of_its_own():
    from tinynet.transfer import L2SP
    model, _, _ = _mlp()
    penalty = L2SP(model.layers[0], alpha=1.0)
    twin = copy.copy(model.optimizer)
    assert twin.params == model.optimizer.params             # shared, as a shallow copy does
    penalty.attach(twin)
    assert twin.penalties == [penalty] and model.optimizer.penalties == []


@pytest.mark.parametrize("how", COPIES)
def test_a_copy_of_a_frozen_model_unfreezes(how):
    # the copy's layers took the original, frozen model for their container, so
    # unfreezing the copy left every one of its parameters frozen
    model = tn.Sequential([Dense(4, activation="relu", input_dim=3), Dense(2)])
    model.trainable = False
    twin = COPIES[how](model)
    twin.trainable = True
    assert [p.trainable for p in twin.parameters()] == [True] * 4
    assert [p.trainable for p in model.parameters()] == [False] * 4
    # and freezing the original no longer reaches the copy's layers
    twin.layers[0].trainable = True
    assert not twin.layers[0]._frozen_above()
    assert list(twin.layers[0]._parents) == [twin]


@pytest.mark.parametrize("how", COPIES)
def test_a_copy_made_between_forward_and_backward_backpropagates(how):
    rng = np.random.default_rng(0)
    model = tn.Sequential([Dense(4, input_dim=3, activation="tanh", seed=0), Dense(2, seed=1)])
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    model.forward(x, training=True)
    twin = COPIES[how](model)
    expected = [model.backward(dy), *(p.grad.copy() for p in model.parameters())]
    del model
    gc.collect()
    got = [twin.backward(dy), *(p.grad for p in twin.parameters())]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("how", COPIES)
def test_a_conv_copies_without_its_scratch_buffers_and_backpropagates(how):
    # its workspaces went along: the gradient buffers g and dcols are scratch,
    # and a trained Conv2D pickled to twice its forward cache
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 6, 6, 3)).astype(np.float32)
    layer = Conv2D(4, 3, activation="relu", seed=0)
    dy = rng.standard_normal(layer.forward(x, training=True).shape).astype(np.float32)
    layer.backward(dy)
    layer.forward(x, training=True)
    cache = sum(a.nbytes for a in layer._cache if isinstance(a, np.ndarray))
    assert len(pickle.dumps(layer)) < cache + 16384
    twin = COPIES[how](layer)
    assert "_workspaces" not in vars(twin)
    twin.zero_grad()
    layer.zero_grad()
    got, expected = twin.backward(dy), layer.backward(dy)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(twin.W.grad, layer.W.grad)
    twin.forward(x[:4], training=True)  # its own buffers from now on
    assert twin._workspaces["cols"] is not layer._workspaces["cols"]


@pytest.mark.parametrize("how", COPIES)
def test_a_layer_copied_alone_is_in_no_container(how):
    model = tn.Sequential([Dense(4, input_dim=3, seed=0), Dense(2, seed=1)])
    model.predict(np.ones((2, 3)))
    layer = COPIES[how](model.layers[0])
    gc.collect()
    assert list(layer._parents) == [] and layer._cache_owner is None
    np.testing.assert_array_equal(layer.W.value, model.layers[0].W.value)
    assert list(model.layers[0]._parents) == [model]   # the original's are unchanged


@pytest.mark.parametrize("how", COPIES)
def test_a_model_copied_with_the_optimizer_of_its_former_head_binds_it_again(how):
    # a container's record of the parameters it released was keyed by their ids
    # and referred to the original's: a copied model refused the copied
    # optimizer holding its former head's parameters as another model's
    model = tn.Sequential([Dense(4, input_dim=3, seed=0), Dense(2, seed=1)])
    opt = tn.optim.Adam(lr=0.01)
    opt.bind(model.parameters())
    tn.transfer.replace_head(model, Dense(5, seed=2))
    twin, twin_opt = COPIES[how]((model, opt))
    for m, o in ((model, opt), (twin, twin_opt)):
        m.compile(o, loss="mse")
        assert m.optimizer is o
        assert {id(p) for p in o.params} == {id(p) for p in m.parameters()}
    # the original's optimizer is still another model's for the copy
    with pytest.raises(ValueError, match="another model|compiled with"):
        twin.compile(opt, loss="mse")


def test_a_multi_task_weighting_copied_with_its_model_is_the_copys():
    model, x, y = _mtl(lambda: ex.hard_sharing(16, [8], TASKS, seed=0), "uncertainty")()
    twin = _pickled(model)
    assert twin.weighting._owner() is twin
    # each model recompiles with its own weighting; the copy's is not the original's
    twin.compile(tn.optim.Adam(lr=0.01), loss="cross_entropy", weighting=twin.weighting)
    with pytest.raises(ValueError, match="that model .* is compiled with"):
        twin.compile(tn.optim.Adam(lr=0.01), loss="cross_entropy", weighting=model.weighting)


def _sine_model(activation):
    return tn.Sequential([tn.layers.Dense(8, activation=activation, input_dim=1, seed=0),
                          tn.layers.Dense(1, seed=1)])


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("make", [
    lambda: tn.meta.MAML(_sine_model("relu"), meta_lr=3e-3),
    lambda: tn.meta.MetaSGD(_sine_model("tanh"), meta_lr=3e-3),
    lambda: tn.meta.ANIL(_sine_model("elu"), loss="mse", meta_lr=3e-3),
    lambda: tn.meta.Reptile(_sine_model("silu"), meta_lr=3e-3),
    lambda: tn.meta.MAML(_sine_model("leaky_relu"), meta_lr=3e-3),
    lambda: tn.meta.Pretrained(_sine_model("sigmoid"), meta_lr=3e-3)])
def test_a_meta_learner_copies_and_the_copy_meta_trains_as_the_original_goes_on(make, how):
    # the functional view held its activations as closures, which no pickle takes
    learner = make()
    learner.meta_fit(tn.meta.SinusoidTasks(5, seed=1), iterations=3, meta_batch_size=4, seed=0)
    twin = COPIES[how](learner)
    for one in (learner, twin):
        one.meta_fit(tn.meta.SinusoidTasks(5, seed=2), iterations=3, meta_batch_size=4, seed=1)
    assert learner.history == twin.history
    for a, b in zip(_weights(learner.model), _weights(twin.model), strict=True):
        np.testing.assert_array_equal(a, b)
    test = tn.meta.SinusoidTasks(5, k_query=10, seed=9).sample(4)
    assert learner.evaluate(test, steps=2) == twin.evaluate(test, steps=2)
