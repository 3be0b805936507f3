"""Metrics: numbers to watch during training, never differentiated.

A metric is a callable ``metric(pred, target) -> float`` with a ``name``
under which :class:`~tinynet.History` records it (``"accuracy"``, and
``"val_accuracy"`` for the validation data, as in Keras), and a direction,
``higher_is_better``, which :func:`higher_is_better` reads for callbacks'
``mode="auto"`` and :func:`tinynet.mtl.delta_m`.

================  ==========  =================================================
name              better      value
================  ==========  =================================================
accuracy          higher      share of samples whose predicted class is the
                              true class
top_k_accuracy    higher      share whose true class is among the ``k``
                              highest scores (k=5; ``top_3_accuracy``,
                              ``top5_accuracy``... log as ``top_<k>_accuracy``)
precision         higher      :math:`tp / (tp + fp)` (:class:`Precision`)
recall            higher      :math:`tp / (tp + fn)` (:class:`Recall`)
f1                higher      :math:`2 tp / (2 tp + fp + fn)` (:class:`F1Score`)
auc               higher      area under the ROC curve (:class:`AUC`)
r2                higher      coefficient of determination (:class:`R2Score`)
mse               lower       mean squared error, :math:`\\frac{1}{n m}\\sum (p - t)^2`
mae               lower       mean absolute error, :math:`\\frac{1}{n m}\\sum |p - t|`
================  ==========  =================================================

The classification metrics equal scikit-learn's (``accuracy_score``,
``precision_score``, ``recall_score``, ``f1_score``, ``roc_auc_score``) and
``r2`` its ``r2_score``, on the same data, to the last digit (the tests
compare them).

Over batches (``fit``, ``evaluate``)
------------------------------------
A metric is computed from *sufficient statistics* that add up over batches:
:meth:`Metric.batch_state` gives a batch's, :meth:`Metric.merge` combines
two, :meth:`Metric.result` gives the number, and ``metric(pred, target)`` is
``result(batch_state(pred, target))``. An epoch's value (and
:meth:`tinynet.Sequential.evaluate`'s) is the result of the merged states of
its batches (:class:`MetricStates`), so it is the metric of the epoch's
samples taken all at once, never an average of batch scores: sums and counts
for the means (``accuracy``, ``mse``...), the confusion matrix for
precision, recall and F1, and the scores and targets themselves for ``auc``
and ``r2`` (memory of the epoch's predictions). ``fit`` shows after each
batch the epoch's value so far; for ``auc`` and ``r2`` that is
:meth:`Metric.running_result`, kept up to date batch by batch (no sort or pass over
the epoch's samples in Python: ``r2``'s in constant time, ``auc``'s by
binary search and one copy of its arrays) and equal to the exact value up
to rounding, and the epoch's
last batch (the value logged for the epoch) and ``evaluate`` give the exact
one (:meth:`Metric.result`). Values are computed only when read
(:class:`MetricStates`): when no callback reads the batch logs' metrics
(``verbose=0``, or one line per epoch) in ``Sequential.fit``, and in
``evaluate``, the batches' scores are sorted together once, at the end (the
multi-task models' ``fit`` still computes its running values after every
batch). The batches and their order change the precision, recall, F1, AUC
and accuracies not at all, the ``r2`` and the error means by the rounding of
sums taken in another order only. A metric given as a function
``f(pred, target)`` is taken for a batch mean: the epoch's value weights the
batches' by their sizes.

Predictions and targets
-----------------------
Predictions are what the model outputs: logits or probabilities (the
arg-max is the same). ``target`` is integer labels of shape ``(n,)`` or
probability (one-hot) targets of shape ``(n, classes)``. A model with a
single output unit is a binary classifier: its output is a *logit*
(tinynet's losses take logits), so the predicted class is ``pred > 0``,
unless it is a probability: a model whose output layer ends in a sigmoid
gives its ``accuracy``, ``precision``, ``recall`` and ``f1`` a threshold of
0.5 (:func:`for_output`), and ``Accuracy(threshold=0.5)`` does so by hand.
A sample whose prediction holds a NaN (a diverged model's) is never a hit of
``accuracy`` or a top-k accuracy (:func:`_class_hits`; infinite scores are
ranked as numbers), and predicts no class in ``precision``, ``recall`` and
``f1`` (a false negative of its true class, a false positive of none; see
:class:`Precision`). A multi-class ``auc`` ranks probabilities (as
scikit-learn): compiled on a model whose output is logits it takes their
softmax (``from_logits``, set by :func:`for_output`); called directly, it
takes the scores as given.

No samples: every metric of an empty batch raises ``ValueError`` ("expected
at least one sample, received 0"), as scikit-learn's metrics do (it used to
be 0.0, a value that looked like a real score).

>>> import numpy as np
>>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0]))
0.5
>>> f1(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 1, 1]))
0.6666666666666666
"""

from __future__ import annotations

import functools
import numbers
import re
from typing import NamedTuple

import numpy as np

from . import _userwarn
from .checks import (as_array, as_float_array, as_float_targets, check_bool, check_labels,
                     check_positive_int, lookup)
from .layers._checks import check_real
from .losses import LOSSES, softmax
from .output_losses import NormalizedOutputCrossEntropy, output_activation, row_probabilities

__all__ = ["Metric", "UndefinedMetricError", "Accuracy", "TopKAccuracy", "Precision", "Recall", "F1Score", "AUC",
           "R2Score", "MeanSquaredError", "MeanAbsoluteError", "MetricStates",
           "accuracy", "top_k_accuracy", "precision", "recall", "f1", "auc", "r2", "mse",
           "mae", "get", "for_output", "to_config", "from_saved", "check_names",
           "validation_clashes",
           "higher_is_better", "direction", "declared_direction", "check_direction",
           "logged_metrics", "METRICS", "LOWER_IS_BETTER"]


def _as_pred(pred, who: str) -> np.ndarray:
    # No finiteness check: a diverged model must reach TerminateOnNaN, not fail here.
    return as_float_array(pred, who, "predictions", min_ndim=1)


def _n_samples(pred) -> int:
    return int(np.shape(pred)[0]) if np.ndim(pred) else 1


def _check_samples(n: int, who: str) -> None:
    """No metric of nothing (scikit-learn raises too): 0.0 looked like a score."""
    if n == 0:
        raise ValueError(f"{who} expected at least one sample, received 0")


def _class_targets(target, pred: np.ndarray, who: str) -> np.ndarray:
    """Integer labels from ``target``: labels as given (booleans as 0 and 1,
    as the binary cross-entropy takes them), or the arg-max of probability
    targets shaped like ``pred``."""
    target = as_array(target, who, "targets")
    if target.dtype == bool:
        target = target.astype(np.int64)
    if target.ndim == 2 and target.shape == pred.shape and target.shape[1] > 1:
        _check_class_rows(target, who)
        return target.argmax(axis=1)
    n_classes = pred.shape[1] if pred.ndim == 2 and pred.shape[1] > 1 else 2
    if target.ndim == 2 and target.shape[1] == 1:
        target = target[:, 0]
    return check_labels(target, n_classes, pred.shape[0], who).astype(np.int64)


def _check_class_rows(target: np.ndarray, who: str) -> None:
    """``target`` rows must be class probabilities (one-hot rows among them):
    no negative entry, none summing to more than 1 (within 1e-3; a row of
    zeros, a sample padded out with a weight of 0, stays allowed). Rows of
    several 0/1 labels (multi-label targets, as a binary cross-entropy on
    several outputs takes) have no one class to take the arg-max of:
    scikit-learn scores them by subset accuracy, Keras by the mean over labels
    (``binary_accuracy``); argmaxed, a perfect predictor scored 0.76. Refused,
    naming the first such row. Two reductions when the rows are fine."""
    if target.size == 0 or (target.sum(axis=1).max() <= 1 + 1e-3 and target.min() >= 0):
        return  # (no sample: the metric says so)
    sums = target.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero((sums > 1 + 1e-3) | (target.min(axis=1) < 0))
    if not bad.size:  # (NaN rows: neither; the arg-max takes them as before)
        return
    i = int(bad[0])
    received = f"received row {i} {target[i].tolist()}"
    if target[i].min() < 0:
        raise ValueError(f"{who} expected class labels, or rows of class probabilities "
                         f"(one-hot), {received}, with a negative entry")
    raise ValueError(f"{who} expected class labels, or rows of class probabilities "
                     f"(one-hot) summing to 1, {received} summing to {sums[i]:g}: "
                     f"multi-label targets (several labels per sample) have no one class; "
                     f"score each label as a task of its own (tinynet.mtl), or pass a "
                     f"metric function of your own")


