"""Saving and loading models: one ``.npz`` file, never a pickle.

File format (version 3)
-----------------------
An ordinary NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding

=====================  ======================================================
key                    content
=====================  ======================================================
``__tinynet__``        the header: UTF-8 JSON as a ``uint8`` array
``weight_0000`` ...    the model's weights (:func:`get_weights` order:
                       parameters, then layer state such as BatchNorm's
                       moving statistics)
``optimizer_0000`` ... the optimizer's ``state_dict()`` arrays (optional)
``training_0000`` ...  the training set-up's own state (optional): a
                       multi-task model's loss weighting (learned
                       log-variances or weights, DWA's loss history...)
``extra_0000`` ...     arrays a caller keeps with the model (optional,
                       ``save(..., extra_arrays=)``), such as a
                       meta-learner's learned rates and meta-optimizer state
                       (an optimizer's: :func:`is_optimizer_array`)
=====================  ======================================================

and the header is::

    {"format": "tinynet-model", "version": 1, "tinynet_version": "0.1.0",
     "modules": ["tinynet.layers.dense", "tinynet.model", ...],
     "model": {"class": "Sequential", "config": {...}},      # layer_to_dict
     "weights": [{"name": "dense_1/W", "shape": [784, 128], "dtype": "float32"}, ...],
     "trainable": [true, true, false, ...],  # each parameter's flag (optional)
     "compile": {"optimizer": {...}, "loss": {...}, "metrics": [...]} or null,
     "optimizer_groups": [[0, 1, 2, 3]],    # parameter groups as indices
     "optimizer_state": ["n_groups", "state.0.step", ...] or null,
     "training_state": ["weighting/log_vars", ...],        # version 2, optional
     "extra_arrays": ["lrs/0", ...],                       # version 3, optional
     "generators": [{"layers": [2, 3], "bit_generator": "PCG64",   # optional
                     "state": [hi, lo, hi, lo, 0, 0]}, ...],
     "generator_states": [{"layers": [4], "state": {"bit_generator": "MT19937",  # optional
                                                   "state": {"key": [...], "pos": 624}}}]}

The optimizer's parameter groups index into ``model.parameters()``, or into
``model.optimizer_parameters()`` when the model has it (a multi-task model:
its parameters, then its weighting's).

Versions: 1 is every :class:`~tinynet.Sequential` file (still written as
version 1, so an older tinynet reads it); 2 adds the ``training_state``
arrays and the functional-graph config of a :class:`tinynet.mtl.Model`
(:meth:`~tinynet.mtl.Model.get_config`); 3 adds the ``extra_arrays`` (a file
is written as version 3 only when it holds some). A model class states the
version it needs as ``file_version`` (1 by default); a reader refuses a
version above its own with "upgrade tinynet".

``generators`` keeps the state of every PCG64 random generator the model's layers
hold (a ``Dropout``'s masks; :mod:`tinynet.rngstate`'s six integers, each
below 2**64), once for each distinct generator, with the layers sharing it
as indices into :func:`~tinynet.layers.base.walk_layers` order (the model
first): :func:`load` gives those layers that one generator again, so a run
saved mid-training and resumed draws what the uninterrupted run would have
drawn, with or without ``fit(seed=...)``. It is a header entry, not an
array, and needs no new version: a tinynet older than it ignores it (and
its layers draw afresh, as they always did there), and a file without it
loads as before. ``generator_states`` does the same for NumPy's other bit
generators (a layer given ``set_rng(np.random.Generator(np.random.MT19937()))``;
``Philox``, ``SFC64``): their ``bit_generator.state`` as JSON
(:func:`tinynet.rngstate.generator_state`), rebuilt from NumPy's class of that
name and checked against its layout, never unpickled; an entry of its own,
so that a tinynet that knew only six-word states ignores it rather than
refuse the file. A bit generator that is not NumPy's own (a subclass,
another package's) is not kept: ``save`` warns and names the layers.

Every array is numeric, so :func:`load` reads the arrays with
``allow_pickle=False``: opening a model file cannot run code. Nor can a small
crafted file make :func:`load` allocate much: before ``zipfile`` parses the
zip index (a ``ZipInfo`` of ~480 bytes for each entry), it reads the zip end
records and walks the index (:mod:`tinynet.zipindex`), refusing more than
:data:`MAX_MEMBERS` members or :data:`MAX_INDEX_BYTES` of index, and end
records that do not locate the index exactly; it checks the parsed index
before reading any member (only the names above; stored or deflated members,
the deflated ones inflating to at most :data:`MAX_INFLATION` times their size
in all), reads the header first (at most :data:`MAX_HEADER_BYTES`), reads only
the arrays the header accounts for, each after checking that its ``.npy``
header's shape and dtype agree with its size in the zip index, and builds
the model within a :func:`~tinynet.param.param_budget` of the weight values
the file stores, so a config asking for more weights than the file holds is
refused before they are allocated.

Loading imports only the ``tinynet.*`` modules the header names (so that
their layer classes register); any other layer class must be imported by
the caller first.

Saving is atomic (:func:`tinynet.atomic.atomic_write`): the archive is
written to a temporary file in the target directory, flushed to disk
(``fsync``), then renamed over the target with ``os.replace``; a crash
mid-save leaves the previous file as it was.

Any model that is a :class:`~tinynet.layers.Layer` with a config can be
saved; a model with ``get_compile_config()``/``compile_from_config(config)``
and an ``optimizer`` also keeps its training set-up (Keras' convention), and
one with ``get_training_state()``/``set_training_state(state)`` the state of
that set-up (restored after ``compile_from_config``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import zipfile
import zlib

import numpy as np

from . import _userwarn
from .atomic import atomic_write, check_target  # atomic_write re-exported: public
from .checks import as_values_like, check_bool, check_finite, is_real_dtype
from .layers.base import (Layer, apply_frozen_containers, layer_from_dict, layer_to_dict,
                          walk_layers)
from .param import param_budget
from .rngstate import (NUMPY_BIT_GENERATORS, generator_from_state, generator_from_words,
                       generator_state, generator_words)
from .zipindex import count_entries, read_index

__all__ = ["save", "load", "ModelFileError", "get_weights", "set_weights", "weight_names",
           "atomic_write", "is_optimizer_array", "FORMAT", "VERSION"]

FORMAT = "tinynet-model"
#: The highest file format version this tinynet reads (and the one it writes
#: for a model class whose ``file_version`` says so; see the module docstring).
VERSION = 3
_HEADER = "__tinynet__"
#: The largest header (JSON, bytes) :func:`load` reads. A real one takes a
#: few hundred bytes per layer and per weight: a few KB, a few MB at most.
MAX_HEADER_BYTES = 64 << 20
#: How many times their compressed size the deflated members of a file may
#: inflate to, in all (plus 1 MB). tinynet writes members uncompressed
#: (``np.savez``); ``np.savez_compressed`` shrinks real weights by a few
#: percent, all-zero arrays up to 1000 times (a zip bomb).
MAX_INFLATION = 64
#: The most members (zip entries) :func:`load` accepts. A file holds a header
#: and one array per weight, optimizer state array and training state array:
#: 18 for a Dense and a BatchNorm layer trained with Adam (4 parameters, 2
#: moving statistics, 2 moments and a step per parameter), so 1,817 for a
#: Sequential of 100 such pairs and a Dense output; ``zipfile`` spends ~480
#: bytes of memory on each.
MAX_MEMBERS = 1 << 15
#: The largest zip central directory (bytes) :func:`load` reads: 128 a member.
#: tinynet writes ~63 (46 fixed, a name of 15-18), ZIP64 offsets and the
#: timestamps other zip tools add take up to ~60 more.
MAX_INDEX_BYTES = 128 * MAX_MEMBERS
#: Parameter values building a file's model may create beyond the weight
#: values the file stores (which a valid file's model creates exactly).
_BUILD_SLACK = 1 << 16
_MEMBER = re.compile(rf"({_HEADER}|(weight|optimizer|training|extra)_\d{{4,}})\.npy")


class ModelFileError(ValueError):
    """A file is not a readable tinynet model (truncated, corrupt or foreign)."""


# --------------------------------------------------------------------- weights
def _slots(model: Layer):
    """``(name, array, nonnegative)`` of every weight: all parameters
    (``parameters()`` order), then every layer's state arrays (tree order, sorted
    keys); ``nonnegative`` for a state its layer declares so (a variance)."""
    slots = [(p.name, p.value, False) for p in model.parameters()]
    for layer in walk_layers(model):
        state = layer.get_state()
        slots.extend((f"{layer.name}/{key}", state[key], key in layer.nonnegative_state)
                     for key in sorted(state))
    return slots


def weight_names(model: Layer) -> list[str]:
    """Names of the arrays :func:`get_weights` returns, in the same order."""
    return [name for name, _, _ in _slots(model)]


def get_weights(model: Layer) -> list[np.ndarray]:
    """Copies of every parameter value, then of every state array (BatchNorm
    moving statistics), so that :func:`set_weights` restores the model fully."""
    return [np.array(value, copy=True) for _, value, _ in _slots(model)]


def set_weights(model: Layer, weights) -> None:
    """Copy ``weights`` (as from :func:`get_weights`) into ``model``.

    Checks the count, every shape and every value first, so a bad weight
    changes nothing; the error names the weight. Values are cast to the
    model's dtype. Refused: non-numeric and complex arrays (a cast would drop
    the imaginary part), NaN or infinite values, and values that overflow
    the model's dtype (``1e300`` into float32).
    """
    who = f"{type(model).__name__} {model.name!r}.set_weights"
    slots = _slots(model)
    if isinstance(weights, (np.ndarray, dict)) or not hasattr(weights, "__len__"):
        raise TypeError(f"{who} expected a list of arrays (as get_weights returns), "
                        f"received {type(weights).__name__}")
    if not slots and not getattr(model, "built", True):
        raise ValueError(f"{who}: the model is not built yet, so it has no weights; "
                         f"build it first (model.build(input_shape) or input_dim=)")
    if len(weights) != len(slots):
        names = ", ".join(name for name, _, _ in slots)
        raise ValueError(f"{who} expected {len(slots)} arrays ({names})"[:400]
                         + f", received {len(weights)}")
    arrays = [as_values_like(new, current, who, f"weight {i} ({name!r})", nonnegative=nonneg)
              for i, ((name, current, nonneg), new) in enumerate(zip(slots, weights))]
    n_params = len(model.parameters())
    for param, new in zip(model.parameters(), arrays[:n_params]):
        param.value = new
    states = iter(arrays[n_params:])
    for layer in walk_layers(model):
        keys = sorted(layer.get_state())
        if keys:
            layer.set_state({key: next(states) for key in keys})


# ------------------------------------------------------------------------ save
def _optimizer_params(model: Layer) -> list:
    """What the optimizer's parameter groups index into (see the module docstring)."""
    if hasattr(model, "optimizer_parameters"):
        return list(model.optimizer_parameters())
    return model.parameters()


