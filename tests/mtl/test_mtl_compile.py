"""compile of a multi-task model: the optimizer it binds (or keeps), the
weighting's group, and what the weighting's parameters take part in."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import Dense


def hard(dtype="float32"):
    return tn.mtl.HardSharing((4,), trunk=[Dense(6, seed=0, name="trunk")],
                              heads={"a": [Dense(1, seed=1)], "b": [Dense(1, seed=2)]},
                              dtype=dtype)


def xy(n=16, scale_a=1.0):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, {"a": scale_a * rng.standard_normal((n, 1)).astype(np.float32),
               "b": rng.standard_normal((n, 1)).astype(np.float32)}


def _groups(optimizer):
    return [([id(p) for p in g["params"]], g["lr"], g["weight_decay"])
            for g in optimizer.param_groups]


# ------------------------------------------------------------ user's groups
def test_compile_keeps_the_groups_and_rates_the_user_bound_and_adds_the_weightings():
    model = hard()
    trunk, heads = model.shared_parameters(), model.task_parameters("a") + \
        model.task_parameters("b")
    opt = tn.optim.AdamW([{"params": trunk, "lr": 1e-4}, {"params": heads, "lr": 1e-2}],
                         weight_decay=0.1)
    model.compile(opt, loss="mse", weighting="uncertainty", weighting_lr=0.05)
    assert model.optimizer is opt
    assert _groups(opt) == [([id(p) for p in trunk], 1e-4, 0.1),
                            ([id(p) for p in heads], 1e-2, 0.1),
                            ([id(model.weighting.log_vars)], 0.05, 0.0)]
    before = [p.value.copy() for p in model.parameters()]
    model.fit(*xy(), epochs=1, verbose=0)
    assert all(not np.array_equal(b, p.value) for b, p in zip(before, model.parameters()))
    # compiled again with the same optimizer and a new weighting: the old
    # weighting's log-variances leave it, the new ones come in, the groups stay
    old = model.weighting.log_vars
    model.compile(opt, loss="mse", weighting="uncertainty", weighting_lr=0.05)
    assert model.weighting.log_vars is not old
    assert _groups(opt) == [([id(p) for p in trunk], 1e-4, 0.1),
                            ([id(p) for p in heads], 1e-2, 0.1),
                            ([id(model.weighting.log_vars)], 0.05, 0.0)]
    model.compile(opt, loss="mse")  # no learned parameters now: their group goes
    assert len(opt.param_groups) == 2


def test_discriminative_groups_survive_compile_fit_and_save(tmp_path):
    model = hard()
    groups = tn.transfer.discriminative_param_groups(model, 1e-2, factor=4.0)
    model.compile(tn.optim.SGD(groups, lr=1e-2), loss="mse")
    rates = [g["lr"] for g in model.optimizer.param_groups]
    assert len(set(rates)) == len(rates) > 1
    model.fit(*xy(), epochs=1, verbose=0)
    loaded = tn.load(model.save(tmp_path / "m.npz"))
    assert [g["lr"] for g in loaded.optimizer.param_groups] == rates


class _GroupRates(tn.callbacks.Callback):
    """Every group's rate at the start of each epoch (after the schedule's)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append([g["lr"] for g in self.model.optimizer.param_groups])


@pytest.mark.parametrize("weighting_lr", [0.04, None])
def test_the_weightings_group_starts_where_a_running_schedule_would_set_it(weighting_lr):
    # the group compile adds for the weighting's parameters started at weighting_lr
    # (or the constructor's rate) whatever the schedule's decay so far, and the
    # schedule's next step then gave it the model's rate, weighting_lr lost
    opt = tn.optim.SGD(lr=0.1)
    schedule = tn.callbacks.LearningRateScheduler(tn.optim.StepLR(opt, 1, gamma=0.5))
    model = hard()
    model.compile(opt, loss="mse")
    model.fit(*xy(), epochs=2, verbose=0, callbacks=[schedule])
    assert opt.lr == 0.05
    model.compile(opt, loss="mse", weighting="uncertainty", weighting_lr=weighting_lr)
    base = 0.1 if weighting_lr is None else weighting_lr
    assert opt.param_groups[1]["lr"] == base * 0.5 and opt.param_groups[1]["initial_lr"] == base
    log = _GroupRates()
    model.fit(*xy(), epochs=4, initial_epoch=2, verbose=0, callbacks=[schedule, log])
    np.testing.assert_allclose(log.rates, [[0.025, base / 4], [0.0125, base / 8]], rtol=1e-15)
    # the weighting's group leaves (the last one): the schedule goes on with the rest
    model.compile(opt, loss="mse")
    log = _GroupRates()
    model.fit(*xy(), epochs=5, initial_epoch=4, verbose=0, callbacks=[schedule, log])
    assert log.rates == [[0.00625]]


