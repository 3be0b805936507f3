"""Saving and loading a meta-learner: its model, its settings and what it learned.

``model.save`` keeps a meta-trained model's weights, and that is all MAML,
ANIL, Reptile and the baseline learn. Meta-SGD also learns one inner
learning rate per weight, and every learner has a meta-optimizer whose
state (Adam's moments and step count) a resumed ``meta_fit`` needs. One
file keeps them all: the model file of :func:`tinynet.io.save` (atomic,
never a pickle), with

- the learner's class and constructor settings (``loss``, ``inner_lr``,
  ``inner_steps``, ``meta_lr``, ``first_order``, ``head_layers``...) and
  its ``history`` in the file's metadata, under ``"tinynet_meta"`` (a
  non-finite loss, where a diverged ``meta_fit`` stopped, as ``"nan"``,
  ``"inf"`` or ``"-inf"``: JSON has no such numbers);
- Meta-SGD's learned rates, the mask of the parameters the inner SGD adapts
  (ANIL's head, the baseline's ``new_head``) and the meta-optimizer's
  ``state_dict`` as the file's extra arrays (the state under
  ``"meta_optimizer/"``, which :func:`tinynet.io.is_optimizer_array` knows:
  ``save(..., include_optimizer=False)`` leaves it out, here and when the
  model loaded by ``tn.load`` is saved again).

:func:`load` builds the learner again from them, so that ``adapt``,
``evaluate`` and a further ``meta_fit`` carry on as if it had never been
saved (the same bits, on the same tasks). The model is saved as a
:class:`~tinynet.Sequential`: a learner made on a list of layers comes back
with a Sequential of the same layers. A learner whose ``meta_optimizer`` is
a callable of the user's own cannot be rebuilt from a file and is refused.
"""

from __future__ import annotations

import inspect
import os

import numpy as np

from ..checks import as_values_like
from ..io import OPTIMIZER_ARRAYS

__all__ = ["save", "load"]

#: The metadata key of a meta-learner's settings in its model file.
KEY = "tinynet_meta"
_LRS, _MASK, _OPT = "lrs/", "lr_mask", OPTIMIZER_ARRAYS


def _classes() -> dict:
    from .anil import ANIL
    from .baseline import Pretrained
    from .maml import MAML
    from .metasgd import MetaSGD
    from .protonet import ProtoNet
    from .reptile import Reptile

    return {cls.__name__: cls for cls in (MAML, MetaSGD, ANIL, Reptile, Pretrained, ProtoNet)}


def _settings(learner) -> dict:
    """The constructor arguments of ``learner``'s class (but the model), read
    back from the attributes of the same names."""
    names = [n for n in inspect.signature(type(learner).__init__).parameters
             if n not in ("self", "model")]
    return {n: getattr(learner, n) for n in names}


def save(learner, path, metadata: dict | None = None, include_optimizer: bool = True) -> str:
    """Write ``learner`` (a MAML, MetaSGD, ANIL, Reptile, Pretrained or
    ProtoNet) to ``path``, atomically; :func:`load` gives it back.

    Parameters
    ----------
    learner : MetaLearner
    path : str or os.PathLike
    metadata : dict, optional
        JSON-serialisable facts of your own, as :func:`tinynet.io.save`
        keeps them (default: the model's ``metadata``); the key
        ``"tinynet_meta"`` is the learner's.
    include_optimizer : bool, default True
        Also store the meta-optimizer's state (Adam's moments and step
        counts), so that ``meta_fit`` resumes exactly; without it the
        loaded learner's meta-optimizer starts afresh.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    FileNotFoundError, PermissionError, ValueError
        As :func:`tinynet.io.save`; also when the meta-optimizer's state is
        one its ``load_state_dict`` refuses (NaN moments...): nothing saved.
    """
    from .. import io
    from ..atomic import check_target
    from ..checks import check_bool
    from ..model import Sequential

    include_optimizer = check_bool(include_optimizer, "tinynet.meta.save", "include_optimizer")
    check_target(path, "tinynet.meta.save")  # a missing directory before the work, as io.save
    classes = _classes()
    name = type(learner).__name__
    if classes.get(name) is not type(learner):
        raise TypeError(f"tinynet.meta.save expected one of {', '.join(classes)}, received "
                        f"{name} (save learner.model to keep its weights)")
    if callable(learner.meta_optimizer):
        raise TypeError(f"tinynet.meta.save: {name}'s meta_optimizer is a callable of your "
                        f"own, which a file cannot rebuild; save learner.model for the "
                        f"weights, or use a named optimizer ('adam', 'sgd'...)")
    learner._follow_model()  # the model's current parameters, not those it was made on
    model = learner.model
    if not isinstance(model, Sequential):
        model = Sequential(list(model))
    if metadata is None:
        metadata = dict(getattr(model, "metadata", None) or {})
    if not isinstance(metadata, dict):
        raise TypeError(f"tinynet.meta.save expected metadata as a dict, received "
                        f"{type(metadata).__name__}")
    extra = {f"{_LRS}{i}": p.value for i, p in enumerate(getattr(learner, "lrs", []))}
    if learner._lr_mask is not None:
        extra[_MASK] = learner._lr_mask
    texts = {}  # the optimizer's name (a str array in its state_dict) goes in the JSON
    if learner._optimizer is not None and include_optimizer:
        state = learner._optimizer.state_dict()
        learner._optimizer.check_state_to_save(
            state, f"tinynet.meta.save ({name}'s meta-optimizer)", "tinynet.meta.load")
        for key, value in state.items():
            value = np.asarray(value)
            if value.dtype.kind == "U":
                texts[key] = str(value)
            else:
                extra[_OPT + key] = value
    metadata = {**metadata, KEY: {"class": name, "settings": _settings(learner),
                                  "history": [_history_entry(v) for v in learner.history],
                                  "optimizer_text": texts}}
    # no optimizer state of the model's own (the learner trains it); a compiled
    # model's compile settings are written, as io.save writes them
    return io.save(model, path, include_optimizer=False, metadata=metadata,
                   extra_arrays=extra)


