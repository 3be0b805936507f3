"""Preprocessing fitted on training data only: splits, scalers, one-hot.

Fit a scaler on the training set and apply the *same* transform to the
validation and test sets; fitting on test data would leak it into training.

>>> scaler = Standardizer().fit(x_train)
>>> x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import (as_array, check_bool, check_finite, check_labels, check_positive_int,
                      is_real_dtype, native_dtype)
from ..layers._checks import check_real
from .batches import aligned_arrays, as_generator, common_length, take_rows, walked_arrays

__all__ = ["MinMaxScaler", "Standardizer", "one_hot", "stratify_problem",
           "train_val_split"]


def _n_val(n_samples: int, val_size) -> int:
    """The number of validation samples :func:`train_val_split` takes of
    ``n_samples`` (:func:`_val_count`), else the error that refuses the split."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float, np.integer,
                                                               np.floating)):
        raise TypeError(f"train_val_split expected val_size as a fraction in (0, 1) or a "
                        f"count, received {type(val_size).__name__}")
    if n_samples < 2:
        # one sample cannot be in both parts; "between 1 and 0" would say nothing
        raise ValueError(f"train_val_split expected at least 2 samples (one for each part), "
                         f"received {n_samples}")
    n_val = _val_count(n_samples, val_size)
    if not 0 < n_val < n_samples:
        raise ValueError(f"train_val_split expected between 1 and {n_samples - 1} validation "
                         f"samples out of {n_samples}, received val_size={val_size!r} "
                         f"({n_val} samples)")
    return n_val


def _val_count(n_samples: int, val_size) -> int:
    """The validation samples that ``val_size`` (a number: a fraction in (0, 1),
    else a ``ValueError``, or a count) asks of ``n_samples``, whether or not
    they leave both parts some: the rule of :func:`_n_val`, which ``tinynet
    train`` asks too to name the ``--val-fraction`` values that fit."""
    if isinstance(val_size, (float, np.floating)):
        if not 0.0 < val_size < 1.0:
            raise ValueError(f"train_val_split expected a fraction val_size in (0, 1), "
                             f"received {val_size}")
        # scikit-learn's rule (train_test_split): ceil, so that a fraction never
        # leaves validation empty while it has samples to give (0.1 of 5 is 1)
        return math.ceil(val_size * n_samples)
    return int(val_size)


def stratify_problem(y, val_size) -> str | None:
    """Why ``train_val_split(x, y, val_size, stratify=True)`` would refuse
    ``y``, as "expected ..., received ..." (None: it splits). A class of one
    sample cannot be in both parts, nor can ``k`` classes be in a part of
    fewer than ``k`` samples (3 validation samples of 4 classes left one
    class out of validation, unsaid): both refused, as scikit-learn refuses
    them ("The test_size = 3 should be greater or equal to the number of
    classes = 4", and the same of the train_size). What passes both checks
    is split with every class in both parts: a class whose share rounds to
    0 in a part still gets one sample there (:func:`_per_class`; with
    ``[0]*2 + [1]*2 + [2]*2 + [3]*94`` and ``val_size=0.9``, scikit-learn's
    training part holds class 3 alone). ``tinynet train`` asks before it
    splits, to draw at random instead."""
    y = np.asarray(y)
    problem = _problem(np.unique(y, return_counts=True), _n_val(len(y), val_size))
    return None if problem is None else problem[0]


def _problem(classes_counts, n_val: int) -> tuple[str, str] | None:
    """``(problem, remedy)`` of :func:`stratify_problem`, given
    ``np.unique(y, return_counts=True)`` and the number of validation samples."""
    classes, counts = classes_counts
    if counts.min() < 2:
        lone = classes[counts < 2]
        return (f"expected at least 2 samples of every class (one for each part), received "
                f"1 sample of {len(lone)} class(es): {lone[:10].tolist()}"
                f"{' ...' if len(lone) > 10 else ''}", "drop those classes")
    n_samples, n_classes = int(counts.sum()), len(classes)
    for part, size, remedy in (("validation", n_val, "raise val_size"),
                               ("training", n_samples - n_val, "lower val_size")):
        if size < n_classes:
            return (f"expected at least {n_classes} {part} samples (one of each of the "
                    f"{n_classes} classes), received {size} of the {n_samples} samples",
                    remedy)
    return None