def test_a_schedule_made_before_compile_keeps_the_weightings_own_rate():
    # made unbound, its one base rate was given to every group, the weighting's too
    opt = tn.optim.SGD(lr=0.1)
    schedule = tn.callbacks.LearningRateScheduler(tn.optim.StepLR(opt, 1, gamma=0.5))
    model = hard()
    model.compile(opt, loss="mse", weighting="gradnorm", weighting_lr=0.04)
    log = _GroupRates()
    model.fit(*xy(), epochs=3, verbose=0, callbacks=[schedule, log])
    np.testing.assert_allclose(log.rates, [[0.1, 0.04], [0.05, 0.02], [0.025, 0.01]],
                               rtol=1e-15)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.04]


def test_an_optimizer_bound_to_another_models_parameters_is_refused():
    other = hard()
    model = hard()
    with pytest.raises(ValueError, match=r"compile received an optimizer bound to \d+ "
                                         r"parameter\(s\) \(of \d+ bound\) that are neither "
                                         r"this model's nor ones it released"):
        model.compile(tn.optim.Adam(other.parameters()), loss="mse")
    assert not model.compiled
    # its own parameters (a subset too) are fine
    model.compile(tn.optim.Adam(model.shared_parameters()), loss="mse")
    assert [id(p) for p in model.optimizer.params] == \
        [id(p) for p in model.shared_parameters()]


def test_an_optimizer_holding_the_parameters_a_layer_built_again_replaced_is_bound_again():
    # a layer's build called again (a layer of the user's re-initialising so)
    # replaced its parameters unrecorded: the optimizer bound to the model's
    # parameters before was refused as another model's, where
    # Sequential.reset_parameters' was bound again
    model = hard()
    opt = tn.optim.Adam(model.parameters())
    trunk = model.get_layer("trunk")
    trunk.build(trunk.input_shape)
    model.compile(opt, loss="mse")
    assert model.optimizer is opt
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]
    assert tn.param.is_flat(model.parameters())
    model.fit(*xy(), epochs=1, verbose=0)
    assert opt.state[trunk.W]["step"] == 1


@pytest.mark.parametrize("subset", [False, True])
def test_an_optimizer_the_user_bound_trains_a_layer_added_inside_the_model_after_compile(
        subset):
    # kept as the user bound it at the first compile, it was kept so again after
    # a layer was added to a head (nothing released): the new layer never trained.
    # A trunk the user left out stays out.
    head = tn.Sequential([Dense(1, seed=1)])
    trunk = Dense(6, seed=0, name="trunk")
    model = tn.mtl.HardSharing((4,), trunk=[trunk], heads={"a": [head], "b": [Dense(1, seed=2)]})
    left_out = {id(p) for p in trunk.parameters()} if subset else set()
    opt = tn.optim.Adam([p for p in model.parameters() if id(p) not in left_out], lr=0.01)
    model.compile(opt, loss="mse")
    new = Dense(1, seed=3)
    head.add(new)
    model.compile(opt, loss="mse")
    assert sorted(map(id, opt.params)) == sorted(
        id(p) for p in model.parameters() if id(p) not in left_out)
    w = new.W.value.copy()
    before = [p.value.copy() for p in trunk.parameters()]
    model.fit(*xy(), epochs=1, verbose=0)
    assert not np.array_equal(new.W.value, w)
    unchanged = [np.array_equal(p.value, b) for p, b in zip(trunk.parameters(), before)]
    assert unchanged == [subset] * len(before)


