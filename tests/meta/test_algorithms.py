"""The meta-learners from the public API: training lowers the meta-loss,
adapt returns a new model and leaves the meta-learned one alone, evaluate
reports means and confidence intervals, ProtoNet's backward is exact."""

import numpy as np
import pytest

import tinynet as tn
from tests.meta.helpers import mlp_layers, numerical_grad4, randomize, rel_error
from tinynet.meta import (ANIL, MAML, EpisodeSampler, MetaSGD, Pretrained, ProtoNet, Reptile,
                          SinusoidTasks, TaskBatch, prototype_loss, summarize)


def sine_model(seed=0, width=16):
    return tn.Sequential([tn.layers.Dense(width, activation="relu", input_dim=1, seed=seed),
                          tn.layers.Dense(width, activation="relu", seed=seed + 1),
                          tn.layers.Dense(1, seed=seed + 2)])


@pytest.mark.parametrize("make", [
    lambda m: MAML(m, meta_lr=3e-3), lambda m: MAML(m, first_order=True, meta_lr=3e-3),
    lambda m: MetaSGD(m, meta_lr=3e-3), lambda m: Reptile(m, meta_lr=3e-3),
    lambda m: ANIL(m, loss="mse", meta_lr=3e-3), lambda m: Pretrained(m, meta_lr=3e-3)])
def test_meta_training_lowers_the_query_loss(make):
    learner = make(sine_model())
    test = SinusoidTasks(5, k_query=20, seed=9).sample(50)
    before = learner.evaluate(test, steps=1)["steps"][1]["loss"]
    learner.meta_fit(SinusoidTasks(5, seed=1), iterations=150, meta_batch_size=10, seed=0)
    assert len(learner.history) == 150
    assert learner.evaluate(test, steps=1)["steps"][1]["loss"] < 0.8 * before


def test_adapt_returns_a_new_model_and_keeps_the_initialisation():
    model = sine_model()
    maml = MAML(model, inner_lr=0.05)
    before = [w.copy() for w in model.get_weights()]
    task = SinusoidTasks(10, seed=3).sample(1)
    adapted = maml.adapt(task.support_x[0], task.support_y[0][:, 0], steps=5)
    assert isinstance(adapted, tn.Sequential) and adapted is not model
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    mse = lambda m: float(np.mean((m.predict(task.support_x[0]) - task.support_y[0]) ** 2))
    assert mse(adapted) < mse(model)
    # the adapted model's predictions are what the functional inner loop reached
    theta = maml._adapt_theta(maml.net.get_params(), task.support_x, task.support_y, 5)
    assert np.allclose(adapted.predict(task.query_x[0]),
                       maml.net.forward(theta, task.query_x)[0], atol=1e-5)



@pytest.mark.parametrize("make", [
    lambda m: MAML(m, inner_lr=0.05, meta_lr=1e-2), lambda m: MetaSGD(m, meta_lr=1e-2),
    lambda m: Reptile(m, inner_lr=0.05, meta_lr=0.1), lambda m: Pretrained(m, meta_lr=1e-2)])
def test_a_frozen_layer_is_not_meta_trained_but_the_inner_loop_adapts_it(make):
    # what the MetaLearner docstring promises for trainable=False layers
    model = sine_model()
    model.layers[0].trainable = False
    frozen, free = model.layers[0].W, model.layers[1].W
    frozen0, free0 = frozen.value.copy(), free.value.copy()
    learner = make(model)
    learner.meta_fit(SinusoidTasks(5, seed=1), iterations=5, meta_batch_size=4, seed=0)
    assert np.array_equal(frozen.value, frozen0) and not np.array_equal(free.value, free0)
    task = SinusoidTasks(10, seed=3).sample(1)
    adapted = learner.adapt(task.support_x[0], task.support_y[0][:, 0], steps=2)
    assert not np.array_equal(adapted.layers[0].W.value, frozen0)

def test_evaluate_reports_mean_and_confidence_interval():
    maml = MAML(sine_model(), inner_lr=0.01)
    tasks = SinusoidTasks(5, k_query=7, seed=2).sample(30)
    result = maml.evaluate(tasks, steps=(3, 1), chunk=8)
    assert result["n_tasks"] == 30 and sorted(result["steps"]) == [1, 3]
    theta = maml._adapt_theta(maml.net.get_params(), tasks.support_x, tasks.support_y, 3)
    losses = np.mean((maml.net.forward(theta, tasks.query_x) - tasks.query_y) ** 2, axis=(1, 2))
    mean, ci = summarize(losses)
    assert np.isclose(result["steps"][3]["loss"], mean, rtol=1e-5)
    assert np.isclose(result["steps"][3]["loss_ci95"], 1.96 * losses.std(ddof=1) / np.sqrt(30),
                      rtol=1e-4) and np.isclose(ci, result["steps"][3]["loss_ci95"], rtol=1e-5)
    assert np.isclose(maml.evaluate(SinusoidTasks(5, seed=2), n_tasks=4, seed=1)["n_tasks"], 4)


def test_metasgd_learns_its_learning_rates_and_adam_updates_them():
    learner = MetaSGD(sine_model(), inner_lr=0.01)
    assert len(learner.meta_parameters()) == 2 * len(learner.net.param_list())
    learner.meta_fit(SinusoidTasks(5, seed=1), iterations=5, meta_batch_size=4)
    lrs = learner._inner_lr()
    assert lrs.shape == (learner.net.n_params,) and not np.allclose(lrs, 0.01)


def test_protonet_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    n_way, k, q, d = 3, 2, 4, 5
    es, eq = rng.standard_normal((2, n_way * k, d)), rng.standard_normal((2, q, d))
    ys = np.tile(np.repeat(np.arange(n_way), k), (2, 1))
    yq = rng.integers(0, n_way, (2, q))
    _, ds, dq, _ = prototype_loss(es, ys, eq, yq, n_way)

    def f():
        return prototype_loss(es, ys, eq, yq, n_way)[0].sum()
    assert rel_error(ds, numerical_grad4(f, es)) < 1e-6
    assert rel_error(dq, numerical_grad4(f, eq)) < 1e-6


def test_protonet_meta_gradient_through_the_embedding_net():
    layers = mlp_layers([4, 5, 3], "tanh", seed=1)
    proto = ProtoNet(layers)
    theta = randomize(proto.net, 1)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((30, 4)), np.repeat(np.arange(3), 10)
    batch = EpisodeSampler(x, y, n_way=3, k_shot=2, n_query=3, seed=0).sample(2)
    loss, grad = proto.meta_gradient(batch)

    def f():
        proto.net.set_params(theta)
        return proto.meta_gradient(batch)[0]
    assert rel_error(grad, numerical_grad4(f, theta)) < 1e-6
    classifier = proto.adapt(batch.support_x[0], batch.support_y[0])
    assert classifier.predict(batch.query_x[0]).shape == (9, 3)
    result = proto.evaluate(batch)
    assert set(result["steps"][0]) == {"loss", "loss_ci95", "accuracy", "accuracy_ci95"}
    assert np.isclose(result["steps"][0]["loss"], loss)


