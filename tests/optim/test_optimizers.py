"""Optimizers: step for step against torch.optim, hand-worked steps, groups, state."""

import io
import json

import numpy as np
import pytest

import tinynet as tn
from tests.threads import errors_in_threads
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
    assert SGD(params, 0.04).lr == 0.04 and Adagrad(params, 0.05, lr_decay=0.1).lr == 0.05
    assert type(SGD().defaults["lr"]) is float and SGD().get_config()["lr"] == 1e-3
    opt = Adam(lr=0.001)
    with pytest.raises(RuntimeError, match="bind"):
        opt.step()
    assert opt.bind(params) is opt and opt.params == params
    opt.step()
    state = opt.state
    opt.bind(params)  # the same parameters again: state kept
    assert opt.state is state and opt.state[params[0]]["step"] == 1
    opt.bind(params[:1])  # others: the one that stays keeps its state, as in PyTorch
    assert list(opt.state) == params[:1] and opt.state[params[0]]["step"] == 1
    assert opt.params == params[:1]
    layer_like = type("L", (), {"parameters": lambda self: params})()
    assert SGD(layer_like).params == params
    opt.learning_rate = 0.5
    assert opt.lr == 0.5 and opt.param_groups[0]["lr"] == 0.5


def test_binding_the_same_parameters_with_new_hyperparameters_applies_them():
    rng = np.random.default_rng(0)
    params = make_params(rng)
    opt = SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.2}], lr=0.1,
              momentum=0.9)
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    state = opt.state
    opt.bind([{"params": params[:2], "lr": 0.05, "momentum": 0.5}, {"params": params[2:]}])
    assert opt.state is state and state[params[0]]["step"] == 1
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]) == (0.05, 0.5)
    assert (opt.param_groups[1]["lr"], opt.param_groups[1]["momentum"]) == (0.2, 0.9)
    # they take effect: the next step is SGD's with the new values
    buffer = state[params[0]]["momentum_buffer"].copy()
    before = params[0].value.copy()
    opt.step()
    np.testing.assert_allclose(params[0].value, before - 0.05 * (0.5 * buffer + 1.0))
    # checked as the constructor checks them; a refused group changes nothing
    groups = [dict(g) for g in opt.param_groups]
    for bad, error, match in [({"lr": -1.0}, ValueError, "lr"),
                              ({"momentun": 0.5}, ValueError, "momentun.*momentum"),
                              ({"nesterov": 1}, TypeError, "nesterov")]:
        with pytest.raises(error, match=match):
            opt.bind([{"params": params[:2]}, {"params": params[2:], **bad}])
        assert opt.param_groups == groups and opt.state is state
    with pytest.raises(ValueError, match="lr"):
        opt.bind([{"params": params[:1], "lr": -1.0}])  # other parameters: nothing changes
    assert opt.param_groups == groups and opt.state is state


def test_binding_to_other_parameters_keeps_the_hyperparameters_of_their_groups():
    # compile again after replace_head: the rate a schedule set (and its base)
    # must stay, not go back to the constructor's
    rng = np.random.default_rng(0)
    body, head, new_head = make_params(rng), [tn.Param(np.zeros(2))], [tn.Param(np.zeros(3))]
    opt = SGD(body + head, lr=0.1, momentum=0.9)
    opt.param_groups[0].update(lr=0.025, initial_lr=0.1, momentum=0.5)
    opt.bind(body + new_head)
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == {
        "lr": 0.025, "initial_lr": 0.1, "momentum": 0.5, "dampening": 0.0,
        "weight_decay": 0.0, "nesterov": False}
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.9
    # a group's own values win; its own lr drops the initial_lr of the rate it replaces
    opt.bind([{"params": body, "lr": 0.3}, {"params": head, "momentum": 0.5}])
    assert opt.param_groups[0]["lr"] == 0.3 and "initial_lr" not in opt.param_groups[0]
    assert opt.param_groups[0]["momentum"] == 0.5
    assert opt.param_groups[1]["lr"] == 0.1  # no old group held it: the defaults
    # old groups that disagree: only what they agree on is kept
    opt.bind([{"params": body[:1] + head}, {"params": body[1:]}])
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.5
    assert opt.param_groups[1]["lr"] == 0.3


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1, momentum=0.9), lambda: Adam(lr=0.01)],
                         ids=["sgd-momentum", "adam"])
def test_compiling_again_after_replace_head_keeps_the_state_of_the_parameters_that_stay(make):
    # as in PyTorch (state keyed by the parameter): the body's momentum buffers,
    # moments and step counts stay, so its next update is the one an
    # uninterrupted optimizer makes, to the bit; the new head starts fresh.
    # Their state is copied out of the old run's flat buffer (which held the old
    # head's too, and stayed in use, and in memory, while a run reused a span of
    # it) at the rebind; the step writes the state that state_dict (save) reads
    import copy

    from tinynet.param import _root
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = tn.Sequential([tn.layers.Dense(8, input_dim=4, activation="relu", seed=0),
                           tn.layers.Dense(6, activation="relu", seed=1),
                           tn.layers.Dense(3, seed=2, name="head")])
    opt = make()
    model.compile(opt, loss="cross_entropy")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
    uninterrupted_model, uninterrupted = copy.deepcopy((model, opt))
    body, same_body = model.parameters()[:4], uninterrupted_model.parameters()[:4]
    old = _root(opt.state[body[0]][next(k for k in opt.state[body[0]] if k != "step")])
    assert old.size == sum(p.size for p in opt.params)  # the old run's: the old head's too
    tn.transfer.replace_head(model, tn.layers.Dense(5, seed=3, name="head2"))
    model.compile(opt, loss="cross_entropy")
    assert tn.param.is_flat(model.parameters())  # moved into one new flat buffer
    assert set(opt.state) == set(body)  # the old head's state is dropped

    def state_arrays():
        return [a for p in body for key, a in opt.state[p].items() if key != "step"]
    assert not any(np.shares_memory(a, old) for a in state_arrays())
    for p, q in zip(body, same_body):
        assert opt.state[p].keys() == uninterrupted.state[q].keys()
        assert opt.state[p]["step"] == uninterrupted.state[q]["step"] == 8
    for params in (model.parameters(), uninterrupted_model.parameters()):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
    for p, q in zip(body, same_body):
        q.grad = p.grad
    opt.step()
    uninterrupted.step()
    saved = opt.state_dict()
    for i, (p, q) in enumerate(zip(body, same_body)):
        np.testing.assert_array_equal(p.value, q.value)
        for key, value in uninterrupted.state[q].items():
            np.testing.assert_array_equal(opt.state[p][key], value)
            np.testing.assert_array_equal(saved[f"state.{i}.{key}"], value)
    # the plan made again: the body one fused run, the fresh head (step 1)
    # another, the body's state in a flat buffer of its own
    assert [len(run.params) for run in opt._runs(0, opt.param_groups[0])] == [4, 2]
    assert not any(np.shares_memory(a, old) for a in state_arrays())
    assert all(_root(a).size == sum(p.size for p in body) for a in state_arrays())


