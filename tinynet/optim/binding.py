"""Binding a model's optimizer: the rules ``Sequential`` and ``mtl.Model`` share.

``model.compile(optimizer)`` takes an optimizer as PyTorch users build one:
unbound (``Adam(lr=1e-3)``: the model binds it), or already bound to some of
the model's parameters -- a subset, or parameter groups with rates of their
own (:func:`tinynet.transfer.discriminative_param_groups`) --, which the
model keeps as they are, as ``torch.optim`` keeps what it was given.

An optimizer serves the model whose parameters it holds (its state is theirs,
as a Keras optimizer built for one model's variables refuses another's): one
bound to another model's parameters -- bound to them by the user, or
compiled with that model before -- is refused, with nothing changed, rather
than silently bound again (it left the other model without the optimizer it
was compiled with, and took its state along). Parameters the model itself
released (``pop``, ``replace_head``, ``reset_parameters``, a layer's
``build`` called again: recorded by :func:`release_parameters`) count as the
model's former ones, not another model's: the model's own optimizer (the
one it is compiled with), one the user bound to the model's parameters
before a head was replaced (the usual transfer-learning order), or one it
was compiled with before another, is bound again to follow the model, the
parameters that stay keeping their state. They count so until another
model takes their layer: a layer popped from one model and added to another
that keeps it is the other's, so an optimizer holding its parameters is
refused by the first (:func:`released_ids` gives the rule).

Both models keep three attributes this module reads: ``optimizer`` (the one
they are compiled with, None before), ``_bound_ids`` (the ids of the
parameters the model bound it to, None if the user bound it) and
``_released`` (what :func:`release_parameters` records on it, or on a
container inside it).
"""

from __future__ import annotations

import gc
import threading
import weakref

from ..layers.base import walk_layers
from ..param import ensure_flat

__all__ = ["bind_model_optimizer", "refuse_foreign", "release_parameters"]


# Serialises the read-modify-write of a container's record: two threads
# rebuilding layers of one model would each drop the other's addition. Each
# record is a new dict, never changed once stored: reading needs no lock.
_RECORD_LOCK = threading.Lock()


def release_parameters(container, layer, params) -> None:
    """Record on ``container`` that it no longer holds ``params``, which were
    ``layer``'s: it popped ``layer`` (:func:`tinynet.layers.base.release`),
    or ``layer`` was built again and replaced them (``build`` called again,
    ``Sequential.reset_parameters``: each container holding the layer then
    records them). An optimizer holding them is then taken for one of the
    container's, and of any model the container is inside
    (:func:`released_ids`).

    Each parameter is recorded with ``layer`` and with the layer inside it
    that holds the parameter itself (the two differ for a model popped from
    a model), all by weak reference: a parameter nothing else holds is
    dropped at the next record (its id may be reused by a new parameter,
    another model's)."""
    owner = {id(p): inner for inner in walk_layers(layer) for p in inner._params}
    ref = weakref.ref(layer)
    with _RECORD_LOCK:
        released = {key: record for key, record in (container._released or {}).items()
                    if record[0]() is not None}
        released.update((id(p), (weakref.ref(p), weakref.ref(owner.get(id(p), layer)), ref))
                        for p in params)
        container._released = released


def _taken(inner, layer, mine: set) -> bool:
    """Whether a live container other than the model (``mine``: the ids of
    the model's layers) and than ``layer`` holds ``inner`` (a layer inside
    ``layer``, or ``layer``), directly or through containers inside
    ``layer``: a model the layer was added to after it was released, or
    one a layer inside it was moved to. A path reaching the model is the
    model's (the layer added back, or also held by another model)."""
    below = {id(sub) for sub in walk_layers(layer)}
    todo, seen = [inner], set()
    while todo:
        node = todo.pop()
        if id(node) in mine:
            continue
        if node is not inner and id(node) not in below:
            return True
        for parent in list(node._parents):  # (a WeakSet: live containers only)
            if id(parent) not in seen:
                seen.add(id(parent))
                todo.append(parent)
    return False


