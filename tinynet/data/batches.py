"""Mini-batches: shuffled (with a seed) index batches and the arrays they select.

A custom training loop can iterate over ``Batches(x, y, batch_size=...,
shuffle=True, seed=...)``: each pass (epoch) draws a new permutation from
the same generator, so a seed fixes the whole sequence of batches of a run.
(``fit`` draws its own, per epoch from the seed and the epoch number, so that
a resumed run continues exactly: :func:`tinynet.training.epoch_rng`.)

Arrays may be nested in dicts, lists or tuples (several targets of a
multi-task model): every leaf array is indexed by the same rows.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_array, check_bool, check_positive_int, check_seed

__all__ = ["Batches", "as_generator", "batch_indices", "iterate_minibatches", "n_batches",
           "take_rows"]


def as_generator(seed=None, who: str = "as_generator") -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``seed``, as ``np.random.default_rng``
    makes it, for every function of tinynet that takes a seed or a generator:

    * ``None``: fresh entropy from the operating system;
    * a non-negative integer (Python's or NumPy's): a seeded Generator;
    * a ``Generator``: returned as is (shared, so draws advance it);
    * a ``BitGenerator`` (shared) or a ``SeedSequence``: a Generator over it.

    Anything else, a bool (a likely slip), a float or a negative integer
    included, is refused with an error naming ``who`` (a negative integer
    was NumPy's bare "expected non-negative integer").
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (np.random.BitGenerator, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not (seed is None or isinstance(seed, (int, np.integer))):
        raise TypeError(f"{who} expected seed as None or a non-negative integer, or a "
                        f"numpy.random Generator, BitGenerator or SeedSequence, received "
                        f"{seed!r} of type {type(seed).__name__}"[:300])
    return np.random.default_rng(check_seed(seed, who))


def n_batches(n_samples: int, batch_size: int, drop_last: bool = False) -> int:
    r"""Number of batches one pass over ``n_samples`` makes (``fit``'s steps,
    ``evaluate``'s and ``predict``'s progress): :math:`\lceil n / b \rceil`,
    or :math:`\lfloor n / b \rfloor` with ``drop_last``, in integers."""
    return n_samples // batch_size if drop_last else -(-n_samples // batch_size)


def batch_indices(n_samples: int, batch_size: int, shuffle: bool = True, seed=None,
                  drop_last: bool = False) -> list:
    """Row indices of each batch of one pass.

    Parameters
    ----------
    n_samples : int
    batch_size : int
        Positive; larger than ``n_samples`` gives one batch (or none with
        ``drop_last``).
    shuffle : bool, default True
        Draw a random permutation; otherwise batches are consecutive slices.
    seed : None, int, or a numpy.random Generator, BitGenerator or SeedSequence
        See :func:`tinynet.data.as_generator`.
    drop_last : bool, default False
        Leave out the last batch when it is smaller than ``batch_size``.

    Returns
    -------
    list of (slice or int64 ndarray of shape (batch,))
        Slices when not shuffling (so batches are views, no copies).
    """
    batch_size = check_positive_int(batch_size, "batch_indices", "batch_size")
    shuffle = check_bool(shuffle, "batch_indices", "shuffle")
    drop_last = check_bool(drop_last, "batch_indices", "drop_last")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < 0:
        raise ValueError(f"batch_indices expected n_samples as a non-negative integer, "
                         f"received {n_samples!r}")
    count = n_batches(int(n_samples), batch_size, drop_last)
    if not shuffle:
        return [slice(i * batch_size, min((i + 1) * batch_size, n_samples))
                for i in range(count)]
    order = as_generator(seed, "batch_indices").permutation(n_samples)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def take_rows(arrays, index):
    """``arrays[index]`` for an array or for every leaf of nested dicts/lists/tuples."""
    if isinstance(arrays, dict):
        return {key: take_rows(value, index) for key, value in arrays.items()}
    if isinstance(arrays, (list, tuple)):
        return type(arrays)(take_rows(value, index) for value in arrays)
    return arrays[index]


def _leading_lengths(arrays, path="arrays", who="Batches", nested=False):
    """``(path, n_samples)`` of every leaf array, a leaf that is a scalar
    refused (``nested``: inside a dict, list or tuple, else the argument
    itself, such as ``y=None``)."""
    if isinstance(arrays, dict):
        for key, value in arrays.items():
            yield from _leading_lengths(value, f"{path}[{key!r}]", who, True)
    elif isinstance(arrays, (list, tuple)):
        for i, value in enumerate(arrays):
            yield from _leading_lengths(value, f"{path}[{i}]", who, True)
    else:
        shape = np.shape(arrays)
        if not shape and not nested:
            raise ValueError(f"{who} expected {path} as an array of shape (n_samples, ...), "
                             f"or a dict, list or tuple of them, received "
                             f"{arrays!r} ({type(arrays).__name__})"[:300])
        if not shape:
            raise ValueError(f"{who} expected arrays of shape (n_samples, ...), received "
                             f"a scalar at {path}: a list or tuple holds either arrays (one "
                             f"per input or task) or numbers only, maybe in nested lists "
                             f"(one array of them)")
        yield path, shape[0]


def _is_numbers(value) -> bool:
    """A number, or a non-empty list or tuple of numbers or of such lists, all
    the way down: no array and no dict in it."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_numbers(item) for item in value)
    return not isinstance(value, dict) and np.ndim(value) == 0


