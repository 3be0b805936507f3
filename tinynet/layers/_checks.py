"""Checks of layer hyper-parameters (slopes, rates, momenta, epsilons) and
:class:`Setting`, which runs them whenever a layer's (or a loss's) setting
is set."""

from __future__ import annotations

import functools
import inspect
import math
import numbers

__all__ = ["check_real", "check_choice", "check_initializer", "Setting", "settings_of",
           "passed_settings"]


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_real(value, who: str, what: str, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a real number in the given interval.

    Errors read alike for every layer: ``Dropout expected rate in [0, 1),
    received 1.5`` (``ValueError``), or a ``TypeError`` for a non-number.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who} expected {what} as a real number, received {value!r} "
                        f"of type {type(value).__name__}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        raise ValueError(f"{who} expected {what} in "
                         f"{_interval(low, high, low_open, high_open)}, received {value!r}")
    return value


def check_choice(value, who: str, what: str, choices: tuple) -> str:
    """``value`` if it is one of ``choices``: ``GELU expected approximate
    'none' or 'tanh', received 'Tanh'`` (``ValueError``) otherwise."""
    if not isinstance(value, str) or value not in choices:
        names = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{who} expected {what} {names}, received {value!r}")
    return value


def check_initializer(value, who: str, what: str):
    """``value`` if :func:`tinynet.init.get` takes it (an initializer's
    name or a function ``(shape, rng, dtype) -> array``), kept as given: a
    config stores the name, and the layer looks the function up when it is
    built."""
    from .. import init  # here: tinynet.init imports the layers' base
    init.get(value, who, what)
    return value


class Setting:
    """A layer setting (constructor argument) checked whenever it is set.

    The layers hand their settings to the *trusted* kernel builds, which do
    not check them again (:func:`tinynet.kernels.impl`), and to NumPy code
    that would compute garbage from a bad one (a negative ``eps``) or fail
    deep inside (a float pool size). So a setting is a descriptor: the
    constructor's ``self.alpha = alpha`` and a later ``layer.alpha = 0.2``
    run the same ``check(value, who, what, **options)`` (``who`` the class
    name, ``what`` the attribute's) and keep what it returns, so both give
    the same error and the layer only ever holds checked values.

    Once the layer is built:

    * a ``fixed`` setting refuses any change (setting the value it holds is
      allowed): ``fixed=True`` for one that fixes the shapes of its
      parameters or output (``units``, ``kernel_size``, ``strides``...),
      whose refusal names those shapes; ``fixed="weights"`` for one that
      the build used to initialise the parameters (``kernel_initializer``,
      CrossStitch's ``self_weight``), whose refusal says to set it before
      the build, and how to initialise them again;
    * any other must still suit the input the layer was built for (a
      Softmax ``axis`` within it): :meth:`Layer.compute_output_shape` runs
      again, and a value it refuses is not kept.

    After every change the layer's ``_setting_changed(name)`` runs (the
    windowed layers forget the geometry they computed from the old value);
    then, for an ``output`` setting (one that changes what kind of output
    the layer gives: a ``Dense`` or ``MMoE`` ``activation``, softmax or not),
    ``_output_changed()``, so that the models holding the layer pair their
    compiled loss and metrics with its output again.

    The losses' settings (:mod:`tinynet.losses`: ``reduction``, ``delta``,
    ``label_smoothing``...) are Settings too: an object that is never built
    only needs ``_setting_changed``. ``default``, given, is what the setting
    reads before any value is set (``Loss.reduction``'s ``"mean"``, for a
    subclass whose ``__init__`` never sets it); without, reading it then is
    an ``AttributeError``. ``what``, given, is how the check's errors name
    the setting (``"weight (one per class)"``), by default its attribute name.
    """

    _NO_DEFAULT = object()

    def __init__(self, check, *, fixed: bool | str = False, output: bool = False,
                 default=_NO_DEFAULT, what: str | None = None, **options):
        if fixed not in (False, True, "weights"):
            raise ValueError(f"Setting expected fixed False, True or 'weights', "
                             f"received {fixed!r}")
        self.check = check
        self.fixed = fixed
        self.output = output
        self.default = default
        self.what = what
        self.options = options
        self.name = self.slot = None

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.slot = name, f"_{name}"

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        try:
            return layer.__dict__[self.slot]
        except KeyError:
            if self.default is not Setting._NO_DEFAULT:
                return self.default
            raise AttributeError(f"{type(layer).__name__} has no {self.name} set yet") from None

    def __set__(self, layer, value) -> None:
        value = self.check(value, type(layer).__name__, self.what or self.name, **self.options)
        built = layer.__dict__.get("built")
        if built:
            old = layer.__dict__[self.slot]
            if self.fixed and value != old:
                raise ValueError(self._fixed_message(layer, old, value))
        layer.__dict__[self.slot] = value
        if built and not self.fixed:  # the new value, held, must suit the built input
            try:
                layer.compute_output_shape(layer.input_shape)
            except Exception:
                layer.__dict__[self.slot] = old
                raise
        layer._setting_changed(self.name)
        if self.output:
            layer._output_changed()

    def _fixed_message(self, layer, old, value) -> str:
        params = ", ".join(f"{p.name.rsplit('/', 1)[-1]} {p.shape}" for p in layer._params)
        if self.fixed == "weights":
            return (f"{layer._who} cannot change {self.name} once built: the build "
                    f"initialised its parameters ({params}) with {self.name}={old!r}; set "
                    f"{self.name} before the layer is built, or make a new layer with "
                    f"{self.name}={value!r}; Sequential.reset_parameters(seed) initialises "
                    f"a model's parameters again, with the settings they have")
        shapes = f"output {_shapes_str(layer.output_shape)}"
        if params:
            shapes += f"; parameters {params}"
        return (f"{layer._who} cannot change {self.name} once built: {self.name}={old!r} "
                f"fixed its shapes ({shapes}) for inputs {_shapes_str(layer.input_shape)}; "
                f"make a new layer with {self.name}={value!r}")


