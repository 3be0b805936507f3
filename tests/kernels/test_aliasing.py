"""Outputs that are an input itself: the gradient of an activation may be
written into dy's own buffer (each element of dy is read once, before the
same element of g is written, and never again), bit for bit the result of a
separate ``g_out``; any other overlap stays refused."""

import numpy as np
import pytest

from tinynet.kernels import activations as act
from tinynet.kernels import blas, dense

f32 = np.float32
CODES = [act.IDENTITY, act.RELU, act.LEAKY_RELU, act.ELU, act.GELU, act.GELU_TANH, act.SILU,
         act.SIGMOID, act.TANH]
BACKENDS = {"numba": (dense.dense_backward, dense.act_grad_bias),
            "numpy": (dense.dense_backward_ref, dense.act_grad_bias_ref)}


def _problem(code, dtype, rows=37, n_in=23, units=70, seed=0):
    """x, w, dy and the y, z saved by the forward (None where the code does
    not read it); sizes off the 4-, 8- and 32-wide steps of the kernels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n_in)).astype(dtype)
    w = rng.standard_normal((n_in, units)).astype(dtype)
    z = x @ w
    y = act.act_forward_ref(z, code, 0.1)
    dy = rng.standard_normal((rows, units)).astype(dtype)
    return x, w, dy, (None if act.needs_input(code) else y), (z if act.needs_input(code) else None)


def _bits(a):
    return a.view(np.uint32 if a.dtype == f32 else np.uint64)


@pytest.mark.parametrize("engine", ["numba", "blas"])
@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("dtype", [f32, np.float64])
@pytest.mark.parametrize("code", CODES)
def test_dense_backward_into_dy_gives_the_bits_of_a_separate_g_out(code, dtype, backend,
                                                                   engine):
    """dense_backward(..., g_out=dy) refused dy as overlapping g_out; the
    activation's gradient is computed element by element into it, and dy is
    not read afterwards: dw, db, dx and g equal those of a separate g_out."""
    backward = BACKENDS[backend][0]
    x, w, dy, y, z = _problem(code, dtype)
    previous = blas.set_gemm(engine)
    try:
        results = []
        for in_place in (False, True):
            d = dy.copy()
            g = d if in_place else np.empty_like(d)
            dw, db = np.full_like(w, 0.5), np.full(w.shape[1], 0.25, dtype)
            dx = backward(x, w, d, y, z, code, 0.1, dw, db, g_out=g)
            results.append((dx, dw, db, g if code != act.IDENTITY else d))
    finally:
        blas.set_gemm(previous)
    for separate, aliased in zip(*results):
        np.testing.assert_array_equal(_bits(aliased), _bits(separate))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("saved", ["dy", "y", "z"])
@pytest.mark.parametrize("code", CODES[1:])
def test_act_grad_bias_into_an_input_gives_the_bits_of_a_separate_g_out(code, saved, backend):
    """g_out may be dy, y or z itself: each is read element by element at
    the place of the g written (the bias sum then reads g)."""
    grad = BACKENDS[backend][1]
    x, w, dy, y, z = _problem(code, f32, rows=130)  # more than one block of rows
    if {"y": y, "z": z}.get(saved, dy) is None:
        pytest.skip(f"code {code} does not read {saved}")
    db0 = np.zeros(w.shape[1], f32)
    expected = grad(dy, y, z, code, 0.1, np.empty_like(dy), db0)
    args = {"dy": dy.copy(), "y": None if y is None else y.copy(),
            "z": None if z is None else z.copy()}
    db1 = np.zeros(w.shape[1], f32)
    g = grad(args["dy"], args["y"], args["z"], code, 0.1, args[saved], db1)
    assert g is args[saved]
    np.testing.assert_array_equal(_bits(g), _bits(expected))
    np.testing.assert_array_equal(_bits(db1), _bits(db0))


@pytest.mark.parametrize("engine", ["numba", "blas"])
@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("code", [act.IDENTITY, act.RELU, act.GELU])
def test_a_read_only_dy_gives_the_bits_of_a_writable_one(code, backend, engine):
    """The identity's g is dy itself, which the Numba kernel is typed to
    write: a read-only dy failed with a TypingError in dense_backward,
    act_grad_bias and bias_grad (the references took it)."""
    backward, grad = BACKENDS[backend]
    bias_grad = {"numba": dense.bias_grad, "numpy": dense.bias_grad_ref}[backend]
    x, w, dy, y, z = _problem(code, f32, rows=130)  # more than one block of rows
    previous = blas.set_gemm(engine)
    try:
        results = []
        for writable in (True, False):
            d = dy.copy()
            d.flags.writeable = writable
            dw, db = np.full_like(w, 0.5), np.full(w.shape[1], 0.25, f32)
            dx = backward(x, w, d, y, z, code, 0.1, dw, db)
            db2 = np.zeros_like(db)
            g = grad(d, y, z, code, 0.1, None, db2)
            results.append((dx, dw, db, g, db2, bias_grad(d, np.zeros_like(db))))
    finally:
        blas.set_gemm(previous)
    for writable, read_only in zip(*results):
        np.testing.assert_array_equal(_bits(read_only), _bits(writable))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("g_view", [
    lambda base: base[1:],          # rows shifted by one: the same shape, another start
    lambda base: base.reshape(-1)[3:39].reshape(6, 6),  # half a row on
], ids=["shifted", "half-a-row"])
def test_other_overlaps_of_g_out_and_dy_stay_refused(g_view, backend):
    """Only dy itself is safe: with rows shifted, the kernel writes rows of
    g that it reads as rows of dy later (garbage, where the reference was
    right); both backends refuse it, saying what they would take. (A g_out
    of other strides, reversed or transposed, is refused before: g_out is
    C-contiguous, as the other outputs.)"""
    backward, grad = BACKENDS[backend]
    base = np.random.default_rng(2).standard_normal((7, 6)).astype(f32)
    dy, g_out = base[:6], g_view(base)
    y = np.ones((6, 6), f32)
    before = base.copy()
    message = (r"expected g_out not to overlap dy \(the kernel writes g_out while it reads "
               r"dy\), received arrays that share memory but are not one view \(g_out may be "
               r"dy itself")
    with pytest.raises(ValueError, match="act_grad_bias " + message):
        grad(dy, y, None, act.RELU, 0.0, g_out)
    x, w = np.ones((6, 3), f32), np.ones((3, 6), f32)
    with pytest.raises(ValueError, match="dense_backward " + message):
        backward(x, w, dy, y, None, act.RELU, 0.0, np.zeros((3, 6), f32), None, g_out=g_out)
    np.testing.assert_array_equal(base, before)


ACT_BACKENDS = {"numba": (act.act_forward, act.act_backward),
                "numpy": (act.act_forward_ref, act.act_backward_ref)}
LAYOUTS = {  # z of shape (130, 70) seen as the kernels' callers may hand it over
    "C": lambda a: a,
    "3-D": lambda a: a.reshape(13, 10, 70),
    "F": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("backend", list(ACT_BACKENDS))
@pytest.mark.parametrize("dtype", [f32, np.float64])
@pytest.mark.parametrize("code", CODES)
def test_act_forward_and_backward_in_place_give_the_bits_of_a_separate_out(code, dtype,
                                                                           backend, layout):
    """act_forward(z, out=z) and act_backward(dy, y, z, out=dy / y / z): each
    row of z is copied into out's same row before the activation runs on it,
    and the backward reads element [i, j] of its inputs before it writes
    element [i, j] of out (an input the wrapper copies is out's memory no
    more): the same bits as a separate out, in every layout."""
    forward, backward = ACT_BACKENDS[backend]
    rng = np.random.default_rng(5)
    view = LAYOUTS[layout]
    z = view((rng.standard_normal((130, 70)) * 3).astype(dtype))  # > one block of rows
    dy = view(rng.standard_normal((130, 70)).astype(dtype))
    y = forward(z, code, 0.1)
    own = z.copy(order="K")
    assert forward(own, code, 0.1, out=own) is own
    np.testing.assert_array_equal(_bits(own), _bits(y))
    saved = {"y": None if act.needs_input(code) else y, "z": z if act.needs_input(code) else None}
    expected = backward(dy, saved["y"], saved["z"], code, 0.1)
    for into in ["dy"] + [name for name, a in saved.items() if a is not None]:
        args = {"dy": dy, **saved}
        args[into] = args[into].copy(order="K")
        g = backward(args["dy"], args["y"], args["z"], code, 0.1, out=args[into])
        assert g is args[into]
        np.testing.assert_array_equal(_bits(g), _bits(expected))


@pytest.mark.parametrize("backend", list(ACT_BACKENDS))
@pytest.mark.parametrize("saved", ["dy", "y", "z"])
@pytest.mark.parametrize("out_view", [
    lambda base: base[1:],          # rows shifted by one: garbage from the kernel before
    lambda base: base[:64, ::-1],   # reversed columns: other strides
], ids=["shifted", "reversed"])
def test_act_forward_and_backward_refuse_an_out_over_their_inputs_moved(out_view, saved,
                                                                        backend):
    """Only the input itself is safe: an out of z's (dy's, y's) rows shifted
    by one returned garbage from the kernels (a max error of 0.64 on this
    sigmoid, the references right); both backends now refuse it, saying what
    they would take, and write nothing."""
    forward, backward = ACT_BACKENDS[backend]
    base = np.random.default_rng(6).standard_normal((65, 8)).astype(f32)
    before = base.copy()
    arrays = {name: np.full((64, 8), 0.3, f32) for name in ("dy", "y", "z")}
    arrays[saved] = base[:64]
    out = out_view(base)
    message = (rf"expected out not to overlap {saved} \(the kernel writes out while it reads "
               rf"{saved}\), received arrays that share memory but are not one view \(out "
               rf"may be {saved} itself")
    with pytest.raises(ValueError, match="act_backward " + message):
        backward(arrays["dy"], arrays["y"], arrays["z"], act.SIGMOID, out=out)
    if saved == "z":
        with pytest.raises(ValueError, match="act_forward " + message):
            forward(arrays["z"], act.SIGMOID, out=out)
    np.testing.assert_array_equal(base, before)
