"""Argument checks of the kernels' public functions.

A few kernels index arrays with values they are given -- max pooling's
backward with the argmax indices ``arg``, col2im with its geometry, the
softmax cross-entropy with the labels -- and a Numba kernel does not check
its indices: a wrong value reads or writes past an array (a crash, or silent
garbage). Their public functions therefore check every such argument first
(:func:`checked`), with a ValueError or TypeError that says what was expected
and what was received.

The layers and losses produce or check these arguments themselves (``arg``
comes from the forward pass, the labels from ``check_labels``), so they call
each function's ``.trusted`` build instead -- through
``dispatch.impl(op, size, trusted=True)`` -- and do not scan the indices a
second time on every step. Without Numba the same holds for the NumPy
references.

The kernels import nothing of tinynet (``import tinynet`` must not import
Numba), hence these helpers beside ``tinynet.checks``; the one exception is
``tinynet.switches``, standard library only, which reads every tinynet
on/off environment variable one way.

Kernels that size their loops from one array and index others of the same
shape (dropout, the norms, dense, the activations) check those shapes
(:func:`check_shapes`), the float dtypes and the outputs' writability
through :func:`checked` too, one check function serving the kernel and its
NumPy reference, so that a bad call fails alike on either backend. An output
that shares memory with an input the kernel still reads (``out=a`` of a
product) is refused the same way (:func:`check_disjoint`), unless it is
that input itself where the kernel reads each element before it writes the
same one (an activation's gradient into dy's buffer). These
checks cost a few microseconds a call (several per cent of a small MLP's
training step), and the layers check their inputs and make or keep the
other arrays themselves (the Params keep their shapes), so they call the
``.trusted`` builds as well; so do the kernels that call one another on
arrays they have checked (``dense_backward`` its ``act_grad_bias`` and its
two products, the dense references the activation references).
"""

from __future__ import annotations

import functools
import operator

import numpy as np

__all__ = ["checked", "check_count", "check_pair", "check_shape", "check_float_array",
           "check_matrix", "check_out", "check_indices", "check_shapes", "check_writable",
           "check_disjoint", "check_apart", "same_view"]


def checked(check, passes_on: bool = False):
    """Decorator: the function, called after ``check(*args, **kwargs)`` (which
    raises on a bad argument); the unchecked function stays reachable as the
    result's ``.trusted``, for callers that made or checked the arguments.

    With ``passes_on``, ``check`` returns every argument as it checked it
    (a tuple, in the function's order: arrays for lists, tuples of ints for
    pairs...), and the function receives those in place of the ones given:
    a kernel and its NumPy reference then see the same values, so that an
    argument the check accepts runs alike on either backend."""
    def wrap(trusted):
        @functools.wraps(trusted)
        def public(*args, **kwargs):
            normal = check(*args, **kwargs)
            if passes_on:
                return trusted(*normal)
            return trusted(*args, **kwargs)
        public.trusted = trusted
        return public
    return wrap


def check_count(n, who: str) -> int:
    """``n`` as an int when it is a positive integer: a Python or NumPy integer,
    anything ``operator.index`` takes except a bool. A float or bool (or any
    other type) raises a TypeError, a number below 1 a ValueError."""
    if isinstance(n, (bool, np.bool_)):
        raise TypeError(f"{who} expected a positive integer, received the bool {n!r}")
    try:
        value = operator.index(n)
    except TypeError:
        raise TypeError(f"{who} expected a positive integer (int or NumPy integer), received "
                        f"{n!r} of type {type(n).__name__}") from None
    if value < 1:
        raise ValueError(f"{who} expected a positive integer, received {value}")
    return value


def check_pair(value, who: str, what: str) -> tuple:
    """``value`` as a tuple of two positive ints (a window or its strides)."""
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{who} expected {what} as two positive integers, received {value!r}")
    return tuple(check_count(v, f"{who} ({what})") for v in pair)


def check_shape(shape, who: str, what: str, dims: str) -> tuple:
    """``shape`` as a tuple of non-negative ints, as many as ``dims`` names
    (``"batch, height, width, channels"``); else a ValueError."""
    try:
        out = tuple(shape)
    except TypeError:
        out = None
    if out is None or len(out) != len(dims.split(",")) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0
            for d in out):
        raise ValueError(f"{who} expected {what} as non-negative integers ({dims}), "
                         f"received {shape!r}")
    return tuple(int(d) for d in out)


def _float_dtype_error(x, who: str, what: str) -> TypeError:
    """The refusal of ``x``'s dtype, which is not float32 or float64 in the
    native byte order (Numba takes no other; tinynet's layers convert a
    ``>f4`` array, the kernels are handed native ones); the hint names the
    argument, ``what`` (``dy.astype(...)``)."""
    if x.dtype.kind == "f" and x.dtype.newbyteorder("=") in (np.float32, np.float64):
        name = what if what.isidentifier() else "x"
        return TypeError(f"{who} expected {what} of dtype float32 or float64 in the native "
                         f"byte order, received {x.dtype.str} (convert it with "
                         f"{name}.astype({name}.dtype.newbyteorder('=')))")
    return TypeError(f"{who} expected {what} of dtype float32 or float64, received {x.dtype}")


