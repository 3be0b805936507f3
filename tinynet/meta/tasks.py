"""Task samplers: sinusoid regression (Finn et al. 2017) and N-way K-shot
classification episodes drawn from any labelled dataset.

A sampler's ``sample(n_tasks, rng=None)`` returns a :class:`TaskBatch`, the
support and query sets of ``n_tasks`` tasks stacked along a leading task
axis, which is the shape every meta-learner in :mod:`tinynet.meta` consumes.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import as_float_array, check_finite, check_positive_int, is_real_dtype
from ..data.batches import as_generator
from ..layers._checks import check_real

__all__ = ["TaskBatch", "SinusoidTasks", "EpisodeSampler", "split_classes"]


def check_targets(y, who: str, what: str) -> np.ndarray:
    """``y`` as an array of real numbers (integer labels or float targets),
    at least 1-D; strings, objects, complex or bool values are refused
    here rather than failing inside a loss."""
    y = np.asarray(y)
    if not is_real_dtype(y.dtype):
        raise TypeError(f"{who} expected {what} of an integer or floating-point dtype, "
                        f"received dtype {y.dtype}")
    if y.ndim == 0:
        raise ValueError(f"{who} expected {what} with one entry per example, received a "
                         f"scalar")
    return y


def check_not_empty(batch: "TaskBatch", who: str) -> None:
    """Refuse a batch without tasks, or whose support or query sets are
    empty (k = 0 or q = 0): every loss is a mean over the tasks and over a
    set's examples, so an empty one divides by zero or gives a NaN loss
    and a zero gradient."""
    if len(batch) == 0:
        raise ValueError(f"{who} expected at least one task, received support_x of shape "
                         f"{batch.support_x.shape}")
    for what, n, name in (("support", "k", "support_x"), ("query", "q", "query_x")):
        shape = getattr(batch, name).shape
        if shape[1] == 0:
            raise ValueError(f"{who} expected at least one {what} example per task, "
                             f"received {n}=0 ({name} of shape {shape})")


class TaskBatch:
    """Support and query sets of several tasks, stacked.

    Parameters
    ----------
    support_x : ndarray of shape (tasks, k, features), with tasks >= 1 and k >= 1
    support_y : ndarray of shape (tasks, k, outputs) (regression) or int
        ndarray of shape (tasks, k) (class labels 0..n_way-1)
    query_x, query_y : the same for the query set (its own size q >= 1,
        the same number of features)
    info : dict of per-task arrays (amplitude, phase, classes, ...), optional
        Each of length ``tasks``, so ``batch[index]`` selects its entries too.
    """

    def __init__(self, support_x, support_y, query_x, query_y, info=None):
        self.support_x = as_float_array(support_x, "TaskBatch", "support_x", ndim=3)
        self.query_x = as_float_array(query_x, "TaskBatch", "query_x", ndim=3)
        self.support_y = check_targets(support_y, "TaskBatch", "support_y")
        self.query_y = check_targets(query_y, "TaskBatch", "query_y")
        if self.query_x.shape[2] != self.support_x.shape[2]:
            raise ValueError(f"TaskBatch expected query_x with {self.support_x.shape[2]} "
                             f"features (as support_x), received shape {self.query_x.shape}")
        n = self.support_x.shape[0]
        for what, arr in (("support_y", self.support_y), ("query_x", self.query_x),
                          ("query_y", self.query_y)):
            if arr.shape[0] != n:
                raise ValueError(f"TaskBatch expected {what} with {n} tasks (as support_x), "
                                 f"received shape {arr.shape}")
        if self.support_y.shape[:2] != self.support_x.shape[:2]:
            raise ValueError(f"TaskBatch expected support_y to start with "
                             f"{self.support_x.shape[:2]}, received {self.support_y.shape}")
        if self.query_y.shape[:2] != self.query_x.shape[:2]:
            raise ValueError(f"TaskBatch expected query_y to start with "
                             f"{self.query_x.shape[:2]}, received {self.query_y.shape}")
        check_not_empty(self, "TaskBatch")
        self.info = {}
        for key, values in dict(info or {}).items():
            values = np.asarray(values)  # indexed like the tasks by batch[index]
            if values.ndim == 0 or len(values) != n:
                raise ValueError(f"TaskBatch expected info[{key!r}] with one entry per task "
                                 f"({n}), received shape {values.shape}")
            self.info[key] = values

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def __getitem__(self, index) -> "TaskBatch":
        """The tasks selected by an index, slice or index array (still a batch)."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return TaskBatch(self.support_x[index], self.support_y[index], self.query_x[index],
                         self.query_y[index], {k: v[index] for k, v in self.info.items()})

    def astype(self, dtype) -> "TaskBatch":
        """The same tasks with float inputs (and float targets) in ``dtype``."""
        def cast(y):
            return y.astype(dtype) if np.issubdtype(y.dtype, np.floating) else y
        return TaskBatch(self.support_x.astype(dtype), cast(self.support_y),
                         self.query_x.astype(dtype), cast(self.query_y), self.info)

    def sample(self, n_tasks, rng=None) -> "TaskBatch":
        """``n_tasks`` tasks drawn from this fixed pool (without replacement
        when there are enough), so a TaskBatch can stand in for a sampler."""
        rng = as_generator(rng, "TaskBatch.sample")
        n_tasks = check_positive_int(n_tasks, "TaskBatch.sample", "n_tasks")
        return self[rng.choice(len(self), n_tasks, replace=n_tasks > len(self))]

    def __repr__(self) -> str:
        return (f"TaskBatch({len(self)} tasks, support {self.support_x.shape[1:]}, "
                f"query {self.query_x.shape[1:]})")


