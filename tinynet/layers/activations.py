r"""Element-wise activation layers (and the softmax).

Each activation is a parameter-free layer with the maths in two small
functions, ``_forward(x, **settings) -> y`` and ``_backward(x, y, dy,
**settings) -> dx`` (a subclass may still write them as ``_forward(x)`` and
``_backward(x, y, dy)``, reading its settings itself: see
:class:`Activation`); where the derivative is exact in terms of the output
(ReLU, leaky ReLU, sigmoid, tanh, softmax) the backward uses only ``y``, and
the layer keeps only ``y`` from its forward pass (ELU's :math:`y + \alpha`
would cancel: it keeps ``x``). The settings (``alpha``, ``approximate``,
``axis``) are arguments, and the forward keeps those it ran with beside
``x`` and ``y``: a setting changed between a forward and its backward
takes effect at the next forward, and the backward still differentiates
the function the forward computed (not a mix of the two).

Every activation also serves as the fused ``activation=`` of
:class:`~tinynet.layers.Dense` (see :func:`get`). Registered names:

============================  ==============================================
name                          layer
============================  ==============================================
``linear``, ``identity``      :class:`Identity`
``relu``                      :class:`ReLU`
``leaky_relu``                :class:`LeakyReLU` (alpha 0.01)
``elu``                       :class:`ELU` (alpha 1.0)
``gelu``                      :class:`GELU` (exact, with erf)
``gelu_tanh``                 ``GELU(approximate="tanh")``
``silu``, ``swish``           :class:`SiLU`
``sigmoid``                   :class:`Sigmoid`
``tanh``                      :class:`Tanh`
``softmax``                   :class:`Softmax` (last axis)
============================  ==============================================

Constants are Python floats on purpose: under NumPy 2's promotion rules a
NumPy float64 scalar would turn a float32 array into float64.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math

import numpy as np

from ..checks import lookup
from .. import kernels
from ..kernels.activations import (ACT_CODES, gelu_clamp, gelu_factor, gelu_tanh_gate,
                                   gelu_tanh_slope, stable_sigmoid)
from ._checks import Setting, call_with_settings, check_choice, check_real, settings_of
from .base import Layer
from .special import normal_cdf

__all__ = [
    "Activation", "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid",
    "Tanh", "Softmax", "get", "to_config", "name_of", "ACTIVATIONS",
]


class Activation(Layer):
    """Base class: caches ``x`` and ``y`` as :attr:`needs_input` says, and
    the settings the forward ran with.

    Subclasses implement ``_forward`` and ``_backward`` and set
    ``needs_input = False`` when the backward uses only ``y``. Two
    contracts are accepted, told apart once per class from the signature of
    each method (see :func:`~tinynet.layers._checks.call_with_settings`):

    * ``_forward(x, **settings)`` and ``_backward(x, y, dy, **settings)``:
      a method that names a setting (``alpha``, ``approximate``, ``axis``:
      the layer's :class:`~tinynet.layers._checks.Setting` attributes) among
      its parameters, or takes ``**kwargs``, receives it as a keyword
      argument, the backward the value its forward ran with (one changed in
      between applies from the next forward). The built-in classes use this.
    * ``_forward(x)`` and ``_backward(x, y, dy)`` (the contract before
      settings were arguments): a method that names none receives none and
      reads ``self.<setting>`` itself, as it always did; its backward then
      sees a setting changed since the forward.
    """

    needs_input = True

    def __init__(self, **kwargs):
        self._x = None
        self._y = None
        self._settings = None
        super().__init__(**kwargs)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        settings = settings_of(self)
        fused = kernel_code(self, x.dtype, settings)
        if fused is not None and fused[0] != ACT_CODES["identity"]:
            # the Numba kernel; _forward is its reference. trusted: x is checked
            # above, the code is kernel_code's
            y = kernels.impl("act_forward", x.size, trusted=True)(x, *fused)
        else:
            y = call_with_settings(self, "_forward", (x,), settings)
        self._x = x if self.needs_input else None
        self._y = y
        self._settings = settings
        return y

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._y)
        dy = self._check_dy(dy, self._y.shape)
        # the forward's settings: one changed since applies from the next forward
        fused = kernel_code(self, self._y.dtype, self._settings)
        if fused is not None and fused[0] != ACT_CODES["identity"] and dy.dtype == self._y.dtype:
            # trusted: dy is checked to y's shape and dtype, y and x (kept where
            # the code needs it) are the forward's own
            return kernels.impl("act_backward", dy.size, trusted=True)(dy, self._y, self._x,
                                                                        *fused)
        return call_with_settings(self, "_backward", (self._x, self._y, dy), self._settings)

    def _forward(self, x, **settings):
        raise NotImplementedError

    def _backward(self, x, y, dy, **settings):
        raise NotImplementedError


class Identity(Activation):
    r"""Identity: :math:`y = x`, :math:`\partial L/\partial x = \partial L/\partial y`."""

    needs_input = False

    def _forward(self, x):
        return x

    def _backward(self, x, y, dy):
        return dy


class ReLU(Activation):
    r"""Rectified linear unit.

    .. math::
        y = \max(x, 0), \qquad
        \frac{\partial L}{\partial x} = \begin{cases} 0 & y \le 0 \\
        \partial L/\partial y & \text{otherwise} \end{cases}

    (the subgradient at 0 is taken as 0, as in PyTorch; where
    :math:`y \le 0` the gradient is 0 even when :math:`\partial L/\partial y`
    is NaN or infinite, and at a NaN input, which is not :math:`\le 0`, it is
    :math:`\partial L/\partial y`: PyTorch's ``threshold_backward``, on both
    backends).
    """

    needs_input = False

    def _forward(self, x):
        return np.maximum(x, 0)

    def _backward(self, x, y, dy):
        return np.where(y <= 0, dy.dtype.type(0), dy)


class LeakyReLU(Activation):
    r"""Leaky rectified linear unit.

    .. math::
        y = \begin{cases} x & x > 0 \\ \alpha x & x \le 0 \end{cases}, \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
        \begin{cases} 1 & y > 0 \\ \alpha & y \le 0 \end{cases}

    Because :math:`\alpha \ge 0`, :math:`y > 0` exactly when :math:`x > 0`, so
    the backward needs only the output. At a NaN input (not :math:`> 0`) the
    gradient is :math:`\alpha\,\partial L/\partial y`, as PyTorch's.

    Parameters
    ----------
    alpha : float, default 0.01
        Slope for negative inputs, finite and :math:`\alpha \ge 0` (PyTorch's
        ``negative_slope``).
    """

    needs_input = False
    alpha = Setting(check_real, low=0.0, high_open=True)

    def __init__(self, alpha: float = 0.01, **kwargs):
        self.alpha = alpha
        super().__init__(**kwargs)

    def _forward(self, x, alpha):
        return np.where(x > 0, x, x * alpha)

    def _backward(self, x, y, dy, alpha):
        return np.where(y > 0, dy, dy * alpha)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


class ELU(Activation):
    r"""Exponential linear unit.

    .. math::
        y = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases},
        \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
        \begin{cases} 1 & x > 0 \\ \alpha e^{x} & x \le 0 \end{cases}

    The backward reads the input: :math:`\alpha e^{x}` also equals
    :math:`y + \alpha`, but that sum cancels as :math:`y \to -\alpha`
    (in float32 it lost every digit below :math:`x \approx -17`; PyTorch
    differentiates from the input too).

    Parameters
    ----------
    alpha : float, default 1.0
        Saturation value for large negative inputs is :math:`-\alpha`
        (finite, :math:`\alpha \ge 0`).
    """

    alpha = Setting(check_real, low=0.0, high_open=True)

    def __init__(self, alpha: float = 1.0, **kwargs):
        self.alpha = alpha
        super().__init__(**kwargs)

    def _forward(self, x, alpha):
        # expm1 of min(x, 0): accurate near 0 and never overflows for large x
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * alpha)

    def _backward(self, x, y, dy, alpha):
        return np.where(x > 0, dy, dy * (alpha * np.exp(np.minimum(x, 0))))

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(Activation):
    r"""Gaussian error linear unit, exact or with the tanh approximation.

    Exact (``approximate="none"``), with :math:`\Phi` the standard normal CDF
    and :math:`\varphi` its density:

    .. math::
        y = x\,\Phi(x) = \tfrac{x}{2}\bigl(1 + \operatorname{erf}(x/\sqrt{2})\bigr),
        \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
        \bigl(\Phi(x) + x\,\varphi(x)\bigr)

    Tanh approximation (``approximate="tanh"``), with
    :math:`u = \sqrt{2/\pi}\,(x + 0.044715\,x^3)` and
    :math:`s = \tfrac12(1 + \tanh u) = \sigma(2u)`:

    .. math::
        y = x\,s, \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
        \Bigl(s + 2 x\, s (1 - s)\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)\Bigr)

    Both match ``torch.nn.GELU(approximate=...)`` to rounding; :math:`\Phi`
    is computed with erfc (:mod:`tinynet.layers.special`) and :math:`s` with a
    stable sigmoid, which avoid the cancellation in
    :math:`1 + \operatorname{erf}` and :math:`1 + \tanh` for large negative
    inputs. Beyond :math:`|x| = 100` the slope is exactly 0 or 1 in
    floating point, and the cube and square are taken of ``x`` clipped there,
    so they never overflow (PyTorch's tanh form gives NaN slopes from
    :math:`|x| \approx 10^{13}` in float32). Below :math:`-100` the gate is
    exactly 0, and the forward multiplies it by :math:`\max(x, -100)`
    (:func:`~tinynet.kernels.activations.gelu_factor`): the same :math:`-0.0`
    for finite ``x``, and the limit :math:`-0.0` at :math:`x = -\infty`
    instead of :math:`-\infty \cdot 0 = \text{NaN}`; :math:`+\infty` gives
    :math:`+\infty`, and the slopes at :math:`+\infty` and :math:`-\infty` are 1
    and 0 (PyTorch 2.13 gives NaN at :math:`-\infty`, in float32's exact form
    at :math:`+\infty` too, and NaN slopes at both). The NumPy forward pass keeps
    the gate (:math:`\Phi(x)` or :math:`s`) for the NumPy backward, which
    would otherwise evaluate it again; after a kernel forward (which keeps
    none) it is evaluated again. Either way the backward differentiates the
    form the forward computed, even if ``approximate`` changed in between
    (the forward keeps it, as :class:`Activation` keeps every setting).

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
    """

    approximate = Setting(check_choice, choices=("none", "tanh"))

    def __init__(self, approximate: str = "none", **kwargs):
        self.approximate = approximate
        self._cached_gate = None
        super().__init__(**kwargs)

    @staticmethod
    def _gate(x, approximate):
        r"""The gate :math:`\Phi(x)` or :math:`s` of the form ``approximate``.

        Called through :meth:`_gate_of`, as ``_forward`` and ``_backward`` are
        called by :class:`Activation`: an override written as ``_gate(self, x)``
        (the contract before the setting was an argument) is given no setting
        and reads ``self.approximate``, as it always did."""
        if approximate == "tanh":
            return gelu_tanh_gate(x)
        # in float64, rounded once: a float32 x / sqrt(2) carries a relative
        # error that erfc's tail multiplies by 2 z^2 (85 ulps at x = -10)
        return normal_cdf(x.astype(np.float64)).astype(x.dtype, copy=False)

    def forward(self, x, training: bool = False) -> np.ndarray:
        # only the NumPy path (_forward) keeps a gate: a kernel forward must not
        # leave an older input's gate for a NumPy backward (a backend switched
        # in between) to use
        self._cached_gate = None
        return super().forward(x, training=training)

    def _gate_of(self, x, approximate):
        """``self._gate(x, ...)`` given the settings its signature takes
        (:func:`~tinynet.layers._checks.call_with_settings`, as for ``_forward``
        and ``_backward``)."""
        return call_with_settings(self, "_gate", (x,), {"approximate": approximate})

    def _forward(self, x, approximate):
        self._cached_gate = self._gate_of(x, approximate)
        return gelu_factor(x) * self._cached_gate  # -0.0 at -inf, not -inf * 0

    def _backward(self, x, y, dy, approximate):
        gate = self._gate_of(x, approximate) if self._cached_gate is None else self._cached_gate
        if approximate == "tanh":
            return dy * gelu_tanh_slope(x, gate)
        x = gelu_clamp(x)  # the slope's second term is exactly 0 beyond the clamp
        xd = x.astype(np.float64)  # as the gate: exp(-x^2/2) would magnify x*x's rounding
        slope = gate + xd * (_INV_SQRT_2PI * np.exp(-0.5 * xd * xd))
        return dy * slope.astype(x.dtype, copy=False)

    def get_config(self) -> dict:
        return {**super().get_config(), "approximate": self.approximate}


class Sigmoid(Activation):
    r"""Logistic sigmoid, numerically stable for any finite input.

    .. math::
        y = \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\, y (1 - y)

    Computed as :math:`1/(1+e^{-|x|})` or :math:`e^{-|x|}/(1+e^{-|x|})` so no
    exponential ever exceeds 1.
    """

    needs_input = False

    def _forward(self, x):
        return stable_sigmoid(x)

    def _backward(self, x, y, dy):
        return dy * y * (1.0 - y)


class SiLU(Activation):
    r"""Sigmoid linear unit (swish with :math:`\beta = 1`).

    .. math::
        y = x\,\sigma(x), \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}
        \bigl(\sigma(x) + y\,(1 - \sigma(x))\bigr)
    """

    def _forward(self, x):
        return x * stable_sigmoid(x)

    def _backward(self, x, y, dy):
        s = stable_sigmoid(x)
        return dy * (s + y * (1.0 - s))


class Tanh(Activation):
    r"""Hyperbolic tangent.

    .. math::
        y = \tanh x, \qquad
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\,(1 - y^2)
    """

    needs_input = False

    def _forward(self, x):
        return np.tanh(x)

    def _backward(self, x, y, dy):
        return dy * (1.0 - y * y)


def _check_axis(axis, who: str, what: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{who} expected {what} as an integer, received {axis!r}")
    return int(axis)


class Softmax(Activation):
    r"""Softmax along one axis (the last by default).

    .. math::
        y_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \quad m = \max_j x_j,
        \qquad
        \frac{\partial L}{\partial x_i} = y_i \Bigl(\frac{\partial L}{\partial y_i}
        - \sum_j \frac{\partial L}{\partial y_j}\, y_j\Bigr)

    Subtracting the maximum changes nothing mathematically and keeps every
    exponential in :math:`(0, 1]`. For classification prefer raw logits and
    :class:`tinynet.losses.CrossEntropy`, which fuses the two stably.

    Parameters
    ----------
    axis : int, default -1
        Axis of the full ``(batch, ...)`` input to normalise over; not the
        batch axis.
    """

    needs_input = False
    axis = Setting(_check_axis)  # and, once built, in range: compute_output_shape

    def __init__(self, axis: int = -1, **kwargs):
        self.axis = axis
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        ndim = len(input_shape) + 1
        if not (-ndim <= self.axis < ndim) or self.axis % ndim == 0:
            raise ValueError(f"{self._who} expected axis in [{1 - ndim}, {ndim - 1}] "
                             f"and not the batch axis for inputs of shape "
                             f"(batch, {', '.join(map(str, input_shape))}), "
                             f"received axis={self.axis}")
        return tuple(input_shape)

    def _forward(self, x, axis):
        # x - m overflows to -inf only when the row spans more than the
        # largest float; e^-inf = 0 is then the right weight
        with np.errstate(over="ignore"):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def _backward(self, x, y, dy, axis):
        return y * (dy - (dy * y).sum(axis=axis, keepdims=True))

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


# ``get`` accepts these names, an Activation instance, a
# ``{"class": ..., "config": ...}`` dict or None (identity). Values are
# classes or zero-argument factories (presets such as "gelu_tanh").
ACTIVATIONS: dict[str, type] = {
    "linear": Identity, "identity": Identity, "relu": ReLU, "leaky_relu": LeakyReLU,
    "elu": ELU, "gelu": GELU, "gelu_tanh": functools.partial(GELU, approximate="tanh"),
    "silu": SiLU, "swish": SiLU, "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax,
}


def get(spec, who: str = "activations.get") -> Activation:
    """A fresh activation layer from a name, a config dict, an instance (a
    copy of it: :func:`own_copy`) or None; anything else is a ``TypeError``
    naming ``who`` (the layer asking)."""
    if spec is None:
        return Identity()
    if isinstance(spec, Activation):
        return own_copy(spec)
    if isinstance(spec, dict):
        from .base import layer_from_dict
        layer = layer_from_dict(spec)
        if not isinstance(layer, Activation):
            raise TypeError(f"expected an activation, received layer class {spec['class']!r}")
        return layer
    if not isinstance(spec, str):
        raise TypeError(f"{who} expected activation as a name such as 'relu', an "
                        f"activation layer, a config dict or None, received "
                        f"{spec!r} of type {type(spec).__name__}")
    return lookup(ACTIVATIONS, spec, "activation")()


def own_copy(act: Activation) -> Activation:
    """A copy of ``act`` with a forward cache of its own, for a layer to hold
    as its ``activation``.

    Why a copy: an activation layer caches its forward pass (``x``, ``y``,
    the settings it ran with) for its backward, and a Dense or Conv2D runs
    its activation's forward and backward through that cache. One instance
    given to two layers (``a = LeakyReLU(0.2)``, then ``activation=a``
    twice, which Keras allows: its activations are stateless functions)
    held the second layer's forward when the first one's backward ran: wrong
    gradients for the first layer, or a shape error. Each layer holding a
    copy of its own behaves as a stateless shared function would, and as the
    model does after a save and load (a config stores the settings, so each
    layer loads an activation of its own): ``layer.activation`` has the
    class and settings given, and a setting changed there
    (``layer.activation.alpha = 0.3``) changes that layer only; one changed
    on the instance given afterwards changes none.

    A shallow copy (``copy.copy``), so that what the instance refers to --
    an object of the user's that a callback changes, a model, a lock -- is
    shared, not duplicated (nor refused as unpicklable); what is the
    layer's own state starts afresh: the forward cache (none yet), the
    parameter list, the containers (none: the copy is in no model) and the
    random generator (a copy, in the same state). An activation of the
    user's that holds parameters of its own (built, with ``add_param``) is
    copied deeply, as a layer's weights are its own."""
    if act.parameters():
        held = vars(act)
        blank = {"_parents": (), "_cache_owner_ref": None}
        # the containers holding it are not copied along (tinynet._weak would copy
        # them whole, then free them): the copy is in no container
        return copy.deepcopy(act, {id(held[k]): v for k, v in blank.items() if k in held})
    twin = copy.copy(act)
    state = vars(twin)
    for key in ("_x", "_y", "_settings", "_cache_owner_ref"):
        if key in state:
            state[key] = None
    state.pop("_parents", None)     # the class's (): in no container
    if "_params" in state:
        state["_params"] = []
    if isinstance(state.get("_rng"), np.random.Generator):
        state["_rng"] = copy.deepcopy(state["_rng"])
    return twin


