"""Reading a saved optimizer state: what :meth:`Optimizer.load_state_dict` accepts.

A saved state (a model file's ``optimizer_*`` arrays, a meta-learner's) is
the user's data, so every entry is checked before any is used, and a state
that a healthy run never saves is refused, naming the entry and saying what
was expected and what was received -- never turned into silently wrong
training. :func:`read_state_dict` returns the restored groups and state
without assigning them; ``load_state_dict`` assigns both at once (all or
nothing), and :meth:`Optimizer.check_state_dict` lets ``save`` refuse
beforehand a state that loading would refuse.

What is accepted, entry by entry (``state_dict`` writes exactly these):

``optimizer``
    The optimizer's class name.
``n_groups``
    An integer (0-d integer array): the number of bound parameter groups.
``param_groups.<g>.params``
    The group's parameters as consecutive indices (a 1-D integer array),
    numbered in group order over all groups.
``param_groups.<g>.<name>``
    Every hyperparameter of the optimizer (its constructor's defaults, no
    more, no fewer), plus ``initial_lr`` when a schedule set one: numbers as
    0-d real arrays, pairs (``betas``) as 1-D ones, flags as booleans. The
    values then pass the very checks of the constructor
    (``Optimizer._check_group``), so a NaN, infinite or negative ``lr``, a
    ``betas[1]`` of 1, a momentum above 1 or a flag saved as a number are
    refused as ``Adam(lr=nan)`` is.
``state.<i>.step``
    The steps parameter ``i`` has taken: a 0-d integer array >= 0 (a
    fraction or a negative count is no count; from -1, the next update would
    be step 0, where Adam's bias correction ``1 - beta^0`` is 0 and divides).
``state.<i>.<name>``
    The parameter's state arrays, of its shape, real numbers (cast to its
    dtype; values that overflow it are refused): the names the optimizer
    keeps (``Optimizer._state_values``), those it needs at every step
    (``Optimizer._required_state``) present. NaN is never accepted: a NaN
    moment makes the next update NaN, and a parameter stepped with it is NaN
    too, which ``save`` refuses. First moments and momentum buffers
    (:data:`FINITE`) are finite: once infinite, they make the parameter
    infinite or NaN in the same step. Second moments (:data:`SQUARES`:
    Adam's ``exp_avg_sq`` and ``max_exp_avg_sq``, RMSprop's ``square_avg``,
    Adagrad's ``sum``) are averages or sums of squares, so never negative (a
    square root of one is NaN); they may be +inf, which a healthy run reaches
    when a finite gradient's square overflows (above ~1.8e19 in float32): the
    update divides by it and is 0, the parameter stays finite, and the file
    ``save`` wrote must load again.

Parameters without state (frozen, or never stepped) have no ``state.<i>``
entries. Any entry not listed above (a misspelt name, a parameter or group
index beyond the bound ones) is refused rather than ignored.

The schedules' ``load_state_dict`` reads their own state (epoch, counters,
base rates) with the same :func:`check_saved_by`, :func:`read_entry`,
:func:`read_count` and :func:`read_number`.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_values_like, is_real_dtype

__all__ = ["FINITE", "SQUARES", "read_state_dict", "check_saved_by", "read_entry", "read_count",
           "read_number"]

#: State values that may be any finite real (first moments, momentum buffers).
FINITE = "finite"
#: State values that are sums or averages of squares: >= 0, +inf allowed.
SQUARES = "squares"
#: Group keys beyond the hyperparameters: set by a learning-rate schedule.
GROUP_EXTRAS = ("initial_lr",)


def read_state_dict(opt, state_dict, who: str) -> tuple[list[dict], dict]:
    """``(param_groups, state)`` that ``opt`` (bound) restores from
    ``state_dict``, or a ``TypeError``/``ValueError`` naming the entry
    (see the module docstring). Nothing of ``opt`` is changed; the state
    arrays may be the caller's own (copy them before keeping them)."""
    check_saved_by(state_dict, "optimizer", opt._who, who)
    if not opt.param_groups:
        raise RuntimeError(f"{who} needs bound parameters: call bind(params) first")
    used = {"optimizer"}

    def entry(key):
        used.add(key)
        return read_entry(state_dict, key, who)

    n_groups = read_count(entry("n_groups"), who, "n_groups")
    if n_groups != len(opt.param_groups):
        raise ValueError(f"{who} expected {len(opt.param_groups)} parameter group(s), "
                         f"received {n_groups}")
    groups, index = [], 0
    for g, group in enumerate(opt.param_groups):
        _check_indices(entry(f"param_groups.{g}.params"), index, len(group["params"]),
                       who, g)
        index += len(group["params"])
        prefix = f"param_groups.{g}."
        saved = [k[len(prefix):] for k in state_dict
                 if isinstance(k, str) and k.startswith(prefix)]
        hyper = {k: _hyperparameter(entry(prefix + k), who, prefix + k)
                 for k in opt.defaults}
        hyper.update({k: _hyperparameter(entry(prefix + k), who, prefix + k)
                      for k in GROUP_EXTRAS if k in saved})
        try:
            hyper = opt._check_group(hyper)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{who}: the hyperparameters of group {g} ({prefix}*) are "
                            f"not ones the optimizer takes: {exc}") from None
        groups.append({**group, **hyper})  # a schedule's initial_lr the file lacks stays
    state = {}
    for i, p in enumerate(opt.params):
        prefix = f"state.{i}."
        saved = [k[len(prefix):] for k in state_dict
                 if isinstance(k, str) and k.startswith(prefix)]
        if not saved:
            continue
        restored = {"step": read_count(entry(prefix + "step"), who, prefix + "step")}
        for key in opt._required_state:
            if key not in saved:
                raise ValueError(f"{who} expected the entry {prefix + key!r} ({opt._who} "
                                 f"keeps {', '.join(opt._required_state)} for every "
                                 f"parameter it has stepped), which the state lacks")
        kinds = opt._state_values
        for key in saved:
            kind = FINITE if kinds is None else kinds.get(key)
            if key == "step" or kind is None:
                continue  # an unknown name: refused below with the other leftovers
            squares = kind == SQUARES
            what = (f"{prefix + key!r} ({'a second moment' if squares else 'a state array'}"
                    f" of parameter {i}, {p.name!r})")
            restored[key] = as_values_like(entry(prefix + key), p.value, who, what,
                                           nonnegative=squares, allow_posinf=squares)
        state[p] = restored
    unknown = sorted(set(state_dict) - used, key=str)
    if unknown:
        raise ValueError(f"{who} received entries that its state of {len(opt.params)} "
                         f"parameter(s) in {len(opt.param_groups)} group(s) never holds: "
                         f"{', '.join(map(repr, unknown[:8]))}"[:400])
    return groups, state