@pytest.mark.parametrize("reflatten", [True, False], ids=["flat-again", "detached"])
@pytest.mark.parametrize("name, kwargs", [("sgd", {"lr": 0.1, "momentum": 0.9}),
                                          ("adam", {"lr": 0.01, "amsgrad": True}),
                                          ("rmsprop", {"lr": 0.01, "centered": True,
                                                       "momentum": 0.5}),
                                          ("adagrad", {"lr": 0.1})])
def test_the_state_follows_a_parameter_converted_to_another_dtype(name, kwargs, reflatten):
    # Param.astype (model.astype) left the state in the old dtype: the numpy
    # rules went on with float32 moments for float64 parameters, the kernels
    # refused the mix. The next step converts it and computes in float64
    # throughout: as an optimizer given the same state in float64
    rng = np.random.default_rng(0)
    params = make_params(rng, np.float32)
    tn.param.flatten_params(params)
    opt = tn.optim.get(name, params, **kwargs)
    for p in params:
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    opt.step()
    for p in params:
        p.astype(np.float64)
    if reflatten:  # as a model binding its optimizer again (fit) does
        tn.param.flatten_params(params)
    same = [tn.Param(p.value) for p in params]
    if reflatten:
        tn.param.flatten_params(same)
    reference = tn.optim.get(name, same, **kwargs)
    reference.load_state_dict(opt.state_dict())  # (cast to the parameters' float64)
    for _ in range(2):
        for p, q in zip(params, same):
            p.grad = q.grad = rng.standard_normal(p.shape)
        opt.step()
        reference.step()
    for p, q in zip(params, same):
        np.testing.assert_array_equal(p.value, q.value)
        for key, value in reference.state[q].items():
            assert getattr(opt.state[p][key], "dtype", None) == getattr(value, "dtype", None)
            np.testing.assert_array_equal(opt.state[p][key], value)


def test_astype_moves_a_models_parameters_into_one_flat_buffer_of_the_new_dtype():
    # each parameter was left an array of its own until fit bound the
    # optimizer again (a multi-task model's until the next compile)
    inner = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0, activation="relu")])
    model = tn.Sequential([inner, tn.layers.Dense(3, seed=1)])
    model.compile(Adam(lr=0.01), loss="cross_entropy")
    values = [p.value.copy() for p in model.parameters()]
    for dtype in (np.float64, np.float32):
        model.astype(dtype)
        assert tn.param.is_flat(model.parameters())
        assert {p.dtype for p in model.parameters()} == {np.dtype(dtype)}
        assert model.layers[0].layers[0].activation.dtype == dtype
    assert all(np.array_equal(p.value, v) for p, v in zip(model.parameters(), values))
    model.fit(*_classes(), epochs=1, verbose=0, seed=0)
    assert len(model.optimizer._plans[0][1]) == 1  # one fused run


class DenseWithGain(tn.layers.Dense):
    """A user's layer: a Dense whose outputs it scales by a fixed gain a unit
    (an array of its own, not a parameter), which it converts in its own
    ``astype`` after ``super().astype``, as a user naturally writes it."""

    def _build(self, input_shape, rng):
        super()._build(input_shape, rng)
        self.gain = np.linspace(0.5, 1.5, self.units).astype(self.dtype)

    def forward(self, x, training=False):
        return super().forward(x, training) * self.gain

    def backward(self, dy, need_dx=True):
        return super().backward(dy * self.gain, need_dx)

    def astype(self, dtype):
        super().astype(dtype)
        self.gain = self.gain.astype(dtype)
        return self


@pytest.mark.parametrize("container", ["nested Sequential", "mtl.Model"])
def test_astype_calls_a_user_layers_own_astype_inside_a_model_and_keeps_it_flat(container,
                                                                                monkeypatch):
    # the containers converted their layers through another method than
    # astype: a user layer's override was skipped and its gain stayed float32.
    # The parameters are moved into a new buffer once, by the outermost call
    moves = []
    flatten = tn.param.flatten_params
    monkeypatch.setattr(tn.param, "flatten_params", lambda ps: moves.append(len(ps)) or
                        flatten(ps))
    if container == "mtl.Model":
        inp = tn.mtl.Input((4,))
        user = DenseWithGain(5, seed=0, activation="relu")
        model = tn.mtl.Model(inp, {"t": tn.layers.Dense(3, seed=1)(user(inp))})
        model.compile(Adam(lr=0.01), loss={"t": "cross_entropy"}, weighting="uncertainty")
    else:
        user = DenseWithGain(5, input_dim=4, seed=0, activation="relu")
        model = tn.Sequential([tn.Sequential([user]), tn.layers.Dense(3, seed=1)])
        model.compile(Adam(lr=0.01), loss="cross_entropy")
    assert tn.param.is_flat(model.parameters())
    for dtype in (np.float64, np.float32, np.float64):
        moves.clear()
        model.astype(dtype)
        assert user.gain.dtype == user.W.dtype == user.activation.dtype == dtype
        assert tn.param.is_flat(model.parameters())
        assert moves == [len(model.parameters())]
    x, y = _classes()
    model.fit(x, y if container != "mtl.Model" else {"t": y}, epochs=1, verbose=0, seed=0)
    assert [len(runs) for _, runs in model.optimizer._plans.values()] == [1] * len(
        model.optimizer.param_groups)  # each group one fused run
    assert all(p.dtype == np.float64 for p in model.optimizer.params)


def test_a_schedule_keeps_its_rates_when_the_model_is_compiled_again_with_its_optimizer():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = tn.Sequential([tn.layers.Dense(8, input_dim=4, seed=0),
                           tn.layers.Dense(3, seed=1, name="head")])
    opt = SGD(lr=0.1)
    model.compile(opt, loss="cross_entropy")
    schedule = tn.callbacks.LearningRateScheduler(tn.optim.StepLR(opt, 1, gamma=0.5))
    history = model.fit(x, y, epochs=3, verbose=0, seed=0, callbacks=[schedule])
    assert history.history["lr"] == [0.1, 0.05, 0.025]
    tn.transfer.replace_head(model, tn.layers.Dense(3, seed=2, name="head2"))
    model.compile(opt, loss="cross_entropy")
    assert opt.lr == 0.025
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0, seed=0,
                        callbacks=[schedule])
    assert history.history["lr"] == [0.0125, 0.00625]


