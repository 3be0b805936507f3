"""Freezing and unfreezing layers, with Keras semantics.

A frozen layer (``layer.trainable = False``, recursive on containers)

* keeps its parameters out of every optimizer step, so their values stay
  bit-identical however long the model trains;
* still passes gradients to its input, so trainable layers *below* it keep
  learning;
* if it is a BatchNorm, normalises with its moving statistics and stops
  updating them, whatever ``training`` says (the classic pitfall when
  fine-tuning: a frozen base whose statistics drift to the new data).

>>> freeze(model, upto="head")        # everything below the layer named "head"
>>> unfreeze(model, start=-3)         # the top three layers learn again
>>> freeze(model, layers=[0, "fc2"])  # any selection by index or name

Optimizers skip parameters whose ``trainable`` flag is off at each step, so
freezing or unfreezing takes effect without recompiling; it is still good
practice to ``compile`` again after changing what trains, as in Keras.
"""

from __future__ import annotations

from .selection import model_layers, select_layers, span

__all__ = ["freeze", "unfreeze", "set_trainable", "frozen_layers", "trainable_layers"]


def _targets(model, layers, start, upto) -> list[int]:
    if layers is not None and (start is not None or upto is not None):
        raise ValueError("pass either layers=... or a range start=/upto=, not both")
    if layers is not None:
        return select_layers(model, layers)
    return span(model, start, upto)


def set_trainable(model, value: bool, layers=None, *, start=None, upto=None) -> list[str]:
    """Set ``trainable`` on a selection of ``model.layers``.

    Parameters
    ----------
    model : Sequential
    value : bool
    layers : layer reference, optional
        Index, name, slice, range or list of these (see
        :mod:`tinynet.transfer.selection`).
    start, upto : int or str, optional
        Otherwise the range ``model.layers[start:upto]`` (``upto`` exclusive,
        either bound may be a layer name). With nothing given: every layer.

    Returns
    -------
    list of str
        Names of the layers set, bottom to top.
    """
    if not isinstance(value, bool):
        raise TypeError(f"expected trainable as a bool, received {value!r}")
    all_layers = model_layers(model)
    chosen = [all_layers[i] for i in _targets(model, layers, start, upto)]
    for layer in chosen:
        layer.trainable = value
    return [layer.name for layer in chosen]


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


def frozen_layers(model) -> list[str]:
    """Names of the layers with parameters that are frozen."""
    return [layer.name for layer in model_layers(model)
            if layer.parameters() and not layer.trainable]


def trainable_layers(model) -> list[str]:
    """Names of the layers with parameters that train."""
    return [layer.name for layer in model_layers(model)
            if layer.parameters() and layer.trainable]