def _numbers_as_arrays(arrays, path="arrays", who="Batches", as_arrays: bool = False):
    """``arrays`` with every list or tuple of numbers only, or of lists of
    numbers only (nested to any depth), made one array (``np.asarray``):
    labels as a plain list, ``[0, 1, 2]``, and a feature matrix as a nested
    list, ``[[1., 2.], [3., 4.]]`` (two samples), as Keras takes them. Other
    lists, tuples and dicts are containers of arrays (one per input or task),
    walked in turn: several inputs are a list holding arrays, so a nested
    list of numbers is never read as several inputs (its columns as samples).
    A ragged nested list of numbers is refused. ``as_arrays``: every other
    leaf too is ``np.asarray``-ed (a pandas object, anything with
    ``__array__``; :func:`~tinynet.checks.as_array`, which refuses a masked
    array), unless that makes a 0-d array (a scalar, which
    :func:`_leading_lengths` refuses as it was given)."""
    if isinstance(arrays, dict):
        return {key: _numbers_as_arrays(value, f"{path}[{key!r}]", who, as_arrays)
                for key, value in arrays.items()}
    if isinstance(arrays, (list, tuple)):
        if _is_numbers(arrays):
            try:
                return np.asarray(arrays)
            except ValueError:  # ragged: numpy refuses an inhomogeneous shape
                raise ValueError(f"{who} expected a list of numbers, or of lists of numbers "
                                 f"of one shape (one array, as np.asarray reads it), received "
                                 f"a ragged nested list at {path}; give several inputs or "
                                 f"tasks as a list of arrays") from None
        return type(arrays)(_numbers_as_arrays(value, f"{path}[{i}]", who, as_arrays)
                            for i, value in enumerate(arrays))
    if as_arrays:  # (a masked array refused: np.asarray dropped its mask)
        array = as_array(arrays, who, "each array of x and y")
        return arrays if array.ndim == 0 else array
    return arrays


def aligned_arrays(arrays, names, who: str, as_arrays: bool = False) -> tuple:
    """``(arrays, n_samples)``: each of ``arrays`` (an array or nested
    dicts/lists/tuples of them, one per name in ``names``, which the errors
    give as its path) with its lists of numbers made arrays (and with
    ``as_arrays`` every leaf: :func:`_numbers_as_arrays`), after checking
    that every leaf array has the same number of samples, ``n_samples``.
    What :class:`Batches` and :func:`~tinynet.data.train_val_split` take
    alike."""
    arrays, lengths = walked_arrays(arrays, names, who, as_arrays)
    return arrays, common_length(arrays, lengths, who)


