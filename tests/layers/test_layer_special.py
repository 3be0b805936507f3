"""tinynet.layers.special.erfc against the standard library's math.erfc."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinynet.layers.special import erfc, normal_cdf


def _reference(x):
    return np.array([math.erfc(v) for v in np.ravel(x)]).reshape(np.shape(x))


def _assert_close(got, ref):
    normal = np.abs(ref) > 1e-300  # subnormal results carry fewer digits
    np.testing.assert_allclose(got[normal], ref[normal], rtol=1.5e-15, atol=0)
    np.testing.assert_allclose(got[~normal], ref[~normal], rtol=0, atol=1e-300)


@given(arrays(np.float64, st.integers(0, 50),
              elements=st.floats(-30, 30, allow_nan=False, allow_subnormal=False)))
def test_matches_math_erfc(x):
    _assert_close(erfc(x), _reference(x))


def test_dense_grid_and_branch_edges():
    x = np.concatenate([np.linspace(-27, 27, 20001),
                        np.nextafter(1.0, [0, 2]), np.nextafter(-1.0, [0, -2]),
                        np.nextafter(2.0, [0, 3]), [0.0, -0.0, 1e-300, -1e-300]])
    _assert_close(erfc(x), _reference(x))


def test_special_values_and_dtypes():
    got = erfc(np.array([np.nan, np.inf, -np.inf, 1e300, -1e300]))
    np.testing.assert_array_equal(got, [np.nan, 0.0, 2.0, 0.0, 2.0])
    x32 = np.linspace(-10, 10, 101, dtype=np.float32)
    assert erfc(x32).dtype == np.float32
    np.testing.assert_allclose(erfc(x32), _reference(x32.astype(np.float64)).astype(np.float32),
                               rtol=1e-6)
    assert erfc(np.zeros((2, 0))).shape == (2, 0)


def test_normal_cdf_keeps_relative_accuracy_in_the_far_tail():
    x = np.array([-30.0, -10.0, -1.0, 0.0, 1.0, 10.0])
    # the same rounding of z = -x/sqrt(2) as normal_cdf: an error of one ulp in
    # z alone changes erfc(z) by ~2 z^2 ulps
    ref = np.array([0.5 * math.erfc(v * -math.sqrt(0.5)) for v in x])
    np.testing.assert_allclose(normal_cdf(x), ref, rtol=2e-15)
    assert normal_cdf(np.float32([-3.0])).dtype == np.float32
