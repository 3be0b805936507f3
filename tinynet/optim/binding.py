"""Binding a model's optimizer: the rules ``Sequential`` and ``mtl.Model`` share.

``model.compile(optimizer)`` takes an optimizer as PyTorch users build one:
unbound (``Adam(lr=1e-3)``: the model binds it), or already bound to some of
the model's parameters -- a subset, or parameter groups with rates of their
own (:func:`tinynet.transfer.discriminative_param_groups`) --, which the
model keeps as they are, as ``torch.optim`` keeps what it was given.

An optimizer serves the model whose parameters it holds (its state is theirs,
as a Keras optimizer built for one model's variables refuses another's): one
bound to parameters that are not the model's -- another model's, or one
compiled with another model before -- is refused, with nothing changed,
rather than silently bound again (it left the other model without the
optimizer it was compiled with, and took its state along). The model's own
optimizer (the one it is compiled with) passes: what it holds beyond the
model's parameters are the model's older ones (``pop``, ``replace_head``,
a rebuild), and binding again follows the model, the parameters that stay
keeping their state.

Both models keep two attributes this module reads: ``optimizer`` (the one
they are compiled with, None before) and ``_bound_ids`` (the ids of the
parameters the model bound it to, None if the user bound it).
"""

from __future__ import annotations

from ..param import ensure_flat

__all__ = ["bind_model_optimizer", "refuse_foreign"]


def refuse_foreign(model, optimizer, params, who: str, known=()) -> None:
    """``ValueError`` if ``optimizer`` is not ``model``'s own and holds
    parameters that are neither in ``params`` (the model's) nor in ``known``
    (a multi-task weighting's); nothing changes."""
    if optimizer is model.optimizer:
        return
    bound = {id(p) for p in optimizer.params}
    foreign = bound - {id(p) for p in params} - {id(p) for p in known}
    if foreign:
        name = type(optimizer).__name__
        raise ValueError(f"{who} received an optimizer bound to {len(foreign)} parameter(s) "
                         f"that are not this model's (of {len(bound)} bound): another "
                         f"model's, or it was compiled with another model; an optimizer "
                         f"holds one model's parameters and state, so make a new one for "
                         f"this model (e.g. {name}(lr=...), which compile binds) or bind "
                         f"one to this model's parameters (model.parameters(), or groups "
                         f"of them)")


def bind_model_optimizer(model, optimizer, params, who: str, known=()):
    """Bind ``optimizer`` to ``model``'s ``params`` unless the user bound it
    to them; return what the model keeps as ``_bound_ids``.

    * Not the model's own and bound to other parameters: ``ValueError``
      (:func:`refuse_foreign`), before anything changes.
    * Unbound: bound to every parameter of ``params`` in one group, frozen
      ones too (the optimizer skips them while ``trainable`` is False, so
      unfreezing after compile trains them), first moved into one flat
      buffer (once), so that the optimizer updates runs of them with one
      fused call each.
    * The model's own, and ``params`` changed since it was bound (rebuilt,
      added, popped, a head replaced): bound again (the parameters that stay
      keep their state and their groups' hyperparameters, new ones start
      fresh: :meth:`~tinynet.optim.Optimizer.bind`).
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
    bound = {id(p) for p in optimizer.params}
    foreign = bound - set(ids) - {id(p) for p in known}
    ensure_flat(params)
    if not bound or foreign or (bound_ids is not None and bound_ids != ids):
        optimizer.bind(params)  # the params that stay keep their state
        return ids
    return bound_ids
