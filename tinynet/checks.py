"""Input checks shared by layers, losses, models and the command line.

Every check raises ``TypeError`` or ``ValueError`` with a message that says
*who* complained, what was *expected* and what was *received*, so that bad
input never ends as a crash deep inside NumPy or as silently wrong numbers.
"""

from __future__ import annotations

import difflib

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "as_array",
    "as_float_array",
    "as_float_targets",
    "as_class_weight",
    "as_mask",
    "as_sample_weight",
    "summable_weights",
    "as_values_like",
    "check_bool",
    "check_finite",
    "check_int_sequence",
    "check_labels",
    "check_positive_int",
    "check_seed",
    "check_task_keys",
    "check_verbose",
    "check_widths",
    "did_you_mean",
    "lookup",
    "native_dtype",
    "per_task",
    "unknown_tasks",
]


#: The floating dtypes tinynet computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_real_dtype(dtype) -> bool:
    """Integer or floating (not bool, complex, object or anything else): what a
    weight, a state array or a weighting's result may hold."""
    return np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)


def native_dtype(dtype) -> np.dtype:
    """``dtype`` in the machine's byte order (``>f4`` is float32 here)."""
    return np.dtype(dtype).newbyteorder("=")


def as_array(x, who: str, what: str = "input") -> np.ndarray:
    """``np.asarray(x)``, or a ``TypeError`` naming ``who`` and ``what`` when
    NumPy cannot convert ``x`` (a ragged list), instead of NumPy's own error.

    What every input check starts with (:func:`as_float_array`, the targets,
    weights and masks), so the one place for what holds for all inputs: a
    plain ``np.ndarray`` comes back as it is; a subclass of it comes back a
    plain array, a view of it (``np.matrix``, whose methods differ: its
    ``max`` takes no ``keepdims``, so a Softmax failed inside NumPy); a
    masked array (``np.ma.MaskedArray``: ``netCDF4``, ``np.genfromtxt(...,
    usemask=True)``) is refused (``TypeError``), since its masked entries
    have no value to compute with: NumPy's masked arithmetic skipped them
    on the NumPy backend while the Numba kernels read the data under the
    mask (another BatchNorm moving mean on each), and a view would read that
    data on both. The error says to fill them, with a value of the caller's
    choosing (``x.filled()`` alone fills a float array with 1e20)."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{who} expected {what} as a plain array, received a masked array "
                        f"(np.ma.MaskedArray), whose masked entries have no value to compute "
                        f"with; fill them first with the values they should take, e.g. "
                        f"x.filled(x.mean(axis=0)) (each column's mean over its unmasked "
                        f"entries; not x.filled() alone, which fills floats with 1e+20), "
                        f"or leave those samples out")
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{who} expected {what} as a numeric array, received "
                        f"{type(x).__name__} that NumPy cannot convert ({exc})") from None


def as_float_array(x, who: str, what: str = "input", ndim: int | None = None,
                   min_ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a float32 or float64 ndarray, or raise a clear error.

    Integer, boolean and object arrays are refused (``TypeError``): a silent
    cast would hide, for example, forgetting to scale uint8 pixels. So are
    the other floating dtypes (float16, longdouble): the kernels and
    optimizers compute in float32 or float64 only, and a silent cast would
    change the precision the caller asked for. Floats in the other byte
    order (``>f4`` from FITS files or ``np.frombuffer``) are the same
    numbers: they come back in the native order, a copy (the kernels and
    the dtype checks want native arrays). NumPy computes on them as they
    are; PyTorch refuses them (``torch.from_numpy`` and ``torch.tensor``
    raise on a non-native byte order), which tinynet does not follow.
    """
    x = as_array(x, who, what)
    if x.dtype == object or not np.issubdtype(x.dtype, np.floating):
        hint = ""
        if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
            hint = " (convert it first, e.g. x.astype('float32') / 255 for pixels)"
        raise TypeError(f"{who} expected {what} of a floating-point dtype, "
                        f"received dtype {x.dtype}{hint}")
    if native_dtype(x.dtype) in FLOAT_DTYPES:
        x = x.astype(native_dtype(x.dtype), copy=False)
    if x.dtype not in FLOAT_DTYPES:
        last = what.split()[-1] if what.split() else ""
        name = last if last.isidentifier() and last != "input" else "x"  # "targets y": y
        raise TypeError(f"{who} expected float32 or float64 {what}, received {x.dtype} "
                        f"(use {name}.astype('float32'))")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{who} expected {what} with {ndim} dimensions, "
                         f"received shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{who} expected {what} with at least {min_ndim} dimensions, "
                         f"received shape {x.shape}")
    return x


