"""Pooling with padding by bounds (no padded copy) and average pooling's
kernels: against the padded-copy computation they replace, bit for bit,
and kernel against reference."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.kernels import pooling
from kernel_helpers import dtypes

BACKENDS = [(pooling.maxpool_forward, pooling.maxpool_backward),
            (pooling.maxpool_forward_ref, pooling.maxpool_backward_ref)]


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), (a, b)


def _edge_values(rng, shape, dtype, negative, minus_inf):
    """Random values mixed with the type's extremes (the largest, the
    smallest normal and subnormal, signed zeros), all negative on request
    (windows at the border that padding by -inf would tie with nothing)."""
    info = np.finfo(dtype)
    edges = np.array([info.max, info.tiny, info.smallest_subnormal, 0.0, 1.0, 2.0], dtype)
    x = rng.standard_normal(shape).astype(dtype)
    pick = rng.random(shape) < 0.4
    x[pick] = rng.choice(edges, pick.sum())
    x *= rng.choice(np.array([-1, 1], dtype), shape)
    if negative:
        x = -np.abs(x)
    if minus_inf:
        x[rng.random(shape) < 0.3] = -np.inf
    return x


def _padded_copy(forward, backward, x, dy, pool, strides, pads):
    """What MaxPool2D did before: pool a copy padded by -inf, route a
    window whose maximum is -inf to its first real pixel, unpad dx."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-np.inf)
    y, arg = forward(xp, pool, strides)
    first_row = np.maximum(pt - strides[0] * np.arange(y.shape[1]), 0)
    first_col = np.maximum(pl - strides[1] * np.arange(y.shape[2]), 0)
    first = (first_row[:, None] * pool[1] + first_col[None, :])[None, :, :, None]
    stuck = np.isneginf(y)
    arg[stuck] = np.broadcast_to(first, arg.shape)[stuck]
    dxp = backward(dy, arg, xp.shape, pool, strides)
    return y, arg, np.ascontiguousarray(dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]])


geometry = dict(n=st.integers(0, 2), h=st.integers(1, 7), w=st.integers(1, 7),
                c=st.integers(1, 4), pool=st.tuples(st.integers(1, 4), st.integers(1, 4)),
                strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
                pad_draw=st.tuples(*[st.integers(0, 3)] * 4), dtype=dtypes,
                seed=st.integers(0, 2**31))


def _pads(pool, pad_draw, h, w, strides):
    """Pads below the pool, and a geometry with at least one window."""
    (ph, pw), (t, b, le, r) = pool, pad_draw
    pads = ((t % ph, b % ph), (le % pw, r % pw))
    if h + sum(pads[0]) < ph or w + sum(pads[1]) < pw:
        return None
    return pads


@pytest.mark.parametrize("which", [0, 1], ids=["numba", "numpy"])
@given(negative=st.booleans(), minus_inf=st.booleans(), **geometry)
def test_maxpool_padding_by_bounds_equals_the_padded_copy(which, n, h, w, c, pool, strides,
                                                          pad_draw, dtype, seed, negative,
                                                          minus_inf):
    pads = _pads(pool, pad_draw, h, w, strides)
    if pads is None:
        return
    forward, backward = BACKENDS[which]
    rng = np.random.default_rng(seed)
    x = _edge_values(rng, (n, h, w, c), dtype, negative, minus_inf)
    y, arg = forward(x, pool, strides, pads)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = backward(dy, arg, x.shape, pool, strides, pads)
    y_old, arg_old, dx_old = _padded_copy(forward, backward, x, dy, pool, strides, pads)
    _same_bits(y, y_old)
    _same_bits(arg, arg_old)
    _same_bits(dx, dx_old)