def _is_binary_output(pred: np.ndarray) -> bool:
    """One output unit, ``(n,)`` or ``(n, 1)``: a binary classifier's (the
    metrics' rule, and ``Sequential.predict_proba``'s and ``predict_classes``')."""
    return pred.ndim == 1 or pred.ndim == 2 and pred.shape[1] == 1


#: The class :func:`_predicted_labels` gives a sample it cannot classify (a NaN
#: score): never a label, so never a hit, and the confusion metrics' "no class".
NO_CLASS = -1


def _predicted_labels(pred: np.ndarray, threshold=None) -> np.ndarray:
    """The class of each sample: the arg-max of its scores (the last axis of
    ``pred``), or ``pred > threshold`` (0 when None) for one output unit
    (``pred`` of shape ``(n,)`` or ``(n, 1)``), and :data:`NO_CLASS` (-1)
    for a sample whose scores hold a NaN (a diverged model's): they have no
    order, and ``np.argmax`` read a row of NaN as class 0 (``NaN > threshold``
    is False: class 0 too), so a diverged model was right on every sample of
    class 0. The rule of :class:`Accuracy`, the confusion metrics and
    :meth:`tinynet.Sequential.predict_classes`; infinite scores are scores
    like any other (``-inf`` masks a class out)."""
    if not _is_binary_output(pred):
        return _argmax_labels(pred)
    flat = pred.reshape(-1)
    labels = (flat > (0.0 if threshold is None else threshold)).astype(np.int64)
    labels[np.isnan(flat)] = NO_CLASS
    return labels


def _argmax_labels(scores: np.ndarray) -> np.ndarray:
    """The arg-max of ``scores`` over the last axis, :data:`NO_CLASS` where
    the scores hold a NaN (:func:`_predicted_labels`)."""
    labels = scores.argmax(axis=-1)
    # np.argmax takes a row's first NaN for its largest score: a row holds a NaN
    # iff its arg-max is one (a look a row, not a pass over them all; by flat
    # index into the raveled scores, the cheapest such look)
    width = scores.shape[-1]
    at = labels.ravel() + np.arange(0, labels.size * width, width)
    labels[np.isnan(scores.ravel()[at]).reshape(labels.shape)] = NO_CLASS
    return labels


def _predicted_classes(pred, target, threshold, who: str):
    """``(predicted, labels, n_classes)``: :func:`_predicted_labels` of
    ``(n, classes)`` or ``(n,)`` / ``(n, 1)`` predictions (-1 for a sample
    holding a NaN), and the targets as integer labels."""
    pred = _as_pred(pred, who)
    if pred.ndim == 2 and pred.shape[1] > 1:
        n_classes = pred.shape[1]
    elif _is_binary_output(pred):
        n_classes = 2
    else:
        raise ValueError(f"{who} expected predictions of shape (n, classes) or (n,), "
                         f"received {pred.shape}")
    return _predicted_labels(pred, threshold), _class_targets(target, pred, who), n_classes


def _class_hits(scores, labels, k: int = 1, finite_only: bool = False) -> np.ndarray:
    """Whether each sample's label is among the ``k`` highest of its scores
    (the last axis of ``scores``; ``labels`` holds the other axes): the rule
    of :class:`Accuracy` (``k=1``), :class:`TopKAccuracy` and
    ``tinynet.meta``'s query accuracy. Unchecked: the callers check
    ``scores`` (a float array), ``labels`` (integers in ``[0, classes)``) and
    ``k`` (at most the number of classes) first.

    A label's rank is the number of classes scored higher plus the classes
    of an equal score at a lower index (ties go to the lower index: a stable
    sort, the order of ``np.argmax``, so ``k=1`` is the arg-max); a hit is a
    rank below ``k``. A sample whose scores hold a NaN is never a hit: they
    have no order, and a diverged model must not score (``np.argmax`` reads a
    NaN as the largest score, so a row of NaN was a hit whenever its label
    was class 0; :func:`_argmax_labels`). ``finite_only=True`` also counts
    a sample with an infinite score as a miss, for outputs that are infinite
    only by overflow (``tinynet.meta``'s logits); else ``-inf`` and ``inf``
    are scores like any other (``-inf`` masks a class out)."""
    if k == 1 and not finite_only:
        return _argmax_labels(scores) == labels
    if k == 1:
        hit = scores.argmax(axis=-1) == labels
    else:
        true_score = np.take_along_axis(scores, labels[..., None], axis=-1)
        before = np.arange(scores.shape[-1]) < labels[..., None]
        rank = (scores > true_score).sum(axis=-1) + ((scores == true_score) & before).sum(axis=-1)
        hit = rank < k
    return hit & ~(~np.isfinite(scores) if finite_only else np.isnan(scores)).any(axis=-1)


def _check_threshold(threshold, who: str):
    # a NaN threshold would call every sample class 0 without a word
    return None if threshold is None else check_real(threshold, who, "threshold",
                                                     low_open=True, high_open=True)


class UndefinedMetricError(ValueError):
    """A metric without a value on these samples (an AUC of one class): raised
    by a direct call; :class:`MetricStates` (an epoch in progress) gives NaN."""


class Metric:
    """Base class: ``metric(pred, target) -> float``.

    A subclass defines either ``__call__`` alone (a mean over the batch; its
    epoch value weights the batches by their sizes), or
    :meth:`batch_state`, :meth:`result` and, if its states are not
    NumPy arrays that add up (or lists that concatenate), :meth:`merge`.
    ``higher_is_better`` says its direction (callbacks' ``mode="auto"``,
    :func:`tinynet.mtl.delta_m`): True (higher is better: maximised), False
    (an error: minimised) or None, not said -- the default of a subclass of
    the user's that does not set it and of a metric function (unless the
    function has an attribute ``higher_is_better``, ``f.higher_is_better =
    False``), as Keras cannot tell the direction of a custom metric either.
    (1 and 0 count as True and False). A metric that does not say takes the
    direction of the built-in metric of its name, if any (a function
    ``mse``: minimised); otherwise the callbacks' ``mode="auto"`` and
    :func:`tinynet.mtl.delta_m` refuse it, asking for the direction, never
    guess it (:func:`higher_is_better`). tinynet's own metrics each say theirs.

    ``name`` (every built-in metric takes it, as Keras' metrics) replaces the
    class's name (``"f1"``...) in the logs, :class:`~tinynet.History`, the
    callbacks' ``monitor`` and the saved compile settings, so that two
    metrics of one kind can be compiled together::

        metrics=[F1Score(average="micro", name="f1_micro"), F1Score(average="macro")]

    (logged as ``"f1_micro"`` and ``"f1"``; ``compile`` refuses two metrics of
    one name). A name is a non-empty string without ``"/"`` (the separator
    of a multi-task model's ``"<task>/<metric>"`` keys). Callbacks'
    ``mode="auto"`` finds its direction on the model's metrics when training
    starts (:func:`logged_metrics`), and :func:`tinynet.mtl.delta_m` on the
    model given as its ``model=`` (else it knows only the built-in names,
    and takes the direction of others as its ``higher_is_better`` argument).
    """

    name = "metric"
    higher_is_better: bool | None = None
    #: Whether the state holds the samples themselves (:class:`AUC`,
    #: :class:`R2Score`), growing with them: :class:`MetricStates` then keeps
    #: the batches' states apart until a value is read and merges them at
    #: once (:meth:`merge_all`), since merging each batch into the state so
    #: far copies the samples so far (an epoch's: quadratic in its batches).
    holds_samples = False

    def __init__(self, name: str | None = None):
        self._given_name = name is not None
        if name is not None:
            self.name = _check_name(name, type(self).__name__)

    def __call__(self, pred, target) -> float:
        return self.result(self.batch_state(pred, target))

    def batch_state(self, pred, target):
        """Sufficient statistics of one batch (checks the inputs)."""
        if type(self).__call__ is Metric.__call__:
            raise NotImplementedError(f"{type(self).__name__} defines neither __call__ nor "
                                      f"batch_state")
        n = _n_samples(pred)
        return np.array([float(self(pred, target)) * n, n]) if n else np.zeros(2)

    def merge(self, state, other):
        """The state of two batches together."""
        return state + other

    def merge_all(self, states: list):
        """The state of several batches together, in their order: :meth:`merge`
        from the left (the same state, to the bit, as merging them one by
        one); a metric that :attr:`holds_samples` merges many at once."""
        state = states[0]
        for other in states[1:]:
            state = self.merge(state, other)
        return state

    def result(self, state) -> float:
        """The metric of all the samples whose states were merged into ``state``."""
        return _mean_result(state, self.name)

    def running_result(self, state) -> float:
        """The value ``fit`` shows after each batch of an epoch in progress
        (:meth:`MetricStates.results` with ``running=True``): :meth:`result`,
        unless a metric has a cheaper way to the same number (:class:`AUC`,
        :class:`R2Score` keep theirs up to date batch by batch, equal to
        :meth:`result` up to the rounding)."""
        return self.result(state)

    def get_config(self) -> dict:
        """The constructor's arguments (``name`` only when one was given)."""
        return {**self._settings(),
                **({"name": self.name} if getattr(self, "_given_name", False) else {})}

    def _settings(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _check_name(name, who: str) -> str:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{who} expected name as a non-empty string without '/', "
                         f"received {name!r}")
    return name


