"""The public kernels that size their loops from one array and index the
others (dropout's draws and mask, the norms' gamma, beta and statistics, a
dense layer's weights and bias, the saved arrays of an activation's
backward) refuse arrays of other shapes and dtypes other than float32 and
float64. Numba does not check indices: before, a shorter array was read
past its end -- silent garbage -- where the NumPy reference raised or
broadcast, and float16 failed deep in Numba."""

import numpy as np
import pytest

import tinynet as tn
from tinynet.kernels.checks import check_float_array
from tinynet.kernels import (activations, blas, dense, dispatch, dropout, gemm, losses,
                             norms, optim, pooling)

f32 = np.float32
X = np.ones((4, 300), f32)
G, B = np.ones(300, f32), np.zeros(300, f32)
SHORT = np.ones(3, f32)


CASES = [
    # (function names, module, arguments, message)
    ("dropout_forward", dropout, (np.ones(1000, f32), np.zeros(10), 0.5),
     r"expected u of shape \(1000,\), received \(10,\)"),
    ("dropout_forward", dropout, (np.ones(1000, f32), np.zeros(1), 0.5),  # broadcast, in NumPy
     r"expected u of shape \(1000,\), received \(1,\)"),
    ("dropout_forward", dropout, (np.ones(10, f32), np.zeros(10), 1.0),
     r"expected rate in \[0, 1\), received 1.0"),
    ("dropout_backward", dropout, (np.ones(1000, f32), np.ones(10, f32)),
     r"expected mask of shape \(1000,\), received \(10,\)"),
    ("batchnorm_forward", norms, (X, SHORT, B, 1e-3),
     r"batchnorm_forward expected gamma of shape \(300,\), received \(3,\)"),
    ("layernorm_forward", norms, (X, G, SHORT, 1e-3),
     r"layernorm_forward expected beta of shape \(300,\), received \(3,\)"),
    ("batchnorm_backward", norms, (X, X[:2], G, G, G.copy(), B.copy()),
     r"expected x_hat of shape \(4, 300\), received \(2, 300\)"),
    ("batchnorm_backward", norms, (X, X, SHORT, G, G.copy(), B.copy()),
     r"expected inv_std of shape \(300,\), received \(3,\)"),
    ("layernorm_backward", norms, (X, X, G, G, G.copy(), B.copy()),
     r"expected inv_std of shape \(4,\), received \(300,\)"),
    ("layernorm_backward", norms, (X, X, np.ones(4, f32), G, SHORT, B.copy()),
     r"expected dgamma of shape \(300,\), received \(3,\)"),
    ("dense_forward", dense, (np.ones((3, 4), f32), np.ones((2, 2), f32), None, 1),
     r"dense_forward expected x \(batch, in\) and w \(in, units\), received \(3, 4\) and "
     r"\(2, 2\)"),
    ("dense_forward", dense, (np.ones((3, 4), f32), np.ones((4, 2), f32), SHORT, 1),
     r"dense_forward expected b of shape \(2,\), received \(3,\)"),
    ("act_grad_bias", dense, (X, X[:1], None, activations.RELU),
     r"act_grad_bias expected y of shape \(4, 300\), received \(1, 300\)"),
    ("act_backward", activations, (X, X[:1], None, activations.RELU),
     r"act_backward expected y of shape \(4, 300\), received \(1, 300\)"),
    ("act_forward", activations, (X, activations.RELU, 0.0, np.empty((1, 300), f32)),
     r"act_forward expected out of shape \(4, 300\), received \(1, 300\)"),
]


