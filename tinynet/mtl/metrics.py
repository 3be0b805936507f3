r"""The multi-task metric :math:`\Delta_m` (Maninis et al. 2019; LibMTL's ``Δp``).

For a multi-task model with metric values :math:`M_t` and single-task
baselines :math:`M_{\text{single},t}`:

.. math::
    \Delta_m = \frac{1}{T}\sum_{t=1}^{T} (-1)^{l_t}\,
        \frac{M_t - M_{\text{single},t}}{M_{\text{single},t}} \times 100\,\%

with :math:`l_t = 1` when lower is better (a loss, an error) and 0 when
higher is better (accuracy), so a positive :math:`\Delta_m` is a gain. The
code divides by :math:`|M_{\text{single},t}|`: the same for the usual
positive baselines, and for a negative one (a log-likelihood, say) it keeps
the sign a gain (from -1.0 to -0.9 with higher better: +10 %, where the
formula as written, and LibMTL, give -10 %).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import losses as losses_mod
from .. import metrics as metrics_mod

__all__ = ["delta_m", "relative_gains"]

#: Metric names for which lower is better (anything else: higher is better):
#: ``loss``, ``rmse``, ``error``, ``err``, every name of :mod:`tinynet.losses`
#: (``cross_entropy``, ``huber``, ``mean_squared_error``...) and every name of
#: the metrics of :mod:`tinynet.metrics` whose ``higher_is_better`` is False
#: (``mse``, ``mae`` and their aliases; ``f1``, ``auc``, ``r2``... are higher-is-better).
LOWER_IS_BETTER = ({"loss", "rmse", "error", "err"} | set(losses_mod.LOSSES)
                   | {name for name, cls in metrics_mod.METRICS.items()
                      if not cls.higher_is_better})


def _lower_is_better(name: str) -> bool:
    return name.split("/")[-1].lower() in LOWER_IS_BETTER


def _direction(key: str, name: str, metric) -> bool:
    """Whether higher is better for ``key`` (whose training key is ``name``):
    the direction of the model's metric ``metric`` logged so (None: no such
    metric), unless it says none (``higher_is_better`` None: a metric
    function, a ``Metric`` subclass of the user's that does not set it);
    then the name's when it is known (:data:`LOWER_IS_BETTER`, or a built-in
    metric's name: a function named ``mse``), else -- rather than guess the
    sign of the gain -- a ``ValueError`` asking for it. A key of no metric of
    the model: the name's, and any other name is higher-is-better."""
    own = None if metric is None else metrics_mod.declared_direction(metric)
    if own is not None:
        return own
    if _lower_is_better(name):
        return False
    known = metrics_mod.higher_is_better(name)
    if known is not None:
        return known
    if metric is not None:
        raise ValueError(f"delta_m cannot tell whether higher or lower is better for {key!r}: "
                         f"the model's metric {metric.name!r} does not say (a metric function "
                         f"or Metric subclass of your own); pass higher_is_better="
                         f"{{{key!r}: False}} (or True), or set its higher_is_better")
    return True


def _without_val(key: str) -> str:
    """The training log key of a validation one: ``"val_mae"`` -> ``"mae"``
    (a Sequential's), ``"val_left/mae"`` -> ``"left/mae"`` (a multi-task
    model's); any other key as it is."""
    return key[len("val_"):] if key.startswith("val_") else key


def _check_number(value, what: str) -> None:
    """``value`` must be a real number (a NumPy scalar or 0-d array too), not a bool."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"delta_m expected {what} as a real number, received {value!r}"[:300])


def _logged_metrics(model) -> dict:
    """``{log key: Metric}`` of ``model`` (None: none), a compiled model."""
    if model is None:
        return {}
    if not isinstance(getattr(model, "metrics", None), (dict, list, tuple)):
        raise TypeError(f"delta_m expected model as a compiled tinynet model (its metric "
                        f"objects say their directions), received {type(model).__name__}")
    return metrics_mod.logged_metrics(model)


def relative_gains(metrics: dict, baselines: dict, higher_is_better=None, *,
                   model=None) -> dict:
    """``{key: signed relative gain in %}`` for every key of ``baselines``.

    Parameters
    ----------
    metrics, baselines : dict {name: float}
        Names such as ``"left/accuracy"``. The direction of each is, first,
        ``higher_is_better`` ({name: bool}, names among the baselines) when
        it names it; else, given ``model``, the direction its compiled metric
        of that log key says (``Metric.higher_is_better``: one named by the
        user too, ``"left/f1_err"``, as the callbacks' ``mode="auto"`` reads
        it, :func:`tinynet.metrics.logged_metrics`); else read from the name's
        last part (``loss``, ``mse``, ``mae``, the loss names ... are
        lower-is-better, :data:`LOWER_IS_BETTER`; case does not matter; any
        other name higher-is-better) -- except that a metric of ``model``
        that does not say its direction (a metric function, a ``Metric``
        subclass without ``higher_is_better``) and whose name is none of
        tinynet's is refused (``ValueError``): say its direction in
        ``higher_is_better``. A
        validation key (``"val_loss"``, ``"val_mae"``, ``"val_left/f1_err"``)
        has the direction of its training key (the key without ``"val_"``),
        unless the model logs a metric under the key itself.
    model : compiled tinynet model, optional
        A ``tn.mtl.Model`` (keys ``"<task>/<metric>"``) or a
        ``tn.Sequential`` (keys ``"<metric>"``).
    """
    logged = _logged_metrics(model)
    for what, given in (("metrics", metrics), ("baselines", baselines)):
        if not isinstance(given, dict):
            raise TypeError(f"delta_m expected {what} as a dict {{name: value}}, received "
                            f"{type(given).__name__}")
    names = [key for key in baselines if not isinstance(key, str)]
    if names:
        raise TypeError(f"delta_m expected baseline names as strings (\"<task>/<metric>\"), "
                        f"received {names!r}"[:300])
    if higher_is_better is None:
        higher_is_better = {}
    if not isinstance(higher_is_better, dict):
        raise TypeError(f"delta_m expected higher_is_better as a dict {{name: bool}}, "
                        f"received {type(higher_is_better).__name__}")
    for key, higher in higher_is_better.items():
        if not isinstance(higher, (bool, np.bool_)):
            raise TypeError(f"delta_m expected higher_is_better[{key!r}] as a bool, received "
                            f"{higher!r}")
    gains = {}
    unknown = sorted(str(k) for k in higher_is_better if k not in baselines)
    if unknown:  # a misspelt name would leave its metric's direction to the guess
        raise ValueError(f"delta_m received higher_is_better for {unknown}, which are not "
                         f"among the baselines {sorted(baselines)}")
    for key, base in baselines.items():
        if key not in metrics:
            raise ValueError(f"delta_m expected metric {key!r} (in the baselines), received "
                             f"only {sorted(metrics)}")
        _check_number(metrics[key], f"metric {key!r}")
        _check_number(base, f"the baseline {key!r}")
        if base == 0 or not np.isfinite(base):
            raise ValueError(f"delta_m expected a finite, non-zero baseline for {key!r}, "
                             f"received {base}")
        if not np.isfinite(metrics[key]):  # (a diverged run) its gain, and Delta_m, would be NaN
            raise ValueError(f"delta_m expected a finite metric {key!r}, received "
                             f"{metrics[key]}")
        # a validation key ("val_loss", "val_left/f1_err") has its metric's direction
        name = key if key in logged else _without_val(key)
        if key in higher_is_better:
            higher = bool(higher_is_better[key])
        else:
            higher = _direction(key, name, logged.get(name))
        sign = 1.0 if higher else -1.0
        gains[key] = sign * (float(metrics[key]) - base) / abs(base) * 100.0
    return gains


def delta_m(metrics: dict, baselines: dict, higher_is_better=None, *, model=None) -> float:
    """:math:`\\Delta_m` in percent: the mean over tasks of the signed relative gains.

    Keys are ``"<task>/<metric>"``; a task with several metrics contributes
    the mean of its gains (as LibMTL), so each task counts once. Each
    metric's direction: ``higher_is_better[key]``, else that of ``model``'s
    compiled metric logged as ``key``, else the name's (see
    :func:`relative_gains`).

    >>> round(delta_m({"a/accuracy": 0.9, "b/mse": 0.9}, {"a/accuracy": 0.8, "b/mse": 1.0}), 4)
    11.25
    """
    if not baselines:
        raise ValueError("delta_m expected at least one baseline metric")
    per_task: dict[str, list] = {}
    for key, gain in relative_gains(metrics, baselines, higher_is_better,
                                    model=model).items():
        per_task.setdefault(key.rsplit("/", 1)[0] if "/" in key else key, []).append(gain)
    return float(np.mean([np.mean(g) for g in per_task.values()]))
