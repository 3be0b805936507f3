"""Model surgery: a new head for a new task, and weights copied between models.

>>> removed = replace_head(model, [tn.layers.Dense(5, name="head")])
>>> copy_weights(pretrained, model, by="name")   # every layer whose name matches

After surgery, ``compile`` the model again (its optimizer was built for the
old parameters).
"""

from __future__ import annotations

import numpy as np

from ..checks import as_values_like
from ..layers.base import walk_layers
from .selection import check_unique_names, model_layers, select_layers

__all__ = ["replace_head", "copy_weights"]


def replace_head(model, new_layers, n_remove: int = 1) -> list:
    """Remove the top ``n_remove`` layers of ``model`` and add ``new_layers``.

    Parameters
    ----------
    model : Sequential
        Changed in place (through its ``pop()`` and ``add()``).
    new_layers : Layer or list of Layer
        The new head, bottom to top; built for the output shape of what
        remains of the model when it is built.
    n_remove : int, default 1
        How many layers to remove from the top; ``0`` only adds.

    Returns
    -------
    list of Layer
        The removed layers, bottom to top (to restore or reuse them).

    Raises
    ------
    TypeError, ValueError
        For bad arguments, or a new layer that cannot be built on what
        remains of the model (a ``Conv2D`` on flat features); the model is
        then left as it was, its old head on.
    """
    from ..layers.base import Layer

    if isinstance(new_layers, Layer):
        new_layers = [new_layers]
    if isinstance(new_layers, (str, bytes, dict)) or not hasattr(new_layers, "__iter__"):
        raise TypeError(f"replace_head expected new_layers as a Layer or a list of Layers, "
                        f"received {new_layers!r}"[:300])
    new_layers = list(new_layers)
    for layer in new_layers:
        if not isinstance(layer, Layer):
            raise TypeError(f"replace_head expected layers, received {type(layer).__name__}")
    n_layers = len(model_layers(model))
    if isinstance(n_remove, bool) or not isinstance(n_remove, (int, np.integer)) or n_remove < 0:
        raise ValueError(f"replace_head expected n_remove as a non-negative int, "
                         f"received {n_remove!r}")
    if n_remove >= n_layers and n_remove:
        raise ValueError(f"replace_head cannot remove {n_remove} layers from a model of "
                         f"{n_layers}: nothing of the base would remain")
    if not new_layers and not n_remove:
        raise ValueError("replace_head expected new layers or n_remove > 0")
    # a new layer named like a kept one would make that name pick the base layer
    # for freeze(model, layers="head"), copy_weights(by="name")...
    kept = model_layers(model)[:n_layers - int(n_remove)] + new_layers
    check_unique_names(kept, [layer.name for layer in new_layers],
                       "replace_head expected new layers with names not in use (pass name=)")
    removed = []
    for _ in range(int(n_remove)):
        removed.append(model.layers[-1])
        model.pop()
    try:
        for layer in new_layers:
            model.add(layer)  # builds it on the model's output: may not fit
    except BaseException:
        # hand the model back as it came (its old head on), not headless
        while len(model.layers) > n_layers - int(n_remove):
            model.pop()
        for layer in reversed(removed):
            model.add(layer)
        raise
    return removed[::-1]


def _states(layer) -> list:
    """``(sublayer, state)`` for every layer of ``layer``'s tree that has state
    (a BatchNorm nested in a base model too), parents first."""
    return [(sub, state) for sub in walk_layers(layer) for state in [sub.get_state()] if state]


def _describe(layer) -> str:
    shapes = ", ".join(f"{p.name.rsplit('/', 1)[-1]} {p.shape}" for p in layer.parameters())
    states = ", ".join(f"{k} {np.shape(v)}" for _, state in _states(layer)
                       for k, v in state.items())
    parts = "; ".join(s for s in (shapes, states) if s)
    return f"{type(layer).__name__} {layer.name!r} ({parts or 'no weights'})"


def _weights(layer) -> list[np.ndarray]:
    return [p.value for p in layer.parameters()] + [
        v for _, state in _states(layer) for v in state.values()]


def _converted(s, d):
    """``s``'s weights as ``d`` takes them: ``([(param, value)], [(sublayer,
    state)])``, each value checked and cast by :func:`~tinynet.checks.as_values_like`."""
    def value(new, like, name):
        return as_values_like(new, like, "copy_weights", f"weight {name!r} of layer {s.name!r}")

    params = [(pd, value(ps.value, pd.value, ps.name))
              for ps, pd in zip(s.parameters(), d.parameters())]
    states = [(d_sub, {k: value(v, d_state[k], f"{s_sub.name}/{k}") for k, v in state.items()})
              for (s_sub, state), (d_sub, d_state) in zip(_states(s), _states(d))]
    return params, states


def _check_pair(s, d, undo: list) -> None:
    """``ValueError`` unless ``s``'s weights fit ``d``. An unbuilt ``d`` is
    built for ``s``'s input to compare them, the way to put it back appended
    to ``undo`` (:func:`_unbuild`): a refused copy left the destination's
    layers built with weights from fresh entropy, which a later
    ``fit(seed=...)`` kept instead of drawing them from its seed."""
    if not s.built:
        # it has no weights yet: "copying" it would copy nothing
        raise ValueError(f"copy_weights: the source layer {s.name!r} is not built, so it "
                         f"has no weights to copy (train, load or build the source first)")
    if _types(s) != _types(d):
        inner = "" if type(s) is not type(d) else " inside: " + " vs ".join(
            ", ".join(t.__name__ for t in _types(m)[1:]) for m in (s, d))
        raise ValueError(f"copy_weights cannot copy {_describe(s)} into {_describe(d)}: "
                         f"different layer types{inner}")
    if not d.built:
        undo.append(_unbuild(d))
        d.build(s.input_shape, dtype=d.dtype or s.dtype)
    if [np.shape(a) for a in _weights(s)] != [np.shape(a) for a in _weights(d)]:
        raise ValueError(f"copy_weights shape mismatch: {_describe(s)} does not fit "
                         f"{_describe(d)}")


