"""FunctionalMLP: forward matches the layers, gradients and exact
Hessian-vector products match central differences (float64)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinynet as tn
from tests.fd import max_rel_error
from tests.meta.helpers import directional_diff4, mlp_layers, numerical_grad4, rel_error
from tests.meta.reference import loss_and_grad
from tinynet.layers import Dense, Dropout, ReLU, Tanh
from tinynet import meta
from tinynet.meta import FunctionalMLP

SMOOTH = ["tanh", "sigmoid", "silu", "elu"]


def _net_and_data(data, activation, loss):
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4), label="sizes")
    if loss == "cross_entropy":
        sizes[-1] = max(sizes[-1], 2)
    n_tasks = data.draw(st.integers(1, 3), label="tasks")
    n = data.draw(st.integers(1, 4), label="n")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    net = FunctionalMLP(mlp_layers(sizes, activation, seed=seed))
    theta = rng.standard_normal((n_tasks, net.n_params))
    x = rng.standard_normal((n_tasks, n, sizes[0]))
    if loss == "mse":
        y = rng.standard_normal((n_tasks, n, sizes[-1]))
    else:
        y = rng.integers(0, sizes[-1], (n_tasks, n))
    return net, theta, x, y, rng


def _assume_clear_of_zero(net, theta, x, margin=1e-2):
    """Differences across a kink are not derivatives: keep pre-activations clear of 0."""
    tape = net._forward(theta, x)[1]
    assume(all(np.abs(entry[0]).min() > margin for entry in tape if isinstance(entry, tuple)))


@given(st.data(), st.sampled_from(SMOOTH + ["relu", "leaky_relu"]),
       st.sampled_from(["mse", "cross_entropy"]))
def test_gradient_matches_finite_differences(data, activation, loss):
    net, theta, x, y, _ = _net_and_data(data, activation, loss)
    if activation in ("relu", "leaky_relu", "elu"):
        # ELU too: its second derivative jumps at 0, and the fourth-order
        # difference is exact only for a loss smooth across its stencil (a
        # pre-activation 1.2e-4 from 0 gave 3e-5; a small central step agrees
        # with the gradient to 1e-11 there)
        _assume_clear_of_zero(net, theta, x)
    ev = net.value_and_grad(theta, x, y, loss)
    numeric = numerical_grad4(lambda: net.value_and_grad(theta, x, y, loss).loss.sum(), theta)
    assert rel_error(ev.grad, numeric) < 1e-6


@given(st.data(), st.sampled_from(SMOOTH), st.sampled_from(["mse", "cross_entropy"]))
def test_hvp_matches_central_differences_of_gradients(data, activation, loss):
    net, theta, x, y, rng = _net_and_data(data, activation, loss)
    if activation == "elu":
        # ELU's second derivative jumps at 0 (alpha on the left, 0 on the right):
        # a difference of gradients across it is no Hessian-vector product
        _assume_clear_of_zero(net, theta, x)
    v = rng.standard_normal(theta.shape)
    hv = net.value_and_grad(theta, x, y, loss).hvp(v)
    numeric = directional_diff4(lambda t: net.value_and_grad(t, x, y, loss).grad, theta, v)
    assert rel_error(hv, numeric, at_least=1e-4) < 1e-6


def test_hvp_check_is_not_failed_by_the_gradients_rounding_noise():
    # the case the test above drew (CI, 2026-12-07): ELU, cross-entropy, a
    # gradient of 6.5e-4 whose rounding (~1e-15, a probability near 1 minus its
    # target) over the step 1e-4 gave the difference 1.4e-11 off the exact
    # product, 1.4e-6 against the floor 1e-5; it shrinks as the step grows
    # (1.6e-12 at 3e-4), as rounding does, and a wrong product is off by ~1e-3
    sizes, seed = [2, 3, 4, 2], 5966
    rng = np.random.default_rng(seed)
    net = FunctionalMLP(mlp_layers(sizes, "elu", seed=seed))
    theta = rng.standard_normal((2, net.n_params))
    x, y = rng.standard_normal((2, 1, 2)), rng.integers(0, 2, (2, 1))
    v = rng.standard_normal(theta.shape)
    hv = net.value_and_grad(theta, x, y, "cross_entropy").hvp(v)

    def numeric(eps):
        return directional_diff4(lambda t: net.value_and_grad(t, x, y, "cross_entropy").grad,
                                 theta, v, eps=eps)
    assert 1e-11 < np.abs(hv - numeric(1e-4)).max() < 1e-10
    assert np.abs(hv - numeric(3e-4)).max() < 3e-12
    assert rel_error(hv, numeric(1e-4), at_least=1e-4) < 1e-6
    assert rel_error(2 * hv, numeric(1e-4), at_least=1e-4) > 0.1     # a wrong product fails


def test_hvp_relu_matches_differences_away_from_kinks():
    # ReLU has f'' = 0 almost everywhere: the R-op is exact where no unit
    # crosses zero within the difference step.
    layers = mlp_layers([2, 8, 8, 1], "relu", seed=3)
    net = FunctionalMLP(layers)
    rng = np.random.default_rng(0)
    theta, x, y = rng.standard_normal((2, net.n_params)), rng.standard_normal((2, 5, 2)), \
        rng.standard_normal((2, 5, 1))
    v = rng.standard_normal(theta.shape)
    numeric = directional_diff4(lambda t: net.value_and_grad(t, x, y).grad, theta, v, 1e-5)
    assert rel_error(net.value_and_grad(theta, x, y).hvp(v), numeric) < 1e-6


def test_gradient_agrees_with_independent_reference():
    sizes = [2, 3, 3, 1]
    net = FunctionalMLP(mlp_layers(sizes, "tanh"))
    rng = np.random.default_rng(1)
    theta, x, y = rng.standard_normal(net.n_params), rng.standard_normal((6, 2)), \
        rng.standard_normal((6, 1))
    ev = net.value_and_grad(theta, x[None], y[None])
    loss, grad = loss_and_grad(theta, sizes, x, y)
    assert np.isclose(ev.loss[0], loss, rtol=1e-12)
    assert max_rel_error(ev.grad[0], grad) < 1e-10


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu", "elu", "silu"])
def test_forward_matches_layers_and_leaves_weights_alone(activation):
    layers = mlp_layers([3, 5, 2], activation, seed=4)
    net = FunctionalMLP(layers)
    before = net.get_params()
    x = np.random.default_rng(0).standard_normal((7, 3))
    expected = layers[1].forward(layers[0].forward(x))
    assert np.allclose(net.forward(before, x[None])[0], expected, rtol=1e-12, atol=1e-12)
    other = np.stack([before, before + 1.0])
    net.value_and_grad(other, np.stack([x, x]), np.zeros((2, 7, 2))).hvp(np.ones_like(other))
    assert np.array_equal(net.get_params(), before)


def test_standalone_activation_layers_and_param_round_trip():
    layers = [Dense(4, input_dim=2, dtype="float64"), Tanh(), Dense(3, dtype="float64"), ReLU(),
              Dense(1, dtype="float64")]
    layers[2].build((4,), dtype="float64")
    layers[4].build((3,), dtype="float64")
    net = FunctionalMLP(layers)
    assert net.n_params == 2 * 4 + 4 + 4 * 3 + 3 + 3 + 1
    theta = np.arange(net.n_params, dtype=np.float64) / 10
    net.set_params(theta)
    assert np.array_equal(net.get_params(), theta)
    assert np.array_equal(layers[0].W.value.ravel(), theta[:8])
    assert list(net.mask([-1])) == [0.0] * (net.n_params - 4) + [1.0] * 4


def test_a_list_of_layers_is_built_from_its_first_as_a_sequential_is():
    # only the first layer (input_dim=) was built, and the error asked for
    # input_dim= on the first layer, which it had: a list never worked unless
    # every layer was built by hand
    def layers():
        return [Dense(4, activation="tanh", input_dim=2, seed=0, dtype="float64"), ReLU(),
                Dense(3, seed=1), Tanh(), Dense(1, seed=2)]

    listed = layers()
    net = FunctionalMLP(listed)
    assert [layer.built for layer in listed] == [True, False, True, False, True]
    assert [p.dtype for p in net.param_list()] == [np.float64] * 6
    seq = FunctionalMLP(tn.Sequential(layers()))
    assert np.array_equal(net.get_params(), seq.get_params())  # the same draws from the seeds
    x = np.random.default_rng(0).standard_normal((1, 5, 2))
    assert np.array_equal(net.forward(net.get_params(), x), seq.forward(seq.get_params(), x))
    learner = meta.MAML([Dense(4, input_dim=1, seed=0), Dense(1, seed=1)])  # the reported case
    assert learner.net.n_params == 4 + 4 + 4 + 1
    # a first Dense layer without a shape: the hint says what to do
    with pytest.raises(ValueError, match="FunctionalMLP expected its first Dense layer built, "
                                         "received Dense 'first' unbuilt: give it input_dim="):
        FunctionalMLP([ReLU(), Dense(3, name="first"), Dense(1)])
    # a list refused for a layer late in it is left as given: the layers before
    # that one were built in place (a list then given another first layer was
    # refused for the widths of the first attempt)
    for bad, error, match in (
            (Dropout(0.5), ValueError, "supports Dense layers and the activations"),
            (Dense(2, activation="softmax"), ValueError, "received Softmax in Dense"),
            (Dense(1, input_dim=5), ValueError, "to take 3 inputs .* built for 5"),
            (Dense(1, input_dim=3, dtype="float64"), TypeError, "one dtype"),
            (Dense(1, dtype="float64"), TypeError, "one dtype")):
        refused = [Dense(4, input_dim=2, seed=0), Dense(3, seed=1), bad, Dense(1, seed=2)]
        built = [layer.built for layer in refused]
        with pytest.raises(error, match=match):
            FunctionalMLP(refused)
        assert [layer.built for layer in refused] == built
    # given again with another first layer, the rest of the list builds on it
    retried = [Dense(6, input_dim=2, seed=0), refused[1], Dense(1, seed=2)]
    assert FunctionalMLP(retried).shapes[2][1] == (6, 3)


def test_errors():
    with pytest.raises(ValueError, match="unbuilt"):
        FunctionalMLP([Dense(3)])
    with pytest.raises(ValueError, match="Dropout"):
        FunctionalMLP([Dense(3, input_dim=2), Dropout(0.5)])
    with pytest.raises(ValueError, match="at least one Dense"):
        FunctionalMLP([ReLU()])
    net = FunctionalMLP(mlp_layers([2, 3, 1]))
    with pytest.raises(ValueError, match="theta of shape"):
        net.forward(np.zeros(5), np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="x of shape"):
        net.forward(np.zeros(net.n_params), np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="one per parameter row"):
        net.forward(np.zeros((2, net.n_params)), np.zeros((3, 4, 2)))
    with pytest.raises(ValueError, match="targets of shape"):
        net.value_and_grad(np.zeros(net.n_params), np.zeros((1, 4, 2)), np.zeros((1, 3, 1)))
    with pytest.raises(ValueError, match="labels"):
        net.value_and_grad(np.zeros(net.n_params), np.zeros((1, 4, 2)),
                           np.ones((1, 4), int), "cross_entropy")
    with pytest.raises(ValueError, match="did you mean"):
        net.value_and_grad(np.zeros(net.n_params), np.zeros((1, 4, 2)), np.zeros((1, 4, 1)),
                           "mse_")
    with pytest.raises(ValueError, match="set_params expected"):
        net.set_params(np.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        net.forward(np.zeros(net.n_params), np.zeros((1, 4, 2), int))
    ev = net.value_and_grad(np.zeros(net.n_params), np.zeros((1, 4, 2)), np.zeros((1, 4, 1)))
    with pytest.raises(ValueError, match="hvp expected"):
        ev.hvp(np.zeros(3))


def test_layers_whose_widths_do_not_chain_are_refused():
    # a list of separately built layers 2->3, 5->1 failed at the first forward
    # pass with numpy's "matmul: Input operand 1 has a mismatch in its core dimension"
    layers = [Dense(3, input_dim=2, name="a"), Tanh(), Dense(1, input_dim=5, name="b")]
    with pytest.raises(ValueError, match="FunctionalMLP expected Dense 'b' to take 3 inputs "
                                         r"\(the previous Dense layer's outputs\), received "
                                         "one built for 5"):
        FunctionalMLP(layers)


def test_set_params_into_another_model_needs_the_same_shapes():
    # a model with one more layer had its first layers overwritten and the
    # rest left as they were, without a word
    net = FunctionalMLP(mlp_layers([2, 3, 1]))
    bigger = mlp_layers([2, 3, 1, 4])
    last = bigger[-1].W.value.copy()
    with pytest.raises(ValueError, match=r"FunctionalMLP.set_params expected a model with "
                                         r"parameters of shapes \[\(2, 3\), \(3,\), \(3, 1\), "
                                         r"\(1,\)\], received one with"):
        net.set_params(np.ones(net.n_params), model=bigger)
    assert np.array_equal(bigger[-1].W.value, last) and np.all(bigger[0].W.value != 1)
    same = mlp_layers([2, 3, 1], seed=5)
    net.set_params(np.arange(net.n_params, dtype=float), model=same)
    assert np.array_equal(net.get_params(same), np.arange(net.n_params))


@pytest.mark.parametrize("index", [2, -3, 1.0, True])
def test_mask_refuses_an_index_that_is_not_one_of_its_dense_layers(index):
    # an out-of-range index was a bare IndexError from a list
    net = FunctionalMLP(mlp_layers([3, 4, 2]))
    with pytest.raises(ValueError, match=r"its 2 Dense layers \(in \[-2, 1\]\)"):
        net.mask([index])
    assert net.mask([-1]).sum() == 4 * 2 + 2


def test_elu_derivatives_do_not_cancel_for_very_negative_inputs():
    # f'(z) = alpha e^z was computed as y + alpha, which cancels as y -> -alpha:
    # in float32 at z = -9 one in 2e3, at z = -16 the whole derivative (the
    # ELU layer itself reads z for that reason); the same for f''
    from tinynet.layers import ELU
    z = np.array([[[-16.0, -9.0, -3.0, 0.5]]], np.float32)
    layer = Dense(4, activation=ELU(alpha=1.5), input_dim=4, dtype="float32", seed=0)
    net = FunctionalMLP([layer])
    theta = np.concatenate([np.eye(4, dtype=np.float32).ravel(), np.zeros(4, np.float32)])
    act = net.ops[1]
    y = act.f(z)
    exact = np.where(z > 0, 1.0, 1.5 * np.exp(z.astype(np.float64)))
    np.testing.assert_allclose(act.d1(z, y), exact, rtol=1e-6)
    np.testing.assert_allclose(act.d2(z, y), np.where(z > 0, 0.0, exact), rtol=1e-6)
    grad = net.backward(theta, z, np.ones_like(z))[0]
    np.testing.assert_allclose(grad[16:], exact[0, 0], rtol=1e-6)  # d/db = f'(z)


@pytest.mark.parametrize("activation", ["sigmoid", "silu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_tails_keep_their_precision_and_equal_the_layers(activation, dtype):
    # sigma(z) was 0.5 (tanh(z/2) + 1): tanh rounds to -1 for z below about -18
    # (float32) / -38 (float64), where sigma(z), SiLU and their derivatives came
    # out exactly 0 (the layers give e^z); now the one stable sigmoid of the
    # kernels' NumPy reference, the layers' and the losses', bit for bit
    from tinynet.kernels.activations import stable_sigmoid
    z = np.array([[[-60.0, -30.0, -20.0, -1.0, 0.0, 2.0, 40.0]]], dtype)
    layer = Dense(7, activation=activation, input_dim=7, dtype=np.dtype(dtype).name, seed=0)
    act = FunctionalMLP([layer]).ops[1]
    y = act.f(z)
    assert y.dtype == dtype
    exact = np.exp(z.astype(np.float64)) / (1 + np.exp(z.astype(np.float64)))
    if activation == "silu":
        exact = z * exact
    np.testing.assert_allclose(y, exact, rtol=1e-6 if dtype == np.float32 else 1e-14)
    sig = stable_sigmoid(z)
    assert np.array_equal(y, sig if activation == "sigmoid" else z * sig)
    # the layer (a Numba kernel in float32: its own rounding)
    np.testing.assert_allclose(y, layer.activation.forward(z[0])[None], rtol=1e-6)
    d1 = sig * (1 - sig) if activation == "sigmoid" else sig * (1 + z * (1 - sig))
    assert np.all(act.d1(z, y)[..., :3] != 0)   # was exactly 0
    np.testing.assert_allclose(act.d1(z, y), d1, rtol=1e-12)


@pytest.mark.parametrize("dout, error, match", [
    (np.ones((2, 5, 4)), ValueError, r"dout of shape \(2, 5, 3\) .*received \(2, 5, 4\)"),
    (np.ones((5, 3)), ValueError, r"dout of shape \(2, 5, 3\) .*received \(5, 3\)"),
    (np.ones((1, 5, 3)), ValueError, r"dout .*received \(1, 5, 3\)"),
    ("a", TypeError, "dout of a floating-point dtype"),
])
def test_backward_names_a_dout_that_does_not_fit_the_outputs(dout, error, match):
    # these failed inside NumPy ("could not broadcast input array from shape
    # (2,16) into shape (2,12)", "'str' object has no attribute 'dtype'")
    net = FunctionalMLP(mlp_layers([2, 4, 3]))
    with pytest.raises(error, match=f"FunctionalMLP.backward expected {match}"):
        net.backward(net.get_params(), np.zeros((2, 5, 2)), dout)
    with pytest.raises(TypeError, match="need_dx as True or False"):
        net.backward(net.get_params(), np.zeros((2, 5, 2)), np.ones((2, 5, 3)), need_dx="no")


@pytest.mark.parametrize("target", [np.full((1, 4, 1), "a"), np.ones((1, 4, 1), bool)])
def test_regression_targets_must_be_real_numbers(target):
    # a string target was NumPy's UFuncTypeError inside the loss; True was 1.0
    net = FunctionalMLP(mlp_layers([2, 3, 1]))
    with pytest.raises(TypeError, match="FunctionalMLP expected targets of an integer or "
                                        "floating-point dtype"):
        net.value_and_grad(net.get_params(), np.zeros((1, 4, 2)), target)


@pytest.mark.parametrize("layers", [1, -1, None])
def test_mask_names_layers_that_are_not_a_sequence_of_indices(layers):
    # mask(-1) was "'int' object is not iterable"
    net = FunctionalMLP(mlp_layers([3, 4, 2]))
    with pytest.raises(TypeError, match=rf"FunctionalMLP.mask expected a sequence of Dense "
                                        rf"layer indices \(e.g. \[-1\]\), received {layers!r}"):
        net.mask(layers)
    np.testing.assert_array_equal(net.mask(range(-1, 0)), net.mask([-1]))


_SPELLINGS = {"cross_entropy": ["cross_entropy", "Cross-Entropy", "CROSS_ENTROPY",
                                meta.cross_entropy],
              "mse": ["mse", "MSE", "Mse", meta.mse]}


def _loss_id(loss):
    return loss if isinstance(loss, str) else f"meta.{loss.__name__}"


@pytest.mark.parametrize("loss", _SPELLINGS["cross_entropy"], ids=_loss_id)
def test_every_spelling_of_cross_entropy_has_its_labels_checked(loss):
    # the loss accepted any spelling and the library's own function, but the
    # label check compared with "cross_entropy" exactly: a label of -1 was read
    # as the last class (a wrong loss, no error) for every other spelling
    net = FunctionalMLP(mlp_layers([1, 4, 3]))
    x = np.random.default_rng(0).normal(size=(1, 2, 1))
    with pytest.raises(ValueError, match=r"FunctionalMLP expected labels in \[0, 2\] for 3 "
                                         r"classes, received values in \[-1, 0\]"):
        net.value_and_grad(net.get_params(), x, np.array([[0, -1]]), loss)
    with pytest.raises(ValueError, match="integer labels of shape"):
        net.check_target(np.zeros((1, 2, 3)), (1, 2, 3), loss)
    labels = np.array([[0, 2]])
    ours = net.value_and_grad(net.get_params(), x, labels, loss)
    canonical = net.value_and_grad(net.get_params(), x, labels, "cross_entropy")
    assert np.array_equal(ours.loss, canonical.loss) and np.array_equal(ours.grad, canonical.grad)


@pytest.mark.parametrize("loss", _SPELLINGS["mse"], ids=_loss_id)
def test_every_spelling_of_mse_reads_task_by_example_targets_of_one_output(loss):
    # (tasks, n) targets of a one-output net are read as (tasks, n, 1) for "mse",
    # but for "MSE" or meta.mse they crashed in NumPy ("could not broadcast input
    # array from shape (1,8) into shape (1,4)"), and a misshapen target was not named
    net = FunctionalMLP(mlp_layers([1, 4, 1]))
    x = np.random.default_rng(0).normal(size=(2, 3, 1))
    y = np.random.default_rng(1).normal(size=(2, 3))
    ours = net.value_and_grad(net.get_params(), x, y, loss)
    canonical = net.value_and_grad(net.get_params(), x, y[..., None], "mse")
    assert np.array_equal(ours.loss, canonical.loss) and np.array_equal(ours.grad, canonical.grad)
    with pytest.raises(ValueError, match=r"targets of shape \(2, 3, 1\), received \(2, 4\)"):
        net.value_and_grad(net.get_params(), x, np.zeros((2, 4)), loss)
    with pytest.raises(TypeError, match="targets of an integer or floating-point dtype"):
        net.check_target(np.full((2, 3, 1), "a"), (2, 3, 1), loss)


def test_resolve_loss_names_the_librarys_losses_and_keeps_a_callable_of_your_own():
    def own(pred, target):
        return meta.mse(pred, target)
    assert [meta.functional.resolve_loss(s) for s in _SPELLINGS["mse"]] == ["mse"] * 4
    assert meta.functional.resolve_loss(own) is own
    with pytest.raises(ValueError, match="unknown loss 'ms'; did you mean 'mse'"):
        meta.functional.resolve_loss("ms")
    # a callable of your own gets its targets as given (it may take any form)
    net = FunctionalMLP(mlp_layers([1, 4, 1]))
    target = np.zeros((2, 3, 1))
    assert net.check_target(target, (2, 3, 1), own) is target


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_relu_derivative_at_nan_and_signed_zeros_is_the_layers(alpha):
    # the ReLU layer passes dy at a NaN input (PyTorch's threshold_backward); the
    # functional view, which meta-gradients go through, gave 0 there
    from tinynet.layers import LeakyReLU
    from tinynet.meta.functional import _ReLU
    z = np.array([[np.nan, -np.nan, -1.5, -0.0, 0.0, 2.0, np.inf, -np.inf]])
    layer = ReLU() if alpha == 0.0 else LeakyReLU(alpha)
    layer.build(z.shape[1:], dtype=np.float64)
    layer.forward(z, training=True)
    expected = layer.backward(np.ones_like(z))
    act = _ReLU("ReLU" if alpha == 0.0 else "LeakyReLU", alpha)
    np.testing.assert_array_equal(act.d1(z, act.f(z)), expected)