def check_saved_by(state_dict, key: str, name: str, who: str) -> None:
    """Refuse anything but a dict whose entry ``key`` names the class ``name``
    (an optimizer's ``"optimizer"``, a schedule's ``"scheduler"``)."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"{who} expected a dict of arrays (as state_dict returns), "
                        f"received {type(state_dict).__name__}")
    saved = str(np.asarray(state_dict.get(key, "?")))
    if saved != name:
        # (no article: "a Adam", "a SGD" read wrong, and the class names vary)
        raise ValueError(f"{who} expected a state saved by {name}, received one saved "
                         f"by {saved!r}")


def read_entry(state_dict: dict, key: str, who: str):
    """``state_dict[key]``, or a ``ValueError`` saying the state lacks it."""
    if key not in state_dict:
        raise ValueError(f"{who} expected the entry {key!r}, which the state lacks")
    return state_dict[key]


def read_count(value, who: str, key: str) -> int:
    """A saved count (``n_groups``, a step, a scheduler's epoch): a 0-d
    integer array >= 0 (a fraction or a negative count is no count)."""
    value = np.asarray(value)
    if value.ndim or not np.issubdtype(value.dtype, np.integer):
        raise TypeError(f"{who} expected {key!r} as an integer (a 0-d integer array), "
                        f"received dtype {value.dtype} of shape {value.shape}")
    if value < 0:
        raise ValueError(f"{who} expected {key!r} >= 0, received {value}")
    return int(value)


def read_number(value, who: str, key: str) -> float:
    """A saved real number (0-d integer or floating array), its range the
    caller's to check."""
    value = np.asarray(value)
    if value.ndim or not is_real_dtype(value.dtype):
        raise TypeError(f"{who} expected {key!r} as a number (a 0-d real array), received "
                        f"dtype {value.dtype} of shape {value.shape}")
    return float(value)


def _check_indices(value, start: int, n: int, who: str, g: int) -> None:
    """``param_groups.<g>.params``: the indices ``start .. start + n - 1``."""
    value = np.asarray(value)
    if value.ndim == 1 and len(value) != n:
        raise ValueError(f"{who} expected {n} parameters in group {g}, received "
                         f"{len(value)}")
    if value.ndim != 1 or not np.issubdtype(value.dtype, np.integer) \
            or not np.array_equal(value, np.arange(start, start + n)):
        raise ValueError(f"{who} expected 'param_groups.{g}.params' as the indices "
                         f"{start}..{start + n - 1} ({n} parameters), received "
                         f"{value!r}"[:300])


def _hyperparameter(value, who: str, key: str):
    """A saved hyperparameter as the constructor receives it: a flag (0-d
    bool), a number (0-d integer or floating) or a tuple of numbers (1-D);
    its value is :meth:`Optimizer._check_group`'s to check."""
    value = np.asarray(value)
    if value.ndim == 0 and value.dtype == bool:
        return bool(value)
    if is_real_dtype(value.dtype) and value.ndim <= 1:
        return value.item() if value.ndim == 0 else tuple(v.item() for v in value)
    raise TypeError(f"{who} expected {key!r} as a number, a pair of numbers or a flag, "
                    f"received dtype {value.dtype} of shape {value.shape}")