@given(**geometry)
def test_avgpool_reference_equals_the_padded_copy_and_the_kernel_agrees(
        n, h, w, c, pool, strides, pad_draw, dtype, seed):
    """The reference sums the real pixels in the order the padded copy does
    (zeros added change no bit), in the accumulator's dtype, so it gives its
    results bit for bit; so does the kernel (the same order)."""
    pads = _pads(pool, pad_draw, h, w, strides)
    if pads is None:
        return
    rng = np.random.default_rng(seed)
    x = _edge_values(rng, (n, h, w, c), dtype, False, False) / 4   # no overflow in the sums
    x[np.abs(x) > 1e30] = 1.0
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    acc = np.float64 if pool[0] * pool[1] > pooling.SHORT_WINDOW else dtype
    counts = pooling.window_counts((h, w), pool, strides, pads, acc)[None, :, :, None]
    y = pooling.avgpool_forward_ref(x, pool, strides, pads)
    total = np.zeros(y.shape, acc)
    for a in range(pool[0]):
        for b in range(pool[1]):
            total += xp[:, a:a + strides[0] * (y.shape[1] - 1) + 1:strides[0],
                        b:b + strides[1] * (y.shape[2] - 1) + 1:strides[1]]
    _same_bits(y, (total / counts).astype(dtype))
    _same_bits(pooling.avgpool_forward(x, pool, strides, pads), y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxp = np.zeros(xp.shape, dtype)
    for a in range(pool[0]):
        for b in range(pool[1]):
            dxp[:, a:a + strides[0] * (y.shape[1] - 1) + 1:strides[0],
                b:b + strides[1] * (y.shape[2] - 1) + 1:strides[1]] += dy / counts.astype(dtype)
    dx = pooling.avgpool_backward_ref(dy, x.shape, pool, strides, pads)
    _same_bits(dx, np.ascontiguousarray(dxp[:, pt:pt + h, pl:pl + w]))
    # the backward adds overlapping shares in another order: a few ulps of
    # the largest term summed (a sum that cancels to near 0 is off by that)
    eps, terms = np.finfo(dtype).eps, pool[0] * pool[1]
    np.testing.assert_allclose(pooling.avgpool_backward(dy, x.shape, pool, strides, pads), dx,
                               rtol=0,
                               atol=4 * terms * eps * float(np.abs(dy).max(initial=1e-300)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool, strides, pads", [((2, 2), (2, 2), ((0, 1), (0, 1))),
                                                 ((3, 3), (1, 1), ((1, 1), (1, 1))),
                                                 ((3, 2), (2, 1), ((0, 0), (0, 0))),
                                                 ((33, 33), (33, 33), ((0, 0), (0, 0)))])
def test_avgpool_parallel_build_matches_reference(dtype, pool, strides, pads):
    """Big enough for the batch to be split over threads; the last case is
    global average pooling (one window, the image). The forward gives the
    reference's bits, the backward to rounding (its own order)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 33, 33, 16)).astype(dtype)
    y = pooling.avgpool_forward(x, pool, strides, pads)
    _same_bits(y, pooling.avgpool_forward_ref(x, pool, strides, pads))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(pooling.avgpool_backward(dy, x.shape, pool, strides, pads),
                               pooling.avgpool_backward_ref(dy, x.shape, pool, strides, pads),
                               **tol)


@pytest.mark.parametrize("forward", [pooling.avgpool_forward, pooling.avgpool_forward_ref],
                         ids=["numba", "numpy"])
@pytest.mark.parametrize("shape, pool, strides", [((2, 512, 512, 3), (512, 512), (512, 512)),
                                                  ((2, 256, 256, 3), (64, 64), (32, 32)),
                                                  ((2, 9, 9, 3), (3, 3), (3, 3))])
def test_avgpool_float32_is_one_rounding_of_the_float64_mean(forward, shape, pool, strides):
    """Values near 100 that differ by 0.01: a float32 sum of a 512x512 image
    came out 1.4 % off (a float32 ulp at 2.6e7 is 2); summed in float64, the
    mean is the float64 mean rounded once (as PyTorch's ``mean``). Windows of
    at most SHORT_WINDOW pixels stay in float32, a few ulps at most."""
    x = (100 + 0.01 * np.random.default_rng(0).random(shape)).astype(np.float32)
    y = forward(x, pool, strides)
    exact = pooling.avgpool_forward_ref(x.astype(np.float64), pool, strides)
    assert y.dtype == np.float32
    assert np.abs(y / exact - 1).max() <= 2 * np.finfo(np.float32).eps


@pytest.mark.parametrize("shape, block", [((2, 7, 7, 300), None), ((1, 40, 40, 1), 7),
                                          ((3, 9, 5, 2), 5), ((2, 12, 12, 8), None)])
def test_global_avgpool_reference_adds_the_pixels_in_order(monkeypatch, shape, block):
    """Global pooling of many channels by the offset loop, of few by blocks
    of cumsum (SUM_BLOCK made small: many blocks, each led by the total so
    far): both the kernel's bits, the pixels added in row-major order from
    +0 in float64 (a sum of -0.0s is +0.0, as the kernel gives)."""
    if block is not None:
        monkeypatch.setattr(pooling, "SUM_BLOCK", block)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * np.exp(8 * rng.standard_normal(shape))).astype(np.float32)
    x[0, :, :, 0] = -0.0
    n, h, w, c = shape
    total = np.zeros((n, 1, 1, c))
    for a in range(h):
        for b in range(w):
            total[:, 0, 0] += x[:, a, b]
    y = pooling.avgpool_forward_ref(x, (h, w), (h, w))
    _same_bits(y, (total / (h * w)).astype(np.float32))
    assert np.signbit(y[0, 0, 0, 0]) == np.False_
    _same_bits(pooling.avgpool_forward(x, (h, w), (h, w)), y)


def test_avgpool_backward_zeroes_what_no_window_covers(monkeypatch):
    """Windows that tile the input fill dx without zeroing it first: the last
    row and column that no window covers must still be zero."""
    x_shape = (3, 7, 9, 4)
    dy = np.random.default_rng(1).standard_normal((3, 3, 3, 4))
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda shape, dtype=float: np.full(shape, 7.0, dtype))
    dx = pooling.avgpool_backward(dy, x_shape, (2, 3), (2, 3))      # covers 6 x 9 of 7 x 9
    monkeypatch.setattr(np, "empty", real_empty)
    assert not dx[:, 6:].any() and dx[:, :6].all()
    _same_bits(dx, pooling.avgpool_backward_ref(dy, x_shape, (2, 3), (2, 3)))


@pytest.mark.parametrize("fn", [pooling.maxpool_forward, pooling.maxpool_forward_ref,
                                pooling.avgpool_forward, pooling.avgpool_forward_ref])
def test_pads_must_be_pairs_below_the_pool(fn):
    x = np.zeros((1, 4, 4, 1), np.float32)
    out = fn(x, (3, 3), (1, 1), ((2, 2), (0, 1)))
    assert (out[0] if isinstance(out, tuple) else out).shape[1:3] == (6, 3)
    for pads in (((3, 0), (0, 0)), ((0, 0), (0, -1)), (0, 0), ((0, 0),), ((0, 0.5), (0, 0)),
                 ((True, 0), (0, 0))):
        with pytest.raises(ValueError, match=r"pooling expected pads as \(\(top, bottom\), "
                                             r"\(left, right\)\), non-negative integers below "
                                             r"the pool \(3, 3\), received"):
            fn(x, (3, 3), (1, 1), pads)


@pytest.mark.parametrize("fn", [pooling.maxpool_backward, pooling.maxpool_backward_ref])
def test_maxpool_backward_refuses_an_arg_that_points_into_the_padding(fn):
    """In [0, ph pw) but in the padding: the kernel would write before dx."""
    x = np.ones((1, 4, 4, 2), np.float32)
    pads = ((1, 1), (1, 1))
    y, arg = pooling.maxpool_forward(x, (3, 3), (2, 2), pads)
    fn(np.ones_like(y), arg, x.shape, (3, 3), (2, 2), pads)
    arg[0, 0, 0, 1] = 0      # the top-left window's corner: padding
    with pytest.raises(ValueError, match=r"max pooling backward expected arg .* to point at "
                                         r"real pixels, received some that point into the "
                                         r"padding"):
        fn(np.ones_like(y), arg, x.shape, (3, 3), (2, 2), pads)


@pytest.mark.parametrize("fn", [pooling.avgpool_backward, pooling.avgpool_backward_ref])
def test_avgpool_backward_checks_its_arguments(fn):
    with pytest.raises(ValueError, match=r"average pooling backward expected dy of shape "
                                         r"\(1, 2, 2, 1\) \(the output for input \(1, 4, 4, "
                                         r"1\)\), received \(1, 2, 3, 1\)"):
        fn(np.ones((1, 2, 3, 1)), (1, 4, 4, 1), (2, 2), (2, 2))
    with pytest.raises(TypeError, match="average pooling backward expected dy of dtype "
                                        "float32 or float64, received int64"):
        fn(np.ones((1, 2, 2, 1), np.int64), (1, 4, 4, 1), (2, 2), (2, 2))
    with pytest.raises(ValueError, match=r"average pooling backward.*strides.*positive"):
        fn(np.ones((1, 2, 2, 1)), (1, 4, 4, 1), (2, 2), (0, 2))


PAIRS = {"maxpool_forward": (pooling.maxpool_forward, pooling.maxpool_forward_ref),
         "maxpool_backward": (pooling.maxpool_backward, pooling.maxpool_backward_ref),
         "avgpool_forward": (pooling.avgpool_forward, pooling.avgpool_forward_ref),
         "avgpool_backward": (pooling.avgpool_backward, pooling.avgpool_backward_ref)}


def _pooling_calls():
    """Each operation's arguments as the layers give them and in other forms
    the checks accept (lists for arrays, arrays for pairs and shapes)."""
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 3))
    pool, strides, pads = (3, 3), (2, 2), ((1, 1), (2, 0))
    y, arg = pooling.maxpool_forward_ref(x, pool, strides, pads)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    odd = (np.array(pool), list(strides), np.array(pads))
    return {"maxpool_forward": ((x, pool, strides, pads), (x.tolist(), *odd)),
            "maxpool_backward": ((dy, arg, x.shape, pool, strides, pads),
                                 (dy.tolist(), arg.tolist(), np.array(x.shape), *odd)),
            "avgpool_forward": ((x, pool, strides, pads), (x.tolist(), *odd)),
            "avgpool_backward": ((dy, x.shape, pool, strides, pads),
                                 (dy.tolist(), list(x.shape), *odd))}


@pytest.mark.parametrize("op", sorted(PAIRS))
def test_kernel_and_reference_take_the_arguments_as_checked(op):
    # the references took the raw arguments: pads as an array failed in
    # `pads == NO_PADS`, a dy given as a list had no .shape
    canonical, odd = _pooling_calls()[op]
    for fn in PAIRS[op]:
        want, got = fn(*canonical), fn(*odd)
        for a, b in zip(*((w,) if not isinstance(w, tuple) else w for w in (want, got))):
            _same_bits(a, b)



def _last_nan_or_first_max(window):
    """Independent rule for one window (row-major values): the position of
    its last NaN if it holds one, else of its first maximum (PyTorch 2.13)."""
    nans = [k for k, v in enumerate(window) if v != v]
    return nans[-1] if nans else int(np.argmax(window))


@pytest.mark.parametrize("which", [0, 1], ids=["numba", "numpy"])
@pytest.mark.parametrize("pads", [pooling.NO_PADS, ((1, 1), (1, 1))], ids=["valid", "padded"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool_routes_a_window_to_its_last_nan_as_torch(which, pads, dtype):
    """A window with NaNs gives NaN and routes its gradient to its *last* NaN,
    as PyTorch's max_pool2d (val > best or isnan(val)); the kernel and the
    reference took the first (NumPy's argmax). Without NaN, the first maximum."""
    forward, backward = BACKENDS[which]
    nan = np.nan
    x = np.array([[1, nan, 3, nan],
                  [nan, 2, 5, 5],
                  [0, 1, nan, 7],
                  [4, 4, 1, nan]], dtype)[None, :, :, None]
    pool, strides = (2, 2), (2, 2) if pads == pooling.NO_PADS else (1, 1)
    y, arg = forward(x, pool, strides, pads)
    xp = np.pad(x[0, :, :, 0], pads, constant_values=-np.inf)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            window = xp[i * strides[0]:i * strides[0] + 2, j * strides[1]:j * strides[1] + 2]
            k = _last_nan_or_first_max(list(window.ravel()))
            if not np.isneginf(window).all():  # (all -inf windows: the first real pixel)
                assert arg[0, i, j, 0] == k, (i, j, window)
            assert y[0, i, j, 0] == window.ravel()[k] or np.isnan(y[0, i, j, 0])
            assert np.isnan(y[0, i, j, 0]) == np.isnan(window).any()
    dy = np.ones(y.shape, dtype)
    dx = backward(dy, arg, x.shape, pool, strides, pads)
    if pads == pooling.NO_PADS:
        expected = [[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    else:  # torch's x.grad for max_pool2d(x, 2, 1, padding=1) and ones
        expected = [[1, 3, 0, 4], [4, 0, 0, 0], [0, 0, 3, 1], [4, 1, 0, 4]]
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 9),
       pool=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 2**31),
       dtype=dtypes)
def test_maxpool_kernel_and_reference_agree_on_windows_with_nans(n, h, w, c, pool, seed,
                                                                 dtype):
    if pool[0] > h or pool[1] > w:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (n, h, w, c)).astype(dtype)  # ties too
    x[rng.random(x.shape) < 0.3] = np.nan
    for pads in (pooling.NO_PADS, ((pool[0] - 1, 0), (0, pool[1] - 1))):
        y, arg = pooling.maxpool_forward(x, pool, (1, 1), pads)
        y_ref, arg_ref = pooling.maxpool_forward_ref(x, pool, (1, 1), pads)
        _same_bits(y, y_ref)
        _same_bits(arg, arg_ref)