def test_protonet_and_anil_learn_digits_episodes():
    # judged on new images of the meta-training classes: with ~860 images of
    # 6 classes, held-out-class accuracy is the benchmark's business
    (x, y), (x_test, y_test) = tn.data.load_digits()
    train = EpisodeSampler(x / 16.0, y, n_way=3, k_shot=1, n_query=5, classes=range(6), seed=0)
    test = EpisodeSampler(x_test / 16.0, y_test, n_way=3, k_shot=1, n_query=5,
                          classes=range(6), seed=1).sample(60)
    proto = ProtoNet(tn.Sequential([tn.layers.Dense(32, activation="relu", input_dim=64,
                                                    seed=0, dtype="float64"),
                                    tn.layers.Dense(16, seed=1)]), meta_lr=3e-3)
    before = proto.evaluate(test)["steps"][0]["accuracy"]
    proto.meta_fit(train, iterations=60, meta_batch_size=8, seed=0)
    assert proto.evaluate(test)["steps"][0]["accuracy"] > before + 0.1
    anil = ANIL(tn.Sequential([tn.layers.Dense(32, activation="relu", input_dim=64, seed=0),
                               tn.layers.Dense(3, seed=1)]), inner_lr=0.5, meta_lr=3e-3)
    anil.meta_fit(train, iterations=60, meta_batch_size=8, seed=0)
    assert anil.evaluate(test, steps=5)["steps"][5]["accuracy"] > 0.45


def test_pretrained_new_head_fine_tunes_only_the_head():
    (x, y), _ = tn.data.load_digits()
    x = x.astype(np.float32) / 16
    base = Pretrained(tn.Sequential([tn.layers.Dense(16, activation="relu", input_dim=64,
                                                     seed=0), tn.layers.Dense(6, seed=1)]),
                      loss="cross_entropy", inner_lr=0.5)
    keep = y < 6
    base.fit(x[keep], y[keep], iterations=50, batch_size=32, seed=0)
    body = base.net.param_list()[0].value.copy()
    base.new_head(3)
    assert base.net.output_dim == 3 and isinstance(base.model, tn.Sequential)
    episodes = EpisodeSampler(x, y, n_way=3, k_shot=5, n_query=5, classes=range(6, 10),
                              seed=0).sample(20)
    adapted = base.adapt(episodes.support_x[0], episodes.support_y[0], steps=5)
    assert np.array_equal(adapted.layers[0].W.value, body)
    assert np.any(adapted.layers[-1].W.value != 0)
    assert base.evaluate(episodes, steps=10)["steps"][10]["accuracy"] > 0.4


def test_constructor_and_call_errors():
    with pytest.raises(ValueError, match="did you mean"):
        MAML(sine_model(), loss="mse_")
    with pytest.raises(ValueError, match="inner_lr"):
        MAML(sine_model(), inner_lr=-1)
    with pytest.raises(ValueError, match="meta_lr"):
        MAML(sine_model(), meta_lr=0)
    with pytest.raises(ValueError, match="steps"):
        MAML(sine_model(), inner_steps=-1)
    with pytest.raises(ValueError, match="head_layers"):
        ANIL(sine_model(), head_layers=4)
    maml = MAML(sine_model())
    with pytest.raises(TypeError, match="sampler"):
        maml.meta_fit([1, 2], iterations=1)
    with pytest.raises(ValueError, match="iterations"):
        maml.meta_fit(SinusoidTasks(5), iterations=0)
    with pytest.raises(TypeError, match="n_tasks"):
        maml.evaluate(SinusoidTasks(5))
    with pytest.raises(ValueError, match="support_x"):
        maml.adapt(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="n_outputs"):
        Pretrained(sine_model()).new_head(0)
    with pytest.raises(ValueError, match="every one of the"):
        prototype_loss(np.zeros((1, 2, 3)), np.zeros((1, 2), int), np.zeros((1, 1, 3)),
                       np.zeros((1, 1), int), 2)


def test_evaluate_counts_tasks_where_the_inner_loop_diverged():
    maml = MAML(sine_model(), inner_lr=50.0)  # far too large: some tasks blow up
    tasks = SinusoidTasks(5, seed=4).sample(40)
    with np.errstate(all="ignore"):
        entry = maml.evaluate(tasks, steps=10)["steps"][10]
    assert not np.isfinite(entry["loss"]) and 1 <= entry["n_diverged"] <= 40
    if entry["n_diverged"] < 40:
        assert np.isfinite(entry["loss_finite"])


# ----------------------------------------------------- checks of every learner
LEARNERS = {
    "MAML": lambda m, **kw: MAML(m, **kw), "MetaSGD": lambda m, **kw: MetaSGD(m, **kw),
    "ANIL": lambda m, **kw: ANIL(m, loss="mse", **kw),
    "Reptile": lambda m, **kw: Reptile(m, **kw), "Pretrained": lambda m, **kw: Pretrained(m, **kw),
}


@pytest.mark.parametrize("name", sorted(LEARNERS))
@pytest.mark.parametrize("what", ["inner_lr", "meta_lr"])
@pytest.mark.parametrize("value, error, match", [
    ("0.01", TypeError, "as a real number, received '0.01'"),
    (True, TypeError, "as a real number, received True"),
    (float("inf"), ValueError, r"in .*, inf\), received inf"),
    (float("nan"), ValueError, "in .*, received nan"),
    (-1, ValueError, r"in [\[(]0, inf\), received -1"),
])
def test_every_learner_checks_its_rates_alike(name, what, value, error, match):
    with pytest.raises(error, match=f"{name} expected {what} {match}"):
        LEARNERS[name](sine_model(), **{what: value})


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_numpy_scalar_rates_are_accepted(name):
    # np.float32(0.01) used to be refused as "expected inner_lr >= 0"
    learner = LEARNERS[name](sine_model(), inner_lr=np.float32(0.01), meta_lr=np.float64(0.002))
    assert learner.inner_lr == float(np.float32(0.01)) and learner.meta_lr == 0.002
    assert ProtoNet(sine_model(), meta_lr=np.float32(0.5)).meta_lr == 0.5


@pytest.mark.parametrize("name", sorted(LEARNERS))
@pytest.mark.parametrize("what, value, error", [
    ("inner_lr", float("nan"), ValueError), ("inner_lr", "0.1", TypeError),
    ("meta_lr", 0.0, ValueError), ("meta_lr", float("inf"), ValueError),
    ("inner_steps", -1, ValueError), ("inner_steps", 2.5, ValueError),
])
def test_rates_and_steps_set_after_construction_are_checked_too(name, what, value, error):
    # they were plain attributes: inner_lr=nan set later trained on NaN without a word
    learner = LEARNERS[name](sine_model())
    before = getattr(learner, what)
    with pytest.raises(error, match=f"{name} expected {what}"):
        setattr(learner, what, value)
    assert getattr(learner, what) == before


def test_reptile_refuses_zero_inner_steps_set_later():
    learner = Reptile(sine_model())
    with pytest.raises(ValueError, match="Reptile expected inner_steps >= 1"):
        learner.inner_steps = 0
    assert learner.inner_steps == 5


def test_a_new_meta_lr_reaches_the_meta_optimizer():
    # the optimizer is built at the first meta_fit with the meta_lr of then; a
    # later maml.meta_lr = ... used to change nothing
    maml = MAML(sine_model(), meta_lr=1e-3)
    maml.meta_fit(SinusoidTasks(5, seed=1), iterations=2, meta_batch_size=2, seed=0)
    assert maml.optimizer.lr == 1e-3
    maml.meta_lr = 1e-4
    assert maml.optimizer.lr == 1e-4 and maml.meta_lr == 1e-4
    # and it steps with it: the same update as a learner built with 1e-4 throughout
    a = MAML(sine_model(), meta_lr=1e-3)
    a.meta_lr = 1e-4
    b = MAML(sine_model(), meta_lr=1e-4)
    for learner in (a, b):
        learner.meta_fit(SinusoidTasks(5, seed=1), iterations=3, meta_batch_size=2, seed=0)
    np.testing.assert_array_equal(a.net.get_params(), b.net.get_params())


