"""Cross-stitch, MMoE, and the four ready-made architectures: gradients through the
whole multi-task model (float64 finite differences), parameter ownership, errors."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.layers import Dense, Dropout
from tinynet.mtl import CrossStitch, MMoE
from tests.mtl.helpers import EPS, check_model_gradients, grad_error
from tests.fd import numerical_grad

TOL = 1e-6
seeds = st.integers(0, 10_000)


@given(batch=st.integers(1, 4), n_tasks=st.integers(2, 3), units=st.integers(1, 4),
       per_unit=st.booleans(), seed=seeds)
def test_cross_stitch_gradients(batch, n_tasks, units, per_unit, seed):
    rng = np.random.default_rng(seed)
    inputs = [tn.mtl.Input((units,), dtype="float64") for _ in range(n_tasks)]
    unit = CrossStitch(self_weight=0.7, per_unit=per_unit)
    outs = unit(inputs)
    for row in unit.alpha_rows:
        row.value = row.value + rng.normal(0, 0.1, row.shape)
    model = tn.mtl.Model(inputs, outs)
    xs = [rng.standard_normal((batch, units)) for _ in range(n_tasks)]
    errors = check_model_gradients(model, xs, rng)
    assert max(errors.values()) < TOL, errors


def test_cross_stitch_starts_mostly_own_task():
    unit = CrossStitch(self_weight=0.8).build([(2,), (2,), (2,)], dtype="float64")
    np.testing.assert_allclose(unit.alpha, [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1],
                                            [0.1, 0.1, 0.8]])
    with pytest.raises(ValueError, match=r"CrossStitch expected self_weight in \(0, 1\]"):
        CrossStitch(self_weight=0.0)
    for bad in (True, "0.5"):  # float() took them as 1.0 and 0.5
        with pytest.raises(TypeError, match="CrossStitch expected self_weight as a real number"):
            CrossStitch(self_weight=bad)
    with pytest.raises(ValueError, match="two or more inputs of one shape"):
        CrossStitch().build([(2,), (3,)])


@given(batch=st.integers(1, 4), n_tasks=st.integers(1, 3), n_experts=st.integers(1, 3),
       units=st.integers(1, 3), activation=st.sampled_from(["relu", "tanh", None]), seed=seeds)
def test_mmoe_gradients(batch, n_tasks, n_experts, units, activation, seed):
    rng = np.random.default_rng(seed)
    inp = tn.mtl.Input((3,), dtype="float64")
    layer = MMoE(n_tasks, n_experts, units, activation=activation, seed=seed)
    outs = layer(inp)
    for p in layer.parameters():  # biases away from zero so relu kinks are rare
        p.value = p.value + rng.normal(0, 0.3, p.shape)
    model = tn.mtl.Model(inp, outs)
    x = rng.standard_normal((batch, 3))
    if activation == "relu":  # a difference step across the kink is not the derivative
        assume(np.abs(x @ layer.W_experts.value + layer.b_experts.value).min() > 1e-3)
    errors = check_model_gradients(model, [x], rng)
    assert max(errors.values()) < TOL, errors


def test_mmoe_outputs_are_gate_mixtures_and_gates_are_task_parameters():
    rng = np.random.default_rng(0)
    net = tn.mtl.MMoENet((4,), n_experts=3, expert_units=5,
                         towers={"a": [Dense(1)], "b": [Dense(2)]}, dtype="float64", seed=0)
    x = rng.standard_normal((6, 4))
    net.forward_all(x)
    gates = net.mmoe.gate_weights()
    assert len(gates) == 2 and gates[0].shape == (6, 3)
    np.testing.assert_allclose(gates[1].sum(axis=1), 1.0)
    shared = {p.name for p in net.shared_parameters()}
    mmoe = net.mmoe.name
    assert shared == {f"{mmoe}/W_experts", f"{mmoe}/b_experts"}
    assert {f"{mmoe}/W_gate0", f"{mmoe}/b_gate0"} <= {p.name for p in net.task_parameters("a")}
    assert f"{mmoe}/W_gate1" in {p.name for p in net.task_parameters("b")}
    with pytest.raises(ValueError, match="list of 2 output"):
        net.mmoe.backward(np.zeros((6, 5)))


def architectures(seed):
    """Each architecture, small, in float64."""
    def dense(units, act="tanh", s=0):
        return Dense(units, activation=act, seed=seed + s)
    return {
        "hard": tn.mtl.HardSharing((3,), trunk=[dense(4), dense(3, s=1)],
                                   heads={"a": [dense(2, None, 2)], "b": [dense(1, None, 3)]},
                                   dtype="float64"),
        "soft": tn.mtl.SoftSharing((3,), towers={"a": [dense(4), dense(2, None, 1)],
                                                 "b": [dense(4, s=2), dense(2, None, 3)]},
                                   penalty=0.3, dtype="float64"),
        "cross_stitch": tn.mtl.CrossStitchNet(
            (3,), towers={"a": [dense(4), dense(3, s=1), dense(2, None, 2)],
                          "b": [dense(4, s=3), dense(3, s=4), dense(1, None, 5)]},
            dtype="float64"),
        "mmoe": tn.mtl.MMoENet((3,), n_experts=2, expert_units=3, expert_activation="tanh",
                               towers={"a": [dense(2, None, 1)], "b": [dense(1, None, 2)]},
                               bottom=[dense(4, s=3)], dtype="float64", seed=seed),
    }


@pytest.mark.parametrize("name", ["hard", "soft", "cross_stitch", "mmoe"])
@given(batch=st.integers(1, 3), seed=seeds)
def test_whole_architecture_gradients(name, batch, seed):
    rng = np.random.default_rng(seed)
    model = architectures(seed)[name]
    errors = check_model_gradients(model, [rng.standard_normal((batch, 3))], rng)
    assert max(errors.values()) < TOL, errors


@given(seed=seeds)
def test_soft_sharing_penalty_gradient(seed):
    model = architectures(seed)["soft"]
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.value = rng.standard_normal(p.shape)
    model.zero_grad()
    value = model.regularization()
    analytic = [p.grad.copy() for p in model.parameters()]

    def penalty():
        model.zero_grad()
        return model.regularization()

    for p, g in zip(model.parameters(), analytic):
        assert grad_error(g, numerical_grad(penalty, p.value, EPS)) < TOL, p.name
    expected = 0.3 * sum(np.sum((p.value - q.value) ** 2) for p, q in model.coupled)
    assert value == pytest.approx(expected)
    coupled = {id(p) for group in model.coupled for p in group}
    assert all(not p.grad.any() for p in model.parameters() if id(p) not in coupled)
    assert len(model.coupled) == 2  # W and b of the first layers; heads stay free


def test_parameter_counts_and_sharing():
    models = architectures(0)
    hard = models["hard"]
    assert {p.name for p in hard.shared_parameters()} == {
        p.name for la in hard.layers[:2] for p in la.parameters()}
    assert models["soft"].shared_parameters() == []
    stitch_names = {p.name for p in models["cross_stitch"].shared_parameters()}
    assert stitch_names  # the towers below a stitch reach both tasks
    first, last = models["cross_stitch"].stitches
    assert all(row.name in stitch_names for row in first.alpha_rows)
    # above the last unit the towers no longer mix: its row t reaches task t only
    # (it used to count as shared, so MGDA scaled task b's row by task a's weight)
    for t, task in enumerate(["a", "b"]):
        own = {p.name for p in models["cross_stitch"].task_parameters(task)}
        assert last.alpha_rows[t].name in own and last.alpha_rows[t].name not in stitch_names


def test_soft_sharing_trains_with_penalty_logged():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    model = tn.mtl.SoftSharing((3,), towers={"a": [Dense(4, activation="relu"), Dense(1)],
                                             "b": [Dense(4, activation="relu"), Dense(1)]},
                               penalty=0.1)
    model.compile("adam", loss="mse")
    history = model.fit(x, {"a": x[:, 0], "b": x[:, 1]}, epochs=2, verbose=0, seed=0)
    assert len(history.history["penalty"]) == 2


@pytest.mark.parametrize("weighting", ["mgda", "pcgrad", "gradnorm"])
def test_a_gradient_weighting_on_a_model_that_shares_nothing_warns(weighting):
    # it trained as equal weights (logging weights of 1) without a word
    import warnings

    def towers():
        return {"a": [Dense(4, activation="relu"), Dense(1)],
                "b": [Dense(4, activation="relu"), Dense(1)]}

    with pytest.warns(UserWarning, match=f"weighting '{weighting}'.*trains as equal weights"):
        tn.mtl.SoftSharing((3,), towers=towers()).compile("adam", loss="mse",
                                                          weighting=weighting)
    hard = tn.mtl.HardSharing((3,), trunk=[Dense(4, activation="relu")],
                              heads={"a": [Dense(1)], "b": [Dense(1)]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hard.compile("adam", loss="mse", weighting=weighting)
        tn.mtl.SoftSharing((3,), towers=towers()).compile("adam", loss="mse", weighting="dwa")
    hard.layers[0].trainable = False  # a frozen trunk shares nothing that trains
    with pytest.warns(UserWarning, match="frozen trunk"):
        hard.compile("adam", loss="mse", weighting=weighting)


def test_architecture_errors():
    with pytest.raises(ValueError, match="two or more tasks"):
        tn.mtl.HardSharing((3,), trunk=[Dense(2)], heads={"a": [Dense(1)]})
    with pytest.raises(ValueError, match="at least one layer"):
        tn.mtl.HardSharing((3,), trunk=[Dense(2)], heads={"a": [Dense(1)], "b": []})
    with pytest.raises(ValueError, match="one depth"):
        tn.mtl.SoftSharing((3,), towers={"a": [Dense(2)], "b": [Dense(2), Dense(1)]})
    with pytest.raises(ValueError, match="one architecture"):
        tn.mtl.SoftSharing((3,), towers={"a": [Dense(2), Dense(1)], "b": [Dense(3), Dense(1)]})
    with pytest.raises(ValueError, match="one depth"):
        tn.mtl.CrossStitchNet((3,), towers={"a": [Dense(2)], "b": [Dense(2), Dense(1)]})
    with pytest.raises(ValueError, match=r"SoftSharing expected penalty in \[0, inf\), "
                                         r"received -1.0"):
        tn.mtl.SoftSharing((3,), towers={"a": [Dense(1)], "b": [Dense(1)]}, penalty=-1)
    # float() took True as 1.0 and "0.1" as 0.1.
    for bad in (True, "0.1"):
        with pytest.raises(TypeError, match="SoftSharing expected penalty as a real number"):
            tn.mtl.SoftSharing((3,), towers={"a": [Dense(1)], "b": [Dense(1)]}, penalty=bad)


def test_sharing_options_that_would_do_nothing_or_crash_are_refused():
    def towers(first=lambda: Dense(2)):
        return {"a": [first(), Dense(2), Dense(1)], "b": [Dense(2), Dense(2), Dense(1)]}

    with pytest.raises(ValueError, match="two or more tasks, received a dict of 1 task"):
        tn.mtl.HardSharing((3,), trunk=[Dense(2)], heads={"a": [Dense(1)]})
    # couple=5 was an IndexError; -1 and 1.5 coupled nothing or one layer silently.
    for couple in (5, -1, 1.5, True):
        with pytest.raises(ValueError, match="couple as an integer from 0 to 3 .*received "
                                             + str(couple)):
            tn.mtl.SoftSharing((3,), towers=towers(), couple=couple)
    assert len(tn.mtl.SoftSharing((3,), towers=towers(), couple=3).coupled) == 6
    assert tn.mtl.SoftSharing((3,), towers=towers(), couple=0).coupled == []
    # A layer without parameters facing one with them was skipped: no penalty at all.
    with pytest.raises(ValueError, match="one architecture; layer 0 has parameters of shapes "
                                         "\\{'a': \\[\\], 'b': \\[\\(3, 2\\), \\(2,\\)\\]\\}"):
        tn.mtl.SoftSharing((3,), towers={"a": [Dropout(0.1), Dense(2), Dense(1)],
                                         "b": [Dense(2), Dropout(0.1), Dense(1)]})
    with pytest.raises(ValueError, match=r"penalty in \[0, inf\), received inf"):
        tn.mtl.SoftSharing((3,), towers=towers(), penalty=float("inf"))
    # stitch_after=[7] stitched nothing without a word.
    for bad in ([7], [-1], [0.5]):
        with pytest.raises(ValueError, match="stitch_after as layer indices from 0 to 2"):
            tn.mtl.CrossStitchNet((3,), towers=towers(), stitch_after=bad)
    assert len(tn.mtl.CrossStitchNet((3,), towers=towers(), stitch_after=[1]).stitches) == 1


def test_delta_m():
    base = {"a/accuracy": 0.8, "b/mse": 2.0}
    assert tn.mtl.delta_m({"a/accuracy": 0.88, "b/mse": 2.2}, base) == pytest.approx(0.0)
    assert tn.mtl.delta_m({"a/accuracy": 0.8, "b/mse": 1.0}, base) == pytest.approx(25.0)
    two = {"a/accuracy": 0.5, "a/loss": 1.0, "b/accuracy": 0.5}
    got = tn.mtl.delta_m({"a/accuracy": 0.6, "a/loss": 1.0, "b/accuracy": 0.5}, two)
    assert got == pytest.approx((20.0 / 2 + 0.0) / 2)
    with pytest.raises(ValueError, match="expected metric"):
        tn.mtl.delta_m({}, base)
    with pytest.raises(ValueError, match="non-zero baseline"):
        tn.mtl.delta_m({"a/accuracy": 1.0}, {"a/accuracy": 0.0})
    # a negative baseline (a log-likelihood): a rise is still a gain
    assert tn.mtl.delta_m({"a/loglik": -0.9}, {"a/loglik": -1.0},
                          {"a/loglik": True}) == pytest.approx(10.0)


def test_delta_m_refuses_a_direction_for_a_metric_it_does_not_score():
    base = {"a/f1_error_rate": 0.2, "b/accuracy": 0.5}
    now = {"a/f1_error_rate": 0.1, "b/accuracy": 0.5}
    # The direction given for the right name is taken (not known otherwise)...
    with pytest.raises(ValueError, match="delta_m cannot tell whether to maximise or minimise "
                                         "'a/f1_error_rate'.*higher_is_better="):
        tn.mtl.delta_m(now, base)
    assert tn.mtl.delta_m(now, base, {"a/f1_error_rate": False}) == pytest.approx(25.0)
    # ...and a misspelt one was ignored: -25 % reported for a 50 % error cut.
    with pytest.raises(ValueError, match="higher_is_better for \\['a/f1_err_rate'\\], which "
                                         "are not among the baselines"):
        tn.mtl.delta_m(now, base, {"a/f1_err_rate": False})


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error", "l1", "huber",
                                  "cross_entropy", "binary_crossentropy", "MSE"])
def test_delta_m_scores_every_loss_and_error_name_lower_is_better(name):
    # tinynet's own loss and metric names (their registries' aliases too) were
    # read as higher-is-better unless spelt "mse" or "mae": a cut from 1.0 to
    # 0.5 was reported as a 50 % loss.
    assert tn.mtl.delta_m({f"a/{name}": 0.5}, {f"a/{name}": 1.0}) == pytest.approx(50.0)


@pytest.mark.parametrize("metrics, baselines, higher, error, message", [
    ({"a/acc": "x"}, {"a/acc": 1.0}, None, TypeError,
     "delta_m expected metric 'a/acc' as a real number, received 'x'"),
    ({"a/acc": None}, {"a/acc": 1.0}, None, TypeError, "as a real number, received None"),
    ({"a/acc": np.array([0.5, 0.6])}, {"a/acc": 1.0}, None, TypeError,
     "as a real number, received array"),
    ({"a/acc": 1.0}, {"a/acc": "1"}, None, TypeError,
     "delta_m expected the baseline 'a/acc' as a real number, received '1'"),
    ({"a/acc": 1.0}, {"a/acc": True}, None, TypeError, "received True"),
    ([0.5], {"a/acc": 1.0}, None, TypeError,
     r"delta_m expected metrics as a dict \{name: value\}, received list"),
    ({"a/acc": 1.0}, ("a/acc", 1.0), None, TypeError,
     r"delta_m expected baselines as a dict \{name: value\}, received tuple"),
    ({0: 1.0}, {0: 2.0}, None, TypeError,
     r"delta_m expected baseline names as strings \(\"<task>/<metric>\"\), received \[0\]"),
    ({"a/acc": 1.0}, {"a/acc": 2.0}, ["a/acc"], TypeError,
     r"delta_m expected higher_is_better as a dict \{name: bool\}, received list"),
    ({"a/acc": 1.0}, {"a/acc": 2.0}, {"a/acc": "no"}, TypeError,
     r"delta_m's higher_is_better\['a/acc'\] expected higher_is_better as True, False"),
])
def test_delta_m_arguments_of_the_wrong_kind_are_refused(metrics, baselines, higher, error,
                                                         message):
    # They failed inside NumPy or float() ("could not convert string to float",
    # "ufunc 'isfinite' not supported"), took True as a baseline of 1, or -- a
    # higher_is_better of "no" -- counted the metric as higher-is-better.
    with pytest.raises(error, match=message):
        tn.mtl.delta_m(metrics, baselines, higher)
    assert tn.mtl.delta_m({"a/e": np.float32(0.5)}, {"a/e": np.int64(1)},
                          {"a/e": np.bool_(False)}) == pytest.approx(50.0)
    assert tn.mtl.delta_m({"a/e": np.array(0.5)}, {"a/e": np.array(1.0)},
                          {"a/e": False}) == pytest.approx(50.0)


@pytest.mark.parametrize("make, message", [
    (lambda: tn.mtl.HardSharing((3,), trunk=Dense(2), heads={"a": [Dense(1)], "b": [Dense(1)]}),
     "HardSharing expected trunk as a list of layers, received Dense"),
    (lambda: tn.mtl.HardSharing((3,), trunk=[Dense(2)], heads={"a": Dense(1), "b": [Dense(1)]}),
     "HardSharing expected the layers of task 'a' as a list of layers, received Dense"),
    (lambda: tn.mtl.HardSharing((3,), trunk=[Dense(2)], heads={"a": ["dense"], "b": [Dense(1)]}),
     r"HardSharing expected the layers of task 'a' as a list of layers, received \['dense'\]"),
    (lambda: tn.mtl.SoftSharing((3,), towers={"a": "dense", "b": [Dense(1)]}),
     "SoftSharing expected the layers of task 'a' as a list of layers, received 'dense'"),
    (lambda: tn.mtl.MMoENet((3,), 2, 2, towers={"a": [Dense(1)], "b": [Dense(1)]},
                            bottom=Dense(2)),
     "MMoENet expected bottom as a list of layers, received Dense"),
    (lambda: tn.mtl.CrossStitchNet((3,), towers={"a": [Dense(2), Dense(1)],
                                                 "b": [Dense(2), Dense(1)]}, stitch_after=0),
     "CrossStitchNet expected stitch_after as layer indices from 0 to 1, received 0"),
    (lambda: tn.mtl.CrossStitchNet((3,), towers={"a": [Dense(2), Dense(1)],
                                                 "b": [Dense(2), Dense(1)]}, per_unit="no"),
     "CrossStitch expected per_unit as True or False, received 'no'"),
    (lambda: CrossStitch(per_unit=0), "CrossStitch expected per_unit as True or False"),
])
def test_architecture_arguments_of_the_wrong_kind_are_refused(make, message):
    # A single layer for a list failed with "'Dense' object is not iterable", a
    # name for a layer with "'str' object is not callable", stitch_after=0 with
    # "'int' object is not iterable"; per_unit="no" meant True.
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_mmoe_applies_a_softmax_activation_to_each_expert_alone():
    # E_k = f(A_k): the experts are K small Dense layers. The activation ran on
    # all K experts side by side, so a softmax normalised over the K * units
    # columns together and each expert's output depended on the others'.
    rng = np.random.default_rng(0)
    inp = tn.mtl.Input((3,), dtype="float64")
    layer = MMoE(2, 3, 4, activation="softmax", seed=0)
    model = tn.mtl.Model(inp, layer(inp))
    x = rng.standard_normal((5, 3))
    model.forward_all([x])
    experts = layer._cache[1]
    np.testing.assert_allclose(experts.sum(axis=2), 1.0)
    pre = (x @ layer.W_experts.value + layer.b_experts.value).reshape(5, 3, 4)
    expected = np.exp(pre) / np.exp(pre).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(experts, expected, rtol=1e-12)
    errors = check_model_gradients(model, [x], rng)
    assert max(errors.values()) < TOL, errors


def test_delta_m_reads_directions_from_the_models_metric_objects():
    # delta_m knew only built-in names: a metric the user named ("b/err", a
    # MeanAbsoluteError) was scored higher-is-better unless higher_is_better=
    # said otherwise, where the callbacks' mode="auto" read its direction
    from tinynet import metrics
    from tinynet.layers import Dense
    inp = tn.mtl.Input((4,))
    model = tn.mtl.Model(inp, {"a": Dense(3, seed=1)(inp), "b": Dense(1, seed=2)(inp)})
    model.compile("adam", loss={"a": "cross_entropy", "b": "mse"},
                  metrics={"a": [metrics.F1Score(average="micro", name="err")],
                           "b": [metrics.MeanAbsoluteError(name="err_acc")]})
    now = {"a/err": 0.6, "b/err_acc": 0.5, "a/loss": 0.5}
    base = {"a/err": 0.5, "b/err_acc": 1.0, "a/loss": 1.0}
    # by the names alone: err an error (lower), err_acc (not a known name) refused
    assert tn.mtl.metrics.relative_gains(now, base, {"b/err_acc": True}) == pytest.approx(
        {"a/err": -20.0, "b/err_acc": -50.0, "a/loss": 50.0})
    with pytest.raises(ValueError, match="'b/err_acc'"):
        tn.mtl.metrics.relative_gains(now, base)
    # the model's objects: an F1 (higher), a mean absolute error (lower); a key
    # without a metric object (a loss) keeps its name's direction
    assert tn.mtl.metrics.relative_gains(now, base, model=model) == pytest.approx(
        {"a/err": 20.0, "b/err_acc": 50.0, "a/loss": 50.0})
    assert tn.mtl.delta_m(now, base, model=model) == pytest.approx(((20 + 50) / 2 + 50) / 2)
    # the explicit argument wins
    assert tn.mtl.metrics.relative_gains(now, base, {"b/err_acc": True}, model=model)[
        "b/err_acc"] == pytest.approx(-50.0)
    # a single-output model's metrics, keys without a task
    single = tn.Sequential([Dense(1, input_dim=4)])
    single.compile("adam", loss="mse", metrics=[metrics.MeanAbsoluteError(name="acc_gap")])
    assert tn.mtl.delta_m({"acc_gap": 0.5}, {"acc_gap": 1.0}, model=single) == 50.0
    uncompiled = tn.mtl.Model(inp, {"a": Dense(3)(inp)})
    for bad in (uncompiled, {"a/err": metrics.F1Score()}):
        with pytest.raises(TypeError, match="delta_m expected model as a compiled tinynet "
                                            "model"):
            tn.mtl.delta_m(now, base, model=bad)