def test_a_refused_compile_leaves_the_weighting_training_as_before():
    # the weighting used to bind anew (new log-variances) before the optimizer was
    # refused: the model kept its old optimizer, which held the old ones, and the
    # new log-variances never trained
    model = hard()
    model.compile("adam", loss="mse", weighting="uncertainty")
    weighting = model.weighting
    before = [id(p) for p in weighting.parameters()]
    other = hard()
    other.compile("adam", loss="mse")
    with pytest.raises(ValueError, match="neither this model's"):
        model.compile(other.optimizer, loss="mse", weighting=weighting)
    assert [id(p) for p in weighting.parameters()] == before
    held = {id(p) for p in model.optimizer.params}
    assert all(id(p) in held for p in weighting.parameters())
    model.fit(*xy(scale_a=5.0), epochs=2, verbose=0)
    assert all(np.any(p.value != 0) for p in weighting.parameters())


def test_an_unbound_optimizer_is_bound_to_every_parameter_then_the_weightings():
    model = hard()
    model.compile(tn.optim.Adam(lr=1e-3), loss="mse", weighting="gradnorm")
    assert _groups(model.optimizer) == [([id(p) for p in model.parameters()], 1e-3, 0.0),
                                        ([id(model.weighting.weights)], 1e-3, 0.0)]


# ------------------------------------------- a task that reaches no shared parameter
def _disjoint():
    """Tasks a and b share a trunk; c is a head on an input of its own."""
    i1, i2 = tn.mtl.Input((4,), name="i1"), tn.mtl.Input((3,), name="i2")
    z = Dense(8, activation="relu", seed=0, name="trunk")(i1)
    return tn.mtl.Model([i1, i2], {"a": Dense(1, seed=1)(z), "b": Dense(1, seed=2)(z),
                                   "c": Dense(1, seed=3, name="c_head")(i2)})


def _disjoint_data(n=64):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 4)).astype(np.float32),
          rng.standard_normal((n, 3)).astype(np.float32)]
    return xs, {t: rng.standard_normal((n, 1)).astype(np.float32) for t in "abc"}


@pytest.mark.parametrize("weighting", ["mgda", "mgda_ub"])
def test_a_task_that_reaches_no_shared_parameter_does_not_stop_the_trunk(weighting):
    # its shared-gradient row is zero: MGDA took it as the min-norm point
    # (alpha_c = 1), and the trunk never moved
    model = _disjoint()
    model.compile("adam", loss="mse", weighting=weighting)
    xs, y = _disjoint_data()
    trunk, head = model.get_layer("trunk").W, model.get_layer("c_head").W
    w0, h0 = trunk.value.copy(), head.value.copy()
    history = model.fit(xs, y, epochs=2, verbose=0)
    assert np.abs(trunk.value - w0).max() > 1e-3
    assert np.abs(head.value - h0).max() > 1e-3  # its head trains on its own loss
    # it has no share of the shared update, and logs a weight (alpha_c) of 0
    assert history.history["c/weight"] == [0.0, 0.0]
    assert all(v > 0 for t in "ab" for v in history.history[f"{t}/weight"])


def test_gradnorm_leaves_a_task_that_reaches_no_shared_parameter_out_of_its_means():
    # its G_c = 0 pulled the mean norm, and so every other weight's target, down
    model = _disjoint()
    model.compile("sgd", loss="mse", weighting="gradnorm")
    i1 = tn.mtl.Input((4,), name="i1")
    z = Dense(8, activation="relu", seed=0, name="trunk")(i1)
    pair = tn.mtl.Model(i1, {"a": Dense(1, seed=1)(z), "b": Dense(1, seed=2)(z)})
    pair.compile("sgd", loss="mse", weighting="gradnorm")
    xs, y = _disjoint_data(8)
    model.train_step(xs, y, {t: None for t in "abc"}, np.arange(8))
    pair.train_step(xs[:1], {t: y[t] for t in "ab"}, {t: None for t in "ab"}, np.arange(8))
    assert model.weighting.weights.grad[2] == 0
    np.testing.assert_allclose(model.weighting.weights.grad[:2], pair.weighting.weights.grad,
                               rtol=1e-5)


