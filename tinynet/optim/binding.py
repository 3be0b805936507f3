"""Binding a model's optimizer: the rules ``Sequential`` and ``mtl.Model`` share.

``model.compile(optimizer)`` takes an optimizer as PyTorch users build one:
unbound (``Adam(lr=1e-3)``: the model binds it), or already bound to some of
the model's parameters -- a subset, or parameter groups with rates of their
own (:func:`tinynet.transfer.discriminative_param_groups`) --, which the
model keeps as they are, as ``torch.optim`` keeps what it was given; only
the layers added to the model after it was compiled with it join it (the
parameters the user left out stay out).

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
parameters that stay keeping their state -- also when another model holds
their layer now (a head popped and kept in a model of its own), unless that
model is compiled with this very optimizer: compiling the first model with
it would take it from that model, so it is refused, naming that model
(:func:`released_ids` gives the rule).

Both models keep four attributes this module reads: ``optimizer`` (the one
they are compiled with, None before), ``_bound_ids`` (the ids of the
parameters the model bound it to, None if the user bound it),
``_layers_at_bind`` (the model's layers at its last binding, None before:
a user-bound optimizer compiled with the model takes the parameters of the
ones that joined since) and ``_released`` (what :func:`release_parameters`
records on it, or on a container inside it).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import threading

from .._weak import Ref
from ..layers.base import walk_layers
from ..param import ensure_flat

__all__ = ["batched_releases", "bind_model_optimizer", "refuse_foreign",
           "release_parameters", "restored_binding"]


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

    Each parameter is recorded with the layer inside ``layer`` that holds it
    (``layer`` itself but for a model popped from a model), both by weak
    reference: a parameter nothing else holds is dropped at the next record
    (its id may be reused by a new parameter, another model's). Inside
    :func:`batched_releases` the record is written when the block ends."""
    batch = getattr(_PENDING, "batch", None)
    if batch is None:
        _record(container, [(layer, params)])
    else:
        batch.setdefault(id(container), (container, []))[1].append((layer, params))


# The releases of a batched_releases block in progress, per thread.
_PENDING = threading.local()


@contextlib.contextmanager
def batched_releases():
    """Record the parameters released inside the block once per container, when
    it ends (an exception too: the layers built again did replace theirs).

    Each write copies the container's record (it is never changed once
    stored, so that it is read without a lock), which holds every released
    parameter still alive: ``Sequential.reset_parameters`` writing once per
    layer built again cost layers x record per reset (100 resets of 50 Dense,
    each old set of parameters kept by an optimizer: 3.2 s, against 0.28 s on
    main and 0.31 s batched). A block inside a block adds to the outer one."""
    if getattr(_PENDING, "batch", None) is not None:
        yield
        return
    _PENDING.batch = batch = {}
    try:
        yield
    finally:
        _PENDING.batch = None
        for container, entries in batch.values():
            _record(container, entries)


class Released(dict):
    """A container's record of released parameters: ``{id(param): (ref to
    param, ref to the layer holding it)}``, both :class:`tinynet._weak.Ref`.

    Keyed by ``id`` for the lookups of :func:`released_ids`; a reader checks
    that the parameter is alive (a dead one's id may be a new object's). A
    deep copy or a pickle holds the copies of the live parameters and their
    layers, keyed by the copies' ids (a copied record keyed by the originals'
    ids named parameters of the original model): the model copied with the
    optimizer holding its former parameters (``copy.deepcopy((model, opt))``)
    compiles with it as the original does. A parameter nothing else in the
    copy holds is freed with its layer, and its record is dead."""

    def __deepcopy__(self, memo):
        return Released._of(copy.deepcopy(self._live(), memo))

    def __reduce__(self):
        return Released._of, (self._live(),)

    def _live(self) -> list:
        """The (param, layer or None) pairs of the live parameters' records."""
        pairs = [(param(), layer()) for param, layer in self.values()]
        return [(p, layer) for p, layer in pairs if p is not None]

    @staticmethod
    def _of(pairs) -> "Released":
        return Released((id(p), (Ref(p), _gone if layer is None else Ref(layer)))
                        for p, layer in pairs)


