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

from ..checks import check_positive_int, did_you_mean

__all__ = ["model_layers", "is_index", "layer_index", "select_layers", "layer_groups", "span",
           "check_every_layer_grouped", "check_unique_names", "check_layer_refs",
           "check_groups"]


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
        _check_group_order(groups, out, lambda idx: [layers[i].name for i in idx])
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


def _check_group_order(groups, out, label, who: str = "") -> None:
    """Refuse layer groups (``out``: the indices of each of ``groups``) that
    select nothing, overlap, or are not listed bottom to top; ``label(indices)``
    names a group's layers in the message, ``who`` (if any) starts it."""
    start = f"{who}: " if who else ""
    seen: set[int] = set()
    for ref, g in zip(groups, out):
        if not g:
            raise ValueError(f"{start}layer group {ref!r} selects no layers")
        if seen & set(g):
            raise ValueError(f"{start}layer groups overlap at layer indices "
                             f"{sorted(seen & set(g))}")
        if seen and min(g) < max(seen):
            # the order gives the rates: reversed groups would give the head the lowest
            raise ValueError(f"{start}expected layer groups bottom (input side) to top, each "
                             f"above the ones before it; received {label(g)} after "
                             f"{label(sorted(seen))}")
        seen.update(g)


_REFS = "a layer index (int), a name (str), a slice, a range, or a list of these"


def check_layer_refs(refs, who: str, what: str) -> None:
    """Refuse, before any model is at hand, a layer reference that no model
    could resolve: another type than the module docstring lists (a float, a
    bool, a 2-d array...), an empty name, a slice bound that is neither an
    index nor a name, a slice step of 0, an empty list (it selects nothing).
    Indices and names are checked against the model when it is resolved."""
    if isinstance(refs, str):
        if not refs:
            raise ValueError(f"{who} expected {what} as {_REFS}; received an empty name")
    elif isinstance(refs, slice):
        for bound in (refs.start, refs.stop, refs.step):
            if bound is not None and not isinstance(bound, str) and not is_index(bound):
                raise TypeError(f"{who} expected {what} as {_REFS}; received the slice "
                                f"{refs!r}, whose bounds are not indices or names")
        if isinstance(refs.step, str) or (refs.step is not None
                                          and operator.index(refs.step) == 0):
            raise ValueError(f"{who} expected {what} as {_REFS}; received the slice {refs!r}, "
                             f"whose step is not a nonzero index")
    elif isinstance(refs, range) or is_index(refs):
        pass
    elif isinstance(refs, np.ndarray) and refs.ndim == 1 and refs.dtype.kind in "iu":
        pass
    elif isinstance(refs, (list, tuple)):
        for ref in refs:
            check_layer_refs(ref, who, what)
    else:
        raise TypeError(f"{who} expected {what} as {_REFS}; received {_received(refs)}")
    if isinstance(refs, (list, tuple, range, np.ndarray)) and len(refs) == 0:
        raise ValueError(f"{who} expected {what} to select layers; received {refs!r}, "
                         f"which selects none")


def _known_indices(ref) -> list[int] | None:
    """The indices ``ref`` selects in any model, when it names them by
    non-negative indices only (else None: they depend on the model)."""
    if isinstance(ref, (list, tuple, range, np.ndarray)):
        parts = [_known_indices(r) for r in ref]
        if any(part is None for part in parts):
            return None
        return sorted({i for part in parts for i in part})
    if is_index(ref) and operator.index(ref) >= 0:
        return [operator.index(ref)]
    return None


def check_groups(groups, who: str) -> None:
    """Refuse, before any model is at hand, ``groups`` (as :func:`layer_groups`
    takes them) that no model could take: not None, an int or a list; an int
    below 1; a list without groups, with a bad reference
    (:func:`check_layer_refs`), or -- when the groups name layers by
    non-negative indices -- overlapping or not bottom to top."""
    if groups is None:
        return
    if isinstance(groups, (list, tuple)):
        if not groups:
            raise ValueError(f"{who} expected groups as a non-empty list of layer groups, "
                             f"received {groups!r}")
        for group in groups:
            check_layer_refs(group, who, "each layer group")
        known = [_known_indices(group) for group in groups]
        if all(k is not None for k in known):
            _check_group_order(groups, known, lambda idx: f"layers {idx}", who)
        return
    check_positive_int(groups, who, "groups (None, a list of layer groups, or how many)")


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