def test_adapt_warns_when_its_inner_sgd_diverges():
    # the adapted copy had NaN weights, and its predictions were NaN, silently
    maml = MAML(sine_model(), inner_lr=1e6)
    task = SinusoidTasks(5, seed=4).sample(1)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="diverged"):
        adapted = maml.adapt(task.support_x[0], task.support_y[0], steps=5)
    assert not np.isfinite(adapted.layers[0].W.value).all()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MAML(sine_model()).adapt(task.support_x[0], task.support_y[0])


def _digit_episodes(n_tasks=2, n_way=3):
    (x, y), _ = tn.data.load_digits()
    return EpisodeSampler(x / 16.0, y, n_way=n_way, k_shot=2, n_query=3, seed=0).sample(n_tasks)


def _digit_learners():
    def net(out):
        return tn.Sequential([tn.layers.Dense(8, activation="relu", input_dim=64, seed=0),
                              tn.layers.Dense(out, seed=1)])
    return [MAML(net(3), loss="cross_entropy"), ANIL(net(3)), Reptile(net(3), loss="cross_entropy"),
            MetaSGD(net(3), loss="cross_entropy"), Pretrained(net(3), loss="cross_entropy"),
            ProtoNet(net(4))]


@pytest.mark.parametrize("learner", _digit_learners(), ids=lambda l: type(l).__name__)
def test_adapt_refuses_non_finite_empty_or_mislabelled_support_sets(learner):
    batch = _digit_episodes()
    sx, sy = batch.support_x[0], batch.support_y[0]
    name = type(learner).__name__
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=f"{name}.adapt expected finite support_x, "
                                             f"received 1 NaN"):
            learner.adapt(np.where(np.arange(sx.size).reshape(sx.shape) == 5, bad, sx), sy,
                          steps=1)
    with pytest.raises(ValueError, match="at least one support example"):
        learner.adapt(sx[:0], sy[:0], steps=1)  # was a ZeroDivisionError
    # one shared label check: outside [0, n_way), negative, or with gaps (ProtoNet's
    # classes are the support set's; it used to predict class 0 or 1 for everything)
    for labels, seen in ((sy + 5, r"\[5, 7\]"), (sy - 1, r"\[-1, 1\]"), (sy * 2, r"\[0, 4\]")):
        with pytest.raises(ValueError, match=rf"{name}.adapt expected labels in \[0, 2\] for "
                                             rf"3 classes, received values in {seen}"):
            learner.adapt(sx, labels, steps=1)


def test_regression_adapt_refuses_non_finite_targets_and_a_length_mismatch():
    maml = MAML(sine_model())
    task = SinusoidTasks(5, seed=0).sample(1)
    sx, sy = task.support_x[0], task.support_y[0]
    with pytest.raises(ValueError, match="MAML.adapt expected finite support_y, received 1"):
        maml.adapt(sx, np.where(np.arange(5)[:, None] == 2, np.nan, sy))
    with pytest.raises(ValueError, match="expected 5 targets"):
        maml.adapt(sx, sy[:3])


@pytest.mark.parametrize("learner", _digit_learners(), ids=lambda l: type(l).__name__)
def test_meta_fit_and_evaluate_refuse_non_finite_tasks_and_change_nothing(learner):
    bad = _digit_episodes()
    bad.support_x[1, 0, 3] = np.nan  # after the batch was made: checked where it is used
    before = learner._meta_vector().copy()
    name = type(learner).__name__
    with pytest.raises(ValueError, match=f"{name}.meta_fit expected finite support_x"):
        learner.meta_fit(bad, iterations=1, meta_batch_size=2)
    assert np.array_equal(learner._meta_vector(), before) and learner.history == []
    with pytest.raises(ValueError, match=f"{name}.evaluate expected finite support_x"):
        learner.evaluate(bad, steps=1)
    with pytest.raises(ValueError, match=f"{name}.meta_gradient expected finite support_x"):
        learner.meta_gradient(bad)
    with pytest.raises(ValueError, match="evaluate expected chunk as a positive integer"):
        learner.evaluate(_digit_episodes(), steps=1, chunk=0)  # was a raw range() error


def test_protonet_meta_fit_refuses_episode_labels_outside_the_classes():
    batch = _digit_episodes()
    shifted = tn.meta.TaskBatch(batch.support_x, batch.support_y + 2, batch.query_x,
                                batch.query_y + 2)
    proto = ProtoNet(tn.Sequential([tn.layers.Dense(4, input_dim=64, seed=0)]))
    with pytest.raises(ValueError, match=r"ProtoNet.meta_fit expected labels in \[0, 2\]"):
        proto.meta_fit(shifted, iterations=1, meta_batch_size=2)


def test_pretrained_fit_and_meta_fit_seed_checks():
    learner = Pretrained(sine_model())
    x = np.linspace(-1, 1, 20, dtype=np.float32)[:, None]
    with pytest.raises(ValueError, match="Pretrained.fit expected finite x"):
        learner.fit(np.where(x > 0.5, np.inf, x), x, iterations=1)
    with pytest.raises(ValueError, match="Pretrained.fit expected finite targets y"):
        learner.fit(x, np.where(x > 0.5, np.nan, x), iterations=1)
    with pytest.raises(ValueError, match="meta_fit expected seed as None or a non-negative"):
        learner.meta_fit(SinusoidTasks(5), iterations=1, seed=-1)


def test_meta_gradient_refuses_a_batch_emptied_after_it_was_made():
    maml = MAML(sine_model())
    batch = SinusoidTasks(5, seed=0).sample(2)
    batch.support_x, batch.support_y = batch.support_x[:, :0], batch.support_y[:, :0]
    with pytest.raises(ValueError, match="MAML.meta_gradient expected at least one support "
                                         "example per task, received k=0"):
        maml.meta_gradient(batch)  # was a bare ZeroDivisionError
    episodes = _digit_episodes()
    episodes.query_x, episodes.query_y = episodes.query_x[:, :0], episodes.query_y[:, :0]
    learner = MAML(tn.Sequential([tn.layers.Dense(3, input_dim=64, seed=0)]),
                   loss="cross_entropy")
    with pytest.raises(ValueError, match="MAML.meta_gradient expected at least one query "
                                         "example per task, received q=0"):
        learner.meta_gradient(episodes)  # was a NaN loss and a zero gradient
    with pytest.raises(ValueError, match="expected at least one query example per task"):
        learner.meta_fit(episodes, iterations=1, meta_batch_size=2)
    assert learner.history == []


# ------------------------------------- task targets: one check for every learner
def _tiny_net(n_out=1):
    return tn.Sequential([tn.layers.Dense(4, activation="tanh", input_dim=1, dtype="float64",
                                          seed=1), tn.layers.Dense(n_out, dtype="float64", seed=2)])


TARGET_LEARNERS = {
    "MAML": lambda m: MAML(m, inner_lr=0.1), "FOMAML": lambda m: MAML(m, first_order=True),
    "MetaSGD": lambda m: MetaSGD(m), "ANIL": lambda m: ANIL(m, loss="mse", inner_lr=0.1),
    "Reptile": lambda m: Reptile(m, inner_lr=0.1), "Pretrained": lambda m: Pretrained(m),
}