@pytest.mark.parametrize("name, module, args, message", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_arrays_of_another_shape_are_refused(name, module, args, message):
    # the references check as the kernels do (dense's and the activations'
    # did not: they broadcast or failed with NumPy's own message)
    for fn in (getattr(module, name), getattr(module, name + "_ref")):
        with pytest.raises(ValueError, match=message):
            fn(*args)


LEAKY = activations.LEAKY_RELU
W = np.ones((300, 2), f32)


@pytest.mark.parametrize("alpha", [-0.5, float("nan")])
@pytest.mark.parametrize("name, module, args", [
    ("act_forward", activations, (X, LEAKY)),
    ("act_backward", activations, (X, X, None, LEAKY)),
    ("dense_forward", dense, (X, W, None, LEAKY)),
    ("act_grad_bias", dense, (X, X, None, LEAKY)),
])
def test_a_negative_leaky_relu_alpha_is_refused(name, module, args, alpha):
    """The backward reads z > 0 from y > 0, true only for alpha >= 0: with
    alpha = -0.5, z = -2 gave y = 1 and the gradient 1 instead of -0.5, on
    either backend (the LeakyReLU layer already refused such an alpha)."""
    for fn in (getattr(module, name), getattr(module, name + "_ref")):
        with pytest.raises(ValueError, match=rf"{name} expected alpha >= 0 for leaky_relu "
                                             rf"\(code 2: .*\), received {alpha}"):
            fn(*args, alpha)
    if name == "act_grad_bias":  # and dense_backward, whose checks these are
        for fn in (dense.dense_backward, dense.dense_backward_ref):
            with pytest.raises(ValueError, match="act_grad_bias expected alpha >= 0"):
                fn(X, W, X[:, :2], X[:, :2], None, LEAKY, alpha, W.copy(), None)


@pytest.mark.parametrize("w, b, name, received", [
    (W.astype(np.float64), None, "w", "float64"),
    (W, np.zeros(2), "b", "float64"),
    (W.astype(np.float64), np.zeros(2), "w", "float64"),
])
def test_dense_forward_refuses_w_or_b_of_another_dtype_than_x(w, b, name, received):
    """float32 x and float64 w gave float32 from the kernel, float64 from the
    reference (NumPy's promotion): now both refuse, as dense_backward does."""
    for fn in (dense.dense_forward, dense.dense_forward_ref):
        with pytest.raises(TypeError, match=rf"dense_forward expected w and b of x's dtype "
                                            rf"float32, received {name} of dtype {received}"):
            fn(X, w, b, activations.RELU)
    assert dense.dense_forward(X, W, np.zeros(2, f32), 1).dtype == f32


_SQ = np.arange(36.0).reshape(6, 6)


def _rows_shared(x):
    """x and an out of x's shape, two views of one buffer sharing 4 rows."""
    base = np.arange(48.0).reshape(8, 6)
    return (base[:6], x, None, 0), {"out": base[2:]}


@pytest.mark.parametrize("name, module, make, message", [
    ("dense_forward", dense, lambda x: ((x, _SQ.copy(), None, 0), {"out": x}),
     "out not to overlap x"),
    ("dense_forward", dense, lambda x: ((x, _SQ.copy(), None, 1), {"z_out": x}),
     "z_out not to overlap x"),
    ("dense_forward", dense, lambda x: ((_SQ.copy(), x, None, 0), {"out": x}),
     "out not to overlap w"),
    ("dense_forward", dense, lambda x: ((_SQ.copy(), _SQ.copy(), x[0], 0), {"out": x}),
     "out not to overlap b"),
    ("dense_forward", dense, _rows_shared, "out not to overlap x"),
    ("softmax_cross_entropy", losses, lambda x: ((x, np.arange(6)), {"grad_out": x}),
     "grad_out not to overlap logits"),
    # the GEMM references (the numpy backend's products) took these, numpy's @ copying
    ("matmul", gemm, lambda x: ((x, _SQ.copy()), {"out": x}), "out not to overlap a"),
    ("matmul_tn", gemm, lambda x: ((_SQ.copy(), x), {"out": x, "accumulate": True}),
     "out not to overlap b"),
    ("matmul_nt", gemm, lambda x: ((x[:4], _SQ.copy()), {"out": x[2:]}),
     "out not to overlap a"),
    # dense_backward: the reference took these, the kernel's inner products refused
    # some in their own words ("matmul_tn expected out not to overlap a")
    ("dense_backward", dense, lambda x: ((x, _SQ.copy(), _SQ.copy(), None, None, 0, 0.0, x,
                                          None), {}), "dw not to overlap x"),
    ("dense_backward", dense, lambda x: ((_SQ.copy(), _SQ.copy(), x, None, None, 0, 0.0, x,
                                          None), {}), "dw not to overlap dy"),
    ("dense_backward", dense, lambda x: ((_SQ.copy(), x, _SQ.copy(), None, None, 0, 0.0,
                                          np.zeros((6, 6)), None), {"dx_out": x}),
     "dx_out not to overlap w"),
    ("dense_backward", dense, lambda x: ((_SQ.copy(), _SQ.copy(), x, None, None, 0, 0.0,
                                          np.zeros((6, 6)), x[0]), {}),
     "db not to overlap dy"),
    ("dense_backward", dense, lambda x: ((_SQ.copy(), x, _SQ.copy(), _SQ.copy(), None, 1, 0.0,
                                          np.zeros((6, 6)), None), {"g_out": x}),
     "g_out not to overlap w"),
    ("dense_backward", dense, lambda x: ((_SQ.copy(), _SQ.copy(), _SQ.copy(), _SQ.copy(), None,
                                          1, 0.0, x, None), {"g_out": x}),
     "dw not to overlap g_out"),
    ("dense_backward", dense, lambda x: ((_SQ[:4].copy(), _SQ.copy(), x[:4], _SQ[:4].copy(), None,
                                          1, 0.0, np.zeros((6, 6)), None), {"g_out": x[2:]}),
     "g_out not to overlap dy"),
    # matmul_nt's scratch (w.T) and act_grad_bias's outputs were not checked:
    # the kernels wrote over what they still read
    ("dense_backward", dense, lambda x: ((_SQ.copy(), x, _SQ.copy(), None, None, 0, 0.0,
                                          np.zeros((6, 6)), None), {"scratch": x}),
     "scratch not to overlap w"),
    ("dense_backward", dense, lambda x: ((_SQ.copy(), _SQ.copy(), _SQ.copy(), None, None, 0,
                                          0.0, np.zeros((6, 6)), None),
                                         {"scratch": x, "dx_out": x}),
     "dx_out not to overlap scratch"),
    ("matmul_nt", gemm, lambda x: ((_SQ.copy(), x), {"scratch": x}), "scratch not to overlap b"),
    ("matmul_nt", gemm, lambda x: ((x, _SQ.copy()), {"scratch": x}),
     "scratch not to overlap a"),
    ("matmul_nt", gemm, lambda x: ((_SQ[:, :4].copy(), np.ones((3, 4))),
                                   {"out": x.reshape(-1)[:18].reshape(6, 3),
                                    "scratch": x.reshape(-1)[12:24].reshape(4, 3)}),
     "out not to overlap scratch"),
    ("act_grad_bias", dense, lambda x: ((x[:4], _SQ[:4].copy(), None, 1, 0.0, x[2:]), {}),
     "g_out not to overlap dy"),
    ("act_grad_bias", dense, lambda x: ((_SQ[:4].copy(), x[:4], None, 1, 0.0, x[2:]), {}),
     "g_out not to overlap y"),
    ("act_grad_bias", dense, lambda x: ((_SQ[:4].copy(), None, x[:4], 4, 0.0, x[2:]), {}),
     "g_out not to overlap z"),
    ("act_grad_bias", dense, lambda x: ((x, None, None, 0, 0.0, None, x[0]), {}),
     "db not to overlap dy"),
    ("act_grad_bias", dense, lambda x: ((_SQ.copy(), _SQ.copy(), None, 1, 0.0, x, x[5]), {}),
     "db not to overlap g_out"),
])
@pytest.mark.parametrize("engine", ["numba", "blas"])
def test_an_output_that_overlaps_an_input_is_refused(name, module, make, message, engine):
    """The Numba kernels wrote their outputs while they still read their
    inputs: dense_forward(x, w, None, 0, out=x) and softmax_cross_entropy(z,
    y, grad_out=z) returned garbage (the references, which copy, were
    right). No tinynet caller passes such arrays; both backends and both
    GEMM engines refuse them, in the caller's names."""
    previous = blas.set_gemm(engine)
    try:
        for fn in (getattr(module, name), getattr(module, name + "_ref")):
            x = _SQ.copy()
            args, kwargs = make(x)
            with pytest.raises(ValueError, match=rf"{name} expected {message} \(the kernel "
                                                 rf"writes \w+ while it reads \w+\), received "
                                                 rf"arrays that share memory"):
                fn(*args, **kwargs)
            np.testing.assert_array_equal(x, _SQ)  # refused before anything was written
    finally:
        blas.set_gemm(previous)


def _outputs_shared(first, second):
    """dense_backward's arguments (x 6x4, w 4x5, relu) with its outputs
    ``first`` and ``second`` over one buffer (the others separate)."""
    buf = np.arange(64.0)
    outputs = {"dw": np.zeros((4, 5)), "db": np.zeros(5), "dx_out": np.zeros((6, 4)),
               "scratch": np.zeros((5, 4))}
    shape = outputs[first].shape
    outputs[first] = buf[:outputs[first].size].reshape(shape)
    outputs[second] = buf[3:3 + outputs[second].size].reshape(outputs[second].shape)
    x, w = np.ones((6, 4)), np.ones((4, 5))
    dy, y = np.arange(30.0).reshape(6, 5), np.ones((6, 5))
    return (x, w, dy, y, None, activations.RELU, 0.0, outputs["dw"], outputs["db"]), {
        "scratch": outputs["scratch"], "dx_out": outputs["dx_out"]}, buf


@pytest.mark.parametrize("first, second", [("dw", "db"), ("dw", "dx_out"), ("dw", "scratch"),
                                           ("db", "dx_out"), ("db", "scratch")])
@pytest.mark.parametrize("engine", ["numba", "blas"])
def test_dense_backward_refuses_outputs_over_one_another(first, second, engine):
    """dense_backward writes db, then dw, then scratch (w.T) and dx_out: an
    output over an earlier one overwrote it on both backends (a dx_out over
    dw returned a wrong dw), and the outputs were checked against the inputs
    only. Both backends and GEMM engines refuse them now, writing nothing."""
    previous = blas.set_gemm(engine)
    try:
        for fn in (dense.dense_backward, dense.dense_backward_ref):
            args, kwargs, buf = _outputs_shared(first, second)
            before = buf.copy()
            with pytest.raises(ValueError, match=rf"dense_backward expected {first} and {second} "
                                                 rf"as separate arrays \(it writes both: one "
                                                 rf"would overwrite the other\), received arrays "
                                                 rf"that share memory"):
                fn(*args, **kwargs)
            np.testing.assert_array_equal(buf, before)
    finally:
        blas.set_gemm(previous)


def test_dense_backward_takes_what_it_does_not_write():
    """g_out of the identity (g is dy itself) and dx_out without need_dx are
    not written: overlapping them is not refused."""
    for fn in (dense.dense_backward, dense.dense_backward_ref):
        x = _SQ.copy()
        dw = np.zeros((6, 6))
        fn(_SQ.copy(), _SQ.copy(), _SQ.copy(), None, None, 0, 0.0, dw, None, g_out=dw)
        assert fn(x, _SQ.copy(), _SQ.copy(), None, None, 0, 0.0, np.zeros((6, 6)), None,
                  need_dx=False, dx_out=x) is None
        np.testing.assert_array_equal(x, _SQ)
        # nor checked as an output: any g_out given for the identity is left alone
        for g_out in (np.empty((6, 6), f32), np.empty((6, 6)).T, _read_only((6, 6), np.float64)):
            fn(_SQ.copy(), _SQ.copy(), _SQ.copy(), None, None, 0, 0.0, np.zeros((6, 6)), None,
               g_out=g_out)


@pytest.mark.parametrize("call", [
    lambda x: activations.act_forward(x, activations.SIGMOID),
    lambda x: activations.act_backward(x, x, None, activations.SIGMOID),
    lambda x: dropout.dropout_forward(x, np.zeros(x.shape), 0.5),
    lambda x: norms.batchnorm_forward(x, np.ones(4, x.dtype), np.zeros(4, x.dtype), 1e-3),
    lambda x: norms.layernorm_forward(x, np.ones(4, x.dtype), np.zeros(4, x.dtype), 1e-3),
    lambda x: dense.dense_forward(x, np.ones((4, 2), x.dtype), None, 1),
])
def test_float16_is_refused_with_the_dtypes_expected(call):
    """float16 raised Numba's bare NotImplementedError('float16')."""
    with pytest.raises(TypeError, match="of dtype float32 or float64, received float16"):
        call(np.ones((3, 4), np.float16))


@pytest.mark.parametrize("call, name", [
    (lambda x: activations.act_forward(x, activations.SIGMOID), "z"),
    (lambda x: activations.act_backward(x, np.ones((3, 4), np.float32), None,
                                        activations.SIGMOID), "dy"),
    (lambda x: pooling.avgpool_forward(x.reshape(1, 3, 4, 1), (2, 2), (1, 1)), "x"),
    (lambda x: gemm.matmul(x, np.ones((4, 2), x.dtype.newbyteorder("="))), "a"),
])
def test_floats_in_the_other_byte_order_are_refused_saying_so(call, name):
    """``>f4`` was refused as "expected float32 or float64, received >f4"
    (the layers convert it; a kernel is handed native arrays); the hint
    named x for every argument (z, dy)."""
    x = np.ones((3, 4), np.dtype(np.float32).newbyteorder())
    with pytest.raises(TypeError, match=rf"float32 or float64 in the native byte order, "
                                        rf"received [<>]f4 \(convert it with "
                                        rf"{name}\.astype\({name}\.dtype\.newbyteorder"):
        call(x)


def _read_only(shape, dtype=f32):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("engine", ["numba", "blas"])
@pytest.mark.parametrize("call, name", [
    (lambda: gemm.matmul(X[:, :4], G[:4, None] * np.ones((4, 3), f32), out=_read_only((4, 3))),
     "out"),
    (lambda: gemm.matmul_tn(X, X[:, :5], out=_read_only((300, 5))), "out"),
    (lambda: activations.act_forward(X, activations.RELU, 0.0, _read_only(X.shape)), "out"),
    (lambda: activations.act_backward(X, X, None, activations.RELU, 0.0, _read_only(X.shape)),
     "out"),
    (lambda: dense.dense_forward(X, np.ones((300, 2), f32), None, 1, out=_read_only((4, 2))),
     "out"),
    (lambda: dense.act_grad_bias(X, X, None, activations.RELU, 0.0, None, _read_only(300)),
     "db"),
    (lambda: norms.layernorm_backward(X, X, np.ones(4, f32), G, _read_only(300), B.copy()),
     "dgamma"),
    (lambda: losses.softmax_cross_entropy(X, np.zeros(4, int), grad_out=_read_only(X.shape)),
     "grad_out"),
    (lambda: optim.sgd(_read_only(3), SHORT, SHORT.copy(), lr=0.1, momentum=0.0, dampening=0.0,
                       nesterov=False, weight_decay=0.0, first_step=True), "value"),
])
def test_read_only_outputs_are_refused(call, name, engine):
    """NumPy raises for a read-only output; the Numba kernels failed to
    compile, with a TypingError from deep in Numba."""
    previous = blas.set_gemm(engine)
    try:
        with pytest.raises(ValueError, match=f"expected {name} as a writable array, received a "
                                             f"read-only one"):
            call()
    finally:
        blas.set_gemm(previous)


#: the shape-checked operations: dense and the activations, like dropout and the norms
SHAPE_CHECKED = ("dense_forward", "dense_backward", "act_grad_bias", "act_forward",
                 "act_backward", "dropout_forward", "dropout_backward", "batchnorm_forward",
                 "batchnorm_backward", "layernorm_forward", "layernorm_backward")

BAD_CALLS = [
    # (operation, arguments): each must fail, with the same error on both backends
    ("dense_forward", lambda: (X, np.ones((300, 2), f32), None, 99)),  # Numba ran identity
    ("dense_forward", lambda: (X.astype(np.float16), np.ones((300, 2), f32), None, 1)),
    ("dense_forward", lambda: (X, np.ones((300, 2), f32), SHORT, 1)),
    ("dense_forward", lambda: (X, np.ones((300, 2), f32), None, 1, 0.0, _read_only((4, 2)))),
    ("dense_forward", lambda: (X, np.ones((300, 2), f32), None, 4, 0.0, None,
                               np.empty((4, 3), f32))),
    ("act_grad_bias", lambda: (X, X, None, activations.GELU)),  # GELU reads z
    ("act_grad_bias", lambda: (X[0], X[0], None, activations.RELU)),
    ("act_grad_bias", lambda: (X, X, None, -1)),
    ("act_grad_bias", lambda: (X, X, None, activations.RELU, 0.0, None, SHORT.copy())),
    ("act_forward", lambda: (X, 9)),
    ("act_forward", lambda: (X, activations.TANH, 0.0, np.empty((300, 4), f32))),
    ("act_backward", lambda: (X, X[:1], None, activations.SIGMOID)),
    ("act_backward", lambda: (X.astype(np.float16), X, None, activations.TANH)),
    ("act_backward", lambda: (X, X, None, activations.RELU, 0.0, _read_only(X.shape))),
    ("act_backward", lambda: (X, X, None, activations.SILU)),  # SiLU reads z
    ("dense_backward", lambda: (X, np.ones((300, 2), f32), np.ones((4, 2), f32), X, None,
                                activations.RELU, 0.0, np.zeros((300, 2), f32), None)),
    # x, w and dw of other shapes or dtypes: the kernel's products refused
    # them in their own words (matmul_tn, matmul_nt), the reference in
    # NumPy's, and both took a w of the wrong rows, returning a dx not of
    # x's shape
    *(("dense_backward", lambda x=x, w=w, dw=dw: (x, w, np.ones((4, 2), f32), None, None,
                                                   activations.IDENTITY, 0.0, dw, None))
      for x, w, dw in ((X[:3], np.ones((300, 2), f32), np.zeros((300, 2), f32)),
                       (X[:, :7], np.ones((300, 2), f32), np.zeros((300, 2), f32)),
                       (X, np.ones((7, 2), f32), np.zeros((7, 2), f32)),
                       (X, np.ones((300, 3), f32), np.zeros((300, 3), f32)),
                       (X, np.ones((300, 2), f32), np.zeros((2, 300), f32)),
                       (X, np.ones((300, 2)), np.zeros((300, 2), f32)),
                       (X, np.ones((300, 2), f32), np.zeros((300, 2))),
                       (X.tolist(), np.ones((300, 2), f32), np.zeros((300, 2), f32)))),
    ("dense_backward", lambda: (X, np.ones((300, 2), f32), np.ones((4, 2), f32), None, None,
                                activations.IDENTITY, 0.0, np.zeros((300, 2), f32), None,
                                True, None, None, np.empty((4, 7), f32))),
    ("bias_grad", lambda: (X, SHORT.copy())),
    # the products' out: the references failed with NumPy's words (or cast it)
    ("matmul", lambda: (X[:, :3], np.ones((3, 2), f32), np.empty((4, 3), f32))),
    ("matmul", lambda: (X[:, :3], np.ones((3, 2), f32), np.empty((4, 2)))),
    ("matmul_tn", lambda: (X, X[:, :2], np.empty((300, 2), f32, order="F"))),
    ("matmul_tn", lambda: (X, X[:, :2], np.empty((2, 300), f32))),
    ("matmul_nt", lambda: (X, X[:2], _read_only((4, 2)))),
    ("matmul_nt", lambda: (X, X[:2], None, False, _read_only((300, 2)))),  # scratch
    # a scratch of another shape, dtype or order was silently replaced by a new array
    ("matmul_nt", lambda: (X, X[:2], None, False, np.empty((2, 300), f32))),
    ("matmul_nt", lambda: (X, X[:2], None, False, np.empty((300, 2)))),
    ("matmul_nt", lambda: (X, X[:2], None, False, np.empty((300, 2), f32, order="F"))),
    ("dense_backward", lambda: (X, np.ones((300, 2), f32), np.ones((4, 2), f32), None, None,
                                activations.IDENTITY, 0.0, np.zeros((300, 2), f32), None,
                                True, np.empty((300, 2), f32))),
    # act_grad_bias's g_out and db, checked as the other outputs: a float64
    # g_out for float32 dy failed to compile in Numba (the reference cast), a
    # float64 db was taken by both, summed in another precision
    ("act_grad_bias", lambda: (X, X, None, activations.RELU, 0.0, np.empty(X.shape))),
    ("act_grad_bias", lambda: (X, X, None, activations.RELU, 0.0,
                               np.empty(X.shape, f32, order="F"))),
    ("act_grad_bias", lambda: (X, X, None, activations.RELU, 0.0, None, np.zeros(300))),
    ("act_grad_bias", lambda: (X, X, None, activations.RELU, 0.0, None,
                               np.zeros((300, 2), f32)[:, 0])),
    ("bias_grad", lambda: (X, np.zeros(300))),
    ("dense_backward", lambda: (X, np.ones((300, 2), f32), np.ones((4, 2), f32), X[:, :2], None,
                                activations.RELU, 0.0, np.zeros((300, 2), f32), None, True,
                                None, np.empty((4, 2)))),
    # and a and b, checked alike: the references took mixed dtypes or 1-D arrays
    ("matmul", lambda: (X, np.ones((300, 2)))),
    ("matmul_nt", lambda: (X[0], X[:2])),
]


def _failure(op, args):
    try:
        dispatch.impl(op)(*args())
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    raise AssertionError(f"{op} accepted a bad call")


@pytest.mark.parametrize("op, args", BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in
                                                     enumerate(BAD_CALLS)])
