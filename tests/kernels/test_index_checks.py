"""The public kernels that index arrays with values they are given (max
pooling's ``arg``, col2im's geometry, the cross-entropy's labels) refuse a
bad one instead of reading or writing past an array; the layers and losses
call the ``.trusted`` builds, which do not check again."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.kernels import dispatch, im2col, losses, pooling

MAXPOOL_BACKWARD = (pooling.maxpool_backward, pooling.maxpool_backward_ref)
COL2IM = (im2col.col2im, im2col.col2im_ref)
SOFTMAX_CE = (losses.softmax_cross_entropy, losses.softmax_cross_entropy_ref)


def _pooled(pool=(2, 2), strides=(2, 2)):
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 3)).astype(np.float32)
    y, arg = pooling.maxpool_forward(x, pool, strides)
    return x, np.ones_like(y), arg


@pytest.mark.parametrize("fn", MAXPOOL_BACKWARD)
@pytest.mark.parametrize("strides", [(2, 2), (1, 1)])  # the tiled kernel, the scatter one
def test_maxpool_backward_refuses_an_arg_outside_the_window(fn, strides):
    x, dy, arg = _pooled(strides=strides)
    for bad_value, low, high in ((4, 0, 4), (-1, -1, 3), (1 << 20, 0, 1 << 20)):
        bad = arg.copy()
        bad[1, 0, 1, 2] = bad_value
        with pytest.raises(ValueError, match=r"max pooling backward expected arg \(indices "
                                             r"into 2x2 windows\) in \[0, 4\), received values "
                                             rf"in \[{low}, {high}\]"):
            fn(dy, bad, x.shape, (2, 2), strides)
    for dtype in (np.float32, np.bool_):
        with pytest.raises(TypeError, match=f"arg .* as integers, received dtype "
                                            f"{np.dtype(dtype)}"):
            fn(dy, arg.astype(dtype), x.shape, (2, 2), strides)
    with pytest.raises(TypeError, match="dy of dtype float32 or float64, received int64"):
        fn(dy.astype(np.int64), arg, x.shape, (2, 2), strides)
    # a float x_shape passed the shape check (4.0 == 4) and failed inside np.empty
    shape = (x.shape[0], float(x.shape[1]), x.shape[2], x.shape[3])
    with pytest.raises(ValueError, match=r"x_shape as non-negative integers \(batch, height, "
                                         r"width, channels\), received \(2, 5.0, 5, 3\)"):
        fn(dy, arg, shape, (2, 2), strides)


@pytest.mark.parametrize("fn", [*MAXPOOL_BACKWARD, pooling.maxpool_forward,
                                pooling.maxpool_forward_ref])
def test_maxpool_refuses_a_pool_or_stride_below_one(fn):
    # a pool of 0 made the forward kernel read a row past the input
    x, dy, arg = _pooled()
    args = (x,) if "forward" in fn.__name__ else (dy, arg, x.shape)
    for pool, strides, what, received in (((0, 2), (2, 2), "pool", "0"),
                                          ((2, 2), (2, -1), "strides", "-1"),
                                          ((2, 2.0), (2, 2), "pool", "2.0 of type float"),
                                          ((2,), (2, 2), "pool", r"\(2,\)")):
        with pytest.raises((ValueError, TypeError), match=f"max pooling.*{what}.*positive "
                                                          f"integer.*received {received}"):
            fn(*args, pool, strides)


@pytest.mark.parametrize("fn", COL2IM)
def test_col2im_refuses_bad_geometry_and_columns(fn):
    dcols = np.ones((2 * 3 * 3, 2 * 2 * 3), np.float32)
    shape = (2, 4, 4, 3)
    # negative pairs gave a matching number of rows and a silently empty result
    for kernel, strides, what in (((2, 2), (-1, -1), "strides"), ((-2, -2), (1, 1), "kernel"),
                                  ((0, 2), (1, 1), "kernel")):
        with pytest.raises(ValueError, match=f"col2im \\({what}\\) expected a positive integer"):
            fn(dcols, shape, kernel, strides)
    with pytest.raises(ValueError, match=r"col2im \(dilation\) expected a positive integer"):
        fn(dcols, shape, (2, 2), (1, 1), (0, 1))
    with pytest.raises(ValueError, match=r"room for a 2x2 kernel spanning 5x5"):
        fn(dcols, shape, (2, 2), (1, 1), (4, 4))
    with pytest.raises(ValueError, match=r"xp_shape as non-negative integers.*\(2, 4.0, 4, 3\)"):
        fn(dcols, (2, 4.0, 4, 3), (2, 2), (1, 1))
    with pytest.raises(ValueError, match=r"xp_shape as non-negative integers.*\(-2, 4, 4, 3\)"):
        fn(dcols, (-2, 4, 4, 3), (2, 2), (1, 1))
    with pytest.raises(TypeError, match="dcols of dtype float32 or float64, received int32"):
        fn(dcols.astype(np.int32), shape, (2, 2), (1, 1))
    with pytest.raises(ValueError, match=r"dcols of shape \(18, 12\).*received \(18, 12, 1\)"):
        fn(dcols[..., None], shape, (2, 2), (1, 1))


@pytest.mark.parametrize("fn", SOFTMAX_CE)
def test_softmax_cross_entropy_refuses_bad_labels_and_buffers(fn):
    logits = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for bad, low, high in (([0, 1, 3, 2], 0, 3), ([0, -1, 2, 2], -1, 2)):
        with pytest.raises(ValueError, match=r"softmax_cross_entropy expected labels \(classes "
                                             r"of 3 logits\) in \[0, 3\), received values "
                                             rf"in \[{low}, {high}\]"):
            fn(logits, np.array(bad), 0.0, 0.25)
    with pytest.raises(TypeError, match="labels .* as integers, received dtype float64"):
        fn(logits, np.array([0.0, 1.0, 2.0, 1.5]), 0.0, 0.25)
    with pytest.raises(ValueError, match=r"labels of shape \(4,\).*received \(3,\)"):
        fn(logits, np.array([0, 1, 2]), 0.0, 0.25)
    with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\), received \(12,\)"):
        fn(logits.ravel(), np.zeros(12, np.int64), 0.0, 0.25)
    with pytest.raises(TypeError, match="logits of dtype float32 or float64, received int64"):
        fn(logits.astype(np.int64), np.zeros(4, np.int64), 0.0, 0.25)
    for grad_out in (np.empty((4, 2), np.float32), np.empty((4, 3), np.float64), [0.0] * 12):
        with pytest.raises(ValueError, match=r"grad_out as an array of shape \(4, 3\) and "
                                             r"dtype float32"):
            fn(logits, np.array([0, 1, 2, 1]), 0.0, 0.25, grad_out)


def _good_calls():
    """(public function, arguments) of valid calls: every public function that
    checks indices, on the Numba kernel and the NumPy reference."""
    rng = np.random.default_rng(1)
    calls = []
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((3, 7, 6, 4)).astype(dtype)
        for pool, strides in (((2, 2), (2, 2)), ((3, 2), (1, 2))):
            y, arg = pooling.maxpool_forward(x, pool, strides)
            dy = rng.standard_normal(y.shape).astype(dtype)
            for fwd, bwd in ((pooling.maxpool_forward, pooling.maxpool_backward),
                             (pooling.maxpool_forward_ref, pooling.maxpool_backward_ref)):
                calls += [(fwd, (x, pool, strides)), (bwd, (dy, arg, x.shape, pool, strides))]
        pads = ((1, 1), (0, 1))
        y, arg = pooling.maxpool_forward(x, (3, 2), (1, 2), pads)
        dy = rng.standard_normal(y.shape).astype(dtype)
        for fwd, bwd in ((pooling.maxpool_forward, pooling.maxpool_backward),
                         (pooling.maxpool_forward_ref, pooling.maxpool_backward_ref)):
            calls += [(fwd, (x, (3, 2), (1, 2), pads)),
                      (bwd, (dy, arg, x.shape, (3, 2), (1, 2), pads))]
        for fwd, bwd in ((pooling.avgpool_forward, pooling.avgpool_backward),
                         (pooling.avgpool_forward_ref, pooling.avgpool_backward_ref)):
            calls += [(fwd, (x, (3, 2), (1, 2), pads)),
                      (bwd, (dy, x.shape, (3, 2), (1, 2), pads))]
        dcols = rng.standard_normal((3 * 3 * 3, 2 * 2 * 4)).astype(dtype)
        calls += [(fn, (dcols, (3, 6, 4, 4), (2, 2), (2, 1))) for fn in COL2IM]
        logits = rng.standard_normal((70, 5)).astype(dtype)
        labels = rng.integers(0, 5, 70)
        calls += [(fn, (logits, labels, smoothing, 1 / 70)) for fn in SOFTMAX_CE
                  for smoothing in (0.0, 0.1)]
        calls += [(fn, (logits, labels, 0.0, 1.0, np.empty_like(logits))) for fn in SOFTMAX_CE]
    return calls


def _same_bits(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b) and all(_same_bits(u, v) for u, v in zip(a, b))
    else:
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.array_equal(a, b)
    return True


def test_good_calls_give_the_trusted_builds_results_bit_for_bit():
    for fn, args in _good_calls():
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        assert _same_bits(fn(*args), fn.trusted(*copies)), fn.__name__


def test_impl_gives_the_trusted_builds_only_when_asked():
    for backend in ("numba", "numpy"):
        with tn.kernels.use_backend(backend):
            for op in ("maxpool_forward", "maxpool_backward", "avgpool_forward",
                       "avgpool_backward", "col2im", "softmax_cross_entropy"):
                public = dispatch.impl(op)
                assert hasattr(public, "trusted")
                assert dispatch.impl(op, trusted=True) is public.trusted
            for op in ("matmul", "matmul_tn", "matmul_nt"):  # checked since
                assert dispatch.impl(op, trusted=True) is dispatch.impl(op).trusted


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_layers_and_the_loss_do_not_check_indices_twice(monkeypatch, backend):
    """The pooling layers, Conv2D's backward and CrossEntropy run the trusted builds:
    the public functions' checks must not run on their hot path."""
    def refuse(*args, **kwargs):
        raise AssertionError("a public kernel's checks ran on a layer's hot path")

    for module in (pooling, im2col, losses):  # what the public functions' checks call
        for name in ("check_pair", "check_float_array", "check_indices"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    L = tn.layers
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 6, 2)).astype(np.float32)
    labels = rng.integers(0, 3, 4)
    with tn.kernels.use_backend(backend):
        model = tn.Sequential([L.Conv2D(3, 3, padding="same"), L.Conv2D(3, 3),
                               L.MaxPool2D(2), L.MaxPool2D(3, strides=1, padding="same"),
                               L.AveragePooling2D(2, strides=1, padding="same"),
                               L.GlobalAveragePooling2D(keepdims=True), L.Flatten(),
                               L.Dense(3)])
        model.compile("sgd", loss="cross_entropy")
        model.fit(x, labels, batch_size=4, epochs=1, verbose=0, seed=0)
