"""Loss weighting methods: the maths of each, against independent references."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.mtl import weighting as wt
from tinynet.mtl.min_norm import (min_norm_enumerate, min_norm_frank_wolfe, min_norm_weights,
                                  min_norm_wolfe)
from tests.fd import numerical_grad


def reference_min_norm(gram, n_samples=20000, seed=0):
    """Best of many random simplex points plus projected-gradient polishing."""
    rng = np.random.default_rng(seed)
    n = len(gram)
    cands = rng.dirichlet(np.ones(n) * 0.5, size=n_samples)
    cands = np.vstack([cands, np.eye(n)])
    values = np.einsum("ij,jk,ik->i", cands, gram, cands)
    return float(values.min())


@given(n_tasks=st.integers(1, 5), dim=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_min_norm_weights_reach_the_minimum_on_the_simplex(n_tasks, dim, seed):
    grads = np.random.default_rng(seed).standard_normal((n_tasks, dim))
    gram = grads @ grads.T
    alpha = min_norm_weights(gram)
    assert alpha.shape == (n_tasks,) and (alpha >= -1e-12).all()
    assert abs(alpha.sum() - 1) < 1e-9
    value = alpha @ gram @ alpha
    assert value <= reference_min_norm(gram, seed=seed) + 1e-6 * max(1.0, np.abs(gram).max())
    # Frank-Wolfe (the large-T path) converges to the same value, sublinearly.
    fw = min_norm_frank_wolfe(gram, max_iter=5000)
    assert abs(fw.sum() - 1) < 1e-9 and (fw >= -1e-12).all()
    assert fw @ gram @ fw <= value + 1e-3 * max(1.0, np.abs(gram).max())


def _awkward_gradients(seed, n_tasks, dim):
    """Gradients of very different lengths, with repeated, opposite and zero
    rows, so that faces of the simplex are degenerate."""
    rng = np.random.default_rng(seed)
    grads = rng.standard_normal((n_tasks, dim)) + rng.uniform(0, 3) * rng.standard_normal(dim)
    grads *= np.exp(rng.uniform(-3, 3, (n_tasks, 1)))
    kind = seed % 4
    if kind == 1:
        grads[rng.integers(n_tasks)] = grads[rng.integers(n_tasks)]
    elif kind == 2:
        grads[rng.integers(n_tasks)] = -grads[rng.integers(n_tasks)]
    elif kind == 3:
        grads[rng.integers(n_tasks)] = 0.0
    return grads


@given(n_tasks=st.integers(3, 9), dim=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_wolfe_matches_the_enumeration_of_faces(n_tasks, dim, seed):
    grads = _awkward_gradients(seed, n_tasks, dim)
    gram = grads @ grads.T
    alpha = min_norm_weights(gram)  # "auto": Wolfe beyond two tasks
    np.testing.assert_array_equal(alpha, min_norm_wolfe(gram))
    assert (alpha >= 0).all() and abs(alpha.sum() - 1) < 1e-12
    best = min_norm_enumerate(gram)
    assert alpha @ gram @ alpha <= best @ gram @ best + 1e-12 * np.abs(gram).max()


@given(n_tasks=st.integers(10, 40), dim=st.integers(1, 50), seed=st.integers(0, 10_000))
def test_wolfe_meets_the_optimality_conditions_for_many_tasks(n_tasks, dim, seed):
    # KKT of min a'Ma on the simplex: (Ma)_t >= a'Ma for every t, with equality
    # where a_t > 0. Frank-Wolfe after 1,000 iterations does not reach them.
    grads = _awkward_gradients(seed, n_tasks, dim)
    gram = grads @ grads.T
    alpha = min_norm_weights(gram)
    assert (alpha >= 0).all() and abs(alpha.sum() - 1) < 1e-12
    m_alpha, value = gram @ alpha, alpha @ gram @ alpha
    scale = np.abs(gram).max()
    assert m_alpha.min() >= value - 1e-10 * scale
    assert np.abs(m_alpha[alpha > 0] - value).max() <= 1e-10 * scale
    fw = min_norm_frank_wolfe(gram)
    assert alpha @ gram @ alpha <= fw @ gram @ fw + 1e-12 * scale


def test_frank_wolfe_stops_short_where_wolfe_is_exact():
    grads = np.random.default_rng(64).standard_normal((64, 1000))
    gram = grads @ grads.T
    exact, fw = min_norm_wolfe(gram), min_norm_frank_wolfe(gram)
    assert fw @ gram @ fw > 1.0003 * (exact @ gram @ exact)


def test_min_norm_weights_refuses_bad_gram_matrices():
    with pytest.raises(ValueError, match=r"square \(T, T\).*\(2, 3\)"):
        min_norm_weights(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        min_norm_weights(np.array([[1.0, np.nan], [np.nan, 1.0]]))


@given(seed=st.integers(0, 10_000))
def test_two_task_closed_form_is_the_exact_minimiser(seed):
    u, v = np.random.default_rng(seed).standard_normal((2, 4))
    gamma, _ = min_norm_weights(np.array([[u @ u, u @ v], [u @ v, v @ v]]))
    grid = np.linspace(0, 1, 100_001)
    norms = ((grid[:, None] * u + (1 - grid[:, None]) * v) ** 2).sum(axis=1)
    assert gamma * gamma * (u @ u) + 2 * gamma * (1 - gamma) * (u @ v) \
        + (1 - gamma) ** 2 * (v @ v) <= norms.min() + 1e-9


@given(n_tasks=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_mgda_direction_decreases_every_task(n_tasks, seed):
    grads = np.random.default_rng(seed).standard_normal((n_tasks, 7))
    method = wt.MGDA().bind([f"t{i}" for i in range(n_tasks)])
    d = method.combine(grads, np.ones(n_tasks))
    # The min-norm point d satisfies g_t . d >= |d|^2 for every task t.
    assert (grads @ d >= d @ d - 1e-8).all()
    np.testing.assert_allclose(d, method.last_weights @ grads)


def test_mgda_normalisations_and_errors():
    grads = np.array([[10.0, 0.0], [0.0, 1.0]])
    plain = wt.MGDA().bind(["a", "b"])
    plain.combine(grads, np.ones(2))
    l2 = wt.MGDA("l2").bind(["a", "b"])
    l2.combine(grads, np.ones(2))
    np.testing.assert_allclose(l2.last_weights, [0.5, 0.5])
    assert plain.last_weights[1] > 0.9  # the small gradient dominates unnormalised MGDA
    with pytest.raises(ValueError, match="normalize"):
        wt.MGDA("max")
    with pytest.raises(ValueError, match="method"):
        min_norm_weights(np.eye(3), method="qp")


@given(seed=st.integers(0, 10_000), n_tasks=st.integers(2, 4))
def test_pcgrad_projects_only_conflicts(seed, n_tasks):
    grads = np.random.default_rng(seed).standard_normal((n_tasks, 5))
    method = wt.PCGrad(seed=seed).bind(list(range(n_tasks)))
    out = method.combine(grads, np.ones(n_tasks))
    if n_tasks == 2:
        g1, g2 = grads
        dot = g1 @ g2
        expected = g1 + g2
        if dot < 0:
            expected = (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    agreeing = np.abs(grads)
    np.testing.assert_allclose(method.combine(agreeing, np.ones(n_tasks)), agreeing.sum(0))


def test_a_fit_seed_fixes_pcgrads_projection_order(tmp_path):
    # PCGrad drew its orders from a generator of its own, unseeded by default:
    # two fits with seed=0 of the same model ended with different weights.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype(np.float32)
    y = {"a": rng.standard_normal((48, 1)), "b": rng.standard_normal((48, 1)),
         "c": -x[:, :1]}

    def run(epochs, initial_epoch=0, model=None):
        if model is None:
            model = tn.mtl.HardSharing((4,), trunk=[tn.layers.Dense(8, activation="relu",
                                                                    seed=0)],
                                       heads={t: [tn.layers.Dense(1, seed=i + 1)]
                                              for i, t in enumerate("abc")})
            model.compile("sgd", loss="mse", weighting="pcgrad")
        model.fit(x, y, epochs=epochs, initial_epoch=initial_epoch, batch_size=8, seed=0,
                  verbose=0)
        return model

    first, second = run(2).get_weights(), run(2).get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # Each epoch's order depends on the seed and the epoch only, as dropout's.
    resumed = run(2, initial_epoch=1, model=run(1))
    for a, b in zip(first, resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Any generator given to the model leaves PCGrad one whose state saves.
    resumed.set_rng(np.random.Generator(np.random.MT19937(0)))
    state = resumed.weighting.get_state()["rng"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the layers' MT19937 is kept too, as JSON)
        path = resumed.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(tn.load(path).weighting.get_state()["rng"], state)


def test_uncertainty_gradient_matches_finite_differences():
    method = wt.Uncertainty(init=0.3).bind(["a", "b", "c"], np.float64)
    losses = np.array([0.5, 2.0, 0.1])
    s = method.log_vars.value

    def objective():
        return float(np.sum(np.exp(-s) * losses + s))

    method.log_vars.zero_grad()
    w = method.loss_weights(losses)
    np.testing.assert_allclose(w, np.exp(-0.3))
    np.testing.assert_allclose(method.log_vars.grad, numerical_grad(objective, s), rtol=1e-7)


def test_gradnorm_weight_gradient_and_renormalisation():
    method = wt.GradNorm(alpha=1.5).bind(["a", "b"], np.float64)
    method.weights.value = [0.5, 1.5]
    w = method.loss_weights(np.array([1.0, 1.0]))
    np.testing.assert_allclose(w.sum(), 2.0)
    unit = np.array([[3.0, 4.0], [0.0, 1.0]])  # gradients of the unweighted losses
    losses0 = np.array([2.0, 1.0])
    method.combine(w[:, None] * unit, losses0)  # first call fixes L(0)
    method.weights.zero_grad()
    losses = np.array([1.0, 0.8])
    method.combine(w[:, None] * unit, losses)
    norms_unit = np.linalg.norm(unit, axis=1)
    rate = (losses / losses0) / (losses / losses0).mean()
    target = (w * norms_unit).mean() * rate ** 1.5
    wv = w.copy()

    def l_grad():
        return float(np.abs(wv * norms_unit - target).sum())

    np.testing.assert_allclose(method.weights.grad, numerical_grad(l_grad, wv), rtol=1e-6)


def test_dwa_weights_follow_loss_ratios():
    method = wt.DWA(temperature=2.0).bind(["a", "b"])
    np.testing.assert_array_equal(method.loss_weights(np.ones(2)), [1, 1])
    method.on_epoch_end(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(method.loss_weights(np.ones(2)), [1, 1])
    method.on_epoch_end(np.array([0.5, 0.9]))
    r = np.array([0.5, 0.9])
    expected = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose(method.loss_weights(np.ones(2)), expected)
    with pytest.raises(ValueError, match="temperature"):
        wt.DWA(temperature=0)


def _words_as(dtype, change=None):
    def make(state):
        words = state.astype(dtype)
        if change is not None:
            words[change[0]] = change[1]
        return words
    return make


@pytest.mark.parametrize("make, key, bad, match", [
    # DWA's weights scale the next epoch's losses: -1 trained by gradient ascent
    (wt.DWA, "last_weights", [-1.0, 3.0],
     r"'last_weights' expected values in \[0, 2\] .*\(-1.0, 3.0\)"),
    (wt.DWA, "last_weights", [0.0, 2.5], r"'last_weights' expected values in \[0, 2\]"),
    (wt.DWA, "history", [[1.0, 1.0], [0.5, -0.5]], r"'history' expected values in \[0, inf\)"),
    # GradNorm's L_t(0): NaN let +-inf past the finite check; 0 or -5 loaded
    # and fit failed later, with a message that did not point at the file
    (wt.GradNorm, "initial_losses", [np.inf, 1.0],
     r"'initial_losses' expected values in \[1e-12, inf\) or NaN"),
    (wt.GradNorm, "initial_losses", [-np.inf, 1.0], "'initial_losses' expected values in"),
    (wt.GradNorm, "initial_losses", [-5.0, 1.0], "'initial_losses' expected values in"),
    (wt.GradNorm, "initial_losses", [0.0, np.nan],
     r"'initial_losses' expected values in .*\(0.0\)"),
    # Static's loss_weights returns its last_weights, which nothing changes
    (lambda: wt.Static([1.0, 0.5]), "last_weights", [1.0, -0.5], "equal to its weights"),
    # float words were cast to uint64 silently (a generator other than saved)
    (wt.PCGrad, "rng", _words_as(np.float64), "'rng' as integer words, received dtype float64"),
    (wt.PCGrad, "rng", _words_as(np.int64, (0, -1)), "'rng' expected a generator state"),
])
def test_a_weighting_state_a_healthy_run_never_saves_is_refused_naming_it(make, key, bad, match):
    method = make().bind(["a", "b"])
    before = method.get_state()
    state = {**before, key: bad(before[key]) if callable(bad) else np.array(bad)}
    with pytest.raises(ValueError, match=f"{type(method).__name__} weighting.set_state.*{match}"):
        method.set_state(state)
    for k, value in method.get_state().items():  # nothing changed
        np.testing.assert_array_equal(value, before[k])


@pytest.mark.parametrize("make, key", [(wt.Uncertainty, "log_vars"), (wt.GradNorm, "weights")])
def test_a_learned_weighting_state_that_overflows_a_float32_model_is_refused(make, key):
    # 1e300 passed the finite check and became inf in the float32 parameter
    # (a NumPy warning only): GradNorm's projection then made the weights NaN
    method = make().bind(["a", "b"], np.float32)
    state = {**method.get_state(), key: np.array([1e300, 0.5])}
    with pytest.raises(ValueError, match=f"set_state: '{key}' expected values within the "
                                         f"range of float32, received values up to 1e\\+300"):
        method.set_state(state)
    state[key] = np.array([3e38, 0.5])  # within float32: restored, and not shared
    method.set_state(state)
    state[key][0] = 1.0
    assert method.get_state()[key][0] == np.float32(3e38)


@pytest.mark.parametrize("make, key, good", [
    (wt.DWA, "last_weights", [0.0, 2.0]),
    (wt.DWA, "history", [[0.0, 1.0], [0.0, 0.5]]),  # a task fitted exactly
    (wt.GradNorm, "initial_losses", [np.nan, 1e-12]),  # not seen yet; a first loss of 0
    (wt.GradNorm, "weights", [-0.5, 2.5]),  # stepped below 0: projected back before use
    (lambda: wt.Static([1.0, 0.5]), "last_weights", [1.0, 0.5]),
    (wt.PCGrad, "rng", lambda w: (w >> np.uint64(1)).astype(np.int64)),  # int64 words
])
def test_a_weighting_state_at_the_edge_of_a_healthy_run_is_restored(make, key, good):
    method = make().bind(["a", "b"])
    state = method.get_state()
    state[key] = good(state[key]) if callable(good) else np.array(good)
    method.set_state(state)
    np.testing.assert_array_equal(method.get_state()[key], state[key])


def test_gradnorm_weights_a_healthy_run_steps_below_zero_are_saved_and_loaded(tmp_path):
    # the optimizer steps GradNorm's weights freely and loss_weights projects
    # them back: a file holding a negative weight comes from a healthy run
    rng = np.random.default_rng(0)
    x = rng.random((64, 5), dtype=np.float32)
    y = {"a": rng.integers(0, 3, 64), "b": 10 * rng.random((64, 1)).astype(np.float32)}
    inp = tn.mtl.Input(shape=(5,))
    h = tn.layers.Dense(8, activation="relu", seed=0)(inp)
    model = tn.mtl.Model(inp, {"a": tn.layers.Dense(3, seed=1)(h),
                               "b": tn.layers.Dense(1, seed=2)(h)})
    model.compile("adam", loss={"a": "cross_entropy", "b": "mse"}, weighting="gradnorm",
                  weighting_lr=10.0)
    for epoch in range(6):  # (negative after the first epoch in this run)
        model.fit(x, y, epochs=epoch + 1, initial_epoch=epoch, batch_size=8, verbose=0, seed=0)
        if model.weighting.weights.value.min() < 0:
            break
    assert model.weighting.weights.value.min() < 0
    loaded = tn.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.weighting.weights.value, model.weighting.weights.value)


def test_registry_and_static_errors():
    assert isinstance(wt.get("PCGrad"), wt.PCGrad)
    assert isinstance(wt.get(None), wt.Equal)
    static = wt.get({"b": 2.0}).bind(["a", "b"])
    np.testing.assert_array_equal(static.loss_weights(np.ones(2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="did you mean 'pcgrad'"):
        wt.get("pcgard")
    with pytest.raises(ValueError, match="unknown tasks"):
        wt.Static({"z": 1.0}).bind(["a"])
    with pytest.raises(ValueError, match="non-negative"):
        wt.Static([1.0, -1.0]).bind(["a", "b"])


@pytest.mark.parametrize("make, message", [
    (lambda: wt.GradNorm(alpha=float("nan")), r"GradNorm expected alpha in \[0, inf\)"),
    (lambda: wt.GradNorm(alpha=float("inf")), r"GradNorm expected alpha in \[0, inf\)"),
    (lambda: wt.GradNorm(alpha=-1), r"GradNorm expected alpha in \[0, inf\), received -1.0"),
    (lambda: wt.Uncertainty(init=float("inf")),
     r"Uncertainty expected init \(the initial log-variance\) in \(-inf, inf\), received inf"),
    (lambda: wt.Uncertainty(init=float("nan")), r"in \(-inf, inf\), received nan"),
    (lambda: wt.PCGrad(seed=-1), "PCGrad expected seed as None or a non-negative integer"),
    (lambda: wt.DWA(temperature=float("inf")), r"DWA expected temperature in \(0, inf\), "
                                               r"received inf"),
    (lambda: wt.DWA(temperature=float("nan")), r"DWA expected temperature in \(0, inf\)"),
    (lambda: wt.DWA(temperature=0.0), r"DWA expected temperature in \(0, inf\), received 0.0"),
    (lambda: wt.PCGrad(seed=1.5), "PCGrad expected seed as None or a non-negative integer"),
])
def test_weighting_options_that_break_training_are_refused(make, message):
    # GradNorm(alpha=nan) trained on and left its weights NaN; Uncertainty(init=inf)
    # gave every task the weight exp(-inf) = 0, so nothing trained, silently;
    # PCGrad(seed=-1) failed in compile, inside NumPy.
    with pytest.raises((TypeError, ValueError), match=message):
        make()


@pytest.mark.parametrize("make, what", [
    (lambda v: wt.GradNorm(alpha=v), "GradNorm expected alpha"),
    (lambda v: wt.Uncertainty(init=v), "Uncertainty expected init"),
    (lambda v: wt.DWA(temperature=v), "DWA expected temperature"),
])
@pytest.mark.parametrize("value", [True, "1.5", None, [1.0]])
def test_weighting_numbers_that_are_not_real_numbers_are_refused(make, what, value):
    # float() took True as 1.0 and "1.5" as 1.5 (DWA took True as well); the
    # shared check_real refuses both, naming what it expected.
    with pytest.raises(TypeError, match=f"{what}.* as a real number, received "):
        make(value)


@pytest.mark.parametrize("method", [
    wt.DWA(temperature=1e308), wt.DWA(temperature=5e-324), wt.GradNorm(alpha=1e308),
    wt.Uncertainty(init=-1e308), wt.Static([1e308, 0.0]), wt.PCGrad(seed=2 ** 63),
    wt.MGDA("loss+"),
])
def test_every_setting_a_weighting_takes_is_one_a_saved_model_can_hold(method):
    # the extremes each weighting accepts must survive save (JSON holds no inf);
    # DWA(temperature=inf), once accepted, is refused in
    # test_weighting_options_that_break_training_are_refused
    config = json.loads(json.dumps(wt.weighting_to_dict(method), allow_nan=False))
    assert wt.weighting_from_dict(config).get_config() == method.get_config()


def test_weighting_numbers_accept_numpy_scalars():
    assert wt.GradNorm(alpha=np.float32(0.5)).alpha == 0.5
    assert type(wt.Uncertainty(init=np.int64(-1)).init) is float
    assert wt.DWA(temperature=np.float64(3.0)).temperature == 3.0


@given(seed=st.integers(0, 10_000), absent=st.integers(0, 2))
def test_an_absent_task_is_left_out_of_mgda_pcgrad_and_gradnorm(seed, absent):
    rng = np.random.default_rng(seed)
    grads = rng.standard_normal((3, 5))
    grads[absent] = 0.0  # no labelled sample: zero gradient, loss 0
    losses = rng.uniform(0.5, 2.0, 3)
    losses[absent] = 0.0
    present = np.arange(3) != absent
    names = ["a", "b", "c"]
    for make in (wt.MGDA, wt.PCGrad, lambda: wt.GradNorm(alpha=1.5)):
        full, sub = make().bind(names), make().bind(names[:2])
        if isinstance(full, wt.GradNorm):
            full.loss_weights(losses, present=present)
            sub.loss_weights(losses[present])
        out = full.combine(grads, losses, present=present)
        np.testing.assert_allclose(out, sub.combine(grads[present], losses[present]),
                                   rtol=1e-10, atol=1e-12)
        if isinstance(full, wt.MGDA):
            assert full.last_weights[absent] == 0
            np.testing.assert_allclose(full.last_weights[present], sub.last_weights)
        if isinstance(full, wt.GradNorm):
            assert full.weights.grad[absent] == 0
            np.testing.assert_allclose(full.weights.grad[present], sub.weights.grad)
    # No task present: no shared update.
    np.testing.assert_array_equal(
        wt.MGDA().bind(names).combine(np.zeros((3, 5)), np.zeros(3), present=[False] * 3), 0)


def test_uncertainty_and_dwa_ignore_an_absent_task():
    method = wt.Uncertainty().bind(["a", "b"])
    method.loss_weights(np.array([0.7, 0.0]), present=np.array([True, False]))
    assert method.log_vars.grad[1] == 0 and method.log_vars.grad[0] != 0
    dwa = wt.DWA().bind(["a", "b"])
    dwa.on_epoch_end(np.array([1.0, 1.0]))
    dwa.on_epoch_end(np.array([0.5, np.nan]))  # "b" had no labelled sample (early stop)
    dwa.on_epoch_end(np.array([0.5, 0.9]))
    r = np.array([0.5, 0.9])
    np.testing.assert_allclose(dwa.loss_weights(np.ones(2)),
                               2 * np.exp(r / 2) / np.exp(r / 2).sum())


def test_the_weightings_parameters_get_no_weight_decay():
    # a decay would pull uncertainty's s_t towards 0, a prior Kendall et al. do not have
    from tinynet.layers import Dense
    model = tn.mtl.HardSharing((3,), trunk=[Dense(4, seed=0)],
                               heads={"a": [Dense(2, seed=1)], "b": [Dense(1, seed=2)]})
    model.compile(tn.optim.AdamW(lr=0.1, weight_decay=0.5),
                  loss={"a": "cross_entropy", "b": "mse"}, weighting="uncertainty")
    groups = model.optimizer.param_groups
    assert groups[0]["weight_decay"] == 0.5 and groups[1]["weight_decay"] == 0.0
    assert groups[1]["params"] == model.weighting.parameters()


def _small_model():
    from tinynet.layers import Dense
    return tn.mtl.HardSharing((3,), trunk=[Dense(4, seed=0)],
                              heads={"a": [Dense(2, seed=1)], "b": [Dense(1, seed=2)]})


def _small_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    return x, {"a": rng.integers(0, 2, 16), "b": rng.standard_normal((16, 1))}


def test_every_weighting_has_its_registry_name_and_a_users_its_class_name():
    # the name decides whether the logs carry "<task>/weight" (not for equal, static)
    for name, cls in wt.WEIGHTINGS.items():
        assert cls.name == name

    class Mine(wt.Weighting):
        pass

    assert Mine.name == "Mine" and wt.Weighting.name == "equal"


def test_a_weighting_without_present_is_refused_at_compile():
    class OldStyle(wt.Weighting):  # written before present= existed
        def loss_weights(self, losses, training=True):
            return np.ones(self.n_tasks)

    with pytest.raises(TypeError, match=r"OldStyle\.loss_weights expected to accept the "
                                        r"keyword present=.*loss_weights\(losses, training=True\)"):
        _small_model().compile("adam", loss={"a": "cross_entropy", "b": "mse"},
                               weighting=OldStyle())

    class Forwarding(wt.Weighting):  # **kwargs takes present= too
        def loss_weights(self, losses, **kwargs):
            self.seen = kwargs["present"]
            return np.array([2.0, 1.0])

    model = _small_model()
    model.compile("adam", loss={"a": "cross_entropy", "b": "mse"}, weighting=Forwarding())
    model.fit(*_small_data(), epochs=1, batch_size=8, verbose=0, seed=0)
    np.testing.assert_array_equal(model.weighting.seen, [True, True])


@pytest.mark.parametrize("returned, message", [
    (np.ones(3), r"Bad\.loss_weights expected to return real numbers of shape \(2,\), "
                 r"returned float64 of shape \(3,\)"),
    (1.0, r"shape \(2,\), returned float64 of shape \(\)"),
    (np.array(["a", "b"]), r"returned <U1 of shape \(2,\)"),
    (np.array([1.0, np.nan]), r"Bad\.loss_weights expected finite results from finite losses"),
])
def test_a_weightings_results_are_checked(returned, message):
    class Bad(wt.Weighting):
        def loss_weights(self, losses, training=True, present=None):
            return returned

    model = _small_model()
    model.compile("adam", loss={"a": "cross_entropy", "b": "mse"}, weighting=Bad())
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.fit(*_small_data(), epochs=1, batch_size=8, verbose=0, seed=0)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # refused before the first update


def test_a_combine_of_the_wrong_shape_is_checked():
    class BadCombine(wt.Weighting):
        needs_task_gradients = True

        def combine(self, grads, losses, present=None):
            return grads  # (T, P) instead of (P,)

    model = _small_model()
    model.compile("adam", loss={"a": "cross_entropy", "b": "mse"}, weighting=BadCombine())
    with pytest.raises(ValueError, match=r"BadCombine\.combine expected to return real "
                                         r"numbers of shape \(16,\), returned float32 of "
                                         r"shape \(2, 16\)"):
        model.fit(*_small_data(), epochs=1, batch_size=8, verbose=0, seed=0)


def test_mgda_passes_a_diverging_runs_gradient_on_to_the_nan_stop():
    # A non-finite task gradient (a diverging run) has no min-norm problem; MGDA
    # raised deep in fit where every other weighting lets TerminateOnNaN stop it.
    for normalize in ("none", "l2", "loss+"):
        method = wt.MGDA(normalize).bind(["a", "b", "c"])
        d = method.combine(np.array([[1.0, np.inf], [1.0, 2.0], [0.0, 1.0]]), np.ones(3))
        assert not np.isfinite(d).all()
        np.testing.assert_allclose(method.last_weights, [1 / 3] * 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32) * 10
    y = {"a": rng.standard_normal((32, 2)) * 100, "b": rng.standard_normal((32, 1)) * 100}
    model = tn.mtl.HardSharing((3,), trunk=[tn.layers.Dense(4, seed=0)],
                               heads={"a": [tn.layers.Dense(2, seed=1)],
                                      "b": [tn.layers.Dense(1, seed=2)]})
    model.compile(tn.optim.SGD(lr=1.0), loss="mse", weighting="mgda")
    with pytest.warns(RuntimeWarning):
        model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.stop_reason.startswith("TerminateOnNaN")


@pytest.mark.parametrize("scale", [1e-170, 1e170])
def test_mgda_weights_do_not_depend_on_the_gradients_scale(scale):
    # Their Gram matrix under- or overflowed: 1e170 gradients were refused as
    # "not finite", 1e-170 ones all looked zero (equal weights for two tasks).
    grads = np.array([[3.0, 0.0, 1.0], [0.0, 1.0, 0.5], [1.0, 1.0, -2.0]])
    losses = np.array([0.5, 2.0, 1.0])
    for n in (2, 3):
        for normalize in ("none", "l2", "loss", "loss+"):
            plain = wt.MGDA(normalize).bind(list("abc")[:n])
            plain.combine(grads[:n], losses[:n])
            scaled = wt.MGDA(normalize).bind(list("abc")[:n])
            scaled.combine(grads[:n] * scale, losses[:n])
            np.testing.assert_allclose(scaled.last_weights, plain.last_weights, rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-170, 1e170])
def test_pcgrad_and_gradnorm_do_not_depend_on_the_gradients_scale(scale):
    # PCGrad's squared norms underflowed to 0 at 1e-170 (no projection at all)
    # and overflowed at 1e170; GradNorm's norms did the same: both are
    # homogeneous in the gradients, so their results must scale with them
    grads = np.array([[3.0, 0.0, 1.0], [-2.0, 1.0, 0.5], [1.0, -1.0, -2.0]])
    losses = np.array([0.5, 2.0, 1.0])
    for n in (2, 3):
        plain = wt.PCGrad(seed=1).bind(list("abc")[:n]).combine(grads[:n], losses[:n])
        scaled = wt.PCGrad(seed=1).bind(list("abc")[:n]).combine(grads[:n] * scale,
                                                                  losses[:n])
        assert np.abs(plain - grads[:n].sum(axis=0)).max() > 0.1  # projected
        np.testing.assert_allclose(scaled, plain * scale, rtol=1e-12)
        results = []
        for s in (1.0, scale):
            method = wt.GradNorm().bind(list("abc")[:n], np.float64)
            method.combine(grads[:n] * s, losses[:n])  # fixes L(0)
            method.weights.zero_grad()
            method.combine(grads[:n] * s, losses[:n] * [1.0, 0.5, 0.8][:n])
            results.append(method.weights.grad.copy())
        assert np.abs(results[0]).min() > 0
        np.testing.assert_allclose(results[1], results[0] * scale, rtol=1e-12)


@pytest.mark.parametrize("make, call", [
    (lambda: wt.DWA(), lambda w, losses, on: w.loss_weights(losses, present=on)),
    (lambda: wt.GradNorm(), lambda w, losses, on: w.combine(np.eye(2), losses, present=on)),
    (lambda: wt.MGDA("loss"), lambda w, losses, on: w.combine(np.eye(2), losses, present=on)),
    (lambda: wt.MGDA("loss+"), lambda w, losses, on: w.combine(np.eye(2), losses, present=on)),
    (lambda: wt.MGDAUB("loss"), lambda w, losses, on: w.combine(np.eye(2), losses,
                                                                 present=on))])
def test_a_negative_loss_is_refused_where_losses_are_divided(make, call):
    # they floored it at 1e-12, which turned a negative loss (a user's) into a
    # huge positive weight or ratio; a loss of 0 is still taken as 1e-12
    with pytest.raises(ValueError, match=r"expected non-negative task losses \(.*\), "
                                         r"received -0.5 for task 'b'"):
        call(make().bind(["a", "b"]), np.array([1.0, -0.5]), None)
    for losses, on in [(np.array([1.0, 0.0]), None), (np.array([1.0, -0.5]), [True, False]),
                       (np.array([1.0, np.nan]), None)]:
        call(make().bind(["a", "b"]), losses, on)  # absent, zero, NaN: no error
    wt.MGDA("none").bind(["a", "b"]).combine(np.eye(2), np.array([1.0, -0.5]))
    zero = wt.MGDA("loss").bind(["a", "b"])
    zero.combine(np.eye(2), np.array([1.0, 0.0]))
    np.testing.assert_allclose(zero.last_weights, [1.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("weights", [[1.0, "a"], {"a": "x"}, [1j, 1.0], [True, False],
                                     {"b": True}, [[1.0, 2.0]], "12", [1.0, None],
                                     np.array(1.0), np.ones((1, 2))])
def test_static_weights_that_are_not_real_numbers_are_refused(weights):
    # "a" and "x" failed inside NumPy ("could not convert string to float"),
    # 1j inside float(), and booleans were taken as the weights 1 and 0.
    with pytest.raises(ValueError, match=r"Static weighting expected 2 finite non-negative "
                                         r"real numbers \(one per task \['a', 'b'\]\), "
                                         r"received"):
        wt.Static(weights).bind(["a", "b"])
    assert list(wt.Static(np.array([0.5, 2])).bind(["a", "b"]).last_weights) == [0.5, 2.0]


@pytest.mark.parametrize("weights", [[0.0, 0.0], {"a": 0, "b": 0.0}, np.zeros(2)])
def test_static_weights_that_are_all_zero_are_refused(weights):
    # every task's loss counted 0: fit ran its epochs and changed nothing
    with pytest.raises(ValueError, match=r"Static weighting expected at least one positive "
                                         r"weight \(one per task \['a', 'b'\]\), received all "
                                         r"zero"):
        wt.Static(weights).bind(["a", "b"])
    assert list(wt.Static({"a": 0.0}).bind(["a", "b"]).last_weights) == [0.0, 1.0]


@pytest.mark.parametrize("gram, error, message", [
    ("ab", ValueError, r"min_norm_weights expected a Gram matrix of real numbers, received 'ab'"),
    ([[1, 1j], [1j, 1]], ValueError, "of real numbers, received"),
    (np.array([[1.0, 5.0], [-5.0, 1.0]]), ValueError,
     r"min_norm_weights expected a symmetric Gram matrix \(M\[s, t\] = g_s \. g_t\), "
     r"received one whose largest asymmetry \|M - M\.T\| is 10"),
    (np.diag([-1.0, 1.0, 1.0]), ValueError,
     r"min_norm_weights expected a Gram matrix with a non-negative diagonal "
     r"\(M\[t, t\] = \|g_t\|\^2\), received -1.0 at 0"),
])
def test_min_norm_weights_refuses_what_is_not_a_gram_matrix(gram, error, message):
    # A string failed inside NumPy; a non-symmetric or negative-diagonal matrix
    # (no Gram matrix) gave weights without a word.
    with pytest.raises(error, match=message):
        min_norm_weights(gram)
    # integers and rounding-level asymmetry are fine
    assert list(min_norm_weights([[1, 0], [0, 1]])) == [0.5, 0.5]
    g = np.random.default_rng(0).standard_normal((3, 50))
    gram = g @ g.T
    gram[0, 1] += 1e-13
    min_norm_weights(gram)


@pytest.mark.parametrize("spec", [wt.MGDA(), {"a": 1.0}, [1.0, 2.0], None])
def test_get_refuses_options_it_would_ignore(spec):
    # get(MGDA(), normalize="l2") returned the instance with normalize="none":
    # the options went nowhere, without a word.
    with pytest.raises(TypeError, match=r"weighting.get takes options \(\['normalize'\]\) "
                                        r"only with a weighting name"):
        wt.get(spec, normalize="l2")
    assert wt.get("mgda", normalize="l2").normalize == "l2"


def test_get_takes_a_weighting_class_with_its_options():
    # a class fell through to named(), which returned None: 'NoneType' object is
    # not callable
    assert wt.get(wt.MGDA, normalize="l2").normalize == "l2"
    assert type(wt.get(wt.PCGrad)) is wt.PCGrad
    assert wt.get(wt.Static, weights=[1.0, 2.0]).weights == [1.0, 2.0]

    class Halves(wt.Weighting):
        def loss_weights(self, losses, training=True, present=None):
            return np.full(self.n_tasks, 0.5)
    assert type(wt.get(Halves)) is Halves
    assert wt.named(Halves) is Halves and wt.named("pcgrad") is wt.PCGrad
    assert wt.named(3) is None and wt.named(tn.optim.SGD) is None


@pytest.mark.parametrize("spec", [3, True, tn.optim.SGD, object])
def test_get_refuses_anything_else_naming_what_it_takes(spec):
    with pytest.raises(TypeError, match=r"^expected a weighting as a name .* received "):
        wt.get(spec)
    with pytest.raises(TypeError, match=r"options \(\['alpha'\]\) only with a weighting "
                                        r"name or class"):
        wt.get(spec, alpha=1.0)
