"""The layer contract every building block of tinynet follows.

A layer is a stateful object with two methods that mirror each other:

``forward(x, training=False) -> y``
    computes the output and keeps (caches) what the backward pass needs;
``backward(dy) -> dx``
    given :math:`\\partial L/\\partial y` returns :math:`\\partial L/\\partial x`
    and *adds* :math:`\\partial L/\\partial \\theta` to each parameter's
    ``grad`` (so calling it twice doubles the gradients; ``zero_grad()``
    resets them).

Neither modifies ``x`` or ``dy`` in place. Shapes are ``(batch, ...)``; the
*input shape* a layer is built for is the per-sample part ``x.shape[1:]``.

A layer is built -- its parameters created -- either explicitly with
``build(input_shape)`` (or ``input_dim=`` in the constructor, for the first
layer of a model) or lazily on its first forward pass.

``trainable = False`` freezes a layer (recursively for containers): its
parameters leave the optimizer, but it still passes gradients to its input.
As in Keras, a frozen container wins over the flags inside it: a layer set
trainable inside a frozen nested model keeps its own flag (saved and
loaded as such) but does not train while a frozen container holds it
(:func:`adopt`). Each parameter's ``trainable`` is the effective flag.

A layer computes in one dtype, float32 or float64 (``dtype``, fixed when it
is built: by default the first input's). ``forward`` casts an input of the
other of the two to it, and ``backward`` casts ``dy`` likewise, so the
output and ``dx`` always have the layer's dtype (Keras' rule); float16 and
other floating dtypes are refused with a ``TypeError`` (see
:func:`tinynet.checks.as_float_array`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import threading
import weakref
from collections import defaultdict

import numpy as np

from .. import _userwarn
from .._weak import Ref, WeakParents
from ..checks import FLOAT_DTYPES, as_float_array, check_bool, check_seed, native_dtype
from ..param import Param, check_param_budget, layout_kept
from ._checks import changeable_slots

__all__ = ["Layer", "layer_from_dict", "layer_to_dict", "LAYER_CLASSES", "LAYER_ALIASES",
           "add_alias", "shape_str",
           "walk_layers", "settings_tree", "swap_settings", "stale_cache_error", "adopt",
           "release", "apply_frozen_containers"]

#: Every concrete layer class by its class name; filled by ``Layer.__init_subclass__``.
LAYER_CLASSES: dict[str, type] = {}
#: Other names of a layer class (Keras' ``MaxPooling2D`` for ``MaxPool2D``):
#: alias -> the class name a saved file stores; filled by :func:`add_alias`.
LAYER_ALIASES: dict[str, str] = {}

# The highest ``<base>_<n>`` suffix seen per base name, so that a layer created
# after loading a model (whose layers carry explicit names such as "dense_1")
# never receives a name already in use.
_last_name_index: dict[str, int] = defaultdict(int)
# Serialises the counter's read-modify-writes: two threads making layers at once
# took the same automatic name, and a name noted from a stale read set the
# counter back, so a thread's next layer repeated one of its own (a Sequential
# then refused it: "already has a layer named 'dense_7'").
_NAME_LOCK = threading.Lock()
_NAME_PATTERN = re.compile(r"^(.*)_(\d+)$")


def _register(cls) -> None:
    """Enter ``cls`` in :data:`LAYER_CLASSES` under its name (what a saved file
    holds). Defining the same class again (a re-run notebook cell) replaces it
    quietly; a different class of the same name gets a warning, since files
    then load into it instead."""
    old = LAYER_CLASSES.get(cls.__name__)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__,
                                                                    cls.__qualname__):
        _userwarn.warn(f"layer class {cls.__name__!r} of {cls.__module__} replaces "
                       f"{old.__module__}.{old.__qualname__} for tinynet.load: a saved "
                       f"{cls.__name__!r} now loads as the new class (give one of them "
                       f"another name)")
    LAYER_CLASSES[cls.__name__] = cls


def add_alias(alias: str, cls) -> type:
    """``cls`` under another name, for a module to bind (``MaxPooling2D =
    add_alias("MaxPooling2D", MaxPool2D)``): the same class, not a subclass,
    so a layer made by either name is saved under the class's own name, and
    :func:`layer_from_dict` also accepts the alias."""
    if LAYER_CLASSES.get(cls.__name__) is not cls:
        raise TypeError(f"add_alias expected a registered layer class, received {cls!r}")
    if alias in LAYER_CLASSES:
        raise ValueError(f"add_alias: {alias!r} is a layer class's own name already")
    LAYER_ALIASES[alias] = cls.__name__
    return cls


def _note_name(name: str) -> None:
    match = _NAME_PATTERN.match(name)
    if match:
        base, index = match.group(1), int(match.group(2))
        with _NAME_LOCK:
            _last_name_index[base] = max(_last_name_index[base], index)


def unique_name(base: str, name: str | None = None) -> str:
    """``name`` if given (noted, so no automatic name repeats it: a loaded
    model's names stay unique), else the next free ``base_<k>``."""
    if name is None:
        with _NAME_LOCK:
            _last_name_index[base] += 1
            name = f"{base}_{_last_name_index[base]}"
    if isinstance(name, str):
        _note_name(name)
    return name


def _shape_tuple(shape, who: str) -> tuple:
    """``shape`` (a tuple or list) as a tuple; anything else is refused
    (``tuple(5)`` would fail with "'int' object is not iterable")."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{who} expected an input shape as a tuple of positive integers "
                        f"such as (784,), received {shape!r}")
    return tuple(shape)


def _disowning(forward):
    """``forward`` that first marks the layer's cache as no container's
    (``_cache_owner = None``; see :class:`Layer`, "Forward caches")."""
    @functools.wraps(forward)
    def disowning_forward(self, *args, **kwargs):
        self._cache_owner_ref = None  # (``_cache_owner = None``, a property call less)
        return forward(self, *args, **kwargs)
    disowning_forward._disowns = True
    return disowning_forward


def stale_cache_error(who: str, layer: "Layer") -> RuntimeError:
    """What a container's backward raises when ``layer``'s forward cache is
    no longer the one the container's forward left (see :class:`Layer`)."""
    return RuntimeError(f"{who}: {layer._who} ran a forward pass since this model's "
                        f"forward (called directly, or by another model), so its cache no "
                        f"longer holds this model's forward and the gradients would be "
                        f"wrong; call the model's forward again before its backward")


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isdigit() and (  # Conv2D: conv2d
                not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def shape_str(per_sample_shape) -> str:
    """``(batch, 128)`` for the per-sample shape ``(128,)``."""
    inner = ", ".join(str(d) for d in per_sample_shape)
    return f"(batch, {inner})" if inner else "(batch,)"


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique within a model; defaults to the class's automatic base name and
        a counter (``dense_3``). The base name is the snake-case class name
        (``LayerNorm``: ``layer_norm``) unless the class gives its own with the
        ``auto_name`` class keyword (``class MMoE(Layer, auto_name="mmoe")``,
        whose snake case would read ``m_mo_e``); subclasses do not inherit it.
    trainable : bool, default True
    dtype : "float32", "float64" or None
        dtype of the parameters and of the computation. ``None`` (default)
        takes the input's dtype at the first forward pass.
    input_dim : int, optional
        Per-sample input width, to build at construction (``input_shape=``
        gives the whole per-sample shape).
    seed : int, optional
        Seed of this layer's own random generator (initial weights, dropout
        masks), a non-negative integer. Models pass their own generator
        otherwise.

    Notes
    -----
    A subclass sets its own attributes *before* calling
    ``super().__init__(**kwargs)``, because a declared ``input_dim`` builds
    the layer inside that call.

    Forward caches: a layer keeps one cache, that of its last forward. A
    container (:class:`~tinynet.Sequential`, :class:`tinynet.mtl.Model`)
    records itself in each child's ``_cache_owner`` after running it, and
    every ``forward`` first resets that to None (``__init_subclass__`` wraps
    each subclass's ``forward`` so), so the container's backward can tell
    that a child ran elsewhere since -- called directly, or by another
    model -- and raise :func:`stale_cache_error` (or re-run it, for a layer
    a functional model calls at several nodes) instead of computing the
    gradient of that other run. The layer holds its owner by weak reference
    (:class:`tinynet._weak.Ref`): a model dropped after a forward is freed
    though its layers live on (and no longer counts as holding them), and
    a dead owner (None) is no live container, so the ``is not self`` checks
    stay exact (an ``id()`` could be a new object's). A deep copy or a
    pickle of the model refers to the model's copy: a model copied between
    its forward and its backward backpropagates.
    """

    _auto_name = "layer"
    #: A weak reference to :attr:`_cache_owner`, or None.
    _cache_owner_ref = None

    @property
    def _cache_owner(self):
        """The container (or graph node) whose forward this layer's cache
        holds (see Notes), or None: none, or it has been freed since."""
        ref = self._cache_owner_ref
        return None if ref is None else ref()

    @_cache_owner.setter
    def _cache_owner(self, owner):
        self._cache_owner_ref = None if owner is None else Ref(owner)

    #: The containers holding this layer (a :class:`tinynet._weak.WeakParents`,
    #: made by :func:`adopt`).
    _parents = ()
    #: What a container released (:func:`tinynet.optim.binding.release_parameters`).
    _released = None

    def __init_subclass__(cls, auto_name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if auto_name is not None and not (isinstance(auto_name, str)
                                          and auto_name.isidentifier()):
            raise TypeError(f"{cls.__name__} expected auto_name as an identifier such as "
                            f"'mmoe', received {auto_name!r}")
        cls._auto_name = auto_name or _snake(cls.__name__)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "_disowns", False):
            cls.forward = _disowning(forward)
        if not cls.__name__.startswith("_"):  # private bases are not layers to save
            _register(cls)

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None,
                 input_dim: int | None = None, input_shape=None, seed: int | None = None,
                 **unknown):
        if unknown:
            raise TypeError(self._unknown_keywords_message(unknown))
        name = unique_name(self._auto_name, name)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{type(self).__name__} expected name as a non-empty string, "
                            f"received {name!r}")
        self.name = name
        self._trainable = check_bool(trainable, self._who, "trainable")
        self.dtype = None if dtype is None else self._check_dtype(dtype, self._who)
        self.seed = check_seed(seed, self._who)
        self._rng = None
        self._params: list[Param] = []
        self.built = False
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None
        if input_dim is not None and input_shape is not None:
            raise ValueError(f"{self._who} takes input_dim or input_shape, not both")
        if input_dim is not None:
            input_shape = (input_dim,)
        self._declared_input_shape = (None if input_shape is None
                                      else _shape_tuple(input_shape, self._who))
        if self._declared_input_shape is not None:
            self.build(self._declared_input_shape)

    @classmethod
    def _unknown_keywords_message(cls, unknown) -> str:
        """What a subclass's unknown keyword gets (Python's own message would
        name ``Layer.__init__``): the class, the keyword, the closest one it
        takes and all of them (from the ``__init__`` signatures of its bases)."""
        takes = []
        for klass in cls.__mro__:
            if "__init__" in vars(klass) and issubclass(klass, Layer):
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and (
                            p.name != "self" and p.name not in takes):
                        takes.append(p.name)
        key = next(iter(unknown))
        # a close spelling, or Keras' longer name (epsilon: eps); not
        # checks.did_you_mean, whose looser match offers activation for dilation_rate
        close = [t for t in takes if key.startswith(t) or t.startswith(key)]
        close = close or difflib.get_close_matches(key, takes, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (f"{cls.__name__} got an unexpected keyword argument {key!r}{hint} "
                f"(it takes {', '.join(takes)})")

    # ------------------------------------------------------------------ naming
    @property
    def _who(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    @staticmethod
    def _check_dtype(dtype, who: str) -> np.dtype:
        """``dtype`` as a float32 or float64 ``np.dtype`` (``">f4"`` is float32
        in the native byte order), else a clear error."""
        try:
            dt = native_dtype(dtype)
        except TypeError:
            dt = None
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"{who} expected dtype float32 or float64, received {dtype!r}")
        return dt

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ---------------------------------------------------------------- building
    def build(self, input_shape, rng: np.random.Generator | None = None, dtype=None):
        """Create the parameters for inputs of per-sample shape ``input_shape``.

        A leading ``None`` (Keras' batch dimension) is accepted and dropped.
        Subclasses override :meth:`_build` (create parameters) and
        :meth:`compute_output_shape`.
        """
        input_shape = _shape_tuple(input_shape, self._who)
        if input_shape and input_shape[0] is None:
            input_shape = input_shape[1:]
        for d in input_shape:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0:
                raise ValueError(f"{self._who} expected an input shape of positive "
                                 f"integers, received {input_shape}")
        return self._build_checked(tuple(int(d) for d in input_shape), rng, dtype)

    def _build_checked(self, input_shape, rng, dtype):
        """The part of :meth:`build` after the shape checks (multi-input layers,
        whose input shape is a list of shapes, reuse it)."""
        if dtype is None:
            dtype = self.dtype or np.dtype(np.float32)
        if self.dtype is None:
            self.dtype = self._check_dtype(dtype, self._who)
        if rng is not None and self.seed is None:
            self._rng = rng
        old = self.parameters() if self.built else []
        self._params = []
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        self.input_shape = input_shape
        self._build(input_shape, self.rng)
        self.built = True
        if old:  # built again: the models holding it released those it replaced
            from ..optim.binding import release_parameters
            kept = {id(p) for p in self.parameters()}
            replaced = [p for p in old if id(p) not in kept]
            for parent in list(self._parents):
                release_parameters(parent, self, replaced)
        return self

    def _build(self, input_shape: tuple, rng: np.random.Generator) -> None:
        """Create parameters with :meth:`add_param`; parameter-free layers skip it."""

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Per-sample output shape for a per-sample input shape (default: same)."""
        return tuple(input_shape)

    def _setting_changed(self, name: str) -> None:
        """Called after a :class:`~tinynet.layers._checks.Setting` (``name``)
        took a new value, for a layer that keeps something computed from it."""

    def _output_changed(self) -> None:
        """What this layer outputs changed kind (an activation set later): the
        containers holding it pair their compiled losses and metrics with
        their outputs again (a softmax output's cross-entropy takes logits
        when the softmax goes), as adding or popping a layer does."""
        for parent in list(self._parents):
            refit = getattr(parent, "_refit_output", None)
            if refit is not None:
                refit()

    @property
    def rng(self) -> np.random.Generator:
        """This layer's random generator (created from ``seed`` on first use)."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def set_rng(self, rng: np.random.Generator) -> None:
        """Use ``rng`` for randomness from now on (recursively in containers)."""
        self._rng = rng
        for layer in self.sublayers():
            layer.set_rng(rng)

    def add_param(self, name: str, value: np.ndarray) -> Param:
        """Register a parameter named ``"<layer name>/<name>"``.

        Inside a :func:`~tinynet.param.param_budget` block (:func:`tinynet.load`)
        the parameter is charged to the budget; a layer should create ``value``
        with a :mod:`tinynet.init` initializer (or call
        :func:`~tinynet.param.check_param_budget` first), so that a shape the
        budget cannot hold is refused before it is allocated.
        """
        check_param_budget(np.shape(value), f"the parameter {self.name}/{name}", charge=True)
        param = Param(np.asarray(value, dtype=self.dtype), name=f"{self.name}/{name}")
        self._sync_param_flags(params=[param])
        self._params.append(param)
        return param

    # ------------------------------------------------------------ input checks
    def _prepare_input(self, x) -> np.ndarray:
        """Check ``x`` (float array of shape ``(batch, *input_shape)``), building
        the layer on first use. Returns ``x`` as an ndarray of the layer's dtype
        (cast if it is the other of float32 and float64)."""
        x = as_float_array(x, self._who, min_ndim=1)
        if not self.built:
            if x.ndim < 2:
                raise ValueError(f"{self._who} expected input of shape (batch, features...), "
                                 f"received {x.shape}")
            self.build(x.shape[1:], dtype=self.dtype or x.dtype)
        elif x.shape[1:] != self.input_shape:
            raise ValueError(f"{self._who} expected input of shape "
                             f"{shape_str(self.input_shape)}, received {x.shape}")
        return x.astype(self.dtype, copy=False)

    # ------------------------------------------------------------------- maths
    def forward(self, x, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, x, training: bool = False):
        # A symbolic tensor (tinynet.mtl.Input and friends) builds a graph node
        # instead of computing: the functional API. Checked by duck typing so
        # this floor does not import tinynet.mtl.
        first = x[0] if isinstance(x, (list, tuple)) and x else x
        if isinstance(x, dict) and x:  # a functional Model's inputs by name
            first = next(iter(x.values()))
        if getattr(first, "_tinynet_symbolic", False):
            return first._connect(self, x)
        return self.forward(x, training=training)

    def _check_dy(self, dy, y_shape) -> np.ndarray:
        """``dy`` must be a float array shaped like the output of the last
        forward; returned in the layer's dtype."""
        dy = as_float_array(dy, self._who, "dy")
        if dy.shape != tuple(y_shape):
            raise ValueError(f"{self._who} expected dy of shape {tuple(y_shape)} "
                             f"(the shape of its last output), received {dy.shape}")
        return dy.astype(self.dtype, copy=False)

    def _require_cache(self, cached) -> None:
        if cached is None:
            raise RuntimeError(f"{self._who}: backward called before forward")

    # -------------------------------------------------------------- parameters
    def sublayers(self) -> list["Layer"]:
        """Direct child layers (containers override this)."""
        return []

    def parameters(self) -> list[Param]:
        """All parameters, this layer's then its children's, in a fixed order."""
        params = list(self._params)
        for layer in self.sublayers():
            params.extend(layer.parameters())
        return params

    def trainable_parameters(self) -> list[Param]:
        return [p for p in self.parameters() if p.trainable]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def count_params(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    @property
    def trainable(self) -> bool:
        """This layer's own flag. Setting it sets every layer inside it too
        (Keras' rule); its parameters train only if no container holding it
        (at any depth) is frozen: :meth:`_frozen_above`."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = check_bool(value, self._who, "trainable")
        self._trainable = value
        self._sync_param_flags()
        for layer in self.sublayers():
            layer.trainable = value

    def _frozen_above(self) -> bool:
        """Whether a container holding this layer, or one holding that, is frozen."""
        return any(not parent._trainable or parent._frozen_above() for parent in self._parents)

    @property
    def trains(self) -> bool:
        """Whether this layer trains in effect, by the one rule: its own flag
        is on and no container holding it (at any depth, :meth:`_frozen_above`)
        is frozen. Its parameters' flags follow it (:meth:`_sync_param_flags`),
        and so does what a layer does in training mode only (a BatchNorm's
        batch statistics and moving-statistics updates)."""
        return self._trainable and not self._frozen_above()

    def _sync_param_flags(self, switch: str = "both", params=None) -> None:
        """Set parameters' ``trainable`` by the one rule: a parameter trains if
        its layer's own flag is on and no container holding the layer (at any
        depth, :meth:`_frozen_above`) is frozen.

        ``params``: this layer's parameters by default (:meth:`add_param`
        passes the new one only). ``switch`` says which flags may change, so
        that a flag set by hand on a :class:`~tinynet.param.Param` (a bias left
        training in a frozen layer) is kept where the caller must keep it:

        * ``"both"`` -- every flag becomes the rule's (the layer's own flag
          was just set, or the parameter is new);
        * ``"off"`` -- only while a frozen container holds the layer, all its
          flags go off (:func:`adopt`, loading): the container wins, the
          layer's own flag does not count here;
        * ``"on"`` -- only where the rule lets them train, all flags go on
          (:func:`release`).
        """
        effective = self.trains
        if (switch == "off" and not self._frozen_above()) or (switch == "on" and not effective):
            return
        for p in self._params if params is None else params:
            p.trainable = effective

    def astype(self, dtype) -> "Layer":
        """Convert every parameter (and state array) to ``dtype`` (float32 or
        float64), in place. Parameters that lay in one flat buffer (a
        model's, once it bound its optimizer) lie in a new one of ``dtype``
        afterwards, in the same order: the optimizer goes on stepping them
        in one fused call (:func:`~tinynet.param.layout_kept`).

        The layers inside it are converted by their own :meth:`astype`: a
        layer holding more that computes in its dtype (an activation, a
        user's array) extends it (``super().astype(dtype)``, then the rest),
        and is called inside a model too. The layout is kept once, for all
        of them, when the outermost call ends (the blocks nest)."""
        dtype = self._check_dtype(dtype, self._who)
        with layout_kept(self.parameters()):
            self.dtype = dtype
            for p in self._params:
                p.astype(dtype)
            for key, arr in self.get_state().items():
                self._restore_state({key: np.asarray(arr, dtype=dtype)})
            for layer in self.sublayers():
                layer.astype(dtype)
        return self

    # ------------------------------------------------------------------- state
    #: keys of :meth:`get_state` whose values can never be negative (a variance):
    #: ``set_weights`` and ``load`` refuse a negative one before changing anything
    nonnegative_state: frozenset = frozenset()

    def get_state(self) -> dict[str, np.ndarray]:
        """Arrays that are not parameters but must be saved (running statistics)."""
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        if state:
            raise ValueError(f"{self._who} has no state, received keys {sorted(state)}")

    def _restore_state(self, state: dict[str, np.ndarray]) -> None:
        """Put back state this layer itself held (:meth:`get_state`'s arrays),
        as training left it: a layer whose :meth:`set_state` refuses values a
        user or file must not give (NaN, a negative variance) overrides this
        without those checks, so that a run whose statistics diverged still
        reaches its NaN loss (``TerminateOnNaN``) and converts (``astype``)."""
        self.set_state(state)

    # ----------------------------------------------------------------- configs
    def get_config(self) -> dict:
        """JSON-serialisable constructor arguments (subclasses extend it)."""
        config = {"name": self.name, "trainable": self._trainable,
                  "dtype": None if self.dtype is None else self.dtype.name}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        if self.seed is not None:
            config["seed"] = self.seed
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)


def adopt(container: Layer, child: Layer) -> None:
    """Record that ``container`` holds ``child`` (Sequential and mtl.Model do,
    for each of their layers), so that a frozen container keeps ``child``
    and the layers inside it from training whatever their own flags say
    (Keras: the frozen parent wins). Their parameters' flags are set so.

    A weak reference: a container that is gone freezes nothing. A layer
    held by several containers trains only if none of them is frozen."""
    if not isinstance(child._parents, weakref.WeakSet):
        child._parents = WeakParents()
    child._parents.add(container)
    apply_frozen_containers(child)


def apply_frozen_containers(layer: Layer) -> None:
    """Turn off the parameters of ``layer`` and of every layer inside it that
    a frozen container holds (:func:`adopt`), whatever their own flags."""
    for sub in walk_layers(layer):
        sub._sync_param_flags("off")


def release(container: Layer, child: Layer) -> None:
    """Undo :func:`adopt` (``Sequential.pop``): the parameters of ``child``
    and of the layers inside it train again where their layer's own flag
    says so and no other container holding them is frozen; ``container``
    released them (:func:`tinynet.optim.binding.release_parameters`)."""
    if isinstance(child._parents, weakref.WeakSet):
        child._parents.discard(container)
    for layer in walk_layers(child):
        layer._sync_param_flags("on")
    from ..optim.binding import release_parameters
    release_parameters(container, child, child.parameters())


def walk_layers(layer: Layer):
    """``layer`` and every layer below it (through :meth:`Layer.sublayers`),
    parents first."""
    yield layer
    for child in layer.sublayers():
        yield from walk_layers(child)


def settings_tree(layers) -> list:
    """``[(layer, slot, value)]``: the settings that may change
    once built (:func:`~tinynet.layers._checks.changeable_slots`: those not
    fixed) of each of ``layers`` (a layer and every layer inside it:
    ``walk_layers(layer)``) and of every layer such a setting holds (a
    Dense's activation, and its alpha): with the input, the weights and the
    random state, all that a forward pass computes from.
    What a container keeps to run a layer's forward again as it ran
    (:func:`swap_settings`)."""
    kept = []
    for inner in layers:
        slots = inner.__dict__
        for slot in changeable_slots(type(inner)):
            if slot in slots:
                value = slots[slot]
                kept.append((inner, slot, value))
                if isinstance(value, Layer):
                    kept.extend(settings_tree(walk_layers(value)))
    return kept


def swap_settings(kept) -> list:
    """Puts the values of ``kept`` (:func:`settings_tree`) back into their
    layers; returns the ones they replaced, which ``swap_settings`` of it
    (reversed) puts back in turn. A container re-running a shared layer's
    forward for its backward (the layer ran elsewhere since) runs it with
    the settings it ran with, so that a setting changed in between waits for
    the next forward there too, as in a layer's own backward. The values
    were checked when set and go straight into the layers' slots (no
    ``_setting_changed``: only a setting fixed once built, which cannot
    differ, changes what a layer keeps computed from it); only those that
    differ, so nothing is written when nothing changed."""
    replaced = []
    for layer, slot, value in kept:
        slots = layer.__dict__  # (not kept: a deep copy's layers have dicts of their own)
        now = slots[slot]
        if now is not value:
            replaced.append((layer, slot, now))
            slots[slot] = value
    return replaced


def layer_to_dict(layer: Layer) -> dict:
    """``{"class": "Dense", "config": {...}}``: what a saved model stores."""
    return {"class": type(layer).__name__, "config": layer.get_config()}


def layer_from_dict(spec: dict) -> Layer:
    """Inverse of :func:`layer_to_dict`; takes an alias of a class's name
    too (:data:`LAYER_ALIASES`) and refuses unknown class names."""
    if not isinstance(spec, dict) or "class" not in spec or "config" not in spec:
        raise ValueError(f"expected a layer description with 'class' and 'config', "
                         f"received {spec!r}"[:300])
    name = spec["class"]
    name = LAYER_ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in LAYER_CLASSES:
        from ..checks import did_you_mean
        known = [*LAYER_CLASSES, *LAYER_ALIASES]
        raise ValueError(f"unknown layer class {name!r}{did_you_mean(name, known)}")
    return LAYER_CLASSES[name].from_config(dict(spec["config"]))