# --------------------------------------------------------------- clipping
@pytest.mark.parametrize("weighting", ["uncertainty", "gradnorm"])
def test_max_grad_norm_clips_the_models_gradients_not_the_weightings(weighting):
    # uncertainty's log-variance gradient (1 - L_t, about 900 here) counted in
    # the norm and shrank the network's step 25 times
    x, y = xy(32, scale_a=30.0)
    steps = {}
    for name in ("equal", weighting):
        model = hard("float64")
        model.compile(tn.optim.SGD(lr=1e-2, max_grad_norm=1.0), loss="mse", weighting=name)
        before = [p.value.copy() for p in model.parameters()]
        extra = [p.value.copy() for p in model.weighting.parameters()]
        model.train_step([x.astype(np.float64)], y, {"a": None, "b": None}, np.arange(32))
        steps[name] = np.sqrt(sum(((b - p.value) ** 2).sum()
                                  for b, p in zip(before, model.parameters()))) / 1e-2
    assert steps["equal"] == pytest.approx(1.0, rel=1e-6)
    # the weights start equal (s_t = 0; w_t = 1): the network's step is the same
    assert steps[weighting] == pytest.approx(1.0, rel=1e-6)
    if weighting == "uncertainty":  # its own step is not clipped: 1e-2 * (L_a - 1), L_a ~ 900
        moved = (model.weighting.log_vars.value - extra[0]) / 1e-2
        assert moved[0] > 100


# ---------------------------------------------------- one weighting, one model
def test_a_weighting_instance_another_model_is_compiled_with_is_refused():
    # binding it again reset the first model's GradNorm and took its weights
    # out of that model's optimizer: it trained on, its weights frozen at 1
    x, y = xy(32)
    w = tn.mtl.weighting.GradNorm()
    first, second = hard(), hard()
    first.compile("adam", loss="mse", weighting=w, weighting_lr=0.05)
    with pytest.raises(ValueError, match=r"compile received a GradNorm weighting that model "
                                         r"'.*' is compiled with.*a new one"):
        second.compile("adam", loss="mse", weighting=w)
    assert not second.compiled
    history = first.fit(x, y, epochs=2, verbose=0)
    assert history.history["a/weight"][1] != 1.0
    first.compile("adam", loss="mse", weighting=w)  # the same model again: fine
    assert first.weighting is w and any(p is w.weights for p in first.optimizer.params)
    first.compile("adam", loss="mse", weighting="dwa")  # w is free now
    second.compile("adam", loss="mse", weighting=w)
    assert second.weighting is w


# ------------------------------------------------------------------ delta_m
class _ErrorRate(tn.metrics.Metric):
    """A lower-is-better metric whose name says nothing of its direction."""

    name = "wrongness"
    higher_is_better = False

    def __call__(self, pred, target):
        return float(np.mean(np.abs(pred - target)))


@pytest.mark.parametrize("key", ["val_loss", "val_mae", "val_mse"])
def test_delta_m_reads_a_validation_keys_direction_from_its_training_key(key):
    # "val_loss" was read as higher-is-better: a 10 % cut scored -10 %
    seq = tn.Sequential([Dense(1, input_dim=3)])
    seq.compile("sgd", loss="mse", metrics=["mae"])
    for model in (None, seq):
        assert tn.mtl.delta_m({key: 0.9}, {key: 1.0}, model=model) == pytest.approx(10.0)


def test_delta_m_reads_a_custom_validation_metrics_direction_from_the_model():
    model = hard()
    model.compile("sgd", loss="mse", metrics=[_ErrorRate()])
    for key in ("a/wrongness", "val_a/wrongness"):
        assert tn.mtl.delta_m({key: 0.9}, {key: 1.0}, model=model) == pytest.approx(10.0)
    seq = tn.Sequential([Dense(1, input_dim=3)])
    seq.compile("sgd", loss="mse", metrics=[_ErrorRate()])
    assert tn.mtl.delta_m({"val_wrongness": 0.9}, {"val_wrongness": 1.0},
                          model=seq) == pytest.approx(10.0)
    # a task named "val_x" (refused now beside a task "x", but a file saved
    # before loads) is its own task, not the validation of task "x"
    rightness = _ErrorRate()
    rightness.higher_is_better = True
    i = tn.mtl.Input((3,))
    with pytest.warns(UserWarning, match="named like the validation logs"):
        named = tn.mtl.Model(i, {"val_x": Dense(1)(i), "x": Dense(1)(i)}, _from_file=True)
    named.compile("sgd", loss="mse", metrics={"val_x": [_ErrorRate()], "x": [rightness]})
    for key, gain in (("val_x/wrongness", 10.0), ("x/wrongness", -10.0)):
        assert tn.mtl.delta_m({key: 0.9}, {key: 1.0}, model=named) == pytest.approx(gain)


