"""Gradient clipping against torch.nn.utils and by hand."""

import warnings

import numpy as np
import pytest

import tinynet as tn
from tinynet.optim import clip_grad_norm, clip_grad_value


def params_with_grads(rng, scale, dtype=np.float64):
    params = [tn.Param(np.zeros(s, dtype)) for s in [(3, 4), (5,), (1,)]]
    for p in params:
        p.grad = scale * rng.standard_normal(p.shape)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, np.inf])
@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_grad_norm_matches_torch(norm_type, scale):
    torch = pytest.importorskip("torch")
    params = params_with_grads(np.random.default_rng(1), scale)
    tparams = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in params]
    for p, tp in zip(params, tparams):
        tp.grad = torch.tensor(p.grad.copy())
    total = clip_grad_norm(params, 1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=norm_type).item()
    assert total == pytest.approx(expected, rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=0)


def test_clip_grad_norm_by_hand_and_small_norms_untouched():
    p = tn.Param(np.zeros(2))
    p.grad = np.array([3.0, 4.0])  # norm 5
    assert clip_grad_norm([p], 1.0) == 5.0
    np.testing.assert_allclose(p.grad, [0.6, 0.8], rtol=1e-6)
    before = p.grad.copy()
    assert clip_grad_norm(p, 10.0) == pytest.approx(1.0, rel=1e-6)
    assert p.grad.tobytes() == before.tobytes()


def test_clip_keeps_dtype_and_views():
    params = params_with_grads(np.random.default_rng(2), 100.0, np.float32)
    _, grads = tn.param.flatten_params(params)
    clip_grad_norm(params, 1.0)
    assert grads.dtype == np.float32
    assert np.linalg.norm(grads.astype(np.float64)) == pytest.approx(1.0, rel=1e-5)


def test_nonfinite_norm():
    p = tn.Param(np.zeros(2))
    p.grad = np.array([np.inf, 1.0])
    with pytest.raises(ValueError, match="total norm"):
        clip_grad_norm([p], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm([p], 1.0) == np.inf
    assert np.isnan(p.grad).any()


HUGE_FLOAT32 = {  # finite float32 gradients whose norm overflows float32 on the way
    "sum of squares": [np.array([3e19, 4e19], np.float32)],
    "two of 2e38": [np.array([2e38], np.float32), np.array([2e38], np.float32)],
    "with small ones": [np.array([1e20, 1.0], np.float32), np.array([[2.0, 3.0]], np.float32)],
}


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, np.inf])
@pytest.mark.parametrize("case", sorted(HUGE_FLOAT32))
def test_huge_finite_float32_gradients_clip_as_torch_without_a_warning(case, norm_type):
    """NumPy's overflow RuntimeWarning came through (in dot, power or reduce)
    for float32 gradients whose norm overflows float32. PyTorch 2.13 takes the
    norm in float32 too and gets inf, so the gradients are scaled by
    max_norm / inf = 0: the same here, silently. error_if_nonfinite raises
    where the total is inf."""
    grads = HUGE_FLOAT32[case]
    params = [tn.Param(np.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total = clip_grad_norm(params, 1.0, norm_type=norm_type)
    finite = norm_type == np.inf or (norm_type == 1.0 and case != "two of 2e38")
    assert np.isfinite(total) == finite
    if not finite:
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad, 0)
            p.grad = g.copy()
        with pytest.raises(ValueError, match="total norm"):
            clip_grad_norm(params, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    torch = pytest.importorskip("torch")
    tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g.copy())
    expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=norm_type).item()
    assert total == expected or np.isinf(total) and np.isinf(expected)
    if finite:
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=2e-7, atol=0)
    else:
        for tp in tparams:
            np.testing.assert_array_equal(tp.grad.numpy(), 0)



# two equal gradients whose norms of order p are each finite in the dtype
# while the total, 2**(1/p) times as large, or its p-th power on the way,
# is not: order 1 from 2e38 (float32's largest is 3.4e38), order 2 from
# 1.5e19 (squares 2.25e38) and order 3 from 6e12 (cubes 2.16e38); float64
# from 1e154 at order 2 (squares 1e308, float64's largest 1.8e308)
TOTAL_OVERFLOWS = [(np.float32, 1.0, 2e38), (np.float32, 2.0, 1.5e19),
                   (np.float32, 3.0, 6e12), (np.float64, 2.0, 1e154)]


def _two_params(dtype, value):
    params = [tn.Param(np.zeros(1, dtype)) for _ in range(2)]
    for p in params:
        p.grad = np.array([value], dtype)
    return params


