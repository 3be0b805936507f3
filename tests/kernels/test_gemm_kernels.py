"""GEMM kernels against NumPy's ``@``: shapes, dtypes, layouts, accumulation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.kernels import activations, dense, gemm
from kernel_helpers import array, dims, dtypes, each_gemm_engine, layouts, needs_numba, tol

pytestmark = [needs_numba, pytest.mark.usefixtures("each_gemm_engine")]
_ = each_gemm_engine  # the fixture, imported for use above


@given(m=dims, k=dims, n=dims, dtype=dtypes, la=layouts, lb=layouts,
       accumulate=st.booleans(), seed=st.integers(0, 2**31))
def test_matmul_matches_numpy(m, k, n, dtype, la, lb, accumulate, seed):
    rng = np.random.default_rng(seed)
    a, b = array(rng, (m, k), dtype, la), array(rng, (k, n), dtype, lb)
    out = array(rng, (m, n), dtype)
    expected = out + a @ b if accumulate else a @ b
    result = gemm.matmul(a, b, out=out, accumulate=accumulate)
    assert result is out
    np.testing.assert_allclose(result, expected, **tol(dtype, k))


@given(m=dims, k=dims, n=dims, dtype=dtypes, la=layouts, lb=layouts,
       accumulate=st.booleans(), seed=st.integers(0, 2**31))
def test_matmul_tn_matches_numpy(m, k, n, dtype, la, lb, accumulate, seed):
    rng = np.random.default_rng(seed)
    a, b = array(rng, (k, m), dtype, la), array(rng, (k, n), dtype, lb)
    out = array(rng, (m, n), dtype)
    expected = out + a.T @ b if accumulate else a.T @ b
    np.testing.assert_allclose(gemm.matmul_tn(a, b, out=out, accumulate=accumulate),
                               expected, **tol(dtype, k))


@given(m=dims, k=dims, n=dims, dtype=dtypes, la=layouts, lb=layouts,
       seed=st.integers(0, 2**31))
def test_matmul_nt_matches_numpy(m, k, n, dtype, la, lb, seed):
    rng = np.random.default_rng(seed)
    a, b = array(rng, (m, k), dtype, la), array(rng, (n, k), dtype, lb)
    np.testing.assert_allclose(gemm.matmul_nt(a, b), a @ b.T, **tol(dtype, k))


def test_large_blocked_shapes():
    """Shapes beyond one column strip and one k-block, with ragged edges."""
    rng = np.random.default_rng(0)
    a, b = array(rng, (37, 301), np.float64), array(rng, (301, 530), np.float64)
    np.testing.assert_allclose(gemm.matmul(a, b), a @ b, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(gemm.matmul_tn(a.T.copy(), b), a @ b, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(gemm.matmul_nt(a, b.T.copy()), a @ b, rtol=1e-12, atol=1e-11)


def test_nan_propagates():
    a = np.ones((4, 4), np.float32)
    a[1, 2] = np.nan
    c = gemm.matmul(a, np.ones((4, 4), np.float32))
    assert np.isnan(c[1]).all() and np.isfinite(c[[0, 2, 3]]).all()


@pytest.mark.parametrize("fn", [gemm.matmul, gemm.matmul_tn, gemm.matmul_nt])
def test_bad_input_is_refused(fn):
    a32 = np.ones((3, 3), np.float32)
    with pytest.raises(TypeError, match="one dtype"):
        fn(a32, np.ones((3, 3)))
    with pytest.raises(TypeError, match="float32 or float64"):
        fn(np.ones((3, 3), np.int64), np.ones((3, 3), np.int64))
    with pytest.raises(ValueError, match="2-D"):
        fn(np.ones(3, np.float32), a32)
    with pytest.raises(ValueError, match="inner dimensions"):
        fn(a32, np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="out"):
        fn(a32, a32, out=np.ones((2, 3), np.float32))


@pytest.mark.parametrize("fn", [gemm.matmul, gemm.matmul_tn, gemm.matmul_nt])
@pytest.mark.parametrize("alias", ["a", "b", "rows of a"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_an_out_that_overlaps_an_input_is_refused(fn, alias, accumulate):
    """On tinynet's GEMM, matmul(a, b, out=a) returned garbage (it writes C
    while it reads A); numpy's BLAS copied. Both engines now refuse it."""
    base = np.arange(96.0).reshape(12, 8)
    a, b = base[:8], np.ones((8, 8))
    out = {"a": a, "b": b, "rows of a": base[4:]}[alias]
    before = (base.copy(), b.copy())
    with pytest.raises(ValueError, match=rf"{fn.__name__} expected out not to overlap "
                                         rf"{alias[-1]} \(the kernel writes out while it "
                                         rf"reads {alias[-1]}\), received arrays that share"):
        fn(a, b, out=out, accumulate=accumulate)
    np.testing.assert_array_equal(base, before[0])  # refused before anything was written
    np.testing.assert_array_equal(b, before[1])


