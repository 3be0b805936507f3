"""Metrics: numbers to watch during training, never differentiated.

A metric is a callable ``metric(pred, target) -> float``, the *mean* over the
samples of the batch, with a ``name`` under which :class:`~tinynet.History`
records it (``"accuracy"``, and ``"val_accuracy"`` for the validation data,
as in Keras). Because every metric is a per-sample mean, the mean over an
epoch is the batch values weighted by batch size -- which is what the
training loop computes.

================  ===========================================================
name              value
================  ===========================================================
accuracy          share of samples whose predicted class is the true class
top_k_accuracy    share whose true class is among the ``k`` highest scores
mse               mean squared error, :math:`\\frac{1}{n m}\\sum (p - t)^2`
mae               mean absolute error, :math:`\\frac{1}{n m}\\sum |p - t|`
================  ===========================================================

Predictions are what the model outputs: logits or probabilities (the arg-max
is the same). ``target`` is integer labels of shape ``(n,)`` or probability
(one-hot) targets of shape ``(n, classes)``. A model with a single output
unit is a binary classifier: its output is a *logit* (tinynet's losses take
logits), so the predicted class is ``pred > 0``, unless it is a probability:
a model whose output layer ends in a sigmoid gives its ``"accuracy"`` a
threshold of 0.5 (:func:`for_output`), and ``Accuracy(threshold=0.5)`` does
so by hand.

>>> import numpy as np
>>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
0.5
"""

from __future__ import annotations

import re

import numpy as np

from .checks import (as_array, as_float_array, as_float_targets, check_labels,
                     check_positive_int, lookup)
from .layers._checks import check_real
from .output_losses import output_activation

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "MeanSquaredError", "MeanAbsoluteError",
           "accuracy", "top_k_accuracy", "mse", "mae", "get", "for_output", "to_config",
           "METRICS"]


def _as_pred(pred, who: str) -> np.ndarray:
    # No finiteness check: a diverged model must reach TerminateOnNaN, not fail here.
    return as_float_array(pred, who, "predictions", min_ndim=1)


def _class_targets(target, pred: np.ndarray, who: str) -> np.ndarray:
    """Integer labels from ``target``: labels as given (booleans as 0 and 1,
    as the binary cross-entropy takes them), or the arg-max of probability
    targets shaped like ``pred``."""
    target = as_array(target, who, "targets")
    if target.dtype == bool:
        target = target.astype(np.int64)
    if target.ndim == 2 and target.shape == pred.shape and target.shape[1] > 1:
        return target.argmax(axis=1)
    n_classes = pred.shape[1] if pred.ndim == 2 and pred.shape[1] > 1 else 2
    if target.ndim == 2 and target.shape[1] == 1:
        target = target[:, 0]
    return check_labels(target, n_classes, pred.shape[0], who)


class Metric:
    """Base class: ``metric(pred, target) -> float`` (mean over the batch)."""

    name = "metric"

    def __call__(self, pred, target) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Accuracy(Metric):
    """Share of correctly classified samples.

    Parameters
    ----------
    threshold : float, optional
        For single-output (binary) models: the class is ``pred > threshold``.
        0 suits logits; use 0.5 for probabilities. Unset (None), it is 0,
        and a model compiled with this metric on a sigmoid output sets 0.5
        (:func:`for_output`); a threshold given here is kept.

    Notes
    -----
    ``pred`` of shape ``(n, classes)``: the class is ``argmax(pred)``;
    ``pred`` of shape ``(n,)`` or ``(n, 1)``: binary, as above. ``target``:
    integer (or boolean) labels ``(n,)`` or probability targets ``(n, classes)``.
    """

    name = "accuracy"

    def __init__(self, threshold: float | None = None):
        # a NaN threshold would call every sample class 0 without a word
        self.threshold = None if threshold is None else check_real(
            threshold, "Accuracy", "threshold", low_open=True, high_open=True)

    def __call__(self, pred, target) -> float:
        pred = _as_pred(pred, "accuracy")
        if pred.ndim == 2 and pred.shape[1] > 1:
            predicted = pred.argmax(axis=1)
        elif pred.ndim == 1 or pred.shape[1:] == (1,):
            threshold = 0.0 if self.threshold is None else self.threshold
            predicted = (pred.reshape(-1) > threshold).astype(np.int64)
        else:
            raise ValueError(f"accuracy expected predictions of shape (n, classes) or (n,), "
                             f"received {pred.shape}")
        labels = _class_targets(target, pred, "accuracy")
        return float(np.mean(predicted == labels)) if labels.size else 0.0

    def get_config(self) -> dict:
        return {"threshold": self.threshold}


