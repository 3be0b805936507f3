"""Optimizers, learning-rate schedules and gradient clipping.

>>> import tinynet as tn
>>> opt = tn.optim.Adam(model.parameters(), lr=1e-3)          # doctest: +SKIP
>>> opt = tn.optim.get("adam", model.parameters(), lr=1e-3)   # the same   # doctest: +SKIP
>>> sched = tn.optim.CosineAnnealingLR(opt, T_max=20)          # doctest: +SKIP
"""

from __future__ import annotations

from ..checks import lookup
from .clipping import clip_grad_norm, clip_grad_value
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .schedules import (CosineAnnealingLR, ExponentialLR, LinearWarmup, LRScheduler,
                        ReduceLROnPlateau, StepLR)

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "OPTIMIZERS", "get",
    "optimizer_to_dict", "optimizer_from_dict", "clip_grad_norm", "clip_grad_value",
    "LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup",
    "ReduceLROnPlateau",
]

#: Optimizer names to classes.
OPTIMIZERS: dict[str, type] = {
    "sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
}


def get(spec, params=None, **kwargs) -> Optimizer:
    """An optimizer from a name, a class, a config dict or an instance.

    ``get("adam", params, lr=1e-3)`` is ``Adam(params, lr=1e-3)``; without
    ``params`` the optimizer is unbound (``model.compile`` binds it). An
    instance is returned as it is (bound to ``params`` when given).
    """
    if isinstance(spec, Optimizer):
        if kwargs:
            raise TypeError(f"get() takes no hyperparameters with an optimizer instance, "
                            f"received {sorted(kwargs)}")
        return spec if params is None else spec.bind(params)
    if isinstance(spec, dict):
        return optimizer_from_dict(spec, params)
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        return spec(params, **kwargs)
    return lookup(OPTIMIZERS, spec, "optimizer")(params, **kwargs)


def optimizer_to_dict(opt: Optimizer) -> dict:
    """``{"class": "Adam", "config": {...}}``: JSON-safe, without params or state."""
    return {"class": type(opt).__name__, "config": opt.get_config()}


def optimizer_from_dict(spec: dict, params=None) -> Optimizer:
    """Inverse of :func:`optimizer_to_dict` (bound to ``params`` when given)."""
    if not isinstance(spec, dict) or "class" not in spec:
        raise ValueError(f"expected an optimizer dict with a 'class' key, received {spec!r}")
    cls = lookup(OPTIMIZERS, spec["class"], "optimizer")
    return cls(params, **dict(spec.get("config", {})))
