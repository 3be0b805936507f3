"""A meta-learner trains the model's current parameters: after
``reset_parameters``, ``pop``/``add`` or ``learner.model = other`` it follows
the model (its meta-optimizer and Meta-SGD's rates with it), or refuses a
change it cannot follow, naming it. Before, the functional view kept the
Params of the model it was made on: ``meta_fit`` trained Params the model no
longer held, and ``save`` wrote the untrained model."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.meta import (ANIL, MAML, EpisodeSampler, MetaSGD, Pretrained, ProtoNet, Reptile,
                          SinusoidTasks, load)

L = tn.layers

LEARNERS = {
    "MAML": MAML, "FOMAML": lambda m: MAML(m, first_order=True), "MetaSGD": MetaSGD,
    "ANIL": lambda m: ANIL(m, loss="mse"), "Reptile": Reptile, "Pretrained": Pretrained,
    "ProtoNet": ProtoNet,
}


def small_model(seed=0, n_in=1, n_out=1):
    return tn.Sequential([L.Dense(8, activation="tanh", input_dim=n_in, seed=seed,
                                  dtype="float64"),
                          L.Dense(n_out, seed=seed + 1)])


def tasks_for(name):
    if name == "ProtoNet":
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((30, 2)), np.repeat(np.arange(3), 10)
        return EpisodeSampler(x, y, n_way=3, k_shot=2, n_query=3, seed=0), 2
    return SinusoidTasks(5, seed=0), 1


def fit(learner, tasks, iterations=3):
    learner.meta_fit(tasks, iterations=iterations, meta_batch_size=3, seed=0)


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def holds_the_models_parameters(learner):
    held, own = learner.net.param_list(), learner.model.parameters()
    return len(held) == len(own) and all(a is b for a, b in zip(held, own))


@pytest.mark.parametrize("name", LEARNERS)
def test_meta_fit_trains_the_parameters_reset_parameters_made(name, tmp_path):
    tasks, n_in = tasks_for(name)
    model = small_model(n_in=n_in, n_out=4 if name == "ProtoNet" else 1)
    learner = LEARNERS[name](model)
    fit(learner, tasks)  # the meta-optimizer exists, bound to the first Params
    model.reset_parameters(seed=0)
    reset = model.get_weights()
    fit(learner, tasks)
    assert not same(reset, model.get_weights())  # it trained Params the model had dropped
    assert holds_the_models_parameters(learner)
    assert {id(p) for p in learner.optimizer.params} == {
        id(p) for p in learner.meta_parameters()}
    loaded = load(learner.save(tmp_path / "learner.npz"))
    assert same(loaded.model.get_weights(), model.get_weights())  # the trained weights


def test_the_meta_optimizer_keeps_the_state_of_the_parameters_that_stay():
    # the rule Sequential binds its own optimizer by (optim.binding._bind_again)
    model = small_model()
    maml = MAML(model)
    fit(maml, SinusoidTasks(5, seed=0))
    body = model.layers[0].W
    moments = maml.optimizer.state[body]["exp_avg"].copy()
    model.pop()
    model.add(L.Dense(1, seed=7))
    head = model.layers[-1].W
    head0 = head.value.copy()
    opt = maml.optimizer
    assert np.array_equal(opt.state[body]["exp_avg"], moments) and head not in opt.state
    fit(maml, SinusoidTasks(5, seed=1), iterations=1)
    assert opt.state[head]["step"] == 1 and opt.state[body]["step"] == 4
    assert not np.array_equal(head.value, head0)


def test_metasgd_rates_follow_the_parameters():
    model = small_model()
    learner = MetaSGD(model, inner_lr=0.02)
    fit(learner, SinusoidTasks(5, seed=0))
    body_rates = learner.lrs[:2]
    learned = [p.value.copy() for p in body_rates]
    assert not np.allclose(learned[0], 0.02)
    model.pop()
    model.add(L.Dense(1, seed=7))
    rates = learner.lrs
    assert rates[:2] == body_rates and same([p.value for p in rates[:2]], learned)
    assert [p.shape for p in rates] == [p.shape for p in model.parameters()]
    assert all(np.all(p.value == 0.02) for p in rates[2:])  # new Params: new rates
    assert {id(p) for p in learner.optimizer.params} == {
        id(p) for p in model.parameters() + rates}
    fit(learner, SinusoidTasks(5, seed=1), iterations=1)
    assert not np.all(rates[2].value == 0.02)


def test_a_learner_given_another_model_trains_that_one():
    first, second = small_model(seed=0), small_model(seed=5)
    maml = MAML(first)
    fit(maml, SinusoidTasks(5, seed=0))
    kept, before = first.get_weights(), second.get_weights()
    maml.model = second
    fit(maml, SinusoidTasks(5, seed=0))
    assert same(first.get_weights(), kept) and not same(second.get_weights(), before)
    assert holds_the_models_parameters(maml)


def test_anil_adapts_the_head_of_the_model_as_it_is_now():
    model = small_model()
    anil = ANIL(model, loss="mse", head_layers=1)
    model.pop()
    model.add(L.Dense(3, activation="tanh", seed=4))
    model.add(L.Dense(1, seed=5))
    n = anil.net.n_params
    assert np.array_equal(anil._lr_mask, np.r_[np.zeros(n - 4), np.ones(4)])
    anil.head_layers = 3
    model.pop()
    model.pop()
    with pytest.raises(ValueError, match=r"ANIL: its model changed: its layers changed.*"
                                         r"head_layers in \[1, 1\], received 3"):
        anil.meta_fit(SinusoidTasks(5, seed=0), iterations=1)


def test_anil_head_layers_can_be_set_again_after_a_change_left_too_few_layers():
    # the setter read learner.net, which follows the model with the old value
    # first: after the change below, every new value was refused ("cannot
    # follow: ... received 3"), and the learner could not be used again
    model = small_model()
    model.add(L.Dense(1, seed=2))  # three Dense layers
    anil = ANIL(model, loss="mse", head_layers=3)
    model.pop()
    model.pop()
    model.add(L.Dense(1, seed=5))  # two
    with pytest.raises(ValueError, match=r"head_layers in \[1, 2\], received 5"):
        anil.head_layers = 5
    assert anil.head_layers == 3  # a refused value leaves the old one
    anil.head_layers = 1
    fit(anil, SinusoidTasks(5, seed=0), iterations=2)
    assert anil.head_layers == 1 and np.array_equal(
        anil._lr_mask, np.r_[np.zeros(anil.net.n_params - 9), np.ones(9)])
    assert holds_the_models_parameters(anil)


def test_a_change_the_learner_cannot_follow_is_refused_naming_it():
    model = small_model()
    maml = MAML(model)
    fit(maml, SinusoidTasks(5, seed=0))
    net = maml._net
    model.add(L.Dropout(0.5))
    with pytest.raises(ValueError, match=r"MAML: its model changed: its layers changed \(pop, "
                                         r"add.*cannot follow.*received layer Dropout"):
        maml.meta_fit(SinusoidTasks(5, seed=0), iterations=1)
    assert maml._net is net  # left as it was: undoing the change is enough
    model.pop()
    fit(maml, SinusoidTasks(5, seed=0), iterations=1)
    maml.model = [L.Dense(2)]  # unbuilt
    with pytest.raises(ValueError, match="its model was set to another, and it cannot "
                                         "follow.*first Dense layer built"):
        maml.evaluate(SinusoidTasks(5, seed=0).sample(2), steps=1)


def test_pretrained_head_mask_follows_a_reset_and_refuses_new_shapes():
    model = small_model()
    learner = Pretrained(model).new_head(2)
    mask = learner._lr_mask.copy()
    learner.model.reset_parameters(seed=1)
    assert np.array_equal(learner.net.get_params(), tn.meta.FunctionalMLP(
        learner.model).get_params()) and np.array_equal(learner._lr_mask, mask)
    learner.model.pop()
    learner.model.add(L.Dense(3))
    with pytest.raises(ValueError, match=r"adapts only some of its parameters.*\(8, 2\).*"
                                         r"\(8, 3\)"):
        learner.net


def test_net_and_lrs_are_read_only_views_and_say_so():
    # "property 'net' of 'MetaSGD' object has no setter", though the docstrings
    # list both under Attributes
    model = small_model()
    learner = MetaSGD(model)
    with pytest.raises(AttributeError, match=r"MetaSGD\.net is a read-only view that follows "
                                             r"learner\.model; set learner\.model"):
        learner.net = tn.meta.FunctionalMLP(model)
    with pytest.raises(AttributeError, match=r"MetaSGD\.lrs is a read-only list .*in place: "
                                             r"learner\.lrs\[i\]\.value\[\.\.\.\] = rate"):
        learner.lrs = list(learner.lrs)
    learner.lrs[0].value[...] = 0.02  # the way it says: the inner SGD uses it
    assert np.all(learner._inner_lr()[:learner.lrs[0].size] == 0.02)


def test_the_model_is_checked_once_per_iteration_adapt_and_evaluate(monkeypatch):
    # every read of learner.net checked the model's Params again (FunctionalMLP
    # .change), five or six times per meta_fit iteration; once is enough where
    # nothing changes the model in between
    calls = []
    change = tn.meta.FunctionalMLP.change
    monkeypatch.setattr(tn.meta.FunctionalMLP, "change",
                        lambda net: calls.append(1) or change(net))
    tasks = SinusoidTasks(5, seed=0)
    for learner in (MAML(small_model()), MetaSGD(small_model())):
        fit(learner, tasks, iterations=1)  # the meta-optimizer is made
        counts = []
        for iterations in (1, 5):
            calls.clear()
            learner.meta_fit(tasks, iterations=iterations, meta_batch_size=3, seed=0)
            counts.append(len(calls))
        assert counts[1] - counts[0] == 4
        batch = tasks.sample(3)
        calls.clear()
        learner.evaluate(batch, steps=[1, 2])
        learner.adapt(batch.support_x[0], batch.support_y[0])
        assert len(calls) == 2
