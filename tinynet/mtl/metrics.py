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

#: Metric names for which lower is better besides a name ending in ``loss``
#: and the built-in metrics' (:data:`tinynet.metrics.LOWER_IS_BETTER`).
LOWER_IS_BETTER = metrics_mod.LOWER_IS_BETTER


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
        last part (a name ending in ``loss``, ``mse``, ``mae``, the loss
        names ... are lower-is-better, :data:`LOWER_IS_BETTER`; the built-in
        metrics' names have their direction; case does not matter), as the
        callbacks' ``mode="auto"`` reads it
        (:func:`tinynet.metrics.higher_is_better`). Any other name (LibMTL's
        ``"depth/abs_err"``, a metric of ``model`` that does not say its
        direction) is refused (``ValueError``), not guessed: say its
        direction in ``higher_is_better``. A
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
    higher_is_better = {key: metrics_mod.check_direction(higher,
                                                         f"delta_m's higher_is_better[{key!r}]")
                        for key, higher in higher_is_better.items()}
    nones = sorted(str(k) for k, higher in higher_is_better.items() if higher is None)
    if nones:
        raise TypeError(f"delta_m expected higher_is_better[...] as True or False, received "
                        f"None for {nones}")
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
        if key in higher_is_better:
            higher = higher_is_better[key]
        else:
            higher = metrics_mod.direction(key, logged, "delta_m",
                                           f"pass higher_is_better={{{key!r}: bool}}")
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
