r"""Loss functions: a scalar to minimise and its gradient with respect to the prediction.

Every loss follows one contract::

    value = loss.forward(pred, target)          # float, mean over the batch
    dpred = loss.backward()                     # dL/dpred, pred's shape and dtype

The classification losses take *logits* (unnormalised scores), not
probabilities: softmax and sigmoid are folded into the loss, which is both
cheaper and numerically stable (log-sum-exp and softplus forms, finite for
logits of :math:`\pm 10^4`).

Means match PyTorch's ``reduction='mean'``: the element-wise losses (MSE,
MAE, Huber, binary cross-entropy) average over every element, cross-entropy
averages over the samples.

Per-sample weights and masks
----------------------------
``forward(pred, target, sample_weight=None, mask=None)`` accepts per-sample
weights :math:`w_i \ge 0` of shape ``(batch,)`` and/or a 0/1 (or boolean)
``mask`` of shape ``(batch,)``; they multiply. With :math:`\ell_i` the loss of
sample :math:`i` (averaged over its elements), the value is the weighted mean

.. math::
    L = \frac{\sum_i w_i \ell_i}{\sum_i w_i},

so a mask averages over the masked-in samples only (what a multi-task model
needs for missing labels). Targets of masked-out samples are never read:
they may hold NaN or a placeholder label such as ``-1``. When every weight
is zero the loss is 0 and the gradient is zero.

Registry
--------
:func:`get` builds a loss from a name (``"mse"``, ``"cross_entropy"``, ...),
a ``{"class": ..., "config": ...}`` dict (see :func:`loss_to_dict`) or an
instance; unknown names get a did-you-mean hint.
"""

from __future__ import annotations

import numpy as np

from .checks import (as_array, as_float_array, as_float_targets, as_sample_weight,
                     check_finite, check_labels, did_you_mean, lookup)

__all__ = [
    "Loss", "MSE", "MAE", "Huber", "CrossEntropy", "BinaryCrossEntropy",
    "LOSSES", "LOSS_CLASSES", "get", "loss_to_dict", "loss_from_dict",
    "log_softmax", "softmax", "sigmoid",
]

#: Every concrete loss class by class name (filled by ``Loss.__init_subclass__``).
LOSS_CLASSES: dict[str, type] = {}