def test_a_schedule_goes_on_when_every_parameter_of_its_model_is_replaced():
    # none of the old parameters (the model's one layer popped and replaced):
    # the new groups start from the rate the optimizer was at (and the
    # schedule's base), not the constructor's, which the running StepLR would
    # take for an outside change and scale its base by
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    opt = SGD(lr=0.1, momentum=0.9)
    schedule = tn.callbacks.LearningRateScheduler(tn.optim.StepLR(opt, 1, gamma=0.5))
    model = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=0)])
    model.compile(opt, loss="cross_entropy")
    opt.param_groups[0]["momentum"] = 0.5  # set by hand on the old parameters' group
    history = model.fit(x, y, epochs=3, verbose=0, seed=0, callbacks=[schedule])
    assert history.history["lr"] == [0.1, 0.05, 0.025]
    model.pop()
    model.add(tn.layers.Dense(3, seed=2))
    model.compile(opt, loss="cross_entropy")
    group = opt.param_groups[0]
    assert (group["lr"], group["initial_lr"], group["momentum"]) == (0.025, 0.1, 0.9)
    assert opt.state == {} and opt.get_config()["lr"] == 0.1
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0, seed=0,
                        callbacks=[schedule])
    assert history.history["lr"] == [0.0125, 0.00625]
    # old groups at different rates: no rate the optimizer was at, the constructor's
    third = [tn.Param(np.zeros(2))]
    opt.bind([{"params": model.parameters()[:1], "lr": 0.3},
              {"params": model.parameters()[1:]}])
    opt.bind(third)
    assert opt.lr == 0.1 and "initial_lr" not in opt.param_groups[0]


@pytest.mark.parametrize("bound_by", ["model", "user"])
def test_an_optimizer_compiled_with_another_model_is_refused(bound_by):
    # Sequential bound it again to the second model silently (the first one then
    # trained with an optimizer holding none of its parameters), while
    # mtl.Model refused it: both refuse it now, changing nothing
    first = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=0)])
    second = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=1)])
    opt = SGD(lr=0.1) if bound_by == "model" else SGD(first.parameters(), lr=0.1)
    first.compile(opt, loss="mse")
    second.compile("sgd", loss="cross_entropy")
    before = (second.optimizer, second.loss)
    with pytest.raises(ValueError, match=r"compile received an optimizer bound to 2 "
                                         r"parameter\(s\) \(of 2 bound\) that are neither "
                                         r"this model's nor ones it released .*"
                                         r"make a new one"):
        second.compile(opt, loss="mse")
    assert (second.optimizer, second.loss) == before
    assert [id(p) for p in opt.params] == [id(p) for p in first.parameters()]
    unbuilt = tn.Sequential([tn.layers.Dense(3)])  # refused at compile, not at fit
    with pytest.raises(ValueError, match="neither this model's"):
        unbuilt.compile(opt, loss="mse")


def _classes(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)


@pytest.mark.parametrize("flow", ["bound by the user, then replace_head",
                                  "compiled, then another, then replace_head",
                                  "bound by the user, then reset_parameters",
                                  "bound by the user, then the head built again"])
def test_an_optimizer_holding_parameters_the_model_released_is_bound_again(flow):
    # refused since 679ecca as "not this model's": an optimizer bound to the
    # model's parameters before a head was replaced (the transfer-learning
    # order), or compiled here before another; the parameters the model
    # released count as its own former ones, and those that stay keep their state.
    # A layer's build called again (a layer of the user's that re-initialises
    # so) replaced its parameters unrecorded: the optimizer was refused
    from tinynet.transfer import replace_head
    x, y = _classes()
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    opt = Adam(model.parameters(), lr=0.01)
    kept = model.parameters()[:2]
    if flow.startswith("compiled"):
        model.compile(opt, loss="cross_entropy")
        model.fit(x, y, epochs=1, verbose=0, seed=0)
        model.compile(SGD(lr=0.1), loss="cross_entropy")
    moments = [opt.state[p]["exp_avg"].copy() for p in kept if p in opt.state]
    if flow.endswith("reset_parameters"):
        model.reset_parameters(1)
    elif flow.endswith("built again"):
        head = model.layers[-1]
        head.build(head.input_shape)
        assert model.parameters()[:2] == kept and opt.params[2] is not model.parameters()[2]
    else:
        replace_head(model, [tn.layers.Dense(3, seed=2)])
    model.compile(opt, loss="cross_entropy")
    assert model.optimizer is opt
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]
    assert all(np.array_equal(opt.state[p]["exp_avg"], m) for p, m in zip(kept, moments))
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert opt.state[model.parameters()[-1]]["step"] == 1



@pytest.mark.parametrize("compiled_before", [False, True])
def test_an_optimizer_bound_before_reset_parameters_then_replace_head_is_bound_again(
        compiled_before):
    # the re-initialised head recorded its old parameters as released by
    # itself, and once replace_head popped it the model no longer counted
    # them: the optimizer was refused as another model's
    from tinynet.transfer import replace_head
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    opt = Adam(model.parameters(), lr=0.01)
    if compiled_before:
        model.compile(opt, loss="cross_entropy")
        model.compile(SGD(lr=0.1), loss="cross_entropy")
    model.reset_parameters(1)
    replace_head(model, [tn.layers.Dense(3, seed=2)])
    model.compile(opt, loss="cross_entropy")
    assert model.optimizer is opt
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]


def test_reset_parameters_records_the_released_parameters_once_per_container(monkeypatch):
    # each record written copies the container's record (every released
    # parameter still alive): written once per layer rebuilt, 100 resets of 50
    # layers with the old parameters kept took 3.2 s against 0.28 s on main
    from tinynet.optim import binding
    writes = []
    record = binding._record
    monkeypatch.setattr(binding, "_record",
                        lambda container, entries: (writes.append((container, len(entries))),
                                                    record(container, entries)))
    inner = tn.Sequential([tn.layers.Dense(4, seed=i) for i in range(3)])
    model = tn.Sequential([tn.layers.Dense(4, input_dim=4, seed=9), inner,
                           tn.layers.Dense(3, seed=8)])
    opt = Adam(model.parameters(), lr=0.01)
    model.reset_parameters(1)
    assert sorted((c.name, n) for c, n in writes) == sorted([(model.name, 2), (inner.name, 3)])
    model.compile(opt, loss="cross_entropy")
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]


