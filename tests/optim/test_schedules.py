"""Learning-rate schedules against torch.optim.lr_scheduler and their formulas."""

import math

import numpy as np
import pytest

import tinynet as tn
from tinynet.optim import (SGD, Adam, CosineAnnealingLR, ExponentialLR, LinearWarmup,
                           ReduceLROnPlateau, StepLR)

N_EPOCHS = 25


def two_groups(lrs=(0.1, 0.02)):
    return [{"params": [tn.Param(np.zeros(2))], "lr": lrs[0]},
            {"params": [tn.Param(np.zeros(3))], "lr": lrs[1]}]


def lr_history(optimizer, scheduler, n=N_EPOCHS, metrics=None):
    """The group learning rates before each of ``n`` epochs."""
    history = []
    for epoch in range(n):
        history.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step(*([] if metrics is None else [metrics[epoch]]))
    return np.array(history)


def torch_history(make, n=N_EPOCHS, metrics=None):
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
              {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02}]
    opt = torch.optim.SGD(groups, lr=0.1)
    return lr_history(opt, make(torch.optim.lr_scheduler, opt), n, metrics)


def tinynet_history(make, n=N_EPOCHS, metrics=None):
    opt = SGD(two_groups(), lr=0.1)
    return lr_history(opt, make(opt), n, metrics)


CLOSED_FORM = [
    ("StepLR", lambda s, o: s.StepLR(o, step_size=3, gamma=0.5),
     lambda o: StepLR(o, step_size=3, gamma=0.5)),
    ("ExponentialLR", lambda s, o: s.ExponentialLR(o, gamma=0.9),
     lambda o: ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
     lambda o: CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("LinearLR", lambda s, o: s.LinearLR(o, start_factor=0.25, total_iters=6),
     lambda o: LinearWarmup(o, 6, start_factor=0.25)),
    ("warmup then cosine",
     lambda s, o: s.SequentialLR(o, [s.LinearLR(o, start_factor=0.2, total_iters=5),
                                     s.CosineAnnealingLR(o, T_max=8)], milestones=[5]),
     lambda o: LinearWarmup(o, 5, start_factor=0.2, after=CosineAnnealingLR(o, T_max=8))),
]


@pytest.mark.parametrize("name, make_torch, make", CLOSED_FORM, ids=[c[0] for c in CLOSED_FORM])
def test_closed_form_schedules_match_torch(name, make_torch, make):
    ours = tinynet_history(make)
    theirs = torch_history(make_torch)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def chained_history(optimizer, schedulers, n=8, cut_at=3):
    """Rates before each epoch; all ``schedulers`` stepped after each, and the
    rates halved by hand at the start of epoch ``cut_at`` (a plateau's cut)."""
    history = []
    for epoch in range(n):
        if epoch == cut_at:
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        history.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return np.array(history)


def test_schedules_chain_and_keep_outside_changes_as_torch_does():
    opt = SGD(two_groups(), lr=0.1)
    ours = chained_history(opt, [StepLR(opt, 2, gamma=0.1), ExponentialLR(opt, gamma=0.9)])
    # by hand: base * 0.1**(t // 2) * 0.9**t, halved from epoch 3 on
    t = np.arange(8)
    expected = np.outer(0.1 ** (t // 2) * 0.9 ** t * np.where(t >= 3, 0.5, 1.0), [0.1, 0.02])
    np.testing.assert_allclose(ours, expected, rtol=1e-13)
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
              {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02}]
    topt = torch.optim.SGD(groups, lr=0.1)
    S = torch.optim.lr_scheduler
    theirs = chained_history(topt, [S.StepLR(topt, 2, gamma=0.1), S.ExponentialLR(topt, 0.9)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)


def test_schedules_made_together_with_the_warmup_last_chain_as_torch_does():
    # as the module docstring advises (made first, the warm-up's epoch-0 factor
    # is lost: a schedule made on groups with a base rate starts from it)
    opt = SGD(two_groups(), lr=0.1)
    ours = chained_history(opt, [StepLR(opt, 2, gamma=0.5), LinearWarmup(opt, 4, 0.25)])
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
              {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02}]
    topt = torch.optim.SGD(groups, lr=0.1)
    S = torch.optim.lr_scheduler
    theirs = chained_history(topt, [S.StepLR(topt, 2, gamma=0.5),
                                    S.LinearLR(topt, start_factor=0.25, total_iters=4)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-13)


def test_a_plateau_cut_survives_the_schedule_callback():
    # LearningRateScheduler(StepLR) and ReduceLROnPlateau together in fit: the
    # cut used to be overwritten by the schedule's next epoch
    model = tn.Sequential([tn.layers.Dense(1, input_dim=2)])
    opt = SGD(lr=0.1)
    model.compile(opt, loss="mse")
    x = np.ones((4, 2))
    history = model.fit(x, np.ones((4, 1)), epochs=5, batch_size=4, verbose=0, callbacks=[
        tn.callbacks.LearningRateScheduler(StepLR(opt, step_size=100)),
        tn.callbacks.ReduceLROnPlateau(monitor="loss", mode="max", patience=0, factor=0.5)])
    # mode="max" on a falling loss: every epoch after the first counts as bad
    # (each epoch logs the rate it used; the cuts come at the ends of epochs 1, 2, 3)
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.1, 0.05, 0.025, 0.0125])


def test_formulas_without_torch():
    opt = Adam([tn.Param(np.zeros(1))], lr=1.0)
    cosine = lr_history(opt, CosineAnnealingLR(opt, T_max=4), n=9)[:, 0]
    expected = [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    np.testing.assert_allclose(cosine, expected, atol=1e-15)
    opt = Adam([tn.Param(np.zeros(1))], lr=2.0)
    assert list(lr_history(opt, StepLR(opt, 2, gamma=0.1), n=5)[:, 0]) == \
        pytest.approx([2.0, 2.0, 0.2, 0.2, 0.02], rel=1e-15)
    opt = Adam([tn.Param(np.zeros(1))], lr=1.0)
    warm = lr_history(opt, LinearWarmup(opt, 4), n=6)[:, 0]
    np.testing.assert_allclose(warm, [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0])


def test_schedule_as_a_function_of_the_epoch():
    opt = SGD(two_groups(), lr=0.1)
    sched = LinearWarmup(opt, 3, after=CosineAnnealingLR(opt, T_max=5))
    by_call = [sched(epoch) for epoch in range(10)]
    assert sched.last_epoch == 0  # calling does not step
    np.testing.assert_array_equal(by_call, lr_history(opt, sched, 10)[:, 0])


PLATEAU = [
    {},
    {"mode": "max", "factor": 0.5, "patience": 1, "threshold": 0.1, "threshold_mode": "abs"},
    {"factor": 0.5, "patience": 2, "cooldown": 2, "min_lr": [0.01, 0.005]},
    {"patience": 0, "min_lr": 0.001, "threshold": 0.0},
]


@pytest.mark.parametrize("kwargs", PLATEAU)
def test_reduce_on_plateau_matches_torch(kwargs):
    rng = np.random.default_rng(len(kwargs))
    # noisy, mostly flat values so that reductions and cooldowns happen
    metrics = list(np.round(1.0 + 0.2 * rng.standard_normal(40) / np.arange(1, 41) ** 0.2, 2))
    ours = tinynet_history(lambda o: ReduceLROnPlateau(o, **kwargs), 40, metrics)
    theirs = torch_history(lambda s, o: s.ReduceLROnPlateau(o, **kwargs), 40, metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert ours[-1, 0] < ours[0, 0]


def test_reduce_on_plateau_by_hand():
    opt = SGD([tn.Param(np.zeros(1))], lr=1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=0.3)
    lrs = []
    for value in [1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]:
        sched.step(value)
        lrs.append(sched.get_last_lr()[0])
    # bad epochs 1, 2 -> halve; 1, 2 -> halve (floored at 0.3); further cuts < eps apart
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.3, 0.3, 0.3]


def test_reduce_on_plateau_pairs_its_min_lrs_with_the_groups_by_their_parameters():
    # the min_lr of the group removed (the first) went to the one left, by place:
    # 0.5 was cut to 0.05 instead of its own floor, 0.3
    params = [tn.Param(np.zeros(2)), tn.Param(np.zeros(2))]
    opt = SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.5}])
    sched = ReduceLROnPlateau(opt, patience=0, min_lr=[0.05, 0.3])
    sched.step(1.0)
    opt.remove_params([params[0]])
    sched.step(2.0)
    assert [g["lr"] for g in opt.param_groups] == [0.3] and sched.min_lrs == [0.3]
    # a group added: one min_lr per group has none for it, a cut refused clearly
    opt.add_param_group({"params": [tn.Param(np.zeros(1))], "lr": 0.2})
    with pytest.raises(ValueError, match=r"was given one min_lr per parameter group, but "
                                         r"group\(s\) \[1\] of the optimizer's 2 have none"):
        sched.step(3.0)


