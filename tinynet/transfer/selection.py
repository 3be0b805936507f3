"""Naming the layers of a model: by index, by name, by range, and in groups.

Every function of :mod:`tinynet.transfer` that takes "which layers" accepts
the same *layer references*, resolved here against ``model.layers``:

* an ``int`` (negative counts from the top, as in Python),
* a layer name (``"fc2"``),
* a ``slice`` or ``range`` of indices,
* a list or tuple of any of these (or a 1-d NumPy array of indices).

Layer groups (for discriminative learning rates and gradual unfreezing) are
contiguous runs of layers, listed bottom (input side) to top (output side).
"""

from __future__ import annotations

import operator

import numpy as np

from ..checks import did_you_mean

__all__ = ["model_layers", "is_index", "layer_index", "select_layers", "layer_groups", "span",
           "check_every_layer_grouped", "check_unique_names"]


def model_layers(model) -> list:
    """``model.layers`` as a list, with a clear error for anything else."""
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"expected a model with a .layers list (tinynet.Sequential), "
                        f"received {type(model).__name__}")
    return list(layers)


def is_index(ref) -> bool:
    """Whether ``ref`` is one integer index: a Python or NumPy integer, or a
    0-d integer array (not a bool, not an array of several)."""
    if isinstance(ref, np.ndarray):
        return ref.ndim == 0 and ref.dtype.kind in "iu"
    return not isinstance(ref, (bool, np.bool_)) and hasattr(ref, "__index__")


def _received(ref) -> str:
    if isinstance(ref, np.ndarray):
        hint = " (pass a list of indices)" if ref.ndim else ""
        return f"an array of shape {ref.shape} and dtype {ref.dtype}{hint}"
    return f"{ref!r} of type {type(ref).__name__}"


def layer_index(model, ref) -> int:
    """The non-negative index in ``model.layers`` of ``ref`` (an int or a name)."""
    layers = model_layers(model)
    n = len(layers)
    if isinstance(ref, str):
        names = [layer.name for layer in layers]
        if ref not in names:
            raise ValueError(f"model has no layer named {ref!r}{did_you_mean(ref, names)} "
                             f"(layers: {', '.join(names)})")
        check_unique_names(layers, [ref], "the name picks no single layer: pass an index")
        return names.index(ref)
    if not is_index(ref):
        raise TypeError(f"expected a layer index (int) or name (str), received "
                        f"{_received(ref)}")
    i = operator.index(ref)
    if not -n <= i < n:
        raise ValueError(f"layer index {i} out of range for a model of {n} layers")
    return i % n


def check_unique_names(layers, names, advice: str) -> None:
    """Refuse any of ``names`` held by more than one of ``layers``."""
    held = [layer.name for layer in layers]
    for name in names:
        where = [i for i, other in enumerate(held) if other == name]
        if len(where) > 1:
            raise ValueError(f"model has {len(where)} layers named {name!r} (at indices "
                             f"{', '.join(map(str, where))}): {advice}")


def _bound(model, ref) -> int | None:
    """A slice bound that may also be a layer name (the name's index)."""
    if ref is None:
        return None
    if isinstance(ref, str):
        return layer_index(model, ref)
    if not is_index(ref):
        raise TypeError(f"expected a layer index or name as a range bound, received "
                        f"{_received(ref)}")
    return operator.index(ref)


def span(model, start=None, stop=None, step=None) -> list[int]:
    """Sorted indices of ``model.layers[start:stop:step]``; the bounds may be
    layer names (``stop`` is exclusive, as in a slice)."""
    n = len(model_layers(model))
    return sorted(list(range(n))[slice(_bound(model, start), _bound(model, stop), step)])


def select_layers(model, refs) -> list[int]:
    """Sorted, unique indices for a layer reference (see the module docstring)."""
    n = len(model_layers(model))
    if isinstance(refs, slice):
        out = span(model, refs.start, refs.stop, refs.step)
        if not out and n:
            # an integer out of range is refused (layer_index); a slice would
            # silently select nothing, and freeze or unfreeze nothing
            raise ValueError(f"the layer slice {refs!r} selects none of the model's {n} "
                             f"layers")
        return out
    if isinstance(refs, range):
        return sorted({layer_index(model, i) for i in refs})
    if isinstance(refs, np.ndarray) and refs.ndim == 1:
        refs = list(refs)  # np.arange(2): a list of indices (its items are checked)
    if isinstance(refs, (list, tuple)):
        out = set()
        for ref in refs:
            out.update(select_layers(model, ref))
        return sorted(out)
    if n == 0:
        raise ValueError("model has no layers to select from")
    return [layer_index(model, refs)]


def layer_groups(model, groups=None) -> list[list[int]]:
    """Split a model into contiguous layer groups, bottom to top.

    Parameters
    ----------
    model : Sequential
    groups : None, int or list of layer references
        ``None``: one group per layer *with parameters*; a parameter-free
        layer (activation, dropout, flatten) joins the group below it (the
        first such layers join the first group). ``int k``: the layers with
        parameters cut into ``k`` nearly equal contiguous groups. A list:
        each item is a layer reference (index, name, slice, range or list)
        naming one group's layers, given bottom to top (groups out of order
        or overlapping are refused).

    Returns
    -------
    list of list of int
        Layer indices of each group, bottom group first.
    """
    layers = model_layers(model)
    if isinstance(groups, (list, tuple)):
        out = [select_layers(model, g) for g in groups]
        seen: set[int] = set()
        for g in out:
            if not g:
                raise ValueError(f"layer group {groups[out.index(g)]!r} selects no layers")
            if seen & set(g):
                raise ValueError(f"layer groups overlap at layer indices {sorted(seen & set(g))}")
            if seen and min(g) < max(seen):
                # the order gives the rates: reversed groups would give the head the lowest
                raise ValueError(f"expected layer groups bottom (input side) to top, each above "
                                 f"the ones before it; received {[layers[i].name for i in g]} "
                                 f"after {[layers[i].name for i in sorted(seen)]}")
            seen.update(g)
        return out
    with_params = [i for i, layer in enumerate(layers) if layer.parameters()]
    if not with_params:
        if getattr(model, "built", True) is False:
            raise ValueError("the model is not built, so its layers have no parameters yet "
                             "(train, load or build it first)")
        raise ValueError("model has no layers with parameters to group")
    if groups is None:
        k = len(with_params)
    elif isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"expected groups as None, an int or a list of layer references, "
                        f"received {groups!r} of type {type(groups).__name__}")
    elif not 1 <= groups <= len(with_params):
        raise ValueError(f"expected groups between 1 and {len(with_params)} (the number of "
                         f"layers with parameters), received {groups}")
    else:
        k = int(groups)
    # cut points: the first parameter layer of each group, spread as evenly as possible
    firsts = [with_params[(j * len(with_params)) // k] for j in range(k)]
    bounds = [0] + firsts[1:] + [len(layers)]
    return [list(range(bounds[j], bounds[j + 1])) for j in range(k)]


def check_every_layer_grouped(model, index_groups, who: str) -> None:
    """Refuse layer groups that leave out a layer with parameters: an
    optimizer built from the groups would never train it (the groups of
    :func:`layer_groups` with None or an int always cover every layer)."""
    layers = model_layers(model)
    grouped = {i for group in index_groups for i in group}
    missing = [layer.name for i, layer in enumerate(layers)
               if layer.parameters() and i not in grouped]
    if missing:
        raise ValueError(f"{who} expected every layer with parameters in a layer group; "
                         f"no group holds {', '.join(map(repr, missing))} (it would never "
                         f"train: freeze a layer to keep it as it is)")