@pytest.mark.parametrize("name", sorted(TARGET_LEARNERS))
def test_every_learner_reads_tasks_by_q_regression_targets_as_tasks_by_q_by_1(name):
    # MAML took (tasks, q) targets as (tasks, q, 1); Reptile's reported loss
    # broadcast (tasks, q, 1) - (tasks, q) instead: a wrong meta-loss for one
    # task (9.87 for MAML's 1.02), a raw NumPy error for three; Pretrained
    # could not pool (tasks, k, 1) support with (tasks, q) query targets
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 5, 1)), rng.standard_normal((3, 5))
    qx, qy = rng.standard_normal((3, 7, 1)), rng.standard_normal((3, 7))
    make = TARGET_LEARNERS[name]
    loss, grad = make(_tiny_net()).meta_gradient(TaskBatch(x, y[..., None], qx, qy[..., None]))
    for batch in (TaskBatch(x, y, qx, qy), TaskBatch(x, y[..., None], qx, qy),
                  TaskBatch(x[:1], y[:1], qx[:1], qy[:1])):
        got_loss, got_grad = make(_tiny_net()).meta_gradient(batch)
        if len(batch) == 3:
            assert got_loss == pytest.approx(loss, rel=1e-12)
            assert np.allclose(got_grad, grad, rtol=1e-12, atol=0)
        else:
            expected = make(_tiny_net()).meta_gradient(
                TaskBatch(x[:1], y[:1, :, None], qx[:1], qy[:1, :, None]))[0]
            assert got_loss == pytest.approx(expected, rel=1e-12)
    learner = make(_tiny_net())
    learner.meta_fit(TaskBatch(x, y, qx, qy), iterations=1, meta_batch_size=3, seed=0)
    assert learner.history == [pytest.approx(loss, rel=1e-12)]
    # query targets that fit no output are refused, not broadcast
    with pytest.raises(ValueError, match=r"expected targets of shape \(3, 7, 1\), "
                                         r"received \(3, 7, 2\)"):
        make(_tiny_net()).meta_gradient(TaskBatch(x, y, qx, np.zeros((3, 7, 2))))


@pytest.mark.parametrize("labels", ["column", "float"])
def test_protonet_refuses_labels_not_integers_of_shape_tasks_by_n(labels):
    # (tasks, n, 1) or float labels were a raw NumPy error deep in the loss
    batch = _digit_episodes()
    fix = (lambda y: y[..., None]) if labels == "column" else (lambda y: y.astype(float))
    bad = TaskBatch(batch.support_x, fix(batch.support_y), batch.query_x, fix(batch.query_y))
    proto = ProtoNet(tn.Sequential([tn.layers.Dense(4, input_dim=64, seed=0)]))
    for call, who in ((proto.meta_gradient, "meta_fit"), (proto.evaluate, "evaluate")):
        with pytest.raises(ValueError, match=rf"ProtoNet.{who} expected integer labels of "
                                             rf"shape \(2, 6\), received"):
            call(bad)


# ------------------------------------------- inner_lr is read at every use
@pytest.mark.parametrize("name", ["MAML", "ANIL"])
def test_changing_inner_lr_after_construction_takes_effect(name):
    # ANIL copied inner_lr * head mask once: a later inner_lr showed in the
    # repr but the meta-gradient and adaptation kept the old rate
    make = {"MAML": lambda lr: MAML(_tiny_net(), inner_lr=lr, inner_steps=2),
            "ANIL": lambda lr: ANIL(_tiny_net(), loss="mse", inner_lr=lr, inner_steps=2)}[name]
    batch = SinusoidTasks(5, seed=0, dtype=np.float64).sample(2)
    changed, fresh = make(0.1), make(0.5)
    changed.inner_lr = 0.5
    assert "inner_lr=0.5" in repr(changed)
    (loss, grad), (expected_loss, expected_grad) = (m.meta_gradient(batch)
                                                    for m in (changed, fresh))
    assert loss == expected_loss and np.array_equal(grad, expected_grad)
    weights = lambda m: [w.tolist() for w in m.get_weights()]
    sx, sy = batch.support_x[0], batch.support_y[0]
    assert weights(changed.adapt(sx, sy)) == weights(fresh.adapt(sx, sy))


@pytest.mark.parametrize("fine_tune", ["head", "all"])
def test_pretrained_inner_lr_changed_after_new_head_takes_effect(fine_tune):
    batch = _digit_episodes()

    def make(lr):
        base = Pretrained(tn.Sequential([tn.layers.Dense(8, activation="relu", input_dim=64,
                                                         seed=0), tn.layers.Dense(6, seed=1)]),
                          loss="cross_entropy", inner_lr=lr)
        return base.new_head(3, fine_tune=fine_tune)
    changed, fresh = make(0.1), make(0.5)
    changed.inner_lr = 0.5
    adapted = [m.adapt(batch.support_x[0], batch.support_y[0], steps=3) for m in (changed, fresh)]
    assert all(np.array_equal(a, b) for a, b in zip(adapted[0].get_weights(),
                                                    adapted[1].get_weights()))
    assert changed.evaluate(batch, steps=3) == fresh.evaluate(batch, steps=3)


