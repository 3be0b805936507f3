"""Losses: gradients against finite differences, values against torch, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinynet as tn
from tinynet import losses, output_losses
from tests.fd import grad_error, numerical_grad

ELEMENTWISE = [losses.MSE, losses.MAE, losses.Huber, losses.BinaryCrossEntropy]


def make_case(loss, rng, shape):
    """float64 predictions and targets for ``loss``, kept away from its kinks."""
    pred = rng.uniform(-3, 3, shape)
    if isinstance(loss, losses.CrossEntropy):
        if rng.random() < 0.5:
            return pred, rng.integers(0, shape[1], shape[0])
        target = rng.random(shape)
        return pred, target / target.sum(axis=1, keepdims=True)
    if isinstance(loss, losses.BinaryCrossEntropy):
        return pred, rng.random(shape)
    # |pred - target| in [0.1, 2.9]; for Huber also at least 0.1 from delta
    offset = rng.uniform(0.1, 2.9, shape) * rng.choice([-1, 1], shape)
    if isinstance(loss, losses.Huber):
        close = np.abs(np.abs(offset) - loss.delta) < 0.1
        offset[close] += 0.25 * np.sign(offset[close])
    return pred, pred - offset


def all_losses():
    return st.sampled_from([
        losses.MSE(), losses.MAE(), losses.Huber(), losses.Huber(delta=0.5),
        losses.BinaryCrossEntropy(), losses.CrossEntropy(),
        losses.CrossEntropy(label_smoothing=0.2),
    ])


# --------------------------------------------------------------------------- gradients
@given(loss=all_losses(), batch=st.integers(1, 5), width=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1), weighted=st.booleans())
def test_backward_matches_finite_differences(loss, batch, width, seed, weighted):
    rng = np.random.default_rng(seed)
    if isinstance(loss, losses.CrossEntropy):
        width += 1
    shape = (batch, width) if isinstance(loss, losses.CrossEntropy) or seed % 3 else \
        (batch, width, 2)
    pred, target = make_case(loss, rng, shape)
    weight = rng.uniform(0.1, 2.0, batch) if weighted else None

    loss.forward(pred, target, sample_weight=weight)
    analytic = loss.backward()
    # eps = 1e-5 balances truncation (eps**2) against rounding (1e-16 / eps)
    numeric = numerical_grad(lambda: loss.forward(pred, target, sample_weight=weight), pred,
                             eps=1e-5)
    assert analytic.shape == pred.shape and analytic.dtype == pred.dtype
    assert grad_error(analytic, numeric) < 1e-6


@given(loss=all_losses(), seed=st.integers(0, 2**31 - 1))
def test_integer_weights_equal_repeated_samples(loss, seed):
    rng = np.random.default_rng(seed)
    width = 3
    pred, target = make_case(loss, rng, (4, width))
    counts = rng.integers(1, 4, 4)
    value = loss.forward(pred, target, sample_weight=counts)
    grad = loss.backward()
    repeated = loss.forward(np.repeat(pred, counts, axis=0), np.repeat(target, counts, axis=0))
    rep_grad = loss.backward()
    summed = np.add.reduceat(rep_grad, np.r_[0, np.cumsum(counts)[:-1]], axis=0)
    assert value == pytest.approx(repeated, rel=1e-12)
    np.testing.assert_allclose(grad, summed, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", [losses.MSE(), losses.Huber(), losses.CrossEntropy(),
                                  losses.BinaryCrossEntropy()], ids=repr)
def test_mask_averages_over_masked_in_samples_and_ignores_their_targets(loss):
    rng = np.random.default_rng(0)
    pred, target = make_case(loss, rng, (6, 3))
    mask = np.array([1, 0, 1, 1, 0, 1])
    keep = mask.astype(bool)
    bad = np.array(target, dtype=np.float64)
    bad[~keep] = -1 if bad.ndim == 1 else np.nan  # a missing label or a NaN target
    value = loss.forward(pred, bad, mask=mask)
    grad = loss.backward()
    assert value == pytest.approx(loss.forward(pred[keep], target[keep]), rel=1e-12)
    np.testing.assert_allclose(grad[keep], loss.backward(), rtol=1e-12)
    assert np.all(grad[~keep] == 0)


def test_all_masked_out_gives_zero_loss_and_gradient():
    loss = losses.CrossEntropy()
    pred = np.ones((3, 4))
    assert loss.forward(pred, [-1, 7, 2], mask=[0, 0, 0]) == 0.0
    grad = loss.backward()
    assert grad.shape == pred.shape and not grad.any()


def test_backward_keeps_float32():
    pred = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    for loss in (losses.MSE(), losses.MAE(), losses.Huber(), losses.BinaryCrossEntropy()):
        loss.forward(pred, np.zeros((5, 3), np.float32), sample_weight=np.ones(5))
        assert loss.backward().dtype == np.float32
    ce = losses.CrossEntropy(label_smoothing=0.1)
    assert isinstance(ce.forward(pred, [0, 1, 2, 0, 1]), float)
    assert ce.backward().dtype == np.float32


def test_column_of_labels_for_cross_entropy():
    logits = np.random.default_rng(0).standard_normal((4, 3))
    loss = losses.CrossEntropy()
    labels = np.array([0, 2, 1, 2])
    assert loss.forward(logits, labels[:, None]) == loss.forward(logits, labels)


def test_column_target_for_single_output_regression():
    pred = np.array([[1.0], [2.0]])
    loss = losses.MSE()
    assert loss.forward(pred, np.array([0, 0])) == pytest.approx(2.5)
    assert loss.backward().shape == (2, 1)


# --------------------------------------------------------------------------- torch
def torch_value_and_grad(fn, pred, target):
    torch = pytest.importorskip("torch")
    p = torch.tensor(pred, requires_grad=True)
    value = fn(p, torch.as_tensor(target))
    value.backward()
    return value.item(), p.grad.numpy()


TORCH_CASES = [
    ("mse", {}, "mse_loss", {}),
    ("mae", {}, "l1_loss", {}),
    ("huber", {}, "huber_loss", {}),
    ("huber", {"delta": 0.3}, "huber_loss", {"delta": 0.3}),
    ("binary_cross_entropy", {}, "binary_cross_entropy_with_logits", {}),
    ("cross_entropy", {}, "cross_entropy", {}),
    ("cross_entropy", {"label_smoothing": 0.15}, "cross_entropy", {"label_smoothing": 0.15}),
]


@pytest.mark.parametrize("name, kwargs, torch_name, torch_kwargs", TORCH_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch(name, kwargs, torch_name, torch_kwargs, dtype):
    torch = pytest.importorskip("torch")
    fn = getattr(torch.nn.functional, torch_name)
    loss = losses.get(name, **kwargs)
    rng = np.random.default_rng(len(name))
    pred, target = make_case(loss, rng, (7, 4))
    targets = [target]
    if isinstance(loss, losses.CrossEntropy):  # labels and probabilities both
        targets = [rng.integers(0, 4, 7), rng.dirichlet(np.ones(4), 7).astype(dtype)]
    pred = pred.astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for target in targets:
        if target.dtype.kind == "f":
            target = target.astype(dtype)
        value = loss.forward(pred, target)
        grad = loss.backward()
        expected, expected_grad = torch_value_and_grad(
            lambda p, t: fn(p, t, **torch_kwargs), pred, target)
        assert value == pytest.approx(expected, rel=tol, abs=tol)
        np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_are_finite_and_right(dtype):
    torch = pytest.importorskip("torch")
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=dtype)
    ce = losses.CrossEntropy(label_smoothing=0.1)
    value = ce.forward(logits, [1, 0])
    grad = ce.backward()
    expected, expected_grad = torch_value_and_grad(
        lambda p, t: torch.nn.functional.cross_entropy(p, t, label_smoothing=0.1),
        logits.astype(np.float64), np.array([1, 0]))
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)

    bce = losses.BinaryCrossEntropy()
    value = bce.forward(logits, np.array([[0, 1, 1], [0.5, 1, 0]], dtype=dtype))
    grad = bce.backward()
    expected, expected_grad = torch_value_and_grad(
        torch.nn.functional.binary_cross_entropy_with_logits, logits.astype(np.float64),
        np.array([[0, 1, 1], [0.5, 1, 0]], dtype=np.float64))
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_logits_of_minus_infinity_give_a_finite_loss(backend, weighted):
    # torch reads only the target's log-probability: a -inf logit on another
    # class (a masked class) adds nothing; 0 * -inf must not make it NaN
    logits = np.array([[2.0, -np.inf, 0.5], [-np.inf, 1.0, 3.0]])
    z = logits[:, [0, 2]], logits[:, [1, 2]]
    expected = np.mean([np.log1p(np.exp(z[0][0, 1] - z[0][0, 0])),
                        np.log1p(np.exp(z[1][1, 0] - z[1][1, 1]))])
    previous = tn.kernels.set_backend(backend)
    try:
        ce = losses.CrossEntropy()
        value = ce.forward(logits, [0, 2], sample_weight=np.ones(2) if weighted else None)
        grad = ce.backward()
    finally:
        tn.kernels.set_backend(previous)
    assert value == pytest.approx(expected, rel=1e-15)
    assert grad[0, 1] == 0 and grad[1, 0] == 0 and np.isfinite(grad).all()
    # with label smoothing the masked class has target mass: the loss is infinite
    assert losses.CrossEntropy(label_smoothing=0.1).forward(logits, [0, 2]) == np.inf


@pytest.mark.parametrize("backend", ["numba", "numpy", "auto picks the reference"])
def test_cross_entropy_of_large_float32_logits_agrees_on_every_backend(backend, monkeypatch):
    # logits [1e6, 1e6 - 1] (exact in float32), label 0: log(1 + e^-1). The
    # fused kernel's NumPy reference, which "auto" may pick, rounded the loss
    # to float32 (0.3125)
    if backend.startswith("auto"):
        monkeypatch.setattr(tn.kernels.dispatch, "_auto_pick", lambda op, size: False)
        backend = "auto"
    previous = tn.kernels.set_backend(backend)
    try:
        value = losses.CrossEntropy()(np.array([[1e6, 1e6 - 1]], np.float32), [0])
    finally:
        tn.kernels.set_backend(previous)
    assert value == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-7)


def test_huge_logits_without_torch():
    ce = losses.CrossEntropy()
    assert ce.forward(np.array([[1e4, -1e4]]), [1]) == 2e4
    np.testing.assert_array_equal(ce.backward(), [[1.0, -1.0]])
    bce = losses.BinaryCrossEntropy()
    assert bce.forward(np.array([1e4, -1e4]), np.array([0.0, 0.0])) == 5e3
    np.testing.assert_array_equal(bce.backward(), [0.5, 0.0])


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, error, message", [
    (lambda: losses.MSE().forward(np.ones((2, 3), int), np.ones((2, 3))), TypeError,
     "floating-point dtype"),
    (lambda: losses.MSE().forward(np.ones((2, 3)), np.ones((2, 2))), ValueError,
     r"shape \(2, 3\), received \(2, 2\)"),
    (lambda: losses.MSE().forward(np.ones((2, 3)), [[1, 2, np.nan]] * 2), ValueError,
     "finite targets"),
    (lambda: losses.MAE().forward(np.ones((0, 3)), np.ones((0, 3))), ValueError,
     "at least one sample"),
    (lambda: losses.MAE().forward(np.ones(3), ["a", "b", "c"]), TypeError, "targets"),
    (lambda: losses.CrossEntropy().forward(np.ones((3, 10)), [0, 10, 2]), ValueError,
     r"labels in \[0, 9\] for 10 classes"),
    (lambda: losses.CrossEntropy().forward(np.ones((3, 10)), [0, 1]), ValueError,
     "expected 3 labels"),
    (lambda: losses.CrossEntropy().forward(np.ones((3, 10)), [0.5, 1, 2]), TypeError,
     "integer class labels"),
    (lambda: losses.CrossEntropy().forward(np.ones(3), [0, 1, 2]), ValueError,
     r"\(batch, n_classes\)"),
    (lambda: losses.CrossEntropy().forward(np.ones((2, 3)), np.ones((2, 4))), ValueError,
     "probabilities of the logits' shape"),
    (lambda: losses.CrossEntropy().forward(np.ones((1, 2)), [[np.inf, 0]]), ValueError,
     "finite target probabilities"),
    (lambda: losses.CrossEntropy().forward(np.ones((1, 2)), [[-0.5, 1.5]]), ValueError,
     "non-negative target"),
    (lambda: losses.BinaryCrossEntropy().forward(np.ones(2), [0.0, 2.0]), ValueError,
     r"targets in \[0, 1\]"),
    (lambda: losses.MSE().forward(np.ones((2, 1)), np.ones((2, 1)), mask=[1, 0, 1]),
     ValueError, r"mask of shape \(2,\)"),
    (lambda: losses.MSE().forward(np.ones((2, 1)), np.ones((2, 1)), mask=[1, 0.5]),
     ValueError, "mask values 0 or 1"),
    (lambda: losses.MSE().forward(np.ones((2, 1)), np.ones((2, 1)), sample_weight=[1, -1]),
     ValueError, "non-negative sample_weight"),
    (lambda: losses.MSE().forward(np.ones((2, 1)), np.ones((2, 1)),
                                  sample_weight=[1, np.nan]), ValueError, "finite"),
    (lambda: losses.MSE().forward(np.ones((2, 1)), np.ones((2, 1)), sample_weight=["a", "b"]),
     TypeError, "numeric array"),
    # ragged lists: NumPy's own ValueError, naming no loss, before
    (lambda: losses.MSE().forward(np.ones((2, 2)), [[1.0, 2.0], [1.0]]), TypeError,
     "MSE expected targets as a numeric array, received list that NumPy cannot convert"),
    (lambda: losses.CrossEntropy().forward(np.ones((2, 2)), [[1.0], [0.0, 1.0]]), TypeError,
     "CrossEntropy expected targets as a numeric array"),
    (lambda: losses.CrossEntropy().forward(np.ones((2, 2)), [[1.0], [0.0, 1.0]], mask=[1, 1]),
     TypeError, "CrossEntropy expected targets as a numeric array"),
    (lambda: losses.MSE().forward(np.ones((2, 1)), np.ones((2, 1)), sample_weight=[[1], []]),
     TypeError, "MSE expected sample_weight as a numeric array"),
    (lambda: losses.MSE().backward(), RuntimeError, "before forward"),
    (lambda: losses.Huber(delta=0), ValueError, r"delta in \(0, inf\), received 0"),
    (lambda: losses.Huber(delta=float("inf")), ValueError, r"delta in \(0, inf\)"),
    (lambda: losses.Huber(delta="1"), TypeError, "delta as a real number"),
    (lambda: losses.CrossEntropy(label_smoothing=1.5), ValueError, r"in \[0, 1\]"),
    (lambda: losses.CrossEntropy(label_smoothing=None), TypeError,
     "label_smoothing as a real number"),
    (lambda: losses.get("msee"), ValueError, "unknown loss 'msee'; did you mean 'mse'?"),
    (lambda: losses.get(3), TypeError, "loss name as a string"),
    (lambda: losses.get({"class": "Hubber"}), ValueError, "did you mean 'Huber'"),
    (lambda: losses.get(losses.MSE(), delta=1), TypeError, "no keyword arguments"),
])
def test_bad_input_is_reported(call, error, message):
    with pytest.raises(error, match=message):
        call()


#: (loss class, setting, a value it holds, a bad value, the error): one bad
#: value of each kind of setting -- a number out of its interval, a choice,
#: class weights, a number of the wrong type.
_BAD_SETTINGS = [
    (losses.CrossEntropy, "label_smoothing", 0.1, 2.0, ValueError),
    (losses.CrossEntropy, "label_smoothing", 0.1, "0.1", TypeError),
    (losses.Huber, "delta", 0.5, -1.0, ValueError),
    (losses.Huber, "delta", 0.5, float("nan"), ValueError),
    (losses.MSE, "reduction", "sum", "average", ValueError),
    (losses.BinaryCrossEntropy, "reduction", "none", None, TypeError),
    (losses.CrossEntropy, "weight", [1.0, 2.0, 3.0], [1.0, -2.0, 3.0], ValueError),
    (losses.CrossEntropy, "weight", [1.0, 2.0, 3.0], [True, False, True], TypeError),
    (losses.BinaryCrossEntropy, "pos_weight", 2.0, [np.inf], ValueError),
    (losses.BinaryCrossEntropy, "pos_weight", 2.0, "2", TypeError),
]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cls, name, good, bad, error", _BAD_SETTINGS,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_setting_assigned_later_is_checked_as_the_constructor_checks_it(
        backend, cls, name, good, bad, error):
    # plain attributes, checked by the constructor alone: loss.label_smoothing = 2.0
    # afterwards was kept, and gave wrong numbers without a word
    with pytest.raises(error) as from_constructor:
        cls(**{name: bad})
    loss = cls(**{name: good})
    held = getattr(loss, name)
    pred = np.random.default_rng(0).standard_normal((4, 3))
    target = {losses.CrossEntropy: np.array([0, 2, 1, 2]),
              losses.BinaryCrossEntropy: np.full((4, 3), 0.25)}.get(cls, pred + 0.75)
    with tn.kernels.use_backend(backend):
        expected = cls(**{name: good}).forward(pred, target)
        with pytest.raises(error) as from_assignment:
            setattr(loss, name, bad)
        assert str(from_assignment.value) == str(from_constructor.value)
        assert getattr(loss, name) is held  # the good value stays
        np.testing.assert_array_equal(loss.forward(pred, target), expected)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_setting_assigned_later_is_held_as_the_constructor_holds_it(backend):
    pred = np.random.default_rng(1).standard_normal((5, 4))
    labels = np.array([0, 3, 1, 2, 3])
    with tn.kernels.use_backend(backend):
        loss = losses.CrossEntropy()
        loss.label_smoothing, loss.weight = 1, [1, 2, 3, 4]
        assert type(loss.label_smoothing) is float and loss.weight.dtype == np.float64
        made = losses.CrossEntropy(label_smoothing=1, weight=[1, 2, 3, 4])
        assert loss.forward(pred, labels) == made.forward(pred, labels)
        np.testing.assert_array_equal(loss.backward(), made.backward())
        loss.weight = None  # (no class weights: the fused kernel's path where it runs)
        assert loss.forward(pred, labels) == \
            losses.CrossEntropy(label_smoothing=1.0).forward(pred, labels)


_PRED = np.random.default_rng(2).uniform(-3, 3, (6, 3))
_LABELS = np.array([0, 2, 1, 2, 0, 1])
_SOFT = np.random.default_rng(3).uniform(0.1, 0.9, (6, 3))

#: (loss class, setting, the value the forward runs with, the value set before
#: its backward, the target): every kind of setting of every loss, on the
#: fused cross-entropy path (integer labels, no weights: the Numba kernel) and
#: the general one, and on the output losses' probability twins.
_CHANGED_SETTINGS = [
    (losses.Huber, "delta", 0.5, 2.0, _PRED + 0.75),
    (losses.MSE, "reduction", "mean", "none", _PRED + 0.75),
    (losses.MAE, "reduction", "none", "sum", _PRED + 0.75),
    (losses.Huber, "reduction", "sum", "none", _PRED + 0.75),
    (losses.CrossEntropy, "reduction", "mean", "none", _LABELS),        # fused
    (losses.CrossEntropy, "reduction", "none", "mean", _LABELS),
    (losses.CrossEntropy, "reduction", "sum", "none", _SOFT / 2),
    (losses.CrossEntropy, "label_smoothing", 0.0, 0.3, _LABELS),        # fused
    (losses.CrossEntropy, "label_smoothing", 0.2, 0.0, _SOFT / 2),
    (losses.CrossEntropy, "weight", None, [1.0, 3.0, 0.5], _LABELS),    # fused, then not
    (losses.CrossEntropy, "weight", [2.0, 1.0, 1.0], None, _LABELS),
    (losses.BinaryCrossEntropy, "reduction", "mean", "none", _SOFT),
    (losses.BinaryCrossEntropy, "pos_weight", None, [1.0, 4.0, 0.5], _SOFT),
    (losses.BinaryCrossEntropy, "pos_weight", 2.0, None, _SOFT),
    (output_losses.SoftmaxOutputCrossEntropy, "reduction", "mean", "none", _LABELS),
    (output_losses.SigmoidOutputBinaryCrossEntropy, "reduction", "none", "mean", _SOFT),
]


def _upstream(reduction):
    """A ``dloss`` for a loss reduced as ``reduction`` says (not all ones)."""
    return np.linspace(0.5, 2.0, len(_PRED)) if reduction == "none" else 1.5


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cls, name, ran, later, target", _CHANGED_SETTINGS,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_setting_set_between_forward_and_backward_waits_for_the_next_forward(
        backend, cls, name, ran, later, target):
    # Huber's backward read self.delta (the clip at another delta than the
    # forward's: the gradient of another function), and a reduction set in
    # between mixed two (a mean's cache scaled as 'none' asked for a dloss
    # vector); the backward now differentiates what the forward computed
    pred = {output_losses.SoftmaxOutputCrossEntropy: losses.softmax(_PRED),
            output_losses.SigmoidOutputBinaryCrossEntropy: losses.sigmoid(_PRED)}.get(cls, _PRED)
    with tn.kernels.use_backend(backend):
        before, after = cls(**{name: ran}), cls(**{name: later})
        value_before, value_after = before.forward(pred, target), after.forward(pred, target)
        grad_before = before.backward(_upstream(before.reduction))
        grad_after = after.backward(_upstream(after.reduction))
        loss = cls(**{name: ran})
        np.testing.assert_array_equal(loss.forward(pred, target), value_before)
        setattr(loss, name, later)
        np.testing.assert_array_equal(loss.backward(_upstream(before.reduction)), grad_before)
        # the new value from the next forward on
        np.testing.assert_array_equal(loss.forward(pred, target), value_after)
        np.testing.assert_array_equal(loss.backward(_upstream(after.reduction)), grad_after)
    assert not np.array_equal(grad_before, grad_after)  # (the setting matters here)


class _OldHuber(losses.Huber):
    """``_forward``/``_backward`` overridden as before the settings were
    arguments: they read ``self.delta``."""

    def _forward(self, pred, target):
        return losses.Huber._forward(self, pred, target, self.delta)

    def _backward(self, pred, target):
        return losses.Huber._backward(self, pred, target, self.delta)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_an_old_style_loss_is_called_without_the_settings(backend):
    # a subclass whose maths name no setting gets none (it reads self.delta)
    target = _PRED + 0.75
    with tn.kernels.use_backend(backend):
        plain, old = losses.Huber(delta=0.5), _OldHuber(delta=0.5)
        assert old.forward(_PRED, target) == plain.forward(_PRED, target)
        np.testing.assert_array_equal(old.backward(), plain.backward())


class _TwiceHuber(losses.Huber):
    """Maths written before the settings were arguments, calling the base's
    with its old signature (``super()._forward(pred, target)``)."""

    def _forward(self, pred, target):
        return 2 * super()._forward(pred, target)

    def _backward(self, pred, target):
        return 2 * super()._backward(pred, target)


def _scaled_by_two(base):
    """A subclass of ``base`` whose maths take ``**kw`` and pass them on."""

    class Scaled(base):
        def _forward(self, pred, target, **kw):
            return 2 * super()._forward(pred, target, **kw)

        def _backward(self, pred, target, **kw):
            return 2 * super()._backward(pred, target, **kw)

    return Scaled


class _LogCosh(losses.Huber):
    """Huber's target checks, its own maths, and no ``delta`` ever set."""

    def __init__(self, reduction="mean"):
        losses.Loss.__init__(self, reduction)

    def _forward(self, pred, target):
        return np.log(np.cosh(pred - target))

    def _backward(self, pred, target):
        return np.tanh(pred - target)