def _shapes_str(shapes) -> str:
    """:func:`~tinynet.layers.base.shape_str` of a per-sample shape, or of
    each of a list of them (a multi-input layer's inputs, MMoE's outputs)."""
    from .base import shape_str
    if shapes and isinstance(shapes[0], (tuple, list)):
        return ", ".join(map(shape_str, shapes))
    return shape_str(shapes)


@functools.cache
def setting_names(cls) -> tuple:
    """The names of the :class:`Setting` attributes of ``cls`` and its bases."""
    return tuple(dict.fromkeys(name for klass in reversed(cls.__mro__)
                               for name, attr in vars(klass).items()
                               if isinstance(attr, Setting)))


def settings_of(layer) -> dict:
    """``{name: value}`` of every :class:`Setting` ``layer`` holds: what a
    forward pass keeps for its backward, which must differentiate the
    function the forward computed even if a setting changes in between."""
    return {name: getattr(layer, name) for name in setting_names(type(layer))}


@functools.cache
def _accepted_settings(cls, method: str) -> tuple | None:
    """The names of ``cls``'s settings that ``cls.<method>`` takes as keyword
    arguments, or None when it takes all of them (by name or ``**kwargs``).
    Cached: the signature is read once per class and method."""
    params = inspect.signature(getattr(cls, method)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    names = tuple(name for name in setting_names(cls) if name in named)
    return None if names == setting_names(cls) else names


def passed_settings(cls, method: str, settings: dict) -> dict:
    """The part of ``settings`` (:func:`settings_of`, kept by a forward pass)
    to pass to ``cls.<method>``: those it names (none for a method written as
    ``_forward(self, x)``, which reads ``self.<setting>``), or all when it
    takes ``**kwargs``. The activations' ``_forward``/``_backward`` and the
    losses' are called so."""
    names = _accepted_settings(cls, method)
    return settings if names is None else {name: settings[name] for name in names}


@functools.cache
def changeable_slots(cls) -> tuple:
    """The slots (``"_alpha"``) of the :class:`Setting` attributes of ``cls``
    that may change once the layer is built (not ``fixed``): what a forward
    pass may have computed with a value the layer no longer holds."""
    return tuple(getattr(cls, name).slot for name in setting_names(cls)
                 if not getattr(cls, name).fixed)