def _mean_result(state, who: str) -> float:
    total, count = state
    _check_samples(count, who)
    return float(total / count)


class _Mean(Metric):
    """Mean of per-sample (or per-element) values ``_values(pred, target)``:
    the state is their sum and count, so ``result`` is ``np.mean`` of them
    (the same division) and an epoch's value the mean over its samples."""

    def batch_state(self, pred, target):
        values = self._values(pred, target)
        _check_samples(values.shape[0], self.name)
        return np.array([values.sum(), values.size], dtype=np.float64)


class Accuracy(_Mean):
    """Share of correctly classified samples: :math:`\\frac1n\\sum_i [\\hat y_i = y_i]`.

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
    A sample whose prediction holds a NaN (a diverged model's) is never
    correct (:func:`_predicted_labels`): the arg-max read a row of NaN as class 0
    and ``NaN > threshold`` is False, so it was counted right whenever the
    label was 0.
    """

    name = "accuracy"
    higher_is_better = True

    def __init__(self, threshold: float | None = None, name: str | None = None):
        super().__init__(name)
        self.threshold = _check_threshold(threshold, "Accuracy")

    def _values(self, pred, target):
        # a sample holding a NaN is predicted -1, no class: never its label
        predicted, labels, _ = _predicted_classes(pred, target, self.threshold, self.name)
        return predicted == labels

    def _settings(self) -> dict:
        return {"threshold": self.threshold}


class TopKAccuracy(_Mean):
    """Share of samples whose true class is among the ``k`` highest scores.

    Ties are broken towards the lower class index (a stable sort), so a
    sample counts only if its class is among the first ``k`` of that order:
    the order of ``np.argmax`` (``k=1`` agrees with :class:`Accuracy` and
    with scikit-learn's ``accuracy_score`` of the arg-max). scikit-learn's
    ``top_k_accuracy_score`` breaks ties the other way (towards the higher
    index: its stable ascending sort, reversed), and ``torch.topk`` leaves
    the order among equal scores unspecified; without ties all three agree.
    A sample whose scores hold a NaN is never a hit (:func:`_class_hits`), so
    predictions of a diverged model are not counted as hits (NaN ranked
    above every number, as ``np.argmax`` and ``torch.topk`` order it: a row
    of NaN was a hit for the labels 0 to k-1). ``k`` above the number of
    classes is refused (every sample would be a hit).
    """

    higher_is_better = True

    def __init__(self, k: int = 5, name: str | None = None):
        self.k = check_positive_int(k, "TopKAccuracy", "k")
        self.name = self.default_name(self.k)
        super().__init__(name)  # a name given replaces the default one

    @staticmethod
    def default_name(k: int) -> str:
        """The name of ``TopKAccuracy(k)`` without a ``name``: Keras'
        ``"top_k_accuracy"`` for its default ``k=5``, ``"top_<k>_accuracy"``
        for another ``k``."""
        return "top_k_accuracy" if k == 5 else f"top_{k}_accuracy"

    def _values(self, pred, target):
        pred = _as_pred(pred, self.name)
        if pred.ndim != 2:
            raise ValueError(f"{self.name} expected predictions of shape (n, classes), "
                             f"received {pred.shape}")
        labels = _class_targets(target, pred, self.name)
        if self.k > pred.shape[1]:
            raise ValueError(f"{self.name} expected k at most the number of classes "
                             f"{pred.shape[1]}, received k={self.k}")
        return _class_hits(pred, labels, self.k)

    def _settings(self) -> dict:
        return {"k": self.k}


class _ConfusionMetric(Metric):
    r"""Precision, recall or F1 from the confusion matrix, as scikit-learn.

    The state is the confusion matrix :math:`C` (``C[i, j]``: samples of
    class :math:`i` predicted as :math:`j`; integers, so an epoch's matrix is
    the sum of its batches' and the result does not depend on the batches),
    with one more column, ``C[i, classes]``: the samples of class :math:`i`
    predicted as no class, those whose prediction holds a NaN (a diverged
    model's; the arg-max read a row of NaN as class 0, and ``NaN >
    threshold`` is False, so they were counted right for class 0). Per class
    :math:`c`: :math:`tp_c = C_{cc}`, :math:`fp_c = \sum_i C_{ic} - tp_c`
    (predicted :math:`c`, wrongly), :math:`fn_c = \sum_j C_{cj} - tp_c` (the
    sum over the last column too: a sample of no prediction is a false
    negative of its class and a false positive of none), and

    .. math::
        P_c = \frac{tp_c}{tp_c + fp_c},\quad R_c = \frac{tp_c}{tp_c + fn_c},\quad
        F1_c = \frac{2\,tp_c}{2\,tp_c + fp_c + fn_c}
        \ (= \frac{2 P_c R_c}{P_c + R_c}).

    ``average``:

    * ``"binary"`` -- the value of the positive class ``pos_label`` (1 unless
      set, as scikit-learn). Only for two classes (one output unit, or two).
    * ``"macro"`` -- the unweighted mean over the classes that occur among the
      targets or the predictions (a class absent from both is left out, as
      scikit-learn's default ``labels``).
    * ``"weighted"`` -- the mean over those classes weighted by their number
      of true samples (support).
    * ``"micro"`` -- the value of the summed counts :math:`\sum_c tp_c` ...;
      for single-label classification micro precision, recall and F1 all
      equal the accuracy when every sample has a prediction. With samples
      of no prediction (NaN), micro recall (hits / samples) is still the
      accuracy, micro precision is the hits over the predictions made (the
      precision of the classes predicted; a sample of no prediction is no
      false positive), and micro F1 is :math:`2 h / (n + m)` (:math:`h`
      hits, :math:`n` samples, :math:`m` predictions made). scikit-learn
      has no notion of a missing prediction; on finite predictions the
      values are its.
    * ``None`` (default) -- ``"binary"`` for two classes (scikit-learn's
      default, Keras' binary ``Precision``/``Recall``), ``"macro"`` for more
      (scikit-learn has no default for several classes; macro is the usual
      report, and Keras' ``F1Score(average="macro")``).

    A ratio whose denominator is 0 -- precision of a class never predicted,
    recall of a class never true, F1 of a positive class absent from targets
    and predictions alike -- is ``zero_division``: 0 by default, as
    scikit-learn's default ``"warn"`` (tinynet does not warn), or 1, or NaN,
    which the averages leave out (scikit-learn's ``_nanaverage``; NaN if
    every class is NaN). A class absent from targets and predictions alike
    is left out of the averages, so in them this arises only for a class
    present on one side.

    Parameters
    ----------
    average : {None, "binary", "macro", "micro", "weighted"}
    threshold : float, optional
        For one output unit: the class is ``pred > threshold`` (as
        :class:`Accuracy`: 0 for logits, set to 0.5 after a sigmoid by
        :func:`for_output`). Several outputs: the arg-max.
    pos_label : {1, 0}
        The positive class of ``average="binary"`` (also the default average
        for two classes); another average refuses a ``pos_label`` other than
        1 (scikit-learn ignores it with a warning).
    zero_division : {0, 1, nan}
        The value of a ratio whose denominator is 0 (see above); ``"nan"``
        is taken for NaN (the saved settings hold it so, JSON has no NaN).
    name : str, optional
        The name to log it under (see :class:`Metric`), e.g. ``"f1_micro"``.
    """

    higher_is_better = True
    AVERAGES = ("binary", "macro", "micro", "weighted")

    def __init__(self, average: str | None = None, threshold: float | None = None, *,
                 pos_label: int = 1, zero_division=0.0, name: str | None = None):
        super().__init__(name)
        who = type(self).__name__
        if average is not None and average not in self.AVERAGES:
            raise ValueError(f"{who} expected average None or one of "
                             f"{', '.join(map(repr, self.AVERAGES))}, received {average!r}")
        self.average = average
        self.threshold = _check_threshold(threshold, who)
        if isinstance(pos_label, (bool, np.bool_)) or pos_label not in (0, 1):
            raise ValueError(f"{who} expected pos_label 0 or 1 (a class of a binary "
                             f"problem), received {pos_label!r}")
        if pos_label != 1 and average not in (None, "binary"):
            raise ValueError(f"{who} takes pos_label for average='binary' only, received "
                             f"pos_label={pos_label!r} with average={average!r}")
        self.pos_label = int(pos_label)
        self.zero_division = _check_zero_division(zero_division, who)

    def batch_state(self, pred, target):
        predicted, labels, n_classes = _predicted_classes(pred, target, self.threshold,
                                                          self.name)
        _check_samples(len(labels), self.name)
        if (self.average == "binary" or self.pos_label != 1) and n_classes > 2:
            given = "average='binary'" if self.average == "binary" else \
                f"pos_label={self.pos_label}"
            raise ValueError(f"{self.name} with {given} expected two classes (one output "
                             f"unit, or two), received predictions of {n_classes} classes; "
                             f"use average='macro', 'micro' or 'weighted'")
        # the last column counts the samples of no class predicted (NaN)
        predicted = np.where(predicted == NO_CLASS, n_classes, predicted)
        width = n_classes + 1
        return np.bincount(labels * width + predicted,
                           minlength=n_classes * width).reshape(n_classes, width)

    def result(self, state) -> float:
        counts = np.asarray(state)
        _check_samples(int(counts.sum()), self.name)
        made = counts[:, :-1]  # the predictions made (the last column: none, NaN)
        tp, pred_sum, true_sum = np.diag(made), made.sum(axis=0), counts.sum(axis=1)
        average = self.average or ("binary" if len(counts) == 2 else "macro")
        if average == "binary":
            keep = np.array([self.pos_label])
        else:  # the classes among the targets or the predictions (scikit-learn's labels)
            keep = np.flatnonzero((true_sum > 0) | (pred_sum > 0))
        tp, pred_sum, true_sum = tp[keep], pred_sum[keep], true_sum[keep]
        if average == "micro":
            tp, pred_sum, true_sum = tp.sum(keepdims=True), pred_sum.sum(keepdims=True), \
                true_sum.sum(keepdims=True)
        # each metric's (numerator, denominator) per class
        numerator, denominator = self._ratio(tp.astype(np.float64), pred_sum.astype(np.float64),
                                             true_sum.astype(np.float64))
        values = numerator / np.where(denominator == 0, 1.0, denominator)
        values[denominator == 0] = self.zero_division
        return _nanaverage(values, true_sum if average == "weighted" else None)

    def _settings(self) -> dict:
        # pos_label and zero_division only when set: the settings saved before them load
        return {"average": self.average, "threshold": self.threshold,
                **({"pos_label": self.pos_label} if self.pos_label != 1 else {}),
                **({"zero_division": "nan" if np.isnan(self.zero_division)
                    else self.zero_division} if self.zero_division != 0 else {})}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({settings})"