def as_float_targets(target, pred: np.ndarray, who: str) -> np.ndarray:
    """Finite float targets shaped like ``pred``, to compare element by element.

    What the element-wise losses and the regression metrics accept alike:
    integer and boolean targets are cast to ``pred``'s dtype (a float array
    keeps its own); a target of shape ``(batch,)`` is taken for predictions
    of shape ``(batch, 1)`` (a one-output regression). Any other shape than
    ``pred``'s is refused: reshaping, say, ``(n, 3, 2)`` targets to ``(n, 2, 3)``
    predictions would compare the wrong elements without a word.
    """
    target = as_array(target, who, "targets")
    if target.dtype == bool or (target.dtype != object
                                and np.issubdtype(target.dtype, np.integer)):
        target = target.astype(pred.dtype)
    target = as_float_array(target, who, "targets")
    if target.shape != pred.shape and pred.shape == target.shape + (1,):
        target = target.reshape(pred.shape)
    if target.shape != pred.shape:
        raise ValueError(f"{who} expected targets of the predictions' shape {pred.shape}, "
                         f"received {target.shape}")
    check_finite(target, who, "targets")
    return target


def as_mask(mask, n_samples: int, who: str, what: str = "mask") -> np.ndarray:
    """``mask`` as booleans of shape ``(n_samples,)``, one per sample.

    Accepted: booleans, or numbers that are all 0 or 1. Anything else is
    refused rather than cast: ``astype(bool)`` would read 0.5, 2, NaN or a
    string as True and keep samples the caller meant to leave out.
    """
    arr = as_array(mask, who, what)
    if arr.dtype != bool and not is_real_dtype(arr.dtype):
        raise TypeError(f"{who} expected {what} as booleans (or 0/1), received dtype "
                        f"{arr.dtype}")
    if arr.shape != (n_samples,):
        raise ValueError(f"{who} expected {what} of shape ({n_samples},) (one per sample), "
                         f"received {arr.shape}")
    if arr.dtype != bool and not ((arr == 0) | (arr == 1)).all():
        bad = arr[~((arr == 0) | (arr == 1))]
        raise ValueError(f"{who} expected {what} values True/False or 0/1, received "
                         f"{bad.size} other value(s) such as {bad[0]}")
    return arr.astype(bool)


def as_sample_weight(weight, n_samples: int, who: str, what: str = "sample_weight") -> np.ndarray:
    """Per-sample weights as float64 of shape ``(n_samples,)``: real numbers
    (or booleans), finite and non-negative; what the losses and ``fit`` take."""
    arr = as_array(weight, who, what)
    _check_weight_dtype(arr, who, what)
    if arr.shape != (n_samples,):
        raise ValueError(f"{who} expected {what} of shape ({n_samples},) (one per sample), "
                         f"received {arr.shape}")
    return _nonnegative_float64(arr, who, what)


def summable_weights(weight, factor: float = 1.0):
    r"""``weight`` itself when its sum, times ``factor``, is finite (every
    ordinary run: nothing changes, to the bit), else
    ``weight / weight.max() / max(factor, 1)``: weights near the largest
    float (``np.full(n, 1e308)``) sum to infinity, and a weighted mean
    :math:`\sum_i w_i \ell_i / \sum_i w_i` of them was inf/inf, NaN. That
    mean does not change when every weight is scaled by one factor, so the
    weights of one ``fit`` or ``evaluate`` are scaled together, before they
    are split into batches (the batches' means combine by their total
    weights). None stays None.

    ``factor`` is the largest number each weight is still to be multiplied
    by: a class weight (``fit(class_weight=)``, or a loss's own,
    ``CrossEntropy(weight=c)``, whose mean sums :math:`w_i c_{y_i}`;
    :func:`tinynet.class_weights.largest_class_weight`). A weight of 1e308
    times a class weight of 2 overflows although the weights' sum may not:
    with ``factor`` the test is :math:`\max(1, c_{max}) \sum_i w_i`, and
    the scaled weights times any class weight stay at most 1."""
    if weight is None:
        return weight
    with np.errstate(over="ignore"):  # the overflow is the case handled here
        total = weight.sum() * factor
    if np.isfinite(total):
        return weight
    return weight / weight.max() / max(factor, 1.0)