class _OwnForward(losses.MSE):
    """A forward of its own that fills ``_cache`` for ``Loss.backward``."""

    def forward(self, pred, target, sample_weight=None, mask=None):
        pred = np.asarray(pred)
        self._cache = (pred, np.asarray(target), 1.0 / pred.size)
        return float(np.mean((pred - target) ** 2))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("make, base, kwargs", [
    (lambda: _TwiceHuber(delta=0.5), losses.Huber, {"delta": 0.5}),
    (lambda: _scaled_by_two(losses.MSE)(), losses.MSE, {}),
    (lambda: _scaled_by_two(losses.Huber)(delta=0.5), losses.Huber, {"delta": 0.5}),
], ids=["old-signature-super", "kwargs-to-mse", "kwargs-to-huber"])
def test_a_subclass_passing_its_arguments_to_the_base_maths(backend, make, base, kwargs):
    # super()._forward(pred, target) lacked Huber's delta (TypeError); an
    # override's **kw was handed every setting, MSE._forward's 'reduction' too
    target = _PRED + 0.75
    with tn.kernels.use_backend(backend):
        plain, loss = base(**kwargs), make()
        assert loss.forward(_PRED, target) == 2 * plain.forward(_PRED, target)
        np.testing.assert_array_equal(loss.backward(), 2 * plain.backward())


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_subclass_that_never_sets_a_base_setting_runs(backend):
    # settings_of read delta, never set: AttributeError on every forward
    target = _PRED + 0.75
    with tn.kernels.use_backend(backend):
        loss = _LogCosh()
        assert loss.forward(_PRED, target) == pytest.approx(
            np.mean(np.log(np.cosh(_PRED - target))), rel=1e-12)
        np.testing.assert_allclose(loss.backward(), np.tanh(_PRED - target) / _PRED.size)
        with pytest.raises(AttributeError, match="_LogCosh has no delta set yet"):
            loss.delta


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_forward_of_its_own_uses_the_base_backward(backend):
    # its forward records no settings: the backward found None (TypeError)
    target = _PRED + 0.75
    with tn.kernels.use_backend(backend):
        loss = _OwnForward()
        loss.forward(_PRED, target)
        np.testing.assert_allclose(loss.backward(), 2 * (_PRED - target) / _PRED.size)