def _check_setting(value, who: str, what: str) -> Activation:
    return get(value, who)


def setting() -> Setting:
    """The ``activation`` setting of a layer that applies one (Dense,
    Conv2D, MMoE): checked by :func:`get` (a name set later becomes the
    activation layer, whose methods the forward calls), and an ``output``
    setting (:class:`~tinynet.layers._checks.Setting`): a softmax or
    sigmoid set on an output layer after compile re-pairs the loss."""
    return Setting(_check_setting, output=True)


def name_of(act: Activation) -> str:
    """The registry name of an activation's class (``"relu"`` for ReLU)."""
    for name, cls in ACTIVATIONS.items():
        if type(act) is cls:
            return name
    raise ValueError(f"activation {type(act).__name__} is not registered in ACTIVATIONS")


def _non_default_settings(act: Activation) -> dict:
    """The constructor arguments of ``act`` that differ from their defaults."""
    base_keys = ("name", "trainable", "dtype", "input_shape", "seed")
    defaults = {k: p.default for k, p in inspect.signature(type(act)).parameters.items()}
    return {k: v for k, v in act.get_config().items()
            if k not in base_keys and defaults.get(k, inspect.Parameter.empty) != v}


def to_config(act: Activation):
    """What a Dense config stores: ``None`` for identity, a name for default
    settings (``"leaky_relu"``), else a ``{"class", "config"}`` dict holding
    the settings that differ (``{"class": "GELU", "config": {"approximate": "tanh"}}``)."""
    if type(act) is Identity:
        return None
    extra = _non_default_settings(act)
    if not extra:
        return name_of(act)
    from .base import layer_to_dict
    spec = layer_to_dict(act)
    spec["config"] = extra
    return spec


def kernel_code(act: Activation, dtype, settings: dict | None = None) -> tuple | None:
    """``(code, alpha)`` of the fused kernel computing ``act`` for arrays of
    ``dtype`` (see :mod:`tinynet.kernels.activations`), or None when the
    NumPy code runs: the "numpy" backend, another dtype, or a class without
    a kernel (exact classes only: a subclass may change the maths).
    ``settings``: the ones to compute with (a backward passes its forward's),
    by default the layer's own."""
    if dtype not in (np.float32, np.float64) or kernels.effective_backend() == "numpy":
        return None
    name = _KERNEL_NAMES.get(type(act))
    if name is None:
        return None
    if settings is None:
        settings = settings_of(act)
    if name == "gelu" and settings["approximate"] == "tanh":
        name = "gelu_tanh"
    return ACT_CODES[name], float(settings.get("alpha", 0.0))


_KERNEL_NAMES = {Identity: "identity", ReLU: "relu", LeakyReLU: "leaky_relu", ELU: "elu", GELU: "gelu",
                 SiLU: "silu", Sigmoid: "sigmoid", Tanh: "tanh"}