@pytest.mark.parametrize("dtype, norm_type, value", TOTAL_OVERFLOWS)
def test_total_norm_overflows_in_the_dtype_as_torch(dtype, norm_type, value):
    """The per-gradient norms were combined in float64 and only the total
    rounded to float32: two float32 gradients of 1.5e19 at order 2 gave the
    total 2.12e19 and were scaled to 0.707, 6e12 at order 3 likewise, where
    PyTorch 2.13 stacks the per-gradient norms and takes their norm in
    float32 too, gets inf and zeroes the gradients. Each norm is finite
    here and the total inf in the gradients' dtype, as in PyTorch, without
    a warning; error_if_nonfinite raises."""
    params = _two_params(dtype, value)
    for p in params:
        assert np.isfinite(np.linalg.norm(p.grad, ord=norm_type))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total = clip_grad_norm(params, 1.0, norm_type=norm_type)
    assert total == np.inf
    for p in params:
        np.testing.assert_array_equal(p.grad, 0)
    with pytest.raises(ValueError, match="total norm"):
        clip_grad_norm(_two_params(dtype, value), 1.0, norm_type=norm_type,
                       error_if_nonfinite=True)
    torch = pytest.importorskip("torch")
    tparams = [torch.zeros(1, dtype=getattr(torch, dtype.__name__), requires_grad=True)
               for _ in range(2)]
    for tp in tparams:
        tp.grad = torch.tensor([value], dtype=tp.dtype)
        assert torch.linalg.vector_norm(tp.grad, norm_type).isfinite()
    assert torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=norm_type).item() == total
    for tp in tparams:
        np.testing.assert_array_equal(tp.grad.numpy(), 0)


def test_float64_gradients_beyond_float32_keep_a_finite_total_as_torch():
    """In float64 the gradients that overflow float32's total (1.5e19 at
    order 2) have the finite total 1.5e19 * sqrt(2) and are scaled by it,
    as PyTorch 2.13 does for float64 gradients."""
    params = _two_params(np.float64, 1.5e19)
    total = clip_grad_norm(params, 1.0)
    np.testing.assert_allclose(total, 1.5e19 * np.sqrt(2.0), rtol=1e-15)
    torch = pytest.importorskip("torch")
    tparams = [torch.zeros(1, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    for tp in tparams:
        tp.grad = torch.tensor([1.5e19], dtype=torch.float64)
    assert torch.nn.utils.clip_grad_norm_(tparams, 1.0).item() == total
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-15, atol=0)


def test_clip_grad_value():
    p = tn.Param(np.zeros(3))
    p.grad = np.array([-5.0, 0.5, 2.0])
    clip_grad_value([p], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, 0.5, 1.0])


@pytest.mark.parametrize("call, message", [
    (lambda: clip_grad_norm([], 0.0), r"max_norm in \(0, inf\], received 0.0"),
    (lambda: clip_grad_norm([], "1"), "max_norm as a real number"),  # was a ValueError
    (lambda: clip_grad_norm([], float("nan")), "max_norm in"),
    (lambda: clip_grad_norm([], 1.0, norm_type=-2), "norm_type"),
    (lambda: clip_grad_norm([np.zeros(2)], 1.0), "Param objects"),
    (lambda: clip_grad_value([], -1.0), "clip_value"),
])
def test_bad_input(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_a_frozen_layer_neither_counts_nor_is_clipped_as_in_torch():
    # tinynet still fills a frozen parameter's gradient (backprop passes
    # through the layer); torch leaves .grad None for requires_grad=False, and
    # clip_grad_norm_(model.parameters()) then skips it. A frozen backbone's
    # gradient must not shrink the head's.
    torch = pytest.importorskip("torch")
    model = tn.Sequential([tn.layers.Dense(3, input_shape=(4,)), tn.layers.Dense(2)])
    frozen, head = model.layers[0].parameters(), model.layers[1].parameters()
    model.layers[0].trainable = False
    rng = np.random.default_rng(2)
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape) * (100.0 if p in frozen else 1.0)
    stale = [p.grad.copy() for p in frozen]
    tparams = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=p.trainable)
               for p in model.parameters()]
    for p, tp in zip(model.parameters(), tparams):
        if p.trainable:
            tp.grad = torch.tensor(p.grad.astype(np.float64))
    for norm_type in (2.0, np.inf):
        total = clip_grad_norm(model, 1.0, norm_type=norm_type)
        expected = torch.nn.utils.clip_grad_norm_(tparams, 1.0, norm_type=norm_type).item()
        assert total == pytest.approx(expected, rel=1e-6)
    clip_grad_value(model, 0.1)
    torch.nn.utils.clip_grad_value_(tparams, 0.1)
    for p, tp in zip(head, tparams[len(frozen):]):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-6)
    for p, before in zip(frozen, stale):
        np.testing.assert_array_equal(p.grad, before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_norm_clipping_is_bit_exact_with_torch(dtype):
    # The inf-norm is a maximum, free of summation order, so nothing but the
    # coefficient's arithmetic can differ: torch computes it in the gradients'
    # dtype, max_norm / (total + 1e-6).
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for _ in range(20):
        params = params_with_grads(rng, 10.0)
        for p in params:
            p.value, p.grad = p.value.astype(dtype), p.grad.astype(dtype)
        tparams = [torch.zeros(p.shape, dtype=torch.from_numpy(p.grad).dtype, requires_grad=True)
                   for p in params]
        for p, tp in zip(params, tparams):
            tp.grad = torch.tensor(p.grad.copy())
        max_norm = float(rng.uniform(0.1, 3.0))
        clip_grad_norm(params, max_norm, norm_type=np.inf)
        torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=np.inf)
        for p, tp in zip(params, tparams):
            np.testing.assert_array_equal(p.grad, tp.grad.numpy())