def test_models_in_threads_of_their_own_release_parameters_without_interfering():
    # one registry for every model's released parameters, iterated while
    # another thread's model added to it: "dictionary changed size during
    # iteration". Each model keeps its own record
    from tinynet.transfer import replace_head

    def trials():
        model = tn.Sequential([tn.layers.Dense(4, input_dim=4, seed=i) for i in range(20)])
        optimizers = []  # (each keeping the parameters it holds, and their records, alive)
        for i in range(300):
            optimizers.append(SGD())
            optimizers[-1].bind(model.parameters())
            model.reset_parameters(i)

    def transfer():
        for _ in range(300):
            model = tn.Sequential([tn.layers.Dense(4, input_dim=4, seed=i) for i in range(3)])
            opt = SGD()
            opt.bind(model.parameters())
            replace_head(model, [tn.layers.Dense(2)])
            model.compile(opt, loss="cross_entropy")

    assert errors_in_threads(trials, transfer) == []


def _compile_without_automatic_collection(model, opt):
    """``model.compile(opt)`` with the garbage collector's automatic runs off: a
    container in a reference cycle is freed by compile's own collection, if
    any, not by chance."""
    import gc
    enabled = gc.isenabled()
    gc.disable()
    try:
        model.compile(opt, loss="cross_entropy")
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("held_by", ["a container dropped", "a container in a reference cycle",
                                     "a container saved", "a container that predicted",
                                     "a functional model that predicted"])
def test_a_popped_layer_a_container_held_for_a_while_is_still_the_models_former(held_by,
                                                                                tmp_path):
    # the first container to hold the popped layer took its parameters out of
    # the model's released ones for good, a container dropped at once (or one
    # only saved) too: the optimizer bound to the model before was refused
    import gc
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    opt = Adam(model.parameters(), lr=0.01)
    head = model.pop()
    if held_by == "a container saved":
        tn.io.save(tn.Sequential([head]), tmp_path / "head.tnz")
    elif held_by.endswith("predicted"):
        # the popped layer held the container (or its graph node) whose forward
        # its cache held: the dropped container lived on, holding it
        if held_by.startswith("a functional"):
            inp = tn.mtl.Input((5,))
            wrapper = tn.mtl.Model(inp, head(inp))
        else:
            wrapper = tn.Sequential([head])
        wrapper.predict(np.ones((2, 5), np.float32))
        del wrapper
    else:
        wrapper = tn.Sequential([head])
        if held_by.endswith("cycle"):
            wrapper.itself = wrapper  # freed by the garbage collector only
        del wrapper
        if held_by.endswith("dropped"):
            gc.collect()
    model.add(tn.layers.Dense(3, seed=2))
    _compile_without_automatic_collection(model, opt)
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]


def test_parameters_a_model_inside_released_count_as_the_models():
    inner = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(4, seed=1)])
    model = tn.Sequential([inner, tn.layers.Dense(3, seed=2)])
    opt = Adam(model.parameters(), lr=0.01)
    inner.pop()
    inner.add(tn.layers.Dense(4, seed=3))
    model.compile(opt, loss="cross_entropy")
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]


def test_parameters_a_layer_built_again_inside_a_model_released_count_as_the_models():
    # (each container holding the layer records them; the outer model counts
    # what the containers inside it released)
    inner = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0)])
    model = tn.Sequential([inner, tn.layers.Dense(3, seed=2)])
    opt = Adam(model.parameters(), lr=0.01)
    dense = inner.layers[0]
    dense.build(dense.input_shape)
    model.compile(opt, loss="cross_entropy")
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]
    other = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=3)])
    with pytest.raises(ValueError, match="neither this model's"):
        other.compile(Adam(other.parameters() + dense.parameters()), loss="mse")


@pytest.mark.parametrize("taker", ["Sequential", "mtl.Model"])
def test_the_optimizer_another_model_holding_a_released_layer_is_compiled_with_is_refused(
        taker):
    # a layer popped from one model counted as that model's released one even
    # once another model held it: compiling the first with the optimizer the
    # other is compiled with was accepted and took it from the other (bound to
    # the first model's parameters). Refused, naming the other model; the
    # optimizer the first one had stays the first one's
    first = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0),
                           tn.layers.Dense(3, seed=1)])
    opt = Adam(first.parameters(), lr=0.01)
    head = first.pop()
    first.add(tn.layers.Dense(3, seed=2))
    body = tn.layers.Dense(5, seed=3)
    if taker == "Sequential":
        second = tn.Sequential([body, head], name="second")
        second.build((4,))
    else:
        inp = tn.mtl.Input((4,))
        second = tn.mtl.Model(inp, {"t": head(body(inp))}, name="second")
    loss = "mse" if taker == "Sequential" else {"t": "mse"}
    second_opt = Adam(head.parameters(), lr=0.01)  # bound by the user to a subset
    second.compile(second_opt, loss=loss)
    with pytest.raises(ValueError, match=r"received the optimizer model 'second' is compiled "
                                         r"with: it is that model's, bound to 2 parameter\(s\) "
                                         r"\(of 2 bound\) this model released"):
        first.compile(second_opt, loss="cross_entropy")
    assert first.optimizer is None and second.optimizer is second_opt
    assert [id(p) for p in second_opt.params] == [id(p) for p in head.parameters()]
    first.compile(opt, loss="cross_entropy")
    assert [id(p) for p in opt.params] == [id(p) for p in first.parameters()]
    if taker == "mtl.Model":
        return
    # and back: the second model pops it (its released one), the first takes it
    second.pop()
    first.pop()
    first.add(head)
    with pytest.raises(ValueError, match=r"bound to 4 parameter\(s\) \(of 4 bound\) that are "
                                         r"neither this model's"):
        second.compile(opt, loss="mse")  # (first's: the parameters it holds now)
    assert second.optimizer is second_opt
    second.compile(Adam(second.parameters() + head.parameters()), loss="mse")