def _three_params():
    return [tn.Param(np.zeros(2)) for _ in range(3)]


def test_reduce_on_plateau_one_min_lr_follows_a_bind_to_fewer_groups():
    # one number has nothing to pair: it was refused ("schedules 2 parameter group(s)")
    a, b, c = _three_params()
    opt = SGD(lr=0.1)
    opt.bind([{"params": [a]}, {"params": [b], "lr": 0.05}])
    sched = ReduceLROnPlateau(opt, patience=0, min_lr=0.001)
    sched.step(1.0)
    opt.bind([c])
    sched.step(2.0)
    sched.step(3.0)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.001)]


def test_reduce_on_plateau_a_list_of_one_min_lr_is_every_groups():
    # min_lr=[x] on one group is that one number (main broadcast it); a group
    # added was refused at the next step
    a, b, _ = _three_params()
    opt = SGD(lr=0.1)
    opt.bind([a])
    sched = ReduceLROnPlateau(opt, patience=0, min_lr=[0.001])
    sched.step(1.0)
    opt.add_param_group({"params": [b], "lr": 0.05})
    for metric in (2.0, 3.0, 4.0):
        sched.step(metric)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.001), 0.001]


@pytest.mark.parametrize("change", ["added", "bound to fewer"])
def test_reduce_on_plateau_per_group_min_lrs_refuse_only_a_cut(change):
    # a group without a min_lr was refused at the next step, no cut due
    a, b, c = _three_params()
    opt = SGD(lr=0.1)
    opt.bind([{"params": [a]}, {"params": [b]}])
    sched = ReduceLROnPlateau(opt, patience=1, min_lr=[0.001, 0.002])
    sched.step(1.0)
    if change == "added":
        opt.add_param_group({"params": [c], "lr": 0.05})
    else:
        opt.bind([c])
    sched.step(0.9)
    sched.step(0.8)
    assert opt.param_groups[-1]["lr"] == (0.05 if change == "added" else 0.1)
    sched.step(0.9)  # one bad epoch: within patience
    with pytest.raises(ValueError, match="a cut is due"):
        sched.step(0.9)


