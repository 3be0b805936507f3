"""Binding a model's optimizer: the rules ``Sequential`` and ``mtl.Model`` share.

``model.compile(optimizer)`` takes an optimizer as PyTorch users build one:
unbound (``Adam(lr=1e-3)``: the model binds it), or already bound to some of
the model's parameters -- a subset, or parameter groups with rates of their
own (:func:`tinynet.transfer.discriminative_param_groups`) --, which the
model keeps as they are, as ``torch.optim`` keeps what it was given.
"""

from __future__ import annotations

from ..param import ensure_flat

__all__ = ["bind_model_optimizer", "refuse_foreign"]


def refuse_foreign(optimizer, params, bound_ids, who: str, known=()) -> None:
    """``ValueError`` if the user bound ``optimizer`` to parameters that are
    neither in ``params`` nor in ``known`` (another model's); nothing changes.
    An optimizer the model bound itself (``bound_ids`` not None) passes: the
    model's parameters changed since, and binding again follows them."""
    if bound_ids is not None:
        return
    bound = {id(p) for p in optimizer.params}
    foreign = bound - {id(p) for p in params} - {id(p) for p in known}
    if foreign:
        raise ValueError(f"{who} received an optimizer bound to {len(foreign)} parameter(s) "
                         f"that are not this model's (of {len(bound)} bound): pass an unbound "
                         f"optimizer (e.g. {type(optimizer).__name__}(lr=...)) or one bound to "
                         f"this model's parameters (model.parameters(), or groups of them)")


def bind_model_optimizer(optimizer, params, bound_ids, who: str, known=(),
                         strict: bool = False):
    """Bind ``optimizer`` to a model's ``params`` unless the user bound it;
    return what the model passes as ``bound_ids`` next time.

    ``bound_ids`` is the list of parameter ids the model bound this optimizer
    to (what the last call returned), or None if the model has not bound it.

    * Unbound: bound to every parameter of ``params`` in one group, frozen
      ones too (the optimizer skips them while ``trainable`` is False, so
      unfreezing after compile trains them), first moved into one flat
      buffer (once), so that the optimizer updates runs of them with one
      fused call each.
    * Bound by the model before, and ``params`` changed since (rebuilt,
      added, popped): bound again (the parameters that stay keep their
      state and their groups' hyperparameters, new ones start fresh:
      :meth:`~tinynet.optim.Optimizer.bind`).
    * Bound by the user to parameters of ``params`` or of ``known`` (a
      multi-task weighting's): kept as it is, groups and rates included.
    * Bound by the user to other parameters (another model's): with
      ``strict`` a ``ValueError`` saying so, before anything changes;
      otherwise bound again to ``params``.

    ``params`` empty (a model of activations and reshapes only) leaves the
    optimizer unbound and returns ``[]``.
    """
    if not params:
        return []
    if strict:
        refuse_foreign(optimizer, params, bound_ids, who, known)
    ids = [id(p) for p in params]
    bound = {id(p) for p in optimizer.params}
    foreign = bound - set(ids) - {id(p) for p in known}
    ensure_flat(params)
    if not bound or foreign or (bound_ids is not None and bound_ids != ids):
        optimizer.bind(params)  # the params that stay keep their state
        return ids
    return bound_ids
