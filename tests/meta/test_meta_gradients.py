"""The meta-gradients, checked against central differences (float64) of the
post-adaptation query loss computed by an independent reference."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.meta.helpers import numerical_grad4 as numerical_grad
from tests.meta.helpers import mlp_layers, randomize, regression_tasks, rel_error
from tests.meta.reference import adapted_query_loss, loss_and_grad
from tinynet.meta import ANIL, MAML, MetaSGD, Reptile, maml_meta_gradient


def _mean_query_loss(theta0, lr, sizes, batch, steps, act="tanh"):
    return np.mean([adapted_query_loss(theta0, lr, sizes, (batch.support_x[t], batch.support_y[t],
                                                           batch.query_x[t], batch.query_y[t]),
                                       steps, act)[0] for t in range(len(batch))])


def _setup(sizes, n_tasks, k, seed, act="tanh"):
    layers = mlp_layers(sizes, act, seed=seed)
    learner = MAML(layers, inner_lr=0.3)
    theta = randomize(learner.net, seed)
    return layers, learner, theta, regression_tasks(n_tasks, k, sizes[0], sizes[-1], seed)


@given(st.integers(1, 2), st.sampled_from(["tanh", "sigmoid"]), st.integers(0, 2**16),
       st.integers(1, 3))
def test_maml_meta_gradient_matches_finite_differences(steps, act, seed, n_tasks):
    sizes = [1, 3, 3, 1]
    _, learner, theta, batch = _setup(sizes, n_tasks, 4, seed, act)
    learner.inner_steps = steps
    loss, grad = learner.meta_gradient(batch)
    assert np.isclose(loss, _mean_query_loss(theta, 0.3, sizes, batch, steps, act), rtol=1e-12)
    numeric = numerical_grad(lambda: _mean_query_loss(theta, 0.3, sizes, batch, steps, act),
                             theta)
    assert rel_error(grad, numeric) < 1e-6


@given(st.integers(1, 2), st.integers(0, 2**16))
def test_metasgd_gradients_wrt_init_and_learning_rates(steps, seed):
    sizes = [1, 3, 3, 1]
    layers = mlp_layers(sizes, "tanh", seed=seed)
    learner = MetaSGD(layers, inner_lr=0.1, inner_steps=steps)
    theta = randomize(learner.net, seed)
    lrs = np.random.default_rng(seed).uniform(0.05, 0.4, theta.size)
    for p, chunk in zip(learner.lrs, np.split(lrs, np.cumsum([q.size for q in learner.lrs])[:-1])):
        p.value = chunk.reshape(p.shape)
    batch = regression_tasks(2, 4, seed=seed)
    _, grad = learner.meta_gradient(batch)

    def f():
        return _mean_query_loss(theta, lrs, sizes, batch, steps)
    assert rel_error(grad[:theta.size], numerical_grad(f, theta)) < 1e-6
    assert rel_error(grad[theta.size:], numerical_grad(f, lrs)) < 1e-6


def test_fomaml_is_query_gradient_at_adapted_params():
    sizes = [2, 4, 1]
    layers, _, theta, batch = _setup(sizes, 3, 5, seed=7)
    fo = MAML(layers, inner_lr=0.3, inner_steps=2, first_order=True)
    _, grad = fo.meta_gradient(batch)
    expected = []
    for t in range(len(batch)):
        task = (batch.support_x[t], batch.support_y[t], batch.query_x[t], batch.query_y[t])
        _, adapted = adapted_query_loss(theta, 0.3, sizes, task, 2)
        expected.append(loss_and_grad(adapted, sizes, task[2], task[3])[1])
    assert rel_error(grad, np.mean(expected, axis=0)) < 1e-10
    second = MAML(layers, inner_lr=0.3, inner_steps=2).meta_gradient(batch)[1]
    assert rel_error(grad, second) > 1e-3  # the Hessian terms matter here


def test_anil_meta_gradient_adapts_head_only():
    sizes = [1, 3, 2, 1]
    layers, _, theta, batch = _setup(sizes, 2, 4, seed=11)
    anil = ANIL(layers, loss="mse", inner_lr=0.3, inner_steps=2)
    lr = np.zeros(theta.size)
    lr[-3:] = 0.3  # head: W (2, 1) and b (1,)
    _, grad = anil.meta_gradient(batch)
    numeric = numerical_grad(lambda: _mean_query_loss(theta, lr, sizes, batch, 2), theta)
    assert rel_error(grad, numeric) < 1e-6
    adapted = anil.adapt(batch.support_x[0], batch.support_y[0], steps=3)
    body_before = theta[:-3]
    body_after = np.concatenate([p.value.ravel() for layer in adapted for p in layer.parameters()])
    assert np.array_equal(body_after[:-3], body_before)
    assert not np.array_equal(body_after[-3:], theta[-3:])


def test_reptile_meta_gradient_is_init_minus_mean_adapted():
    sizes = [1, 3, 1]
    layers, _, theta, batch = _setup(sizes, 3, 4, seed=5)
    reptile = Reptile(layers, inner_lr=0.2, inner_steps=3)
    _, grad = reptile.meta_gradient(batch)
    adapted = [adapted_query_loss(theta, 0.2, sizes, (batch.support_x[t], batch.support_y[t],
                                                      batch.query_x[t], batch.query_y[t]), 3)[1]
               for t in range(len(batch))]
    assert rel_error(grad, theta - np.mean(adapted, axis=0)) < 1e-10


def test_zero_steps_is_plain_query_gradient():
    sizes = [1, 3, 1]
    layers, learner, theta, batch = _setup(sizes, 2, 3, seed=2)
    _, grad = maml_meta_gradient(learner.net, theta, 0.3, batch, 0)
    expected = np.mean([loss_and_grad(theta, sizes, batch.query_x[t], batch.query_y[t])[1]
                        for t in range(2)], axis=0)
    assert rel_error(grad, expected) < 1e-10


def test_meta_gradient_rejects_non_batches():
    _, learner, _, _ = _setup([1, 2, 1], 1, 2, seed=0)
    with pytest.raises(TypeError, match="TaskBatch"):
        learner.meta_gradient({"support_x": 1})


def _torch_meta_gradient(torch, learner, batch, first_order=False, lr_params=None):
    """The same meta-gradient by torch.autograd: a loop over tasks, the inner
    steps with create_graph=True (second order), weights in tinynet's layout."""
    import torch.nn.functional as F
    acts = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
            "elu": F.elu, "silu": F.silu, "leaky_relu": lambda z: F.leaky_relu(z, 0.01)}
    layers = learner.model
    params = [torch.tensor(p.value, requires_grad=True) for p in learner.net.param_list()]
    rates = lr_params or np.broadcast_to(learner._inner_lr(), (learner.net.n_params,))
    if lr_params is None:
        offsets = np.cumsum([0] + [p.numel() for p in params])
        rates = [torch.tensor(rates[a:b].reshape(p.shape)) for a, b, p in
                 zip(offsets[:-1], offsets[1:], params)]

    def forward(ps, x):
        it = iter(ps)
        for layer in layers:
            x = x @ next(it)
            if layer.b is not None:
                x = x + next(it)
            name = type(layer.activation).__name__.lower()
            x = x if name == "identity" else acts[{"leakyrelu": "leaky_relu"}.get(name, name)](x)
        return x

    def loss(out, y):
        if learner.loss == "mse":
            return ((out - y) ** 2).mean()
        return F.cross_entropy(out, y)
    total = 0.0
    for t in range(len(batch)):
        sx, sy, qx, qy = (torch.as_tensor(a[t]) for a in (batch.support_x, batch.support_y,
                                                            batch.query_x, batch.query_y))
        fast = params
        for _ in range(learner.inner_steps):
            grads = torch.autograd.grad(loss(forward(fast, sx), sy), fast,
                                        create_graph=not first_order)
            fast = [p - r * g for p, r, g in zip(fast, rates, grads)]
        total = total + loss(forward(fast, qx), qy)
    total = total / len(batch)
    grads = torch.autograd.grad(total, params + (list(rates) if lr_params else []))
    return total.item(), np.concatenate([g.numpy().ravel() for g in grads])


