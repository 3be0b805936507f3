"""Freezing and unfreezing layers, with Keras semantics.

A frozen layer (``layer.trainable = False``, recursive on containers)

* keeps its parameters out of every optimizer step, so their values stay
  bit-identical however long the model trains;
* still passes gradients to its input, so trainable layers *below* it keep
  learning;
* if it is a BatchNorm, normalises with its moving statistics and stops
  updating them, whatever ``training`` says (the classic pitfall when
  fine-tuning: a frozen base whose statistics drift to the new data);
* if it is a container (a nested model), keeps every layer inside it from
  training, one set ``trainable = True`` afterwards too (Keras: the frozen
  parent wins; that layer keeps its own flag, and trains once the
  container is unfrozen).

>>> freeze(model, upto="head")        # everything below the layer named "head"
>>> unfreeze(model, start=-3)         # the top three layers learn again
>>> freeze(model, layers=[0, "fc2"])  # any selection by index or name
>>> unfreeze(model, "base/fc2")       # a layer inside a nested model, by its path

Optimizers skip parameters whose ``trainable`` flag is off at each step, so
freezing or unfreezing takes effect without recompiling; it is still good
practice to ``compile`` again after changing what trains, as in Keras.
"""

from __future__ import annotations

import operator

from ..checks import check_bool, did_you_mean
from ..layers.base import walk_layers
from .selection import is_index, layer_index, model_layers, select_layers, span

__all__ = ["freeze", "unfreeze", "set_trainable", "frozen_layers", "trainable_layers"]


def _targets(model, layers, start, upto, who) -> list[int]:
    if layers is not None and (start is not None or upto is not None):
        raise ValueError("pass either layers=... or a range start=/upto=, not both")
    if layers is not None:
        return select_layers(model, layers)
    n = len(model_layers(model))
    # unlike a slice, a bound past the model is refused: upto=10 on a model of
    # 3 layers is a mistake, not "all of them"
    for what, ref, high in (("start", start, n - 1), ("upto", upto, n)):
        if isinstance(ref, str):
            layer_index(model, ref)  # an unknown name says so
        elif ref is not None and is_index(ref) and not -n <= operator.index(ref) <= high:
            raise ValueError(f"{who} expected {what} in [{-n}, {high}] for a model of {n} "
                             f"layers (negative counts from the top), received "
                             f"{operator.index(ref)}")
    chosen = span(model, start, upto)
    if not chosen and (start is not None or upto is not None):
        raise ValueError(f"{who}: the range start={start!r}, upto={upto!r} selects no layer "
                         f"of the {n} (upto is exclusive, as in model.layers[start:upto])")
    return chosen


def _is_path(model, ref) -> bool:
    """A ``"/"``-joined path into a nested model, not a top-level layer's name."""
    return (isinstance(ref, str) and "/" in ref
            and ref not in {layer.name for layer in model_layers(model)})


def _nested_layer(model, path: str):
    """The layer at ``path`` (``"base/fc1"``: ``fc1`` inside the top-level
    layer ``base``), the names :func:`frozen_layers` gives."""
    parts = path.split("/")
    layer = model_layers(model)[layer_index(model, parts[0])]
    for depth, name in enumerate(parts[1:], start=1):
        children = layer.sublayers()
        names = [child.name for child in children]
        if name not in names:
            where = "/".join(parts[:depth])
            held = f"its layers: {', '.join(names)}" if names else "it holds no layers"
            raise ValueError(f"layer path {path!r}: {where!r} has no layer named {name!r}"
                             f"{did_you_mean(name, names)} ({held})")
        layer = children[names.index(name)]
    return layer


def set_trainable(model, value: bool, layers=None, *, start=None, upto=None) -> list[str]:
    """Set ``trainable`` on a selection of ``model.layers``.

    Parameters
    ----------
    model : Sequential
    value : bool
    layers : layer reference, optional
        Index, name, slice, range or list of these (see
        :mod:`tinynet.transfer.selection`); here also the path of a layer
        inside a nested model, names joined by ``/`` (``"base/fc1"``), as
        :func:`frozen_layers` names it.
    start, upto : int or str, optional
        Otherwise the range ``model.layers[start:upto]`` (``upto`` exclusive,
        either bound may be a layer name, a negative index counts from the
        top). With nothing given: every layer. Unlike a slice, a bound
        outside the model (``upto=10`` for 3 layers) or a range that selects
        nothing (``start=2, upto=1``) raises ``ValueError``.

    Returns
    -------
    list of str
        Names of the layers set, bottom to top (then the paths given).
    """
    value = check_bool(value, "set_trainable", "trainable")
    all_layers = model_layers(model)
    who = "unfreeze" if value else "freeze"
    refs = [layers] if isinstance(layers, str) else layers
    paths = []
    if isinstance(refs, (list, tuple)) and any(_is_path(model, r) for r in refs):
        if start is not None or upto is not None:
            raise ValueError("pass either layers=... or a range start=/upto=, not both")
        paths = [r for r in refs if _is_path(model, r)]
        rest = [r for r in refs if not _is_path(model, r)]
        nested = [_nested_layer(model, path) for path in paths]  # all checked first
        chosen = [all_layers[i] for i in (_targets(model, rest, start, upto, who)
                                          if rest else [])]
    else:
        nested = []
        chosen = [all_layers[i] for i in _targets(model, layers, start, upto, who)]
    for layer in chosen + nested:
        layer.trainable = value
    return [layer.name for layer in chosen] + paths