def _check_zero_division(value, who: str) -> float:
    if isinstance(value, str) and value.lower() == "nan":
        return float("nan")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
            or not (value in (0, 1) or np.isnan(value)):
        raise ValueError(f"{who} expected zero_division 0, 1 or nan, received {value!r}")
    return float(value)


def _nanaverage(values: np.ndarray, weights: np.ndarray | None) -> float:
    """scikit-learn's ``_nanaverage``: the (weighted) mean of the values that
    are not NaN; NaN if none is; unweighted if their weights are all 0."""
    nan = np.isnan(values)
    if nan.all():
        return float("nan")
    if weights is None:
        return float(np.nanmean(values))
    values, weights = values[~nan], weights[~nan]
    return float(np.average(values, weights=weights if weights.sum() else None))


def _confusion_doc(summary: str) -> str:
    return summary + "\n" + _ConfusionMetric.__doc__.split("\n", 1)[1]


class Precision(_ConfusionMetric):
    __doc__ = _confusion_doc("Precision :math:`tp / (tp + fp)`: the share of the "
                             "predictions of a class that are right.")
    name = "precision"
    _ratio = staticmethod(lambda tp, pred_sum, true_sum: (tp, pred_sum))


class Recall(_ConfusionMetric):
    __doc__ = _confusion_doc("Recall :math:`tp / (tp + fn)`: the share of the samples of "
                             "a class found.")
    name = "recall"
    _ratio = staticmethod(lambda tp, pred_sum, true_sum: (tp, true_sum))


class F1Score(_ConfusionMetric):
    __doc__ = _confusion_doc("F1 :math:`2 tp / (2 tp + fp + fn)`, the harmonic mean of "
                             "precision and recall.")
    name = "f1"
    # scikit-learn's (1 + beta^2) tp / (beta^2 (tp + fn) + tp + fp) at beta = 1
    _ratio = staticmethod(lambda tp, pred_sum, true_sum: (2.0 * tp, true_sum + pred_sum))


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float((np.diff(x) * (y[1:] + y[:-1]) / 2.0).sum())


def _sorted_column(scores: np.ndarray, positive: np.ndarray):
    """``(scores, positive)`` in ascending order of score (a stable sort: on
    the concatenation of two sorted runs, NumPy's timsort takes linear time)."""
    order = np.argsort(scores, kind="stable")
    return scores[order], positive[order]


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """scikit-learn's ``roc_auc_score`` of one binary problem, step by step,
    from ``scores`` in ascending order (:func:`_sorted_column`): scores in
    descending order, one ROC point per distinct score (tied samples move
    the curve diagonally: the trapezoid counts a tie between a positive and
    a negative as half), collinear points dropped, the curve from (0, 0) to
    (1, 1), and the trapezoidal area under it. The order among tied scores
    does not matter: the counts are taken at the end of each run of them."""
    if len(scores) and np.isnan(scores[-1]):  # NaN sorts last
        return float("nan")  # a diverged model: TerminateOnNaN stops on its loss
    # scikit-learn's descending pass, counted from the ascending order: at the
    # k-th highest distinct score v, tps = positives scoring >= v and
    # fps = samples scoring >= v, less tps (integers: exact either way)
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])  # first of each score
    positives_before = np.r_[0.0, np.cumsum(positive, dtype=np.float64)]
    tps = (positives_before[-1] - positives_before[starts])[::-1]
    fps = (len(scores) - starts)[::-1] - tps
    if len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps = fps[corner], tps[corner]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return _trapezoid(tps / tps[-1], fps / fps[-1])


