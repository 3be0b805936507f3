"""Optimizers: step for step against torch.optim, hand-worked steps, groups, state."""

import io
import json

import numpy as np
import pytest

import tinynet as tn
from tinynet.optim import SGD, Adagrad, Adam, AdamW, RMSprop

SHAPES = [(3, 4), (4,), (1,)]

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {}),
    ("Adam", {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "amsgrad": True}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.3}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.05,
                 "initial_accumulator_value": 0.5, "eps": 1e-6}),
]


def make_params(rng, dtype=np.float64):
    return [tn.Param(rng.standard_normal(s).astype(dtype), name=f"p{i}")
            for i, s in enumerate(SHAPES)]


def run(opt, params, grads):
    """Step ``opt`` once per entry of ``grads`` (one list of arrays per step)."""
    for step_grads in grads:
        opt.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad = g
        opt.step()


def random_grads(rng, n_steps, dtype=np.float64):
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(n_steps)]


# --------------------------------------------------------------------------- torch
def step_with_torch(make, make_torch, seed, n_steps=7, dtype=np.float64):
    """Step a tinynet and a torch optimizer on the same gradients and compare
    the parameters after every step. ``make(params)`` builds the tinynet one,
    ``make_torch(torch, tensors)`` the torch one.

    float32 is compared to a few ulps: torch's CPU kernels fuse multiply-adds."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    params = make_params(rng, dtype)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    opt, topt = make(params), make_torch(torch, tparams)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]
    for step_grads in random_grads(rng, n_steps, dtype):
        for p, tp, g in zip(params, tparams, step_grads):
            p.grad = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        for p, tp in zip(params, tparams):
            assert p.value.dtype == dtype
            np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_matches_torch_step_for_step(name, kwargs):
    step_with_torch(lambda params: tn.optim.get(name.lower(), params, **kwargs),
                    lambda torch, params: getattr(torch.optim, name)(params, **kwargs),
                    seed=len(name) + 10 * len(kwargs))


@pytest.mark.parametrize("name, kwargs", CONFIGS[1::3], ids=[n for n, _ in CONFIGS[1::3]])
def test_matches_torch_in_float32(name, kwargs):
    step_with_torch(lambda params: tn.optim.get(name.lower(), params, **kwargs),
                    lambda torch, params: getattr(torch.optim, name)(params, **kwargs),
                    seed=3, dtype=np.float32)


# Branches CONFIGS leaves out: torch.lerp_'s other rounding branch (beta1 or
# alpha below 0.5: the centred RMSprop kernel hands over to the reference),
# no averaging at all (betas 0, alpha 0), eps 0, momentum 1, amsgrad with
# weight decay, a decay factor 1 - lr * wd below 0.
RARE_CONFIGS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "weight_decay": 0.3}),
    ("SGD", {"lr": 0.1, "momentum": 1.0}),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.4), "amsgrad": True, "weight_decay": 0.2}),
    ("Adam", {"lr": 0.01, "betas": (0.0, 0.0), "eps": 0.0}),
    ("AdamW", {"lr": 0.5, "betas": (0.6, 0.9), "weight_decay": 2.5, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.3, "centered": True, "momentum": 0.9,
                 "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.0, "eps": 1e-3}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kwargs", RARE_CONFIGS, ids=[f"{n}-{k}" for n, k in RARE_CONFIGS])
def test_matches_torch_for_20_steps_in_rarer_settings(name, kwargs, dtype):
    step_with_torch(lambda params: tn.optim.get(name.lower(), params, **kwargs),
                    lambda torch, params: getattr(torch.optim, name)(params, **kwargs),
                    seed=5, n_steps=20, dtype=dtype)


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop"])
def test_param_groups_match_torch(name):
    extra = {"momentum": 0.9} if name != "Adam" else {}

    def groups(params):
        return [{"params": params[:1], "lr": 0.3},
                {"params": params[1:], "weight_decay": 0.1}]

    step_with_torch(lambda params: tn.optim.get(name, groups(params), lr=0.01, **extra),
                    lambda torch, params: getattr(torch.optim, name)(groups(params), lr=0.01,
                                                                     **extra),
                    seed=7, n_steps=4)


# --------------------------------------------------------------------------- by hand
def one_param(value, grad):
    p = tn.Param(np.array([value]))
    p.grad = np.array([grad])
    return p


def test_sgd_momentum_by_hand():
    # b1 = g = 2; x1 = 1 - 0.1*2 = 0.8; b2 = 0.9*2 + 2 = 3.8; x2 = 0.8 - 0.38 = 0.42
    p = one_param(1.0, 2.0)
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert p.value[0] == pytest.approx(0.8, abs=1e-15)
    opt.step()
    assert p.value[0] == pytest.approx(0.42, abs=1e-15)


def test_sgd_nesterov_and_weight_decay_by_hand():
    # d = 2 + 0.5*1 = 2.5; b = 2.5; x = 1 - 0.1*(2.5 + 0.9*2.5) = 0.525
    p = one_param(1.0, 2.0)
    SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5).step()
    assert p.value[0] == pytest.approx(0.525, abs=1e-15)


def test_adam_by_hand():
    # m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 2.5e-4; m^ = 0.5, sqrt(v^) = 0.5
    # x = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    p = one_param(1.0, 0.5)
    Adam([p], lr=0.1).step()
    assert p.value[0] == pytest.approx(1 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-15)


def test_adamw_by_hand():
    # decay first: x = 2*(1 - 0.1*0.5) = 1.9; then the Adam step of size ~lr: 1.9 - 0.1
    p = one_param(2.0, -3.0)
    AdamW([p], lr=0.1, weight_decay=0.5, eps=0.0).step()
    assert p.value[0] == pytest.approx(2.0, abs=1e-14)


def test_rmsprop_by_hand():
    # s = 0.01*4 = 0.04; x = 1 - 0.01 * 2 / (0.2 + 1e-8)
    p = one_param(1.0, 2.0)
    RMSprop([p]).step()
    assert p.value[0] == pytest.approx(1 - 0.01 * 2 / (0.2 + 1e-8), abs=1e-15)


def test_rmsprop_centered_by_hand():
    # s = 0.5*4 = 2, gbar = 0.5*2 = 1; a = sqrt(2 - 1) = 1; x = 1 - 0.1*2/1 = 0.8
    p = one_param(1.0, 2.0)
    RMSprop([p], lr=0.1, alpha=0.5, centered=True, eps=0.0).step()
    assert p.value[0] == pytest.approx(0.8, abs=1e-15)


def test_adagrad_by_hand():
    # step 1: S = 1 + 9 = 10, x = 1 - 0.1*3/sqrt(10)
    # step 2: lr' = 0.1/(1 + 1*0.5), S = 19, x -= lr' * 3/sqrt(19)
    p = one_param(1.0, 3.0)
    opt = Adagrad([p], lr=0.1, lr_decay=0.5, initial_accumulator_value=1.0, eps=0.0)
    opt.step()
    first = 1 - 0.1 * 3 / np.sqrt(10)
    assert p.value[0] == pytest.approx(first, abs=1e-15)
    opt.step()
    assert p.value[0] == pytest.approx(first - 0.1 / 1.5 * 3 / np.sqrt(19), abs=1e-15)


# --------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("name, kwargs", CONFIGS[1::2], ids=[n for n, _ in CONFIGS[1::2]])
def test_frozen_params_are_untouched_and_unfreezing_resumes(name, kwargs):
    rng = np.random.default_rng(3)
    params = make_params(rng, np.float32)
    params[1].trainable = False
    before = params[1].value.copy()
    opt = tn.optim.get(name, params, **kwargs)
    run(opt, params, random_grads(rng, 3, np.float32))
    assert params[1].value.tobytes() == before.tobytes()
    assert params[1] not in opt.state
    assert all(p.value.dtype == np.float32 for p in params)
    params[1].trainable = True
    run(opt, params, random_grads(rng, 1, np.float32))
    assert not np.array_equal(params[1].value, before)
    assert opt.state[params[1]]["step"] == 1 and opt.state[params[0]]["step"] == 4


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_state_dict_resumes_exactly(name, kwargs):
    rng = np.random.default_rng(11)
    start = make_params(rng)
    grads = random_grads(rng, 6)

    def first_part():
        params = [tn.Param(p.value) for p in start]
        opt = tn.optim.get(name, params, **kwargs)
        run(opt, params, grads[:2])
        opt.lr = opt.lr * 0.5  # as a schedule would; the current lr is saved too
        return params, opt

    straight, opt = first_part()
    run(opt, straight, grads[2:])

    interrupted, opt = first_part()
    buffer = io.BytesIO()
    np.savez(buffer, **opt.state_dict())  # every entry is an ndarray
    buffer.seek(0)
    resumed = [tn.Param(p.value) for p in interrupted]
    fresh = tn.optim.get(name, resumed, **kwargs)
    fresh.load_state_dict(dict(np.load(buffer, allow_pickle=False)))
    run(fresh, resumed, grads[2:])
    for a, b in zip(straight, resumed):
        assert a.value.tobytes() == b.value.tobytes()


def test_flat_buffer_views_step_like_separate_arrays():
    rng = np.random.default_rng(5)
    separate = make_params(rng)
    flat = [tn.Param(p.value) for p in separate]
    values, _ = tn.param.flatten_params(flat)
    grads = random_grads(rng, 3)
    for params in (separate, flat):
        run(Adam(params, lr=0.1, weight_decay=0.1), params, grads)
    for a, b in zip(separate, flat):
        assert a.value.tobytes() == b.value.tobytes()
        assert np.shares_memory(b.value, values)


def test_constructor_forms_and_binding_later():
    params = make_params(np.random.default_rng(0))
    assert Adam(params, lr=0.01).lr == 0.01
    assert Adam(params, learning_rate=0.02).param_groups[0]["lr"] == 0.02
    assert Adam(0.03).lr == 0.03
    opt = Adam(lr=0.001)
    with pytest.raises(RuntimeError, match="bind"):
        opt.step()
    assert opt.bind(params) is opt and opt.params == params
    opt.step()
    state = opt.state
    opt.bind(params)  # the same parameters again: state kept
    assert opt.state is state and opt.state[params[0]]["step"] == 1
    opt.bind(params[:1])
    assert opt.state == {} and opt.params == params[:1]
    layer_like = type("L", (), {"parameters": lambda self: params})()
    assert SGD(layer_like).params == params
    opt.learning_rate = 0.5
    assert opt.lr == 0.5 and opt.param_groups[0]["lr"] == 0.5


def test_get_and_config_round_trip():
    params = make_params(np.random.default_rng(0))
    opt = tn.optim.get("AdamW", lr=0.002, betas=(0.8, 0.9), max_grad_norm=1.0)
    spec = json.loads(json.dumps(tn.optim.optimizer_to_dict(opt)))
    again = tn.optim.get(spec, params)
    assert type(again) is AdamW and again.get_config() == opt.get_config()
    assert again.param_groups[0]["betas"] == (0.8, 0.9)
    assert tn.optim.get(again) is again
    assert type(tn.optim.get(SGD, params, lr=0.1)) is SGD


def test_add_param_group_and_zero_grad():
    params = make_params(np.random.default_rng(0))
    opt = SGD(params[:2], lr=0.1)
    opt.add_param_group({"params": params[2:], "learning_rate": 0.01})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    for p in params:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert not any(p.grad.any() for p in params)


def test_max_grad_norm_clips_before_the_step():
    p = one_param(0.0, 30.0)
    SGD([p], lr=1.0, max_grad_norm=3.0).step()
    assert p.value[0] == pytest.approx(-3.0, rel=1e-6)


@pytest.mark.parametrize("call, error, message", [
    (lambda p: tn.optim.get("adma", p), ValueError,
     "unknown optimizer 'adma'; did you mean 'adam'?"),
    (lambda p: SGD(p, lr=-1), ValueError, r"lr in \[0, inf\), received -1.0"),
    (lambda p: SGD(p, lr="fast"), TypeError, "lr as a real number"),
    (lambda p: SGD(p, momentum=0.0, nesterov=True), ValueError, "momentum > 0"),
    (lambda p: SGD(p, nesterov="yes"), TypeError, "nesterov as True or False"),
    (lambda p: Adam(p, betas=(0.9, 1.0)), ValueError, r"betas\[1\] in \[0, 1\)"),
    (lambda p: Adam(p, betas=0.9), TypeError, "pair of numbers"),
    (lambda p: Adam(p, eps=-1e-8), ValueError, "eps"),
    (lambda p: AdamW(p, weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda p: RMSprop(p, alpha=-0.5), ValueError, "alpha"),
    (lambda p: RMSprop(p, alpha=2), ValueError, r"alpha in \[0, 1\), received 2.0"),
    (lambda p: RMSprop(p, alpha=1.0), ValueError, r"alpha in \[0, 1\)"),
    (lambda p: RMSprop(p, momentum=1.5), ValueError, r"momentum in \[0, 1\]"),
    (lambda p: SGD(p, momentum=2), ValueError, r"momentum in \[0, 1\], received 2.0"),
    (lambda p: SGD(p, momentum=-1), ValueError, "momentum in"),
    (lambda p: Adagrad(p, lr_decay=-1), ValueError, "lr_decay"),
    (lambda p: Adam(p, max_grad_norm=-1), ValueError, "max_grad_norm"),
    (lambda p: Adam([]), ValueError, "empty parameter list"),
    (lambda p: Adam([np.zeros(3)]), TypeError, "Param objects, received ndarray"),
    (lambda p: Adam(p + p[:1]), ValueError, "parameter twice"),
    (lambda p: Adam([{"params": p, "beta": 0.5}]), ValueError,
     "unknown hyperparameter 'beta'.*did you mean 'betas'"),
    (lambda p: Adam([{"lr": 0.1}]), TypeError, "'params' key"),
    (lambda p: Adam(p).add_param_group({"lr": 0.1}), ValueError, "'params' key"),
    (lambda p: Adam(p).load_state_dict(SGD(p).state_dict()), ValueError,
     "state of a Adam, received that of 'SGD'"),
    (lambda p: Adam().load_state_dict(Adam(p).state_dict()), RuntimeError, "bind"),
    (lambda p: Adam(p[:1]).load_state_dict(Adam(p).state_dict()), ValueError,
     "1 parameters in group 0, received 3"),
    (lambda p: Adam(p[1:]).load_state_dict(_stepped_state(p[:2])), ValueError,
     r"state 'exp_avg' of parameter 0 \('p1'\) with shape \(4,\), received \(3, 4\)"),
])
def test_bad_input_is_reported(call, error, message):
    with pytest.raises(error, match=message):
        call(make_params(np.random.default_rng(0)))


def _stepped_state(params):
    opt = Adam(params)
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9}),
                                          ("RMSprop", {"momentum": 0.5, "centered": True})])
def test_state_decays_to_zero_not_to_subnormals(name, kwargs, dtype):
    """A unit whose gradient stops (a dead ReLU) has its moments decay; they
    end at exactly zero instead of lingering near or in the subnormal range,
    where arithmetic costs ~100 cycles an operation on Intel CPUs. The
    parameter itself stays put."""
    p = tn.Param(np.array([0.5, -0.25], dtype))
    opt = tn.optim.get(name.lower(), [p], lr=0.01, **kwargs)
    p.grad = np.array([1.0, -1.0], dtype)
    opt.step()
    p.grad = np.zeros(2, dtype)
    before = None
    n_steps = 1000 if dtype == np.float32 else 7000  # 0.1 * 0.9**n passes finfo.tiny
    for _ in range(n_steps):
        before = p.value.copy()
        opt.step()
    from tinynet.kernels.optim import STATE_FLOOR
    tiny = STATE_FLOOR[np.dtype(dtype)]
    for key, value in opt.state[p].items():
        if isinstance(value, np.ndarray):
            assert not np.any((value != 0) & (np.abs(value) < tiny)), (key, value)
    assert {k for k, v in opt.state[p].items()
            if isinstance(v, np.ndarray) and np.all(v == 0) and k != "square_avg"}
    np.testing.assert_array_equal(p.value, before)
