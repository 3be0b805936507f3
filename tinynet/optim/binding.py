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
model takes them: a layer popped from one model and added to another is the
other's from then on (:func:`tinynet.layers.base.release_parameters` gives
the rule), so an optimizer holding its parameters is refused by the first.

Both models keep two attributes this module reads: ``optimizer`` (the one
they are compiled with, None before) and ``_bound_ids`` (the ids of the
parameters the model bound it to, None if the user bound it).
"""

from __future__ import annotations

from ..layers.base import release_parameters, released_ids
from ..param import ensure_flat

__all__ = ["bind_model_optimizer", "refuse_foreign", "release_parameters"]


def _foreign_ids(optimizer, params, known=()) -> set:
    """The ids of the parameters ``optimizer`` holds that are neither in
    ``params`` nor in ``known``."""
    return ({id(p) for p in optimizer.params} - {id(p) for p in params}
            - {id(p) for p in known})


def refuse_foreign(model, optimizer, params, who: str, known=()) -> None:
    """``ValueError`` if ``optimizer`` is not ``model``'s own and holds
    parameters that are neither in ``params`` (the model's), nor in ``known``
    (a multi-task weighting's), nor released by the model or a layer inside
    it and not taken by another model since (:func:`release_parameters`);
    nothing changes."""
    if optimizer is model.optimizer:
        return
    foreign = _foreign_ids(optimizer, params, known)
    foreign -= released_ids(model) if foreign else set()
    if foreign:
        name = type(optimizer).__name__
        raise ValueError(f"{who} received an optimizer bound to {len(foreign)} parameter(s) "
                         f"(of {len(optimizer.params)} bound) that are neither this model's "
                         f"nor ones it released (pop, replace_head, reset_parameters, a "
                         f"layer built again) and no model took since: another model's "
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