def as_class_weight(weight, who: str, what: str = "weight", scalar: bool = False,
                    all_zero: bool = False) -> np.ndarray:
    """Per-class weights as float64 of shape ``(n_classes,)``: a 1-D sequence of
    real numbers, finite and non-negative (and, unless ``all_zero``, not all
    zero: every loss would be 0 and nothing would train). ``scalar=True`` also
    accepts one number, returned as shape ``(1,)``. The length is the caller's
    to check against the predictions (the classes are known only when they
    arrive).

    Booleans are refused (``TypeError``), as :func:`check_real` refuses them
    everywhere else: ``pos_weight=True`` or a boolean array is more likely a
    mask or a flag passed in the wrong place than the weights 1.0 and 0.0.
    Negative weights are refused too, although PyTorch accepts them: they
    turn the loss of their class into a quantity to *maximise*, unbounded
    below, which no minimiser of the loss can mean."""
    if weight is None or isinstance(weight, (str, bytes, dict)):
        raise TypeError(f"{who} expected {what} as a sequence of numbers (one per class), "
                        f"received {type(weight).__name__}")
    arr = as_array(weight, who, what)
    _check_weight_dtype(arr, who, what, bools=False)
    if isinstance(weight, (list, tuple)) and any(isinstance(v, (bool, np.bool_))
                                                 for v in weight):
        # NumPy reads [2.0, True] as floats; a True among weights is a slip all the same
        raise TypeError(f"{who} expected {what} as real numbers, received a bool among "
                        f"them: {weight!r}"[:300])
    if scalar and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{who} expected {what} as a non-empty 1-D sequence (one weight "
                         f"per class), received shape {arr.shape}")
    arr = _nonnegative_float64(arr, who, what)
    if not all_zero and not arr.any():
        raise ValueError(f"{who} expected {what} with at least one positive value, "
                         f"received all zeros")
    return arr


def _check_weight_dtype(arr: np.ndarray, who: str, what: str, bools: bool = True) -> None:
    """Refuse any dtype but integers and floats (and booleans if ``bools``)."""
    if arr.dtype == bool and not bools:
        raise TypeError(f"{who} expected {what} as real numbers, received booleans "
                        f"({np.array2string(arr, threshold=8)}) of dtype bool")
    if arr.dtype != bool and not is_real_dtype(arr.dtype):
        raise TypeError(f"{who} expected {what} as a numeric array, received dtype {arr.dtype}")


def _nonnegative_float64(arr: np.ndarray, who: str, what: str) -> np.ndarray:
    arr = arr.astype(np.float64)
    check_finite(arr, who, what)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{who} expected non-negative {what}, received a minimum of "
                         f"{arr.min()}")
    return arr