@pytest.mark.parametrize("kept_by", ["an uncompiled model", "a model with its own optimizer"])
def test_a_popped_head_kept_in_a_model_of_its_own_is_still_the_models_former(kept_by):
    # refused since "taken by another model" was checked: keeping the old head
    # in a model of its own is common in transfer learning, and takes nothing
    x, y = _classes()
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    opt = Adam(model.parameters(), lr=0.01)
    head = model.pop()
    keep = tn.Sequential([head])
    if kept_by.endswith("own optimizer"):
        keep.compile(Adam(lr=0.01), loss="cross_entropy")
    model.add(tn.layers.Dense(3, seed=2))
    model.compile(opt, loss="cross_entropy")
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert keep.layers == [head]
    if keep.optimizer is not None:
        assert [id(p) for p in keep.optimizer.params] == [id(p) for p in head.parameters()]


def test_a_dropped_model_in_a_cycle_compiled_with_the_optimizer_takes_nothing():
    # (compile collects before taking a container compiled with the optimizer
    # for its holder: one dropped in a reference cycle lives until then)
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    head = model.pop()
    opt = Adam(head.parameters(), lr=0.01)
    keep = tn.Sequential([head])
    keep.compile(opt, loss="cross_entropy")
    keep.itself = keep
    del keep
    model.add(tn.layers.Dense(3, seed=2))
    _compile_without_automatic_collection(model, opt)
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]


@pytest.mark.parametrize("moved", [False, True])
def test_a_popped_model_is_released_until_a_model_compiled_with_the_optimizer_holds_it(moved):
    # a model popped is released as a whole; a layer of it moved to another
    # model compiled with this very optimizer is that model's
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0),
                           tn.Sequential([tn.layers.Dense(4, seed=1), tn.layers.Dense(3, seed=2)])])
    block = model.pop()
    opt = Adam(block.layers[-1].parameters(), lr=0.01)
    model.add(tn.layers.Dense(3, seed=3))
    if moved:
        other = tn.Sequential([block.pop()], name="other")
        other.compile(opt, loss="mse")
        with pytest.raises(ValueError, match=r"model 'other' is compiled with: it is that "
                                             r"model's, bound to 2 parameter\(s\) \(of 2 bound\)"):
            model.compile(opt, loss="cross_entropy")
        assert other.optimizer is opt and model.optimizer is None
    else:
        model.compile(opt, loss="cross_entropy")
        assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]


def test_a_layer_two_models_share_built_again_counts_for_each():
    # the other model holding the layer takes nothing from this one
    shared = tn.layers.Dense(5, input_dim=4, seed=0)
    first = tn.Sequential([shared, tn.layers.Dense(3, seed=1)])
    second = tn.Sequential([shared, tn.layers.Dense(2, seed=2)])
    opts = [Adam(m.parameters(), lr=0.01) for m in (first, second)]
    first.reset_parameters(1)
    for m, opt in zip((first, second), opts):
        m.compile(opt, loss="cross_entropy")
        assert [id(p) for p in opt.params] == [id(p) for p in m.parameters()]


def test_an_optimizer_holding_released_and_another_models_parameters_is_refused():
    # only the other model's parameters are counted and refused
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    other = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=3)])
    opt = Adam(model.parameters() + other.parameters(), lr=0.01)
    model.pop()
    model.add(tn.layers.Dense(3, seed=2))
    with pytest.raises(ValueError, match=r"bound to 2 parameter\(s\) \(of 6 bound\) that are "
                                         r"neither this model's nor ones it released"):
        model.compile(opt, loss="cross_entropy")
    assert model.optimizer is None


@pytest.mark.parametrize("bound_by", ["model", "user"])
def test_a_models_own_optimizer_follows_its_parameters_after_pop(bound_by):
    # the model's own optimizer holds its older parameters (the popped layer's):
    # compile again binds it to the new ones, the parameters that stay keeping
    # their state
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0), tn.layers.Dense(3, seed=1)])
    opt = Adam(lr=0.01) if bound_by == "model" else Adam(model.parameters(), lr=0.01)
    model.compile(opt, loss="cross_entropy")
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    kept = model.parameters()[:2]
    moments = [opt.state[p]["exp_avg"].copy() for p in kept]
    model.pop()
    model.add(tn.layers.Dense(3, seed=2))
    model.compile(opt, loss="cross_entropy")
    assert [id(p) for p in opt.params] == [id(p) for p in model.parameters()]
    assert all(np.array_equal(opt.state[p]["exp_avg"], m) for p, m in zip(kept, moments))
    assert opt.state[kept[0]]["step"] == 1
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    assert opt.state[kept[0]]["step"] == 2


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
    # refused when made, not at the first step (clip_grad_norm's max_norm > 0)
    (lambda p: SGD(max_grad_norm=0), ValueError,
     r"SGD expected max_grad_norm in \(0, inf\), received 0.0"),
    # Keras' positional order: the second value would land on lr and be lost
    (lambda p: SGD(0.01, 0.9), TypeError,
     r"SGD received two learning rates: 0.01 as its first argument \(Keras' learning_rate\) "
     r"and lr=0.9.*by keyword, e.g. SGD\(0.01, momentum=...\)"),
    (lambda p: Adam(0.01, 0.5), TypeError, r"lr=0.5.*e.g. Adam\(0.01, betas=...\)"),
    (lambda p: SGD(0.01, 1e-3), TypeError, "lr=0.001"),  # the default's value, passed
    (lambda p: Adam(1e-3, learning_rate=1e-2), TypeError,
     "two learning rates: 0.001 as its first argument and learning_rate=0.01; give one"),
    (lambda p: RMSprop(p, lr=0.1, learning_rate=0.2), TypeError,
     r"two learning rates: lr=0.1 and learning_rate=0.2 \(PyTorch's and Keras' names"),
    (lambda p: Adam([]), ValueError, "empty parameter list"),
    (lambda p: Adam([np.zeros(3)]), TypeError, "Param objects, received ndarray"),
    (lambda p: Adam(p + p[:1]), ValueError, "parameter twice"),
    (lambda p: Adam([{"params": p, "beta": 0.5}]), ValueError,
     "unknown hyperparameter 'beta'.*did you mean 'betas'"),
    (lambda p: Adam([{"lr": 0.1}]), TypeError, "'params' key"),
    (lambda p: Adam(p).add_param_group({"lr": 0.1}), ValueError, "'params' key"),
    (lambda p: Adam(p).load_state_dict(SGD(p).state_dict()), ValueError,
     "expected a state saved by Adam, received one saved by 'SGD'"),
    (lambda p: Adam().load_state_dict(Adam(p).state_dict()), RuntimeError, "bind"),
    (lambda p: Adam(p[:1]).load_state_dict(Adam(p).state_dict()), ValueError,
     "1 parameters in group 0, received 3"),
    (lambda p: Adam(p[1:]).load_state_dict(_stepped_state(p[:2])), ValueError,
     r"'state.0.exp_avg' \(a state array of parameter 0, 'p1'\) expected shape \(4,\), "
     r"received \(3, 4\)"),
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