def _per_class(counts: np.ndarray, n_val: int) -> np.ndarray:
    """How many samples of each class (``counts`` of them) go to validation:
    the largest-remainder shares of ``n_val``, then each kept in
    ``[1, count - 1]`` so that both parts hold every class.

    The shares alone leave out a class whose share rounds to 0 in a part:
    ``[0]*2 + [1]*2 + [2]*2 + [3]*94`` with 90 validation samples gave the
    training part 10 samples of class 3 only (scikit-learn's
    ``train_test_split(stratify=)`` does the same, without a word). A class
    raised to 1 (or lowered to ``count - 1``) is paid for, one sample at a
    time, by the class whose share is furthest above (below) its exact
    ``count * n_val / n``; :func:`_problem`'s checks (every class of at
    least 2, each part at least one per class) are what makes this
    possible. Shares already in range are kept, so such splits are as
    before, to the sample."""
    exact = counts * n_val / counts.sum()
    per_class = np.floor(exact).astype(np.int64)
    short = n_val - int(per_class.sum())
    per_class[np.argsort(-(exact - per_class), kind="stable")[:short]] += 1
    per_class = np.clip(per_class, 1, counts - 1)
    for _ in range(abs(n_val - int(per_class.sum()))):
        if per_class.sum() < n_val:
            room = per_class < counts - 1
            k = np.argmax(np.where(room, exact - per_class, -np.inf))
            per_class[k] += 1
        else:
            room = per_class > 1
            k = np.argmax(np.where(room, per_class - exact, -np.inf))
            per_class[k] -= 1
    return per_class


def _stratified_val_indices(y: np.ndarray, n_val: int, rng) -> np.ndarray:
    """Take from each class its share of ``n_val`` (:func:`_per_class`: at
    least one, and one left for training), at random; what cannot be split
    so (:func:`stratify_problem`) is refused."""
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    problem = _problem((classes, counts), n_val)
    if problem is not None:
        raise ValueError(f"train_val_split(stratify=True) {problem[0]}; split without "
                         f"stratify, or {problem[1]}")
    per_class = _per_class(counts, n_val)
    picked = [rng.permutation(np.flatnonzero(inverse == k))[:per_class[k]]
              for k in range(len(classes))]
    return np.concatenate(picked)


def _read_list(value, name: str):
    """How a top-level ``value`` of :func:`train_val_split` reads: ``"one"``
    array (``np.asarray``), ``"as is"`` (an array, a dict, a list of arrays
    of differing shapes: several arrays), or the common shape of the items
    of a list/tuple of arrays, which fits both readings: ``len(value)``
    samples, or ``len(value)`` arrays of ``shape[0]`` samples each. A list
    of rows ``(w,)`` in x is one array: no model takes a 1-D input (its
    inputs are ``(n_samples, features...)``), and Sequential.fit reads such
    a list as one ``(n, w)`` array."""
    if not isinstance(value, (list, tuple)) or not value:
        return "as is"
    try:
        shapes = {None if isinstance(item, dict) else np.shape(item) for item in value}
    except ValueError:  # a ragged nested list: aligned_arrays says what is wrong
        return "as is"
    if len(shapes) != 1 or None in shapes:
        return "as is"
    shape = shapes.pop()
    if shape == () or (name == "x" and len(shape) == 1):
        return "one"
    return shape


