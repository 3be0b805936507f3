"""Strategies and checks shared by the kernel tests."""

import numpy as np
import pytest
from hypothesis import strategies as st

from tinynet.kernels import NUMBA_ENABLED

needs_numba = pytest.mark.skipif(not NUMBA_ENABLED,
                                 reason="Numba missing or disabled: kernels are the references")

dtypes = st.sampled_from([np.float32, np.float64])
#: sizes with the corner cases: zero, one, and both sides of the 4-wide unroll
dims = st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 13, 17, 33])
layouts = st.sampled_from(["C", "F", "strided"])


def array(rng, shape, dtype, layout="C", scale=1.0):
    """A random array of ``shape`` in the given memory layout
    (``"strided"``: a view with a step of 2 along the last axis)."""
    if layout == "strided":
        big = rng.standard_normal((*shape[:-1], 2 * shape[-1])) * scale
        return big.astype(dtype)[..., ::2]
    out = (rng.standard_normal(shape) * scale).astype(dtype)
    return np.asfortranarray(out) if layout == "F" else out


def tol(dtype, k=1):
    """Tolerances for sums of k products in dtype."""
    if dtype == np.float32:
        return dict(rtol=2e-5 * max(1, k) ** 0.5 + 1e-5, atol=2e-5 * max(1, k) ** 0.5 + 1e-6)
    return dict(rtol=1e-12 * max(1, k), atol=1e-12 * max(1, k))


@pytest.fixture(scope="module", params=["numba", "blas"], autouse=False)
def each_gemm_engine(request):
    """Run a module's tests once on tinynet's GEMM and once on numpy's BLAS
    (the two engines kernels.blas chooses between). Import it into a test
    module and list it in ``pytestmark = pytest.mark.usefixtures(...)``."""
    from tinynet.kernels import blas
    previous = blas.set_gemm(request.param)
    yield request.param
    blas.set_gemm(previous)