# ------------------------------------------------------ unfreezing after compile
@pytest.mark.parametrize("weighting", ["equal", "mgda", "uncertainty"])
def test_a_layer_unfrozen_after_compile_trains_as_in_sequential(weighting):
    # compile bound the trainable parameters only: the trunk unfrozen later
    # never moved (Sequential trains it)
    x, y = xy()
    model = hard()
    trunk = model.get_layer("trunk")
    trunk.trainable = False
    if weighting == "mgda":
        with pytest.warns(UserWarning, match="no trainable parameter of this model is shared"):
            model.compile("adam", loss="mse", weighting=weighting)
    else:
        model.compile("adam", loss="mse", weighting=weighting)
    w0 = trunk.W.value.copy()
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(trunk.W.value, w0)
    trunk.trainable = True
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.abs(trunk.W.value - w0).max() > 1e-4
    if weighting == "mgda":  # MGDA combines the shared gradients (alpha sums to 1; frozen,
        # the plain backward pass logs weights of 1 each)
        assert history.history["a/weight"][-1] + history.history["b/weight"][-1] == \
            pytest.approx(1.0)
    trunk.trainable = False  # and frozen again: it stays
    w1 = trunk.W.value.copy()
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(trunk.W.value, w1)


def test_gradual_unfreezing_within_fit_reaches_mgdas_shared_combination():
    x, y = xy()
    model = tn.mtl.HardSharing((4,), trunk=[Dense(6, seed=0, name="t1"),
                                            Dense(6, seed=3, name="t2")],
                               heads={"a": [Dense(1, seed=1)], "b": [Dense(1, seed=2)]})
    model.compile("adam", loss="mse", weighting="mgda")
    w0 = model.get_layer("t1").W.value.copy()
    combined = []  # how many shared parameters MGDA combined in each epoch

    class Spy(tn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            combined.append(len(model._shared))

    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[tn.transfer.GradualUnfreezing(every=1), Spy()])
    assert np.abs(model.get_layer("t1").W.value - w0).max() > 1e-4
    # none while the trunk is frozen, then t2's W and b, then t1's too
    assert combined[0] == 0 and combined[-1] == 4 and 2 in combined
    assert combined == sorted(combined)


