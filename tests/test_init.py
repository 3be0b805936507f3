"""tinynet.init: the initializers' distributions (Keras' and torch's
definitions) and the generators they draw from."""

import re

import numpy as np
import pytest

from tinynet import init

DRAWING = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
           "lecun_normal", "orthogonal"]


@pytest.mark.parametrize("name", DRAWING)
def test_a_seed_draws_what_the_generator_it_makes_draws(name):
    """As Keras' GlorotUniform(seed=0): an int seed once failed with
    "'int' object has no attribute 'uniform'"."""
    fn = init.get(name)
    assert np.array_equal(fn((3, 4), 7), fn((3, 4), np.random.default_rng(7)))
    assert fn((3, 4), None).shape == (3, 4)  # fresh entropy
    with pytest.raises(TypeError, match=f"init.{name} expected seed"):
        fn((3, 4), "0")
    with pytest.raises(ValueError, match=f"init.{name} expected seed"):
        fn((3, 4), -1)


def test_fans_of_a_conv_kernel_count_the_receptive_field():
    """(kh, kw, in, out), Keras' layout: torch's fan_in = in * kh * kw for its
    (out, in, kh, kw) kernel is the same number."""
    assert init.fans((3, 5, 4, 8)) == (4 * 15, 8 * 15)
    w = init.he_uniform((3, 3, 4, 8), np.random.default_rng(0), dtype=np.float64)
    assert np.abs(w).max() <= np.sqrt(6 / 36) and np.abs(w).max() > 0.95 * np.sqrt(6 / 36)


@pytest.mark.parametrize("name", DRAWING[:-1])  # the fan-based ones
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (3, 3, 0, 4), (0,)])
def test_a_zero_fan_gives_an_empty_array_as_in_keras(name, shape):
    """Keras divides by max(1, fan): a shape of no entries gives an empty
    array, where these raised ZeroDivisionError ("float division by zero")."""
    w = init.get(name)(shape, 0, dtype=np.float64)
    assert w.shape == shape and w.dtype == np.float64


@pytest.mark.parametrize("name", list(init.INITIALIZERS) + ["fans"])
def test_every_initializer_checks_its_shape_and_names_itself(name):
    """One check of the shape for all of them: an int is a 1-D shape (zeros took
    5, glorot_uniform failed with "'int' object is not iterable"); a negative size
    failed in NumPy ("negative dimensions are not allowed"); a float or a string was
    NumPy's error, or for zeros a string split into characters."""
    fn = getattr(init, name) if name == "fans" else init.get(name)
    call = fn if name == "fans" else (lambda shape: fn(shape, 0))
    who = f"init.{getattr(fn, '__name__', name)}"
    expected = r"expected shape as a sequence of integers >= 0 such as \(784, 128\), or an int"
    if name == "fans":
        assert call(5) == (5, 5) and call(np.int64(3)) == (3, 3)
    elif name != "orthogonal":  # a matrix: 2-D at least
        assert call(5).shape == (5,) and call(np.int64(3)).shape == (3,)
    for bad, error in [((-1, 3), ValueError), ((2, -4), ValueError), ("5", TypeError),
                       ((2.0, 3), TypeError), (True, TypeError), ((2, None), TypeError),
                       (None, TypeError), (np.array([2.0, 3.0]), TypeError),
                       (np.array([[2, 3]]), TypeError), (np.array(5), TypeError),
                       (np.array([2, -3]), ValueError)]:
        with pytest.raises(error, match=rf"^{who} {expected}, received {re.escape(repr(bad))}$"):
            call(bad)


@pytest.mark.parametrize("shape", [[3, 4], np.array([3, 4]), range(3, 5), (np.int64(3), 4)])
def test_a_checked_shape_draws_what_it_drew(shape):
    """The check makes a list, an array, a range or an int shape a tuple: the same
    draws as before (an array or a range, which main took, was refused by a check
    of tuples and lists only)."""
    assert np.array_equal(init.he_normal(shape, 5),
                          (np.random.default_rng(5).standard_normal((3, 4))
                           * np.sqrt(2 / 3)).astype(np.float32))
    assert np.array_equal(init.glorot_uniform(shape, 0), init.glorot_uniform((3, 4), 0))
    assert init.fans(shape) == (3, 4)


def test_an_int_shape_is_1_d():
    assert np.array_equal(init.glorot_uniform(4, 1), init.glorot_uniform((4,), 1))
    with pytest.raises(ValueError, match=r"init.orthogonal expected shape with at least 2 "
                                         r"dimensions, received \(5,\)"):
        init.orthogonal(5, 0)
