"""tinynet.recipes: the pieces the command line, the demo and the benchmarks share."""

import pytest

from tinynet.recipes import cosine_schedule, load_for_training


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