def _layer_modules(model: Layer) -> list[str]:
    return sorted({type(layer).__module__ for layer in walk_layers(model)})


def _write_npz(file, arrays: dict) -> None:
    np.savez(file, **arrays)


def save(model: Layer, path, include_optimizer: bool = True, metadata: dict | None = None,
         extra_arrays: dict | None = None) -> str:
    """Write ``model`` to ``path`` (one ``.npz`` file, atomically).

    Parameters
    ----------
    model : Layer
        A :class:`~tinynet.Sequential`, a :class:`tinynet.mtl.Model` (and its
        subclasses), or any layer with a config.
    path : str or os.PathLike
        Written exactly as given (no suffix is added).
    include_optimizer : bool, default True
        Also store the optimizer's state, so ``fit`` resumes exactly. False
        stores no optimizer's state at all: neither the model's optimizer's
        nor the one among the extra arrays the model carries from the file
        it was loaded from (a meta-learner's meta-optimizer:
        :func:`is_optimizer_array`).
    metadata : dict, optional
        JSON-serialisable facts to keep with the model (for example the
        preprocessing its inputs need); :func:`load` sets them back as
        ``model.metadata``. Defaults to the model's own ``metadata``
        attribute, if it has one.
    extra_arrays : dict {str: ndarray}, optional
        Numeric arrays to keep with the model under names of the caller's
        choosing (what :mod:`tinynet.meta.saving` keeps of a meta-learner);
        :func:`load` sets them back as ``model.extra_arrays``. Defaults, as
        ``metadata`` does, to the model's own ``extra_arrays`` attribute, if
        it has one: a loaded model saved again (by ``model.save``, a
        :class:`~tinynet.callbacks.ModelCheckpoint`) keeps the arrays it was
        loaded with, as it keeps its metadata. The two default each on its
        own: new ``metadata`` keeps the model's extra arrays, and new
        ``extra_arrays`` its metadata (a meta-learner's arrays are read with
        its ``"tinynet_meta"`` metadata: ``metadata={**model.metadata, ...}``
        keeps both); ``extra_arrays={}`` saves none. Object, string and
        complex arrays are refused (loading never unpickles). Arrays given
        here are written as given, ``include_optimizer`` or not.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    FileNotFoundError, PermissionError
        The directory of ``path`` does not exist, or cannot be written (nor
        the file): checked first, before any work
        (:func:`tinynet.atomic.check_target`).
    ValueError
        The model is not built (it has no weights to save), or a weight (or a
        learned parameter of a multi-task weighting) holds NaN or infinity, or
        the optimizer's state is one ``load_state_dict`` refuses (a NaN
        moment, say, left by a step that made a parameter NaN, the parameter
        since reset; :mod:`tinynet.optim.saved_state`) -- :func:`load` would
        refuse the file --, or the file would exceed load's
        limits (:data:`MAX_MEMBERS` arrays, a header of :data:`MAX_HEADER_BYTES`);
        nothing is written, and an existing file at ``path`` is left as it was.
    """
    from . import __version__

    if not isinstance(model, Layer):
        raise TypeError(f"save expected a tinynet model (a Layer), received "
                        f"{type(model).__name__}")
    include_optimizer = check_bool(include_optimizer, "save", "include_optimizer")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"save expected a file path, received the directory {path!r}")
    # a missing or read-only directory, before the model is serialised (atomic_write
    # found it only then, and named itself)
    check_target(path, "save")
    if not getattr(model, "built", True):
        raise ValueError(f"save: model {model.name!r} is not built: call build(input_shape) "
                         f"or fit first; nothing saved")
    if metadata is None:
        metadata = getattr(model, "metadata", None) or {}
    if not isinstance(metadata, dict):
        raise TypeError(f"save expected metadata as a dict, received {type(metadata).__name__}")
    try:
        json.dumps(metadata, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save expected JSON-serialisable metadata: {exc}") from None
    if extra_arrays is None:
        extra_arrays = getattr(model, "extra_arrays", None) or {}
        if not include_optimizer:
            extra_arrays = {name: value for name, value in extra_arrays.items()
                            if not is_optimizer_array(name)}
    extra = _check_extra_arrays(extra_arrays)
    slots = [(name, value) for name, value, _ in _slots(model)]
    in_slots = {id(p) for p in model.parameters()}
    learned = [(p.name, p.value) for p in _optimizer_params(model) if id(p) not in in_slots]
    for name, value in slots + learned:  # load refuses them: such a file would be useless
        try:
            check_finite(value, "save", f"weight {name!r}")
        except ValueError as exc:
            raise ValueError(f"{exc}; nothing saved") from None
    header = {
        "format": FORMAT, "version": max(getattr(model, "file_version", 1), 3 if extra else 1),
        "tinynet_version": __version__,
        "modules": _layer_modules(model),
        "model": layer_to_dict(model),
        "weights": [{"name": name, "shape": list(value.shape), "dtype": value.dtype.name}
                    for name, value in slots],
        # each parameter's own flag: a layer's config has the layer's, not that of a
        # parameter frozen alone (a bias), or left training in a frozen layer
        "trainable": [p.trainable for p in model.parameters()],
        "compile": None, "optimizer_state": None, "metadata": metadata,
    }
    generators, generator_states = _generators(model)
    if generators:
        header["generators"] = generators
    if generator_states:
        header["generator_states"] = generator_states
    arrays = {f"weight_{i:04d}": np.ascontiguousarray(value)
              for i, (_, value) in enumerate(slots)}
    if hasattr(model, "get_compile_config"):
        header["compile"] = model.get_compile_config()
    if header["compile"] is not None and hasattr(model, "get_training_state"):
        state = model.get_training_state()
        header["training_state"] = list(state)
        for i, key in enumerate(state):
            arrays[f"training_{i:04d}"] = np.ascontiguousarray(state[key])
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer and header["compile"] is not None and optimizer is not None \
            and optimizer.param_groups:
        header["optimizer_groups"] = _group_indices(model, optimizer)
        state = optimizer.state_dict()
        optimizer.check_state_to_save(state, f"save (optimizer {type(optimizer).__name__})",
                                      "load", " (include_optimizer=False saves the model "
                                              "without it)")
        header["optimizer_state"] = list(state)
        for i, key in enumerate(state):
            value = np.asarray(state[key])
            if value.dtype == object:
                raise TypeError(f"save: optimizer state {key!r} is an object array, "
                                f"which cannot be saved without pickle")
            arrays[f"optimizer_{i:04d}"] = value
    if extra:
        header["extra_arrays"] = list(extra)
        for i, value in enumerate(extra.values()):
            arrays[f"extra_{i:04d}"] = value
    try:
        text = json.dumps(header, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save: model {model.name!r} has a config value that a model file "
                        f"(JSON) cannot hold: {exc}; nothing saved") from None
    arrays[_HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    # load's limits, checked here so that no one saves a file load refuses
    if len(arrays) > MAX_MEMBERS:
        raise ValueError(f"save: model {model.name!r} needs {len(arrays):,} arrays in its file, "
                         f"more than the {MAX_MEMBERS:,} that load accepts (include_optimizer="
                         f"False stores fewer); nothing saved")
    if arrays[_HEADER].size > MAX_HEADER_BYTES:
        raise ValueError(f"save: model {model.name!r} needs a header of "
                         f"{arrays[_HEADER].size:,} bytes, more than the {MAX_HEADER_BYTES:,} "
                         f"that load accepts (large metadata?); nothing saved")
    atomic_write(path, lambda f: _write_npz(f, arrays))
    return path


def _generators(model: Layer) -> tuple[list[dict], list[dict]]:
    """The header's ``generators`` and ``generator_states`` (module
    docstring): each distinct generator the layers hold, with the layers
    (``walk_layers`` indices) holding it; a PCG64 (or PCG64DXSM) as six words
    in the first list, any other of NumPy's bit generators as its JSON state
    in the second. A layer that has drawn nothing yet holds none (its ``rng``
    is made on first use); a bit generator that is not NumPy's own is left
    out with a warning."""
    found: dict[int, tuple] = {}
    unkept = []
    for i, layer in enumerate(walk_layers(model)):
        rng = getattr(layer, "_rng", None)
        if rng is None:
            continue
        if id(rng) not in found:
            words = generator_words(rng)
            if words is not None:
                found[id(rng)] = ("generators", {
                    "layers": [], "bit_generator": rng.bit_generator.state["bit_generator"],
                    "state": words})
            else:
                state = generator_state(rng)
                found[id(rng)] = None if state is None else (
                    "generator_states", {"layers": [], "state": state})
        if found[id(rng)] is None:
            unkept.append(f"{layer.name} ({type(rng.bit_generator).__name__})")
        else:
            found[id(rng)][1]["layers"].append(i)
    if unkept:
        _userwarn.warn(f"save: the random generators of {', '.join(unkept)} are not saved "
                       f"(only NumPy's own bit generators are: "
                       f"{', '.join(NUMPY_BIT_GENERATORS)}): a model loaded from this file "
                       f"draws afresh there, so a resumed run differs from an uninterrupted one",
                       RuntimeWarning)
    kept = [entry for entry in found.values() if entry is not None]
    return ([entry for key, entry in kept if key == "generators"],
            [entry for key, entry in kept if key == "generator_states"])


def _set_generators(path, model: Layer, generators, generator_states) -> None:
    """Give the layers the generators the header's ``generators`` and
    ``generator_states`` list (a file written before they were saved has
    none: the layers keep theirs). Everything is checked before any layer
    changes."""
    layers = list(walk_layers(model))
    given = {}
    for key, entries, keys, rebuild in (
            ("generators", generators, {"layers", "bit_generator", "state"},
             lambda entry: generator_from_words(entry["state"], entry["bit_generator"])),
            ("generator_states", generator_states, {"layers", "state"},
             lambda entry: generator_from_state(entry["state"]))):
        if entries is None:
            continue
        try:
            if not isinstance(entries, list):
                raise ValueError(f"expected a list, received {type(entries).__name__}")
            for entry in entries:
                if not isinstance(entry, dict) or set(entry) != keys:
                    raise ValueError(f"expected entries {{{', '.join(map(repr, sorted(keys)))}}}"
                                     f", received {entry!r}"[:300])
                rng = rebuild(entry)
                indices = entry["layers"]
                if not isinstance(indices, list) or not indices or not all(
                        type(i) is int and 0 <= i < len(layers) for i in indices):
                    raise ValueError(f"expected 'layers' as a non-empty list of layer indices "
                                     f"0 <= i < {len(layers)}, received {indices!r}"[:300])
                for i in indices:
                    if i in given:
                        raise ValueError(f"layer {i} ({layers[i].name!r}) is given two "
                                         f"generators")
                    given[i] = rng
        except ValueError as exc:
            raise ModelFileError(f"{path!r}: its layers' random generators ({key!r}): "
                                 f"{exc}") from None
    for i, rng in given.items():
        layers[i]._rng = rng


#: The prefix of the extra arrays that hold an optimizer's state: a
#: meta-learner's meta-optimizer (:mod:`tinynet.meta.saving`), the one writer.
OPTIMIZER_ARRAYS = "meta_optimizer/"


def is_optimizer_array(name) -> bool:
    """Whether the extra array ``name`` holds an optimizer's state: its name
    starts with :data:`OPTIMIZER_ARRAYS` (``"meta_optimizer/state.0.exp_avg"``).
    ``save(..., include_optimizer=False)`` of a loaded model leaves such
    arrays out; an array of the user's own (``"my_optimizer/lrs"``) is kept."""
    return isinstance(name, str) and name.startswith(OPTIMIZER_ARRAYS)


def _check_extra_arrays(extra) -> dict:
    """``save``'s ``extra_arrays``: a dict of str names to real (or boolean)
    arrays, as contiguous ndarrays; ``{}`` for None."""
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise TypeError(f"save expected extra_arrays as a dict {{name: array}}, received "
                        f"{type(extra).__name__}")
    out = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"save expected extra_arrays names as non-empty str, received "
                            f"{name!r}")
        value = np.asarray(value)
        if value.dtype != bool and not is_real_dtype(value.dtype):
            raise TypeError(f"save expected extra_arrays[{name!r}] as a numeric array, "
                            f"received dtype {value.dtype} (a model file holds no pickles)")
        # (np.ascontiguousarray would make a 0-d array 1-d)
        out[name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
    return out


def _json_scalar(value):
    """A NumPy scalar in a config or the metadata (``seed=np.int64(3)``) as the
    Python number JSON takes; anything else stays refused."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _group_indices(model: Layer, optimizer) -> list[list[int]]:
    """Each parameter group as indices into ``model.parameters()``."""
    index = {id(p): i for i, p in enumerate(_optimizer_params(model))}
    groups = []
    for group in optimizer.param_groups:
        missing = [p.name for p in group["params"] if id(p) not in index]
        if missing:
            raise ValueError(f"save: the optimizer holds parameters that are not in the "
                             f"model ({', '.join(map(str, missing[:5]))}); compile the model "
                             f"again or save with include_optimizer=False")
        groups.append([index[id(p)] for p in group["params"]])
    return groups


# ------------------------------------------------------------------------ load
def _expected(path) -> str:
    return (f"{path!r} is not a readable tinynet model file (expected an .npz archive "
            f"written by model.save / tinynet.io.save)")


def _refuse(path, why):
    return ModelFileError(f"{_expected(path)}: {why}")


def _npy_header(f, what="the file"):
    """``(shape, dtype)`` from the ``.npy`` header at the start of ``f``
    (nothing of the data is read)."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{what} has .npy format version {version}, expected 1.0 or 2.0")
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read_header(f)
    return shape, dtype


def npy_layout(f, size: int, what: str):
    """``(shape, dtype)`` of the ``.npy`` array at the start of ``f``, whose
    whole length is ``size`` bytes, read from its header alone: refused
    (``ValueError`` naming ``what``) unless the header declares exactly the
    bytes that follow it, and numbers rather than Python objects. Checked
    before any data is read, so a few bytes declaring a huge shape never
    reach ``np.load``'s allocation."""
    shape, dtype = _npy_header(f, what)
    if dtype.hasobject:
        raise ValueError(f"{what} holds Python objects (dtype {dtype}); expected numeric "
                         f"arrays only (reading objects needs pickle)")
    expected = f.tell() + math.prod(shape) * dtype.itemsize
    if expected != size:
        raise ValueError(f"{what} declares an array of shape {shape} and dtype {dtype} "
                         f"({expected:,} bytes with its header), but holds {size:,} bytes")
    return shape, dtype


def _open_member(archive, name):
    """``(file, shape, dtype)`` of the ``.npy`` member ``name``, its header
    checked against the zip index before any of its data is read."""
    info = archive.getinfo(name)
    f = archive.open(info)
    try:
        shape, dtype = npy_layout(f, info.file_size, f"member {name!r}")
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return f, shape, dtype


def _check_directory(path, f) -> None:
    """Refuse, from the zip end records and a walk over the central directory
    (before ``zipfile`` builds a ``ZipInfo`` of each of its entries), more than
    :data:`MAX_MEMBERS` members or :data:`MAX_INDEX_BYTES` of central directory,
    and end records that do not locate it exactly (:mod:`tinynet.zipindex`)."""
    index = read_index(f)
    too_large = "its zip index is larger than a model file's: expected at most"
    if index.entries > MAX_MEMBERS:
        raise _refuse(path, f"{too_large} {MAX_MEMBERS:,} members (a header and one per "
                            f"array), received {index.entries:,}")
    if index.size > MAX_INDEX_BYTES:
        raise _refuse(path, f"{too_large} {MAX_INDEX_BYTES:,} bytes of central directory "
                            f"({MAX_INDEX_BYTES // MAX_MEMBERS} a member), received "
                            f"{index.size:,}")
    found = count_entries(f, index, MAX_MEMBERS)
    if found > MAX_MEMBERS:
        raise _refuse(path, f"{too_large} {MAX_MEMBERS:,} members, received more than "
                            f"{MAX_MEMBERS:,} (though its end record declares "
                            f"{index.entries:,})")
    if found != index.entries:
        raise _refuse(path, f"its zip end record declares {index.entries:,} members, but "
                            f"its central directory holds {found:,}")


def _check_index(path, archive) -> None:
    """Refuse, from the zip index alone (before reading any member), a member
    the format does not use, an encrypted or unusually compressed member, and
    members that inflate far beyond their compressed size (a zip bomb)."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise _refuse(path, "it holds two members of one name")
    if _HEADER + ".npy" not in names:
        raise _refuse(path, f"it is an .npz archive without the {_HEADER!r} header (keys: "
                            f"{', '.join(name.removesuffix('.npy') for name in names[:8])})")
    foreign = [name for name in names if not _MEMBER.fullmatch(name)]
    if foreign:
        raise _refuse(path, f"it holds members a model file never has: "
                            f"{', '.join(map(repr, foreign[:8]))}"[:400])
    for info in infos:
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED,
                                                             zipfile.ZIP_DEFLATED):
            raise _refuse(path, f"its member {info.filename!r} is encrypted or compressed "
                                f"with zip method {info.compress_type} (tinynet writes "
                                f"stored members; deflated ones are read too)")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise _refuse(path, f"its stored member {info.filename!r} has size "
                                f"{info.file_size:,} in the zip index but "
                                f"{info.compress_size:,} bytes in the file")
    packed = sum(i.compress_size for i in infos if i.compress_type == zipfile.ZIP_DEFLATED)
    inflated = sum(i.file_size for i in infos if i.compress_type == zipfile.ZIP_DEFLATED)
    if inflated > MAX_INFLATION * packed + (1 << 20):
        raise _refuse(path, f"its compressed members would inflate from {packed:,} to "
                            f"{inflated:,} bytes, more than {MAX_INFLATION} times their "
                            f"size (a zip bomb?)")


def _read_header(path, archive) -> dict:
    info = archive.getinfo(_HEADER + ".npy")
    if info.file_size > MAX_HEADER_BYTES:
        raise _refuse(path, f"its header is {info.file_size:,} bytes, more than the "
                            f"{MAX_HEADER_BYTES:,} a model file's header may hold")
    f, shape, dtype = _open_member(archive, _HEADER + ".npy")
    with f:
        if dtype != np.uint8 or len(shape) != 1:
            raise _refuse(path, "the header is not a uint8 array")
        raw = np.lib.format.read_array(f, allow_pickle=False)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise _refuse(path, "its header nests JSON lists or objects too deeply") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _refuse(path, f"the header's format is not {FORMAT!r}")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _refuse(path, f"its header's format version is {version!r}, not a version "
                            f"number (1, 2, ...)")
    if version > VERSION:
        raise ModelFileError(f"{path!r} has tinynet file format version {version!r}; this "
                             f"tinynet reads versions up to {VERSION} -- upgrade tinynet")
    return header


def _read(path) -> tuple[dict, dict]:
    """The header and the arrays it accounts for, or ModelFileError.

    Reads the file defensively, so that a small crafted file cannot exhaust
    memory: the zip end records and central directory are checked first
    (:func:`_check_directory`), then the zip index (:func:`_check_index`), then the
    header member (at most :data:`MAX_HEADER_BYTES`), then each array the
    header accounts for (``weight_*`` for its ``weights``, ``optimizer_*``
    for its ``optimizer_state``, ``training_*`` for its ``training_state``,
    ``extra_*`` for its ``extra_arrays``),
    each only after its ``.npy`` header's shape and dtype agree with its size
    in the zip index. Other ``weight_*``... members are not read.
    """
    try:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                f.seek(0)
                shape = _npy_header(f)[0]
                raise _refuse(path, f"it holds a single .npy array of shape {shape}")
            _check_directory(path, f)
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                _check_index(path, archive)
                header = _read_header(path, archive)
                counts = {prefix: len(names) if isinstance(names, list) else 0
                          for prefix, names in (("weight", header.get("weights")),
                                                ("optimizer", header.get("optimizer_state")),
                                                ("training", header.get("training_state")),
                                                ("extra", header.get("extra_arrays")))}
                arrays = {}
                for name in archive.namelist():
                    key = name.removesuffix(".npy")
                    prefix, _, index = key.partition("_")
                    if prefix in counts and int(index) < counts[prefix]:
                        with _open_member(archive, name)[0] as member:
                            arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
    except (FileNotFoundError, ModelFileError):
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
            UnicodeDecodeError, NotImplementedError, RuntimeError) as exc:
        # JSONDecodeError is a ValueError
        raise _refuse(path, f"{type(exc).__name__}: {exc}") from None
    return header, arrays


def _named_arrays(names, prefix: str, arrays: dict, what: str) -> dict:
    """``{name: arrays["<prefix>_<i>"]}`` for the ``names`` a header lists
    (its ``training_state``, its ``extra_arrays``); a ``ValueError`` if they
    are not a list of distinct strings, or the archive lacks one of the arrays
    (``what`` names them in the message)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) \
            or len(set(names)) != len(names):
        raise ValueError(f"expected a list of distinct names, received {names!r}"[:300])
    members = [f"{prefix}_{i:04d}" for i in range(len(names))]
    missing = [m for m in members if m not in arrays]
    if missing:
        raise ValueError(f"the archive lacks the {what} {missing}"[:300])
    return {name: arrays[m] for name, m in zip(names, members)}


