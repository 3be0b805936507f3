"""The per-task gradients a weighting combines are each task's own, whichever
parameters the optimizer holds."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.layers import Dense, Tanh
from tinynet.mtl import HardSharing
from tinynet.mtl import weighting as wt


def _data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((16, 4)),
            {"a": rng.integers(0, 3, 16), "b": rng.standard_normal((16, 1))})


def _model():
    return HardSharing((4,), [Dense(6, seed=1, name="t1"), Tanh(), Dense(5, seed=2, name="t2"),
                              Tanh()],
                       {"a": [Dense(3, seed=3, name="ha")], "b": [Dense(1, seed=4, name="hb")]}
                       ).astype(np.float64)


def _recording(weighting):
    """``weighting`` with a ``rows`` list of every ``grads`` its combine receives."""
    combine, weighting.rows = weighting.combine, []

    def recorded(grads, losses, present=None):
        weighting.rows.append(grads.copy())
        return combine(grads, losses, present=present)
    weighting.combine = recorded
    return weighting


# which parameters the optimizer leaves out (each still trainable)
LEFT_OUT = {"none": (), "first trunk layer": ("t1/",), "heads only": ("t1/", "t2/")}


def _fit(method, left_out, epochs=3):
    """A model fitted with learning rate 0 (so every step sees the same
    gradients) by an optimizer without the parameters named ``left_out``."""
    model = _model()
    params = [p for p in model.parameters() if not p.name.startswith(LEFT_OUT[left_out])]
    weighting = _recording(method())
    model.compile(tn.optim.SGD(params, lr=0.0), loss={"a": "cross_entropy", "b": "mse"},
                  weighting=weighting)
    x, y = _data()
    history = model.fit(x, y, epochs=epochs, batch_size=16, shuffle=False, verbose=0, seed=0)
    return model, weighting, history


@pytest.mark.parametrize("method", [wt.GradNorm, wt.PCGrad, wt.MGDA])
@pytest.mark.parametrize("left_out", ["first trunk layer", "heads only"])
def test_every_step_combines_each_tasks_own_gradient_whatever_the_optimizer_holds(
        method, left_out):
    # optimizer.zero_grad() zeroed only what it held: a trainable shared parameter
    # it left out kept the last step's combined gradient, which task 0's backward
    # added onto (its row's norm grew 0.36, 0.49, 0.64 with MGDA), so the weights,
    # MGDA's alpha and the held shared layers' updates came out wrong
    reference, ref_weighting, ref_history = _fit(method, "none")
    model, weighting, history = _fit(method, left_out)
    assert len(weighting.rows) == 3
    for rows in weighting.rows:
        np.testing.assert_allclose(rows, ref_weighting.rows[0], rtol=1e-12, atol=1e-15)
    # what the step leaves in every gradient (the combined shared one, each
    # head's own, GradNorm's weights') is the reference's, held or not
    for p, q in zip(model.optimizer_parameters(), reference.optimizer_parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-15, err_msg=p.name)
    for task in "ab":
        np.testing.assert_allclose(history.history[f"{task}/weight"],
                                   ref_history.history[f"{task}/weight"], rtol=1e-12)


@pytest.mark.parametrize("method", [wt.Equal, wt.MGDA])
def test_a_parameter_the_optimizer_leaves_out_holds_the_last_steps_gradient(method):
    # as Sequential.fit (model.zero_grad() each step), not the sum over the steps
    one_step = _fit(method, "first trunk layer", epochs=1)[0]
    three_steps = _fit(method, "first trunk layer", epochs=3)[0]
    for p, q in zip(three_steps.parameters(), one_step.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, atol=1e-15, err_msg=p.name)
    assert np.abs(three_steps.parameters()[0].grad).max() > 0


@pytest.mark.parametrize("left_out", ["first trunk layer", "heads only"])
def test_each_row_is_torchs_gradient_of_that_tasks_loss_alone(left_out):
    # torch: model.zero_grad(); loss_t.backward() gives each task's own gradient
    # on the trunk whatever the optimizer holds; the rows matched it at the first
    # step only (task 0's then held the last combined gradient too)
    torch = pytest.importorskip("torch")
    model, weighting, _ = _fit(wt.MGDA, left_out)
    trunk = [p for p in model.parameters() if p.name.startswith(("t1/", "t2/"))]
    by_name = {p.name: torch.tensor(p.value, requires_grad=True) for p in model.parameters()}

    def dense(h, layer):  # tinynet's W is (in, units): y = h @ W + b
        return h @ by_name[f"{layer}/W"] + by_name[f"{layer}/b"]
    x, y = _data()
    z = torch.tanh(dense(torch.tanh(dense(torch.tensor(x), "t1")), "t2"))
    losses = [torch.nn.functional.cross_entropy(dense(z, "ha"), torch.tensor(y["a"])),
              torch.nn.functional.mse_loss(dense(z, "hb"), torch.tensor(y["b"]))]
    expected = np.stack([np.concatenate([g.numpy().ravel() for g in torch.autograd.grad(
        loss, [by_name[p.name] for p in trunk], retain_graph=True)]) for loss in losses])
    for rows in weighting.rows:
        np.testing.assert_allclose(rows, expected, rtol=1e-10, atol=1e-13)