# ------------------------------------------------- a saved state is checked first
def _saved(name, kwargs, n_steps=2, dtype=np.float64):
    """``(params, optimizer, state_dict)`` after ``n_steps`` steps, the state
    as a file gives it back (every entry an ndarray)."""
    rng = np.random.default_rng(3)
    params = make_params(rng, dtype)
    opt = tn.optim.get(name, params, **kwargs)
    run(opt, params, random_grads(rng, n_steps, dtype))
    buffer = io.BytesIO()
    np.savez(buffer, **opt.state_dict())
    buffer.seek(0)
    return params, opt, dict(np.load(buffer, allow_pickle=False))


def _put(key, value):
    return lambda s: s.update({key: np.asarray(value)})


def _at(key, index, value):
    def change(s):
        s[key] = s[key].copy()
        s[key].flat[index] = value
    return change


ADAM_STATES = [
    # NaN is never a state a healthy run saves: its parameter would be NaN
    (_at("state.1.exp_avg", 2, np.nan), ValueError,
     r"finite values in 'state.1.exp_avg' \(a state array of parameter 1, 'p1'\)"),
    (_at("state.1.exp_avg", 0, np.inf), ValueError, r"finite values in 'state.1.exp_avg'"),
    (_at("state.0.exp_avg_sq", 3, np.nan), ValueError,
     r"'state.0.exp_avg_sq' \(a second moment of parameter 0, 'p0'\) expected values in "
     r"\[0, inf\], received 1 value\(s\) outside it \(nan\)"),
    (_at("state.2.exp_avg_sq", 0, -1e-3), ValueError,
     r"'state.2.exp_avg_sq' .*\[0, inf\].*\(-0.001\)"),
    (_at("state.2.exp_avg_sq", 0, -np.inf), ValueError, r"'state.2.exp_avg_sq'.*\(-inf\)"),
    (lambda s: s.update({"state.0.exp_avg": s["state.0.exp_avg"] + 1j}), TypeError,
     r"'state.0.exp_avg' .*expected a real numeric array, received dtype complex128"),
    (lambda s: s.update({"state.0.exp_avg": s["state.0.exp_avg"].astype(str)}), TypeError,
     "real numeric array, received dtype <U"),
    (lambda s: s.update({"state.0.exp_avg": s["state.0.exp_avg"][:2]}), ValueError,
     r"'state.0.exp_avg' .*expected shape \(3, 4\), received \(2, 4\)"),
    (_put("state.0.step", 2.5), TypeError,
     r"'state.0.step' as an integer \(a 0-d integer array\), received dtype float64"),
    (_put("state.0.step", -1), ValueError, r"'state.0.step' >= 0, received -1"),
    (_put("state.0.step", [2, 2]), TypeError, r"'state.0.step' as an integer"),
    (lambda s: s.pop("state.1.step"), ValueError,
     "expected the entry 'state.1.step', which the state lacks"),
    (lambda s: s.pop("state.1.exp_avg_sq"), ValueError,
     r"expected the entry 'state.1.exp_avg_sq' \(Adam keeps exp_avg, exp_avg_sq"),
    (_put("state.1.exp_avgsq", np.zeros(4)), ValueError,
     "never holds: 'state.1.exp_avgsq'"),
    (_put("state.3.exp_avg", np.zeros(4)), ValueError,
     r"its state of 3 parameter\(s\) in 1 group\(s\) never holds: 'state.3.exp_avg'"),
    (_put("momentum", 0.9), ValueError, "never holds: 'momentum'"),
    # hyperparameters pass the constructor's checks
    (_put("param_groups.0.lr", np.nan), ValueError,
     r"hyperparameters of group 0 \(param_groups.0.\*\) .*lr in \[0, inf\), received nan"),
    (_put("param_groups.0.lr", -0.1), ValueError, r"lr in \[0, inf\), received -0.1"),
    (_put("param_groups.0.lr", "0.1"), TypeError,
     "'param_groups.0.lr' as a number, a pair of numbers or a flag, received dtype <U3"),
    (_put("param_groups.0.lr", True), TypeError, "lr as a real number, received True"),
    (_put("param_groups.0.betas", [0.9, 1.0]), ValueError, r"betas\[1\] in \[0, 1\)"),
    (_put("param_groups.0.betas", [0.9, np.inf]), ValueError, r"betas\[1\] in \[0, 1\)"),
    (_put("param_groups.0.betas", [[0.9, 0.999]]), TypeError, "'param_groups.0.betas' as"),
    (_put("param_groups.0.eps", -1e-8), ValueError, "eps in"),
    (_put("param_groups.0.weight_decay", np.inf), ValueError, "weight_decay in"),
    (_put("param_groups.0.amsgrad", 1), TypeError, "amsgrad as True or False, received 1"),
    (_put("param_groups.0.initial_lr", np.nan), ValueError, "initial_lr in"),
    (lambda s: s.pop("param_groups.0.eps"), ValueError,
     "expected the entry 'param_groups.0.eps'"),
    (_put("param_groups.0.beta", 0.9), ValueError, "never holds: 'param_groups.0.beta'"),
    (_put("param_groups.0.params", [0, 0, 1]), ValueError,
     r"'param_groups.0.params' as the indices 0..2 \(3 parameters\)"),
    (_put("n_groups", 1.0), TypeError, "'n_groups' as an integer"),
    (lambda s: s.pop("n_groups"), ValueError, "expected the entry 'n_groups'"),
]