# --------------------------------------------------------------------------- maths
def log_softmax(z: np.ndarray) -> np.ndarray:
    r"""Row-wise :math:`\log \mathrm{softmax}(z)`, stable for any finite logits.

    .. math:: \log p_{ic} = z_{ic} - m_i - \log \sum_k e^{z_{ik} - m_i},
              \quad m_i = \max_k z_{ik}
    """
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for any finite logits."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    r"""Logistic function without overflow: :math:`e^{-|z|}` is at most 1."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def _softplus(z: np.ndarray) -> np.ndarray:
    r""":math:`\log(1 + e^z) = \max(z, 0) + \log(1 + e^{-|z|})`, finite for large :math:`|z|`."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


# --------------------------------------------------------------------------- base
class Loss:
    """Base class: checks inputs, applies sample weights, caches for backward.

    A subclass implements two pure functions of ``(pred, target)``:

    ``_forward(pred, target)``
        the unreduced loss: one value per element of ``pred`` (element-wise
        losses) or one per sample (``per_sample = True``);
    ``_backward(pred, target)``
        the derivative of each of those values with respect to ``pred``,
        shape of ``pred``, as a new array (the base class scales it in place).

    and ``_check_target(pred, target)`` returning the target in the form
    the maths expects. The base class reduces to the (weighted) mean and
    scales the gradient to match.
    """

    #: True when ``_forward`` gives one value per sample rather than per element.
    per_sample = False
    #: Placeholder written over the targets of masked-out samples.
    _fill_value = 0.0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            LOSS_CLASSES[cls.__name__] = cls

    def __init__(self):
        self._cache = None

    # ------------------------------------------------------------------ public
    def forward(self, pred, target, sample_weight=None, mask=None) -> float:
        """The mean loss over the batch.

        Parameters
        ----------
        pred : ndarray of shape (batch, ...), floating
            Predictions (logits for the cross-entropies).
        target : array_like
            Targets; the accepted shapes depend on the loss.
        sample_weight : array_like of shape (batch,), optional
            Non-negative per-sample weights.
        mask : array_like of shape (batch,), optional
            0/1 or boolean; 0 leaves a sample out (its target is not read).

        Returns
        -------
        float
        """
        pred = as_float_array(pred, self._who, "predictions", min_ndim=1)
        if pred.shape[0] == 0:
            raise ValueError(f"{self._who} expected at least one sample, "
                             f"received predictions of shape {pred.shape}")
        weight = self._sample_weights(sample_weight, mask, pred.shape[0])
        target = self._select(as_array(target, self._who, "targets"), weight)
        target = self._check_target(pred, target)
        per_item = self._forward(pred, target)
        n_items = 1 if self.per_sample else int(np.prod(pred.shape[1:], dtype=np.int64))
        per_sample = per_item.reshape(pred.shape[0], -1).sum(axis=1, dtype=np.float64)
        if weight is None:
            total_weight = float(pred.shape[0])
            value = per_sample.sum() / (total_weight * n_items)
        else:
            total_weight = float(weight.sum())
            value = (weight @ per_sample) / (total_weight * n_items) if total_weight else 0.0
        self._cache = (pred, target, weight, total_weight * n_items)
        return float(value)

    __call__ = forward

    def backward(self) -> np.ndarray:
        """dL/dpred for the last :meth:`forward`; same shape and dtype as ``pred``."""
        if self._cache is None:
            raise RuntimeError(f"{self._who}.backward() called before forward()")
        pred, target, weight, denominator = self._cache
        if denominator == 0:
            return np.zeros_like(pred)
        grad = self._backward(pred, target)
        if weight is None:
            grad *= pred.dtype.type(1.0 / denominator)
        else:
            scale = (weight / denominator).astype(pred.dtype)
            grad *= scale.reshape((-1,) + (1,) * (pred.ndim - 1))
        return grad

    def get_config(self) -> dict:
        """JSON-safe constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------- internals
    @property
    def _who(self) -> str:
        return type(self).__name__

    def _sample_weights(self, sample_weight, mask, n_samples):
        """The combined per-sample weights as float64, or None for all ones."""
        weight = None
        for what, arr in (("sample_weight", sample_weight), ("mask", mask)):
            if arr is None:
                continue
            arr = as_sample_weight(arr, n_samples, self._who, what)
            if what == "mask" and not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"{self._who} expected mask values 0 or 1, received "
                                 f"values in [{arr.min()}, {arr.max()}]")
            weight = arr if weight is None else weight * arr
        return weight

    def _select(self, target, weight):
        """Overwrite the targets of zero-weight samples with a harmless placeholder."""
        if weight is None or weight.all():
            return target
        target = np.array(target, copy=True)
        if target.ndim == 0 or target.shape[0] != weight.shape[0]:
            return target  # the shape check reports it
        if target.dtype == object:
            return target
        target[weight == 0] = self._fill_value
        return target

    def _check_target(self, pred, target) -> np.ndarray:
        raise NotImplementedError

    def _forward(self, pred, target):
        raise NotImplementedError

    def _backward(self, pred, target):
        raise NotImplementedError


class _ElementwiseLoss(Loss):
    """A loss of the difference of ``pred`` and a target of the same shape.

    Targets of integer or boolean dtype are accepted (cast to ``pred``'s
    dtype); a target of shape ``(batch,)`` is accepted for predictions of
    shape ``(batch, 1)``, the usual one-output regression.
    """

    def _check_target(self, pred, target):
        return as_float_targets(target, pred, self._who).astype(pred.dtype, copy=False)


# --------------------------------------------------------------------------- regression
class MSE(_ElementwiseLoss):
    r"""Mean squared error.

    .. math::
        L = \frac{1}{N}\sum_{j} (\hat y_j - y_j)^2, \qquad
        \frac{\partial L}{\partial \hat y_j} = \frac{2}{N} (\hat y_j - y_j)

    over all :math:`N` elements (``torch.nn.MSELoss``).
    """

    def _forward(self, pred, target):
        return np.square(pred - target)

    def _backward(self, pred, target):
        return 2 * (pred - target)


class MAE(_ElementwiseLoss):
    r"""Mean absolute error.

    .. math::
        L = \frac{1}{N}\sum_{j} |\hat y_j - y_j|, \qquad
        \frac{\partial L}{\partial \hat y_j} = \frac{1}{N}\,\mathrm{sign}(\hat y_j - y_j)

    with :math:`\mathrm{sign}(0) = 0` (``torch.nn.L1Loss``).
    """

    def _forward(self, pred, target):
        return np.abs(pred - target)

    def _backward(self, pred, target):
        return np.sign(pred - target)