def _aligned_x_y(x, y, who: str) -> tuple:
    """``((x, y), n_samples)``: :func:`~.batches.aligned_arrays` of ``x`` and
    ``y``, every leaf an ndarray, with a top-level list/tuple read as fit
    will read it (:func:`_read_list`): one array made with ``np.asarray``,
    several arrays left as they are. A list of arrays of one shape is read by
    the other argument's number of samples ``n``: ``n`` items (samples) make
    one array, items of ``n`` samples each are several arrays; both or
    neither known is refused rather than guessed. Each argument is walked
    and its leaves counted once."""
    values, names = [x, y], ("x", "y")
    readings = [_read_list(x, "x"), _read_list(y, "y")]
    for i, reading in enumerate(readings):
        if reading == "one":
            values[i] = np.asarray(values[i])
    shaped = [i for i, reading in enumerate(readings) if isinstance(reading, tuple)]
    if not shaped:
        return aligned_arrays(values, names, who, as_arrays=True)
    i = shaped[0]
    value, name, other, shape = values[i], names[i], names[1 - i], readings[i]
    kind = "inputs" if name == "x" else "targets"
    both = (f"{who} cannot tell how to read {name}, a {type(value).__name__} of "
            f"{len(value)} arrays of shape {shape}: as {len(value)} samples (one array, "
            f"as Sequential.fit reads it) or as {len(value)} {kind} of {shape[0]} "
            f"samples each (as tinynet.mtl.Model.fit reads it); give one array, "
            f"np.asarray({name}), or a dict {{name: array}} of {kind}")
    if len(shaped) == 2:
        raise ValueError(f"{both} (the number of samples of {other}, also a list of "
                         f"arrays of one shape, cannot tell)")
    # the other argument first: its number of samples says how this one reads
    (values[1 - i],), lengths = walked_arrays((values[1 - i],), (other,), who, as_arrays=True)
    n = common_length((values[1 - i],), lengths, who)
    as_samples, as_several = len(value) == n, shape[0] == n
    if as_samples and as_several:
        raise ValueError(f"{both} ({other} has {n} samples: both fit)")
    # one array, or several: each item an array (a list of label lists would
    # otherwise be read as one array again by the walk)
    values[i] = np.asarray(value) if as_samples else type(value)(map(np.asarray, value))
    # x's leaves first, as aligned_arrays would name them
    values = tuple(values)
    _, own = walked_arrays((values[i],), (name,), who)
    return values, common_length(values, own + lengths if i == 0 else lengths + own, who)


def train_val_split(x, y, val_size=0.1, stratify: bool = False, shuffle: bool = True,
                    seed=None):
    """Split ``(x, y)`` into a training and a validation part.

    Parameters
    ----------
    x : ndarray of shape (n_samples, ...), or a dict/list/tuple of them
        Several inputs as :meth:`tinynet.mtl.Model.fit` takes them (``[x1,
        x2]``, ``{"img": x1, "meta": x2}``). A list or tuple is read as
        fit will read it (:func:`_read_list`): a list of numbers, or of
        arrays of one shape ``(w,)`` (rows, one per sample), is one array,
        as :meth:`tinynet.Sequential.fit` takes it (no model takes a 1-D
        input); a list of arrays of other or differing shapes is several
        inputs, unless y's number of samples says it is a list of samples.
        Anything else (a DataFrame, an object with ``__array__``) is
        ``np.asarray``-ed, as are the leaves of the containers.
    y : ndarray of shape (n_samples, ...), or a dict/list/tuple of them
        Several targets (``{"digit": y1, "parity": y2}``, ``[y1, y2]``); a
        list of arrays of one shape is one array or several by x's number of
        samples, as for x. Every array, in x and in y, is split by the
        same rows. A list that reads both ways (``n`` arrays of ``n``
        samples each, for ``n`` samples) is refused: give ``np.asarray(y)``
        or a dict.
    val_size : float in (0, 1) or int, default 0.1
        Fraction or number of samples that go to validation; a fraction
        gives ``ceil(val_size * n_samples)`` of them, scikit-learn's rule in
        ``train_test_split`` (0.1 of 5 samples is 1, 0.25 of 10 is 3).
    stratify : bool, default False
        Keep each class's share (``y`` holds class labels: one array, not
        several) in both parts, with every class in each part (a class
        whose share rounds to 0 in a part still gets one sample there,
        which scikit-learn does not ensure); every class needs at least 2
        samples, and each part at least one sample per class (a ValueError
        otherwise, as in scikit-learn).
    shuffle : bool, default True
        Pick validation samples at random; ``False`` takes the last ones
        (for data already in a meaningful order, e.g. time).
    seed : None, int, or a numpy.random Generator, BitGenerator or SeedSequence
        See :func:`tinynet.data.as_generator`.

    Returns
    -------
    (x_train, y_train), (x_val, y_val)
        Copies, in the containers x and y came in; each part keeps the
        original order of its samples.
    """
    who = "train_val_split"
    stratify = check_bool(stratify, who, "stratify")
    shuffle = check_bool(shuffle, who, "shuffle")
    (x, y), n_samples = _aligned_x_y(x, y, who)
    n_val = _n_val(n_samples, val_size)
    if stratify:
        if isinstance(y, (dict, list, tuple)):
            raise ValueError(f"{who}(stratify=True) expected y as one array of class labels "
                             f"of shape ({n_samples},), received a {type(y).__name__} of "
                             f"arrays; to stratify by one task's labels, split the row "
                             f"numbers: {who}(np.arange({n_samples}), labels, "
                             f"stratify=True), then take those rows of every array")
        if y.ndim != 1:
            raise ValueError(f"{who}(stratify=True) expected class labels of shape "
                             f"({n_samples},), received {y.shape}")
        if not shuffle:
            raise ValueError(f"{who}: stratify=True needs shuffle=True")
        val = _stratified_val_indices(y, n_val, as_generator(seed, who))
    elif shuffle:
        val = as_generator(seed, who).permutation(n_samples)[:n_val]
    else:
        val = np.arange(n_samples - n_val, n_samples)
    is_val = np.zeros(n_samples, dtype=bool)
    is_val[val] = True
    return take_rows((x, y), ~is_val), take_rows((x, y), is_val)