def test_reduce_on_plateau_gives_one_min_lr_to_a_group_added():
    # one min_lr for every group: the next cut was refused ("ReduceLROnPlateau
    # schedules 2 parameter group(s), but the optimizer now has 3")
    metrics = [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]

    def run(opt, sched, new_param):
        history = []
        for epoch, metric in enumerate(metrics):
            if epoch == 1:
                opt.add_param_group({"params": [new_param], "lr": 0.4})
            history.append([g["lr"] for g in opt.param_groups][:2] +
                           [opt.param_groups[2]["lr"] if epoch >= 1 else np.nan])
            opt.step()
            sched.step(metric)
        return np.array(history)

    opt = SGD(two_groups(), lr=0.1)
    ours = run(opt, ReduceLROnPlateau(opt, patience=0, factor=0.5, min_lr=0.03),
               tn.Param(np.zeros(1)))
    np.testing.assert_allclose(ours[:, 2], [np.nan, 0.4, 0.2, 0.1, 0.05, 0.03])
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
                            {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02}])
    theirs = run(topt, torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0,
                                                                   factor=0.5, min_lr=0.03),
                 torch.zeros(1, requires_grad=True))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.parametrize("make, metric", [
    (lambda o: CosineAnnealingLR(o, T_max=7), None),
    (lambda o: LinearWarmup(o, 3, after=StepLR(o, 2)), None),
    (lambda o: ReduceLROnPlateau(o, patience=1, cooldown=1), 1.0),
])
def test_state_dict_resumes_schedule(make, metric):
    metrics = None if metric is None else [metric] * 12
    opt = SGD(two_groups(), lr=0.1)
    straight = lr_history(opt, make(opt), 12, metrics)

    opt = SGD(two_groups(), lr=0.1)
    sched = make(opt)
    first = lr_history(opt, sched, 5, metrics)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    assert all(isinstance(v, np.ndarray) for v in saved_sched.values())
    opt = SGD(two_groups(), lr=0.1)
    sched = make(opt)
    opt.load_state_dict(saved_opt)
    sched.load_state_dict(saved_sched)
    rest = lr_history(opt, sched, 7, metrics)
    np.testing.assert_array_equal(np.vstack([first, rest]), straight)