def _twice_pairs(positives: np.ndarray, negatives: np.ndarray) -> int:
    r""":math:`\sum_{i, j} (2 [p_i > n_j] + [p_i = n_j])` of two ascending
    arrays, by binary search of the shorter in the longer: ``searchsorted``
    left plus right of a positive is twice the negatives below it plus those
    equal to it; of a negative, twice the positives *not* above it less those
    equal (O(short log long))."""
    if not len(positives) or not len(negatives):
        return 0
    if len(positives) <= len(negatives):
        return int(np.searchsorted(negatives, positives, "left").sum(dtype=np.int64)
                   + np.searchsorted(negatives, positives, "right").sum(dtype=np.int64))
    return int(2 * len(positives) * len(negatives)
               - np.searchsorted(positives, negatives, "left").sum(dtype=np.int64)
               - np.searchsorted(positives, negatives, "right").sum(dtype=np.int64))


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two ascending arrays as one: the shorter is put where ``searchsorted``
    finds its values in the longer (one pass over the longer; NaN last)."""
    if len(a) < len(b):
        a, b = b, a
    if not len(b):
        return a
    at = np.searchsorted(a, b) + np.arange(len(b))  # b's places in the result
    merged, from_a = np.empty(len(a) + len(b)), np.ones(len(a) + len(b), dtype=bool)
    merged[at], from_a[at] = b, False
    merged[from_a] = a
    return merged


class _Ranks(NamedTuple):
    """One binary AUC problem's state: the scores of the positives and of the
    negatives, each ascending, and the Mann-Whitney count ``twice_u`` of
    :func:`_twice_pairs` between them (a Python integer: exact), or None
    while not counted: only the running value needs it (:meth:`pairs`), so a
    batch's state and states merged all at once leave it to the first
    :meth:`merge` or running value that asks."""

    positives: np.ndarray
    negatives: np.ndarray
    twice_u: int | None = None

    def pairs(self) -> int:
        """``twice_u``, counted now if it was not."""
        return _twice_pairs(self.positives, self.negatives) if self.twice_u is None \
            else self.twice_u

    def merge(self, other: "_Ranks") -> "_Ranks":
        # the pairs within each, plus those between one's positives and the other's negatives
        return _Ranks(_merge_sorted(self.positives, other.positives),
                      _merge_sorted(self.negatives, other.negatives),
                      self.pairs() + other.pairs() + _twice_pairs(self.positives, other.negatives)
                      + _twice_pairs(other.positives, self.negatives))

    @classmethod
    def merge_all(cls, ranks: list) -> "_Ranks":
        """Many at once: each side's runs sorted together (a stable sort of
        sorted runs: timsort merges them), the pairs not counted; the same
        arrays, up to the order of 0.0 and -0.0, as :meth:`merge` one by
        one, and (:meth:`pairs`) the same count."""
        return cls(np.sort(np.concatenate([r.positives for r in ranks]), kind="stable"),
                   np.sort(np.concatenate([r.negatives for r in ranks]), kind="stable"))

    def has_nan(self) -> bool:  # NaN sorts last
        return any(len(s) and np.isnan(s[-1]) for s in (self.positives, self.negatives))


class _Scores(NamedTuple):
    """Batches' AUC state before ranking: their ``scores`` (n, columns), in
    float64, and the integer ``labels`` (n,); column ``c`` of a one-vs-rest
    AUC has the positives ``labels == c``, the one column of a binary AUC
    ``labels == 1``. Ranking waits until a value or a merge asks
    (:func:`_ranked`), so a batch costs no sort and many batches are ranked
    in one sort (:meth:`AUC.merge_all`)."""

    scores: np.ndarray
    labels: np.ndarray

    @classmethod
    def join(cls, batches: list) -> "_Scores":
        return cls(np.concatenate([b.scores for b in batches]),
                   np.concatenate([b.labels for b in batches]))


def _ranked(scores: _Scores, binary: bool) -> tuple:
    """One :class:`_Ranks` per column of ``scores``, every column sorted in
    one NumPy call: row ``c`` of the first of two ``(columns, n)`` arrays
    holds column ``c``'s scores of its positives and NaN at its negatives,
    the second the reverse, and a sort along the rows puts a side's scores
    first, ascending, and the NaN last; the first ``count`` of a row are
    that side's sorted scores (a side's own NaN score, a diverged model's,
    sorts among the fillers, and NaN it is: the AUC is NaN either way).
    The same values, in the same order up to that of 0.0 and -0.0, as a
    sort of each column's sides apart."""
    n, width = scores.scores.shape
    classes = np.ones(1, dtype=np.int64) if binary else np.arange(width)
    positive = scores.labels == classes[:, None]  # (columns, n)
    by_column = scores.scores.T
    sides = np.sort(np.stack([np.where(positive, by_column, np.nan),
                              np.where(positive, np.nan, by_column)]), axis=-1)
    # (copies of the sides: views would keep both rows of all n alive)
    return tuple(_Ranks(pos[:count].copy(), neg[:n - count].copy()) for pos, neg, count
                 in zip(sides[0], sides[1], positive.sum(axis=1).tolist()))


class AUC(Metric):
    r"""Area under the ROC curve (true-positive rate against false-positive
    rate as the threshold falls), exactly as scikit-learn's ``roc_auc_score``.

    With :math:`n_+` positives and :math:`n_-` negatives it equals

    .. math::
        \mathrm{AUC} = \frac{1}{n_+ n_-}\sum_{i:\,y_i=1}\sum_{j:\,y_j=0}
            \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big),

    the chance that a random positive scores above a random negative, ties
    counting half (the trapezoid over the distinct thresholds).

    * One output unit (or ``(n,)`` predictions): binary, the score is the
      output (a logit or a probability: the ranking, hence the AUC, is the
      same up to ties that rounding makes in a saturated sigmoid).
    * ``(n, classes)`` predictions: one-vs-rest, macro average --
      :math:`\frac1C\sum_c \mathrm{AUC}(y = c,\ s_{\cdot c})` -- scikit-learn's
      ``roc_auc_score(multi_class="ovr")`` of the class probabilities. Column
      :math:`c` of logits ranks the samples differently from the softmax
      probability of :math:`c` (which depends on the other columns too), so
      with ``from_logits`` the scores are the softmax of the predictions.

    Parameters
    ----------
    from_logits : bool, optional
        Whether ``(n, classes)`` predictions are logits, to be turned into
        probabilities by a softmax (float64) before ranking. Unset (None) it
        is False for a direct call (the predictions are probabilities, as
        scikit-learn takes them), and a model compiled with this metric sets
        it from its output (:func:`for_output`): True unless the output layer
        ends in a softmax or sigmoid. A given value is kept. No effect on a
        binary AUC: a sigmoid is monotone, so it ranks as the logit does.
    name : str, optional
        The name to log it under (see :class:`Metric`).

    The area is undefined without both a positive and a negative sample (for
    one-vs-rest: of every class): a ``ValueError`` (:class:`UndefinedMetricError`)
    says so (scikit-learn warns and returns NaN); ``fit`` and ``evaluate``
    refuse such targets before they start, and the running value of an
    epoch whose batches so far hold one class is NaN. NaN scores (a
    diverged model) give NaN.

    The state (per class for one-vs-rest) is the scores themselves, those of
    the positives and those of the negatives each sorted (:class:`_Ranks`;
    a batch's, :class:`_Scores`, wait unsorted until a value or a merge
    asks, and the batches of an epoch are then sorted together, every
    column in one NumPy sort: :func:`_ranked`), so an epoch's AUC is exact:
    the AUC of all its samples, whatever the batches and their order.
    :meth:`result` follows scikit-learn's curve step by step (a sort and a
    pass over all the samples so far), to its last digit. The running value ``fit`` shows after each batch
    (:meth:`running_result`) is the double sum above instead, kept as an
    integer count of pairs: merging a batch of :math:`b` samples counts its
    pairs with the samples so far by binary search,
    :math:`O(b \log n)`, and inserts its scores (one copy of the arrays), so
    the value is one division -- the exact fraction, correctly rounded, which
    differs from scikit-learn's trapezoid sum at most by its rounding. The
    last batch of an epoch, and ``evaluate``, give :meth:`result`.
    """

    name = "auc"
    higher_is_better = True

    def __init__(self, from_logits: bool | None = None, name: str | None = None):
        super().__init__(name)
        self.from_logits = None if from_logits is None else \
            check_bool(from_logits, "AUC", "from_logits")

    def _settings(self) -> dict:
        return {"from_logits": self.from_logits}

    def batch_state(self, pred, target):
        pred = _as_pred(pred, self.name)
        if not (_is_binary_output(pred) or pred.ndim == 2):
            raise ValueError(f"{self.name} expected predictions of shape (n, classes) or "
                             f"(n,), received {pred.shape}")
        labels = _class_targets(target, pred, self.name)
        _check_samples(len(labels), self.name)
        if _is_binary_output(pred):  # (binary, scores of one column)
            return True, _Scores(pred.reshape(-1, 1).astype(np.float64), labels)
        scores = pred.astype(np.float64)
        if self.from_logits:
            scores = softmax(scores)
        return False, _Scores(scores, labels)

    holds_samples = True

    def merge(self, state, other):
        self._check_columns(state, other)
        return state[0], tuple(a.merge(b) for a, b in zip(self._ranks(state),
                                                          self._ranks(other)))

    def merge_all(self, states: list):
        """Two states by :meth:`merge` (a batch into the epoch so far: its
        pairs by binary search); more at once: the batches not yet ranked
        (:class:`_Scores`) in one sort (:func:`_ranked`), merged with any
        ranked state by :meth:`_Ranks.merge_all`."""
        if len(states) <= 2:
            return super().merge_all(states)
        for other in states[1:]:
            self._check_columns(states[0], other)
        binary = states[0][0]
        waiting = [s[1] for s in states if isinstance(s[1], _Scores)]
        ranked = [s[1] for s in states if not isinstance(s[1], _Scores)]
        if waiting:
            ranked.append(_ranked(_Scores.join(waiting), binary))
        return binary, ranked[0] if len(ranked) == 1 else tuple(
            _Ranks.merge_all(list(column)) for column in zip(*ranked))

    def _ranks(self, state) -> tuple:
        """The :class:`_Ranks` of each column of ``state``."""
        binary, columns = state
        return _ranked(columns, binary) if isinstance(columns, _Scores) else columns

    @staticmethod
    def _width(state) -> int:
        columns = state[1]
        return columns.scores.shape[1] if isinstance(columns, _Scores) else len(columns)

    def _check_columns(self, state, other) -> None:
        if state[0] != other[0] or self._width(state) != self._width(other):
            raise ValueError(f"{self.name} expected every batch's predictions of one shape, "
                             f"received {self._width(state)} and then {self._width(other)} "
                             f"columns")

    def _columns(self, state, value) -> float:
        """The mean over the columns of ``value(ranks)``, after the check
        that each holds positives and negatives."""
        binary, columns = state[0], self._ranks(state)
        n = len(columns[0].positives) + len(columns[0].negatives)
        _check_samples(n, self.name)
        values = []
        for c, ranks in enumerate(columns):
            count = len(ranks.positives)
            if count in (0, n):
                why = (f"the targets hold only one class (class {int(count > 0)}, {n} samples)"
                       if binary else f"one-vs-rest for class {c} needs samples of class {c} "
                       f"and of other classes; the targets hold {count} of {n} of class {c}")
                raise UndefinedMetricError(f"{self.name} is undefined: {why}; it needs "
                                           f"positive and negative samples")
            values.append(value(ranks))
        return float(np.average(values))

    def result(self, state) -> float:
        def sklearn(ranks):
            return _binary_auc(*_sorted_column(
                np.concatenate([ranks.positives, ranks.negatives]),
                np.arange(len(ranks.positives) + len(ranks.negatives)) < len(ranks.positives)))
        return self._columns(state, sklearn)

    def running_result(self, state) -> float:
        def pairs(ranks):  # int / int: the fraction correctly rounded
            return float("nan") if ranks.has_nan() else \
                ranks.pairs() / (2 * len(ranks.positives) * len(ranks.negatives))
        return self._columns(state, pairs)