def check_finite(x: np.ndarray, who: str, what: str = "input") -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity."""
    if x.size and not np.isfinite(x).all():
        n_bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{who} expected finite {what}, received {n_bad} NaN or "
                         f"infinite value(s) in an array of shape {x.shape}")


def as_values_like(new, like: np.ndarray, who: str, what: str, nonnegative: bool = False,
                   allow_posinf: bool = False) -> np.ndarray:
    """``new`` as values of ``like``'s shape and dtype, to replace ``like``'s.

    What :func:`tinynet.io.set_weights` takes for a weight and
    ``Optimizer.load_state_dict`` for a state array (a weight file or a saved
    state is the user's data: a bad array is refused, never cast into wrong
    numbers). Refused: a dtype other than integer or floating (bool, complex
    -- a cast would drop the imaginary part --, strings, objects;
    ``TypeError``), another shape, NaN, infinities (``allow_posinf`` lets
    +inf through: a second moment that overflowed), negative values when
    ``nonnegative``, and finite values that overflow ``like``'s dtype
    (``1e300`` into float32). Returned cast to ``like``'s dtype, not copied
    when it has it already. Nothing is changed: the caller assigns.
    """
    new = as_array(new, who, what)
    if not is_real_dtype(new.dtype):
        raise TypeError(f"{who}: {what} expected a real numeric array, "
                        f"received dtype {new.dtype}")
    if new.shape != like.shape:
        raise ValueError(f"{who}: {what} expected shape {like.shape}, received {new.shape}")
    if not (nonnegative or allow_posinf):
        check_finite(new, who, f"values in {what}")
    else:
        interval = f"{'[0' if nonnegative else '(-inf'}, inf{']' if allow_posinf else ')'}"
        inside = (new >= 0) if nonnegative else (new > -np.inf)  # NaN fails every test
        inside &= (new <= np.inf) if allow_posinf else (new < np.inf)
        check_inside(new, inside, who, what, interval)
    return cast_within(new, like.dtype, who, what)


def cast_within(new: np.ndarray, dtype, who: str, what: str, copy: bool = False) -> np.ndarray:
    """``new`` cast to ``dtype`` (copied only when it has another, or with
    ``copy``), or a ``ValueError`` if a finite value overflows it (``1e300``
    into float32 would become inf without a word but NumPy's warning)."""
    with np.errstate(over="ignore"):
        cast = new.astype(dtype, copy=copy)
    overflow = np.isfinite(new) & ~np.isfinite(cast)
    if overflow.any():
        raise ValueError(f"{who}: {what} expected values within the range of "
                         f"{np.dtype(dtype)}, received values up to "
                         f"{np.abs(new[overflow]).max():g} that overflow it")
    return cast


def check_inside(values: np.ndarray, inside: np.ndarray, who: str, what: str,
                 interval: str) -> None:
    """Raise ``ValueError`` unless every one of ``values`` lies in ``interval``
    (``inside``: a boolean array, True where one does), showing a few of the
    others."""
    if not inside.all():
        outside = values[~inside]
        examples = ", ".join(repr(float(v)) for v in np.unique(outside)[:3])
        raise ValueError(f"{who}: {what} expected values in {interval}, received "
                         f"{outside.size} value(s) outside it ({examples}) in an "
                         f"array of shape {values.shape}")


def check_labels(y, n_classes: int | None, n_samples: int, who: str) -> np.ndarray:
    """Check integer class labels: 1-D, right length, in ``[0, n_classes)``
    (``n_classes=None``: any label >= 0)."""
    y = as_array(y, who, "class labels")
    if y.dtype == object or not (np.issubdtype(y.dtype, np.integer)
                                 or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"{who} expected integer class labels, received dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{who} expected labels of shape ({n_samples},), received {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{who} expected {n_samples} labels (one per sample), "
                         f"received {y.shape[0]}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise TypeError(f"{who} expected integer class labels, received non-integer "
                            f"values of dtype {y.dtype}")
    if y.size and n_classes is None and y.min() < 0:
        raise ValueError(f"{who} expected class labels >= 0, received {y.min()}")
    if y.size and n_classes is not None:
        low, high = y.min(), y.max()
        if low < 0 or high >= n_classes:
            raise ValueError(f"{who} expected labels in [0, {n_classes - 1}] for "
                             f"{n_classes} classes, received values in [{low}, {high}]")
    return y.astype(np.int64, copy=False)


def check_bool(value, who: str, what: str) -> bool:
    """Return ``value`` if it is a bool (Python's or NumPy's), else raise
    ``TypeError``: ``shuffle="no"`` must not mean True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who} expected {what} as True or False, "
                        f"received {value!r} of type {type(value).__name__}")
    return bool(value)


def check_positive_int(value, who: str, what: str) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{who} expected {what} as a positive integer, "
                        f"received {value!r} of type {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{who} expected {what} as a positive integer, received {value}")
    return int(value)


#: The batch size of fit, evaluate and predict when ``batch_size=None`` (Keras' 32).
DEFAULT_BATCH_SIZE = 32


def check_batch_size(value, who: str) -> int:
    """``batch_size`` of fit, evaluate and predict as an int: a positive
    integer, or None for :data:`DEFAULT_BATCH_SIZE` (32), as in Keras."""
    return DEFAULT_BATCH_SIZE if value is None else check_positive_int(value, who, "batch_size")


def check_non_negative_int(value, who: str, what: str) -> int:
    """Return ``value`` as an int if it is an integer >= 0 (a count of epochs
    or steps), else raise ``ValueError`` (for a non-integer too: ``1.5`` and
    ``-1`` are the same slip)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{who} expected {what} as a non-negative integer, "
                         f"received {value!r}")
    return int(value)