def test_scheduler_on_an_unbound_optimizer():
    opt = Adam(lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    params = [tn.Param(np.zeros(2))]
    opt.bind(params)
    assert opt.param_groups[0]["lr"] == 0.5
    sched.step()
    assert opt.lr == 0.25 and sched.get_last_lr() == [0.25]


@pytest.mark.parametrize("make", [
    lambda o: CosineAnnealingLR(o, T_max=4),
    lambda o: LinearWarmup(o, 2, start_factor=0.5, after=StepLR(o, 1, gamma=0.5)),
])
def test_a_schedule_made_before_bind_records_the_base_rate_for_a_new_schedule(make):
    # made unbound (before model.compile), then bound: the groups must get the
    # base rate as initial_lr, so that a schedule made on the optimizer loaded
    # from a checkpoint (without the old schedule's state) starts from it too
    opt = Adam(lr=0.01)
    straight = make(opt)
    opt.bind([tn.Param(np.zeros(2))])
    lrs = lr_history(opt, straight, 4)
    assert opt.param_groups[0]["initial_lr"] == 0.01
    saved = opt.state_dict()
    for resume_at in (1, 2, 3):
        loaded = Adam([tn.Param(np.zeros(2))], lr=0.01)
        loaded.load_state_dict(saved)
        loaded.param_groups[0]["lr"] = lrs[resume_at - 1][0]  # as saved at that epoch
        sched = make(loaded)
        sched.last_epoch = resume_at - 1  # as LearningRateScheduler(initial_epoch=...)
        sched.step()
        assert loaded.lr == lrs[resume_at][0], resume_at


@pytest.mark.parametrize("second", [lambda o: ExponentialLR(o, gamma=0.9),
                                    lambda o: CosineAnnealingLR(o, T_max=4, eta_min=0.001)],
                         ids=["exponential", "cosine"])
@pytest.mark.parametrize("made", ["bound", "unbound", "bound before the first step"])
def test_a_second_schedule_takes_the_base_rate_the_first_recorded(second, made):
    # made on an unbound optimizer (or after bind, before the first schedule's
    # next step gave the groups their initial_lr), the second schedule took the
    # first one's rate at the time, 0.05, as its base; on a bound optimizer it
    # takes the groups' initial_lr, 0.1, recorded once (PyTorch's key): all alike
    params = [tn.Param(np.zeros(2))]
    opt = SGD(params if made == "bound" else None, lr=0.1)
    first = StepLR(opt, 1, gamma=0.5)
    first.step()
    if made == "bound before the first step":
        opt.bind(params)
    other = second(opt)
    assert other.base_lrs == [0.1]
    if made == "unbound":
        opt.bind(params)
    rates = []
    for _ in range(4):
        other.step()  # the second first: the groups' initial_lr must not depend on it
        first.step()
        rates.append(opt.lr)
    assert opt.param_groups[0]["initial_lr"] == 0.1
    reference = SGD([tn.Param(np.zeros(2))], lr=0.1)
    ref_first = StepLR(reference, 1, gamma=0.5)
    ref_first.step()
    ref_other = second(reference)
    expected = []
    for _ in range(4):
        ref_other.step()
        ref_first.step()
        expected.append(reference.lr)
    assert rates == expected


def test_a_group_added_while_a_schedule_runs_follows_it_from_its_own_base_rate():
    # the schedule's next step refused the optimizer ("schedules 2 parameter
    # group(s), but the optimizer now has 3"); with one group, it gave the new
    # group that one's rate. A group given its rate starts at it (PyTorch's
    # add_param_group) and goes on from it (0.4 * 0.5, not 0.4 * 0.5 ** 3: see
    # test_a_group_added_with_its_own_rate_goes_on_from_it); one without starts
    # at the constructor's times the decay
    opt = SGD(two_groups(), lr=0.1)
    schedule = StepLR(opt, 1, gamma=0.5)
    schedule.step()
    schedule.step()
    opt.add_param_group({"params": [tn.Param(np.zeros(1))], "lr": 0.4})
    assert opt.param_groups[2]["lr"] == 0.4 and "initial_lr" not in opt.param_groups[2]
    opt.add_param_group({"params": [tn.Param(np.zeros(1))]})
    assert (opt.param_groups[3]["lr"], opt.param_groups[3]["initial_lr"]) == (0.025, 0.1)
    schedule.step()
    assert [g["lr"] for g in opt.param_groups] == [0.0125, 0.0025, 0.2, 0.0125]


def added_group_history(optimizer, schedulers, new_param, n=8, add_at=3, lr=0.01):
    """Rates before each epoch; a group of ``new_param`` with its own ``lr``
    added at the start of epoch ``add_at`` (its rate then must be ``lr``)."""
    history = []
    for epoch in range(n):
        if epoch == add_at:
            optimizer.add_param_group({"params": [new_param], "lr": lr})
            assert optimizer.param_groups[-1]["lr"] == lr  # as given, until the next step
        history.append([g["lr"] for g in optimizer.param_groups][:2] +
                       [optimizer.param_groups[2]["lr"] if epoch >= add_at else np.nan])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return np.array(history)


ADDED = [
    ("StepLR", lambda s, o: [s.StepLR(o, step_size=2, gamma=0.1)],
     lambda o: [StepLR(o, step_size=2, gamma=0.1)]),
    ("ExponentialLR", lambda s, o: [s.ExponentialLR(o, gamma=0.9)],
     lambda o: [ExponentialLR(o, gamma=0.9)]),
    ("CosineAnnealingLR", lambda s, o: [s.CosineAnnealingLR(o, T_max=12, eta_min=0.005)],
     lambda o: [CosineAnnealingLR(o, T_max=12, eta_min=0.005)]),
    ("LinearLR", lambda s, o: [s.LinearLR(o, start_factor=0.25, total_iters=6)],
     lambda o: [LinearWarmup(o, 6, start_factor=0.25)]),
    ("StepLR and ExponentialLR chained",
     lambda s, o: [s.StepLR(o, 2, gamma=0.1), s.ExponentialLR(o, gamma=0.9)],
     lambda o: [StepLR(o, 2, gamma=0.1), ExponentialLR(o, gamma=0.9)]),
]


@pytest.mark.parametrize("name, make_torch, make", ADDED, ids=[c[0] for c in ADDED])
def test_a_group_added_with_its_own_rate_goes_on_from_it(name, make_torch, make):
    # it was scheduled from its given rate as its base: 0.01 became 0.01 times the
    # whole decay so far at the next step (StepLR's 0.1 after 3 epochs: 1e-4, not
    # 0.01, then 1e-5 at the next cut, not 0.001); PyTorch's chainable schedules
    # go on from the given rate
    opt = SGD(two_groups(), lr=0.1)
    ours = added_group_history(opt, make(opt), tn.Param(np.zeros(1)))
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
              {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02}]
    topt = torch.optim.SGD(groups, lr=0.1)
    theirs = added_group_history(topt, make_torch(torch.optim.lr_scheduler, topt),
                                 torch.zeros(1, requires_grad=True))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("make, expected", [
    # by hand: the rate at epoch 4 and on, the group given 0.01 at epoch 3
    (lambda o: StepLR(o, 2, gamma=0.1), [0.001, 0.001, 0.0001, 0.0001]),
    (lambda o: LinearWarmup(o, 4, start_factor=0.5, after=CosineAnnealingLR(o, 4,
                                                                             eta_min=0.004)),
     # base b with 0.5 + 0.5 * 3/4 = 0.875 b = 0.01, then the cosine from b to 0.004
     [0.01 / 0.875, 0.004 + (0.01 / 0.875 - 0.004) * (1 + math.cos(math.pi / 4)) / 2,
      0.004 + (0.01 / 0.875 - 0.004) / 2,
      0.004 + (0.01 / 0.875 - 0.004) * (1 + math.cos(3 * math.pi / 4)) / 2]),
])
def test_a_group_added_with_its_own_rate_goes_on_from_it_by_hand(make, expected):
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    schedule = make(opt)
    for _ in range(3):
        schedule.step()
    opt.add_param_group({"params": [tn.Param(np.zeros(1))], "lr": 0.01})
    rates = []
    for _ in range(4):
        schedule.step()
        rates.append(opt.param_groups[1]["lr"])
    np.testing.assert_allclose(rates, expected, rtol=1e-14)
    # its base (the rate at epoch 0 of this schedule) is recorded: a schedule made
    # later starts it from there, in proportion to the others
    assert opt.param_groups[1]["initial_lr"] == pytest.approx(schedule.base_lrs[1], rel=1e-15)


@pytest.mark.parametrize("order", ["state first", "model first"])
def test_resuming_after_a_group_added_with_its_own_rate_matches_the_run(tmp_path, order):
    # the new schedule's constructor recorded the added group's lr as its base,
    # so after loading it got that lr times the whole decay (0.00125, not 0.005)
    def build():
        model = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=0),
                               tn.layers.Dense(1, seed=1)])
        opt = SGD(model.layers[0].parameters(), lr=0.1)
        model.compile(opt, loss="mse")
        return model, opt

    def trace(schedule, opt):
        rates = []
        for _ in range(3):
            schedule.step()
            rates.append([g["lr"] for g in opt.param_groups])
        return rates

    model, opt = build()
    schedule = StepLR(opt, 1, gamma=0.5)
    schedule.step()
    schedule.step()
    opt.add_param_group({"params": model.layers[1].parameters(), "lr": 0.01})
    path = str(tmp_path / "m.npz")
    if order == "model first":
        model.save(path)
    state = schedule.state_dict()
    if order == "state first":
        model.save(path)
    expected = trace(schedule, opt)
    opt2 = tn.load(path).optimizer
    schedule2 = StepLR(opt2, 1, gamma=0.5)
    schedule2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == [0.025, 0.01]
    np.testing.assert_allclose(trace(schedule2, opt2), expected, rtol=1e-15)
    np.testing.assert_allclose(expected, [[0.0125, 0.005], [0.00625, 0.0025],
                                          [0.003125, 0.00125]], rtol=1e-15)