def _r2(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """scikit-learn's mean :math:`R^2` from each output's residual sum of
    squares and its targets' sum of squared deviations (``force_finite``)."""
    scores = np.ones(len(numerator))
    valid = (numerator != 0) & (denominator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[(numerator != 0) & (denominator == 0)] = 0.0
    return float(np.average(scores))


class R2Score(Metric):
    r"""Coefficient of determination, scikit-learn's ``r2_score`` (its default
    ``multioutput="uniform_average"``, ``force_finite=True``).

    Per output :math:`k` (every element after the sample axis is an output),

    .. math::
        R^2_k = 1 - \frac{\sum_i (t_{ik} - p_{ik})^2}{\sum_i (t_{ik} - \bar t_k)^2},

    with :math:`R^2_k = 1` when the numerator is 0 (perfect predictions, even
    of a constant target) and 0 when only the denominator is (a constant
    target missed); the metric is the plain mean of the :math:`R^2_k`. Fewer
    than two samples give NaN (scikit-learn warns and does the same). Can
    be negative: a model worse than predicting the mean. Computed in float64.

    The state is the predictions and targets themselves, so an epoch's value
    (:meth:`result`) is the :math:`R^2` of all its samples (up to the
    rounding of sums taken in another order), and, for the running value
    ``fit`` shows after each batch (:meth:`running_result`), per output the
    count, the targets' mean and sum of squared deviations (merged as Chan
    et al.'s parallel variance: no cancellation) and the residual sum of
    squares, so that it costs the same at every batch.
    """

    name = "r2"
    higher_is_better = True

    def batch_state(self, pred, target):
        pred = _as_pred(pred, self.name)
        target = as_float_targets(target, pred, self.name)
        _check_samples(len(pred), self.name)
        pred = np.array(pred, dtype=np.float64).reshape(len(pred), -1)
        target = np.array(target, dtype=np.float64).reshape(len(pred), -1)
        mean = target.mean(axis=0)
        moments = (len(pred), mean, ((target - mean) ** 2).sum(axis=0),
                   ((target - pred) ** 2).sum(axis=0))
        return [(pred, target)], moments

    holds_samples = True

    def merge(self, state, other):
        return state[0] + other[0], self._merge_moments(state[1], other[1])

    def merge_all(self, states: list):
        """The samples' lists joined once, the moments merged in order (as
        :meth:`merge` one by one)."""
        moments = states[0][1]
        for other in states[1:]:
            moments = self._merge_moments(moments, other[1])
        return [pair for state in states for pair in state[0]], moments

    @staticmethod
    def _merge_moments(a, b):
        (n_a, mean_a, m2_a, sse_a), (n_b, mean_b, m2_b, sse_b) = a, b
        n, delta = n_a + n_b, mean_b - mean_a
        return (n, mean_a + delta * (n_b / n), m2_a + m2_b + delta ** 2 * (n_a * n_b / n),
                sse_a + sse_b)

    def result(self, state) -> float:
        _check_samples(sum(len(p) for p, _ in state[0]), self.name)
        pred = np.concatenate([p for p, _ in state[0]])
        target = np.concatenate([t for _, t in state[0]])
        if len(pred) < 2:
            return float("nan")
        return _r2(np.sum((target - pred) ** 2, axis=0),
                   np.sum((target - np.average(target, axis=0)) ** 2, axis=0))

    def running_result(self, state) -> float:
        n, _, m2, sse = state[1]
        _check_samples(n, self.name)
        return float("nan") if n < 2 else _r2(sse, m2)


class _Regression(_Mean):
    """Mean of an element-wise function of ``pred - target``; targets as the
    element-wise losses take them (:func:`~tinynet.checks.as_float_targets`:
    integer targets, ``(n,)`` targets for an ``(n, 1)`` output).

    The difference and its function are computed in float64 (as
    :class:`R2Score` and scikit-learn do), whatever the predictions' dtype:
    in float32 a difference above about 1.8e19 squared to inf (and one of
    3e38 and -3e38 was inf already), where the mean is finite. Float64
    inputs give the same bits as before; float32 ones a more exact value,
    which differs from the float32 computation within its rounding."""

    higher_is_better = False

    def _values(self, pred, target):
        pred = _as_pred(pred, self.name)
        target = as_float_targets(target, pred, self.name)
        return self._elementwise(np.subtract(pred, target, dtype=np.float64))


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


class MetricStates:
    """Metrics accumulated over batches: ``add(pred, target)`` per batch,
    ``results()`` the metrics of all the samples added so far
    ``{name: value}`` (a metric not yet given a sample is left out; one
    undefined on them so far, an AUC of the first batches of one class, is
    NaN), and ``samples`` their number. An empty batch adds nothing.

    ``results(running=True)`` gives each metric's
    :meth:`~Metric.running_result` instead: what ``fit`` shows after every
    batch but the epoch's last, the same numbers up to the rounding without
    a pass over all the samples so far (an AUC's, an R²'s).

    Work is done when a value is read, once: ``add`` checks the batch and
    takes its state (:meth:`Metric.batch_state`) at once, and merges it at
    once for a metric of a fixed-size state (sums, a confusion matrix); the
    states of a metric that :attr:`~Metric.holds_samples` wait until a
    value (or ``states``) is read and are merged then, all at once
    (:meth:`Metric.merge_all`: one sort of an AUC's scores, where merging
    batch by batch copies the epoch's so far at every batch). ``results``
    are kept until the next ``add``: ``fit``'s last batch and the epoch's
    record read the exact values once.

    ``epoch_samples`` (``fit``'s accumulators: the samples an epoch adds)
    makes :meth:`batch_logs` give running values until they are all in,
    the exact ones then."""

    def __init__(self, metrics, epoch_samples: int | None = None):
        self.metrics = list(metrics)
        self.epoch_samples = epoch_samples
        self._states: list = [None] * len(self.metrics)
        self._pending: list[list] = [[] for _ in self.metrics]
        self._results: dict = {}  # {running: results} since the last add
        self.samples = 0

    def add(self, pred, target) -> None:
        if _n_samples(pred) == 0:
            return
        for i, metric in enumerate(self.metrics):
            state = metric.batch_state(pred, target)
            if metric.holds_samples:
                self._pending[i].append(state)
            else:
                self._states[i] = state if self._states[i] is None else \
                    metric.merge(self._states[i], state)
        self.samples += _n_samples(pred)
        self._results = {}

    @property
    def states(self) -> list:
        """Each metric's state of all the samples so far (None before any)."""
        for i, metric in enumerate(self.metrics):
            if self._pending[i]:
                previous = [] if self._states[i] is None else [self._states[i]]
                self._states[i] = metric.merge_all(previous + self._pending[i])
                self._pending[i] = []
        return self._states

    def deferred(self, running: bool = False) -> dict:
        """``{name: function of no arguments}``: each computes the value
        ``results(running)`` holds for its metric when it is called (a
        deferred running value of :class:`tinynet.training.RunningMeans`:
        ``fit``'s batch logs compute the metrics only if a callback reads
        them). Empty before any sample."""
        return {m.name: functools.partial(self._result, m.name, running)
                for m in self.metrics} if self.samples else {}

    def batch_logs(self, prefix: str = "") -> dict:
        """What a ``fit`` step logs of the metrics after its batch is added:
        ``{prefix + name: deferred value}`` (:meth:`deferred`, computed only
        if read), running values while the epoch's samples are not all in
        (:attr:`epoch_samples`), the exact ones at its last batch -- which
        :func:`~tinynet.training.fit_loop` computes for the epoch's logs and
        the trainer's record of the epoch reads again, kept. ``Sequential``
        and the multi-task models' ``fit`` (``prefix`` ``"<task>/"``) log
        theirs so."""
        running = self.epoch_samples is None or self.samples < self.epoch_samples
        return {prefix + name: value for name, value in self.deferred(running).items()}

    def _result(self, name: str, running: bool) -> float:
        return self.results(running)[name]

    def results(self, running: bool = False) -> dict:
        running = bool(running)
        if running not in self._results:
            self._results[running] = {
                m.name: _result_or_nan(m.running_result if running else m.result, state)
                for m, state in zip(self.metrics, self.states) if state is not None}
        return dict(self._results[running])


def _result_or_nan(result, state) -> float:
    try:
        return result(state)
    except UndefinedMetricError:
        return float("nan")


def accuracy(pred, target) -> float:
    """:class:`Accuracy` with the default threshold (0: logits)."""
    return Accuracy()(pred, target)


def top_k_accuracy(pred, target, k: int = 5) -> float:
    """:class:`TopKAccuracy` as a function."""
    return TopKAccuracy(k)(pred, target)


def precision(pred, target, average: str | None = None, threshold: float | None = None,
              **options) -> float:
    """:class:`Precision` as a function (``pos_label``, ``zero_division``: its options)."""
    return Precision(average, threshold, **options)(pred, target)


def recall(pred, target, average: str | None = None, threshold: float | None = None,
           **options) -> float:
    """:class:`Recall` as a function (``pos_label``, ``zero_division``: its options)."""
    return Recall(average, threshold, **options)(pred, target)


def f1(pred, target, average: str | None = None, threshold: float | None = None,
       **options) -> float:
    """:class:`F1Score` as a function (``pos_label``, ``zero_division``: its options)."""
    return F1Score(average, threshold, **options)(pred, target)


def auc(pred, target, from_logits: bool = False) -> float:
    """:class:`AUC` as a function."""
    return AUC(from_logits)(pred, target)


def r2(pred, target) -> float:
    """:class:`R2Score` as a function."""
    return R2Score()(pred, target)


def mse(pred, target) -> float:
    return MeanSquaredError()(pred, target)


def mae(pred, target) -> float:
    return MeanAbsoluteError()(pred, target)


METRICS: dict[str, type] = {
    "accuracy": Accuracy, "acc": Accuracy,
    "top_k_accuracy": TopKAccuracy, "top_k": TopKAccuracy,
    "precision": Precision, "recall": Recall,
    "f1": F1Score, "f1_score": F1Score,
    "auc": AUC, "roc_auc": AUC,
    "r2": R2Score, "r2_score": R2Score,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}

_TOP_K = re.compile(r"top_?(\d+)_accuracy")


def get(spec) -> Metric:
    """A metric from a name (``"accuracy"``, ``"top_3_accuracy"``, ``"f1"``...),
    a :class:`Metric` instance, a :func:`to_config` dict, or a function
    ``f(pred, target) -> float`` (named after the function). A top-k accuracy
    asked for as ``"top_<k>_accuracy"`` (or ``"top<k>_accuracy"``) is logged
    as ``"top_<k>_accuracy"``, ``"top_5_accuracy"`` included; ``"top_k_accuracy"``
    is ``TopKAccuracy()``, k=5 logged as ``"top_k_accuracy"`` (Keras' name)."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, dict):
        cls = lookup({c.__name__.lower(): c for c in METRICS.values()},
                     str(spec.get("class", "")), "metric class")
        return cls(**spec.get("config", {}))
    if isinstance(spec, str):
        # "top_3_accuracy" / "top3_accuracy": top-k with k in the name, logged
        # as "top_<k>_accuracy" (so "top_5_accuracy" too, not as TopKAccuracy(5)'s
        # default "top_k_accuracy": a monitor of "val_top_5_accuracy" was refused)
        match = _TOP_K.fullmatch(spec.lower().replace("-", "_"))
        if match:
            k = int(match.group(1))
            name = f"top_{k}_accuracy"
            return TopKAccuracy(k, name=None if name == TopKAccuracy.default_name(k) else name)
        return lookup(METRICS, spec, "metric")()
    if callable(spec):
        return _FunctionMetric(spec)
    raise TypeError(f"expected a metric name, Metric or function, received "
                    f"{type(spec).__name__}")


#: Names (the last part of a log key, without ``"val_"``; any case) of a
#: known lower-is-better value besides the built-in metrics' (whose classes
#: say their direction, :data:`METRICS`): every name of :mod:`tinynet.losses`
#: (``cross_entropy``, ``huber``, and ``mse``, ``mae`` with their long names)
#: and the error names ``rmse``, ``error``, ``err`` (:func:`tinynet.mtl.delta_m`
#: has read them so); a name ending in ``"loss"`` is one too
#: (:func:`higher_is_better`).
LOWER_IS_BETTER = frozenset({"rmse", "error", "err"} | {k.lower() for k in LOSSES})


def _key_name(key: str) -> str:
    """The metric's own name in a log key: its last part, without ``"val_"``,
    lower case, ``-`` as ``_`` (``"val_left/F1-Score"`` -> ``"f1_score"``)."""
    name = key.rsplit("/", 1)[-1].lower().replace("-", "_")
    return name[4:] if name.startswith("val_") else name


def higher_is_better(name: str, logged: dict | None = None) -> bool | None:
    """Whether higher is better for the value a log key names, or None when
    that is not known. The one rule of the callbacks' ``mode="auto"`` and of
    :func:`tinynet.mtl.delta_m` (:func:`direction` refuses the None), which
    never guess (Keras 3's ``EarlyStopping`` refuses so too):

    1. a metric of ``logged`` (:func:`logged_metrics` of a model) logged
       under the key, or under the key without ``"val_"``, that declares
       ``higher_is_better`` (:func:`declared_direction`) has that direction
       (a metric named by the user, ``F1Score(name="f1_micro")``);
    2. otherwise the metric's own name (:func:`_key_name`: the key's last
       part, so that a task named ``"accent"`` does not make ``"accent/loss"``
       a score) decides: a name ending in ``"loss"`` is minimised (False); a
       built-in metric's name or alias (``accuracy``, ``acc``,
       ``top_3_accuracy``, ``f1``, ``auc``, ``r2``..., ``mse``, ``mae``...)
       has the built-in's direction; a loss or error name
       (:data:`LOWER_IS_BETTER`) is minimised;
    3. anything else -- a metric function or ``Metric`` subclass of the
       user's that does not say its direction, under a name of its own
       (``"dice"``) -- is None: not known."""
    logged = logged or {}
    for key in (name, name[4:] if name.startswith("val_") else name):
        if key in logged:
            own = declared_direction(logged[key])
            if own is not None:
                return own
            break
    key = _key_name(name)
    if key.endswith("loss"):
        return False
    if _TOP_K.fullmatch(key):
        return True
    cls = METRICS.get(key)
    if cls is not None:
        return cls.higher_is_better
    return False if key in LOWER_IS_BETTER else None


def direction(key: str, logged: dict | None, who: str, remedy: str) -> bool:
    """:func:`higher_is_better` of ``key``, refusing a key of no known
    direction with a ``ValueError`` that names ``who`` and ``remedy`` (how the
    caller takes the direction instead)."""
    higher = higher_is_better(key, logged)
    if higher is None:
        raise ValueError(f"{who} cannot tell whether to maximise or minimise {key!r} (a "
                         f"metric that does not say its direction): {remedy}, or set "
                         f"higher_is_better on the metric")
    return higher


def logged_metrics(model) -> dict:
    """``{log key: Metric}`` of a compiled model (keys without ``"val_"``):
    ``{"f1_micro": ...}`` for a :class:`~tinynet.Sequential` (its ``metrics``
    list), ``{"left/f1_micro": ...}`` for a multi-task model (its
    ``metrics`` dict per task); empty for anything else."""
    metrics = getattr(model, "metrics", None)
    if isinstance(metrics, dict):
        return {f"{task}/{m.name}": m for task, ms in metrics.items() for m in ms
                if isinstance(m, Metric)}
    if isinstance(metrics, (list, tuple)):
        return {m.name: m for m in metrics if isinstance(m, Metric)}
    return {}


def declared_direction(metric) -> bool | None:
    """``metric.higher_is_better``: True or False (or 1 and 0, Python's or
    NumPy's bools and integers), or None: not said; anything else is refused."""
    higher = getattr(metric, "higher_is_better", None)
    name = getattr(metric, "name", getattr(metric, "__name__", metric))
    return check_direction(higher, f"metric {name!r}")


def check_direction(higher, who: str) -> bool | None:
    """A ``higher_is_better`` value: True/False or the integers 1/0 (of
    Python or NumPy) as a bool, None as None; anything else (a string, 0.5,
    2) a ``TypeError`` naming ``who``."""
    if higher is None:
        return None
    if isinstance(higher, (numbers.Integral, np.bool_)) and higher in (0, 1):
        return bool(higher)
    raise TypeError(f"{who} expected higher_is_better as True, False (1, 0) or None (not "
                    f"said), received {higher!r}"[:300])


class _FunctionMetric(Metric):
    """A metric function ``fn(pred, target)``, a batch mean. Its direction is
    not said (None) unless ``fn`` says it as an attribute ``higher_is_better``
    (see :class:`Metric`): an error function must not be maximised."""

    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", "metric")
        self.higher_is_better = declared_direction(fn)

    def __call__(self, pred, target) -> float:
        return float(self.fn(pred, target))


#: Metrics with a ``threshold`` for one output unit that :func:`for_output` sets.
_THRESHOLDED = (Accuracy, Precision, Recall, F1Score)


class _RowSumAUC(AUC):
    """:class:`AUC` of ``(n, classes)`` scores divided by their row sums: the class
    probabilities of several sigmoids compiled with the cross-entropy (what
    :class:`~tinynet.output_losses.NormalizedOutputCrossEntropy` scores and
    ``predict_proba`` gives). Made by :func:`for_output` only, never saved: the
    model keeps and saves the plain ``AUC`` it was compiled with."""

    def batch_state(self, pred, target):
        pred = _as_pred(pred, self.name)
        if pred.ndim == 2 and pred.shape[1] > 1:
            pred = row_probabilities(pred)
        return super().batch_state(pred, target)


def for_output(metric: Metric, layer, loss=None) -> Metric:
    """The metric to report on ``layer``'s output (a layer, a Sequential or a
    functional model's output tensor): an :class:`Accuracy`,
    :class:`Precision`, :class:`Recall` or :class:`F1Score` without a threshold
    gets ``threshold=0.5`` when ``layer`` ends in a sigmoid (its output is a
    probability, see :func:`tinynet.output_losses.output_activation`); an
    :class:`AUC` without ``from_logits`` gets ``from_logits=True`` unless
    ``layer`` ends in a softmax or sigmoid (its output is logits), and ranks
    several sigmoids divided by their sum when ``loss`` (the one the output is
    trained with) is :class:`~tinynet.output_losses.NormalizedOutputCrossEntropy`,
    as ``predict_proba`` gives them; any other metric as it is."""
    activation = output_activation(layer)
    if type(metric) in _THRESHOLDED and metric.threshold is None and activation == "sigmoid":
        return type(metric)(**{**metric.get_config(), "threshold": 0.5})
    if type(metric) is AUC and metric.from_logits is None:
        config = {**metric.get_config(), "from_logits": activation is None}
        return (_RowSumAUC if isinstance(loss, NormalizedOutputCrossEntropy) else AUC)(**config)
    return metric


def to_config(metric: Metric):
    """What a saved model stores for ``metric``: its name, or a
    ``{"class", "config"}`` dict when it has non-default settings (a
    ``name`` of its own among them); for a metric function, which a file
    cannot hold (it holds no code), ``{"function": name}``, with a warning:
    loading leaves it out (:func:`from_saved`). It refused to save such a
    model, and ``ModelCheckpoint`` failed after the first epoch's training."""
    if isinstance(metric, _FunctionMetric):
        _userwarn.warn(f"metric function {metric.name!r} is saved by its name only (a file "
                       f"holds no code): tinynet.load compiles the model without it; compile "
                       f"again with it to log it", UserWarning)
        return {"function": metric.name}
    try:
        default = get(metric.name)
    except ValueError:  # a name of the user's ("f1_micro")
        default = None
    if type(default) is type(metric) and default.get_config() == metric.get_config():
        return metric.name
    return {"class": type(metric).__name__, "config": metric.get_config()}


def from_saved(specs, who: str) -> list:
    """The saved metrics ``specs`` (:func:`to_config`'s) that this tinynet can
    make, with a warning for each left out: a metric function (saved by name
    only) or a class it does not know (a user's subclass of :class:`Metric`),
    so that the model loads, compiled with the others."""
    if not isinstance(specs, (list, tuple)):
        return specs  # (compile refuses it, saying what it expected)
    known = {cls.__name__.lower() for cls in METRICS.values()}
    kept, dropped = [], []
    for spec in specs:
        if isinstance(spec, dict) and ("function" in spec or (
                isinstance(spec.get("class"), str) and spec["class"].lower() not in known)):
            dropped.append(str(spec.get("function", spec.get("class"))))
        else:
            kept.append(spec)
    if dropped:
        _userwarn.warn(f"{who}: the saved metric(s) {dropped} are a function or a class of "
                       f"your own, which a file does not hold: the model is compiled without "
                       f"them; compile again with them to log them", UserWarning)
    return kept


def validation_clashes(names) -> list:
    """The metric names of ``names`` that are ``"val_<another of names>"``:
    a model's ``fit`` logs that other metric's validation value under the
    same key, so one would overwrite the other in the logs and History."""
    return [name for name in names if name.startswith("val_") and name[4:] in names]


def check_names(metrics, who: str, reserved=("loss",), validation: bool = False) -> None:
    """Refuse two metrics logged under one name, or a metric named like a
    ``reserved`` log key, before any training: one would overwrite the other
    in the logs and History. ``reserved`` is a tuple of keys, or a dict
    ``{key: what it holds}`` said in the error. ``validation=True`` (a model
    whose ``fit`` logs each metric's validation value as ``"val_<name>"``)
    also refuses a metric named ``"val_<name of another metric>"``. Each name
    is a non-empty string without ``/``, as ``name=`` requires (a subclass's
    class attribute ``name`` escaped that check): a multi-task model logs
    ``"<task>/<name>"``, and task ``"a"``'s metric ``"b/accuracy"`` overwrote
    the accuracy of a task ``"a/b"``."""
    for metric in metrics:
        _check_name(metric.name, f"{who}: {type(metric).__name__}")
    names = [m.name for m in metrics]
    shadowing = validation_clashes(names) if validation else []
    for metric in metrics:
        if metric.name in shadowing:
            raise ValueError(f"{who}: the metric {metric.name!r} and the validation value of "
                             f"the metric {metric.name[4:]!r} would both be logged as "
                             f"{metric.name!r} (metrics {names}); give one a name of its own, "
                             f"e.g. {type(metric).__name__}(..., name="
                             f"{metric.name[4:] + '_val'!r})")
    for metric in metrics:
        if metric.name in reserved or names.count(metric.name) > 1:
            held = reserved.get(metric.name) if isinstance(reserved, dict) else None
            clash = f"{names.count(metric.name)} metrics" if names.count(metric.name) > 1 \
                else f"a metric and the {metric.name!r} log key" + (f" ({held})" if held
                                                                     else "")
            raise ValueError(f"{who}: {clash} are named {metric.name!r} (metrics {names}); "
                             f"give one a name of its own, e.g. "
                             f"{type(metric).__name__}(..., name={metric.name + '_2'!r})")