# ------------------------------------------------------------------- minor
@pytest.mark.parametrize("merge", [tn.mtl.Concatenate, tn.mtl.Add])
def test_a_merges_backward_given_a_list_says_it_takes_one_array(merge):
    # it read dy.shape before its check: AttributeError on a list
    layer = merge()
    layer.build([(4,), (4,)])
    layer.forward([np.ones((2, 4), np.float32)] * 2)
    width = layer.output_shape[-1]
    with pytest.raises(TypeError, match=rf"expected dy as one array, the gradient of its one "
                                        rf"output \(of shape \(2, {width}\)\), received a "
                                        rf"list of 1"):
        layer.backward([np.ones((2, width))])
    with pytest.raises(ValueError, match=rf"expected dy of shape \(2, {width}\)"):
        layer.backward(np.ones((3, width)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        unused = merge()
        unused.build([(4,), (4,)])
        unused.backward(np.ones((2, width)))
    assert [g.shape for g in layer.backward(np.ones((2, width)))] == [(2, 4), (2, 4)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -np.inf])
def test_delta_m_refuses_a_non_finite_metric_as_it_refuses_a_non_finite_baseline(bad):
    with pytest.raises(ValueError, match=rf"delta_m expected a finite metric 'a/mse', "
                                         rf"received {bad}"):
        tn.mtl.delta_m({"a/mse": bad, "b/mse": 1.0}, {"a/mse": 1.0, "b/mse": 1.0})


# ------------------------------------------------------------------ astype
@pytest.mark.parametrize("weighting", ["equal", "uncertainty", "gradnorm"])
def test_astype_keeps_the_flat_layout_and_trains_as_a_model_compiled_in_its_dtype(weighting):
    # astype left every parameter an array of its own until the next compile
    # (the optimizer stepped them one call each: the same numbers, slower),
    # and the weighting's learned parameters in the old dtype (the only ones
    # training in it). Compiled, then converted: flat again, and training as
    # the model converted first and compiled then, to the bit
    x, y = xy()
    model, fresh = hard(), hard()
    model.compile(tn.optim.Adam(lr=0.01), loss="mse", weighting=weighting)
    for dtype in ("float64", "float32"):
        model.astype(dtype)
        assert tn.param.is_flat(model.parameters())
        assert all(p.dtype == dtype for p in model.optimizer_parameters())
        assert model.weighting.dtype == dtype
    model.astype("float64")
    fresh.astype("float64")
    fresh.compile(tn.optim.Adam(lr=0.01), loss="mse", weighting=weighting)
    for m in (model, fresh):
        m.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    assert [len(runs) for _, runs in model.optimizer._plans.values()] == [1] * len(
        model.optimizer.param_groups)  # each group one fused run
    for p, q in zip(model.optimizer_parameters(), fresh.optimizer_parameters(), strict=True):
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p.value, q.value)


@pytest.mark.parametrize("weighting, name", [("uncertainty", "log_vars"),
                                             ("gradnorm", "weights")])
def test_the_weightings_parameters_follow_astype_with_their_optimizer_state(weighting, name):
    x, y = xy()
    model = hard()
    model.compile(tn.optim.Adam(lr=0.01), loss="mse", weighting=weighting)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    param = getattr(model.weighting, name)
    learned, moment = param.value.copy(), model.optimizer.state[param]["exp_avg"].copy()
    model.astype("float64")
    assert getattr(model.weighting, name) is param  # the same parameter, still the optimizer's
    assert param.dtype == param.grad.dtype == np.float64
    np.testing.assert_array_equal(param.value, learned)  # exact: float32 into float64
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    state = model.optimizer.state[param]
    assert state["step"] == 4 and state["exp_avg"].dtype == np.float64
    assert not np.array_equal(state["exp_avg"], moment)
    # (an mtl.Model called inside another converts with it)
    inp = tn.mtl.Input((4,))
    outer = tn.mtl.Model(inp, model(inp))
    outer.astype("float32")
    assert param.dtype == model.weighting.dtype == np.float32