@pytest.mark.parametrize("change, error, match", ADAM_STATES)
def test_load_state_dict_refuses_a_bad_entry_and_changes_nothing(change, error, match):
    params, opt, saved = _saved("Adam", {})
    target = Adam(params, lr=0.5)
    run(target, params, random_grads(np.random.default_rng(4), 1))
    groups = [dict(g) for g in target.param_groups]
    state = {p: {k: np.copy(v) for k, v in s.items()} for p, s in target.state.items()}
    change(saved)
    with pytest.raises(error, match=match):
        target.load_state_dict(saved)
    assert target.param_groups == groups  # all or nothing
    assert target.state.keys() == state.keys()
    for p in params:
        assert target.state[p].keys() == state[p].keys()
        for key, value in state[p].items():
            assert np.array_equal(target.state[p][key], value)
    with pytest.raises(error, match=match):  # what save asks before writing
        opt.check_state_dict(saved)
    with pytest.raises(error) as plain:
        opt.check_state_dict(saved, "who")
    with pytest.raises(error) as saving:  # the savers' form: the same error, told what to do
        opt.check_state_to_save(saved, "who", "loader", " (hint)")
    assert type(saving.value) is type(plain.value)
    assert str(saving.value) == f"{plain.value}; loader would refuse it: nothing saved (hint)"
    assert saving.value.__suppress_context__
    opt.check_state_to_save(opt.state_dict(), "who", "loader")  # a good state passes


@pytest.mark.parametrize("name, kwargs, change, error, match", [
    ("SGD", {"momentum": 0.9}, _at("state.0.momentum_buffer", 0, np.nan), ValueError,
     "finite values in 'state.0.momentum_buffer'"),
    ("SGD", {"momentum": 0.9}, _put("param_groups.0.momentum", 1.5), ValueError,
     r"momentum in \[0, 1\], received 1.5"),
    ("SGD", {"momentum": 0.9, "dampening": 0.5}, _put("param_groups.0.nesterov", True),
     ValueError,
     "nesterov=True expected momentum > 0 and dampening == 0"),
    ("SGD", {}, _put("state.0.exp_avg", np.zeros((3, 4))), ValueError,
     "never holds: 'state.0.exp_avg'"),
    ("RMSprop", {"centered": True}, _at("state.1.square_avg", 0, -2.0), ValueError,
     r"'state.1.square_avg' \(a second moment.*\(-2.0\)"),
    ("RMSprop", {"centered": True}, _at("state.1.grad_avg", 0, np.nan), ValueError,
     "finite values in 'state.1.grad_avg'"),
    ("RMSprop", {}, _put("param_groups.0.alpha", 1.0), ValueError, r"alpha in \[0, 1\)"),
    ("Adagrad", {}, _at("state.2.sum", 0, -1.0), ValueError, r"'state.2.sum' .*\(-1.0\)"),
    ("Adagrad", {}, lambda s: s.pop("state.2.sum"), ValueError,
     "expected the entry 'state.2.sum'"),
    ("Adagrad", {}, _put("param_groups.0.lr_decay", -1.0), ValueError, "lr_decay in"),
    # finite in the file, infinite in the parameters' float32
    ("Adam", {}, lambda s: s.update({"state.1.exp_avg_sq": np.full(4, 1e300)}), ValueError,
     r"'state.1.exp_avg_sq' .*expected values within the range of float32, received "
     r"values up to 1e\+300"),
])
def test_every_optimizer_refuses_what_it_never_saves(name, kwargs, change, error, match):
    params, opt, saved = _saved(name, kwargs, dtype=np.float32)
    change(saved)
    with pytest.raises(error, match=match):
        tn.optim.get(name, params, **kwargs).load_state_dict(saved)


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply:RuntimeWarning")
@pytest.mark.parametrize("name", ["Adam", "RMSprop", "Adagrad"])
def test_an_overflowed_second_moment_loads_and_resumes_exactly(name):
    # a finite gradient whose square overflows float32 makes the second moment
    # +inf, the update 0, the parameter finite: a state save writes, so it loads.
    # (The NumPy backend's rules warn of that overflow, as NumPy does; it is
    # the point here, so the warning is silenced.)
    rng = np.random.default_rng(8)
    grads = random_grads(rng, 5, np.float32)
    grads[1][0][0, 0] = 3e21
    start = make_params(rng, np.float32)

    def first_part():
        params = [tn.Param(p.value.copy(), name=p.name) for p in start]
        opt = tn.optim.get(name, params, lr=0.01)
        run(opt, params, grads[:2])
        return params, opt

    straight, opt = first_part()
    second = "exp_avg_sq" if name == "Adam" else "square_avg" if name == "RMSprop" else "sum"
    assert opt.state[straight[0]][second][0, 0] == np.inf
    assert all(np.isfinite(p.value).all() for p in straight)
    run(opt, straight, grads[2:])

    interrupted, opt = first_part()
    buffer = io.BytesIO()
    np.savez(buffer, **opt.state_dict())
    buffer.seek(0)
    resumed = [tn.Param(p.value.copy()) for p in interrupted]
    fresh = tn.optim.get(name, resumed, lr=0.01)
    fresh.load_state_dict(dict(np.load(buffer, allow_pickle=False)))
    assert fresh.state[resumed[0]][second][0, 0] == np.inf
    run(fresh, resumed, grads[2:])
    for a, b in zip(straight, resumed):
        assert np.isfinite(b.value).all() and a.value.tobytes() == b.value.tobytes()


def test_a_schedules_initial_lr_is_restored_and_checked_as_lr_is():
    params, opt, _ = _saved("SGD", {"lr": 0.1})
    tn.optim.StepLR(opt, step_size=1, gamma=0.5)
    saved = opt.state_dict()
    assert float(saved["param_groups.0.initial_lr"]) == 0.1
    fresh = SGD(params, lr=0.3)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["initial_lr"] == 0.1
    with pytest.raises(ValueError, match=r"initial_lr in \[0, inf\), received -1.0"):
        fresh.add_param_group({"params": [tn.Param(np.zeros(2))], "initial_lr": -1.0})


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{k}" for n, k in CONFIGS])
def test_float16_parameters_step_as_torch_steps_them(name, kwargs):
    # A Param may hold any floating dtype; the fused kernels take float32 and
    # float64 and hand the others to the NumPy rules, which then crashed on the
    # state floor (defined for float32 and float64 only).
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    params = make_params(rng, np.float16)
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    opt = tn.optim.get(name.lower(), params, **kwargs)
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for step_grads in random_grads(rng, 5, np.float16):
        for p, tp, g in zip(params, tparams, step_grads):
            p.grad = g
            tp.grad = torch.tensor(g)
        # Adam's eps = 1e-8 rounds to 0 in float16, so a second moment that
        # underflows divides by 0: an infinite step, in torch as here
        with np.errstate(divide="ignore", invalid="ignore"):
            opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        assert p.value.dtype == np.float16
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=2e-2, atol=2e-2)


