"""Feature extraction: the activations of any layer of a trained model.

"Use the pretrained model's features": run the bottom of a network in
inference mode and train something small on what comes out.

>>> feats = extract_features(model, x, layer="fc2")   # (n_samples, 128)
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..checks import check_positive_int
from .selection import layer_index, model_layers

__all__ = ["extract_features", "preserved_caches"]


#: Attributes a forward pass never sets, which a caller may change inside
#: :func:`preserved_caches` and keep.
_KEPT = frozenset({"_trainable"})


def _walk(obj, seen: dict) -> None:
    """Every Layer reachable from ``obj`` through attributes, lists and dicts."""
    from ..layers.base import Layer

    if id(obj) in seen:
        return
    seen[id(obj)] = obj
    for value in vars(obj).values():
        items = value if isinstance(value, (list, tuple)) else (
            value.values() if isinstance(value, dict) else (value,))
        for item in items:
            if isinstance(item, Layer):
                _walk(item, seen)


@contextlib.contextmanager
def preserved_caches(model):
    """Restore every layer's forward caches on exit.

    A forward pass overwrites what each layer keeps for its backward pass
    (inputs, outputs, masks, shapes, mode flags). Inside this context a
    model can be run for inspection -- between a training forward and its
    backward, from a callback -- without changing what the next backward
    computes: on exit, every attribute that a layer built on entry had and
    that was set to another object is set back, whatever its type (a
    BatchNorm's ``(x_hat, inv_std, flag)``, a Dropout's output shape...).
    Kept: ``trainable`` flags set inside, what a layer built inside the
    context built, and arrays changed in place (a training forward's
    BatchNorm statistics: run inference forwards, as
    :func:`extract_features` does).

    ``model`` is any tinynet Layer (a ``Sequential``, an ``mtl.Model``, one
    layer); anything else is a ``TypeError``.
    """
    from ..layers.base import Layer

    if not isinstance(model, Layer):
        raise TypeError(f"preserved_caches expected a model or a layer, received "
                        f"{type(model).__name__}")
    objects: dict = {}
    _walk(model, objects)
    # a layer built inside the context keeps what it built (its state arrays)
    saved = {key: dict(vars(obj)) for key, obj in objects.items()
             if getattr(obj, "built", True)}
    try:
        yield model
    finally:
        for key, obj in objects.items():
            if key not in saved:
                continue
            attrs = vars(obj)
            for name, value in saved[key].items():
                if name not in _KEPT and attrs.get(name) is not value:
                    attrs[name] = value


def extract_features(model, x, layer=-2, batch_size: int = 256) -> np.ndarray:
    """Outputs of ``model.layers[layer]`` for inputs ``x``, in inference mode.

    Parameters
    ----------
    model : Sequential
    x : ndarray of shape (n_samples, *input_shape), floating
    layer : int or str, default -2
        Index (negative from the top) or name of the layer whose output is
        returned; the default is the layer below the head.
    batch_size : int, default 256
        Samples per forward pass (bounds the memory of wide layers).

    Returns
    -------
    ndarray of shape (n_samples, *layers[layer].output_shape)

    Notes
    -----
    Layers run with ``training=False`` (dropout off, BatchNorm on its moving
    statistics, which it does not update) and every layer's backward caches
    are restored afterwards (:func:`preserved_caches`), so extracting
    features in the middle of training changes nothing.
    """
    from ..checks import as_float_array, check_finite

    layers = model_layers(model)
    stop = layer_index(model, layer) + 1
    if not getattr(model, "built", True):
        # as predict: building here would return features of random weights
        raise ValueError(f"extract_features: the model is not built, so it has no weights "
                         f"yet: train or load it first (or build(input_shape))")
    batch_size = check_positive_int(batch_size, "extract_features", "batch_size")
    x = as_float_array(x, "extract_features", "x", min_ndim=2)
    check_finite(x, "extract_features", "x")
    chunks = []
    with preserved_caches(model):
        for begin in range(0, max(len(x), 1), batch_size):
            h = x[begin:begin + batch_size]
            for lay in layers[:stop]:
                h = lay.forward(h, training=False)
            chunks.append(np.array(h, copy=True))
    return np.concatenate(chunks, axis=0)