def freeze(model, layers=None, *, start=None, upto=None) -> list[str]:
    """Freeze layers: ``freeze(model)`` all of them, ``freeze(model, upto="head")``
    those below ``"head"``, ``freeze(model, layers=[0, 1])`` a selection.

    Returns the names of the layers frozen (see :func:`set_trainable`).
    """
    return set_trainable(model, False, layers, start=start, upto=upto)


def unfreeze(model, layers=None, *, start=None, upto=None) -> list[str]:
    """Unfreeze layers: ``unfreeze(model)`` all, ``unfreeze(model, start=-2)``
    the top two, ``unfreeze(model, layers="fc2")`` one by name.

    Returns the names of the layers unfrozen (see :func:`set_trainable`).
    """
    return set_trainable(model, True, layers, start=start, upto=upto)


def _split_by_trainable(model) -> dict[bool, list[str]]:
    """The layers with parameters, bottom to top, under ``True`` (trainable)
    or ``False`` (frozen); see :func:`frozen_layers`."""
    split: dict[bool, list[str]] = {True: [], False: []}

    def trains(layer, above: bool = True) -> set:
        # each layer's flag in effect: a frozen container freezes all inside it (Keras)
        on = above and layer.trainable
        return ({on} if layer.parameters() else set()).union(
            *(trains(child, on) for child in layer.sublayers()))

    def visit(layer, path: str, above: bool) -> None:
        flags = trains(layer, above)
        if len(flags) == 1:
            split[flags.pop()].append(path)
        else:  # a nested model partly frozen: say which of its layers are
            for child in layer.sublayers():
                if child.parameters():
                    visit(child, f"{path}/{child.name}", above and layer.trainable)

    # a frozen model freezes its layers whatever their own flags, as a frozen
    # nested model does
    top = bool(getattr(model, "trainable", True))
    for layer in model_layers(model):
        if layer.parameters():
            visit(layer, layer.name, top)
    return split


def frozen_layers(model) -> list[str]:
    """Names of the layers with parameters that are frozen, bottom to top.

    A layer of ``model.layers`` frozen throughout (itself and every layer
    with parameters inside it) is named as :func:`freeze` names it
    (``"fc1"``, or ``"base"`` for a whole nested base). A nested model only
    partly frozen is looked into, and its frozen layers are named by their
    path from the top-level layer, names joined by ``/``: ``"base/fc1"``
    for ``fc1`` frozen inside ``Sequential([base, head])``'s ``base``. A
    frozen nested model is frozen throughout, whatever the flags inside it
    (Keras' rule: it does not train them).
    Together with :func:`trainable_layers` this names every layer with
    parameters once (``["base/fc1"]`` frozen, ``["base/fc2", "head"]``
    training).
    """
    return _split_by_trainable(model)[False]


def trainable_layers(model) -> list[str]:
    """Names of the layers with parameters that train, bottom to top: a
    top-level layer by its name, the training layers of a partly frozen
    nested model by their path (``"base/fc2"``); see :func:`frozen_layers`."""
    return _split_by_trainable(model)[True]


def snapshot_trainable(model):
    """Every ``trainable`` flag of ``model``: of each layer of its tree (nested
    models' layers too, parents first) and of each parameter, for
    :func:`restore_trainable`.

    A container's ``trainable`` setter sets its whole subtree, so setting the
    flags of the top-level layers alone cannot hand back a nested base
    whose inner layers differ (one frozen block, a frozen BatchNorm).
    """
    return ([(layer, layer.trainable) for layer in walk_layers(model)],
            [(p, p.trainable) for p in model.parameters()])


def restore_trainable(snapshot) -> None:
    """Put back the flags :func:`snapshot_trainable` recorded, to the last
    parameter (parents first, so each layer ends with its own flag)."""
    layers, params = snapshot
    for layer, flag in layers:
        layer.trainable = flag
    for p, flag in params:
        p.trainable = flag