def _extra_arrays(path, header, arrays) -> dict:
    """The ``extra_arrays`` the header names, by name (``{}`` when none)."""
    names = header.get("extra_arrays")
    if names is None:
        return {}
    try:
        return _named_arrays(names, "extra", arrays, "extra arrays")
    except ValueError as exc:
        raise ModelFileError(f"{path!r}: its extra_arrays: {exc}") from None


def _import_layer_modules(header) -> None:
    modules = header.get("modules")
    if not isinstance(modules, list):
        return  # a malformed list: the class lookup says which class is missing
    for module in modules:
        if isinstance(module, str) and module.startswith("tinynet.") \
                and module.replace(".", "").replace("_", "").isalnum():
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # the class lookup below says which class is missing


def _set_trainable(path, model: Layer, flags) -> None:
    """Give each parameter the ``trainable`` flag the header lists (a file
    written before they were saved has none: the layers' flags stand)."""
    if flags is None:
        return
    params = model.parameters()
    if (not isinstance(flags, list) or len(flags) != len(params)
            or not all(isinstance(flag, bool) for flag in flags)):
        raise ModelFileError(f"{path!r}: expected 'trainable' as {len(params)} true/false "
                             f"flags, one per parameter, received {flags!r}"[:300])
    for p, flag in zip(params, flags):
        p.trainable = flag
    # none trains inside a frozen container (a file of a version that let them)
    apply_frozen_containers(model)