class Huber(_ElementwiseLoss):
    r"""Huber loss: quadratic near zero, linear beyond ``delta``.

    With :math:`d_j = \hat y_j - y_j`,

    .. math::
        L = \frac{1}{N}\sum_j \begin{cases}
              \tfrac12 d_j^2 & |d_j| < \delta \\
              \delta\,(|d_j| - \tfrac12\delta) & \text{otherwise}
            \end{cases}, \qquad
        \frac{\partial L}{\partial \hat y_j} = \frac{1}{N}\,\mathrm{clip}(d_j, -\delta, \delta)

    (``torch.nn.HuberLoss``).

    Parameters
    ----------
    delta : float, default 1.0
        Where the quadratic turns linear; must be positive.
    """

    def __init__(self, delta: float = 1.0):
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating,
                                                             np.integer)):
            raise TypeError(f"Huber expected delta as a number, received {delta!r}")
        if not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"Huber expected a positive finite delta, received {delta}")
        self.delta = float(delta)
        super().__init__()

    def _forward(self, pred, target):
        d = np.abs(pred - target)
        delta = pred.dtype.type(self.delta)
        return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))

    def _backward(self, pred, target):
        delta = pred.dtype.type(self.delta)
        return np.clip(pred - target, -delta, delta)

    def get_config(self) -> dict:
        return {"delta": self.delta}


