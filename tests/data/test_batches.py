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


def test_a_plain_list_of_labels_is_one_array():
    # Batches(x, [0, 1, 2]) read the list as a container of three scalars and
    # failed with "received a scalar at arrays[1][0]"
    x = np.arange(6).reshape(3, 2)
    batches = list(Batches(x, [0, 1, 2], batch_size=2, shuffle=False))
    assert isinstance(batches[0][1], np.ndarray)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), [0, 1, 2])
    y = {"digit": (5, 6, 7), "parity": [[1, 0, 1], np.array([0, 1, 0])]}
    _, yb = next(iter(Batches(x, y, batch_size=3, shuffle=False)))
    np.testing.assert_array_equal(yb["digit"], [5, 6, 7])
    np.testing.assert_array_equal(yb["parity"][0], [1, 0, 1])
    with pytest.raises(ValueError, match=r"expected arrays of shape \(n_samples, \.\.\.\), "
                                         r"received a scalar at arrays\[1\]\[1\]: a list or "
                                         r"tuple holds either arrays .* or numbers only"):
        Batches(x, [np.arange(3), 4])


def test_a_nested_list_of_numbers_is_one_array_not_several_inputs():
    # Batches([[1., 2.], [3., 4.]], [0, 1]) read the matrix as two inputs, its columns
    # as samples: batches of ([1.], [3.]) instead of rows [1., 2.]
    batches = list(Batches([[1., 2.], [3., 4.]], [0, 1], batch_size=1, shuffle=False))
    assert len(batches) == 2
    np.testing.assert_array_equal(batches[0][0], [[1., 2.]])
    np.testing.assert_array_equal(batches[1][0], [[3., 4.]])
    np.testing.assert_array_equal(batches[1][1], [1])
    nested = [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]  # (3, 2, 2) images
    xb = next(iter(Batches(tuple(nested), batch_size=3, shuffle=False)))
    np.testing.assert_array_equal(xb, np.arange(12).reshape(3, 2, 2))
    # several inputs are a list holding arrays: its inner lists stay inputs of their own
    (x1, x2), _ = next(iter(Batches([np.zeros((2, 3)), [[1, 2], [3, 4]]], [0, 1],
                                    batch_size=2, shuffle=False)))
    assert x1.shape == (2, 3) and x2.shape == (2, 2)
    with pytest.raises(ValueError, match=r"expected a list of numbers, or of lists of "
                                         r"numbers of one shape .* received a ragged nested "
                                         r"list at arrays\[1\]\['a'\]; give several inputs"):
        Batches(np.zeros(2), {"a": [[1, 2], [3]]})
    with pytest.raises(ValueError, match=r"ragged nested list at arrays\[0\]"):
        Batches([[1, 2], 3])


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
    for empty in ({}, (), [], {"y": {}}):  # containers without an array were an IndexError
        with pytest.raises(ValueError, match=r"at least one array, received .* no array"):
            Batches(empty)
    # a top-level scalar was told "a list or tuple holds either arrays or numbers"
    with pytest.raises(ValueError, match=r"expected arrays\[0\] as an array of shape "
                                         r"\(n_samples, \.\.\.\), .* received "
                                         r".*1\.0\)? \(float64\)$"):
        Batches(np.float64(1.0))
    with pytest.raises(ValueError, match=r"expected arrays\[1\] as an array .* received None"):
        Batches(np.zeros(4), None)
    with pytest.raises(ValueError, match="n_samples"):
        batch_indices(-1, 2)


# Draws of every function that takes a seed, recorded with the code before
# tinynet.meta's generator() and tinynet.data's as_generator became one
# function: a given seed must keep giving the same data.
RECORDED = {
    "batch_indices": [9, 6, 0, 2, 1, 4, 7, 5, 3, 8],
    "batch_indices_np": [9, 6, 0, 2, 1, 4, 7, 5, 3, 8],
    "Batches": [[1, 4, 2, 3, 7, 5, 6, 0], [0, 1, 3, 6, 4, 7, 2, 5]],
    "split": [3, 8, 12, 13],
    "split_strat": [0, 5, 9, 16],
    "sinusoid": [-3.558404, 4.486495],
    "sinusoid_rng": [4.762437, -4.19164],
    "split_classes": [[0, 3, 4, 5, 7, 8, 9], [1, 2, 6]],
    "episode": [4.0, 6.0],
    "episode_bitgen": [2.0, 12.0],
    "episode_seedseq": [2.0, 12.0],
    "taskbatch": [4.0, 8.0, 0.0, 13.0],
}


