"""Checks of layer hyper-parameters (slopes, rates, momenta, epsilons) and
:class:`Setting`, which runs them whenever a layer's (or a loss's) setting
is set."""

from __future__ import annotations

import functools
import inspect
import math
import numbers

__all__ = ["check_real", "check_choice", "check_initializer", "Setting", "settings_of",
           "adopt_settings", "call_with_settings"]


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
        held = layer.__dict__
        if self.name in held:  # a plain key: see adopt
            self.adopt(layer)
        try:
            return held[self.slot]
        except KeyError:
            if self.default is not Setting._NO_DEFAULT:
                return self.default
            raise AttributeError(f"{type(layer).__name__} has no {self.name} set yet") from None

    def adopt(self, layer) -> None:
        """Move a value held in ``layer.__dict__`` under the setting's own name
        (``"reduction"``, not the slot ``"_reduction"``) into its slot, checked
        as an assignment is: what an object pickled before the setting was a
        :class:`Setting` holds (a loss pickled when ``reduction`` was a plain
        attribute), or an ``__init__`` that writes ``self.__dict__`` itself.
        Reading the setting adopts such a value, so it is never hidden behind
        an older one in the slot."""
        value = layer.__dict__.pop(self.name)
        try:
            self.__set__(layer, value)
        except Exception:
            layer.__dict__[self.name] = value
            raise

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


@functools.cache
def _setting_slots(cls) -> tuple:
    """``(name, slot)`` of each of ``cls``'s settings (cached: :func:`settings_of`
    runs on every forward); slot None for one a subclass overrides with a
    plain class attribute (``reduction = "sum"``), read as it is."""
    return tuple((name, getattr(getattr(cls, name), "slot", None)) for name in setting_names(cls))


def settings_of(layer) -> dict:
    """``{name: value}`` of every :class:`Setting` ``layer`` holds: what a
    forward pass keeps for its backward, which must differentiate the
    function the forward computed even if a setting changes in between.

    A setting that is not set (and has no default) is left out: a subclass
    that never sets, and never uses, a setting of its base (a ``Huber``
    subclass with its own maths and no ``delta``) still runs; a method that
    names it is told it is not set (:func:`call_with_settings`)."""
    held = layer.__dict__
    settings = {}
    for name, slot in _setting_slots(type(layer)):
        if slot in held and name not in held:  # the fast path: a value in its slot
            settings[name] = held[slot]
        else:  # a default, a plain key to adopt (Setting.adopt), or nothing
            try:
                settings[name] = getattr(layer, name)
            except AttributeError:
                pass
    return settings


def adopt_settings(obj) -> None:
    """:meth:`Setting.adopt` every plain ``__dict__`` key of ``obj`` named as
    one of its settings: a ``__setstate__`` for an object pickled when its
    settings were plain attributes (the losses' before they were Settings)."""
    for name in setting_names(type(obj)):
        setting = getattr(type(obj), name)
        if name in obj.__dict__ and isinstance(setting, Setting):
            setting.adopt(obj)


def _definitions(cls, method: str) -> list:
    """The functions defining ``cls.<method>``, the override first, each as its
    parameters after ``self`` (a staticmethod has none to skip)."""
    found = []
    for klass in cls.__mro__:
        attr = vars(klass).get(method)
        if attr is None:
            continue
        func = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        params = list(inspect.signature(func).parameters.values())
        found.append(params if isinstance(attr, staticmethod) else params[1:])
    return found


def _parameter_plan(cls, definitions: list, n_args: int):
    """``((parameter, setting), ...)`` for the first of ``definitions``
    (:func:`_definitions`) called with ``n_args`` arguments, or None for all
    the settings by their own names."""
    names = setting_names(cls)
    params = definitions[0][n_args:]
    if any(p.kind is p.VAR_KEYWORD for p in definitions[0]):
        if len(definitions) == 1:  # the contract's root (Activation._forward(x, **settings))
            return None
        # an override passing **kwargs on to the method it overrides: what that one takes
        inherited = _parameter_plan(cls, definitions[1:], n_args)
        if inherited is None:
            return None
        return tuple((setting, setting) for _, setting in inherited)
    plan = []
    for i, p in enumerate(params):
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        if p.name in names:
            plan.append((p.name, p.name))
        elif p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD:
            # a renamed setting (_gate(self, x, approx)): the setting that an
            # overridden method takes in the same place, as a positional call gave it
            in_place = [base[n_args + i].name for base in definitions[1:]
                        if len(base) > n_args + i and base[n_args + i].name in names]
            if in_place:
                plan.append((p.name, in_place[0]))
    return tuple(plan)


@functools.cache
def _settings_caller(cls, method: str, n_args: int):
    """``call(obj, args, settings)``: ``obj.<method>(*args, ...)`` given the
    part of ``settings`` that :func:`_parameter_plan` says, built once per
    class and method (a forward pays a cached look-up and one call, not a
    signature read nor a bound method's making)."""
    plan = _parameter_plan(cls, _definitions(cls, method), n_args)
    func = getattr(cls, method)
    if isinstance(inspect.getattr_static(cls, method), (staticmethod, classmethod)):
        func = functools.partial(_unbound, func)
    names = setting_names(cls)
    if plan is None or (all(p == s for p, s in plan) and {s for _, s in plan} == set(names)):
        return lambda obj, args, settings: func(obj, *args, **settings)
    if not plan:
        return lambda obj, args, settings: func(obj, *args)

    def call(obj, args, settings):
        try:
            passed = {parameter: settings[setting] for parameter, setting in plan}
        except KeyError as error:
            raise AttributeError(f"{type(obj).__name__} has no {error.args[0]} "
                                 f"set yet") from None
        return func(obj, *args, **passed)
    return call


def _unbound(func, obj, *args, **kwargs):
    """``func(*args, **kwargs)``, ``obj`` dropped: a static (or class) method
    called as the others are, with the object first."""
    return func(*args, **kwargs)


def call_with_settings(obj, method: str, args: tuple, settings: dict):
    """``obj.<method>(*args, ...)`` given the part of ``settings``
    (:func:`settings_of`, kept by a forward pass) that its signature takes.

    One rule for the activations' ``_forward``/``_backward`` (and GELU's
    ``_gate``) and the losses' ``_forward``/``_backward``, read once per
    class and method from the signature of the override:

    * a parameter named as a setting (``delta``, ``approximate``) receives it
      by keyword; a method that names none (``_forward(self, x)``, the contract
      before settings were arguments) receives none and reads
      ``self.<setting>``;
    * a required parameter beyond ``args`` under another name receives the
      setting that the overridden method takes in the same place
      (``_gate(self, x, approx)`` over ``GELU._gate(x, approximate)``), as
      when that method was called with it positionally;
    * ``**kwargs`` receives what the overridden method takes (an override
      passing them on to ``super()``), or every setting when it overrides
      nothing (the contract's own ``Activation._forward(x, **settings)``).
    """
    return _settings_caller(type(obj), method, len(args))(obj, args, settings)


@functools.cache
def changeable_slots(cls) -> tuple:
    """The slots (``"_alpha"``) of the :class:`Setting` attributes of ``cls``
    that may change once the layer is built (not ``fixed``): what a forward
    pass may have computed with a value the layer no longer holds. A setting
    a subclass overrides with a plain class attribute (``Flatten``'s
    ``target_shape = None``) has none."""
    attrs = (getattr(cls, name) for name in setting_names(cls))
    return tuple(attr.slot for attr in attrs if isinstance(attr, Setting) and not attr.fixed)