def one_hot(y, n_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """Rows of the identity: ``one_hot([2, 0], 3) == [[0, 0, 1], [1, 0, 0]]``.

    Parameters
    ----------
    y : int array of shape (n_samples,) or (n_samples, 1)
        Labels in ``[0, n_classes)``; a column of labels (a trailing axis of
        1, as Keras' ``to_categorical`` accepts) is read as its one column.
    n_classes : int >= 1, optional
        Defaults to ``max(y) + 1``.
    dtype : default float32
        Given in the other byte order (``">f4"``), the native one.

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
    """
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        y_arr = y_arr[:, 0]
    elif y_arr.ndim != 1:
        raise ValueError(f"one_hot expected labels of shape (n_samples,) or (n_samples, 1), "
                         f"received {y_arr.shape}")
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "one_hot", "n_classes")
    else:
        if y_arr.size == 0:
            raise ValueError("one_hot needs n_classes for an empty label array")
        # at least 1, so that negative labels get check_labels' range message
        n_classes = (max(int(np.max(y_arr)) + 1, 1)
                     if np.issubdtype(y_arr.dtype, np.number) else 1)
    labels = check_labels(y_arr, n_classes, len(y_arr), "one_hot")
    # in the machine's byte order, as the scalers give (">f4" is float32 here)
    out = np.zeros((len(labels), n_classes), dtype=native_dtype(dtype))
    out[np.arange(len(labels)), labels] = 1
    return out