def check_int_sequence(value, expected: str, *, low: int, one_int: bool = False,
                       allow_empty: bool = True, non_integer: type = TypeError) -> tuple:
    """``value`` as a tuple of ints ``>= low``, else an error whose message is
    ``"{expected}, received {value!r}"`` (cut to 300 characters): the one walk
    of a sequence of sizes, as layer widths (:func:`check_widths`) and an
    initializer's shape (:func:`tinynet.init._shape`) are.

    Any sequence is taken (a tuple, a list, ``np.array([3, 4])``,
    ``range(3, 5)``: ``tuple(value)``). A string (``"128"`` would be 1, 2 and
    8), a 0-d array or anything else that is no sequence is one value: with
    ``one_int`` it must be a Python or NumPy integer ``n``, read as ``(n,)``
    (as NumPy's ``np.zeros(n)``; a 0-d array is no such integer, so it is a
    ``non_integer`` error), and without it it is a ``TypeError``. An item
    that is no integer (a bool neither) is a ``non_integer`` error; one below
    ``low``, or no item at all unless ``allow_empty``, a ``ValueError``."""
    message = f"{expected}, received {value!r}"[:300]
    scalar = (isinstance(value, (str, bytes)) or not hasattr(value, "__iter__")
              or getattr(value, "ndim", None) == 0)
    if scalar and not one_int:
        raise TypeError(message)
    items = (value,) if scalar else tuple(value)
    if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) for n in items):
        raise non_integer(message)
    if (not items and not allow_empty) or any(n < low for n in items):
        raise ValueError(message)
    return tuple(int(n) for n in items)


def check_widths(value, who: str, what: str, meaning: str, allow_empty: bool = False) -> tuple:
    """``value`` as a tuple of positive ints: layer widths such as
    ``hidden=(256, 128)``, ``meaning`` saying what each is ("one width per
    hidden layer"). A string (``"128"`` would be the widths 1, 2 and 8), a
    single number or anything else that is no sequence is a ``TypeError``;
    a width that is no positive integer, or no width at all unless
    ``allow_empty``, a ``ValueError`` (see :func:`check_int_sequence`)."""
    expected = (f"{who} expected {what} as a {'' if allow_empty else 'non-empty '}sequence of "
                f"positive integers ({meaning})")
    return check_int_sequence(value, expected, low=1, allow_empty=allow_empty,
                              non_integer=ValueError)