def test_a_bad_call_fails_alike_on_both_backends(op, args):
    """One check function serves each kernel and its NumPy reference: the same
    exception and message whichever backend runs (a bad activation code ran
    as the identity in Numba, where the reference raised; the references
    broadcast a short array or failed with NumPy's message)."""
    with tn.kernels.use_backend("numba"):
        fast = _failure(op, args)
    with tn.kernels.use_backend("numpy"):
        ref = _failure(op, args)
    assert fast == ref
    assert " expected " in fast[1] and "received" in fast[1]


def test_trusted_builds_are_reached_as_for_the_index_checked_kernels():
    for backend in ("numba", "numpy"):
        with tn.kernels.use_backend(backend):
            for op in SHAPE_CHECKED:
                public = dispatch.impl(op)
                assert dispatch.impl(op, trusted=True) is public.trusted is not public, op


def test_trusted_builds_give_the_checked_results_bit_for_bit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7)).astype(f32)
    w = rng.standard_normal((7, 3)).astype(f32)
    b = rng.standard_normal(3).astype(f32)
    for fast, ref in (dispatch.OPS["dense_forward"], dispatch.OPS["act_forward"]):
        for fn in (fast, ref):
            args = (x, w, b, activations.GELU, 0.0) if fn in dispatch.OPS["dense_forward"] \
                else (x, activations.GELU, 0.0)
            np.testing.assert_array_equal(fn(*args), fn.trusted(*args))
    y = np.maximum(x, 0)
    for fn in dispatch.OPS["act_grad_bias"] + dispatch.OPS["act_backward"]:
        db = np.zeros(7, f32) if fn in dispatch.OPS["act_grad_bias"] else None
        args = (x, y, None, activations.RELU, 0.0, None) + ((db,) if db is not None else ())
        checked_result = fn(*args).copy()
        np.testing.assert_array_equal(checked_result, fn.trusted(*args))