def _rates_after_adding_a_group(save, own_lr=None, cut_first=False):
    # StepLR halving one group; a group added after two steps, the first
    # group's rate cut by hand after the add (before it if ``cut_first``);
    # ``save`` between the two
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    schedule = StepLR(opt, 1, gamma=0.5)
    schedule.step()
    schedule.step()
    if cut_first:
        opt.param_groups[0]["lr"] *= 0.1
    group = {"params": [tn.Param(np.zeros(2))]}
    opt.add_param_group(group if own_lr is None else {**group, "lr": own_lr})
    before = ([dict(g, params=None) for g in opt.param_groups],
              {k: v for k, v in vars(schedule).items() if k != "optimizer"})
    if save:
        schedule.state_dict()
        assert ([dict(g, params=None) for g in opt.param_groups],
                {k: v for k, v in vars(schedule).items() if k != "optimizer"}) == before
    if not cut_first:
        opt.param_groups[0]["lr"] *= 0.1
    rates = []
    for _ in range(2):
        schedule.step()
        rates.append([g["lr"] for g in opt.param_groups])
    return rates


@pytest.mark.parametrize("own_lr", [None, 0.01])
def test_state_dict_changes_neither_the_optimizer_nor_the_schedule(own_lr):
    # state_dict took the added group in, as a step does: the cut made after
    # it was then not carried by the added group, unlike without the save
    assert _rates_after_adding_a_group(True, own_lr) == \
        _rates_after_adding_a_group(False, own_lr)


@pytest.mark.parametrize("own_lr, cut_first, expected", [
    (None, False, [[0.00125, 0.0125], [0.000625, 0.00625]]),
    (None, True, [[0.00125, 0.00125], [0.000625, 0.000625]]),
    (0.01, False, [[0.00125, 0.005], [0.000625, 0.0025]])])
def test_a_cut_made_to_a_group_is_an_added_groups_only_if_made_before_the_add(
        own_lr, cut_first, expected):
    # as PyTorch's chainable StepLR goes on from each group's rate (given the
    # added group's starting rate); the group added without an lr started at
    # 0.025 and was given the cut made to the first group after the add
    rates = _rates_after_adding_a_group(False, own_lr, cut_first)
    np.testing.assert_allclose(rates, expected, rtol=1e-15)


def test_state_dict_of_a_schedule_bound_again_to_fewer_groups_saves_its_rates():
    # the save raised the next step's refusal: a checkpoint crashed
    opt = SGD([{"params": [tn.Param(np.zeros(2))]},
               {"params": [tn.Param(np.zeros(2))], "lr": 0.02}], lr=0.1)
    schedule = StepLR(opt, 1, gamma=0.5)
    schedule.step()
    opt.bind([tn.Param(np.zeros(2))])
    state = schedule.state_dict()
    np.testing.assert_array_equal(state["base_lrs"], [0.1, 0.02])
    np.testing.assert_array_equal(state["lrs_at_save"], [opt.param_groups[0]["lr"]])
    assert schedule.base_lrs == [0.1, 0.02]
    with pytest.raises(ValueError, match="schedules 2 parameter group"):
        schedule.step()


def test_a_group_added_where_the_rate_tells_no_base_takes_its_rate_as_its_base():
    # a warm-up from 0 at its start: every base rate gives 0
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    schedule = LinearWarmup(opt, 4, start_factor=0.0)
    opt.add_param_group({"params": [tn.Param(np.zeros(1))], "lr": 0.01})
    schedule.step()
    assert [g["lr"] for g in opt.param_groups] == [0.025, 0.0025]


def test_a_group_added_after_a_subnormal_factor_takes_its_rate_as_its_base():
    # after 1070 halvings the factor is subnormal: lr over it was infinite
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    schedule = ExponentialLR(opt, 0.5)
    for _ in range(1070):
        schedule.step()
    opt.add_param_group({"params": [tn.Param(np.zeros(1))], "lr": 0.01})
    schedule.step()
    assert opt.param_groups[1]["initial_lr"] == 0.01
    assert all(math.isfinite(g["lr"]) for g in opt.param_groups)


def _after_callable_decay():
    """One group decayed 0.1 -> 0.025 by a Keras-style callable schedule."""
    import types
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    callback = tn.callbacks.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)
    callback.model = types.SimpleNamespace(optimizer=opt)
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
    return opt, callback


def test_a_schedule_made_after_a_callable_decay_keeps_the_rate_now():
    # recording the one group's base rate made StepLR jump back to 0.1
    opt, _ = _after_callable_decay()
    schedule = StepLR(opt, step_size=10, gamma=0.5)
    schedule.step()
    assert opt.lr == 0.025


def test_a_group_added_after_a_callable_decay_goes_on_from_its_own_rate():
    # it got its lr times the whole decay so far (0.01 * 0.125) at the next epoch
    opt, callback = _after_callable_decay()
    opt.add_param_group({"params": [tn.Param(np.zeros(1))], "lr": 0.01})
    callback.on_epoch_begin(3)
    assert [g["lr"] for g in opt.param_groups] == [0.0125, 0.005]


@pytest.mark.parametrize("before", ["three groups", "one group, a StepLR before"])
def test_a_group_added_after_a_callable_schedule_starts_from_the_constructors_rate(before):
    # the callable's rate was set through optimizer.lr, which made it the
    # defaults' rate: the group added took it as its base and started at it
    # times the schedule's factor again (0.000625 here, not 0.01)
    import types
    if before == "three groups":
        opt = Adam([{"params": [tn.Param(np.zeros(2))], "lr": 0.0025 * 2 ** i}
                    for i in range(3)], lr=0.02)
    else:
        opt = Adam([tn.Param(np.zeros(2))], lr=0.0025)
        StepLR(opt, step_size=1, gamma=0.5)            # records the group's base rate
        opt.lr = 0.02                                   # the user's: the defaults' too
        opt.param_groups[0]["lr"] = 0.0025
    callback = tn.callbacks.LearningRateScheduler(lambda epoch: 0.0025 * 0.5 ** epoch)
    callback.model = types.SimpleNamespace(optimizer=opt)
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
    assert opt.param_groups[0]["lr"] == 0.00125 and opt.get_config()["lr"] == 0.02
    opt.add_param_group({"params": [tn.Param(np.zeros(1))]})
    added = opt.param_groups[-1]
    assert added["initial_lr"] == 0.02 and added["lr"] == pytest.approx(0.01, rel=1e-12)
    callback.on_epoch_begin(2)                          # and follows the schedule from it
    assert added["lr"] == pytest.approx(0.005, rel=1e-12)


