"""Fused stepping over flat buffers: one rule call per run, same numbers as per-parameter steps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.optim import fused
from tinynet.param import contiguous_span, ensure_flat, flatten_params, is_flat

SHAPES = [(5, 3), (3,), (3, 4), (4,), (0, 2), (4, 2), (2,)]

OPTIMIZERS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {"lr": 0.01}),
    ("adamw", {"lr": 0.01, "amsgrad": True}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.1}),
]


def _params(seed, dtype, flat):
    rng = np.random.default_rng(seed)
    params = [tn.Param(rng.standard_normal(s).astype(dtype), name=f"p{i}")
              for i, s in enumerate(SHAPES)]
    if flat:
        flatten_params(params)
    return params


def _train(name, kwargs, dtype, flat, seed, frozen=(), steps=6, unfreeze_at=3):
    params = _params(seed, dtype, flat)
    for i in frozen:
        params[i].trainable = False
    opt = tn.optim.get(name, params, **kwargs)
    rng = np.random.default_rng(seed + 1)
    for t in range(steps):
        if t == unfreeze_at:
            for i in frozen:
                params[i].trainable = True
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(dtype)
        opt.step()
    return params, opt


@settings(max_examples=30, deadline=None)
@given(which=st.integers(0, len(OPTIMIZERS) - 1), dtype=st.sampled_from([np.float32, np.float64]),
       frozen=st.sets(st.integers(0, len(SHAPES) - 1), max_size=3), seed=st.integers(0, 2**31))
def test_fused_steps_equal_per_parameter_steps_to_the_bit(which, dtype, frozen, seed):
    """Flat buffers (fused runs, split by frozen parameters and, after they
    are unfrozen, by their different step counts) give the very same
    parameters and state as separate arrays stepped one by one."""
    name, kwargs = OPTIMIZERS[which]
    fused_params, fused_opt = _train(name, kwargs, dtype, True, seed, frozen)
    plain_params, plain_opt = _train(name, kwargs, dtype, False, seed, frozen)
    for a, b in zip(fused_params, plain_params):
        np.testing.assert_array_equal(a.value, b.value)
        sa, sb = fused_opt.state[a], plain_opt.state[b]
        assert sa.keys() == sb.keys()
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key])


def test_a_flat_model_is_one_run_and_its_state_is_flat():
    params = _params(0, np.float32, True)
    opt = tn.optim.Adam(params)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    runs = opt._runs(0, opt.param_groups[0])
    assert len(runs) == 1 and len(runs[0].params) == len(params)
    assert runs[0].value.size == sum(p.size for p in params)
    for key in ("exp_avg", "exp_avg_sq"):
        assert contiguous_span([opt.state[p][key] for p in params]) is not None
    # the per-parameter state is what state_dict saves, and it resumes exactly
    saved = opt.state_dict()
    copy = _params(0, np.float32, True)
    for p, q in zip(copy, params):
        p.value = q.value
    opt2 = tn.optim.Adam(copy)
    opt2.load_state_dict(saved)
    for opt_, ps in ((opt, params), (opt2, copy)):
        for p in ps:
            p.grad = np.full(p.shape, 0.5, np.float32)
        opt_.step()
    for p, q in zip(params, copy):
        np.testing.assert_array_equal(p.value, q.value)


def test_frozen_parameters_split_runs_and_keep_their_values():
    params = _params(1, np.float64, True)
    params[2].trainable = False
    before = params[2].value.copy()
    opt = tn.optim.SGD(params, lr=0.1, momentum=0.9)
    for _ in range(2):
        for p in params:
            p.grad = np.ones(p.shape)
        opt.step()
    runs = opt._runs(0, opt.param_groups[0])
    assert [len(r.params) for r in runs] == [2, 4]
    np.testing.assert_array_equal(params[2].value, before)
    assert params[2] not in opt.state


def test_momentum_buffer_created_inside_a_fused_step_is_shared_out():
    params = _params(2, np.float32, True)
    opt = tn.optim.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    opt.step()
    for p in params:
        buf = opt.state[p]["momentum_buffer"]
        assert buf.shape == p.shape
        np.testing.assert_array_equal(buf, np.ones(p.shape, np.float32))
    assert contiguous_span([opt.state[p]["momentum_buffer"] for p in params]) is not None


def test_replaced_state_arrays_are_noticed():
    """A plan depends on the state arrays' identity: replacing one replans."""
    params = _params(3, np.float64, True)
    opt = tn.optim.Adam(params, lr=0.1)
    for p in params:
        p.grad = np.ones(p.shape)
    opt.step()
    opt.state[params[1]]["exp_avg"] = np.zeros(params[1].shape)
    opt.step()
    assert not np.all(opt.state[params[1]]["exp_avg"] == 0)  # stepped, not a stale view


