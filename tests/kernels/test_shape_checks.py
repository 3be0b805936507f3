"""The public kernels that size their loops from one array and index the
others (dropout's draws and mask, the norms' gamma, beta and statistics, a
dense layer's weights and bias, the saved arrays of an activation's
backward) refuse arrays of other shapes and dtypes other than float32 and
float64. Numba does not check indices: before, a shorter array was read
past its end -- silent garbage -- where the NumPy reference raised or
broadcast, and float16 failed deep in Numba."""

import numpy as np
import pytest

from tinynet.kernels import activations, blas, dense, dropout, gemm, losses, norms, optim

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
    fns = [getattr(module, name)]
    if name in ("dropout_forward", "dropout_backward") or module is norms:
        fns.append(getattr(module, name + "_ref"))  # the references check as the kernels do
    for fn in fns:
        with pytest.raises(ValueError, match=message):
            fn(*args)


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