def _record_checks(monkeypatch):
    """The names of the kernels whose checks ran: each check function begins
    with check_float_array(..., who, ...) in its module."""
    seen = []

    def recording(x, who, what):
        seen.append(who)
        return check_float_array(x, who, what)

    for module in (dense, activations, dropout, norms):
        monkeypatch.setattr(module, "check_float_array", recording)
    return seen


def test_the_dense_references_check_once(monkeypatch):
    """dense_forward_ref and act_grad_bias_ref check their arguments and run
    the activation references' trusted builds on them: no second check."""
    seen = _record_checks(monkeypatch)
    y = dense.dense_forward_ref(X, np.ones((300, 2), f32), None, activations.RELU)
    assert seen == ["dense_forward"]
    dense.act_grad_bias_ref(y, y, None, activations.RELU, 0.0, None, np.zeros(2, f32))
    assert seen == ["dense_forward", "act_grad_bias"]


@pytest.mark.skipif(not tn.kernels.NUMBA_ENABLED, reason="the layers run NumPy code then")
def test_layers_run_the_trusted_builds_of_the_shape_checked_kernels(monkeypatch):
    """Dense, Conv2D, the activation layers, Dropout and the norms check their
    inputs and make or keep the other arrays themselves, so they call the
    ``.trusted`` builds (``impl(op, size, trusted=True)``), as MaxPool2D and
    the loss do for the index-checked kernels: no check of these kernels runs
    on a training step (they cost a few microseconds a call)."""
    seen = _record_checks(monkeypatch)
    rng = np.random.default_rng(0)
    L = tn.layers
    with tn.kernels.use_backend("numba"):
        model = tn.Sequential([L.Conv2D(2, 3, activation="gelu", input_shape=(5, 5, 1)),
                               L.Flatten(), L.Dense(8, activation="relu", seed=1),
                               L.BatchNorm(), L.Dropout(0.3, seed=2), L.Tanh(),
                               L.LayerNorm(), L.Dense(3, seed=3)])
        model.compile("sgd", loss="cross_entropy")
        model.fit(rng.standard_normal((8, 5, 5, 1)).astype(f32), rng.integers(0, 3, 8),
                  batch_size=8, epochs=1, verbose=0, seed=0)
    assert seen == []
    dense.dense_forward(X, np.ones((300, 2), f32), None, activations.RELU)  # the recorder works
    assert seen == ["dense_forward"]


@pytest.mark.parametrize("z_out", [lambda out: out, lambda out: out[:, :]])
def test_dense_forward_refuses_a_z_out_over_its_out(z_out):
    """The kernel writes z, then the activation over it into out: a z_out
    that was out (or a view of it) came back holding y, not z. Both
    backends refuse it, as dense_backward refuses outputs over each other."""
    x, w = np.ones((3, 2), f32), np.full((2, 4), -1.0, f32)
    for fn in (dense.dense_forward, dense.dense_forward_ref):
        out = np.empty((3, 4), f32)
        with pytest.raises(ValueError, match="dense_forward expected out and z_out as separate "
                                             "arrays"):
            fn(x, w, None, activations.RELU, out=out, z_out=z_out(out))