@pytest.mark.parametrize("weighting", ["equal", "uncertainty", "gradnorm"])
@pytest.mark.parametrize("subset", [False, True])
def test_fit_binds_a_layer_added_to_a_head_after_compile(subset, weighting):
    # Sequential.fit binds its optimizer again; mtl.Model.fit did not: a layer
    # added to a head after compile, then fit without compile, never trained.
    # A trunk the user left out stays out; the weighting's learned parameters
    # keep their group and their moments
    head = tn.Sequential([Dense(1, seed=1)])
    trunk = Dense(6, seed=0, name="trunk")
    model = tn.mtl.HardSharing((4,), trunk=[trunk], heads={"a": [head], "b": [Dense(1, seed=2)]})
    left_out = {id(p) for p in trunk.parameters()} if subset else set()
    opt = tn.optim.Adam([p for p in model.parameters() if id(p) not in left_out], lr=0.01) \
        if subset else tn.optim.Adam(lr=0.01)
    model.compile(opt, loss="mse", weighting=weighting, weighting_lr=0.05)
    x, y = xy()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    extra = model.weighting.parameters()
    moments = [opt.state[p]["exp_avg"].copy() for p in extra]
    groups = [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    new = Dense(1, seed=3)
    head.add(new)
    w = new.W.value.copy()
    before = [p.value.copy() for p in trunk.parameters()]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(new.W.value, w)
    assert sorted(map(id, opt.params)) == sorted(
        [id(p) for p in model.parameters() if id(p) not in left_out] + [id(p) for p in extra])
    unchanged = [np.array_equal(p.value, b) for p, b in zip(trunk.parameters(), before)]
    assert unchanged == [subset] * len(before)
    assert [opt.state[p]["step"] for p in extra] == [4] * len(extra)  # 2 epochs of 2 steps
    assert all(not np.array_equal(m, opt.state[p]["exp_avg"]) for m, p in zip(moments, extra))
    added = [(g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert added[:len(groups)] == groups
    theirs = [([id(p) for p in g["params"]], g["lr"], g["weight_decay"])
              for g in opt.param_groups if any(p is e for p in g["params"] for e in extra)]
    assert theirs == ([([id(p) for p in extra], 0.05, 0.0)] if extra else [])


def test_fit_binding_again_keeps_the_weightings_group_beside_the_users_groups():
    # groups of the user's: the added layer's parameters go into a group of the
    # defaults, the weighting's group keeps its rate and its parameters' moments
    head = tn.Sequential([Dense(1, seed=1)])
    model = tn.mtl.HardSharing((4,), trunk=[Dense(6, seed=0, name="trunk")],
                               heads={"a": [head], "b": [Dense(1, seed=2)]})
    heads = model.task_parameters("a") + model.task_parameters("b")
    opt = tn.optim.Adam([{"params": model.shared_parameters(), "lr": 1e-3},
                         {"params": heads, "lr": 1e-2}], lr=0.02)
    model.compile(opt, loss="mse", weighting="uncertainty", weighting_lr=0.05)
    x, y = xy()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    log_vars = model.weighting.log_vars
    new = Dense(1, seed=3)
    head.add(new)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert [([id(p) for p in g["params"]], g["lr"]) for g in opt.param_groups] == [
        ([id(p) for p in model.shared_parameters()], 1e-3), ([id(p) for p in heads], 1e-2),
        ([id(log_vars)], 0.05), ([id(new.W), id(new.b)], 0.02)]
    assert opt.state[log_vars]["step"] == 4 and opt.state[new.W]["step"] == 2


def test_a_weightings_group_does_not_change_the_rate_of_parameters_all_rebuilt():
    # every parameter of the model rebuilt: its group keeps the rate a schedule
    # set, as it does without a weighting, beside the weighting's group
    rates = []
    for weighting in ("equal", "uncertainty"):
        model = hard()
        opt = tn.optim.Adam(lr=0.1)
        model.compile(opt, loss="mse", weighting=weighting, weighting_lr=0.05)
        model.fit(*xy(), epochs=1, verbose=0)
        opt.param_groups[0]["lr"] = 0.003  # (a plateau's cut)
        for layer in tn.layers.base.walk_layers(model):
            if layer.parameters() and layer is not model:
                layer.build(layer.input_shape)
        model.fit(*xy(), epochs=1, verbose=0)
        rates.append([g["lr"] for g in opt.param_groups])
    assert rates == [[0.003], [0.003, 0.05]]


@pytest.mark.parametrize("weighting", ["pcgrad", "mgda"])
def test_fit_combines_the_gradients_of_a_layer_added_to_the_shared_trunk(weighting):
    # the shared parameters were found at compile only: a layer added to the
    # trunk after it trained on the plain sum of the task gradients, not on
    # the weighting's combination; fit now trains it as compile-then-fit does
    def trained(compile_again):
        trunk = tn.Sequential([Dense(6, activation="tanh", seed=0)])
        model = tn.mtl.HardSharing((4,), trunk=[trunk],
                                   heads={"a": [Dense(1, seed=1)], "b": [Dense(1, seed=2)]},
                                   dtype="float64")
        model.compile(tn.optim.SGD(lr=0.1), loss="mse", weighting=weighting)
        trunk.add(Dense(6, seed=3))
        if compile_again:
            model.compile(model.optimizer, loss="mse", weighting=weighting)
        x, y = xy(scale_a=5.0)
        model.fit(x.astype(np.float64), y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        return model.get_weights()

    for a, b in zip(trained(False), trained(True)):
        np.testing.assert_array_equal(a, b)