class _Scaler:
    """Shared fit/transform bookkeeping: ``y = (x - offset) / scale``.

    ``axis=0`` keeps one statistic per feature (per pixel for images);
    ``axis=None`` one for the whole array.
    """

    def __init__(self, axis=0):
        if axis not in (0, None):
            raise ValueError(f"{type(self).__name__} expected axis 0 (per feature) or None "
                             f"(global), received {axis!r}")
        self.axis = axis
        self.offset_ = None
        self.scale_ = None
        self.n_features_shape_ = None

    def _check_x(self, x, fitting: bool) -> np.ndarray:
        who = type(self).__name__
        x = as_array(x, who, "x")  # a masked array refused, as every input check does
        if not (is_real_dtype(x.dtype) or x.dtype == bool):  # complex: no order, no range
            raise TypeError(f"{who} expected a numeric array of real numbers (integers, "
                            f"floats or booleans), received dtype {x.dtype}")
        if x.ndim < 1 or (self.axis == 0 and x.ndim < 2):
            raise ValueError(f"{who} expected x of shape (n_samples, n_features, ...), "
                             f"received {x.shape}")
        if fitting and x.shape[0] == 0:
            raise ValueError(f"{who}.fit expected at least one sample, received {x.shape}")
        check_finite(x, who, "x")
        if not fitting:
            if self.scale_ is None:
                raise ValueError(f"{who} is not fitted yet; call fit(x_train) first")
            if self.axis == 0 and x.shape[1:] != self.n_features_shape_:
                raise ValueError(f"{who} was fitted on samples of shape "
                                 f"{self.n_features_shape_}, received x of shape {x.shape}")
        return x

    def _statistics(self, x, x_min, x_max, constant):
        """``(offset, scale)``, with a finite positive ``scale`` for a constant
        feature (``constant``: no spread to divide by)."""
        raise NotImplementedError

    #: What else fit's messages of a scale that overflows or underflows suggest.
    _rescale_hint = ""

    def fit(self, x):
        """Learn the statistics from training data ``x``; returns ``self``."""
        x = self._check_x(x, fitting=True)
        x = x.astype(np.float64, copy=False)
        x_min, x_max = x.min(axis=self.axis), x.max(axis=self.axis)
        # a constant feature has no spread: each scaler says what it divides by instead
        # of 0 (tested exactly: a rounded mean of equal values can show a tiny false spread)
        constant = x_max == x_min
        with np.errstate(over="ignore", invalid="ignore"):
            offset, scale = self._statistics(x, x_min, x_max, constant)
        if not (np.isfinite(offset).all() and np.isfinite(scale).all()):
            raise ValueError(f"{type(self).__name__}.fit: the data's statistics overflow "
                             f"float64 (values spanning about +-1e308); rescale the data "
                             f"first{self._rescale_hint}")
        # a constant feature's scale is positive, so a 0 is a varying feature's that
        # underflowed: replaced by 1, it would leave that feature unscaled, silently
        underflow = ~(scale > 0)
        if underflow.any():
            spread = float(np.max(np.where(underflow, x_max - x_min, 0.0)))
            raise ValueError(f"{type(self).__name__}.fit: the scale of "
                             f"{np.count_nonzero(underflow)} feature(s) that are not "
                             f"constant underflows float64 to 0 (spread {spread:.3g} or "
                             f"less); rescale the data first{self._rescale_hint}")
        self.offset_, self.scale_ = offset, np.asarray(scale)  # 0-d for axis=None, as before
        self.n_features_shape_ = x.shape[1:]
        return self

    @staticmethod
    def _out_dtype(x, dtype):
        """``dtype``, else x's if a float, else float32; in the native byte
        order (``>f4`` data from a FITS file scales to float32, which the
        layers and kernels take as it is)."""
        if dtype is not None:
            return native_dtype(dtype)
        return native_dtype(x.dtype) if np.issubdtype(x.dtype, np.floating) \
            else np.dtype(np.float32)

    def transform(self, x, dtype=None) -> np.ndarray:
        """Scale ``x``; floats keep their dtype, integers become float32."""
        x = self._check_x(x, fitting=False)
        out_dtype = self._out_dtype(x, dtype)
        return ((x - self.offset_) / self.scale_).astype(out_dtype, copy=False)

    def fit_transform(self, x, dtype=None) -> np.ndarray:
        return self.fit(x).transform(x, dtype=dtype)

    def inverse_transform(self, x_scaled, dtype=None) -> np.ndarray:
        """Undo :meth:`transform` (up to floating-point rounding)."""
        x_scaled = self._check_x(x_scaled, fitting=False)
        out_dtype = self._out_dtype(x_scaled, dtype)
        return (x_scaled * self.scale_ + self.offset_).astype(out_dtype, copy=False)

    def state_dict(self) -> dict:
        """The fitted statistics as arrays (to store beside a model's weights).

        ``{"offset", "scale"}``: float64 arrays of the samples' shape (0-d for
        ``axis=None``); ``"axis"``: 0, or -1 for None. Copies: changing them
        changes nothing in the scaler.
        """
        if self.scale_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted yet; nothing to save")
        return {"offset": np.array(self.offset_), "scale": np.array(self.scale_),
                "axis": np.asarray(-1 if self.axis is None else self.axis)}

    @classmethod
    def _state_config(cls, state: dict, who: str) -> dict:
        """The constructor's arguments besides ``axis`` a state holds (none here)."""
        return {}

    _STATE_KEYS = ("offset", "scale", "axis")

    @classmethod
    def from_state_dict(cls, state: dict):
        """Rebuild a fitted scaler from :meth:`state_dict` (copies of its arrays).

        Every entry is checked first: exactly the keys ``state_dict`` writes,
        ``axis`` 0 or -1, ``offset`` and ``scale`` real, finite and of one
        shape (0-d for axis -1), ``scale > 0`` (it divides), and what the
        constructor checks (``feature_range``); anything else is refused with
        an error naming the entry, as no fitted scaler saves it.
        """
        who = f"{cls.__name__}.from_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{who} expected a dict of arrays (as state_dict returns), "
                            f"received {type(state).__name__}")
        for key in cls._STATE_KEYS:
            if key not in state:
                raise ValueError(f"{who} expected the entry {key!r}, which the state lacks")
        for key in state:
            if key not in cls._STATE_KEYS:
                raise ValueError(f"{who}: unexpected entry {key!r}; a {cls.__name__}'s "
                                 f"state holds {', '.join(cls._STATE_KEYS)}")
        axis = np.asarray(state["axis"])
        if axis.shape or not np.issubdtype(axis.dtype, np.integer) or int(axis) not in (0, -1):
            raise ValueError(f"{who} expected 'axis' 0 (per feature) or -1 (global), "
                             f"received {axis!r}"[:300])
        axis = None if int(axis) == -1 else 0
        arrays = {}
        for key in ("offset", "scale"):
            value = np.asarray(state[key])
            if not is_real_dtype(value.dtype):
                raise TypeError(f"{who} expected {key!r} as real numbers, received dtype "
                                f"{value.dtype}")
            value = np.array(value, dtype=np.float64)
            if not np.isfinite(value).all():
                raise ValueError(f"{who} expected {key!r} finite, received non-finite values")
            arrays[key] = value
        offset, scale = arrays["offset"], arrays["scale"]
        expected = "()" if axis is None else f"{scale.shape} of 'scale'"
        if offset.shape != scale.shape or (axis is None) != (scale.ndim == 0):
            raise ValueError(f"{who} expected 'offset' of shape {offset.shape} and 'scale' "
                             f"of shape {scale.shape} to be one shape, {expected} for "
                             f"axis {'-1' if axis is None else '0'}, with at least one "
                             f"dimension for axis 0")
        if not (scale > 0).all():
            raise ValueError(f"{who} expected 'scale' > 0 (it divides), received "
                             f"{scale.min()}")
        scaler = cls(axis=axis, **cls._state_config(state, who))
        scaler.offset_, scaler.scale_ = offset, scale
        scaler.n_features_shape_ = scale.shape if axis == 0 else None
        return scaler