def test_adagrad_starts_each_group_from_its_own_initial_accumulator_value():
    # torch.optim.Adagrad (2.13) takes the constructor's value for every group;
    # tinynet keeps a group's own, as for every other hyperparameter
    first, second = tn.Param(np.zeros(2)), tn.Param(np.zeros(3))
    opt = Adagrad([{"params": [first]},
                   {"params": [second], "initial_accumulator_value": 2.0}],
                  initial_accumulator_value=0.5)
    for p in (first, second):
        p.grad = np.ones(p.shape)
    opt.step()
    np.testing.assert_array_equal(opt.state[first]["sum"], [1.5, 1.5])
    np.testing.assert_array_equal(opt.state[second]["sum"], [3.0, 3.0, 3.0])


def _head_only_then_add(how: str):
    """A model whose optimizer the user bound (to the head only, or to two
    groups of every parameter), compiled and fitted, then a layer added."""
    from tinynet import transfer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0, name="base"),
                           tn.layers.Dense(3, seed=1, name="head")])
    if how == "head only":
        opt = Adam(model.get_layer("head").parameters(), lr=0.01)
    elif how == "one group":
        opt = Adam(model.parameters(), lr=0.01)
    else:
        opt = Adam(transfer.discriminative_param_groups(model, 1e-2), lr=0.5)
    model.compile(opt, loss="mse")
    model.fit(x, rng.standard_normal((16, 3)).astype(np.float32), epochs=1, verbose=0, seed=0)
    return model, opt, x, y


@pytest.mark.parametrize("how", ["head only", "one group", "groups"])
@pytest.mark.parametrize("change", ["add", "replace_head"])
def test_a_user_bound_optimizer_takes_the_layers_added_after_it_was_compiled(how, change):
    # README: compile(opt) again after add (opt compiled with this model, or bound by
    # you): the new layer trains; a parameter the user left out stays out (torch.optim
    # keeps what it was given). main left the new layer in no group: never trained.
    from tinynet import transfer
    model, opt, x, y = _head_only_then_add(how)
    base = [p.value.copy() for p in model.get_layer("base").parameters()]
    if change == "add":
        model.add(tn.layers.Dense(2, seed=3, name="new"))
    else:
        transfer.replace_head(model, tn.layers.Dense(2, seed=3, name="new"), n_remove=0)
    new_before = [p.value.copy() for p in model.get_layer("new").parameters()]
    model.compile(opt, loss="cross_entropy")
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    new_after = model.get_layer("new").parameters()
    assert all(not np.array_equal(p.value, v) for p, v in zip(new_after, new_before))
    base_after = [p.value for p in model.get_layer("base").parameters()]
    held = {id(p) for p in opt.params}
    if how == "head only":   # left out by the user: still out, unchanged
        assert not any(id(p) in held for p in model.get_layer("base").parameters())
        assert all(np.array_equal(a, b) for a, b in zip(base_after, base))
    else:
        assert all(not np.array_equal(a, b) for a, b in zip(base_after, base))
    if how == "one group":   # one group: the new layer joins it
        assert len(opt.param_groups) == 1
    elif how == "groups":    # several: a group of the optimizer's defaults (lr 0.5)
        assert [id(p) for p in opt.param_groups[-1]["params"]] == [
            id(p) for p in new_after]
        assert opt.param_groups[-1]["lr"] == 0.5


def test_a_user_bound_subset_keeps_out_what_it_left_out_after_a_copy_or_a_plain_fit():
    import copy
    import pickle
    model, opt, x, y = _head_only_then_add("head only")
    target = np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)
    for m, o in [(model, opt), copy.deepcopy((model, opt)),
                 pickle.loads(pickle.dumps((model, opt)))]:
        base = [p.value.copy() for p in m.get_layer("base").parameters()]
        m.compile(o, loss="mse")
        m.fit(x, target, epochs=1, verbose=0, seed=0)
        assert len(o.params) == 2
        assert all(np.array_equal(p.value, b)
                   for p, b in zip(m.get_layer("base").parameters(), base))


def test_an_optimizer_bound_by_the_user_before_the_first_compile_holds_what_it_was_given():
    # bound, a layer added, then the first compile: nothing says what joined after
    # the binding, so the optimizer is kept as given (documented), the new layer fixed
    model = tn.Sequential([tn.layers.Dense(5, input_dim=4, seed=0)])
    opt = Adam(model.parameters(), lr=0.01)
    model.add(tn.layers.Dense(3, seed=1, name="new"))
    model.compile(opt, loss="mse")
    assert len(opt.params) == 2


def test_a_left_out_layer_built_again_stays_out_and_another_optimizer_in_between_resets():
    # joined is a layer's, not a parameter's: a left-out base built again (new
    # parameters, the same layer) stays out of a head-only optimizer
    model, opt, x, y = _head_only_then_add("head only")
    base = model.get_layer("base")
    base.build((4,))
    model.compile(opt, loss="mse")
    assert len(opt.params) == 2 and not any(p in opt.state for p in base.parameters())
    # another optimizer compiled in between: the record is that one's, so the
    # head-only one holds what it was given (documented)
    model.add(tn.layers.Dense(2, seed=3, name="new"))
    model.compile(SGD(lr=0.1), loss="mse")
    model.compile(opt, loss="mse")
    assert len(opt.params) == 2


def test_a_head_only_optimizer_saved_and_loaded_stays_head_only_after_add(tmp_path):
    # tn.load bound the saved subset but left the model taking the optimizer for
    # its own, so an add and compile bound the left-out base too, which trained
    model, opt, x, y = _head_only_then_add("head only")
    loaded = tn.load(model.save(tmp_path / "m.npz"))
    assert len(loaded.optimizer.params) == 2
    base = [p.value.copy() for p in loaded.get_layer("base").parameters()]
    loaded.add(tn.layers.Dense(2, seed=3, name="new"))
    new = [p.value.copy() for p in loaded.get_layer("new").parameters()]
    loaded.compile(loaded.optimizer, loss="cross_entropy")
    loaded.fit(x, y, epochs=2, verbose=0, seed=0)
    assert len(loaded.optimizer.params) == 4
    assert all(np.array_equal(p.value, b)
               for p, b in zip(loaded.get_layer("base").parameters(), base))
    assert all(not np.array_equal(p.value, b)
               for p, b in zip(loaded.get_layer("new").parameters(), new))
    # one holding every parameter is still the model's own after load (bound again in full)
    full, opt, _, _ = _head_only_then_add("one group")
    again = tn.load(full.save(tmp_path / "f.npz"))
    assert again._bound_ids is not None