def _check_range(pair, what: str) -> tuple[float, float]:
    """``(low, high)`` of SinusoidTasks: two finite real numbers, low <= high
    (a scalar was a bare unpacking error, an infinite bound numpy's
    OverflowError at the first sample)."""
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise ValueError(f"SinusoidTasks expected {what} as (low, high), received {pair!r}")
    low, high = (check_real(v, "SinusoidTasks", what, low=-math.inf, high=math.inf,
                            low_open=True, high_open=True) for v in pair)
    if not low <= high:
        raise ValueError(f"SinusoidTasks expected {what} as (low, high) with "
                         f"low <= high, received ({low}, {high})")
    return low, high


class SinusoidTasks:
    r"""Sinusoid regression tasks (Finn et al. 2017).

    Each task is :math:`y = A \sin(x - \varphi)` with
    :math:`A \sim U[0.1, 5]`, :math:`\varphi \sim U[0, \pi]`; support and
    query inputs are drawn independently from :math:`U[-5, 5]`.

    Parameters
    ----------
    k_shot : int
        Support points per task (K).
    k_query : int, optional
        Query points per task (default K, as in Finn et al.'s training).
    amplitude, phase, x_range : (low, high), finite, low <= high
    seed : None, int, or a numpy.random Generator, BitGenerator or SeedSequence
        Seeds the sampler's own generator (used when ``sample`` gets no rng;
        see :func:`tinynet.data.as_generator`).
    dtype : default float32
    """

    def __init__(self, k_shot: int = 10, k_query: int | None = None, amplitude=(0.1, 5.0),
                 phase=(0.0, math.pi), x_range=(-5.0, 5.0), seed=None, dtype=np.float32):
        self.k_shot = check_positive_int(k_shot, "SinusoidTasks", "k_shot")
        self.k_query = self.k_shot if k_query is None else check_positive_int(
            k_query, "SinusoidTasks", "k_query")
        amplitude, phase, x_range = (_check_range(pair, what) for what, pair in (
            ("amplitude", amplitude), ("phase", phase), ("x_range", x_range)))
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.dtype = np.dtype(dtype)
        self.rng = as_generator(seed, "SinusoidTasks")

    def sample(self, n_tasks: int, rng=None) -> TaskBatch:
        """``n_tasks`` new tasks; x of shape (tasks, K, 1), y (tasks, K, 1)."""
        n_tasks = check_positive_int(n_tasks, "SinusoidTasks.sample", "n_tasks")
        rng = self.rng if rng is None else as_generator(rng, "SinusoidTasks.sample")
        amp = rng.uniform(*self.amplitude, size=(n_tasks, 1, 1))
        phase = rng.uniform(*self.phase, size=(n_tasks, 1, 1))
        xs = rng.uniform(*self.x_range, size=(n_tasks, self.k_shot, 1))
        xq = rng.uniform(*self.x_range, size=(n_tasks, self.k_query, 1))
        return TaskBatch(xs.astype(self.dtype), (amp * np.sin(xs - phase)).astype(self.dtype),
                         xq.astype(self.dtype), (amp * np.sin(xq - phase)).astype(self.dtype),
                         {"amplitude": amp[:, 0, 0], "phase": phase[:, 0, 0]})

    @staticmethod
    def function(x, amplitude, phase):
        """The task's true function, for plots: ``amplitude * sin(x - phase)``."""
        return amplitude * np.sin(np.asarray(x) - phase)