def released_ids(model, among) -> set:
    """The ids of ``among`` that are parameters ``model`` or a container
    inside it released (:func:`release_parameters`; a Sequential popped
    inside a Sequential, or inside an ``mtl.Model``) and whose layer no
    other live model has taken since (:func:`_taken`).

    The second condition is checked now, not when a model takes the layer:
    a container that held it for a while (one built to save the layer, or
    dropped) takes nothing. A container dropped but held in a reference
    cycle lives until the garbage collector frees it: before counting a
    parameter as taken, the collector runs once."""
    layers = list(walk_layers(model))
    mine = {id(layer) for layer in layers}
    records = [(key, [ref() for ref in record]) for layer in layers
               for key, record in (layer._released or {}).items() if key in among]
    records = [(key, refs) for key, refs in records if refs[0] is not None]

    def counted():
        return {key for key, (_, inner, layer) in records
                if inner is None or layer is None or not _taken(inner, layer, mine)}

    ids = counted()
    if len(ids) < len({key for key, _ in records}):
        gc.collect()
        ids = counted()
    return ids


def _foreign_ids(optimizer, params, known=()) -> set:
    """The ids of the parameters ``optimizer`` holds that are neither in
    ``params`` nor in ``known``."""
    return ({id(p) for p in optimizer.params} - {id(p) for p in params}
            - {id(p) for p in known})


def refuse_foreign(model, optimizer, params, who: str, known=()) -> None:
    """``ValueError`` if ``optimizer`` is not ``model``'s own and holds
    parameters that are neither in ``params`` (the model's), nor in ``known``
    (a multi-task weighting's), nor released by the model or a container
    inside it and not taken by another model since (:func:`released_ids`);
    nothing changes."""
    if optimizer is model.optimizer:
        return
    foreign = _foreign_ids(optimizer, params, known)
    foreign -= released_ids(model, foreign) if foreign else set()
    if foreign:
        name = type(optimizer).__name__
        raise ValueError(f"{who} received an optimizer bound to {len(foreign)} parameter(s) "
                         f"(of {len(optimizer.params)} bound) that are neither this model's "
                         f"nor ones it released (pop, replace_head, reset_parameters, a "
                         f"layer built again) whose layer no other model holds: another "
                         f"model's "
                         f"(bound to them, or compiled with that model); an optimizer holds "
                         f"one model's parameters and state, so make a new one for this "
                         f"model (e.g. {name}(lr=...), which compile binds) or bind one to "
                         f"this model's parameters (model.parameters(), or groups of them)")


def bind_model_optimizer(model, optimizer, params, who: str, known=()):
    """Bind ``optimizer`` to ``model``'s ``params`` unless the user bound it
    to them; return what the model keeps as ``_bound_ids``.

    * Not the model's own and bound to another model's parameters:
      ``ValueError`` (:func:`refuse_foreign`), before anything changes.
    * Unbound: bound to every parameter of ``params`` in one group, frozen
      ones too (the optimizer skips them while ``trainable`` is False, so
      unfreezing after compile trains them), first moved into one flat
      buffer (once), so that the optimizer updates runs of them with one
      fused call each.
    * The model's own, and ``params`` changed since it was bound (rebuilt,
      added, popped, a head replaced): bound again (the parameters that stay
      keep their state and their groups' hyperparameters, new ones start
      fresh: :meth:`~tinynet.optim.Optimizer.bind`).
    * Not the model's own, holding parameters the model released (bound by
      the user before ``replace_head``, or compiled here before another
      optimizer): bound again likewise.
    * Bound by the user to parameters of ``params`` or of ``known`` (a
      multi-task weighting's): kept as it is, groups and rates included.

    ``params`` empty (a model of activations and reshapes only) leaves the
    optimizer unbound and returns ``[]``.
    """
    refuse_foreign(model, optimizer, params, who, known)
    if not params:
        return []
    bound_ids = model._bound_ids if optimizer is model.optimizer else None
    ids = [id(p) for p in params]
    foreign = _foreign_ids(optimizer, params, known)
    ensure_flat(params)
    if not optimizer.params or foreign or (bound_ids is not None and bound_ids != ids):
        optimizer.bind(params)  # the params that stay keep their state
        return ids
    return bound_ids