@pytest.mark.parametrize("which", range(len(OPTIMIZERS)), ids=[o[0] for o in OPTIMIZERS])
def test_binding_again_replans_the_state_of_the_parameters_that_stay(which):
    """Bound again without one parameter (in the middle) and with a new one,
    moved into a new flat buffer as a model's compile does: the state arrays
    of those that stay no longer line up in their old flat state, so the
    plan copies them into a new one; their steps stay those of an
    uninterrupted optimizer, to the bit."""
    name, kwargs = OPTIMIZERS[which]
    params, opt = _train(name, kwargs, np.float32, True, 5)
    same, uninterrupted = _train(name, kwargs, np.float32, True, 5)
    kept = params[:2] + params[3:]
    new = tn.Param(np.ones((3, 2), np.float32), name="new")
    ensure_flat(kept + [new])
    opt.bind(kept + [new])
    assert set(opt.state) == set(kept)
    rng = np.random.default_rng(7)
    for p, q in zip(params, same):
        p.grad = q.grad = rng.standard_normal(p.shape).astype(np.float32)
    new.grad = np.ones((3, 2), np.float32)
    for _ in range(2):
        opt.step()
        uninterrupted.step()
    for p, q in zip(kept, same[:2] + same[3:]):
        np.testing.assert_array_equal(p.value, q.value)
        assert opt.state[p].keys() == uninterrupted.state[q].keys()
        for key, value in uninterrupted.state[q].items():
            np.testing.assert_array_equal(opt.state[p][key], value)
    runs = opt._runs(0, opt.param_groups[0])
    assert [len(run.params) for run in runs] == [len(kept), 1]
    for key in runs[0].merged:
        if key != "step":
            assert contiguous_span([opt.state[p][key] for p in kept]) is not None


def test_sequential_binds_into_one_flat_buffer():
    model = tn.Sequential([tn.layers.Dense(8, activation="relu", input_dim=5),
                           tn.layers.BatchNorm(), tn.layers.Dense(3)])
    model.compile(tn.optim.Adam(lr=0.01), loss="cross_entropy")
    x = np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32)
    y = np.arange(16) % 3
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    params = model.parameters()
    assert is_flat(params)
    assert len(model.optimizer._runs(0, model.optimizer.param_groups[0])) == 1


def test_span_helpers():
    a, b = tn.Param(np.ones((2, 3))), tn.Param(np.zeros(4))
    assert not is_flat([a, b]) and contiguous_span([a.value, b.value]) is None
    assert ensure_flat([a, b]) and is_flat([a, b])
    span = contiguous_span([a.value, b.value])
    assert span.shape == (10,)
    span[:] = 7  # writes through to the parameters
    assert np.all(a.value == 7) and np.all(b.value == 7)
    assert contiguous_span([b.value, a.value]) is None  # order matters
    assert contiguous_span([]) is None
    mixed = [tn.Param(np.ones(2, np.float32)), tn.Param(np.ones(2, np.float64))]
    assert not ensure_flat(mixed)  # several dtypes stay as they are


def test_a_run_large_enough_for_threads_matches_too():
    """A run over the kernels' parallel threshold (split over threads)."""
    rng = np.random.default_rng(5)
    initial = [rng.standard_normal(s).astype(np.float32) for s in [(70000,), (70001,)]]
    results = []
    for flat in (True, False):
        params = [tn.Param(v) for v in initial]
        if flat:
            flatten_params(params)
        opt = tn.optim.Adam(params)
        grads = np.random.default_rng(6)
        for _ in range(3):
            for p in params:
                p.grad = grads.standard_normal(p.shape).astype(np.float32)
            opt.step()
        results.append((params, opt))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(a.value, b.value)
    assert len(fused.plan(results[0][0], results[0][1].state)) == 1