def load(path):
    """The meta-learner :func:`save` wrote to ``path``.

    Raises
    ------
    tinynet.io.ModelFileError
        The file is not a model file (see :func:`tinynet.load`), or holds a
        model but no meta-learner (``tinynet.load`` reads such a file), or
        its learner's settings or arrays do not fit its model.
    """
    from .. import io

    path = os.fspath(path)
    model = io.load(path, compile=False)
    spec = model.metadata.get(KEY)
    if spec is None:
        raise io.ModelFileError(f"{path!r} holds a model but no meta-learner "
                                f"(tinynet.load reads it)")
    try:
        if not isinstance(spec, dict) or not isinstance(spec.get("settings"), dict):
            raise TypeError(f"expected {{'class', 'settings', 'history'}}, received "
                            f"{spec!r}"[:200])
        classes = _classes()
        if spec.get("class") not in classes:
            raise ValueError(f"unknown meta-learner class {spec.get('class')!r} (known: "
                             f"{', '.join(classes)})")
        learner = classes[spec["class"]](model, **spec["settings"])
        history = spec.get("history", [])
        if not isinstance(history, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                or v in _NON_FINITE for v in history):
            raise TypeError(f"expected its history as a list of numbers (or "
                            f"{', '.join(map(repr, _NON_FINITE))}), received "
                            f"{history!r}"[:200])
        learner.history = [float(v) for v in history]
        texts = spec.get("optimizer_text", {})
        if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
            raise TypeError("expected the optimizer's text entries as a dict of str")
        _restore_arrays(learner, model.extra_arrays, texts)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise io.ModelFileError(f"{path!r}: cannot rebuild the meta-learner it holds: "
                                f"{type(exc).__name__}: {exc} (a model loaded with tn.load "
                                f"keeps its learner's arrays and metadata when saved again; "
                                f"after changing its layers, save the learner with "
                                f"tn.meta.save, or the model with extra_arrays={{}} and "
                                f"metadata without {KEY!r})") from None
    model.metadata = {k: v for k, v in model.metadata.items() if k != KEY}
    del model.extra_arrays
    return learner


#: How the history keeps a non-finite loss (JSON has no NaN nor infinity);
#: ``float`` reads each back.
_NON_FINITE = ("nan", "inf", "-inf")


def _history_entry(value):
    """A history entry for the JSON metadata: the float, or its name when it
    is NaN or infinite (the loss a diverged ``meta_fit`` stopped at)."""
    value = float(value)
    return value if np.isfinite(value) else str(value)


def _restore_arrays(learner, extra: dict, texts: dict) -> None:
    lrs = getattr(learner, "lrs", None)
    saved = sorted((k for k in extra if k.startswith(_LRS)), key=lambda k: int(k[len(_LRS):]))
    if lrs is not None or saved:
        if lrs is None or len(saved) != len(lrs):
            raise ValueError(f"expected {len(lrs or [])} learned rate arrays, received "
                             f"{len(saved)}")
        # all checked (shape, finite, within the model's dtype) before any is set
        values = [as_values_like(extra[key], p.value, "tinynet.meta.load",
                                 f"learned rates {key!r}") for p, key in zip(lrs, saved)]
        for p, value in zip(lrs, values):
            p.value[...] = value
    if _MASK in extra:
        mask = extra[_MASK]
        if mask.shape != (learner.net.n_params,) or not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"expected the adapted-parameter mask as 0/1 of shape "
                             f"({learner.net.n_params},), received {mask.shape}")
        learner._lr_mask = mask.astype(learner.net.dtype)
    state = {k[len(_OPT):]: v for k, v in extra.items() if k.startswith(_OPT)}
    if state:
        state.update({k: np.array(v) for k, v in texts.items()})
        learner.optimizer.load_state_dict(state)