def check_seed(seed, who: str):
    """Return ``seed`` (None, or a non-negative int) or raise a clear error.

    The seeds of ``fit`` and the samplers feed ``np.random.SeedSequence``,
    which takes non-negative integers only; a bool is refused as a likely slip.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{who} expected seed as None or a non-negative integer, "
                        f"received {seed!r} of type {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{who} expected seed as None or a non-negative integer, "
                         f"received {seed}")
    return int(seed)


def did_you_mean(name: str, choices) -> str:
    """``"; did you mean 'adam'?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(name).lower(), [str(c) for c in choices], n=1,
                                      cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def lookup(registry: dict, name, kind: str):
    """Find ``name`` in ``registry`` (case and ``-``/``_`` insensitive) or raise.

    ``lookup(OPTIMIZERS, "adma", "optimizer")`` raises
    ``ValueError("unknown optimizer 'adma'; did you mean 'adam'? ...")``.
    """
    if not isinstance(name, str):
        raise TypeError(f"expected a {kind} name as a string, received {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key in registry:
        return registry[key]
    raise ValueError(f"unknown {kind} {name!r}{did_you_mean(key, registry)} "
                     f"(known: {', '.join(sorted(registry))})")


def unknown_tasks(keys, tasks) -> tuple[list, str]:
    """The ``keys`` of a dict ``{task: ...}`` that name none of ``tasks``,
    sorted, and a hint for an error message (``"; task names are strings:
    write '0', not 0"``) when one of them is a task's name as a string, else
    ``""``.

    The one rule for every argument keyed by task (compile's ``loss``,
    ``metrics``, ``loss_weights``; fit's targets, ``mask``,
    ``sample_weight``): a key is a task's name. A multi-task model's task
    names are strings (``Model(inp, {0: out})`` names its task ``'0'``, and
    the key ``0`` names no task); the functions that take the names given
    (:func:`tinynet.mtl.training.task_masks`,
    :meth:`tinynet.mtl.weighting.Static.bind`) take them as they are."""
    names = set(tasks)
    unknown = sorted((k for k in keys if k not in names), key=repr)
    near = [k for k in unknown if str(k) in names]
    hint = f"; task names are strings: write {str(near[0])!r}, not {near[0]!r}" if near \
        else ""
    return unknown, hint


def check_task_keys(spec: dict, tasks, what: str, who: str = "compile") -> None:
    """Refuse a dict ``spec`` of ``what`` (``"loss"``, ``"masks"``...) keyed by
    task with a key that names none of ``tasks`` (:func:`unknown_tasks`):
    ``ValueError`` naming the keys and the task names."""
    unknown, hint = unknown_tasks(spec, tasks)
    if unknown:
        raise ValueError(f"{who} received {what} for unknown tasks {unknown} "
                         f"(tasks: {list(tasks)}){hint}")


def per_task(spec, tasks, what: str, who: str = "compile") -> dict:
    """``spec`` as ``{task: value}`` for the task names ``tasks`` (a
    multi-task model's outputs): a dict (a task left out gets None), a list
    in task order, or one value for all. A dict with a key that is not a
    task's name (:func:`check_task_keys`), or a list in task order of
    another length, is a ``ValueError``.

    A list is in task order for ``what == "loss"``. For ``"metrics"`` the
    rule is Keras 2's: a flat list (``["mae", "mse"]``) is the same metrics
    for every task; a list holding a list or tuple is per task, in order,
    each item a list of metrics, one metric or None (none for that task):
    ``["mae", ["mae", "mse"]]``, ``[None, ["mae"]]``. (Keras 3 reads any
    list per output.)"""
    if isinstance(spec, dict):
        check_task_keys(spec, tasks, what, who)
        return {t: spec.get(t) for t in tasks}
    if not isinstance(spec, (list, tuple)):
        return {t: spec for t in tasks}
    if what != "loss" and not any(isinstance(s, (list, tuple)) for s in spec):
        return {t: spec for t in tasks}
    if len(spec) != len(tasks):
        each = "" if what == "loss" else (f" in order: a list of {what}, one or None; a "
                                          f"list holding a list is per task")
        raise ValueError(f"{who} expected {len(tasks)} {'losses' if what == 'loss' else what} "
                         f"(one per task {tasks}{each}), received {len(spec)}")
    return dict(zip(tasks, spec))


def check_verbose(verbose, who: str, *, levels=(0, 1, 2), auto: bool = True,
                  hint: str = "") -> int:
    """A ``verbose`` setting as an int, the one check of all of them: one of
    ``levels`` as an integer (True and False count as 1 and 0; 1.0 or "1"
    are refused), or Keras' ``"auto"`` when ``auto`` allows it, which is 1
    (as Keras makes it outside a distribution strategy). ``fit``,
    ``evaluate`` and ``predict`` take 0, 1, 2 and "auto"; the callbacks 0, 1
    and 2 (``auto=False``; 2 is 1 for them, as Keras' callbacks take any
    truthy value); :class:`~tinynet.progress.ProgressBar` 1 and 2."""
    if auto and isinstance(verbose, str) and verbose == "auto":
        return 1
    if isinstance(verbose, (int, np.integer)) and verbose in levels:
        return int(verbose)
    names = [str(level) for level in levels] + (["'auto'"] if auto else [])
    raise ValueError(f"{who} expected verbose {', '.join(names[:-1])} or {names[-1]}{hint}, "
                     f"received {verbose!r}"[:300])