# --------------------------------------------------------------------------- classification
class CrossEntropy(Loss):
    r"""Softmax cross-entropy from logits (``torch.nn.CrossEntropyLoss``).

    Targets are integer class labels of shape ``(batch,)`` (or ``(batch, 1)``) or class
    probabilities of the logits' shape ``(batch, n_classes)`` (one-hot or
    soft). With :math:`\log p = \log\mathrm{softmax}(z)` and label smoothing
    :math:`\varepsilon` over :math:`C` classes the target becomes
    :math:`t' = (1 - \varepsilon)\,t + \varepsilon / C` and

    .. math::
        L = -\frac{1}{B}\sum_i \sum_c t'_{ic} \log p_{ic}, \qquad
        \frac{\partial L}{\partial z_{ic}}
          = \frac{1}{B}\Big(p_{ic} \sum_k t'_{ik} - t'_{ic}\Big)

    which is :math:`(p - t')/B` when each target row sums to one. A class
    whose target is 0 adds nothing, so a logit of :math:`-\infty` (a masked
    class) leaves the loss finite, as in PyTorch.

    Parameters
    ----------
    label_smoothing : float in [0, 1], default 0
    """

    per_sample = True

    def __init__(self, label_smoothing: float = 0.0):
        if isinstance(label_smoothing, bool) or not isinstance(
                label_smoothing, (int, float, np.floating, np.integer)):
            raise TypeError(f"CrossEntropy expected label_smoothing as a number, "
                            f"received {label_smoothing!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropy expected label_smoothing in [0, 1], "
                             f"received {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        super().__init__()

    def _check_target(self, pred, target):
        if pred.ndim != 2:
            raise ValueError(f"{self._who} expected logits of shape (batch, n_classes), "
                             f"received {pred.shape}")
        n_samples, n_classes = pred.shape
        target = np.asarray(target)
        if target.ndim == 2 and target.shape == (n_samples, 1) and n_classes > 1:
            target = target[:, 0]  # a column of labels, as Keras' sparse targets often are
        if target.ndim == 1 or target.ndim == 0:
            labels = check_labels(target, n_classes, n_samples, self._who)
            probs = np.zeros(pred.shape, dtype=pred.dtype)
            probs[np.arange(n_samples), labels] = 1
        else:
            if target.dtype == bool or (target.dtype != object
                                        and np.issubdtype(target.dtype, np.integer)):
                target = target.astype(pred.dtype)
            probs = as_float_array(target, self._who, "target probabilities")
            if probs.shape != pred.shape:
                raise ValueError(
                    f"{self._who} expected integer labels of shape ({n_samples},) or "
                    f"probabilities of the logits' shape {pred.shape}, received {probs.shape}")
            check_finite(probs, self._who, "target probabilities")
            if (probs < 0).any():
                raise ValueError(f"{self._who} expected non-negative target probabilities, "
                                 f"received a minimum of {probs.min()}")
            probs = probs.astype(pred.dtype, copy=False)
        if self.label_smoothing:
            eps = self.label_smoothing
            probs = (1 - eps) * probs + eps / n_classes
            probs = probs.astype(pred.dtype, copy=False)
        return probs

    def forward(self, pred, target, sample_weight=None, mask=None) -> float:
        self._fused_grad = None
        if sample_weight is None and mask is None:
            value = self._fused_forward(pred, as_array(target, self._who, "targets"))
            if value is not None:
                return value
        return super().forward(pred, target, sample_weight=sample_weight, mask=mask)

    __call__ = forward

    def backward(self) -> np.ndarray:
        if getattr(self, "_fused_grad", None) is not None:
            return self._fused_grad
        return super().backward()

    def _fused_forward(self, pred, target):
        """Loss and gradient in one kernel pass, for integer labels without
        weights (unless the backend is "numpy"); None when it does not apply.
        The generic path (``_forward``/``_backward``) is its reference."""
        from . import kernels
        if (kernels.effective_backend() == "numpy" or not isinstance(pred, np.ndarray)
                or pred.dtype not in (np.float32, np.float64) or pred.ndim != 2
                or pred.shape[0] == 0 or np.ndim(target) != 1):
            return None
        labels = check_labels(target, pred.shape[1], pred.shape[0], self._who)
        total, grad = kernels.impl("softmax_cross_entropy", pred.size)(
            pred, labels, self.label_smoothing, 1.0 / pred.shape[0])
        self._cache = None
        self._fused_grad = grad
        return total / pred.shape[0]

    def _forward(self, logits, probs):
        # 0 log p = 0 even where p = 0 (a logit of -inf: a masked class)
        with np.errstate(invalid="ignore"):
            terms = probs * log_softmax(logits)
        return -np.where(probs != 0, terms, 0).sum(axis=1)

    def _backward(self, logits, probs):
        return softmax(logits) * probs.sum(axis=1, keepdims=True) - probs

    def get_config(self) -> dict:
        return {"label_smoothing": self.label_smoothing}


class BinaryCrossEntropy(_ElementwiseLoss):
    r"""Sigmoid cross-entropy from logits (``torch.nn.BCEWithLogitsLoss``).

    Targets :math:`t \in [0, 1]` of the logits' shape (any shape). In the
    softplus form, finite for any finite logit :math:`z`,

    .. math::
        L = \frac{1}{N}\sum_j \big(\max(z_j, 0) - z_j t_j + \log(1 + e^{-|z_j|})\big),
        \qquad
        \frac{\partial L}{\partial z_j} = \frac{1}{N}\big(\sigma(z_j) - t_j\big).
    """

    def _check_target(self, pred, target):
        target = super()._check_target(pred, target)
        if target.size and (target.min() < 0 or target.max() > 1):
            raise ValueError(f"{self._who} expected targets in [0, 1], received values "
                             f"in [{target.min()}, {target.max()}]")
        return target

    def _forward(self, logits, target):
        return _softplus(logits) - logits * target

    def _backward(self, logits, target):
        return sigmoid(logits) - target


# --------------------------------------------------------------------------- registry
#: Loss names (and their Keras aliases) to classes.
LOSSES: dict[str, type] = {
    "mse": MSE, "mean_squared_error": MSE,
    "mae": MAE, "mean_absolute_error": MAE, "l1": MAE,
    "huber": Huber,
    "cross_entropy": CrossEntropy, "categorical_crossentropy": CrossEntropy,
    "sparse_categorical_crossentropy": CrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy, "binary_crossentropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
}


def loss_to_dict(loss: Loss) -> dict:
    """``{"class": "Huber", "config": {"delta": 1.0}}``: JSON-safe, for saving models."""
    return {"class": type(loss).__name__, "config": loss.get_config()}


def loss_from_dict(spec: dict) -> Loss:
    """Inverse of :func:`loss_to_dict`."""
    if not isinstance(spec, dict) or "class" not in spec:
        raise ValueError(f"expected a loss dict with a 'class' key, received {spec!r}")
    cls = LOSS_CLASSES.get(spec["class"])
    if cls is None:
        raise ValueError(f"unknown loss class {spec['class']!r}"
                         f"{did_you_mean(spec['class'], LOSS_CLASSES)} "
                         f"(known: {', '.join(sorted(LOSS_CLASSES))})")
    return cls.from_config(dict(spec.get("config", {})))


def get(spec, **kwargs) -> Loss:
    """A loss from a name (``"mse"``, ``"cross_entropy"``...), a dict or an instance.

    Keyword arguments go to the constructor when ``spec`` is a name:
    ``get("huber", delta=0.5)``.
    """
    if isinstance(spec, Loss):
        if kwargs:
            raise TypeError(f"get() takes no keyword arguments with a loss instance, "
                            f"received {sorted(kwargs)}")
        return spec
    if isinstance(spec, dict):
        return loss_from_dict(spec)
    if isinstance(spec, type) and issubclass(spec, Loss):
        return spec(**kwargs)
    return lookup(LOSSES, spec, "loss")(**kwargs)
