"""Fused optimizer kernels against their NumPy references (tinynet.optim.rules)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet.kernels import optim as kopt
from kernel_helpers import dtypes, needs_numba

rules = pytest.importorskip("tinynet.optim.rules")
pytestmark = needs_numba

sizes = st.sampled_from([0, 1, 3, 17, 1000, 140001])  # 140001: the parallel path


def _arrays(seed, n, dtype, k):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(n).astype(dtype) for _ in range(k)]
    return out


def _close(a, b, dtype):
    # identical operations in the same dtype: equal up to one rounding of a sqrt
    np.testing.assert_allclose(a, b, rtol=3e-7 if dtype == np.float32 else 1e-15, atol=0)


@given(n=sizes, dtype=dtypes, momentum=st.sampled_from([0.0, 0.9]),
       dampening=st.sampled_from([0.0, 0.3]), nesterov=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01]), first=st.booleans(),
       seed=st.integers(0, 2**31))
def test_sgd(n, dtype, momentum, dampening, nesterov, weight_decay, first, seed):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    p, g, buf = _arrays(seed, n, dtype, 3)
    p2, g2, buf2 = p.copy(), g.copy(), buf.copy()
    kw = dict(lr=0.1, momentum=momentum, dampening=dampening, nesterov=nesterov,
              weight_decay=weight_decay, first_step=first)
    kopt.sgd(p, g, buf, **kw)
    rules.sgd(p2, g2, buf2, **kw)
    _close(p, p2, dtype)
    if momentum:
        _close(buf, buf2, dtype)


@given(n=sizes, dtype=dtypes, step=st.integers(1, 50), beta1=st.sampled_from([0.9, 0.3]),
       weight_decay=st.sampled_from([0.0, 0.05]), amsgrad=st.booleans(),
       decoupled=st.booleans(), seed=st.integers(0, 2**31))
def test_adam(n, dtype, step, beta1, weight_decay, amsgrad, decoupled, seed):
    p, g, m, v, vmax = _arrays(seed, n, dtype, 5)
    v, vmax = np.abs(v), np.abs(vmax)
    copies = [a.copy() for a in (p, g, m, v, vmax)]
    kw = dict(step=step, lr=1e-3, beta1=beta1, beta2=0.999, eps=1e-8,
              weight_decay=weight_decay, amsgrad=amsgrad, decoupled=decoupled)
    kopt.adam(p, g, m, v, vmax, **kw)
    rules.adam(*copies, **kw)
    for a, b in zip((p, m, v, vmax), (copies[0], copies[2], copies[3], copies[4])):
        _close(a, b, dtype)


@given(n=sizes, dtype=dtypes, momentum=st.sampled_from([0.0, 0.9]), centered=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.05]), seed=st.integers(0, 2**31))
def test_rmsprop(n, dtype, momentum, centered, weight_decay, seed):
    p, g, sq, ga, buf = _arrays(seed, n, dtype, 5)
    sq = np.abs(sq) + 2
    ga = ga * 0.1
    copies = [a.copy() for a in (p, g, sq, ga, buf)]
    kw = dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=weight_decay, momentum=momentum,
              centered=centered)
    kopt.rmsprop(p, g, sq, ga, buf, **kw)
    rules.rmsprop(*copies, **kw)
    for a, b in zip((p, sq, ga, buf), (copies[0], copies[2], copies[3], copies[4])):
        _close(a, b, dtype)


@given(n=sizes, dtype=dtypes, step=st.integers(1, 20), lr_decay=st.sampled_from([0.0, 0.1]),
       weight_decay=st.sampled_from([0.0, 0.05]), seed=st.integers(0, 2**31))
def test_adagrad(n, dtype, step, lr_decay, weight_decay, seed):
    p, g, s = _arrays(seed, n, dtype, 3)
    s = np.abs(s)
    copies = [a.copy() for a in (p, g, s)]
    kw = dict(step=step, lr=0.01, lr_decay=lr_decay, eps=1e-10, weight_decay=weight_decay)
    kopt.adagrad(p, g, s, **kw)
    rules.adagrad(*copies, **kw)
    _close(p, copies[0], dtype)
    _close(s, copies[2], dtype)


def test_bad_arrays_are_refused():
    p = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="shape"):
        kopt.adagrad(p, np.ones(3, np.float32), np.ones(4, np.float32), step=1, lr=0.1,
                     lr_decay=0.0, eps=1e-10, weight_decay=0.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        kopt.adagrad(np.ones(4, np.int64), np.ones(4, np.int64), np.ones(4, np.int64), step=1,
                     lr=0.1, lr_decay=0.0, eps=1e-10, weight_decay=0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        big = np.ones(8, np.float32)
        kopt.adagrad(big[::2], big[::2].copy(), big[::2].copy(), step=1, lr=0.1,
                     lr_decay=0.0, eps=1e-10, weight_decay=0.0)


def _near_floor(rng, n, dtype):
    """State values around the state floor, both signs, plus zeros."""
    tiny = kopt.STATE_FLOOR[np.dtype(dtype)]
    return (rng.choice([0.0, 0.3, 0.9, 1.0, 1.2, 5.0], n) * rng.choice([-1, 1], n)
            * tiny).astype(dtype)


@given(dtype=dtypes, seed=st.integers(0, 2**31), name=st.sampled_from(["sgd", "adam", "rmsprop"]))
def test_state_below_the_floor_is_flushed_like_the_reference(dtype, seed, name):
    """With zero gradients, state near the floor decays below it: kernel and
    reference both store exactly zero there, and agree everywhere else."""
    rng = np.random.default_rng(seed)
    n = 257
    p = rng.standard_normal(n).astype(dtype)
    g = np.zeros(n, dtype)
    states = [_near_floor(rng, n, dtype) for _ in range(3)]
    if name == "sgd":
        kw = dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0,
                  first_step=False)
        args = (states[0],)
    elif name == "adam":
        kw = dict(step=3, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                  amsgrad=False, decoupled=False)
        args = (states[0], np.abs(states[1]), None)
    else:
        kw = dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.9, centered=True)
        args = (np.abs(states[0]), states[1], states[2])
    copies = [None if a is None else a.copy() for a in args]
    p2 = p.copy()
    getattr(kopt, name)(p, g, *args, **kw)
    getattr(rules, name)(p2, g.copy(), *copies, **kw)
    tiny = kopt.STATE_FLOOR[np.dtype(dtype)]
    # a divisor (Adam's v, centred RMSprop's s) stays where what it divides
    # (m; the gradient, which is 0 here, and g_bar) is non-zero
    numerators = ([None, args[0], None] if name == "adam" else
                  [args[1], None, None] if name == "rmsprop" else [None])
    for a, b, numerator in zip(args, copies, numerators):
        if a is None:
            continue
        np.testing.assert_array_equal(a, b)
        kept_small = (a != 0) & (np.abs(a) < tiny)
        if numerator is not None:
            kept_small &= numerator == 0
        assert not np.any(kept_small), "a state value below the floor was kept"
    np.testing.assert_array_equal(p, p2)


CASES_WITH_A_SMALL_EPS = [
    ("adam", dict(lr=1e-3, eps=1e-20)), ("adam", dict(lr=1e-3, eps=0.0)),
    ("adamw", dict(lr=1e-3, eps=0.0, amsgrad=True)), ("rmsprop", dict(lr=1e-3, eps=0.0)),
    ("rmsprop", dict(lr=1e-3, eps=0.0, centered=True, momentum=0.5)),
    ("adagrad", dict(lr=1e-3, eps=0.0))]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("name, kwargs", CASES_WITH_A_SMALL_EPS)
def test_a_small_eps_and_tiny_gradients_give_bounded_steps(name, kwargs, backend):
    """Gradients so small that the second moment starts below the floor: the
    divisor is kept where the numerator is not zero, so a step stays about lr
    (flushing it made the step lr * m / eps: -inf with eps = 0), and a
    centred RMSprop never takes the root of a negative s - g_bar^2."""
    previous = tn.kernels.set_backend(backend)
    try:
        for dtype, g in ((np.float32, 1e-16), (np.float64, 1e-152)):
            p = tn.Param(np.ones(2, dtype))
            opt = tn.optim.get(name, [p], **kwargs)
            for step in range(6):  # (an exact zero gradient with eps = 0 is 0/0, as in torch)
                p.grad = np.array([g, -g] if step < 3 else [0.0, 0.0], dtype)
                before = p.value.copy()
                opt.step()
                assert np.isfinite(p.value).all(), (dtype, step, p.value)
                # (centred RMSprop's first step is 10 lr: sqrt(s - g_bar^2) = 0.0995 |g|)
                assert np.abs(p.value - before).max() <= 20 * kwargs["lr"], (dtype, step)
            if g > 1e3 * kwargs["eps"]:  # else eps rightly dwarfs the step
                assert p.value[0] < 1 < p.value[1], (dtype, p.value)
    finally:
        tn.kernels.set_backend(previous)


@pytest.mark.parametrize("name, kwargs", CASES_WITH_A_SMALL_EPS)
def test_a_small_eps_and_tiny_gradients_match_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    for dtype, g in ((np.float32, 1e-15), (np.float64, 1e-151)):
        grads = [np.array([g, -3 * g], dtype)] * 3 + [np.zeros(2, dtype)] * 2
        p = tn.Param(np.ones(2, dtype))
        opt = tn.optim.get(name, [p], **kwargs)
        pt = torch.tensor(np.ones(2, dtype), requires_grad=True)
        topt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[name](
            [pt], **kwargs)
        for grad in grads:
            p.grad = grad.copy()
            opt.step()
            pt.grad = torch.from_numpy(grad.copy())
            topt.step()
            np.testing.assert_allclose(p.value, pt.detach().numpy(), rtol=4 * np.finfo(dtype).eps)


def test_nan_and_inf_state_propagate():
    """The flush never turns NaN or infinity into zero: kernel == reference."""
    def run(update):
        p = np.ones(4, np.float32)
        m = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
        v = np.array([1.0, 1.0, 1.0, np.inf], np.float32)
        update(p, np.zeros(4, np.float32), m, v, None, step=1, lr=1e-3, beta1=0.9,
               beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False)
        return p, m, v
    with np.errstate(invalid="ignore"):  # inf - inf in the reference's lerp
        reference = run(rules.adam)
    for a, b in zip(run(kopt.adam), reference):
        np.testing.assert_array_equal(a, b)
    p, m, v = run(kopt.adam)
    assert np.isnan(m[:3]).all() and np.isnan(p[:3]).all() and v[3] == np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_amsgrad_maximum_keeps_nan_like_the_reference(dtype):
    """AMSGrad's running maximum takes a NaN second moment (np.maximum, as
    torch.maximum), and keeps a NaN maximum, instead of the finite old value."""
    def run(update):
        p = np.ones(4, dtype)
        m, v = np.zeros(4, dtype), np.ones(4, dtype)
        v_max = np.array([1.0, np.nan, 1.0, 1.0], dtype)
        grad = np.array([np.nan, 1.0, 0.5, np.inf], dtype)
        update(p, grad, m, v, v_max, step=3, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0, amsgrad=True, decoupled=False)
        return p, m, v, v_max
    with np.errstate(invalid="ignore"):
        reference = run(rules.adam)
        result = run(kopt.adam)
    assert np.isnan(reference[3][:2]).all()
    for a, b in zip(result, reference):
        np.testing.assert_array_equal(a, b)