@pytest.mark.parametrize("activation", ["relu", "elu", "silu", "leaky_relu"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("kind", ["MAML", "FOMAML", "ANIL-2", "MetaSGD"])
def test_meta_gradients_match_torch_autograd(activation, loss, kind):
    # the finite-difference tests cover tanh/sigmoid and MSE; this adds the
    # cross-entropy loss, kinked and other smooth activations, a layer without
    # bias, ANIL over two head layers and Meta-SGD's rates, against torch
    torch = pytest.importorskip("torch")
    from tinynet.layers import Dense
    n_out = 3 if loss == "cross_entropy" else 2
    layers = [Dense(5, activation=activation, input_dim=2, dtype="float64", seed=1),
              Dense(4, activation=activation, use_bias=False, dtype="float64", seed=2),
              Dense(n_out, dtype="float64", seed=3)]
    layers[1].build((5,), dtype="float64")
    layers[2].build((4,), dtype="float64")
    rng = np.random.default_rng(4)
    if loss == "mse":
        batch = regression_tasks(3, 5, 2, n_out, seed=4, q=4)
    else:
        from tinynet.meta import TaskBatch
        batch = TaskBatch(rng.standard_normal((3, 5, 2)), rng.integers(0, 3, (3, 5)),
                          rng.standard_normal((3, 4, 2)), rng.integers(0, 3, (3, 4)))
    common = dict(loss=loss, inner_lr=0.4, inner_steps=2)
    lr_params = None
    if kind == "MetaSGD":
        learner = MetaSGD(layers, **common)
        for p in learner.lrs:
            p.value = rng.uniform(0.1, 0.6, p.shape)
        lr_params = [torch.tensor(p.value, requires_grad=True) for p in learner.lrs]
    elif kind == "ANIL-2":
        learner = ANIL(layers, head_layers=2, **common)
    else:
        learner = MAML(layers, first_order=kind == "FOMAML", **common)
    value, grad = learner.meta_gradient(batch)
    expected_value, expected = _torch_meta_gradient(torch, learner, batch,
                                                    first_order=kind == "FOMAML",
                                                    lr_params=lr_params)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert np.abs(grad - expected).max() <= 1e-12 * np.abs(expected).max()


@pytest.mark.parametrize("change, error, match", [
    (dict(steps=-1), ValueError, "steps as a non-negative integer, received -1"),  # was 0 steps
    (dict(steps=1.5), ValueError, "received 1.5"),
    (dict(lr=np.ones(3)), ValueError, r"lr as a number or an array of shape \(13,\), received "
                                      r"shape \(3,\)"),
    (dict(lr="0.1"), TypeError, "lr of an integer or floating-point dtype"),
    (dict(lr=float("nan")), ValueError, "finite lr"),
    (dict(theta0=np.zeros(3)), ValueError, r"theta0 of shape \(13,\), received \(3,\)"),
    (dict(theta0=np.zeros((2, 13))), ValueError, r"theta0 of shape \(13,\), received \(2, 13\)"),
    (dict(batch=(1, 2)), TypeError, "a TaskBatch, received tuple"),
    (dict(first_order="no"), TypeError, "first_order as True or False"),
    (dict(lr_grad=1), TypeError, "lr_grad as True or False"),
    (dict(net=[1]), TypeError, "net as a FunctionalMLP, received list"),
    (dict(loss="nope"), ValueError, "unknown loss 'nope'"),
])
def test_maml_meta_gradient_names_a_bad_argument(change, error, match):
    # steps=-1 ran zero steps; the others failed deep inside NumPy
    from tinynet.meta import FunctionalMLP
    net = FunctionalMLP(mlp_layers([1, 4, 1]))
    args = dict(net=net, theta0=net.get_params(), lr=0.1, batch=regression_tasks(3, 4),
                steps=1)
    with pytest.raises(error, match=match):
        maml_meta_gradient(**{**args, **change})


def test_maml_meta_gradient_reads_a_loss_name_in_any_case():
    from tinynet.meta import FunctionalMLP
    net = FunctionalMLP(mlp_layers([1, 4, 1]))
    args = (net, net.get_params(), 0.1, regression_tasks(3, 4), 2)
    for a, b in zip(maml_meta_gradient(*args, loss="MSE"), maml_meta_gradient(*args)):
        np.testing.assert_array_equal(a, b)


def test_the_loss_is_resolved_once_not_at_every_inner_step(monkeypatch):
    # value_and_grad resolved its loss at every call: every inner step of every
    # meta-batch, though maml_meta_gradient and the learners hold it resolved
    from tinynet.meta import FunctionalMLP, Pretrained, functional, maml
    calls, resolve = [], functional.resolve_loss

    def spy(loss):
        calls.append(loss)
        return resolve(loss)

    for module in (functional, maml):
        monkeypatch.setattr(module, "resolve_loss", spy)
    net = FunctionalMLP(mlp_layers([1, 4, 1]))
    batch = regression_tasks(3, 4)
    maml_meta_gradient(net, net.get_params(), 0.1, batch, 3, loss="MSE")
    assert calls == ["MSE"]
    learners = [make(mlp_layers([1, 4, 1])) for make in (
        lambda m: MAML(m, loss="mse", inner_steps=3),
        lambda m: MetaSGD(m, loss="mse", inner_steps=3),
        lambda m: ANIL(m, loss="mse", inner_steps=3),
        lambda m: Reptile(m, loss="mse", inner_steps=3), Pretrained)]
    for learner in learners:
        learner.meta_gradient(batch)
        learner.adapt(batch.support_x[0], batch.support_y[0], steps=2)
        learner.evaluate(batch, steps=2)
    Pretrained(mlp_layers([1, 4, 1])).fit(batch.support_x[0], batch.support_y[0], iterations=3)
    assert calls == ["MSE"]
    # the public functions still take a name in any spelling
    ev = net.value_and_grad(net.get_params(), batch.support_x, batch.support_y, loss="Mse")
    assert calls == ["MSE", "Mse"] and ev.loss.shape == (3,)


@pytest.mark.parametrize("loss", ["Cross-Entropy", "CROSS_ENTROPY", "cross_entropy"])
def test_maml_meta_gradient_checks_the_labels_of_any_spelling_of_cross_entropy(loss):
    # "Cross-Entropy" skipped the label check: a label of -1 was the last class
    from tinynet.meta import FunctionalMLP, TaskBatch, cross_entropy
    net = FunctionalMLP(mlp_layers([1, 4, 3]))
    rng = np.random.default_rng(0)
    labels = np.array([[0, 1, 2]])
    good = TaskBatch(rng.standard_normal((1, 3, 1)), labels, rng.standard_normal((1, 3, 1)),
                     labels)
    bad = TaskBatch(good.support_x, labels, good.query_x, np.array([[0, 1, -1]]))
    for fn in (loss, cross_entropy):
        with pytest.raises(ValueError, match=r"labels in \[0, 2\] for 3 classes, received "
                                             r"values in \[-1, 1\]"):
            maml_meta_gradient(net, net.get_params(), 0.1, bad, 1, loss=fn)
        for a, b in zip(maml_meta_gradient(net, net.get_params(), 0.1, good, 1, loss=fn),
                        maml_meta_gradient(net, net.get_params(), 0.1, good, 1,
                                           loss="cross_entropy")):
            np.testing.assert_array_equal(a, b)