def load(path, compile: bool = True):
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
    compile : bool, default True
        Restore the loss, metrics and optimizer (with its state when saved),
        so ``fit`` continues where it stopped.

    Returns
    -------
    Layer
        Usually a :class:`~tinynet.Sequential` or a :class:`tinynet.mtl.Model`
        (of the class saved), with the saved ``metadata`` dict (``{}`` when
        none was saved) as its ``metadata`` attribute, and the saved
        ``extra_arrays`` (``{}`` when none) as its ``extra_arrays``.

    Raises
    ------
    FileNotFoundError
    ModelFileError
        The file is truncated, corrupt, or not a tinynet model (a plain
        ``.npz``, an ``.npy``, a pickle...), its architecture does not hold
        together (a graph node reading a tensor that does not exist...), its
        weights are refused by :func:`set_weights` (wrong shape, complex, NaN
        or infinite values), or its training set-up or state does not fit
        or holds values training cannot resume from (the optimizer's: see
        :mod:`tinynet.optim.saved_state`; NaN moments, negative second
        moments, step counts that are not integers >= 0, hyperparameters its
        constructor refuses, unknown entries; the error names the entry).
        Also a file that would make loading allocate far more than the file
        holds (see the module docstring): a zip index of more than
        :data:`MAX_MEMBERS` members or :data:`MAX_INDEX_BYTES` bytes (checked
        from the zip end records, before ``zipfile`` parses the index), zip end
        records that do not locate the index exactly, a member the format does
        not use, a zip bomb, a header above :data:`MAX_HEADER_BYTES` or nested
        too deeply, an array whose ``.npy`` header declares more than its member
        holds, a config asking for more weights than the file stores.
    """
    compile = check_bool(compile, "load", "compile")
    path = os.fspath(path)
    header, arrays = _read(path)
    _import_layer_modules(header)
    stored = sum(array.size for key, array in arrays.items() if key.startswith("weight_"))
    try:
        with param_budget(stored + _BUILD_SLACK,
                          f"the file allows (it stores {stored:,} weight values)"):
            model = layer_from_dict(header["model"])
        specs = header["weights"]
        weights = [arrays[f"weight_{i:04d}"] for i in range(len(specs))]
    except (KeyError, IndexError, AttributeError, TypeError, ValueError,
            RecursionError) as exc:
        hint = (" (a model with your own layer classes needs their module imported "
                "before loading)" if "unknown layer class" in str(exc) else "")
        raise ModelFileError(f"{path!r}: cannot rebuild the model it describes: "
                             f"{type(exc).__name__}: {exc}{hint}") from None
    try:
        set_weights(model, weights)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r}: its weights do not fit its architecture (or hold "
                             f"values a model cannot take): {exc}") from None
    _set_trainable(path, model, header.get("trainable"))
    _set_generators(path, model, header.get("generators"), header.get("generator_states"))
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path!r}: expected its metadata as a JSON object, received "
                             f"{type(metadata).__name__}")
    model.metadata = metadata
    model.extra_arrays = _extra_arrays(path, header, arrays)
    compile_config = header.get("compile")
    if compile and compile_config is not None and hasattr(model, "compile_from_config"):
        try:
            model.compile_from_config(compile_config)
        except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path!r}: cannot restore its compile settings: "
                                 f"{type(exc).__name__}: {exc} (load(path, compile=False) "
                                 f"skips them)") from None
        keys = header.get("training_state")
        if keys is not None and hasattr(model, "set_training_state"):
            try:
                model.set_training_state(_named_arrays(keys, "training", arrays, "arrays"))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise ModelFileError(f"{path!r}: its training state does not fit its "
                                     f"compile settings or holds values training cannot "
                                     f"resume from: {type(exc).__name__}: {exc} "
                                     f"(load(path, compile=False) skips them)") from None
        keys = header.get("optimizer_state")
        if keys is not None and getattr(model, "optimizer", None) is not None:
            try:
                params = _optimizer_params(model)
                groups = header["optimizer_groups"]
                if not all(isinstance(i, int) and not isinstance(i, bool)
                           and 0 <= i < len(params)
                           for group in groups for i in group):
                    raise ValueError(f"expected parameter groups of indices 0 <= i < "
                                     f"{len(params)}, received {groups!r}"[:300])
                model.optimizer.bind([{"params": [params[i] for i in group]}
                                      for group in groups])
                from .optim.binding import restored_binding
                restored_binding(model)  # a subset stays one after add (as before saving)
                state = {key: arrays[f"optimizer_{i:04d}"] for i, key in enumerate(keys)}
                model.optimizer.load_state_dict(state)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise ModelFileError(f"{path!r}: its optimizer state does not fit the "
                                     f"optimizer or holds values training cannot resume "
                                     f"from: {type(exc).__name__}: {exc}") from None
    return model