def walked_arrays(arrays, names, who: str, as_arrays: bool = False) -> tuple:
    """:func:`aligned_arrays` without the check: ``(arrays, lengths)``, the
    arrays walked and ``(path, n_samples)`` of each leaf, for
    :func:`common_length` (of these, or of more, read in the light of
    these)."""
    arrays = tuple(_numbers_as_arrays(array, name, who, as_arrays)
                   for array, name in zip(arrays, names))
    return arrays, [pair for array, name in zip(arrays, names)
                    for pair in _leading_lengths(array, name, who)]


def common_length(arrays, lengths, who: str) -> int:
    """The number of samples every leaf of ``arrays`` has (``lengths``:
    :func:`walked_arrays`' ``(path, n_samples)`` of each), or a
    ``ValueError`` naming the first leaf that differs from the first."""
    if not lengths:
        raise ValueError(f"{who} expected at least one array, received containers "
                         f"with no array in them: {arrays!r}"[:300])
    n_samples = lengths[0][1]
    for path, length in lengths[1:]:
        if length != n_samples:
            raise ValueError(f"{who} expected every array to have the same number of "
                             f"samples, {n_samples} (like {lengths[0][0]}), received "
                             f"{length} in {path}")
    return n_samples


class Batches:
    """Iterable of mini-batches over aligned arrays; each iteration is one epoch.

    Parameters
    ----------
    *arrays : ndarray of shape (n_samples, ...), or dict/list/tuple of them
        All indexed by the same rows; they must agree on ``n_samples``. A
        list or tuple of numbers only (labels ``[0, 1, 2]``), or of such
        lists (a feature matrix ``[[1., 2.], [3., 4.]]``), is one array
        (``np.asarray``), as Keras takes it; several inputs or tasks are a
        list or tuple holding arrays (``[x1, x2]``).
    batch_size : int, default 32
    shuffle : bool, default True
        New permutation at every iteration (epoch).
    seed : None, int, or a numpy.random Generator, BitGenerator or SeedSequence
        See :func:`tinynet.data.as_generator`.
        Source of the permutations: the same seed gives the same sequence
        of epochs.
    drop_last : bool, default False

    Yields
    ------
    tuple
        One batch per array given, in order (the batch itself if only one
        array was given).

    Examples
    --------
    >>> x, y = np.zeros((10, 3)), np.arange(10)
    >>> batches = Batches(x, y, batch_size=4, seed=0)
    >>> len(batches), [len(yb) for _, yb in batches]
    (3, [4, 4, 2])
    """

    def __init__(self, *arrays, batch_size: int = 32, shuffle: bool = True, seed=None,
                 drop_last: bool = False):
        if not arrays:
            raise ValueError("Batches expected at least one array")
        self.batch_size = check_positive_int(batch_size, "Batches", "batch_size")
        # each argument apart: Batches(1, 2) stays two arguments (and is refused)
        self.arrays, self.n_samples = aligned_arrays(
            arrays, [f"arrays[{i}]" for i in range(len(arrays))], "Batches")
        self.shuffle = check_bool(shuffle, "Batches", "shuffle")
        self.drop_last = check_bool(drop_last, "Batches", "drop_last")
        self.rng = as_generator(seed, "Batches")

    def __len__(self) -> int:
        return n_batches(self.n_samples, self.batch_size, self.drop_last)

    def __iter__(self):
        for index in batch_indices(self.n_samples, self.batch_size, self.shuffle,
                                   self.rng, self.drop_last):
            batch = take_rows(self.arrays, index)
            yield batch[0] if len(batch) == 1 else batch


def iterate_minibatches(*arrays, batch_size: int = 32, shuffle: bool = True, seed=None,
                        drop_last: bool = False):
    """One pass of mini-batches (a generator); see :class:`Batches`."""
    return iter(Batches(*arrays, batch_size=batch_size, shuffle=shuffle, seed=seed,
                        drop_last=drop_last))
