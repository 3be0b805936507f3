"""Softmax cross-entropy, dropout and normalization kernels against their references."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.kernels import dropout, losses, norms
from kernel_helpers import array, dims, dtypes, layouts, needs_numba, tol

pytestmark = needs_numba


@given(m=dims, c=st.integers(1, 12), dtype=dtypes, smoothing=st.sampled_from([0.0, 0.1, 1.0]),
       scale=st.floats(0.01, 10), seed=st.integers(0, 2**31))
def test_softmax_cross_entropy_matches_reference(m, c, dtype, smoothing, scale, seed):
    rng = np.random.default_rng(seed)
    z = array(rng, (m, c), dtype, scale=5.0)
    labels = rng.integers(0, c, m)
    loss, grad = losses.softmax_cross_entropy(z, labels, smoothing, scale)
    loss_ref, grad_ref = losses.softmax_cross_entropy_ref(z, labels, smoothing, scale)
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5)
    np.testing.assert_allclose(grad, grad_ref, **tol(dtype, c))


@pytest.mark.parametrize("fn", ["", "_ref"])
@pytest.mark.parametrize("big", [1e4, 1e6, 1e7])
def test_softmax_cross_entropy_of_large_float32_logits_is_formed_in_float64(fn, big):
    """log(1 + e^-1) = 0.3132617 whatever the offset: the reference rounded
    m + log(s) in float32 (0.3125 at 1e6, 0.0 at 1e7), the kernel did not."""
    z = np.array([[big, big - 1]], np.float32)  # both exact in float32
    loss, grad = getattr(losses, "softmax_cross_entropy" + fn)(z, np.array([0]))
    np.testing.assert_allclose(loss, np.log1p(np.exp(-1.0)), rtol=1e-7)
    np.testing.assert_allclose(grad, [[-1 / (1 + np.e), 1 / (1 + np.e)]], rtol=1e-6)


def test_softmax_cross_entropy_is_stable_and_independent():
    """Huge logits stay finite; value agrees with a direct float64 computation."""
    z = np.array([[1e4, -1e4, 0.0], [3.0, 1.0, -2.0]], np.float32)
    labels = np.array([1, 0])
    loss, grad = losses.softmax_cross_entropy(z, labels, 0.0, 0.5)
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    np.testing.assert_allclose(loss, 2e4 + -np.log(p[1, 0]), rtol=1e-6)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)


@given(shape=st.tuples(dims, dims), dtype=dtypes, rate=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       layout=layouts, seed=st.integers(0, 2**31))
def test_dropout_matches_reference(shape, dtype, rate, layout, seed):
    rng = np.random.default_rng(seed)
    x = array(rng, shape, dtype, layout)
    u = rng.random(shape, dtype=np.float32)
    y, mask = dropout.dropout_forward(x, u, rate)
    y_ref, mask_ref = dropout.dropout_forward_ref(x, u, rate)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)
    dy = array(rng, shape, dtype)
    np.testing.assert_array_equal(dropout.dropout_backward(dy, mask),
                                  dropout.dropout_backward_ref(dy, mask))


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value")
@given(m=st.sampled_from([0, 1, 2, 5, 33, 300]), n=dims, dtype=dtypes, seed=st.integers(0, 2**31),
       which=st.sampled_from(["batchnorm", "layernorm"]), layout=layouts)
def test_norms_match_reference(m, n, dtype, seed, which, layout):
    rng = np.random.default_rng(seed)
    x = array(rng, (m, n), dtype, layout, scale=3.0)
    x += 1  # in place, so the layout stays
    gamma, beta = array(rng, (n,), dtype, layout), array(rng, (n,), dtype, layout)
    fwd, fwd_ref = getattr(norms, f"{which}_forward"), getattr(norms, f"{which}_forward_ref")
    bwd, bwd_ref = getattr(norms, f"{which}_backward"), getattr(norms, f"{which}_backward_ref")
    out, out_ref = fwd(x, gamma, beta, 1e-3), fwd_ref(x, gamma, beta, 1e-3)
    loose = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    for a, b in zip(out, out_ref):
        np.testing.assert_allclose(a, b, **loose)
    dy = array(rng, (m, n), dtype)
    grads = [np.zeros(n, dtype) for _ in range(4)]
    dx = bwd(dy, out_ref[1], out_ref[2], gamma, grads[0], grads[1])
    dx_ref = bwd_ref(dy, out_ref[1], out_ref[2], gamma, grads[2], grads[3])
    np.testing.assert_allclose(dx, dx_ref, **loose)
    np.testing.assert_allclose(grads[0], grads[2], **loose)
    np.testing.assert_allclose(grads[1], grads[3], **loose)


@pytest.mark.parametrize("which, x, expected", [
    # a feature whose float32 squares overflow: squared in float64, x_hat is the
    # float64 one (with float32 squares the variance was inf and x_hat 0; before
    # that, the kernel's fast-math rsqrt of inf gave NaN for every row)
    ("batchnorm", [[3e38], [0.5], [-1.0], [0.2], [1.0]], [[2.0], [-0.5], [-0.5], [-0.5], [-0.5]]),
    # a row whose float32 sum overflows: the reference gave NaN, the kernel (float64) did not
    ("layernorm", [[3e38, 1e38, 2e38]], [[1.2247449, -1.2247449, 0.0]]),
])
@pytest.mark.parametrize("fn", ["", "_ref"])
@pytest.mark.filterwarnings("ignore:overflow")  # the variance (1.4e76), cast to float32
def test_norms_of_huge_float32_values_stay_finite(which, x, expected, fn):
    """Both backends sum in float64, as documented, and agree."""
    x = np.array(x, np.float32)
    n = x.shape[1]
    forward = getattr(norms, f"{which}_forward{fn}")
    y, x_hat = forward(x, np.ones(n, np.float32), np.zeros(n, np.float32), 1e-5)[:2]
    np.testing.assert_allclose(x_hat, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y, x_hat)


def test_parallel_paths_match_references():
    """Sizes above the thresholds where the kernels split work over threads."""
    from tinynet.kernels import activations as act
    from tinynet.kernels import dense
    rng = np.random.default_rng(7)
    z = rng.standard_normal((1100, 256))
    dy = rng.standard_normal((1100, 256))
    for code in (act.RELU, act.GELU, act.TANH):
        y = act.act_forward(z, code)
        np.testing.assert_allclose(y, act.act_forward_ref(z, code), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(act.act_backward(dy, y, z, code),
                                   act.act_backward_ref(dy, y, z, code), rtol=1e-12, atol=1e-12)
    db, db_ref = np.zeros(256), np.zeros(256)
    g = dense.act_grad_bias(dy, z, None, act.RELU, 0.0, None, db)
    g_ref = dense.act_grad_bias_ref(dy, z, None, act.RELU, 0.0, None, db_ref)
    np.testing.assert_allclose(g, g_ref)
    np.testing.assert_allclose(db, db_ref, rtol=1e-12, atol=1e-10)
    w = rng.standard_normal((256, 300))
    np.testing.assert_allclose(dense.dense_forward(z, w, None, act.RELU),
                               dense.dense_forward_ref(z, w, None, act.RELU), rtol=1e-11,
                               atol=1e-11)
    labels = rng.integers(0, 10, 7000)
    logits = rng.standard_normal((7000, 10))
    loss, grad = losses.softmax_cross_entropy(logits, labels, 0.1, 1 / 7000)
    loss_ref, grad_ref = losses.softmax_cross_entropy_ref(logits, labels, 0.1, 1 / 7000)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-10, atol=1e-15)
    u = rng.random(z.shape, dtype=np.float32)
    for a, b in zip(dropout.dropout_forward(z, u, 0.3), dropout.dropout_forward_ref(z, u, 0.3)):
        np.testing.assert_array_equal(a, b)
    gamma, beta = rng.standard_normal(256), rng.standard_normal(256)
    for which in ("batchnorm", "layernorm"):
        out = getattr(norms, f"{which}_forward")(z, gamma, beta, 1e-3)
        ref = getattr(norms, f"{which}_forward_ref")(z, gamma, beta, 1e-3)
        for a, b in zip(out, ref):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
        grads = [np.zeros(256) for _ in range(4)]
        dx = getattr(norms, f"{which}_backward")(dy, ref[1], ref[2], gamma, *grads[:2])
        dx_ref = getattr(norms, f"{which}_backward_ref")(dy, ref[1], ref[2], gamma, *grads[2:])
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(grads[0], grads[2], rtol=1e-9, atol=1e-9)


@given(n=st.integers(0, 3), h=st.integers(2, 9), w=st.integers(2, 9), c=st.integers(1, 5),
       pool=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)), dtype=dtypes,
       ties=st.booleans(), nans=st.booleans(), seed=st.integers(0, 2**31))
def test_maxpool_matches_reference(n, h, w, c, pool, strides, dtype, ties, nans, seed):
    """Same maxima, same argmax (first maximum, NaN wins) and the same routed
    gradient, overlapping windows included; ties and NaNs drawn on purpose."""
    from tinynet.kernels import pooling
    if pool[0] > h or pool[1] > w:
        return
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, (n, h, w, c)) if ties else rng.standard_normal((n, h, w, c)))
    x = x.astype(dtype)
    if nans and x.size:
        x.reshape(-1)[rng.integers(0, x.size, 1 + x.size // 7)] = np.nan
    y, arg = pooling.maxpool_forward(x, pool, strides)
    y_ref, arg_ref = pooling.maxpool_forward_ref(x, pool, strides)
    assert y.dtype == dtype and arg.dtype == np.int32
    np.testing.assert_array_equal(arg, arg_ref)
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = pooling.maxpool_backward(dy, arg, x.shape, pool, strides)
    np.testing.assert_allclose(dx, pooling.maxpool_backward_ref(dy, arg, x.shape, pool, strides),
                               rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-6)


def test_maxpool_refuses_a_pool_bigger_than_the_image():
    from tinynet.kernels import pooling
    x = np.zeros((1, 2, 5, 1), np.float32)
    for fn in (pooling.maxpool_forward, pooling.maxpool_forward_ref):
        with pytest.raises(ValueError, match="3x3 pool does not fit an input of 2x5"):
            fn(x, (3, 3), (1, 1))
        with pytest.raises(ValueError, match=r"\(batch, height, width, channels\).*\(2, 5\)"):
            fn(x[0, :, :, 0], (1, 1), (1, 1))
    y, arg = pooling.maxpool_forward(x, (2, 2), (2, 2))                   # 1x1x2x1
    for fn in (pooling.maxpool_backward, pooling.maxpool_backward_ref):
        with pytest.raises(ValueError, match=r"dy and arg of shape \(1, 1, 2, 1\).*"
                                             r"received \(1, 1, 3, 1\)"):
            fn(np.zeros((1, 1, 3, 1), np.float32), arg, x.shape, (2, 2), (2, 2))


def test_maxpool_parallel_build_matches_reference():
    """Big enough for the batch to be split across threads; windows that tile
    the image (one write per input) and ones that leave a last row and column."""
    from tinynet.kernels import pooling
    for side in (32, 33):
        x = np.random.default_rng(side).standard_normal((8, side, side, 16)).astype(np.float32)
        y, arg = pooling.maxpool_forward(x, (2, 2), (2, 2))
        np.testing.assert_array_equal(y, pooling.maxpool_forward_ref(x, (2, 2), (2, 2))[0])
        dy = np.ones_like(y)
        dx = pooling.maxpool_backward(dy, arg, x.shape, (2, 2), (2, 2))
        assert dx.sum() == y.size and set(np.unique(dx)) == {0.0, 1.0}
        np.testing.assert_array_equal(dx, pooling.maxpool_backward_ref(dy, arg, x.shape,
                                                                       (2, 2), (2, 2)))


@given(n=st.integers(0, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)), dtype=dtypes,
       seed=st.integers(0, 2**31))
def test_col2im_matches_reference(n, h, w, c, kernel, strides, dtype, seed):
    """Overlapping (stride < kernel), touching and gapped windows alike."""
    from tinynet.kernels import im2col
    if kernel[0] > h or kernel[1] > w:
        return
    ho, wo = (h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1
    rng = np.random.default_rng(seed)
    dcols = rng.standard_normal((n * ho * wo, kernel[0] * kernel[1] * c)).astype(dtype)
    dxp = im2col.col2im(dcols, (n, h, w, c), kernel, strides)
    assert dxp.dtype == dtype and dxp.shape == (n, h, w, c)
    np.testing.assert_allclose(dxp, im2col.col2im_ref(dcols, (n, h, w, c), kernel, strides),
                               rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-5)


@given(n=st.integers(0, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 7),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)), dtype=dtypes,
       seed=st.integers(0, 2**31))
def test_im2col_is_the_window_view_as_a_matrix_in_either_order(n, h, w, c, kernel, strides,
                                                                dtype, seed):
    """Row (n, i, j), column (a, b, d), bit for bit: column-major up to
    FEW_CHANNELS channels, row-major above (either side of the switch drawn)."""
    from tinynet.kernels import im2col
    if kernel[0] > h or kernel[1] > w:
        return
    ho, wo = (h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype)
    cols = im2col.im2col(x, kernel, strides)
    expected = np.ascontiguousarray(im2col.windows(x, kernel, strides)).reshape(
        n * ho * wo, kernel[0] * kernel[1] * c)
    assert cols.dtype == dtype and cols.shape == expected.shape
    np.testing.assert_array_equal(cols, expected)
    if c <= im2col.FEW_CHANNELS:
        assert cols.flags.f_contiguous
    else:
        assert cols.flags.c_contiguous


@given(n=st.integers(0, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 6),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       strides=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)), dtype=dtypes,
       seed=st.integers(0, 2**31))
def test_dilated_im2col_and_col2im_by_their_definitions(n, h, w, c, kernel, strides, dilation,
                                                        dtype, seed):
    """With dilation (r_h, r_w): cols[(n, i, j), (a, b, d)] = x[n, i s_h + a r_h,
    j s_w + b r_w, d] (checked entry by entry, in either order), and col2im,
    kernel and reference, is its adjoint: <im2col(x), D> == <x, col2im(D)>."""
    from tinynet.kernels import im2col
    (kh, kw), (sh, sw), (rh, rw) = kernel, strides, dilation
    eh, ew = rh * (kh - 1) + 1, rw * (kw - 1) + 1
    if eh > h or ew > w:
        return
    ho, wo = (h - eh) // sh + 1, (w - ew) // sw + 1
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    cols = im2col.im2col(x, kernel, strides, dilation=dilation)
    expected = np.empty((n, ho, wo, kh, kw, c), dtype)
    for i in range(ho):
        for j in range(wo):
            for a in range(kh):
                for b in range(kw):
                    expected[:, i, j, a, b] = x[:, i * sh + a * rh, j * sw + b * rw]
    np.testing.assert_array_equal(cols, expected.reshape(cols.shape))
    d = rng.standard_normal(cols.shape).astype(dtype)
    dxp = im2col.col2im(d, x.shape, kernel, strides, dilation)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dxp, im2col.col2im_ref(d, x.shape, kernel, strides, dilation),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(np.sum(cols.astype(float) * d), np.sum(x.astype(float) * dxp),
                               rtol=tol, atol=tol)


def test_col2im_is_the_adjoint_of_im2col_and_refuses_wrong_shapes():
    """<im2col(x), D> == <x, col2im(D)>, on the batch split across threads."""
    from tinynet.kernels import im2col
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 15, 15, 32))
    cols = np.ascontiguousarray(im2col.windows(x, (3, 3), (2, 2))).reshape(8 * 7 * 7, -1)
    d = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.sum(cols * d), np.sum(x * im2col.col2im(d, x.shape, (3, 3),
                                                                          (2, 2))), rtol=1e-12)
    for fn in (im2col.col2im, im2col.col2im_ref):
        with pytest.raises(ValueError, match=r"dcols of shape \(392, 288\).*\(392, 287\)"):
            fn(d[:, 1:], x.shape, (3, 3), (2, 2))
        with pytest.raises(ValueError, match="room for a 3x3 kernel"):
            fn(d, (8, 2, 15, 32), (3, 3), (2, 2))


def test_maxpool_backward_zeroes_what_no_window_covers(monkeypatch):
    """Non-overlapping windows on an odd-sized input leave a last row and
    column that get no gradient: they must be zero even when the buffer the
    tiled kernel fills starts out as garbage."""
    from tinynet.kernels import pooling
    x = np.random.default_rng(0).standard_normal((3, 7, 9, 4))
    y, arg = pooling.maxpool_forward(x, (2, 3), (2, 3))       # covers 6 x 9 of 7 x 9
    dy = np.random.default_rng(1).standard_normal(y.shape)
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda shape, dtype=float: np.full(shape, 7.0, dtype))
    dx = pooling.maxpool_backward(dy, arg, x.shape, (2, 3), (2, 3))
    monkeypatch.setattr(np, "empty", real_empty)
    assert not dx[:, 6:].any()
    np.testing.assert_array_equal(dx, pooling.maxpool_backward_ref(dy, arg, x.shape,
                                                                   (2, 3), (2, 3)))


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_over_rows_give_the_same_bits_on_one_thread_or_two(monkeypatch, dtype):
    """The bias gradient, the cross-entropy's loss and LayerNorm's dgamma/dbeta
    sum per block of rows, not per thread: one thread and two agree to the
    bit (training would otherwise depend on the adaptive thread check)."""
    from tinynet import kernels as tk
    from tinynet.kernels import config, dense, losses, norms
    if config.numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", False)
    monkeypatch.setitem(config._pool_state, "brief", True)   # kernels parallel beside BLAS
    rng = np.random.default_rng(0)
    g = rng.standard_normal((1003, 300)).astype(dtype)
    z = rng.standard_normal((1003, 100)).astype(dtype)
    labels = rng.integers(0, 100, 1003)
    x_hat = rng.standard_normal(g.shape).astype(dtype)
    inv_std = rng.random(1003).astype(dtype)
    gamma = rng.standard_normal(300).astype(dtype)
    results = []
    before = tk.set_num_threads(1)
    try:
        for n in (1, 2):
            tk.set_num_threads(n)
            assert config.num_threads() == n
            db = np.zeros(300, dtype)
            dense.bias_grad(g, db)
            loss, _ = losses.softmax_cross_entropy(z, labels, scale=1 / 1003)
            dgamma, dbeta = np.zeros(300, dtype), np.zeros(300, dtype)
            norms.layernorm_backward(g, x_hat, inv_std, gamma, dgamma, dbeta)
            results.append((db, np.array(loss), dgamma, dbeta))
    finally:
        tk.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(results[0][0], g.sum(axis=0), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("fn", ["batchnorm_forward", "batchnorm_forward_ref",
                                "layernorm_forward", "layernorm_forward_ref"])
def test_norms_refuse_an_eps_their_dtype_rounds_to_zero(fn):
    """float32(1e-50) is 0: the kernels gave NaN for a constant feature (row),
    the references 0; both refuse it, and take it in float64."""
    forward = getattr(norms, fn)
    x = np.ones((3, 2), np.float32)
    gamma, beta = np.ones(2, np.float32), np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=f"{fn.removesuffix('_ref')} expected eps that float32 "
                                         f"can hold"):
        forward(x, gamma, beta, 1e-50)
    y = forward(x.astype(np.float64), gamma.astype(np.float64), beta.astype(np.float64), 1e-50)[0]
    np.testing.assert_array_equal(y, 0)
