"""Task samplers: the sinusoid distribution of Finn et al. and N-way K-shot
episodes with disjoint meta-train / meta-test classes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinynet.meta import EpisodeSampler, SinusoidTasks, TaskBatch, split_classes


def test_sinusoid_tasks_follow_the_protocol():
    batch = SinusoidTasks(k_shot=5, k_query=7, seed=0).sample(2000)
    assert batch.support_x.shape == (2000, 5, 1) and batch.query_y.shape == (2000, 7, 1)
    assert batch.support_x.dtype == np.float32
    amp, phase = batch.info["amplitude"], batch.info["phase"]
    assert 0.1 <= amp.min() and amp.max() <= 5.0 and 0 <= phase.min() and phase.max() <= np.pi
    assert abs(amp.mean() - 2.55) < 0.1 and abs(phase.mean() - np.pi / 2) < 0.1
    assert -5 <= batch.query_x.min() and batch.query_x.max() <= 5
    expected = SinusoidTasks.function(batch.query_x, amp[:, None, None], phase[:, None, None])
    assert np.allclose(batch.query_y, expected, atol=1e-5)
    again = SinusoidTasks(k_shot=5, k_query=7, seed=0).sample(2000)
    assert np.array_equal(again.support_y, batch.support_y)


def test_task_batch_indexing_and_pool_sampling():
    batch = SinusoidTasks(k_shot=3, seed=1).sample(10)
    part = batch[2:5]
    assert len(part) == 3 and np.array_equal(part.support_x, batch.support_x[2:5])
    assert np.array_equal(part.info["phase"], batch.info["phase"][2:5])
    assert len(batch[4]) == 1
    drawn = batch.sample(4, rng=0)
    assert len(drawn) == 4 and len(set(drawn.info["phase"])) == 4
    assert batch.astype(np.float64).query_y.dtype == np.float64
    with pytest.raises(ValueError, match="tasks"):
        TaskBatch(np.zeros((2, 3, 1)), np.zeros((3, 3, 1)), np.zeros((2, 3, 1)),
                  np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="support_y"):
        TaskBatch(np.zeros((2, 3, 1)), np.zeros((2, 4, 1)), np.zeros((2, 3, 1)),
                  np.zeros((2, 3, 1)))


@given(st.integers(2, 4), st.integers(1, 3), st.integers(1, 4), st.integers(0, 1000))
def test_episodes_are_n_way_k_shot_from_allowed_classes(n_way, k_shot, n_query, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(8), 9)
    x = (y[:, None] * 100 + np.arange(len(y))[:, None] % 9).astype(np.float64)  # decodable
    train, test = split_classes(y, 4, seed=seed)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == 8
    sampler = EpisodeSampler(x, y, n_way, k_shot, n_query, classes=test, seed=seed)
    batch = sampler.sample(3, rng=rng)
    assert batch.support_x.shape == (3, n_way * k_shot, 1)
    assert batch.query_y.shape == (3, n_way * n_query)
    for t in range(3):
        classes_s = (batch.support_x[t, :, 0] // 100).astype(int)
        classes_q = (batch.query_x[t, :, 0] // 100).astype(int)
        assert set(classes_s) <= set(test)
        # one original class per episode label, the same in support and query
        for label in range(n_way):
            assert len(set(classes_s[batch.support_y[t] == label])) == 1
            assert set(classes_q[batch.query_y[t] == label]) == set(
                classes_s[batch.support_y[t] == label])
        # no example both in support and query
        assert not set(batch.support_x[t, :, 0]) & set(batch.query_x[t, :, 0])
        assert np.array_equal(np.sort(batch.info["classes"][t]), np.unique(classes_s))


def test_sampler_errors():
    with pytest.raises(ValueError, match="k_shot"):
        SinusoidTasks(k_shot=0)
    with pytest.raises(ValueError, match="amplitude"):
        SinusoidTasks(amplitude=(5, 1))
    y = np.repeat(np.arange(3), 4)
    x = np.zeros((12, 2))
    with pytest.raises(ValueError, match="at least n_way"):
        EpisodeSampler(x, y, n_way=4)
    with pytest.raises(ValueError, match="k_shot \\+ n_query"):
        EpisodeSampler(x, y, n_way=2, k_shot=2, n_query=3)
    with pytest.raises(ValueError, match="integer labels"):
        EpisodeSampler(x, y.astype(float), n_way=2, k_shot=1, n_query=1)
    with pytest.raises(TypeError, match="floating-point"):
        EpisodeSampler(x.astype(int), y, n_way=2, k_shot=1, n_query=1)
    with pytest.raises(ValueError, match="n_test_classes"):
        split_classes(y, 3)


@pytest.mark.parametrize("shapes, message", [
    (((1, 0, 1), (1, 0, 1), (1, 2, 1), (1, 2, 1)),
     r"at least one support example per task, received k=0 \(support_x of shape \(1, 0, 1\)\)"),
    (((2, 3, 1), (2, 3), (2, 0, 1), (2, 0)),
     r"at least one query example per task, received q=0 \(query_x of shape \(2, 0, 1\)\)"),
    (((0, 3, 1), (0, 3, 1), (0, 2, 1), (0, 2, 1)), "at least one task"),
])
def test_task_batch_refuses_empty_support_or_query_sets(shapes, message):
    # every loss is a mean over a set's examples: an empty one was a bare
    # ZeroDivisionError (mse) or a NaN loss with a zero gradient (cross-entropy)
    with pytest.raises(ValueError, match=f"TaskBatch expected {message}"):
        TaskBatch(*(np.zeros(s, int if len(s) == 2 else float) for s in shapes))


def test_task_batch_refuses_non_numeric_or_scalar_targets_and_mismatched_features():
    # string targets failed inside the loss (numpy UFuncTypeError), a scalar
    # target was an IndexError, and query inputs with other features than the
    # support inputs were accepted
    x = np.zeros((2, 3, 1))
    with pytest.raises(TypeError, match="TaskBatch expected support_y of an integer or "
                                        "floating-point dtype, received dtype <U1"):
        TaskBatch(x, np.full((2, 3, 1), "a"), x, np.zeros((2, 3, 1)))
    with pytest.raises(TypeError, match="TaskBatch expected query_y of an integer or "
                                        "floating-point dtype, received dtype object"):
        TaskBatch(x, np.zeros((2, 3, 1)), x, np.zeros((2, 3, 1), object))
    with pytest.raises(ValueError, match="TaskBatch expected support_y with one entry per "
                                         "example, received a scalar"):
        TaskBatch(x, 0.0, x, np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match=r"TaskBatch expected query_x with 1 features \(as "
                                         r"support_x\), received shape \(2, 3, 5\)"):
        TaskBatch(x, np.zeros((2, 3, 1)), np.zeros((2, 3, 5)), np.zeros((2, 3, 1)))


def test_episode_sampler_refuses_non_finite_or_empty_data_up_front():
    # a NaN image was only found when an episode happened to draw it, in the
    # middle of meta_fit; an empty dataset was a raw numpy reshape error
    y = np.repeat(np.arange(3), 4)
    x = np.zeros((12, 2, 2))
    x[7, 1, 0] = np.inf
    with pytest.raises(ValueError, match="EpisodeSampler expected finite x, received 1 NaN"):
        EpisodeSampler(x, y, n_way=2, k_shot=1, n_query=1)
    with pytest.raises(ValueError, match="EpisodeSampler expected at least n_way=2 classes, "
                                         "received 0"):
        EpisodeSampler(np.zeros((0, 4)), np.zeros(0, int), n_way=2)
    assert EpisodeSampler(np.zeros((12, 2, 2)), y, n_way=2, k_shot=1,
                          n_query=1).x.shape == (12, 4)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"amplitude": 5}, ValueError, r"SinusoidTasks expected amplitude as \(low, high\), "
                                   r"received 5"),
    ({"x_range": (-np.inf, 1)}, ValueError, r"expected x_range in \(-inf, inf\), received -inf"),
    ({"phase": (0, "1")}, TypeError, "expected phase as a real number, received '1'"),
    ({"amplitude": (5, 1)}, ValueError, r"low <= high, received \(5.0, 1.0\)"),
    ({"seed": -1}, ValueError, "SinusoidTasks expected seed as None or a non-negative integer"),
])
def test_sinusoid_tasks_refuse_bad_ranges_and_seeds(kwargs, error, match):
    # a scalar range was a bare unpacking TypeError, an infinite bound numpy's
    # OverflowError at the first sample, a negative seed numpy's bare
    # "expected non-negative integer"
    with pytest.raises(error, match=match):
        SinusoidTasks(**kwargs)


def test_sampler_seeds_are_checked_and_generators_accepted():
    y = np.repeat(np.arange(4), 3)
    x = np.zeros((12, 2))
    batch = SinusoidTasks(3, seed=0).sample(4)
    for call, who in ((lambda s: SinusoidTasks(3).sample(2, rng=s), "SinusoidTasks.sample"),
                      (lambda s: EpisodeSampler(x, y, 2, 1, 1, seed=s), "EpisodeSampler"),
                      (lambda s: EpisodeSampler(x, y, 2, 1, 1).sample(2, rng=s),
                       "EpisodeSampler.sample"),
                      (lambda s: batch.sample(2, rng=s), "TaskBatch.sample"),
                      (lambda s: split_classes(y, 2, seed=s), "split_classes")):
        with pytest.raises(ValueError, match=f"{who} expected seed as None or a non-negative"):
            call(-1)
        call(np.random.default_rng(0))
        call(np.int64(3))
    gen = np.random.default_rng(5)
    first = SinusoidTasks(3).sample(2, rng=gen)
    again = SinusoidTasks(3).sample(2, rng=np.random.default_rng(5))
    assert np.array_equal(first.support_x, again.support_x)


def test_task_batch_info_holds_one_entry_per_task():
    # info of another length was sliced silently out of step with the tasks
    # (batch[1:] paired task 1 with entry 1 of 5); a list could not be indexed
    x, y = np.zeros((3, 2, 1)), np.zeros((3, 2, 1))
    with pytest.raises(ValueError, match=r"TaskBatch expected info\['a'\] with one entry per "
                                         r"task \(3\), received shape \(5,\)"):
        TaskBatch(x, y, x, y, info={"a": np.arange(5)})
    with pytest.raises(ValueError, match=r"info\['b'\] with one entry per task"):
        TaskBatch(x, y, x, y, info={"b": 1.0})
    batch = TaskBatch(x, y, x, y, info={"a": [10, 11, 12]})
    assert np.array_equal(batch[[2, 0]].info["a"], [12, 10])