def split_classes(y, n_test_classes: int, seed=None):
    """Split the classes present in ``y`` into disjoint meta-train and
    meta-test sets (a seeded random choice of ``n_test_classes`` for test).

    Returns
    -------
    train_classes, test_classes : sorted int ndarrays
    """
    classes = np.unique(np.asarray(y))
    n_test_classes = check_positive_int(n_test_classes, "split_classes", "n_test_classes")
    if n_test_classes >= len(classes):
        raise ValueError(f"split_classes expected n_test_classes < {len(classes)} (the "
                         f"number of classes), received {n_test_classes}")
    test = as_generator(seed, "split_classes").choice(classes, n_test_classes, replace=False)
    return np.setdiff1d(classes, test), np.sort(test)


class EpisodeSampler:
    """N-way K-shot episodes from a labelled dataset.

    Each episode picks ``n_way`` of ``classes`` at random, relabels them
    0..n_way-1 in random order, and draws ``k_shot`` support and ``n_query``
    query examples per class, without replacement.

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...) (flattened to (n_samples, features)),
        finite floats
    y : int ndarray of shape (n_samples,)
    n_way, k_shot, n_query : int
    classes : sequence of int, optional
        The classes episodes may use (default: all in ``y``). Give disjoint
        sets (see :func:`split_classes`) to the meta-train and meta-test samplers.
    seed : None, int, or a numpy.random Generator, BitGenerator or SeedSequence
        As :class:`SinusoidTasks`'.
    """

    def __init__(self, x, y, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                 classes=None, seed=None):
        x = as_float_array(x, "EpisodeSampler", "x", min_ndim=2)
        self.x = x.reshape(len(x), math.prod(x.shape[1:]))
        # checked once here, not first when a bad example is drawn mid-training
        check_finite(self.x, "EpisodeSampler", "x")
        y = np.asarray(y)
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"EpisodeSampler expected integer labels of shape ({len(x)},), "
                             f"received {y.dtype} {y.shape}")
        self.n_way = check_positive_int(n_way, "EpisodeSampler", "n_way")
        self.k_shot = check_positive_int(k_shot, "EpisodeSampler", "k_shot")
        self.n_query = check_positive_int(n_query, "EpisodeSampler", "n_query")
        self.classes = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        if len(self.classes) < self.n_way:
            raise ValueError(f"EpisodeSampler expected at least n_way={self.n_way} classes, "
                             f"received {len(self.classes)}")
        self._members = [np.flatnonzero(y == c) for c in self.classes]
        need = self.k_shot + self.n_query
        for c, members in zip(self.classes, self._members):
            if len(members) < need:
                raise ValueError(f"EpisodeSampler expected at least k_shot + n_query = {need} "
                                 f"examples of class {c}, received {len(members)}")
        self.rng = as_generator(seed, "EpisodeSampler")

    def sample(self, n_tasks: int, rng=None) -> TaskBatch:
        """Episodes: support x (tasks, n_way*k_shot, features), labels
        (tasks, n_way*k_shot); query (tasks, n_way*n_query, ...)."""
        n_tasks = check_positive_int(n_tasks, "EpisodeSampler.sample", "n_tasks")
        rng = self.rng if rng is None else as_generator(rng, "EpisodeSampler.sample")
        k, q = self.k_shot, self.n_query
        picked = np.argsort(rng.random((n_tasks, len(self.classes))), axis=1)[:, :self.n_way]
        index = np.empty((n_tasks, self.n_way, k + q), dtype=np.int64)
        for t in range(n_tasks):
            for j, c in enumerate(picked[t]):
                members = self._members[c]
                index[t, j] = members[rng.choice(len(members), k + q, replace=False)]
        labels = np.broadcast_to(np.arange(self.n_way)[None, :, None], index.shape)
        sx = self.x[index[:, :, :k].reshape(n_tasks, -1)]
        qx = self.x[index[:, :, k:].reshape(n_tasks, -1)]
        return TaskBatch(sx, labels[:, :, :k].reshape(n_tasks, -1),
                         qx, labels[:, :, k:].reshape(n_tasks, -1),
                         {"classes": self.classes[picked]})