def test_seeded_draws_are_the_ones_recorded_before_the_two_helpers_merged():
    from tinynet.data.preprocessing import train_val_split
    from tinynet.meta.tasks import EpisodeSampler, SinusoidTasks, split_classes

    def support(batch):
        return np.round(batch.support_x.ravel().astype(float), 6).tolist()

    b = Batches(np.arange(8), batch_size=8, seed=5)
    y = np.arange(6).repeat(3)
    x = np.arange(18, dtype=np.float32)[:, None]
    episodes = EpisodeSampler(x, y, n_way=2, k_shot=1, n_query=1, seed=9)
    got = {
        "batch_indices": batch_indices(10, 10, seed=3)[0].tolist(),
        "batch_indices_np": batch_indices(10, 10, seed=np.int64(3))[0].tolist(),
        "Batches": [next(iter(b)).tolist(), next(iter(b)).tolist()],
        "split": train_val_split(np.arange(20), np.arange(20) % 2, val_size=4,
                                 seed=7)[1][0].tolist(),
        "split_strat": train_val_split(np.arange(20), np.arange(20) % 2, val_size=4,
                                       stratify=True, seed=np.uint32(7))[1][0].tolist(),
        "sinusoid": support(SinusoidTasks(k_shot=2, seed=1).sample(1)),
        "sinusoid_rng": support(SinusoidTasks(k_shot=2).sample(1, rng=4)),
        "split_classes": [sorted(map(int, c))
                          for c in split_classes(np.arange(10).repeat(2), 3, seed=2)],
        "episode": episodes.sample(1).support_x.ravel().tolist(),
        "episode_bitgen": EpisodeSampler(x, y, 2, 1, 1).sample(
            1, rng=np.random.PCG64(3)).support_x.ravel().tolist(),
        "episode_seedseq": EpisodeSampler(x, y, 2, 1, 1).sample(
            1, rng=np.random.SeedSequence(3)).support_x.ravel().tolist(),
        "taskbatch": EpisodeSampler(x, y, 2, 1, 1, seed=9).sample(3).sample(
            2, rng=11).support_x.ravel().tolist(),
    }
    assert got == RECORDED


def test_as_generator_takes_bit_generators_and_seed_sequences_as_default_rng_does():
    bits = np.random.PCG64(4)
    gen = as_generator(bits)
    assert gen.bit_generator is bits  # shared, as default_rng shares it
    assert as_generator(np.random.SeedSequence(4)).random() == \
        np.random.default_rng(np.random.SeedSequence(4)).random()
    assert as_generator(np.uint64(2**64 - 1)).random() == \
        np.random.default_rng(2**64 - 1).random()
    # batch_indices and Batches took neither before
    assert len(batch_indices(5, 5, seed=np.random.PCG64(0))[0]) == 5
    assert len(next(iter(Batches(np.arange(4), batch_size=4,
                                 seed=np.random.SeedSequence(0))))) == 4


@pytest.mark.parametrize("seed, error, match", [
    (-1, ValueError, "batch_indices expected seed as None or a non-negative integer, "
                     "received -1"),
    (np.int64(-2), ValueError, "received -2"),
    (True, TypeError, "batch_indices expected seed as None or a non-negative integer, or a "
                      "numpy.random Generator, BitGenerator or SeedSequence, received True "
                      "of type bool"),
    (1.0, TypeError, "received 1.0 of type float"),
    ("3", TypeError, "received '3' of type str"),
    (np.random.RandomState(0), TypeError, "of type RandomState"),
])
def test_bad_seeds_are_refused_with_tinynets_message(seed, error, match):
    # a negative seed was NumPy's bare "expected non-negative integer"
    with pytest.raises(error, match=match):
        batch_indices(10, 5, seed=seed)
    with pytest.raises(error, match=match.replace("batch_indices", "as_generator")):
        as_generator(seed)