class _OldPickle:
    """Pickles as a loss of ``cls`` whose instance ``__dict__`` is ``state``:
    what a loss pickled before its settings were Settings holds."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    def __reduce__(self):
        import copyreg  # what pickle's protocols 0 and 1 give any object
        return copyreg._reconstructor, (self.cls, object, None), dict(self.state, _cache=None)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("cls, state", [
    (losses.MSE, {"reduction": "sum"}),
    (losses.Huber, {"delta": 2.0, "reduction": "sum"}),
    (losses.CrossEntropy, {"label_smoothing": 0.1, "weight": np.array([1.0, 2.0, 3.0]),
                           "reduction": "none"}),
    (losses.BinaryCrossEntropy, {"pos_weight": np.array([2.0]), "reduction": "sum"}),
])
def test_a_loss_pickled_with_plain_settings_loads_with_them(backend, cls, state):
    # MSE(reduction="sum") read 'mean' (the slot's default), silently;
    # Huber's delta was an AttributeError
    import pickle
    loaded = pickle.loads(pickle.dumps(_OldPickle(cls, state)))
    fresh = cls(**state)
    assert loaded.get_config() == fresh.get_config()
    assert not set(state) & set(vars(loaded))  # held as settings: checked, in their slots
    target = (np.arange(6) % 3 if cls is losses.CrossEntropy
              else (_PRED > 0).astype(float) if cls is losses.BinaryCrossEntropy
              else _PRED + 0.75)
    with tn.kernels.use_backend(backend):
        np.testing.assert_array_equal(loaded.forward(_PRED, target), fresh.forward(_PRED, target))


def test_a_setting_written_into_the_instance_dict_is_not_hidden():
    # an __init__ doing self.__dict__.update(reduction="sum") was ignored
    class DictInit(losses.MSE):
        def __init__(self):
            super().__init__()
            self.__dict__.update(reduction="sum")

    loss = DictInit()
    assert loss.reduction == "sum"
    assert loss.forward(_PRED, _PRED + 1.0) == _PRED.size
    bad = losses.MSE()
    bad.__dict__["reduction"] = "avg"  # checked as an assignment is
    with pytest.raises(ValueError, match="MSE expected reduction as one of"):
        bad.reduction


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name, cls", [
    ("mse", losses.MSE), ("MAE", losses.MAE), ("huber", losses.Huber),
    ("cross_entropy", losses.CrossEntropy), ("categorical_crossentropy", losses.CrossEntropy),
    ("sparse_categorical_crossentropy", losses.CrossEntropy),
    ("binary-cross-entropy", losses.BinaryCrossEntropy),
])
def test_get_by_name(name, cls):
    assert type(tn.losses.get(name)) is cls


@pytest.mark.parametrize("loss", [losses.MSE(), losses.Huber(delta=0.25),
                                  losses.CrossEntropy(label_smoothing=0.1)], ids=repr)
def test_config_round_trip(loss):
    import json
    spec = json.loads(json.dumps(losses.loss_to_dict(loss)))
    again = losses.get(spec)
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert losses.get(type(loss)).__class__ is type(loss)
