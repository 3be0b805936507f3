"""Mini-batch iteration: coverage, order, seeds, drop_last, nested arrays, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.data import Batches, as_generator, batch_indices, iterate_minibatches


@given(n=st.integers(0, 60), batch_size=st.integers(1, 20), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_one_pass_covers_each_row_at_most_once(n, batch_size, shuffle, drop_last, seed):
    x = np.arange(n) * 10
    batches = Batches(x, np.arange(n), batch_size=batch_size, shuffle=shuffle, seed=seed,
                      drop_last=drop_last)
    seen = [(xb, yb) for xb, yb in batches]
    assert len(seen) == len(batches)
    rows = np.concatenate([yb for _, yb in seen]) if seen else np.array([], int)
    for xb, yb in seen:
        np.testing.assert_array_equal(xb, yb * 10)  # x and y stay aligned
        assert len(yb) == batch_size or (not drop_last and yb is seen[-1][1])
    assert len(set(rows.tolist())) == len(rows)
    expected = n - n % batch_size if drop_last else n
    assert len(rows) == expected
    if not shuffle:
        np.testing.assert_array_equal(rows, np.arange(expected))


def test_same_seed_same_epochs_and_each_epoch_reshuffles():
    x = np.arange(100)
    first = Batches(x, batch_size=10, seed=3)
    second = Batches(x, batch_size=10, seed=3)
    epoch_a1, epoch_a2 = [list(first) for _ in range(2)]
    epoch_b1, epoch_b2 = [list(second) for _ in range(2)]
    for a, b in zip(epoch_a1 + epoch_a2, epoch_b1 + epoch_b2):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.concatenate(epoch_a1), np.concatenate(epoch_a2))


def test_generator_is_shared_not_copied():
    rng = np.random.default_rng(0)
    assert as_generator(rng) is rng
    batch_indices(10, 3, seed=rng)
    assert not np.array_equal(batch_indices(10, 10, seed=rng)[0],
                              batch_indices(10, 10, seed=np.random.default_rng(0))[0])


def test_nested_targets_are_indexed_together():
    x = np.arange(12).reshape(6, 2)
    y = {"digit": np.arange(6), "parity": [np.arange(6) % 2, np.arange(6) * 3]}
    for xb, yb in iterate_minibatches(x, y, batch_size=4, seed=1):
        np.testing.assert_array_equal(xb[:, 0] // 2, yb["digit"])
        np.testing.assert_array_equal(yb["parity"][0], yb["digit"] % 2)
        np.testing.assert_array_equal(yb["parity"][1], yb["digit"] * 3)


def test_unshuffled_batches_are_views():
    x = np.arange(10)
    first = next(iter(Batches(x, batch_size=4, shuffle=False)))
    assert np.shares_memory(first, x)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": -3}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"seed": "abc"}, TypeError, "seed"),
    # a truth value would make shuffle="False" shuffle
    ({"shuffle": "False"}, TypeError, "shuffle as True or False"),
    ({"drop_last": "no"}, TypeError, "drop_last as True or False"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Batches(np.zeros(4), **kwargs)
    with pytest.raises(error, match=match):
        batch_indices(4, **{"batch_size": 2, **kwargs})


def test_mismatched_lengths_name_the_array():
    with pytest.raises(ValueError, match=r"received 3 in arrays\[1\]"):
        Batches(np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="at least one array"):
        Batches()
    with pytest.raises(ValueError, match="scalar"):
        Batches(np.float64(1.0))
    with pytest.raises(ValueError, match="n_samples"):
        batch_indices(-1, 2)