@pytest.mark.parametrize("default", [0.1, 0.1 + 1e-12])
def test_a_group_added_without_lr_does_not_hang_on_a_float_coincidence(default):
    # a default rate equal to the first group's rate now (0.2 halved) started the
    # group at that rate with the first group's base: twice the rate of 0.1 + 1e-12
    opt = SGD([{"params": [tn.Param(np.zeros(2))], "lr": 0.2}], lr=default)
    schedule = StepLR(opt, 1, gamma=0.5)
    schedule.step()
    opt.add_param_group({"params": [tn.Param(np.zeros(1))]})
    assert opt.param_groups[1]["lr"] == pytest.approx(default / 2, rel=1e-10)
    schedule.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(default / 4, rel=1e-10)


@pytest.mark.parametrize("given_lr", [True, False], ids=["own lr", "constructor's lr"])
def test_a_group_removed_and_another_added_are_not_paired(given_lr):
    # same count of groups: the new group was paired with the removed one by place
    # and scheduled from its base (scaled by the jump to its own rate, which the
    # cosine's eta_min makes no factor); it must follow as a group added alone does
    def run(remove):
        params = [tn.Param(np.zeros(2)), tn.Param(np.zeros(2))]
        opt = SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.5}],
                  lr=0.1)
        schedule = CosineAnnealingLR(opt, T_max=10, eta_min=0.005)
        schedule.step()
        schedule.step()
        if remove:
            opt.remove_params([params[1]])
        opt.add_param_group({"params": [tn.Param(np.zeros(1))],
                             **({"lr": 0.01} if given_lr else {})})
        rates = []
        for _ in range(4):
            schedule.step()
            rates.append([g["lr"] for g in opt.param_groups])
        return np.array(rates)

    np.testing.assert_array_equal(run(remove=True), run(remove=False)[:, [0, 2]])
    if not given_lr:
        return
    torch = pytest.importorskip("torch")  # PyTorch's chainable cosine: the same
    topt = torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
                            {"params": [torch.zeros(2, requires_grad=True)], "lr": 0.5}])
    tschedule = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=10, eta_min=0.005)
    topt.step(), tschedule.step(), topt.step(), tschedule.step()
    topt.param_groups.pop(1)
    topt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.01})
    theirs = []
    for _ in range(4):
        topt.step()
        tschedule.step()
        theirs.append([g["lr"] for g in topt.param_groups])
    np.testing.assert_allclose(run(remove=True), theirs, rtol=1e-12)


@pytest.mark.parametrize("removed", [0, 1, 2])
def test_a_group_removed_takes_its_own_base_rate_with_it(removed):
    # the last base rate went whichever group was removed: after the first of
    # two, the one left was scheduled from the first one's base (before 737d851,
    # a ValueError); eta_min shows it (cosine's rates are not proportional)
    params = [tn.Param(np.zeros(2)) for _ in range(3)]
    rates = [0.01, 0.1, 0.05]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, rates)]
    opt = SGD(groups, lr=0.1)
    schedule = CosineAnnealingLR(opt, T_max=4, eta_min=0.005)
    schedule.step()
    opt.remove_params([params[removed]])
    reference = SGD([dict(g, params=[tn.Param(np.zeros(2))]) for i, g in enumerate(groups)
                     if i != removed], lr=0.1)
    ref_schedule = CosineAnnealingLR(reference, T_max=4, eta_min=0.005)
    ref_schedule.step()
    for _ in range(3):
        schedule.step()
        ref_schedule.step()
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in reference.param_groups]


def test_fewer_groups_of_other_parameters_are_refused():
    opt = SGD(two_groups(), lr=0.1)
    schedule = StepLR(opt, 1, gamma=0.5)
    opt.bind([tn.Param(np.zeros(2))])
    with pytest.raises(ValueError, match=r"schedules 2 parameter group\(s\), but the "
                                         r"optimizer now has 1 that are not all among them"):
        schedule.step()


def _decayed_sgd():
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    schedule = StepLR(opt, 1, gamma=0.1)
    schedule.step()
    schedule.step()
    return opt


def _loaded_sgd():
    opt = SGD([tn.Param(np.zeros(2))], lr=0.1)
    opt.load_state_dict(_decayed_sgd().state_dict())
    return opt


def _after_a_callable_schedule():
    from tinynet.callbacks import _set_first_rate
    opt = SGD([{"params": [tn.Param(np.zeros(2))], "lr": 0.1},
               {"params": [tn.Param(np.zeros(2))], "lr": 0.05}], lr=0.1)
    _set_first_rate(opt, 0.01)
    return opt


@pytest.mark.parametrize("make", [_decayed_sgd, _loaded_sgd, _after_a_callable_schedule],
                         ids=["after a schedule", "loaded", "after a callable schedule"])
def test_add_param_group_keeps_the_rate_it_is_given(make):
    # once a group held initial_lr, the rate given was scaled by the decay so far
    # (0.01 became 1e-4 after two tenfold cuts); PyTorch keeps it as given
    opt = make()
    opt.add_param_group({"params": [tn.Param(np.zeros(3))], "lr": 0.01})
    assert opt.param_groups[-1]["lr"] == 0.01
    assert "initial_lr" not in opt.param_groups[-1]


