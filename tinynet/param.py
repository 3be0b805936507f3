"""Trainable parameters.

A :class:`Param` is the unit every optimizer, initializer and gradient check
works on: a value array, a gradient array of the same shape and dtype, a name
and a ``trainable`` flag.

Layers *accumulate* into ``grad`` (``+=``) in their backward pass; nothing
resets it but :meth:`Param.zero_grad` (usually called through
``optimizer.zero_grad()`` or ``model.zero_grad()``).

Flat buffers
------------
``value`` and ``grad`` may be *views* into larger flat buffers shared by all
of a model's parameters (see :func:`flatten_params`). A fused optimizer then
updates every parameter in one kernel call, ``zero_grad`` is one fill, and
meta-learning gets the whole model as one vector. Code that writes to a
parameter must therefore write *into* it (``p.value[...] = new``), never
rebind it (``p.value = new``) -- assignment through the property copies into
the existing array for exactly this reason.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from .checks import check_bool

__all__ = ["Param", "flatten_params", "ensure_flat", "contiguous_span", "is_flat",
           "layout_kept", "param_budget", "check_param_budget"]


class Param:
    """A trainable array and its gradient.

    Parameters
    ----------
    value : array_like
        Initial value; it is copied into a new C-contiguous array.
    name : str, optional
        A name for messages, summaries and saved files (``"dense_1/W"``).
    trainable : bool, default True
        ``False`` keeps the parameter out of optimizers (its gradient is
        still computed where a layer needs it to pass gradients on).

    Attributes
    ----------
    value : ndarray
    grad : ndarray, same shape and dtype as ``value``
    """

    # __weakref__: a model remembers the parameters it released without keeping
    # them alive (tinynet.optim.binding.release_parameters)
    __slots__ = ("_value", "_grad", "name", "trainable", "__weakref__")

    def __init__(self, value, name: str | None = None, trainable: bool = True):
        value = np.array(value, copy=True, order="C")
        if not np.issubdtype(value.dtype, np.floating):
            raise TypeError(
                f"Param {name!r} expected a floating-point value, received dtype {value.dtype}"
            )
        self._value = value
        self._grad = np.zeros_like(value)
        self.name = name
        # not bool(): trainable="False" must not mean True
        self.trainable = check_bool(trainable, f"Param {name!r}", "trainable")

    # ``value`` and ``grad`` are properties so that assignment copies into the
    # existing storage, which may be a view into a flat buffer.
    @property
    def value(self) -> np.ndarray:
        return self._value

    @value.setter
    def value(self, new) -> None:
        new = np.asarray(new)
        if new.shape != self._value.shape:
            raise ValueError(
                f"Param {self.name!r} expected a value of shape {self._value.shape}, "
                f"received {new.shape}"
            )
        self._value[...] = new

    @property
    def grad(self) -> np.ndarray:
        return self._grad

    @grad.setter
    def grad(self, new) -> None:
        new = np.asarray(new)
        if new.shape != self._grad.shape:
            raise ValueError(
                f"Param {self.name!r} expected a gradient of shape {self._grad.shape}, "
                f"received {new.shape}"
            )
        self._grad[...] = new

    @property
    def shape(self) -> tuple:
        return self._value.shape

    @property
    def dtype(self) -> np.dtype:
        return self._value.dtype

    @property
    def size(self) -> int:
        return self._value.size

    def zero_grad(self) -> None:
        """Set the gradient to zero, in place."""
        self._grad.fill(0)

    def rebind(self, value_view: np.ndarray, grad_view: np.ndarray) -> None:
        """Move storage into the given views (copying the current value and grad).

        Used by :func:`flatten_params`; the views must have this parameter's
        shape and dtype.
        """
        for what, view in (("value", value_view), ("grad", grad_view)):
            if view.shape != self._value.shape or view.dtype != self._value.dtype:
                raise ValueError(
                    f"Param {self.name!r} cannot rebind {what} to an array of shape "
                    f"{view.shape} and dtype {view.dtype}; expected {self._value.shape} "
                    f"and {self._value.dtype}"
                )
        value_view[...] = self._value
        grad_view[...] = self._grad
        self._value = value_view
        self._grad = grad_view

    def astype(self, dtype) -> None:
        """Convert value and grad to ``dtype`` in place of the old arrays
        (this detaches the parameter from any flat buffer; ``model.astype``
        moves a model's into a new one: :func:`layout_kept`). An optimizer holding
        the parameter converts its state (momentum, moments) to the new
        dtype at its next step."""
        self._value = np.ascontiguousarray(self._value, dtype=dtype)
        self._grad = np.ascontiguousarray(self._grad, dtype=dtype)

    def __repr__(self) -> str:
        flag = "" if self.trainable else ", trainable=False"
        return f"Param({self.name!r}, shape={self.shape}, dtype={self.dtype}{flag})"


def flatten_params(params) -> tuple[np.ndarray, np.ndarray]:
    """Move ``params`` into two flat buffers and return ``(values, grads)``.

    After the call every ``p.value``/``p.grad`` is a view into the returned
    1-D buffers, in the order given, so ``values[offset:offset + p.size]`` is
    ``p.value.ravel()``. All parameters must share one dtype.

    Parameters
    ----------
    params : sequence of Param

    Returns
    -------
    values, grads : ndarray of shape (sum of sizes,)
    """
    params = list(params)
    if not params:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    dtypes = {p.dtype for p in params}
    if len(dtypes) != 1:
        raise TypeError(
            f"flatten_params expected parameters of one dtype, received {sorted(map(str, dtypes))}"
        )
    dtype = dtypes.pop()
    total = sum(p.size for p in params)
    values = np.empty(total, dtype=dtype)
    grads = np.empty(total, dtype=dtype)
    offset = 0
    for p in params:
        end = offset + p.size
        p.rebind(values[offset:end].reshape(p.shape), grads[offset:end].reshape(p.shape))
        offset = end
    return values, grads


def _root(a: np.ndarray) -> np.ndarray:
    while a.base is not None and isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def contiguous_span(arrays) -> np.ndarray | None:
    """A 1-D view covering ``arrays`` if they lie back to back, in this order,
    in one 1-D buffer of their dtype (as :func:`flatten_params` leaves them);
    else None (also when every array is empty).

    ``contiguous_span([a, b])[:a.size]`` is then ``a.ravel()``, and writing
    into the span writes into the arrays.
    """
    arrays = [a for a in arrays if a.size]  # an empty view's address is its buffer's start
    if not arrays:
        return None
    first = arrays[0]
    root = _root(first)
    if root.ndim != 1 or root.dtype != first.dtype or not root.flags.c_contiguous:
        return None
    itemsize = root.itemsize
    start = end = _address(first)
    for a in arrays:
        if (a.dtype != root.dtype or not a.flags.c_contiguous or _address(a) != end
                or _root(a) is not root):
            return None
        end += a.size * itemsize
    offset = (start - _address(root)) // itemsize
    return root[offset:offset + (end - start) // itemsize]


def is_flat(params) -> bool:
    """True when the values, and the gradients, of ``params`` each form one
    contiguous span (see :func:`contiguous_span`)."""
    params = list(params)
    return (contiguous_span([p.value for p in params]) is not None
            and contiguous_span([p.grad for p in params]) is not None)


def ensure_flat(params) -> bool:
    """Move ``params`` into flat buffers unless they are already there (or
    have several dtypes: then they stay as they are). Returns whether they
    are flat afterwards.

    What models call when they bind their optimizer. Code that holds a
    parameter's array (``w = layer.W.value``) from before that keeps the old
    array: hold the :class:`Param` instead.
    """
    params = list(params)
    if not params or is_flat(params):
        return bool(params)
    if len({p.dtype for p in params}) != 1:
        return False
    flatten_params(params)
    return True


# The groups of parameters that the running layout_kept blocks found flat
# (the outermost block's list), or None outside every block.
_KEPT = contextvars.ContextVar("tinynet_layout_kept", default=None)


@contextlib.contextmanager
def layout_kept(params):
    """Within the block ``params`` may get new arrays (:meth:`Param.astype`
    detaches each from its flat buffer); if they lay back to back in one flat
    buffer before it (:func:`is_flat`: where a model binding its optimizer put
    them), they are moved into a new one after it, in the same order, so
    that the optimizer goes on updating them with one fused call
    (:mod:`tinynet.optim.fused`) rather than one a parameter. (Not if they
    have several dtypes then: :func:`ensure_flat`.)

    Blocks nest: ``model.astype`` calls each layer's ``astype`` (a user's
    override converting more of its own included), each in a block of its
    own. An inner block only records its group; the outermost one, when it
    ends, moves every group recorded, in the order their blocks began. The
    outermost's first: a nested model's parameters, a run of the outer
    model's buffer before, are a run of the new one after, flat already (not
    copied again at each nesting level); a group apart (a multi-task
    weighting's parameters) goes into a buffer of its own."""
    params = list(params)
    outer = _KEPT.get()
    groups = [] if outer is None else outer
    if len(params) > 1 and is_flat(params):
        groups.append(params)
    if outer is not None:  # an inner block: the outermost moves its group
        yield
        return
    token = _KEPT.set(groups)
    try:
        yield
    finally:
        _KEPT.reset(token)
    for group in groups:
        ensure_flat(group)


# ------------------------------------------------------------------ budget
# [values left, values granted, source] while a param_budget block runs, else None.
_BUDGET = contextvars.ContextVar("tinynet_param_budget", default=None)


@contextlib.contextmanager
def param_budget(n_values: int, source: str):
    """Within the block, the parameters layers create may hold at most
    ``n_values`` values in all.

    :func:`tinynet.load` builds the model a file describes inside one, with
    ``n_values`` the number of weight values the file stores (plus a little
    slack): a config that asks for far more weights than the file holds
    (``Dense(20000, input_dim=20000)`` in a 5 KB file) is refused with a
    ``ValueError`` before the weights are allocated, instead of allocating
    gigabytes and only then comparing shapes. ``source`` ends the message
    (``"the file allows"``).
    """
    token = _BUDGET.set([int(n_values), int(n_values), source])
    try:
        yield
    finally:
        _BUDGET.reset(token)


def check_param_budget(shape, what: str, charge: bool = False) -> None:
    """Refuse (``ValueError``) a parameter of ``shape`` that does not fit in
    what is left of the current :func:`param_budget` (no-op outside one).

    Called *before* allocating: by the initializers of :mod:`tinynet.init` and
    by layers that allocate parameters themselves; ``charge=True``
    (:meth:`Layer.add_param`) also subtracts the parameter from the budget.
    """
    budget = _BUDGET.get()
    if budget is None:
        return
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    n = math.prod(int(d) for d in shape)  # Python ints: no int64 overflow
    left, total, source = budget
    if n > left:
        raise ValueError(f"building the model would create {what} of shape {shape} "
                         f"({n:,} values), more than the {left:,} values left of the "
                         f"{total:,} {source}")
    if charge:
        budget[0] = left - n
