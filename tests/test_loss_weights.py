"""Class weights (CrossEntropy's weight=, BinaryCrossEntropy's pos_weight=) and the
reductions ("mean", "sum", "none") of every loss: torch, gradcheck, formulas, errors."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet import losses

REDUCTIONS = ["mean", "sum", "none"]


def weighted_ce_reference(logits, labels, class_weight, smoothing, sample_weight):
    """torch's weighted mean, written out: sum_i s_i l_i / sum_i s_i c_{y_i} with
    l_i = (1 - eps) c_{y_i} (-log p_{i y_i}) + eps / C sum_c c_c (-log p_ic)."""
    n, n_classes = logits.shape
    log_p = logits - logits.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    per_sample = [(1 - smoothing) * class_weight[y] * -log_p[i, y]
                  + smoothing / n_classes * (class_weight * -log_p[i]).sum()
                  for i, y in enumerate(labels)]
    return float(np.dot(sample_weight, per_sample)
                 / np.dot(sample_weight, class_weight[labels]))


def make_loss_case(kind, rng, reduction, batch=5, width=3):
    """A loss with class weights and float64 predictions/targets for it."""
    pred = rng.uniform(-3, 3, (batch, width))
    if kind == "ce_labels" or kind == "ce_probs":
        loss = losses.CrossEntropy(label_smoothing=float(rng.choice([0.0, 0.2])),
                                   weight=rng.uniform(0.2, 3.0, width), reduction=reduction)
        target = rng.integers(0, width, batch) if kind == "ce_labels" else \
            rng.dirichlet(np.ones(width), batch)
    elif kind == "bce":
        loss = losses.BinaryCrossEntropy(pos_weight=rng.uniform(0.2, 3.0, width),
                                         reduction=reduction)
        target = rng.random((batch, width))
    else:
        loss = {"mse": losses.MSE, "mae": losses.MAE, "huber": losses.Huber}[kind](
            reduction=reduction)
        target = pred - rng.uniform(0.1, 0.9, pred.shape) * rng.choice([-1, 1], pred.shape)
    return loss, pred, target


KINDS = ["ce_labels", "ce_probs", "bce", "mse", "mae", "huber"]


# --------------------------------------------------------------------------- gradients
@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), reduction=st.sampled_from(REDUCTIONS),
       seed=st.integers(0, 2**31 - 1), weighted=st.booleans())
def test_gradcheck_of_every_reduction_with_class_weights(kind, reduction, seed, weighted):
    rng = np.random.default_rng(seed)
    loss, pred, target = make_loss_case(kind, rng, reduction)
    if weighted:  # sample weights with a zero (a masked-out sample) on top
        weight = rng.uniform(0.1, 2.0, len(pred))
        weight[0] = 0.0
        loss = _with_sample_weight(loss, weight)
    result = tn.gradcheck(loss, pred, target)
    assert result.passed, result


class _with_sample_weight:
    """A loss with fixed sample weights, in the (forward, backward) form gradcheck takes."""

    def __init__(self, loss, weight):
        self.loss, self.weight, self.reduction = loss, weight, loss.reduction

    def forward(self, pred, target):
        return self.loss.forward(pred, target, sample_weight=self.weight)

    def backward(self, dloss=None):
        return self.loss.backward(dloss)


def test_gradcheck_would_catch_a_wrong_none_backward():
    class Wrong(losses.MSE):
        def _backward(self, pred, target):
            return 3 * (pred - target)  # should be 2
    pred = np.random.default_rng(0).standard_normal((4, 2))
    assert not tn.gradcheck(Wrong(reduction="none"), pred, np.zeros((4, 2))).passed
    assert tn.gradcheck(losses.MSE(reduction="none"), pred, np.zeros((4, 2))).passed


# --------------------------------------------------------------------------- torch
def _torch_call(torch, kind, loss, pred, target, reduction):
    p = torch.tensor(pred, requires_grad=True)
    f = torch.nn.functional
    if kind.startswith("ce"):
        out = f.cross_entropy(p, torch.as_tensor(target), weight=torch.tensor(loss.weight,
                                                                              dtype=p.dtype),
                              label_smoothing=loss.label_smoothing, reduction=reduction)
    elif kind == "bce":
        out = f.binary_cross_entropy_with_logits(
            p, torch.as_tensor(target), pos_weight=torch.tensor(loss.pos_weight, dtype=p.dtype),
            reduction=reduction)
    else:
        out = {"mse": f.mse_loss, "mae": f.l1_loss, "huber": f.huber_loss}[kind](
            p, torch.as_tensor(target), reduction=reduction)
    if reduction == "none" and out.ndim > 1:
        out = out.sum(dim=tuple(range(1, out.ndim)))  # tinynet sums each sample's elements
    return p, out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_backward_match_torch(kind, reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(KINDS.index(kind) * 10 + REDUCTIONS.index(reduction))
    loss, pred, target = make_loss_case(kind, rng, reduction, batch=7, width=4)
    pred = pred.astype(dtype)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    upstream = rng.standard_normal(len(pred)) if reduction == "none" else None
    value = loss.forward(pred, target)
    grad = loss.backward(upstream)
    p, out = _torch_call(torch, kind, loss, pred, target, reduction)
    (out @ torch.tensor(upstream, dtype=out.dtype) if reduction == "none" else out).backward()
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(value, out.detach().numpy(), rtol=tol, atol=tol)
    assert grad.dtype == dtype and grad.shape == pred.shape
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=tol, atol=tol * 1e-1)
    if reduction == "none":
        assert value.shape == (len(pred),) and value.dtype == dtype


def test_weight_and_label_smoothing_match_torch_on_huge_logits():
    torch = pytest.importorskip("torch")
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 2.0, 1.0]])
    labels, c = np.array([1, 0, 2]), np.array([0.5, 2.0, 1.5])
    ce = losses.CrossEntropy(label_smoothing=0.1, weight=c)
    value, grad = ce.forward(logits, labels), ce.backward()
    p = torch.tensor(logits, requires_grad=True)
    out = torch.nn.functional.cross_entropy(p, torch.tensor(labels), weight=torch.tensor(c),
                                            label_smoothing=0.1)
    out.backward()
    assert np.isfinite(value) and value == pytest.approx(out.item(), rel=1e-12)
    np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_class_weights_combine_with_sample_weights_and_mask(smoothing):
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((8, 4)), rng.integers(0, 4, 8)
    c, s = rng.uniform(0.1, 3.0, 4), rng.uniform(0.1, 2.0, 8)
    mask = np.array([1, 1, 0, 1, 1, 0, 1, 1])
    ce = losses.CrossEntropy(label_smoothing=smoothing, weight=c)
    bad = labels.copy()
    bad[mask == 0] = -1  # masked-out labels are never read
    value = ce.forward(logits, bad, sample_weight=s, mask=mask)
    assert value == pytest.approx(
        weighted_ce_reference(logits, labels, c, smoothing, s * mask), rel=1e-12)
    assert ce.weight_total == pytest.approx(float((s * mask) @ c[labels]), rel=1e-15)


def test_unit_class_weights_equal_no_weights_and_skip_the_fused_kernel():
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    plain = losses.CrossEntropy(label_smoothing=0.1)
    ones = losses.CrossEntropy(label_smoothing=0.1, weight=np.ones(5))
    assert ones.forward(logits, labels) == pytest.approx(plain.forward(logits, labels),
                                                         rel=1e-14)
    np.testing.assert_allclose(ones.backward(), plain.backward(), rtol=1e-13, atol=1e-16)
    assert plain._fused_grad is not None or tn.kernels.effective_backend() == "numpy"
    assert ones._fused_grad is None


def test_probability_targets_divide_by_the_batch_size_as_torch():
    # torch's rule: with class weights, one-hot targets average over the batch,
    # labels over the sum of their class weights
    logits = np.random.default_rng(5).standard_normal((4, 3))
    labels, c = np.array([0, 2, 2, 1]), np.array([1.0, 2.0, 4.0])
    ce = losses.CrossEntropy(weight=c)
    by_labels = ce.forward(logits, labels)
    by_one_hot = ce.forward(logits, np.eye(3)[labels])
    assert by_one_hot == pytest.approx(by_labels * c[labels].sum() / 4, rel=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_sum_and_none_agree_with_mean(kind):
    values = {}
    for reduction in REDUCTIONS:
        loss, pred, target = make_loss_case(kind, np.random.default_rng(6), reduction)
        values[reduction] = loss.forward(pred, target, sample_weight=np.arange(1.0, 6.0))
    assert values["sum"] == pytest.approx(values["none"].sum(), rel=1e-12)
    n_items = 1 if kind.startswith("ce") else pred.shape[1]
    assert values["mean"] == pytest.approx(values["sum"] / (loss.weight_total * n_items),
                                           rel=1e-12)


@pytest.mark.parametrize("scale", [1e307, 1e308, np.finfo(np.float64).max])
@pytest.mark.parametrize("kind", KINDS)
def test_a_weighted_mean_whose_sums_overflow_is_the_mean_of_the_scaled_weights(kind, scale):
    # called directly (fit and evaluate scale their weights first): weights
    # near the largest float made sum(w) and sum(w l) inf, and the loss NaN;
    # weights of finite sum (1e307: 3e307) times losses above 1 made sum(w l)
    # inf, and the loss inf; the gradient was 0 or NaN
    values, grads = [], []
    for weight in (np.arange(1.0, 6.0) / 5 * scale, np.arange(1.0, 6.0) / 5):
        loss, pred, target = make_loss_case(kind, np.random.default_rng(8), "mean")
        if kind in ("mse", "mae", "huber"):
            pred, target = 10 * pred, 10 * target
        else:
            pred = 10 * pred  # logits: losses above 1
        values.append(loss.forward(pred, target, sample_weight=weight))
        grads.append(loss.backward())
        summed, *_ = make_loss_case(kind, np.random.default_rng(8), "sum")
        with np.errstate(over="ignore"):
            overflows = not np.isfinite(summed.forward(pred, target, sample_weight=weight))
        assert overflows == (weight.max() > 1)  # the case, not an ordinary one
    assert np.isfinite(values[0]) and values[0] == pytest.approx(values[1], rel=1e-13)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=0)
    assert np.isfinite(loss.weight_total)  # the ordinary one, for a mean over batches


@pytest.mark.parametrize("kind", KINDS)
def test_weights_whose_sum_alone_overflows_give_the_mean_of_the_scaled_weights(kind):
    # losses below 1: sum(w l) stays finite while sum(w) overflows, so the plain
    # quotient was a finite 0.0 (and the gradient 0), which the first check missed
    values, grads = [], []
    for weight in (np.full(5, 1e308), np.ones(5)):
        loss, pred, target = make_loss_case(kind, np.random.default_rng(8), "mean")
        pred = target + 0.01 * (pred - target) if kind in ("mse", "mae", "huber") else pred
        values.append(loss.forward(pred, target, sample_weight=weight))
        grads.append(loss.backward())
    assert 0 < values[1] and values[0] == pytest.approx(values[1], rel=1e-13)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=0)


def test_a_weighted_mean_that_overflows_its_sums_only_takes_the_rescaled_path(monkeypatch):
    # ordinary weights keep the plain sums, to the bit: the rescaled path
    # rounds differently
    calls = []
    rescaled = losses._rescaled_mean
    monkeypatch.setattr(losses, "_rescaled_mean", lambda *a: calls.append(1) or rescaled(*a))
    pred, target = np.random.default_rng(9).standard_normal((2, 4, 3))
    for weight in ([1.0, 2.0, 0.0, 1e300], [1e-300, 1.0, 2.0, 3.0], None):
        losses.MSE().forward(pred, target, sample_weight=weight)
    assert calls == []
    losses.MSE().forward(pred * 1e3, target, sample_weight=[1e308] * 4)
    assert calls == [1]
    with pytest.warns(RuntimeWarning, match="overflow"):  # an inf loss stays inf (not NaN)
        assert losses.MSE().forward(np.full((4, 3), 1e200), target, sample_weight=[1e308] * 4) \
            == np.inf


def test_scalar_upstream_gradient_scales_and_backward_repeats():
    logits, labels = np.random.default_rng(7).standard_normal((4, 3)), [0, 1, 2, 0]
    for loss in (losses.CrossEntropy(), losses.CrossEntropy(reduction="sum"), losses.MSE()):
        target = labels if isinstance(loss, losses.CrossEntropy) else np.zeros((4, 3))
        loss.forward(logits, target)
        once = loss.backward().copy()
        np.testing.assert_allclose(loss.backward(2.5), 2.5 * once, rtol=1e-15)
        np.testing.assert_array_equal(loss.backward(), once)  # not scaled in place


def test_reduction_sum_uses_the_fused_kernel_and_matches_the_reference():
    rng = np.random.default_rng(8)
    logits, labels = rng.standard_normal((9, 4)), rng.integers(0, 4, 9)
    fused = losses.CrossEntropy(reduction="sum")
    value, grad = fused.forward(logits, labels), fused.backward()
    previous = tn.kernels.set_backend("numpy")
    try:
        ref = losses.CrossEntropy(reduction="sum")
        assert value == pytest.approx(ref.forward(logits, labels), rel=1e-13)
        np.testing.assert_allclose(grad, ref.backward(), rtol=1e-13, atol=1e-16)
    finally:
        tn.kernels.set_backend(previous)


def test_probability_output_twins_take_the_weights():
    # the softmax-output twin, through the softmax's backward, gives the logit loss's gradient
    from tinynet.output_losses import SigmoidOutputBinaryCrossEntropy, SoftmaxOutputCrossEntropy
    rng = np.random.default_rng(9)
    z, labels = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    config = {"label_smoothing": 0.1, "weight": [0.5, 2.0, 1.0], "reduction": "sum"}
    logit_loss, twin = losses.CrossEntropy(**config), SoftmaxOutputCrossEntropy(**config)
    p = losses.softmax(z)
    assert twin.forward(p, labels) == pytest.approx(logit_loss.forward(z, labels), rel=1e-12)
    dp = twin.backward()
    dz = p * (dp - (p * dp).sum(1, keepdims=True))
    np.testing.assert_allclose(dz, logit_loss.backward(), rtol=1e-10, atol=1e-13)

    t = rng.random((5, 3))
    bce = losses.BinaryCrossEntropy(pos_weight=[0.5, 2.0, 3.0])
    sig = SigmoidOutputBinaryCrossEntropy(pos_weight=[0.5, 2.0, 3.0])
    s = losses.sigmoid(z)
    assert sig.forward(s, t) == pytest.approx(bce.forward(z, t), rel=1e-12)
    np.testing.assert_allclose(sig.backward() * s * (1 - s), bce.backward(), rtol=1e-10)


# --------------------------------------------------------------------------- saving
def test_weights_and_reduction_round_trip_through_json():
    for loss in (losses.CrossEntropy(0.1, weight=[1, 2.5, 0], reduction="sum"),
                 losses.BinaryCrossEntropy(pos_weight=3.0, reduction="none"),
                 losses.Huber(0.5, reduction="sum"), losses.MAE(reduction="none")):
        spec = losses.loss_to_dict(loss)
        text = json.dumps(spec)  # plain lists and strings only
        again = losses.get(json.loads(text))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert losses.loss_to_dict(losses.CrossEntropy(weight=[1, 2]))["config"]["weight"] == [1.0,
                                                                                          2.0]
    # a spec saved before reductions existed loads with the defaults
    old = losses.get({"class": "CrossEntropy", "config": {"label_smoothing": 0.1}})
    assert old.reduction == "mean" and old.weight is None


def test_class_weights_survive_model_save_and_load(tmp_path):
    model = tn.Sequential([tn.layers.Dense(3, input_dim=4)])
    model.compile("sgd", loss=losses.CrossEntropy(weight=[0.5, 2.0, 1.0], reduction="sum"))
    path = model.save(tmp_path / "m.npz")
    loaded = tn.load(path)
    assert loaded.loss.reduction == "sum"
    np.testing.assert_array_equal(loaded.loss.weight, [0.5, 2.0, 1.0])
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 2, 1, 0])
    assert loaded.evaluate(x, y)["loss"] == model.evaluate(x, y)["loss"]


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, error, message", [
    (lambda: losses.CrossEntropy(weight=[1.0, -1.0]), ValueError, "non-negative weight"),
    (lambda: losses.CrossEntropy(weight=[1.0, np.nan]), ValueError, "finite weight"),
    (lambda: losses.CrossEntropy(weight=[0, 0, 0]), ValueError, "at least one positive"),
    (lambda: losses.CrossEntropy(weight=[[1, 2]]), ValueError, "1-D sequence"),
    (lambda: losses.CrossEntropy(weight=[]), ValueError, "non-empty 1-D"),
    (lambda: losses.CrossEntropy(weight=2.0), ValueError, "1-D sequence"),
    (lambda: losses.CrossEntropy(weight="ab"), TypeError, "sequence of numbers"),
    (lambda: losses.CrossEntropy(weight=["a", "b"]), TypeError, "numeric array"),
    (lambda: losses.CrossEntropy(weight=[1, 2]).forward(np.ones((2, 3)), [0, 1]), ValueError,
     r"one value per class: 3 for logits of shape \(2, 3\), received 2 values"),
    (lambda: losses.BinaryCrossEntropy(pos_weight=[1, 2]).forward(np.ones((2, 3)),
                                                                   np.ones((2, 3))),
     ValueError, r"one value per output \(3 for predictions"),
    (lambda: losses.BinaryCrossEntropy(pos_weight=-1), ValueError, "non-negative pos_weight"),
    (lambda: losses.CrossEntropy(weight=np.zeros(10)), ValueError,
     "weight .*at least one positive value, received all zeros"),
    # a bool is not a number (check_real's rule), even where NumPy would cast it
    (lambda: losses.BinaryCrossEntropy(pos_weight=True), TypeError,
     r"expected pos_weight as real numbers, received booleans \(True\) of dtype bool"),
    (lambda: losses.BinaryCrossEntropy(pos_weight=np.False_), TypeError,
     "pos_weight as real numbers, received booleans"),
    (lambda: losses.BinaryCrossEntropy(pos_weight=[2.0, True]), TypeError,
     r"pos_weight as real numbers, received a bool among them: \[2.0, True\]"),
    (lambda: losses.CrossEntropy(weight=np.array([True, False, True])), TypeError,
     r"weight \(one per class\) as real numbers, received booleans \(\[ True False  True\]\)"),
    (lambda: losses.CrossEntropy(weight=(1, False)), TypeError, "received a bool among them"),
    (lambda: losses.MSE(reduction="average"), ValueError, "reduction as one of"),
    (lambda: losses.Huber(reduction="summ"), ValueError, "did you mean 'sum'"),
    (lambda: losses.MSE(reduction=None), TypeError, "reduction as one of"),
    (lambda: _forwarded(losses.MSE(reduction="none")).backward(), ValueError,
     r"upstream gradient dloss of shape \(3,\)"),
    (lambda: _forwarded(losses.MSE(reduction="none")).backward(np.ones(2)), ValueError,
     r"shape \(3,\) \(one per sample\), received float64 of shape \(2,\)"),
    (lambda: _forwarded(losses.MSE()).backward(np.ones(3)), ValueError, "dloss as a number"),
    (lambda: _forwarded(losses.MSE(reduction="sum")).backward("1"), ValueError,
     "dloss as a number"),
])
def test_bad_weights_and_reductions_are_reported(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _forwarded(loss):
    loss.forward(np.ones((3, 2)), np.zeros((3, 2)))
    return loss


def test_compile_refuses_reduction_none():
    model = tn.Sequential([tn.layers.Dense(2, input_dim=3)])
    with pytest.raises(ValueError, match="reduction='none' gives one loss per sample"):
        model.compile("sgd", loss=losses.MSE(reduction="none"))
    from tinynet import mtl
    inp = mtl.Input((3,), name="x")
    head = mtl.Model(inp, {"a": tn.layers.Dense(2)(inp)})
    with pytest.raises(ValueError, match="task 'a'.*reduction='none'"):
        head.compile("sgd", loss={"a": losses.CrossEntropy(reduction="none")})


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("twin", [False, True])
def test_all_zero_class_weights_of_the_batch_give_zero_loss_and_gradient(reduction, twin):
    # a legitimate batch: its classes weigh 0, another class does not. torch
    # gives NaN (0/0) for the mean; tinynet 0, a zero gradient, a total weight
    # of 0 (the batch counts for nothing in a mean over batches), no warning
    from tinynet.output_losses import SoftmaxOutputCrossEntropy
    cls = SoftmaxOutputCrossEntropy if twin else losses.CrossEntropy
    pred = np.full((2, 2), 0.5)
    for kwargs in ({}, {"sample_weight": [1.0, 3.0]}, {"mask": [True, False]}):
        ce = cls(weight=[0.0, 1.0], reduction=reduction, label_smoothing=0.0)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            value = ce.forward(pred, [0, 0], **kwargs)
            grad = ce.backward(np.ones(2) if reduction == "none" else None)
        np.testing.assert_array_equal(value, np.zeros(2) if reduction == "none" else 0.0)
        assert grad.shape == pred.shape and not grad.any()
        assert ce.weight_total == 0.0
        assert losses.batch_weight(ce, 2) == (2 if reduction == "sum" else 0.0)


def test_zero_pos_weight_still_trains_the_negatives():
    bce = losses.BinaryCrossEntropy(pos_weight=[0.0, 0.0])
    value = bce.forward(np.zeros((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0]]))
    assert value == pytest.approx(np.log(2) / 4, rel=1e-12)  # the one negative only
    np.testing.assert_allclose(bce.backward(), [[0.0, 0.125], [0.0, 0.0]], rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["fused", "ce_weighted", "ce_sample_weight", "twin", "bce",
                                  "mse"])
def test_backward_returns_an_array_the_caller_owns(kind, reduction):
    # a caller that changes the gradient in place (or keeps two) must not
    # corrupt the next backward; the fused kernel's used to return its cache
    from tinynet.output_losses import SoftmaxOutputCrossEntropy
    rng = np.random.default_rng(11)
    pred = rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    target, kwargs = rng.integers(0, 3, 4), {}
    if kind in ("fused", "ce_sample_weight"):
        loss = losses.CrossEntropy(reduction=reduction)
        kwargs = {"sample_weight": [1.0, 2.0, 0.5, 1.0]} if kind == "ce_sample_weight" else {}
    elif kind == "ce_weighted":
        loss = losses.CrossEntropy(weight=[1.0, 2.0, 3.0], reduction=reduction)
    elif kind == "twin":
        loss = SoftmaxOutputCrossEntropy(reduction=reduction)
    else:
        loss = (losses.BinaryCrossEntropy if kind == "bce" else losses.MSE)(reduction=reduction)
        target = rng.random((4, 3)).astype(np.float32)
    loss.forward(pred, target, **kwargs)
    if kind == "fused" and reduction != "none":
        assert loss._fused_grad is not None or tn.kernels.effective_backend() == "numpy"
    dloss = np.ones(4) if reduction == "none" else None
    first = loss.backward(dloss)
    expected = first.copy()
    first *= 7.0
    first[0] = np.nan
    second = loss.backward(dloss)
    assert second is not first and not np.shares_memory(first, second)
    np.testing.assert_array_equal(second, expected)
    second[:] = 0.0
    np.testing.assert_array_equal(loss.backward(dloss), expected)


# --------------------------------------------------------------------------- in a model
def _classifier(loss):
    model = tn.Sequential([tn.layers.Dense(3, input_dim=4, seed=0, dtype="float64")])
    model.compile("sgd", loss=loss)
    rng = np.random.default_rng(1)
    return model, rng.standard_normal((10, 4)), rng.integers(0, 3, 10)


def test_evaluate_is_the_exact_class_weighted_mean_whatever_the_batch_size():
    loss = losses.CrossEntropy(weight=[0.5, 3.0, 1.0])
    model, x, y = _classifier(loss)
    w = np.linspace(0.5, 2.0, 10)
    whole = losses.CrossEntropy(weight=[0.5, 3.0, 1.0]).forward(model.predict(x), y,
                                                                sample_weight=w)
    for batch_size in (3, 4, 10):
        assert model.evaluate(x, y, batch_size=batch_size, sample_weight=w)["loss"] == \
            pytest.approx(whole, rel=1e-12)


def test_a_sum_loss_trains_and_evaluates_as_keras_logs_it():
    model, x, y = _classifier(losses.CrossEntropy(reduction="sum"))
    sums = [losses.CrossEntropy(reduction="sum").forward(model.predict(x[i:i + 4]), y[i:i + 4])
            for i in (0, 4, 8)]
    # Keras' loss tracker: the batch values averaged, weighted by batch size
    expected = (4 * sums[0] + 4 * sums[1] + 2 * sums[2]) / 10
    assert model.evaluate(x, y, batch_size=4)["loss"] == pytest.approx(expected, rel=1e-12)
    mean_model, _, _ = _classifier(losses.CrossEntropy())
    mean_model.set_weights(model.get_weights())
    before = model.get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=10, verbose=0, shuffle=False)
    mean_model.fit(x, y, epochs=1, batch_size=10, verbose=0, shuffle=False)
    # one full batch: the sum's step is the mean's times the batch size
    np.testing.assert_allclose(model.get_weights()[0] - before,
                               10 * (mean_model.get_weights()[0] - before), rtol=1e-10)


def test_a_loss_subclass_from_before_reduction_still_trains():
    # written against the old base class: an __init__ that does not call
    # Loss.__init__, so no instance attribute reduction (or _cache)
    class Squared(losses.Loss):
        def __init__(self, scale):
            self.scale = scale

        def _check_target(self, pred, target):
            return np.asarray(target, dtype=pred.dtype).reshape(pred.shape)

        def _forward(self, pred, target):
            return self.scale * (pred - target) ** 2

        def _backward(self, pred, target):
            return 2 * self.scale * (pred - target)

    loss = Squared(0.5)
    with pytest.raises(RuntimeError, match="before forward"):
        loss.backward()
    pred, target = np.array([[1.0], [3.0]]), np.array([0.0, 1.0])
    assert loss.forward(pred, target) == pytest.approx(0.5 * (1 + 4) / 2)
    np.testing.assert_allclose(loss.backward(), [[0.5], [1.0]])
    model = tn.Sequential([tn.layers.Dense(1, input_dim=2)])
    model.compile("sgd", loss=loss)
    x = np.random.default_rng(0).random((8, 2))
    history = model.fit(x, x.sum(axis=1), epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_a_loss_with_its_own_forward_evaluates_without_a_weight_total():
    # a Loss subclass that computes forward itself never sets weight_total:
    # evaluate and fit's epoch logs then count each batch by its size
    class OwnForward(losses.Loss):
        def forward(self, pred, target, sample_weight=None, mask=None):
            self._diff = pred - np.asarray(target, dtype=pred.dtype).reshape(pred.shape)
            return float(np.mean(self._diff ** 2))

        def backward(self, dloss=None):
            return 2 * self._diff / self._diff.size

    model = tn.Sequential([tn.layers.Dense(1, input_dim=2, dtype="float64")])
    model.compile(tn.optim.SGD(lr=0.0), loss=OwnForward())
    x = np.random.default_rng(0).random((10, 2))
    y = x.sum(axis=1)
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                        validation_data=(x, y))
    expected = float(np.mean((model.predict(x)[:, 0] - y) ** 2))
    assert model.evaluate(x, y, batch_size=4)["loss"] == pytest.approx(expected, rel=1e-12)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-12)
    assert history.history["val_loss"][0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("loss, reduction", [
    (losses.MSE(), "mean"), (losses.MSE(reduction="sum"), "sum"),
    (losses.CrossEntropy(reduction="none"), "none"),
    (lambda pred, target: 0.0, "mean")])  # a loss that does not say reduces to its mean
def test_one_reading_of_a_losss_reduction(loss, reduction):
    # batch_weight and the multi-task model's per-task logs read it the same way
    assert losses.reduction_of(loss) == reduction
    assert losses.reduces_to_sum(loss) is (reduction == "sum")
    if not hasattr(loss, "weight_total"):
        assert losses.batch_weight(loss, 3) == 3


#: Powers of two beyond each dtype's range that multiply an ordinary class
#: weight table: near the largest float (the sums overflowed: NaN) and near
#: the smallest (they underflowed: a mean of 0, a gradient of inf).
_EXTREME_SCALES = {np.float64: [2.0 ** 1020, 2.0 ** -1060],
                   np.float32: [2.0 ** 130, 2.0 ** -140, 2.0 ** 90]}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("sample_weight", [None, "ordinary", "huge"])
def test_class_weights_near_the_float_limits_give_the_mean_of_the_ordinary_table(
        dtype, smoothing, sample_weight):
    # the mean over labels does not change when every class weight is scaled
    # by one number; a table near the largest (smallest) float overflowed
    # (underflowed) its sums and gave NaN or inf (0, with a gradient of inf)
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(7, 3)) * 3).astype(dtype)
    labels = np.array([0, 1, 2, 1, 0, 2, 2])
    weight = {None: None, "ordinary": rng.uniform(0.5, 2.0, 7),
              "huge": np.full(7, 1e308)}[sample_weight]
    table = np.array([1.0, 2.0, 0.5])
    ordinary = losses.CrossEntropy(label_smoothing=smoothing, weight=table)
    expected = ordinary.forward(logits, labels, sample_weight=weight)
    expected_grad = ordinary.backward()
    for scale in _EXTREME_SCALES[dtype]:
        loss = losses.CrossEntropy(label_smoothing=smoothing, weight=table * scale)
        assert loss.forward(logits, labels, sample_weight=weight) == expected
        np.testing.assert_array_equal(loss.backward(), expected_grad)
        # (sample weights near the largest float: inf for either, as documented)
        assert np.isfinite(loss.weight_total) == np.isfinite(ordinary.weight_total)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_and_evaluate_with_class_weights_near_the_float_limits(dtype):
    # the epoch's loss, the weights and evaluate were NaN: the same run as
    # with the ordinary table (a power of two times it), to the bit
    from tinynet.layers import Dense
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)).astype(dtype), rng.integers(0, 3, 40)
    sample_weight = rng.uniform(0.5, 2.0, 40)
    runs = []
    for scale in (1.0, 2.0 ** 1000, 2.0 ** -1060):
        model = tn.Sequential([Dense(3, input_dim=5, seed=0, dtype=dtype)])
        model.compile(optimizer=tn.optim.SGD(lr=0.1),
                      loss=losses.CrossEntropy(weight=np.array([1.0, 2.0, 0.5]) * scale))
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0,
                            sample_weight=sample_weight)
        runs.append((history.history["loss"], model.get_weights(),
                     model.evaluate(x, y, sample_weight=sample_weight)["loss"]))
    for losses_, weights, evaluated in runs[1:]:
        assert losses_ == runs[0][0] and evaluated == runs[0][2]
        for got, want in zip(weights, runs[0][1]):
            np.testing.assert_array_equal(got, want)
    assert all(np.isfinite(runs[0][0]))


def test_class_weights_in_range_are_used_as_given():
    # ordinary tables keep their bits (and weight_total its meaning)
    for table in ([1.0, 2.0, 0.5], [2.0 ** 60, 1.0], [2.0 ** -60, 3e-30]):
        table = np.array(table)
        assert losses.scaled_class_weights(table) is table
    scaled = losses.scaled_class_weights(np.array([1e308, 1.0]))
    assert 0.5 <= scaled[0] < 1 and scaled[1] == np.ldexp(1.0, -1024)  # 1e308 < 2**1024
    assert losses.CrossEntropy(weight=[1e308, 1.0], reduction="sum")._class_weights()[0] == 1e308


@pytest.mark.parametrize("table", [[1.0, 1e-50, 1.0], [1.0, 1e-40, 1.0],
                                   [2.0 ** 100, 1e-10, 1.0]])
def test_a_batch_of_classes_that_weigh_little_has_the_plain_mean_in_float32(table):
    # float32 logits: [1, 1e-50] gave a batch of class 1 a loss of 0 and a NaN gradient,
    # [1, 1e-40] an infinite one (the weights rounded in float32, the gradient's scale
    # 1 / sum(c_y) above float32's largest); [2**100, 1e-10] put 1e-10 at 3.9e-41 once
    # the table was divided by 2**101. A batch of one class has the plain mean
    logits = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    plain = losses.CrossEntropy()
    for mask, labels in ((None, [1, 1, 1, 1]), ([0, 1, 1, 1], [0, 1, 1, 1])):
        loss = losses.CrossEntropy(weight=table)
        value, grad = loss.forward(logits, labels, mask=mask), loss.backward()
        counted = slice(None) if mask is None else slice(1, None)
        expected = plain.forward(logits[counted], np.full(4, 1)[counted])
        assert value == pytest.approx(expected, rel=1e-6)
        assert grad.dtype == np.float32
        np.testing.assert_allclose(grad[counted], plain.backward(), rtol=1e-6, atol=1e-7)
        assert not grad[:1 if mask else 0].any()
        # weight_total on the table's scale, which every batch shares
        table_scaled = losses.scaled_class_weights(np.array(table))
        assert loss.weight_total == pytest.approx((4 if mask is None else 3) *
                                                  table_scaled[1], rel=1e-15)


def test_class_weights_that_weigh_little_are_used_where_they_do_not_bite():
    # refused on float32 logits, though nothing went wrong: a sum (the loss as small
    # as its weights, in float32), a class the batch does not hold, and a mixed batch
    # (the small class below float32's precision of the mean); the last two to the
    # bit as before (the batch's largest weight is 1: nothing is scaled)
    logits = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    none = losses.CrossEntropy(reduction="none")
    summed = losses.CrossEntropy(weight=[1.0, 1e-40, 1.0], reduction="sum")
    assert summed.forward(logits, np.full(4, 1)) == pytest.approx(
        1e-40 * none.forward(logits.astype(np.float64), np.full(4, 1)).sum(), rel=1e-4)
    assert np.isfinite(summed.backward()).all()
    for table, labels in (([1.0, 1.0, 1e-39], [0, 1, 1, 0]), ([1.0, 1.0, 1e-50], [0, 1, 1, 0]),
                          ([1.0, 1e-40, 1.0], [0, 1, 1, 1])):
        loss = losses.CrossEntropy(weight=table)
        value, grad = loss.forward(logits, labels), loss.backward()
        ones = np.array(table) >= 1
        by_hand = losses.CrossEntropy(weight=np.where(ones, 1.0, 0.0))
        assert value == pytest.approx(by_hand.forward(logits, labels), rel=1e-7)
        np.testing.assert_allclose(grad, by_hand.backward(), rtol=1e-6, atol=1e-30)
        assert loss._shift == 0


def test_a_class_weight_table_too_wide_to_scale_exactly_is_refused():
    # [1e300, 1e-300] divided by 2**997 (its largest below 1): 1e-300 became 0, and a
    # batch of class 1 had a loss of 0, where its mean is the plain mean of its losses
    logits = np.random.default_rng(0).normal(size=(4, 2))
    plain = [losses.CrossEntropy(reduction="none").forward(logits, np.full(4, k)).mean()
             for k in (0, 1)]
    # the widest table always divided exactly (2**1021 between its ends): both ends right
    limit = losses.CrossEntropy(weight=[2.0 ** 1000, 2.0 ** -21])
    for k in (0, 1):
        assert limit.forward(logits, np.full(4, k)) == pytest.approx(plain[k], rel=1e-15)
    assert limit.forward(logits, [0, 1, 1, 1]) == pytest.approx(
        losses.CrossEntropy(reduction="none").forward(logits, [0, 1, 1, 1])[0], rel=1e-15)
    for table, ratio, shift, became in (([1e300, 1e-300], 1993, 997, "0"),
                                        ([1e308, 1e-15], 1073, 1024, "4.94066e-324")):
        loss = losses.CrossEntropy(weight=table)
        with pytest.raises(ValueError, match=(
                rf"CrossEntropy expected weight \(one per class\) whose largest is at most "
                rf"2\*\*1021 \(about 2.2e+307\) times the smallest positive one, received "
                rf"weights from {table[0]:g} down to {table[1]:g} \(a ratio of about "
                rf"2\*\*{ratio}\): the mean divides them by 2\*\*{shift} \(so that its sums "
                rf"cannot overflow\), and weight 1 = {table[1]:g} would become {became}, "
                rf"changing the loss; set the smallest weights to 0 or raise them").replace(
                    "+", r"\+")):
            loss.forward(logits, np.full(4, 1))
        # a sum uses the table as given: nothing is divided, nothing refused
        summed = losses.CrossEntropy(weight=table, reduction="sum")
        assert summed.forward(logits, np.full(4, 1)) == pytest.approx(4 * table[1] * plain[1])