class Standardizer(_Scaler):
    r"""Zero mean and unit variance, with statistics from the training data.

    .. math:: x' = \frac{x - \mu}{\sigma}, \qquad x = x' \sigma + \mu

    with :math:`\mu, \sigma` the mean and (population) standard deviation of
    the training data, per feature (``axis=0``) or overall (``axis=None``).
    A constant feature (:math:`\sigma = 0`) is only centred; a varying one
    whose :math:`\sigma` underflows float64 to 0 (squared deviations that
    underflow: a spread below about 1e-160, the bound rising with the number
    of samples) is a ``ValueError`` at ``fit``, not left unscaled; a spread
    just above it gives a :math:`\sigma` with few correct digits (11 % off at
    4e-162 for ``[0, s]``), as NumPy's ``std`` does.

    Attributes
    ----------
    offset_ : ndarray of shape x.shape[1:] (or scalar)  -- the mean
    scale_ : ndarray of shape x.shape[1:] (or scalar)   -- the standard deviation
    """

    def _statistics(self, x, x_min, x_max, constant):
        # a constant feature: centred (on its exact value), not scaled
        return (np.where(constant, x_min, x.mean(axis=self.axis)),
                np.where(constant, 1.0, x.std(axis=self.axis)))

    @property
    def mean_(self):
        return self.offset_

    @property
    def std_(self):
        return self.scale_