def _gone():
    """What a record holds for a layer freed before the record was copied: a
    dead reference (a ``weakref.ref`` cannot be made to nothing)."""
    return None


def _record(container, entries) -> None:
    """Add ``entries`` ((layer, params) pairs: :func:`release_parameters`) to
    ``container``'s record, in one new :class:`Released`."""
    added = {}
    for layer, params in entries:
        owner = {id(p): inner for inner in walk_layers(layer) for p in inner._params}
        added.update((id(p), (Ref(p), Ref(owner.get(id(p), layer)))) for p in params)
    with _RECORD_LOCK:
        released = Released((key, record)
                            for key, record in (container._released or {}).items()
                            if record[0]() is not None)
        released.update(added)
        container._released = released


def _compiled_holder(inner, mine: set, optimizer):
    """A live container holding ``inner`` (directly or through containers,
    walking up ``_parents``), ``inner`` itself included, that is not the
    model's (``mine``: the ids of the model's layers; a path reaching the
    model is the model's) and is compiled with ``optimizer``; None if none
    is."""
    todo, seen = [inner], {id(inner)}
    while todo:
        node = todo.pop()
        if id(node) in mine:
            continue
        if getattr(node, "optimizer", None) is optimizer:
            return node
        for parent in list(node._parents):  # (a WeakSet: live containers only)
            if id(parent) not in seen:
                seen.add(id(parent))
                todo.append(parent)
    return None


def released_ids(model, optimizer, among) -> dict:
    """The ids of ``among`` that are parameters ``model`` or a container
    inside it released (:func:`release_parameters`; a Sequential popped
    inside a Sequential, or inside an ``mtl.Model``), each with None if it
    counts as the model's former one, else with the model compiled with
    ``optimizer`` that holds its layer.

    A released parameter counts as the model's unless a live container that
    holds its layer now is compiled with ``optimizer``: compiling the model
    with it would bind that model's optimizer to this one's parameters,
    taking it from that model. Another container holding the layer takes
    nothing else (one built to save the layer, or dropped, or a model the
    layer was moved to and compiled with an optimizer of its own; an
    optimizer holding that model's other parameters is refused as holding
    another model's). Checked now, not when a container takes the layer. A
    container dropped but held in a reference cycle lives until the garbage
    collector frees it: before taking a container for a holder, the
    collector runs once."""
    layers = list(walk_layers(model))
    mine = {id(layer) for layer in layers}
    records = [(key, [ref() for ref in record]) for layer in layers
               for key, record in (layer._released or {}).items() if key in among]
    records = [(key, inner) for key, (param, inner) in records if param is not None]

    def holders():
        found = {}
        for key, inner in records:
            found.setdefault(key, None if inner is None
                             else _compiled_holder(inner, mine, optimizer))
        return found

    found = holders()
    if any(holder is not None for holder in found.values()):
        found = None  # (it holds the containers found: the collector could not free them)
        gc.collect()
        found = holders()
    return found


def _foreign_ids(optimizer, params, known=()) -> set:
    """The ids of the parameters ``optimizer`` holds that are neither in
    ``params`` nor in ``known``."""
    return ({id(p) for p in optimizer.params} - {id(p) for p in params}
            - {id(p) for p in known})


