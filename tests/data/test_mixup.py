"""Mixup: inputs and targets mixed with the same partners and weights, every
documented error, and its use in the multi-task experiments' ``run``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.data import mixup, one_hot


def _partners_and_weights(targets):
    """(π, λ) read back from the mixed one-hot rows of labels 0..n-1."""
    n = len(targets)
    lam = targets[np.arange(n), np.arange(n)].astype(np.float64)
    off = targets.copy()
    off[np.arange(n), np.arange(n)] = 0
    # a row whose partner is itself (or λ = 1) has no off-diagonal weight
    partner = np.where(off.max(axis=1) > 0, off.argmax(axis=1), np.arange(n))
    return partner, lam


@given(n=st.integers(1, 40), alpha=st.floats(0.05, 5), seed=st.integers(0, 2**32 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_inputs_and_targets_share_partners_and_weights(n, alpha, seed, dtype):
    # labels 0..n-1 as n classes: each mixed row shows its λ_i (at i) and partner π(i)
    y = np.arange(n)
    x = np.arange(n, dtype=dtype)[:, None] * np.array([1.0, -2.0], dtype=dtype)
    x_mixed, t = mixup(x, y, alpha, n, seed=seed)
    assert x_mixed.dtype == dtype and t.dtype == dtype
    assert x_mixed.shape == x.shape and t.shape == (n, n)
    np.testing.assert_allclose(t.sum(axis=1), 1, rtol=1e-6)
    assert (t >= 0).all() and ((t > 0).sum(axis=1) <= 2).all()
    partner, lam = _partners_and_weights(t)
    moved = partner != np.arange(n)
    assert len(set(partner[moved])) == moved.sum()          # π is a permutation
    expect = lam[:, None] * x + (1 - lam[:, None]) * x[partner]
    np.testing.assert_allclose(x_mixed, expect, rtol=1e-5, atol=1e-5 * n)
    # the inputs are mixed exactly as their one-hot targets are
    x_onehot, t2 = mixup(one_hot(y, n, dtype), y, alpha, n, seed=seed)
    np.testing.assert_array_equal(x_onehot, t2)
    np.testing.assert_array_equal(t2, t)


def test_every_task_is_mixed_with_the_inputs_partners_and_weights():
    n = 30
    y = {"a": np.arange(n), "b": np.arange(n)[::-1].copy()}
    x = np.random.default_rng(0).normal(size=(n, 2, 3)).astype(np.float32)
    x_mixed, t = mixup(x, y, 0.4, {"a": n, "b": n}, seed=3)
    assert set(t) == {"a", "b"} and x_mixed.shape == x.shape
    # b's classes are a's reversed: the same mixing read through the reversal
    np.testing.assert_array_equal(t["b"], t["a"][:, ::-1])
    partner, lam = _partners_and_weights(t["a"])
    np.testing.assert_allclose(x_mixed, lam[:, None, None] * x
                               + (1 - lam[:, None, None]) * x[partner], atol=1e-6)
    # one int serves every task
    _, same = mixup(x, y, 0.4, n, seed=3)
    np.testing.assert_array_equal(same["a"], t["a"])


def test_a_seed_or_generator_repeats_the_draws_and_other_seeds_differ():
    x = np.linspace(0, 1, 40, dtype=np.float64).reshape(20, 2)
    y = np.arange(20) % 4
    first = mixup(x, y, 1.0, 4, seed=7)
    again = mixup(x, y, 1.0, 4, seed=np.random.default_rng(7))
    other = mixup(x, y, 1.0, 4, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    # the inputs are not modified in place
    np.testing.assert_array_equal(x, np.linspace(0, 1, 40).reshape(20, 2))


def test_small_alpha_mixes_little_and_alpha_one_draws_lambda_uniformly():
    n = 4000
    y = np.arange(n)
    _, small = mixup(np.zeros((n, 1)), y, 0.05, n, seed=0)
    _, flat = mixup(np.zeros((n, 1)), y, 1.0, n, seed=0)
    lam_small = small[y, y]
    lam_flat = flat[y, y]
    # Beta(0.05, 0.05) puts most weight within 0.05 of 0 or 1; Beta(1, 1) 10 %
    assert np.mean(np.minimum(lam_small, 1 - lam_small) < 0.05) > 0.8
    assert abs(np.mean(np.minimum(lam_flat, 1 - lam_flat) < 0.05) - 0.1) < 0.03


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(alpha=0.0), ValueError, r"mixup expected alpha in \(0, inf\), received 0\.0"),
    (dict(alpha=-1), ValueError, r"mixup expected alpha in \(0, inf\), received -1\.0"),
    (dict(alpha=float("nan")), ValueError, r"alpha in \(0, inf\), received nan"),
    (dict(alpha=True), TypeError, "alpha as a real number, received True of type bool"),
    (dict(alpha="0.2"), TypeError, "received '0.2' of type str"),
    (dict(y=np.array([0, 1, 3])), ValueError, r"labels in \[0, 2\] for 3 classes, "
                                              r"received values in \[0, 3\]"),
    (dict(y=np.array([0, -1, 2])), ValueError, r"labels in \[0, 2\]"),
    (dict(y=np.array([0, 1])), ValueError, "expected 3 labels"),
    (dict(y=np.array([0.5, 1, 2])), TypeError, "integer class labels"),
    (dict(n_classes=0), ValueError, "n_classes"),
    (dict(n_classes={"a": 3}), TypeError, "n_classes as an int for array labels"),
    (dict(x=np.zeros((3, 2), dtype=np.int64)), TypeError, "floating-point dtype"),
    (dict(x=np.zeros((0, 2))), ValueError, "at least one sample"),
    (dict(x=np.zeros(())), ValueError, "at least 1 dimensions"),
    (dict(x=np.array([[0.0], [np.nan], [1.0]])), ValueError, "x"),
    (dict(seed=-1), ValueError, "seed as None or a non-negative integer"),
    (dict(y={}), ValueError, "non-empty"),
    (dict(y={"a": np.array([0, 1, 2])}, n_classes={"b": 3}), ValueError,
     r"n_classes for the tasks of y \['a'\], received \['b'\]"),
    (dict(y={"a": np.array([0, 1, 5])}), ValueError, r"mixup \(y\['a'\]\) expected labels"),
])
def test_bad_input_gets_a_clear_error(kwargs, error, message):
    args = dict(x=np.zeros((3, 2)), y=np.array([0, 1, 2]), alpha=0.2, n_classes=3, seed=0)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        mixup(**args)


# ------------------------------------------------ run(mixup=) of the mtl experiments
def _tiny_problem(n=48):
    from tinynet.mtl import experiments as ex
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = {"a": rng.integers(0, 3, n), "b": rng.integers(0, 4, n)}
    return ex, x, y, (lambda: ex.hard_sharing(6, [8], {"a": 3, "b": 4}, 0))


def test_run_trains_each_epoch_on_a_fresh_mix_reproducibly(monkeypatch):
    ex, x, y, build = _tiny_problem()
    from tinynet.mtl.graph import Model
    seen = []
    fit = Model.fit

    def spy(self, xs, ys, **kw):
        seen.append((kw["initial_epoch"], xs, ys))
        return fit(self, xs, ys, **kw)

    monkeypatch.setattr(Model, "fit", spy)
    first = ex.run(build(), (x, y), (x, y), loss="cross_entropy", metrics=["accuracy"],
                   epochs=3, batch_size=16, seed=5, mixup=0.4, lr_schedule="cosine")
    assert [e for e, _, _ in seen] == [0, 1, 2]
    for _, xs, ys in seen:
        assert ys["a"].shape == (48, 3) and ys["b"].shape == (48, 4)
        np.testing.assert_allclose(ys["a"].sum(axis=1), 1, rtol=1e-6)
        assert not np.array_equal(xs, x)
    assert not np.array_equal(seen[0][1], seen[1][1])      # a fresh mix each epoch
    assert len(first["history"]["a/loss"]) == 3 and len(first["history"]["loss"]) == 3
    seen.clear()
    again = ex.run(build(), (x, y), (x, y), loss="cross_entropy", metrics=["accuracy"],
                   epochs=3, batch_size=16, seed=5, mixup=0.4, lr_schedule="cosine")
    assert again["history"] == first["history"] and again["test"] == first["test"]


def test_run_without_mixup_fits_the_labels_as_they_are_in_one_call(monkeypatch):
    ex, x, y, build = _tiny_problem()
    from tinynet.mtl.graph import Model
    calls = []
    fit = Model.fit

    def spy(self, xs, ys, **kw):
        calls.append((xs, ys, kw.get("initial_epoch", 0), kw["epochs"]))
        return fit(self, xs, ys, **kw)

    monkeypatch.setattr(Model, "fit", spy)
    ex.run(build(), (x, y), (x, y), loss="cross_entropy", epochs=2, batch_size=16, seed=5)
    assert len(calls) == 1 and calls[0][2:] == (0, 2)
    assert calls[0][0] is x and all(calls[0][1][t] is y[t] for t in y)


@pytest.mark.parametrize("mixup_value, error, message", [
    (-0.1, ValueError, r"run expected mixup in \[0, inf\), received -0\.1"),
    (float("inf"), ValueError, r"run expected mixup in \[0, inf\), received inf"),
    (True, TypeError, "run expected mixup as a real number, received True of type bool"),
])
def test_run_refuses_a_bad_alpha_before_training(mixup_value, error, message):
    ex, x, y, build = _tiny_problem()
    with pytest.raises(error, match=message):
        ex.run(build(), (x, y), (x, y), loss="cross_entropy", epochs=1, mixup=mixup_value)


def test_run_refuses_mixup_for_an_output_that_is_not_one_logit_per_class():
    from tinynet.layers import Dense
    from tinynet.mtl import Input, Model
    ex, x, y, _ = _tiny_problem()
    inp = Input((6,))
    model = Model(inp, {"a": Dense(3)(inp), "b": Dense(1)(inp)})
    with pytest.raises(ValueError, match=r"one logit per class \(2 or more\), received "
                                         r"output shapes \{'b': \(1,\)\}"):
        ex.run(model, (x, y), (x, y), loss="cross_entropy", epochs=1, mixup=0.2)