class TopKAccuracy(Metric):
    """Share of samples whose true class is among the ``k`` highest scores.

    Ties are broken towards the lower class index (a stable sort), so a
    sample counts only if its class is among the first ``k`` of that order.
    A NaN score ranks above every number and ties with another NaN (as
    ``np.argmax`` and ``torch.topk`` order them), so predictions of a
    diverged model are not counted as hits, and ``k=1`` agrees with
    :class:`Accuracy`.
    """

    def __init__(self, k: int = 5):
        self.k = check_positive_int(k, "TopKAccuracy", "k")
        self.name = "top_k_accuracy" if self.k == 5 else f"top_{self.k}_accuracy"

    def __call__(self, pred, target) -> float:
        pred = _as_pred(pred, self.name)
        if pred.ndim != 2:
            raise ValueError(f"{self.name} expected predictions of shape (n, classes), "
                             f"received {pred.shape}")
        labels = _class_targets(target, pred, self.name)
        if not labels.size:
            return 0.0
        # Rank of the true class = number of classes scored strictly higher,
        # plus equal scores at a lower index (stable order); NaN is highest.
        true_score = pred[np.arange(len(labels)), labels][:, None]
        nan, true_nan = np.isnan(pred), np.isnan(true_score)
        higher = ((pred > true_score) | (nan & ~true_nan)).sum(axis=1)
        ties_before = (((pred == true_score) | (nan & true_nan))
                       & (np.arange(pred.shape[1])[None, :] < labels[:, None])).sum(axis=1)
        return float(np.mean(higher + ties_before < self.k))

    def get_config(self) -> dict:
        return {"k": self.k}


class _Regression(Metric):
    """Mean of an element-wise function of ``pred - target``; targets as the
    element-wise losses take them (:func:`~tinynet.checks.as_float_targets`:
    integer targets, ``(n,)`` targets for an ``(n, 1)`` output)."""

    def __call__(self, pred, target) -> float:
        pred = _as_pred(pred, self.name)
        target = as_float_targets(target, pred, self.name)
        return float(np.mean(self._elementwise(pred - target))) if pred.size else 0.0


class MeanSquaredError(_Regression):
    """Mean of :math:`(p - t)^2` over all elements."""

    name = "mse"

    @staticmethod
    def _elementwise(diff):
        return diff * diff


class MeanAbsoluteError(_Regression):
    """Mean of :math:`|p - t|` over all elements."""

    name = "mae"

    @staticmethod
    def _elementwise(diff):
        return np.abs(diff)


def accuracy(pred, target) -> float:
    """:class:`Accuracy` with the default threshold (0: logits)."""
    return Accuracy()(pred, target)


def top_k_accuracy(pred, target, k: int = 5) -> float:
    """:class:`TopKAccuracy` as a function."""
    return TopKAccuracy(k)(pred, target)


def mse(pred, target) -> float:
    return MeanSquaredError()(pred, target)


def mae(pred, target) -> float:
    return MeanAbsoluteError()(pred, target)


METRICS: dict[str, type] = {
    "accuracy": Accuracy, "acc": Accuracy,
    "top_k_accuracy": TopKAccuracy, "top_k": TopKAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}


def get(spec) -> Metric:
    """A metric from a name (``"accuracy"``, ``"top_3_accuracy"``, ``"mse"``...),
    a :class:`Metric` instance, a :func:`to_config` dict, or a function
    ``f(pred, target) -> float`` (named after the function)."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, dict):
        cls = lookup({c.__name__.lower(): c for c in METRICS.values()},
                     str(spec.get("class", "")), "metric class")
        return cls(**spec.get("config", {}))
    if isinstance(spec, str):
        # "top_3_accuracy" / "top3_accuracy": top-k with k in the name
        match = re.fullmatch(r"top_?(\d+)_accuracy", spec.lower().replace("-", "_"))
        if match:
            return TopKAccuracy(int(match.group(1)))
        return lookup(METRICS, spec, "metric")()
    if callable(spec):
        return _FunctionMetric(spec)
    raise TypeError(f"expected a metric name, Metric or function, received "
                    f"{type(spec).__name__}")


class _FunctionMetric(Metric):
    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", "metric")

    def __call__(self, pred, target) -> float:
        return float(self.fn(pred, target))


def for_output(metric: Metric, layer) -> Metric:
    """The metric to report on ``layer``'s output: an :class:`Accuracy` without a
    threshold becomes ``Accuracy(threshold=0.5)`` when ``layer`` ends in a sigmoid
    (its output is a probability, see
    :func:`tinynet.output_losses.output_activation`); any other metric as it is."""
    if (type(metric) is Accuracy and metric.threshold is None
            and output_activation(layer) == "sigmoid"):
        return Accuracy(threshold=0.5)
    return metric


def to_config(metric: Metric):
    """What a saved model stores for ``metric``: its name, or a
    ``{"class", "config"}`` dict when it has non-default settings."""
    if isinstance(metric, _FunctionMetric):
        raise ValueError(f"metric function {metric.name!r} cannot be saved; use a "
                         f"built-in metric or compile again after loading")
    if type(get(metric.name)) is type(metric) and get(metric.name).get_config() == \
            metric.get_config():
        return metric.name
    return {"class": type(metric).__name__, "config": metric.get_config()}