class MinMaxScaler(_Scaler):
    r"""Map the training data's range onto ``feature_range`` (default [0, 1]).

    .. math:: x' = a + (b - a)\,\frac{x - x_{min}}{x_{max} - x_{min}}

    Values outside the training range map outside ``[a, b]`` (no clipping).
    ``b - a`` must be a float64 that ``1 / (b - a)`` is too (a range wider
    than about 1.8e308 is refused, not turned into zero scales); a feature
    whose scale :math:`(x_{max} - x_{min}) / (b - a)` underflows to 0 is a
    ``ValueError`` at ``fit``, as it is for :class:`Standardizer`.
    A constant feature (:math:`x_{max} = x_{min}`) takes a range of 1, as in
    scikit-learn: :math:`x' = a + (b - a)(x - x_{min})`, so its training value
    maps to ``a`` and other values move ``b - a`` per unit
    (:meth:`inverse_transform` undoes it alike).
    """

    def __init__(self, feature_range=(0.0, 1.0), axis=0):
        if not isinstance(feature_range, (tuple, list, np.ndarray)) or len(feature_range) != 2:
            raise TypeError(f"MinMaxScaler expected feature_range as a pair (low, high), "
                            f"received {feature_range!r}")
        low, high = (check_real(v, "MinMaxScaler", "feature_range's bounds", low=-np.inf,
                                high=np.inf, low_open=True, high_open=True)
                     for v in feature_range)
        if not low < high:
            raise ValueError(f"MinMaxScaler expected feature_range (low, high) with "
                             f"low < high, received {feature_range!r}")
        # fit divides the data's range by the width, and a constant feature's 1:
        # an infinite width made every scale 0, a subnormal one 1 / width infinite
        with np.errstate(over="ignore"):
            width = np.float64(high) - np.float64(low)
            if not (np.isfinite(width) and np.isfinite(1.0 / width)):
                raise ValueError(f"MinMaxScaler expected feature_range (low, high) with a "
                                 f"width high - low that float64 holds and divides by "
                                 f"(about 5.6e-309 to 1.8e308), received {feature_range!r}, "
                                 f"of width {width:.3g}")
        super().__init__(axis=axis)
        self.feature_range = (low, high)

    def _statistics(self, x, x_min, x_max, constant):
        low, high = self.feature_range
        # x' = (x - offset) / scale with offset, scale chosen so x_min -> low, x_max -> high;
        # a constant feature's range counts as 1 (scikit-learn's _handle_zeros_in_scale)
        scale = np.where(constant, 1.0, x_max - x_min) / (high - low)
        return x_min - low * scale, scale

    _rescale_hint = " (or use a feature_range of another width)"
    _STATE_KEYS = _Scaler._STATE_KEYS + ("feature_range",)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["feature_range"] = np.asarray(self.feature_range)
        return state

    @classmethod
    def _state_config(cls, state: dict, who: str) -> dict:
        bounds = np.asarray(state["feature_range"])
        if bounds.shape != (2,):  # a list: the constructor checks each bound's type
            raise TypeError(f"{who} expected 'feature_range' as a pair (low, high), "
                            f"received an array of shape {bounds.shape}")
        return {"feature_range": bounds.tolist()}