def test_a_schedule_made_before_bind_leaves_the_constructors_rate_in_the_config(tmp_path):
    # the schedule's epoch-0 rate (base * start_factor) is the groups', not the
    # constructor's: a model saved and compiled again from its file must start a
    # new schedule from the same base, 0.01, not from 0.0025
    opt = Adam(lr=0.01)
    warmup = LinearWarmup(opt, 4, start_factor=0.25)
    assert opt.lr == 0.0025 and opt.get_config()["lr"] == 0.01
    model = tn.Sequential([tn.layers.Dense(2, input_dim=3, seed=0)])
    model.compile(opt, loss="mse")
    assert opt.lr == 0.0025 and opt.param_groups[0]["lr"] == 0.0025
    assert model.get_compile_config()["optimizer"]["config"]["lr"] == 0.01
    model.save(tmp_path / "model.npz", include_optimizer=False)
    loaded = tn.load(tmp_path / "model.npz")
    assert loaded.optimizer.lr == 0.01
    again = LinearWarmup(loaded.optimizer, 4, start_factor=0.25)
    for _ in range(3):
        assert loaded.optimizer.lr == opt.lr
        warmup.step(), again.step()
    assert opt.lr == 0.01 * (0.25 + 0.75 * 3 / 4) and opt.get_config()["lr"] == 0.01
    # setting the rate by hand is a setting of the optimizer (Keras'), kept in the config
    unbound = Adam(lr=0.01)
    LinearWarmup(unbound, 4, start_factor=0.25)
    unbound.lr = 0.02
    assert unbound.lr == 0.02 and unbound.get_config()["lr"] == 0.02


@pytest.mark.parametrize("call, error, message", [
    (lambda o: StepLR(o, step_size=0), ValueError, "step_size as a positive integer"),
    (lambda o: StepLR(o, step_size=2.5), TypeError, "step_size"),
    (lambda o: ExponentialLR(o, gamma=-1), ValueError, "gamma"),
    (lambda o: CosineAnnealingLR(o, T_max=10, eta_min=-1), ValueError, "eta_min"),
    (lambda o: StepLR("adam", 2), TypeError, "tinynet optimizer"),
    (lambda o: LinearWarmup(o, 3, start_factor=2.0), ValueError, "start_factor"),
    (lambda o: LinearWarmup(o, 3, after=ReduceLROnPlateau(o)), TypeError, "after="),
    (lambda o: LinearWarmup(o, 3, after=StepLR(SGD(two_groups()), 2)), TypeError, "after="),
    (lambda o: ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode in"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold_mode"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "2 min_lr value"),
    (lambda o: ReduceLROnPlateau(o).step("low"), TypeError, "monitored value as a number"),
    (lambda o: ReduceLROnPlateau(o).step(), TypeError, "metric"),
    (lambda o: StepLR(o, 2).load_state_dict(ExponentialLR(o, 0.5).state_dict()), ValueError,
     "expected a state saved by StepLR, received one saved by 'ExponentialLR'"),
])
def test_bad_input_is_reported(call, error, message):
    with pytest.raises(error, match=message):
        call(SGD(two_groups()))


@pytest.mark.parametrize("make, key, value, error, match", [
    (lambda o: StepLR(o, 2), "last_epoch", 2.5, TypeError,
     r"'last_epoch' as an integer \(a 0-d integer array\), received dtype float64"),
    (lambda o: StepLR(o, 2), "last_epoch", -4, ValueError, "'last_epoch' >= 0, received -4"),
    (lambda o: StepLR(o, 2), "last_epoch", None, ValueError,
     "expected the entry 'last_epoch', which the state lacks"),
    (lambda o: CosineAnnealingLR(o, 5), "base_lrs", [0.1, np.nan], ValueError,
     r"base_lrs\[1\] in \[0, inf\), received nan"),
    (lambda o: CosineAnnealingLR(o, 5), "base_lrs", [0.1, -0.2], ValueError,
     r"base_lrs\[1\] in \[0, inf\), received -0.2"),
    (lambda o: CosineAnnealingLR(o, 5), "base_lrs", [0.1, 0.2, 0.3], ValueError,
     r"'base_lrs' as 1 or 2 numbers .*shape \(3,\)"),
    (lambda o: ReduceLROnPlateau(o), "best", np.nan, ValueError, "best in"),
    (lambda o: ReduceLROnPlateau(o), "best", "low", TypeError, "'best' as a number"),
    (lambda o: ReduceLROnPlateau(o), "num_bad_epochs", -1, ValueError,
     "'num_bad_epochs' >= 0"),
    (lambda o: ReduceLROnPlateau(o), "cooldown_counter", 1.0, TypeError,
     "'cooldown_counter' as an integer"),
    (lambda o: ReduceLROnPlateau(o), "base_lrs", [0.1, 0.02], ValueError,
     "a ReduceLROnPlateau state never holds: 'base_lrs'"),
])
def test_a_bad_scheduler_state_is_refused_and_changes_nothing(make, key, value, error, match):
    opt = SGD(two_groups(), lr=0.1)
    sched = make(opt)
    lr_history(opt, sched, 3, [1.0, 2.0, 3.0] if isinstance(sched, ReduceLROnPlateau) else None)
    saved = sched.state_dict()
    before = dict(vars(sched))
    if value is None:
        del saved[key]
    else:
        saved[key] = np.asarray(value)
    with pytest.raises(error, match=match):
        sched.load_state_dict(saved)
    assert vars(sched) == before


def test_an_infinite_best_is_a_state_reduce_on_plateau_starts_from():
    opt = SGD(two_groups(), lr=0.1)
    sched = ReduceLROnPlateau(opt, mode="max")
    saved = sched.state_dict()
    assert float(saved["best"]) == -math.inf
    sched.step(1.0)
    sched.load_state_dict(saved)
    assert sched.best == -math.inf and sched.last_epoch == 0