def check_float_array(x, who: str, what: str) -> np.ndarray:
    """``x`` as an array, which must be float32 or float64 (TypeError)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise _float_dtype_error(x, who, what)
    return x


def check_matrix(x, who: str, what: str) -> None:
    """``x`` is a 2-D float32 or float64 ndarray (else a ValueError, or a
    TypeError for the dtype): the products read it as it is, unconverted."""
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise ValueError(f"{who} expected {what} as a 2-D array, received "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in (np.float32, np.float64):
        raise _float_dtype_error(x, who, what)


def check_out(out, shape: tuple, dtype, who: str, what: str = "out", reads=None) -> None:
    """``out``, an array a kernel writes into, is C-contiguous, writable and
    of ``shape`` and ``dtype``, else a ValueError naming it; and shares no
    memory with the arrays ``reads`` (a dict by name) that the kernel reads
    (:func:`check_disjoint`)."""
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        layout = "" if out.flags.c_contiguous else ", not C-contiguous"
        raise ValueError(f"{who} expected {what} as a C-contiguous {dtype} array of shape "
                         f"{shape}, received {out.dtype} {out.shape}{layout}")
    check_writable(who, **{what: out})
    if reads:
        check_disjoint(who, {what: out}, reads)


def check_disjoint(who: str, written: dict, read: dict, same_ok: dict | None = None) -> None:
    """No array of ``written`` (by name; None is skipped) may share memory
    with one of ``read``, else a ValueError naming both. The Numba kernels
    write their outputs while they still read their inputs -- the GEMM
    overwrites a row of C that later rows of A are read from, the fused
    cross-entropy writes the exponentials over the logits it then sums -- so
    ``matmul(a, b, out=a)`` returned silent garbage where NumPy's ``@``
    (which copies) was right; every backend refuses it alike.

    ``same_ok`` maps a name of ``written`` to the names of ``read`` that it
    may *be* (:func:`same_view`: the same memory seen the same way), where the
    kernel reads each element of that input before it writes the same
    element of the output, and never reads the input again (an activation's
    gradient written into dy's own buffer): element by element the result
    is then the one of separate arrays. Any other overlap of the two (rows
    shifted, a reversed or transposed view) is refused all the same.

    ``np.may_share_memory`` compares the arrays' memory bounds only (no
    search, well under a microsecond): two interleaved views of one buffer
    that touch no common element are refused too; pass separate arrays."""
    for out_name, out in written.items():
        if out is None:
            continue
        for in_name, a in read.items():
            if a is None or not np.may_share_memory(out, a):
                continue
            allowed = same_ok is not None and in_name in same_ok.get(out_name, ())
            if allowed and same_view(out, a):
                continue
            hint = (f" but are not one view ({out_name} may be {in_name} itself: the same "
                    f"start, shape, strides and dtype)") if allowed else ""
            raise ValueError(f"{who} expected {out_name} not to overlap {in_name} (the "
                             f"kernel writes {out_name} while it reads {in_name}), "
                             f"received arrays that share memory{hint}")


def check_apart(who: str, **written) -> None:
    """No two of the arrays a kernel writes (by name; None is skipped) share
    memory, else a ValueError naming both: one written after the other would
    overwrite it (``dense_backward`` with a dx_out over its dw returned a
    wrong dw). Bounds only, as :func:`check_disjoint`."""
    named = [(name, a) for name, a in written.items() if a is not None]
    for i, (name, a) in enumerate(named):
        for other, b in named[i + 1:]:
            if np.may_share_memory(a, b):
                raise ValueError(f"{who} expected {name} and {other} as separate arrays (it "
                                 f"writes both: one would overwrite the other), received "
                                 f"arrays that share memory")


def same_view(a, b) -> bool:
    """``a`` and ``b`` are ndarrays over the same memory seen the same way:
    the same first element, shape, strides and dtype (``a is b``, or two
    views ``x[:]`` of one array), so that element ``[i, j]`` of one is
    element ``[i, j]`` of the other."""
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.strides == b.strides and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def check_indices(index, upper: int, who: str, what: str) -> np.ndarray:
    """``index`` as an array of integers in ``[0, upper)``: another dtype (bool
    included) raises a TypeError, a value out of range a ValueError that
    gives the range received."""
    index = np.asarray(index)
    if index.dtype == np.bool_ or not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"{who} expected {what} as integers, received dtype {index.dtype}")
    if index.size:
        low, high = index.min(), index.max()
        if low < 0 or high >= upper:
            raise ValueError(f"{who} expected {what} in [0, {upper}), received values "
                             f"in [{low}, {high}]")
    return index


def check_shapes(who: str, shape: tuple, **arrays) -> None:
    """Each of ``arrays`` (by name; None is skipped) has ``shape``, else a
    ValueError naming it. The kernels size their loops from one array and
    index the others unchecked: a shorter one is read (or written) past its
    end, where NumPy would raise or broadcast."""
    for name, a in arrays.items():
        if a is not None and np.shape(a) != shape:
            raise ValueError(f"{who} expected {name} of shape {shape}, received "
                             f"{np.shape(a)}")


def check_writable(who: str, **arrays) -> None:
    """Each of ``arrays`` that a kernel writes into (None is skipped) is
    writable, else a ValueError naming it: NumPy refuses a read-only output
    that way, where a Numba kernel failed to compile with a TypingError
    ("Cannot modify readonly array") after seconds of trying."""
    for name, a in arrays.items():
        if a is not None and not a.flags.writeable:
            raise ValueError(f"{who} expected {name} as a writable array, received a "
                             f"read-only one")
