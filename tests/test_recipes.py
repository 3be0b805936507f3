"""tinynet.recipes: the pieces the command line, the demo and the benchmarks share."""

import re

import numpy as np
import pytest

from tinynet.recipes import apply_preprocessing, cosine_schedule, load_for_training


def test_cosine_schedule_decays_and_then_stays_at_its_floor():
    """Past ``epochs`` it once climbed back up the cosine (to lr at 2 * epochs)."""
    schedule = cosine_schedule(0.1, 10, final_fraction=0.1)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(5) == pytest.approx(0.055)
    values = [schedule(e) for e in range(25)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert schedule(10) == schedule(15) == schedule(20) == pytest.approx(0.01)


@pytest.mark.parametrize("limit, error", [(-1, ValueError), (0, ValueError), (2.5, TypeError)])
def test_load_for_training_refuses_a_limit_that_is_no_positive_integer(limit, error):
    """limit=-1 once sliced one sample off the end, limit=0 left nothing."""
    with pytest.raises(error, match="limit as a positive integer"):
        load_for_training("digits", limit=limit)
    assert len(load_for_training("digits", limit=3).train[0]) == 3


@pytest.mark.parametrize("raw", [np.arange(64, dtype=np.uint8), np.uint8(7)])
def test_apply_preprocessing_refuses_an_array_without_a_sample_axis(raw):
    """A 1-D sample of 64 pixels became 64 samples of one feature (scikit-learn
    refuses 1-D input: it could be one sample or one feature of many)."""
    with pytest.raises(ValueError, match=re.escape(f"received a {raw.ndim}-D array of shape "
                                                   f"{raw.shape}; reshape it: raw.reshape(1, -1) "
                                                   f"if it is one sample")):
        apply_preprocessing(raw, {"scale": 16.0})
    one = apply_preprocessing(np.arange(64, dtype=np.uint8).reshape(1, 8, 8), {"scale": 16.0})
    assert one.shape == (1, 64) and one.dtype == np.float32 and one[0, 63] == 63 / 16