def test_row_chunks():
    assert gemm.row_chunks(0, 2) == 1
    assert gemm.row_chunks(7, 2) == 1
    assert gemm.row_chunks(8, 2) == 2
    assert gemm.row_chunks(1000, 3) == 3


@given(m=st.integers(1, 70), k=st.integers(1, 40), n=st.integers(1, 40),
       dtype=dtypes, accumulate=st.booleans(), seed=st.integers(0, 2**31))
def test_gemm_gives_the_same_bits_on_any_number_of_chunks(m, k, n, dtype, accumulate, seed):
    """A row of C computed in a group of four rows or among a chunk's last rows
    gets the same bits, so the product does not depend on where the chunk
    boundaries fall, i.e. on the thread count (training is then reproducible
    whatever the adaptive thread check decides). This held when the test was
    written; a change to the kernel's loops that breaks it fails here."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    results = []
    for chunks in (1, 2, 3, 5):
        c = c0.copy()
        gemm.gemm_nn(a, b, c, accumulate, chunks)
        results.append(c)
    for c in results[1:]:
        np.testing.assert_array_equal(c, results[0])


@pytest.mark.parametrize("fn, shapes", [(gemm.matmul, ((37, 23), (23, 70))),
                                        (gemm.matmul_tn, ((23, 37), (23, 70))),
                                        (gemm.matmul_nt, ((37, 23), (70, 23)))])
@pytest.mark.parametrize("accumulate", [False, True])
def test_the_trusted_products_give_the_checked_ones_bits(fn, shapes, accumulate):
    """``.trusted`` (no checks, for callers that made or checked the arrays)
    runs the same code as the public product after its checks."""
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    c_shape = (a.shape[1] if fn is gemm.matmul_tn else a.shape[0],
               b.shape[0] if fn is gemm.matmul_nt else b.shape[1])
    checked, trusted = np.full(c_shape, 0.5, np.float32), np.full(c_shape, 0.5, np.float32)
    fn(a, b, out=checked, accumulate=accumulate)
    fn.trusted(a, b, out=trusted, accumulate=accumulate)
    np.testing.assert_array_equal(trusted.view(np.uint32), checked.view(np.uint32))


def test_dense_backward_runs_the_products_without_their_checks(monkeypatch):
    """dense_backward checks x, w, dy, dw and the outputs' overlaps itself
    (publicly; the layers call its trusted build on arrays they made), so its
    products run their ``.trusted`` builds: before, each product checked the
    same arrays again (the shapes and two np.may_share_memory a call)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a product's checks ran inside dense_backward")

    rng = np.random.default_rng(4)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in ((37, 23), (23, 70),
                                                                    (37, 70)))
    y, relu = np.maximum(x @ w, 0), activations.RELU
    expected = dense.dense_backward_ref(x, w, dy, y, None, relu, 0.0, np.zeros_like(w), None)
    for name in ("check_matrix", "check_out", "check_disjoint"):
        monkeypatch.setattr(gemm, name, refuse)
    for backward in (dense.dense_backward, dense.dense_backward.trusted):
        dx = backward(x, w, dy, y, None, relu, 0.0, np.zeros_like(w), None,
                      scratch=np.empty(w.shape[::-1], np.float32))
        np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(AssertionError, match="a product's checks ran"):
        gemm.matmul_nt(dy, w)  # the public products still check