# ------------------------------ ProtoNet's distances from direct differences
def _far_episode(dtype, offset, seed=0, n_way=4, k=2, q=3, d=8):
    """Embeddings about ``offset`` from the origin, classes overlapping (loss ~1)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1, n_way, d)) + offset
    ys = np.repeat(np.arange(n_way), k)[None]
    yq = np.repeat(np.arange(n_way), q)[None]
    es = centres[:, ys[0]] + rng.standard_normal((1, n_way * k, d))
    eq = centres[:, yq[0]] + rng.standard_normal((1, n_way * q, d))
    return es.astype(dtype), ys, eq.astype(dtype), yq


def _direct_logits(es, ys, eq, n_way):
    """-|q - c|^2 in float64, the prototypes as class means."""
    es, eq = es[0].astype(np.float64), eq[0].astype(np.float64)
    protos = np.stack([es[ys[0] == c].mean(axis=0) for c in range(n_way)])
    return -((eq[:, None] - protos[None]) ** 2).sum(axis=2)


def test_protonet_logits_do_not_cancel_far_from_the_origin():
    # 2 q.c - |q|^2 - |c|^2 in float32 at ~300 from the origin was off by up to
    # 0.12 on a scale of 16, and some "negative squared distances" were positive
    es, ys, eq, yq = _far_episode(np.float32, 300.0)
    _, _, _, logits = prototype_loss(es, ys, eq, yq, 4)
    exact = _direct_logits(es, ys, eq, 4)
    assert np.all(logits <= 0)
    assert np.abs(logits[0] - exact).max() < 1e-5 * np.abs(exact).max()
    # evaluate (prototype_loss) and adapt().predict (direct differences) agree
    net = tn.Sequential([tn.layers.Dense(8, input_dim=8, seed=0)])
    net.layers[0].b.value[:] = 300.0
    proto = ProtoNet(net)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 8)).astype(np.float32)
    qx = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    y = np.arange(4)[None]
    emb = proto._embed(proto.net.get_params(), np.concatenate([x, qx], axis=1))
    _, _, _, logits = prototype_loss(emb[:, :4], y, emb[:, 4:], y, 4)
    predicted = proto.adapt(x[0], y[0]).predict(qx[0])
    assert np.abs(logits[0] - predicted).max() < 1e-5 * np.abs(predicted).max()


@pytest.mark.parametrize("offset", [0.0, 300.0])
def test_protonet_backward_matches_finite_differences_far_from_the_origin(offset):
    es, ys, eq, yq = _far_episode(np.float64, offset, seed=3)
    loss, ds, dq, _ = prototype_loss(es, ys, eq, yq, 4)

    def f():
        return prototype_loss(es, ys, eq, yq, 4)[0].sum()
    assert rel_error(ds, numerical_grad4(f, es)) < 1e-6
    assert rel_error(dq, numerical_grad4(f, eq)) < 1e-6


@pytest.mark.parametrize("dtype, offset, tol", [(np.float64, 0.0, 1e-12),
                                                (np.float64, 1e6, 1e-8),
                                                (np.float32, 300.0, 1e-4)])
def test_protonet_loss_and_gradients_match_torch(dtype, offset, tol):
    torch = pytest.importorskip("torch")
    es, ys, eq, yq = _far_episode(dtype, offset, seed=4)
    loss, ds, dq, logits = prototype_loss(es, ys, eq, yq, 4)
    # torch in float64 on the very same (possibly float32) values
    tes = torch.tensor(es[0], dtype=torch.float64, requires_grad=True)
    teq = torch.tensor(eq[0], dtype=torch.float64, requires_grad=True)
    protos = torch.stack([tes[torch.tensor(ys[0] == c)].mean(0) for c in range(4)])
    tlogits = -((teq[:, None, :] - protos[None]) ** 2).sum(-1)
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.tensor(yq[0]))
    tloss.backward()
    assert abs(loss[0] - tloss.item()) <= tol * max(tloss.item(), 1e-3)
    for ours, theirs in ((logits[0], tlogits.detach().numpy()), (ds[0], tes.grad.numpy()),
                         (dq[0], teq.grad.numpy())):
        assert np.abs(ours - theirs).max() <= tol * np.abs(theirs).max()


# ------------------------------------------------------- flags and counts
@pytest.mark.parametrize("make", [MAML, ANIL, MetaSGD], ids=lambda c: c.__name__)
def test_first_order_must_be_a_bool(make):
    # bool("no") is True: first_order="no" silently gave FOMAML
    for value in ("no", "False", 0, None):
        with pytest.raises(TypeError, match=rf"{make.__name__} expected first_order as True "
                                            rf"or False, received {value!r}"):
            make(sine_model(), first_order=value)
    assert make(sine_model(), first_order=np.bool_(True)).first_order is True
    assert make(sine_model()).first_order is False


def test_anil_takes_a_numpy_integer_head_layers():
    # np.int64(1) was refused as "expected head_layers in [1, 3], received np.int64(1)"
    anil = ANIL(sine_model(), loss="mse", head_layers=np.int64(2))
    assert anil.head_layers == 2 and type(anil.head_layers) is int
    assert np.array_equal(anil._lr_mask, ANIL(sine_model(), loss="mse", head_layers=2)._lr_mask)
    for bad in (0, 4, True, 1.0):
        with pytest.raises(ValueError, match=r"ANIL expected head_layers in \[1, 3\]"):
            ANIL(sine_model(), head_layers=bad)


def test_prototype_classifier_refuses_non_finite_or_misshapen_inputs():
    # a NaN input gave NaN logits, which predict_classes read as class 0
    batch = _digit_episodes()
    proto = ProtoNet(tn.Sequential([tn.layers.Dense(4, input_dim=64, seed=0)]))
    classifier = proto.adapt(batch.support_x[0], batch.support_y[0])
    qx = batch.query_x[0].copy()
    qx[2, 5] = np.nan
    for call in (classifier.predict, classifier.predict_classes):
        with pytest.raises(ValueError, match="PrototypeClassifier.predict expected finite x, "
                                             "received 1 NaN"):
            call(qx)
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 64\), received \(9, 8, 8\)"):
        classifier.predict(batch.query_x[0].reshape(9, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        classifier.predict(np.zeros((2, 64), int))
    assert classifier.predict_classes(batch.query_x[0]).shape == (9,)


def test_prototype_classifier_labels_a_nan_logit_no_class():
    # NaN prototypes (a diverged embedding) gave NaN logits, read as class 0
    batch = _digit_episodes()
    proto = ProtoNet(tn.Sequential([tn.layers.Dense(4, input_dim=64, seed=0)]))
    classifier = proto.adapt(batch.support_x[0], batch.support_y[0])
    finite = classifier.predict_classes(batch.query_x[0])
    np.testing.assert_array_equal(finite, classifier.predict(batch.query_x[0]).argmax(axis=1))
    classifier.prototypes[1, 0] = np.nan
    assert classifier.predict_classes(batch.query_x[0]).tolist() == [-1] * 9


def test_pretrained_adapt_needs_its_number_of_steps():
    # Pretrained has inner_steps 0: adapt(sx, sy) returned the model unchanged,
    # not fine-tuned (after new_head: a zero head, every logit 0)
    base = Pretrained(sine_model(), inner_lr=0.1)
    task = SinusoidTasks(10, seed=0).sample(1)
    with pytest.raises(TypeError, match=r"Pretrained.adapt expected steps= \(the number of "
                                        r"fine-tuning SGD steps on the support set\)"):
        base.adapt(task.support_x[0], task.support_y[0])
    tuned = base.adapt(task.support_x[0], task.support_y[0], steps=3)
    assert not np.array_equal(tuned.layers[-1].W.value, base.model.layers[-1].W.value)


def test_reptile_refuses_zero_inner_steps():
    # phi = theta after 0 steps: the meta-gradient was zero and meta_fit
    # "trained" for every iteration without changing a weight
    with pytest.raises(ValueError, match="Reptile expected inner_steps >= 1"):
        Reptile(sine_model(), inner_steps=0)
    assert Reptile(sine_model(), inner_steps=np.int64(1)).inner_steps == 1


def test_non_numeric_targets_and_samplers_returning_no_task_batch_are_refused():
    # string targets failed deep in the loss with a numpy UFuncTypeError; a
    # sampler returning something else was an AttributeError
    maml = MAML(sine_model())
    x = np.zeros((5, 1), np.float32)
    with pytest.raises(TypeError, match="MAML.adapt expected support_y of an integer or "
                                        "floating-point dtype, received dtype <U1"):
        maml.adapt(x, np.array(list("abcde")), steps=1)
    with pytest.raises(ValueError, match=r"MAML.adapt expected support_x of shape \(k, 1\), "
                                         r"received \(5, 3\)"):
        maml.adapt(np.zeros((5, 3)), np.zeros(5), steps=1)
    batch = SinusoidTasks(5, seed=0).sample(2)
    batch.query_y = batch.query_y.astype(str)  # changed after the batch was made
    with pytest.raises(TypeError, match="MAML.meta_gradient expected query_y of an integer"):
        maml.meta_gradient(batch)

    class Sampler:
        def sample(self, n, rng=None):
            return {"support_x": np.zeros((n, 5, 1))}
    with pytest.raises(TypeError, match="MAML.meta_fit expected the sampler to return a "
                                        "TaskBatch, received dict"):
        maml.meta_fit(Sampler(), iterations=1)
    assert maml.history == []


def test_pretrained_fit_refuses_empty_data_and_non_numeric_targets():
    # empty x was a numpy reshape error, a scalar y "len() of unsized object",
    # string targets a UFuncTypeError inside the loss
    learner = Pretrained(sine_model())
    with pytest.raises(ValueError, match=r"Pretrained.fit expected at least one example, "
                                         r"received x of shape \(0, 1\)"):
        learner.fit(np.zeros((0, 1), np.float32), np.zeros(0), iterations=1)
    x = np.zeros((4, 1), np.float32)
    with pytest.raises(ValueError, match="Pretrained.fit expected targets y with one entry "
                                         "per example, received a scalar"):
        learner.fit(x, 0.0, iterations=1)
    with pytest.raises(TypeError, match="Pretrained.fit expected targets y of an integer or "
                                        "floating-point dtype"):
        learner.fit(x, np.array(list("abcd")), iterations=1)
    assert learner.history == []


def test_meta_fit_log_every_and_evaluate_steps_are_checked_before_any_work():
    # log_every=0 with verbose was a ZeroDivisionError after the first step had
    # already changed the weights; steps=() gave a result without any entry
    maml = MAML(sine_model())
    before = maml._meta_vector().copy()
    with pytest.raises(ValueError, match="meta_fit expected log_every as a positive integer"):
        maml.meta_fit(SinusoidTasks(5, seed=0), iterations=2, verbose=1, log_every=0)
    assert np.array_equal(maml._meta_vector(), before) and maml.history == []
    with pytest.raises(ValueError, match="evaluate expected at least one number of steps"):
        maml.evaluate(SinusoidTasks(5, seed=0).sample(3), steps=())


@pytest.mark.parametrize("learner", _digit_learners(), ids=lambda l: type(l).__name__)
def test_evaluate_refuses_n_tasks_with_a_task_batch(learner):
    # n_tasks=1 with a batch of 2 was ignored: both tasks were evaluated
    batch = _digit_episodes()
    with pytest.raises(TypeError, match=rf"{type(learner).__name__}.evaluate takes n_tasks= "
                                        rf"with a sampler only; received a TaskBatch of 2 "
                                        rf"tasks and n_tasks=1"):
        learner.evaluate(batch, steps=1, n_tasks=1)
    assert learner.evaluate(batch[:1], steps=1)["n_tasks"] == 1


def test_accuracy_counts_queries_with_non_finite_logits_as_wrong():
    # argmax reads a NaN row as class 0: with 32 of 40 inner loops diverged,
    # evaluate reported accuracy 0.34 (a third of the NaN rows "right" by chance)
    (x, y), _ = tn.data.load_digits()
    episodes = EpisodeSampler(x.astype(np.float32) / 16, y, n_way=3, k_shot=2, n_query=5,
                              seed=0).sample(40)
    maml = MAML(tn.Sequential([tn.layers.Dense(8, activation="relu", input_dim=64, seed=0),
                               tn.layers.Dense(3, seed=1)]), loss="cross_entropy",
                inner_lr=1e12)
    with np.errstate(all="ignore"):
        entry = maml.evaluate(episodes, steps=10)["steps"][10]
        theta = maml._adapt_theta(maml.net.get_params(), episodes.support_x,
                                  episodes.support_y, 10)
        out = maml.net.forward(theta, episodes.query_x)
    finite = np.isfinite(out).all(axis=2)
    assert entry["n_diverged"] >= 10 and not finite.all()
    hits = (out.argmax(axis=2) == episodes.query_y) & finite
    assert entry["accuracy"] == pytest.approx(hits.mean())
    # ProtoNet: distances that overflow to inf give -inf logits, NaN softmax
    proto = ProtoNet(tn.Sequential([tn.layers.Dense(4, input_dim=64, seed=0)]))
    proto.model.layers[0].W.value *= np.float32(1e25)
    with np.errstate(all="ignore"):
        assert proto.evaluate(episodes)["steps"][0]["accuracy"] == 0.0


class _SpoiledAfter:
    """Sinusoid tasks, the ``n``-th batch and later with query targets so
    large the query loss overflows to inf."""

    def __init__(self, n):
        self.n, self.calls = n, 0
        self.tasks = SinusoidTasks(5, seed=0, dtype=np.float64)

    def sample(self, n_tasks, rng=None):
        self.calls += 1
        batch = self.tasks.sample(n_tasks, rng)
        if self.calls >= self.n:
            batch.query_y = batch.query_y * 1e200
        return batch


@pytest.mark.parametrize("name", sorted(TARGET_LEARNERS))
def test_meta_fit_stops_before_a_non_finite_update(name):
    # the update went ahead: every weight of the user's model became NaN, and
    # meta_fit ran its remaining iterations on NaN without a word
    learner, reference = TARGET_LEARNERS[name](_tiny_net()), TARGET_LEARNERS[name](_tiny_net())
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match=(
            rf"{name if name != 'FOMAML' else 'MAML'}.meta_fit: the meta-(loss|gradient) became "
            rf"non-finite at iteration 3/10 \(loss .*\); training stopped before that update")):
        history = learner.meta_fit(_SpoiledAfter(3), iterations=10, meta_batch_size=2, seed=0)
    reference.meta_fit(_SpoiledAfter(99), iterations=2, meta_batch_size=2, seed=0)
    assert len(history) == 3 and not np.isfinite(history[-1])
    assert np.array_equal(learner._meta_vector(), reference._meta_vector())


def test_pretrained_fit_stops_before_a_non_finite_update():
    learner = Pretrained(_tiny_net())
    before = learner._meta_vector().copy()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match=(
            r"Pretrained.fit: the meta-loss became non-finite at iteration 1/5")):
        learner.fit(np.ones((8, 1)), np.full(8, 1e200), iterations=5)
    assert np.array_equal(learner._meta_vector(), before) and len(learner.history) == 1


# ------------------------------------------------------------- loss names
@pytest.mark.parametrize("make", [MAML, ANIL, MetaSGD, Reptile, Pretrained],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("spelling, loss", [("MSE", "mse"), ("Cross-Entropy", "cross_entropy"),
                                            ("CROSS_ENTROPY", "cross_entropy")])
def test_a_loss_name_in_another_case_or_with_a_dash_means_the_same_loss(make, spelling, loss):
    # the name was accepted as LOSSES looks it up (case and "-" insensitive) but
    # kept as given: evaluate and Reptile's meta_fit raised KeyError 'MSE', and
    # "Cross-Entropy" skipped the label checks and sent labels down the regression
    # path of adapt (a bare NumPy IndexError)
    rng = np.random.default_rng(0)
    if loss == "mse":
        layers = lambda: mlp_layers([1, 6, 1], seed=3)  # noqa: E731
        batch = SinusoidTasks(4, seed=0).sample(3).astype(np.float64)
    else:
        layers = lambda: mlp_layers([2, 6, 3], seed=3)  # noqa: E731
        batch = TaskBatch(rng.standard_normal((3, 6, 2)), np.tile([0, 1, 2], (3, 2)),
                          rng.standard_normal((3, 3, 2)), np.tile([0, 1, 2], (3, 1)))
    ours, canonical = make(layers(), loss=spelling), make(layers(), loss=loss)
    assert ours.loss == loss
    ours.loss = spelling  # set later: the same
    assert ours.loss == loss
    with pytest.raises(ValueError, match="unknown loss 'ms'; did you mean 'mse'"):
        ours.loss = "ms"
    assert ours.loss == loss
    for a, b in zip(ours.meta_gradient(batch), canonical.meta_gradient(batch)):
        np.testing.assert_array_equal(a, b)
    assert ours.evaluate(batch, steps=1) == canonical.evaluate(batch, steps=1)
    adapted = ours.adapt(batch.support_x[0], batch.support_y[0], steps=1)
    expected = canonical.adapt(batch.support_x[0], batch.support_y[0], steps=1)
    for p, q in zip(tn.meta.FunctionalMLP(adapted).get_params(),
                    tn.meta.FunctionalMLP(expected).get_params()):
        assert p == q
    if loss == "cross_entropy":
        bad = TaskBatch(batch.support_x, batch.support_y + 1, batch.query_x, batch.query_y)
        with pytest.raises(ValueError, match=r"labels in \[0, 2\]"):
            ours.meta_gradient(bad)


def test_protonet_evaluate_judges_every_chunk_by_the_classes_of_the_whole_batch():
    # each chunk took its n_way from its own support labels: a chunk whose
    # episodes lack the batch's top class got a bare NumPy IndexError for a
    # query of that class (chunk=200 and meta_fit name the missing class)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 3))
    batch = TaskBatch(x, np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 1, 2, 2]]),
                      x, np.tile([0, 1, 2, 2], (3, 1)))
    proto = ProtoNet(mlp_layers([3, 8, 4]))
    for chunk in (1, 2, 200):
        with pytest.raises(ValueError, match="every one of the 3 classes"):
            proto.evaluate(batch, chunk=chunk)
    whole = proto.evaluate(batch[2], chunk=200)
    assert proto.evaluate(batch[[2, 2, 2]], chunk=1)["steps"][0]["loss"] == pytest.approx(
        whole["steps"][0]["loss"])


# ------------------------------------------- settings set after construction
@pytest.mark.parametrize("name", sorted(LEARNERS))
@pytest.mark.parametrize("value, error, match", [
    (5, TypeError, r"an optimizer name \(.*adam.*\) or a callable .*received 5 of type int"),
    (None, TypeError, "received None of type NoneType"),
    ("adma", ValueError, "did you mean 'adam'"),
])
def test_meta_optimizer_is_checked_when_given_and_when_set(name, value, error, match):
    # a bad name was accepted, and first refused by the first meta_fit
    with pytest.raises(error, match=f"{name} expected meta_optimizer.*{match}"):
        LEARNERS[name](sine_model(), meta_optimizer=value)
    learner = LEARNERS[name](sine_model(), meta_optimizer="SGD")
    with pytest.raises(error, match=f"{name} expected meta_optimizer.*{match}"):
        learner.meta_optimizer = value
    assert learner.meta_optimizer == "SGD"


def test_a_meta_optimizer_set_later_is_the_one_that_trains_and_is_saved(tmp_path):
    # the optimizer made at the first meta_fit stayed: meta_optimizer="sgd" set
    # later still stepped with Adam, and save wrote Adam's state under the name
    # "sgd", a file load refused ("SGD.load_state_dict expected the state of a SGD")
    tasks = SinusoidTasks(5, seed=1)
    maml = MAML(sine_model(), meta_lr=0.05)
    maml.meta_fit(tasks, iterations=2, meta_batch_size=2, seed=0)
    adam = maml.optimizer
    maml.meta_optimizer = "adam"  # the same one: kept, with its moments
    assert maml.optimizer is adam
    maml.meta_optimizer = "sgd"
    maml.meta_fit(tasks, iterations=2, meta_batch_size=2, seed=1)
    assert type(maml.optimizer) is tn.optim.SGD and maml.optimizer.lr == 0.05
    # the same steps as a learner that switched before any optimizer existed
    other = MAML(sine_model(), meta_lr=0.05)
    other.meta_fit(tasks, iterations=2, meta_batch_size=2, seed=0)
    other._optimizer = None
    other.meta_optimizer = "sgd"
    other.meta_fit(tasks, iterations=2, meta_batch_size=2, seed=1)
    np.testing.assert_array_equal(maml.net.get_params(), other.net.get_params())
    loaded = tn.meta.load(maml.save(tmp_path / "m.npz"))
    assert loaded.meta_optimizer == "sgd" and type(loaded.optimizer) is tn.optim.SGD


@pytest.mark.parametrize("make", [MAML, ANIL, MetaSGD], ids=lambda c: c.__name__)
def test_first_order_set_later_is_checked_too(make, tmp_path):
    # a plain attribute: first_order="no" set later silently gave FOMAML (bool("no")
    # is True) and was saved to a file load refused
    learner = make(sine_model(), loss="mse")
    with pytest.raises(TypeError, match=rf"{make.__name__} expected first_order as True or "
                                        rf"False, received 'no'"):
        learner.first_order = "no"
    assert learner.first_order is False
    learner.first_order = np.bool_(True)
    assert learner.first_order is True
    assert tn.meta.load(learner.save(tmp_path / "m.npz")).first_order is True


def test_anil_head_layers_set_later_is_checked_and_adapts_those_layers(tmp_path):
    # a plain attribute: head_layers = 2 set later was saved, but the inner loop
    # still adapted the one layer of the constructor's mask
    anil = ANIL(sine_model(), loss="mse")
    anil.head_layers = np.int64(2)
    assert anil.head_layers == 2
    np.testing.assert_array_equal(anil._lr_mask,
                                  ANIL(sine_model(), loss="mse", head_layers=2)._lr_mask)
    for bad in (0, 4, True, 1.0):
        with pytest.raises(ValueError, match=rf"ANIL expected head_layers in \[1, 3\], "
                                             rf"received {bad!r}"):
            anil.head_layers = bad
    assert anil.head_layers == 2
    loaded = tn.meta.load(anil.save(tmp_path / "a.npz"))
    assert loaded.head_layers == 2
    np.testing.assert_array_equal(loaded._lr_mask, anil._lr_mask)


# --------------------------------------------------------- evaluate's steps
@pytest.mark.parametrize("make", [lambda: MAML(sine_model()), lambda: ProtoNet(sine_model())],
                         ids=["MAML", "ProtoNet"])
@pytest.mark.parametrize("steps, error, match", [
    (None, ValueError, "received None"),                # was "'NoneType' object is not iterable"
    (np.array(1), ValueError, "received array"),        # was "iteration over a 0-d array"
    ((1, -1), ValueError, "received -1"),
    ([1, "2"], ValueError, "received '2'"),
    ((), ValueError, "at least one number of steps"),
])
def test_evaluate_names_what_it_expected_of_steps(make, steps, error, match):
    # ProtoNet took any sequence as 0 and reported it under 0 (steps=(1, 10)
    # had no entry 1 nor 10, and (1, -1) passed)
    tasks = SinusoidTasks(5, seed=0).sample(2)
    if "Proto" in repr(make()):
        tasks = TaskBatch(tasks.support_x, np.zeros((2, 5), int), tasks.query_x,
                          np.zeros((2, 5), int))
    with pytest.raises(error, match=f"evaluate expected .*{match}"):
        make().evaluate(tasks, steps=steps)


def test_protonet_evaluate_reports_its_one_result_under_every_number_of_steps():
    episodes = _digit_episodes(n_tasks=4)
    proto = ProtoNet(mlp_layers([64, 8], seed=1))
    result = proto.evaluate(episodes, steps=(10, 0, 1, 1))
    assert sorted(result["steps"]) == [0, 1, 10]
    assert result["steps"][0] == result["steps"][1] == result["steps"][10] == \
        proto.evaluate(episodes)["steps"][0]
    assert list(proto.evaluate(episodes, steps=3)["steps"]) == [3]


def test_pretrained_fit_checks_all_its_data_before_the_first_step():
    # targets were checked one mini-batch at a time, as FunctionalMLP: a label
    # out of range at row 150 stopped training after 29 steps had changed the
    # weights; a wrong feature count was named in the mini-batch's (1, 8, 2) shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    y = rng.integers(0, 3, 200)
    y[150] = 7
    learner = Pretrained(mlp_layers([2, 5, 3]), loss="cross_entropy")
    before = learner.net.get_params().copy()
    with pytest.raises(ValueError, match=r"Pretrained.fit expected labels in \[0, 2\] for 3 "
                                         r"classes, received values in \[0, 7\]"):
        learner.fit(x, y, iterations=50, batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"Pretrained.fit expected labels of shape \(200,\), "
                                         r"received \(200, 1\)"):
        learner.fit(x, y[:, None] % 3, iterations=50, batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"Pretrained.fit expected x of shape \(n, 2\), "
                                         r"received \(200, 3\)"):
        learner.fit(np.zeros((200, 3)), y % 3, iterations=5, batch_size=8, seed=0)
    np.testing.assert_array_equal(learner.net.get_params(), before)
    assert learner.history == []
    # labels as integral floats are read as adapt reads them
    learner.fit(x, (y % 3).astype(float), iterations=2, batch_size=8, seed=0)
    regression = Pretrained(mlp_layers([2, 5, 2]))
    with pytest.raises(ValueError, match=r"Pretrained.fit expected targets y of shape "
                                         r"\(200, 2\), received \(200, 1\)"):
        regression.fit(x, np.zeros((200, 1)), iterations=2)


@pytest.mark.parametrize("which, labels, error, match", [
    ("query", [[0, 1, 0, -1]], ValueError, r"labels in \[0, 1\] .*received values in \[-1, 1\]"),
    ("query", [[0, 1, 0, 5]], ValueError, r"received values in \[0, 5\]"),
    ("support", [[0, 0, 1, 2]], ValueError, r"received values in \[0, 2\]"),
    ("support", [[0, 0, 1]], ValueError, r"support_y of shape \(1, 4\)"),
    ("query", [[0.0, 1.0, 0.0, 1.0]], ValueError, "integer query_y"),
])
def test_prototype_loss_refuses_labels_outside_its_classes(which, labels, error, match):
    # a query label of -1 was scored against the last class (NumPy's negative
    # index), 5 was a bare IndexError, and a support label of n_way was left
    # out of every prototype without a word
    e = np.random.default_rng(0).standard_normal((1, 4, 3))
    ys, yq = np.array([[0, 0, 1, 1]]), np.array([[0, 1, 0, 1]])
    if which == "query":
        yq = np.array(labels)
    else:
        ys = np.array(labels)
    with pytest.raises(error, match=f"prototype_loss expected .*{match}"):
        prototype_loss(e, ys, e, yq, 2)


@pytest.mark.parametrize("args, error, match", [
    (dict(n_way=0), ValueError, "n_way as a positive integer, received 0"),
    (dict(n_way=2.0), TypeError, "n_way as a positive integer, received 2.0"),
    (dict(emb_query=np.zeros((1, 4, 5))), ValueError,
     r"emb_query of shape \(1, q, 3\) .*received \(1, 4, 5\)"),
    (dict(emb_query=np.zeros((2, 4, 3))), ValueError,
     r"emb_query of shape \(1, q, 3\) .*received \(2, 4, 3\)"),
    (dict(emb_support=np.zeros((4, 3))), ValueError, "emb_support with 3 dimensions"),
    (dict(emb_support=np.zeros((1, 4, 3), int)), TypeError, "emb_support of a floating"),
])
def test_prototype_loss_names_misshapen_embeddings_and_a_bad_n_way(args, error, match):
    e = np.random.default_rng(0).standard_normal((1, 4, 3))
    base = dict(emb_support=e, support_y=np.array([[0, 0, 1, 1]]), emb_query=e,
                query_y=np.array([[0, 1, 0, 1]]), n_way=2)
    with pytest.raises(error, match=f"prototype_loss expected .*{match}"):
        prototype_loss(**{**base, **args})


def test_summarize_needs_real_numbers():
    # summarize([]) was (nan, nan) with NumPy's "Mean of empty slice" warning,
    # and strings a bare "could not convert string to float"
    with pytest.raises(ValueError, match=r"summarize expected at least one value, received "
                                         r"shape \(0,\)"):
        summarize([])
    with pytest.raises(TypeError, match="summarize expected values of an integer or "
                                        "floating-point dtype, received dtype <U1"):
        summarize(["a"])
    assert summarize([2.0]) == (2.0, pytest.approx(float("nan"), nan_ok=True))
    mean, half = summarize([1, 2, 3])
    assert mean == 2.0 and half == pytest.approx(1.96 / np.sqrt(3))


@pytest.mark.parametrize("verbose", ["yes", 2, -1, None, 0.5])
def test_meta_fit_verbose_is_0_or_1(verbose):
    # any truthy value printed, any other was silent; model.fit refuses these too
    maml = MAML(sine_model())
    with pytest.raises(ValueError, match=f"meta_fit expected verbose 0 or 1, received "
                                         f"{verbose!r}"):
        maml.meta_fit(SinusoidTasks(5, seed=0), iterations=1, verbose=verbose)
    assert maml.history == []


def test_meta_fit_undoes_an_update_that_overflows_the_weights():
    # a finite meta-gradient times a huge meta_lr wrote inf into the float32
    # weights; the next iteration's loss was NaN and stopped training, so the
    # user's model was left infinite although "the meta-parameters keep their
    # last finite values" (reference: never trained)
    def learner():
        return MAML(mlp_layers([1, 8, 1], dtype="float32"), meta_optimizer="sgd",
                    meta_lr=3e38)
    tasks = SinusoidTasks(5, seed=0)
    spoiled, reference = learner(), learner()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match=(
            r"MAML.meta_fit: the update of iteration 1/5 made meta-parameters non-finite "
            r"\(meta_lr 3e\+38\); it was undone and training stopped")):
        spoiled.meta_fit(tasks, iterations=5, meta_batch_size=2, seed=0)
    assert np.isfinite(spoiled._meta_vector()).all()
    np.testing.assert_array_equal(spoiled._meta_vector(), reference._meta_vector())
    assert len(spoiled.history) == 1 and np.isfinite(spoiled.history).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_an_undone_update_leaves_the_meta_optimizer_as_it_was(optimizer):
    # the values were put back but the optimizer kept the undone step: Adam's
    # step count 1 and its moments, SGD's momentum buffer
    def learner():
        factory = ((lambda params: tn.optim.SGD(params, lr=1e39, momentum=0.9))
                   if optimizer == "sgd" else "adam")
        return MAML(mlp_layers([1, 8, 1], dtype="float32"), meta_optimizer=factory,
                    meta_lr=1e39)
    spoiled, reference = learner(), learner()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="it was undone"):
        spoiled.meta_fit(SinusoidTasks(5, seed=0), iterations=3, meta_batch_size=2, seed=0)
    got, want = spoiled.optimizer.state_dict(), reference.optimizer.state_dict()
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_an_undone_update_with_a_step_only_meta_optimizer():
    # a factory may return any object with step(); undoing an overflowing
    # update must not need state_dict/load_state_dict from it
    class StepOnly:
        def __init__(self, params):
            self.params, self.steps = params, 0

        def step(self):
            self.steps += 1
            for p in self.params:
                p.value -= np.float32(3e38) * p.grad

    def learner():
        return MAML(mlp_layers([1, 8, 1], dtype="float32"), meta_optimizer=StepOnly)
    spoiled, reference = learner(), learner()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="it was undone"):
        spoiled.meta_fit(SinusoidTasks(5, seed=0), iterations=3, meta_batch_size=2, seed=0)
    np.testing.assert_array_equal(spoiled._meta_vector(), reference._meta_vector())
    assert spoiled.optimizer.steps == 1


def test_pretrained_fit_undoes_an_update_that_overflows_the_weights():
    learner = Pretrained(mlp_layers([1, 8, 1], dtype="float32"), meta_optimizer="sgd",
                         meta_lr=3e38)
    x = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    before = learner._meta_vector().copy()
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match=(
            r"Pretrained.fit: the update of iteration 1/5 made meta-parameters non-finite")):
        learner.fit(x, 3 * x, iterations=5, batch_size=16)
    np.testing.assert_array_equal(learner._meta_vector(), before)
    assert len(learner.history) == 1
