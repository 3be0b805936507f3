r"""Keras' ``fit(class_weight={class: weight})``: per-class weights as per-sample weights.

``class_weight`` maps a class label to a weight :math:`c_k`; each training
sample of class :math:`y_i` gets the weight :math:`c_{y_i}`, multiplied into
its ``sample_weight`` (if any). With the losses' weighted mean the batch
loss becomes

.. math::
    L = \frac{\sum_i w_i c_{y_i} \ell_i}{\sum_i w_i c_{y_i}},

which for integer labels without label smoothing is also what
``CrossEntropy(weight=c)`` gives (PyTorch's weighted mean).

The class of a sample is read from its target as Keras does (its
``class_weight_to_sample_weights``): an integer label of shape ``(n,)`` or
``(n, 1)``, or the arg-max of a one-hot (or soft) row of shape
``(n, n_classes)``; for a binary cross-entropy on one output, the 0/1
target itself. Classes missing from the dict keep weight 1 (Keras'
rule); a key that is no class of the model is an error, as are weights
that are not real numbers (a bool is not one), not finite or negative, a
dict that weighs every class of the model 0 (every loss would be 0 and
nothing would train), and targets that are not classes (a regression loss,
soft binary targets, several sigmoid outputs). The weights are checked as
``CrossEntropy(weight=)``'s (:func:`tinynet.checks.as_class_weight`).
"""

from __future__ import annotations

import math

import numpy as np

from .checks import as_class_weight, summable_weights
from .layers._checks import check_real
from .losses import BinaryCrossEntropy, CrossEntropy, reduction_of, scaled_class_weights

__all__ = ["class_sample_weights", "largest_class_weight", "weighted_by_class"]


def class_sample_weights(class_weight, y: np.ndarray, loss, output_shape, who: str) -> np.ndarray:
    """The per-sample weights :math:`c_{y_i}`, float64 of shape ``(len(y),)``.
    For a loss that reduces to a weighted mean (``reduction="mean"``, whose
    :math:`\\sum_i w_i \\ell_i / \\sum_i w_i` does not change when every
    weight is divided by one number), of the table as
    :func:`tinynet.losses.scaled_class_weights` gives it: the table itself,
    or, when its largest weight is beyond :math:`2^{\\pm 60}`, the table
    divided by a power of two (exact; the mean does not change; a table
    too wide for that, whose smallest weights would round, is refused); for a
    ``"sum"`` (or ``"none"``), which scales with the weights, the table as
    given, as ``CrossEntropy(weight=, reduction="sum")`` uses it. (In a
    mean, a table of tiny weights times small sample weights underflowed to
    0 -- ``fit`` refused the samples as all weighing 0 --, and one near the
    largest float scaled the sample weights down into the subnormal range,
    where their ratios lose digits.)

    Parameters
    ----------
    class_weight : dict of int to float
    y : ndarray
        The targets, already checked by ``loss`` (labels in range, shapes).
    loss : Loss
        The model's loss: it says what the targets are.
    output_shape : tuple
        The model's per-sample output shape (gives the number of classes).
    who : str
        Who is asking, for the error messages (``"Sequential 'm'.fit"``).
    """
    if not isinstance(class_weight, dict):
        raise TypeError(f"{who} expected class_weight as a dict {{class label: weight}}, "
                        f"received {type(class_weight).__name__}")
    n_classes, labels = _classes(y, loss, tuple(output_shape), who)
    table = np.ones(n_classes)
    for key, value in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"{who} expected class_weight keys as integer class labels, "
                            f"received {key!r} of type {type(key).__name__}")
        if not 0 <= key < n_classes:
            raise ValueError(f"{who}: class_weight names class {key}, which the model does "
                             f"not have: its {n_classes} classes are 0 to {n_classes - 1}")
        # finite and non-negative, as the losses' own class weights (as_class_weight)
        table[key] = check_real(value, who, f"class_weight[{key}]", low=0.0,
                                high=math.inf, high_open=True)
    as_class_weight(table, who, f"class_weight over the model's {n_classes} classes "
                                f"(a class missing from the dict weighs 1)")
    if reduction_of(loss) == "mean":  # a weighted mean: the same for a scaled table
        table = scaled_class_weights(table, who, "class_weight")
    return table[labels]


def largest_class_weight(loss) -> float:
    """The largest class weight ``loss`` multiplies a sample weight by in its
    mean's denominator (``CrossEntropy(weight=c)``: :math:`\\max_k c_k` of the
    table it computes with, :func:`tinynet.losses.scaled_class_weights`: at
    most 1 for a table near the largest float), or 1.0 (a loss without
    class weights): the ``factor`` of :func:`tinynet.checks.summable_weights`."""
    weight = loss._class_weights() if isinstance(loss, CrossEntropy) else None
    return 1.0 if weight is None else float(weight.max())


def weighted_by_class(sample_weight, by_class: np.ndarray) -> np.ndarray:
    """``sample_weight * by_class`` (``by_class`` from :func:`class_sample_weights`;
    ``sample_weight`` None for ones), without overflow: sample weights near
    the largest float are first scaled by
    :func:`tinynet.checks.summable_weights` so that no product overflows
    (1e308 times a class weight of 2 was inf, and the losses' mean NaN). Weights
    that do not overflow are multiplied as they are."""
    if sample_weight is None:
        return by_class
    return summable_weights(sample_weight, float(by_class.max())) * by_class


def _classes(y, loss, output_shape, who) -> tuple[int, np.ndarray]:
    """``(n_classes, labels)`` of the targets ``y`` for ``loss``, or a clear error."""
    if isinstance(loss, CrossEntropy):
        n_classes = output_shape[-1]
        if y.ndim == 2 and y.shape[1] == 1 and n_classes > 1:
            y = y[:, 0]
        labels = y if y.ndim == 1 else np.argmax(y, axis=1)  # one-hot or soft rows: Keras
        return n_classes, labels.astype(np.int64)
    if isinstance(loss, BinaryCrossEntropy):
        if int(np.prod(output_shape)) != 1:
            raise ValueError(f"{who}: class_weight needs one class per sample, but the model "
                             f"has {int(np.prod(output_shape))} sigmoid outputs (multi-label); "
                             f"weight their positives with BinaryCrossEntropy(pos_weight=...)")
        labels = y.reshape(len(y))
        if not np.all((labels == 0) | (labels == 1)):
            raise ValueError(f"{who}: class_weight needs targets that are classes (0 or 1), "
                             f"received other values such as "
                             f"{labels[(labels != 0) & (labels != 1)][0]}")
        return 2, labels.astype(np.int64)
    raise ValueError(f"{who}: class_weight needs class labels, but the loss is "
                     f"{type(loss).__name__}, not a classification loss (CrossEntropy or "
                     f"BinaryCrossEntropy); weight samples with sample_weight instead")