def _unbuild(layer):
    """A function that puts ``layer`` (and every layer inside it) back as it is
    now, before a ``build``: each one's attributes (``built``, the parameters,
    the shapes, the generator it was given) and the state of each generator
    they hold (building draws from it)."""
    inner = list(walk_layers(layer))
    saved = [(sub, dict(vars(sub))) for sub in inner]
    rngs = {id(rng): (rng, rng.bit_generator.state)
            for rng in (vars(sub).get("_rng") for sub in inner) if rng is not None}

    def restore():
        for sub, attributes in saved:
            vars(sub).clear()
            vars(sub).update(attributes)
        for rng, state in rngs.values():
            rng.bit_generator.state = state
    return restore


def _types(layer) -> list[type]:
    return [type(sub) for sub in walk_layers(layer)]


def _pairs(src, dst, by, layers):
    src_layers, dst_layers = model_layers(src), model_layers(dst)
    if by == "index":
        if layers is None:
            if len(src_layers) != len(dst_layers):
                raise ValueError(f"copy_weights by index expected models with the same number "
                                 f"of layers, received {len(src_layers)} and {len(dst_layers)}; "
                                 f"pass layers=... to copy a part")
            idx = range(len(dst_layers))
        else:
            idx = select_layers(dst, layers)
            if idx and idx[-1] >= len(src_layers):
                raise ValueError(f"copy_weights: layer index {idx[-1]} is out of range for "
                                 f"the source model of {len(src_layers)} layers")
        return [(src_layers[i], dst_layers[i]) for i in idx]
    if by == "name":
        by_name = {layer.name: layer for layer in src_layers}
        check_unique_names(src_layers, [d.name for d in dst_layers],
                           "copy_weights by name cannot tell which of the source's to copy from")
        chosen = (range(len(dst_layers)) if layers is None else select_layers(dst, layers))
        pairs = [(by_name[dst_layers[i].name], dst_layers[i]) for i in chosen
                 if dst_layers[i].name in by_name]
        if layers is not None and len(pairs) < len(chosen):
            missing = [dst_layers[i].name for i in chosen if dst_layers[i].name not in by_name]
            raise ValueError(f"copy_weights by name: the source model has no layer named "
                             f"{', '.join(map(repr, missing))}")
        if not pairs:
            raise ValueError("copy_weights by name: the models share no layer name")
        return pairs
    raise ValueError(f"copy_weights expected by='index' or by='name', received {by!r}")


def copy_weights(src, dst, by: str = "index", layers=None) -> list[tuple[str, str]]:
    """Copy parameters (and state such as BatchNorm statistics, also of the
    layers inside a nested model) layer by layer.

    Parameters
    ----------
    src, dst : Sequential
        ``dst`` is changed in place; its layers must be built (or buildable
        from ``src``'s input shapes) and shaped like their partners, and the
        source's layers copied from must be built. When
        every layer of ``dst`` has its weights afterwards, ``dst`` is built
        too, so it predicts at once; a part copied into an unbuilt model
        leaves the rest for ``build`` or ``fit`` (which seeds them).
    by : {"index", "name"}
        Pair layers at the same position, or with the same name (layers of
        ``dst`` without a namesake in ``src`` are left alone).
    layers : layer reference of ``dst``, optional
        Copy only these (index, name, slice, range or list); every
        selected layer must have a partner.

    Returns
    -------
    list of (str, str)
        The ``(source, destination)`` layer names copied.

    Raises
    ------
    ValueError
        On any shape mismatch, naming both layers and all their shapes, a
        source layer not built (it has no weights yet), or a value that
        :func:`tinynet.io.set_weights` refuses (NaN, infinity, a value that
        overflows ``dst``'s dtype); nothing is copied then, and ``dst`` is
        left as it was (a layer it built to compare shapes is unbuilt
        again, so that ``fit(seed=...)`` still draws its weights). Values
        are cast to ``dst``'s dtype.
    """
    pairs = _pairs(src, dst, by, layers)
    # check every pair before writing anything, so that a mismatch leaves dst
    # untouched: the layers built to compare their shapes are unbuilt again
    undo = []
    try:
        for s, d in pairs:
            _check_pair(s, d, undo)
        # the values, cast to dst's dtype, refused as set_weights refuses them (NaN,
        # infinities, 1e300 into float32), all before anything is written
        writes = [_converted(s, d) for s, d in pairs]
    except BaseException:
        for restore in reversed(undo):
            restore()
        raise
    for params, states in writes:
        for pd, value in params:
            pd.value = value
        for d_sub, state in states:
            d_sub.set_state({k: np.array(v, copy=True) for k, v in state.items()})
    dst_layers = model_layers(dst)
    if not getattr(dst, "built", True) and dst_layers and all(layer.built for layer in dst_layers):
        # every layer has its weights now: the model is built too (build draws
        # nothing for built layers), so predict need not wait for a fit
        dst.build(dst_layers[0].input_shape, dtype=dst_layers[0].dtype)
    return [(s.name, d.name) for s, d in pairs]