def refuse_foreign(model, optimizer, params, who: str, known=()) -> None:
    """``ValueError`` if ``optimizer`` is not ``model``'s own and holds
    parameters that are neither in ``params`` (the model's), nor in ``known``
    (a multi-task weighting's), nor released by the model or a container
    inside it (:func:`released_ids`): another model's; or if it is the
    optimizer another live model is compiled with and holds parameters the
    model released whose layer that model holds now. Nothing changes."""
    if optimizer is model.optimizer:
        return
    foreign = _foreign_ids(optimizer, params, known)
    if not foreign:
        return
    released = released_ids(model, optimizer, foreign)
    held = [holder for holder in released.values() if holder is not None]
    foreign -= set(released)
    ways = "pop, replace_head, reset_parameters, a layer built again"  # of releasing
    remedy = (f"make a new one for this model (e.g. {type(optimizer).__name__}(lr=...), which "
              f"compile binds) or bind one to this model's parameters (model.parameters(), "
              f"or groups of them)")
    if held and not foreign:
        holder = held[0]
        raise ValueError(f"{who} received the optimizer model {holder.name!r} is compiled "
                         f"with: it is that model's, bound to {len(held)} parameter(s) "
                         f"(of {len(optimizer.params)} bound) this model released ({ways}) "
                         f"whose layer {holder.name!r} holds now; compiling this model with "
                         f"it would take it from {holder.name!r}, so {remedy}")
    if not foreign:
        return
    raise ValueError(f"{who} received an optimizer bound to {len(foreign)} parameter(s) "
                     f"(of {len(optimizer.params)} bound) that are neither this model's "
                     f"nor ones it released ({ways}): another model's (bound to them, or "
                     f"compiled with that model); an optimizer holds one model's parameters "
                     f"and state, so {remedy}")


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
      keep their state and their groups' hyperparameters; the others --
      a new head, and any parameter the optimizer did not hold -- start
      without state, in the group of the parameters released if they all
      came from one group (a replaced head's: its rate), else in one group
      of the optimizer's defaults, or in the one group when there was one:
      :func:`_bind_again`).
    * Not the model's own, holding parameters the model released (bound by
      the user before ``replace_head``, or compiled here before another
      optimizer): bound again likewise.
    * Bound by the user to parameters of ``params`` or of ``known`` (a
      multi-task weighting's): kept as it is, groups and rates included,
      but for the parameters of layers that joined the model since it was
      last compiled (or fitted) with it, no other
      optimizer in between (``add``, ``replace_head(n_remove=0)``), which it
      takes (:func:`_bind_joined`); the ones the user left out stay out.

    ``params`` empty (a model of activations and reshapes only) leaves the
    optimizer unbound and returns ``[]``.
    """
    refuse_foreign(model, optimizer, params, who, known)
    if not params:
        return []
    bound_ids = model._bound_ids if optimizer is model.optimizer else None
    before = model._layers_at_bind if optimizer is model.optimizer else None
    layers = tuple(walk_layers(model))
    ids = [id(p) for p in params]
    foreign = _foreign_ids(optimizer, params, known)
    ensure_flat(params)
    if not optimizer.params or foreign or (bound_ids is not None and bound_ids != ids):
        _bind_again(optimizer, params, known)
        bound_ids = ids
    elif bound_ids is None and before is not None:
        _bind_joined(optimizer, params, layers, before, known)
    model._layers_at_bind = layers  # once bound: a failed binding leaves the record
    return bound_ids


def restored_binding(model) -> None:
    """After ``tn.load`` bound the model's optimizer to the saved groups: one
    that leaves some of the model's parameters out was bound so by the user
    (the model binds every parameter), so the model takes it for one the user
    bound, compiled with it now -- layers added later join it, the parameters
    left out stay out (:func:`bind_model_optimizer`) -- rather than for its
    own, which would bind the left-out ones at the next change."""
    held = {id(p) for p in model.optimizer.params}
    if any(id(p) not in held for p in model.parameters()):
        model._bound_ids = None
        model._layers_at_bind = tuple(walk_layers(model))


def _bind_joined(optimizer, params, layers, before, known) -> None:
    """An optimizer the user bound, last compiled (or fitted) with the model
    before: the parameters of the layers that joined the model since
    (``add``, ``replace_head`` with ``n_remove=0``: in ``layers``, not in
    ``before``, the model's layers at that binding) that it does not hold
    are bound by :func:`_bind_again`'s rule (one group: into it; several: a
    group of the optimizer's defaults), with fresh state. The parameters
    the user left out of it stay out -- also a left-out layer built again,
    whose parameters are new but whose layer is not --, as ``torch.optim``
    keeps what it was given: only the layers that joined the model after
    are new to it."""
    held = {id(p) for p in optimizer.params}
    earlier = {id(layer) for layer in before}
    joined = {id(p) for layer in layers if id(layer) not in earlier for p in layer._params
              if id(p) not in held}
    if joined:
        _bind_again(optimizer, [p for p in params if id(p) in held or id(p) in joined], known)


def _bind_again(optimizer, params, known=()) -> None:
    """Bind ``optimizer`` to ``params``, the model's parameters as they are
    now, keeping the state of those it holds
    (:meth:`~tinynet.optim.Optimizer.bind`). The new parameters are every
    parameter of ``params`` the optimizer does not hold: a new head, but
    also parameters the user left out of it (kept fixed) -- they join the
    new ones and train from now on, as ``compile`` binding an unbound
    optimizer binds every parameter.

    The rule counts the groups that held the model's parameters before
    (its own or ones it released). A group made only of ``known``
    parameters (a multi-task weighting's) does not count: it stays as it
    is, after the model's groups, with its hyperparameters and its
    parameters' state (``mtl.Model.fit`` binds again after a layer joined
    a head, and the weighting's log-variances or weights go on from their
    moments); ``mtl.Model.compile`` binds a new weighting's parameters,
    which no group holds yet, and adds their group after.

    * None or one (unbound, another model's former optimizer, one group):
      the parameters are bound in one group, which keeps what the old
      groups agree on (a rate a schedule set), the new parameters joining
      it.
    * Several (:func:`tinynet.transfer.discriminative_param_groups`, a
      group added by hand): each group stays with its own hyperparameters,
      in its place, less the parameters the model no longer holds.

      - Every released parameter from one group (the replaced head's):
        the new parameters join that group, after the parameters of it
        that stay, so they take its hyperparameters (``lr``,
        ``initial_lr``, ``betas``...) -- the new head trains at the rate
        the replaced one was at, the top rate of discriminative groups --
        with fresh state (none yet: created at their first step).
      - Released from several groups, or none (``Sequential.add``): the
        groups left empty go and the new parameters go into one group
        added with the optimizer's defaults, as PyTorch's
        ``add_param_group`` makes one
        (:meth:`~tinynet.optim.Optimizer.add_param_group`, which also
        starts it at a running schedule's factor).
      - No parameter kept at all (every one rebuilt, ``reset_parameters``):
        one group, as above, which keeps only what the old groups agree on:
        several groups' own rates are lost, and a schedule made for them
        refuses the one group at the next ``fit`` (make the groups again).

    Bound in one group, the lower layers took the one rate all the groups
    agreed on -- none: the constructor's, the head's in discriminative
    groups, 6.8 times the bottom group's over three layers; the new head
    in a group of the defaults trained at the constructor's rate, not at
    the replaced head's."""
    ids = {id(p) for p in params}
    known_ids = {id(p) for p in known} - ids
    theirs = [group for group in optimizer.param_groups
              if all(id(p) in known_ids for p in group["params"])]
    groups = [group for group in optimizer.param_groups
              if any(id(p) not in known_ids for p in group["params"])]
    kept = [{**group, "params": [p for p in group["params"] if id(p) in ids]}
            for group in groups]
    if len(groups) < 2 or not any(group["params"] for group in kept):
        one = {"params": params}
        if not any(group["params"] for group in kept):
            # none kept: the rate the model's old groups were at, as bind keeps it for
            # parameters all new (it would not take them for moved beside ``theirs``)
            one.update(optimizer._carried_over(one, groups, moved=True))
        optimizer.bind([one, *theirs])
        return
    held = {id(p) for group in kept for p in group["params"]}
    new = [p for p in params if id(p) not in held]
    sources = [i for i, group in enumerate(groups)
               if any(id(p) not in ids and id(p) not in known_ids for p in group["params"])]
    if new and len(sources) == 1:
        kept[sources[0]]["params"] += new
        new = []
    optimizer.bind([group for group in kept if group["params"]] + theirs)
    if new:
        optimizer.add_param_group({"params": new})