@pytest.mark.parametrize("make", [
    lambda o: CosineAnnealingLR(o, T_max=7),
    lambda o: StepLR(o, 2),
    lambda o: LinearWarmup(o, 3, after=StepLR(o, 2)),
])
def test_resuming_with_the_optimizer_loaded_first_keeps_the_saved_rate(make):
    # torch's usual order: optimizer.load_state_dict, then make the scheduler and
    # load its state. Making it sets the epoch-0 rate; loading must put back the
    # saved epoch's rate, or the first epoch after resuming trains at the wrong one.
    opt = SGD(two_groups(), lr=0.1)
    straight = lr_history(opt, make(opt), 12)

    opt = SGD(two_groups(), lr=0.1)
    sched = make(opt)
    first = lr_history(opt, sched, 5)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    opt = SGD(two_groups(), lr=0.1)
    opt.load_state_dict(saved_opt)
    sched = make(opt)
    sched.load_state_dict(saved_sched)
    rest = lr_history(opt, sched, 7)
    np.testing.assert_array_equal(np.vstack([first, rest]), straight)


def test_a_change_made_from_outside_before_saving_is_kept_after_resuming():
    # A plateau cut made after the schedule's step and before the checkpoint is
    # pending: the schedule takes it into its base rate at its next step, with
    # or without a save and load in between.
    def run(resume):
        opt = SGD(two_groups(), lr=0.1)
        sched = CosineAnnealingLR(opt, T_max=9)
        history = []
        for epoch in range(8):
            history.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
            if epoch == 3:
                for group in opt.param_groups:
                    group["lr"] *= 0.5
                if resume:
                    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
                    opt = SGD(two_groups(), lr=0.1)
                    sched = CosineAnnealingLR(opt, T_max=9)
                    opt.load_state_dict(saved_opt)
                    sched.load_state_dict(saved_sched)
        return np.array(history)

    np.testing.assert_array_equal(run(resume=True), run(resume=False))


@pytest.mark.parametrize("order", ["optimizer first", "schedulers first", "old state"])
def test_a_pending_plateau_cut_survives_either_load_order(order):
    # ReduceLROnPlateau cuts the rate after the cosine's step: the cut is pending
    # (the cosine takes it into its base rate at its next step). Loading the
    # optimizer before making the cosine (torch's order) lost it: making the
    # cosine overwrote the saved rate, and loading its state put back the uncut one.
    metrics = [1.0, 0.9, 0.9, 0.95, 0.8, 0.85, 0.7, 0.7]

    def make(opt):
        return CosineAnnealingLR(opt, T_max=9), ReduceLROnPlateau(opt, patience=0, factor=0.5)

    def run(resume):
        opt = SGD(two_groups(), lr=0.1)
        cosine, plateau = make(opt)
        history = []
        for epoch, metric in enumerate(metrics):
            history.append([g["lr"] for g in opt.param_groups])
            opt.step()
            cosine.step()
            plateau.step(metric)
            if epoch == 2 and resume:
                saved = opt.state_dict(), cosine.state_dict(), plateau.state_dict()
                opt = SGD(two_groups(), lr=0.1)
                if resume == "optimizer first":
                    opt.load_state_dict(saved[0])
                cosine, plateau = make(opt)
                cosine.load_state_dict(saved[1])
                plateau.load_state_dict(saved[2])
                if resume == "schedulers first":
                    opt.load_state_dict(saved[0])
        return np.array(history)

    straight = run(None)
    cosine_only = tinynet_history(lambda o: CosineAnnealingLR(o, T_max=9), len(metrics))
    assert straight[3, 0] == cosine_only[3, 0] / 2  # the cut made at epoch 2
    if order == "old state":
        # a state saved before lrs_at_save was kept still loads (the rates it
        # puts back are the ones the schedule set: the pending cut is lost then)
        opt = SGD(two_groups(), lr=0.1)
        cosine, _ = make(opt)
        state = cosine.state_dict()
        del state["lrs_at_save"]
        cosine.load_state_dict(state)
        assert [g["lr"] for g in opt.param_groups] == [0.1, 0.02]
        return
    np.testing.assert_array_equal(run(order), straight)


def test_a_bad_lrs_at_save_is_refused():
    opt = SGD(two_groups(), lr=0.1)
    sched = StepLR(opt, 2)
    state = sched.state_dict()
    with pytest.raises(ValueError, match=r"'lrs_at_save' as 1 or 2 numbers"):
        sched.load_state_dict({**state, "lrs_at_save": np.zeros(3)})
    with pytest.raises(ValueError, match=r"lrs_at_save\[0\]"):
        sched.load_state_dict({**state, "lrs_at_save": np.array([-1.0, 0.1])})


def test_the_saved_rates_are_handed_to_the_optimizer_not_kept_as_an_attribute():
    # lrs_at_save was an attribute of every schedule (None, or the saved rates
    # while load_state_dict ran) only because loading set every entry as one
    opt = SGD(two_groups(), lr=0.1)
    sched = StepLR(opt, 1, gamma=0.5)
    opt.param_groups[0]["lr"] = 0.03  # a change from outside, pending at the save
    state, saved_opt = sched.state_dict(), opt.state_dict()
    assert not hasattr(sched, "lrs_at_save")
    np.testing.assert_array_equal(state["lrs_at_save"], [0.03, 0.02])
    fresh = SGD(two_groups(), lr=0.1)
    fresh.load_state_dict(saved_opt)  # torch's order: the optimizer first
    again = StepLR(fresh, 1, gamma=0.5)
    again.load_state_dict(state)
    assert [g["lr"] for g in fresh.param_groups] == [0.03, 0.02]
    assert not hasattr(again, "lrs_at_save") and vars(again).keys() == vars(sched).keys()
