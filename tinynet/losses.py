r"""Loss functions: a scalar to minimise and its gradient with respect to the prediction.

Every loss follows one contract::

    value = loss.forward(pred, target)          # float, mean over the batch
    dpred = loss.backward()                     # dL/dpred, pred's shape and dtype

``backward`` returns a new array on every call: the caller owns it and may
change it in place (a second call is not affected).

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
needs for missing labels). Where :math:`\sum_i w_i \ell_i` or :math:`\sum_i w_i`
overflows but :math:`L` does not (weights near the largest float, or weights
of finite sum times losses above 1), :math:`L` and its gradient are computed
from the weights divided by their maximum (:func:`_rescaled_mean`); other
weights keep the plain sums, to the bit. (Class weights near the largest or the smallest
float are scaled by a power of two first: :func:`scaled_class_weights`.) Targets of
masked-out samples are never read:
they may hold NaN or a placeholder label such as ``-1``. When every weight
is zero the loss is 0 and the gradient is zero (PyTorch's 0/0 gives NaN),
without a NumPy warning; :attr:`Loss.weight_total` is then 0, so the batch
counts for nothing in a mean over batches (:func:`batch_weight`). With
class weights this is also the loss of a batch whose samples are all of
classes that weigh 0, while other classes weigh more: a legitimate batch
(not a mistake to refuse) that does not move the model.

:class:`CrossEntropy` also takes per-class weights ``weight=`` (PyTorch's);
with integer labels each sample's weight in *both* sums is then
:math:`w_i\,c_{y_i}` (see the class).

Reductions
----------
Every loss takes ``reduction="mean"`` (the default, above), ``"sum"`` or
``"none"``, as PyTorch's. Write :math:`s_i` for the loss of sample :math:`i`
*summed* over its :math:`n` elements (:math:`n = 1` for cross-entropy, which
has one loss per sample, and for a one-output regression) and :math:`w_i`
for its weight (1 without weights):

``"mean"``
    ``forward`` returns :math:`L = \sum_i w_i s_i / (n \sum_i w_i)` and
    ``backward(dloss=1)`` returns
    :math:`\text{dloss}\cdot w_i\,\partial s_i/\partial \hat y_i / (n \sum_k w_k)`.
``"sum"``
    ``forward`` returns :math:`L = \sum_i w_i s_i` and ``backward(dloss=1)``
    returns :math:`\text{dloss}\cdot w_i\,\partial s_i/\partial \hat y_i`.
``"none"``
    ``forward`` returns the vector :math:`(w_i s_i)_i` of shape ``(batch,)``
    in ``pred``'s dtype, and ``backward(dloss)`` returns
    :math:`\text{dloss}_i\, w_i\,\partial s_i/\partial \hat y_i` (the gradient
    of :math:`\sum_i \text{dloss}_i\, w_i s_i`).

``"sum"`` is PyTorch's sum over every element, and ``"none"``'s vector sums
to it. PyTorch's ``'none'`` keeps the element-wise losses of MSE, MAE, Huber
and BCE unreduced, and Keras' ``None`` averages them over the last axis;
tinynet's sums each sample's elements (one value per sample, as the
cross-entropies give), which equals both for one output per sample.
``backward`` takes the upstream gradient ``dloss``: a number for
``"mean"``/``"sum"`` (default 1), and, required, an array of shape
``(batch,)`` for ``"none"`` (PyTorch likewise refuses ``backward()`` on a
non-scalar). A model trains on a scalar, so ``compile`` refuses
``"none"`` (:func:`check_trainable`); call such a loss directly.

Registry
--------
:func:`get` builds a loss from a name (``"mse"``, ``"cross_entropy"``, ...),
a ``{"class": ..., "config": ...}`` dict (see :func:`loss_to_dict`) or an
instance; unknown names get a did-you-mean hint.
"""

from __future__ import annotations

import math

import numpy as np

from .checks import (as_array, as_class_weight, as_float_array, as_float_targets,
                     as_sample_weight, check_finite, check_labels, did_you_mean,
                     is_real_dtype, lookup)
from .kernels.activations import stable_sigmoid as sigmoid  # public: tinynet.losses.sigmoid
from .layers._checks import (Setting, adopt_settings, call_with_settings, check_real,
                             settings_of)

__all__ = [
    "Loss", "MSE", "MAE", "Huber", "CrossEntropy", "BinaryCrossEntropy",
    "LOSSES", "LOSS_CLASSES", "CLASSIFICATION_LOSSES", "REDUCTIONS", "get", "loss_to_dict",
    "loss_from_dict",
    "check_reduction", "check_trainable", "reduction_of", "reduces_to_sum", "batch_weight",
    "log_softmax", "softmax", "sigmoid", "scaled_class_weights",
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


def _softplus(z: np.ndarray) -> np.ndarray:
    r""":math:`\log(1 + e^z) = \max(z, 0) + \log(1 + e^{-|z|})`, finite for large :math:`|z|`."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


# --------------------------------------------------------------------------- base
#: The reductions every loss takes (module docstring).
REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction, who: str, what: str = "reduction") -> str:
    """Return ``reduction`` if it is one of :data:`REDUCTIONS`, else raise
    (``what``: the name it goes by, for a :class:`Setting`)."""
    if not isinstance(reduction, str):
        raise TypeError(f"{who} expected {what} as one of {', '.join(map(repr, REDUCTIONS))}, "
                        f"received {reduction!r} of type {type(reduction).__name__}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{who} expected {what} as one of "
                         f"{', '.join(map(repr, REDUCTIONS))}, received {reduction!r}"
                         f"{did_you_mean(reduction, REDUCTIONS)}")
    return reduction


def _class_weight_or_none(weight, who: str, what: str, **options):
    """None (no weights), or ``weight`` checked by :func:`as_class_weight`
    (``options``: its ``scalar`` and ``all_zero``)."""
    return None if weight is None else as_class_weight(weight, who, what, **options)


def reduction_of(loss) -> str:
    """``loss.reduction``, or ``"mean"`` for a loss that does not say (a
    plain function, a user's own object)."""
    return getattr(loss, "reduction", "mean")


def reduces_to_sum(loss) -> bool:
    """Whether ``loss`` reduces to a sum (``reduction="sum"``): its batch
    values are then averaged by samples (Keras' mean of batch sums), not by
    the loss's total weight."""
    return reduction_of(loss) == "sum"


def check_trainable(loss, who: str) -> None:
    """Refuse a loss that a model cannot train on: ``reduction="none"`` gives
    one value per sample, and training needs one number to minimise."""
    if reduction_of(loss) == "none":
        raise ValueError(f"{who} cannot train on {loss!r}: reduction='none' gives one loss "
                         f"per sample, not a number to minimise; use reduction='mean' (or "
                         f"'sum') in a model, and 'none' in direct calls of the loss")


def batch_weight(loss, n_samples: int) -> float:
    """What a batch of ``n_samples`` counts for in a mean of ``loss``'s values
    over batches (an epoch's log, an evaluation in batches): the last
    forward's total weight (:attr:`Loss.weight_total`), so that weighted means
    combine to the weighted mean of the union; the batch size for a ``"sum"``
    loss (Keras' mean of batch sums) or for a loss that does not say its
    total."""
    total = getattr(loss, "weight_total", None)
    return n_samples if total is None or reduces_to_sum(loss) else total


def _weighted_sum(per_sample, weight):
    r""":math:`\sum_i w_i s_i` (:math:`\sum_i s_i` without weights)."""
    return per_sample.sum() if weight is None else weight @ per_sample


#: Class weights whose largest lies in [2**-60, 2**60] are used as they are:
#: their products and sums stay far from float32's overflow and underflow.
CLASS_WEIGHT_EXPONENT = 60


#: A class-weight table whose largest weight is at most 2**CLASS_WEIGHT_RATIO times
#: its smallest positive one is always scaled exactly (:func:`scaled_class_weights`).
CLASS_WEIGHT_RATIO = 1021


def scaled_class_weights(weight: np.ndarray, who: str = "scaled_class_weights",
                         what: str = "class weights") -> np.ndarray:
    r"""The class weights :math:`c` a mean over integer labels computes with:
    ``weight`` itself when its largest value lies in
    :math:`[2^{-60}, 2^{60}]` (every ordinary table: nothing changes, to the
    bit), else ``weight`` divided by the power of two :math:`2^e` that
    brings its largest into :math:`[0.5, 1)`.

    The weighted mean :math:`\sum_i w_i s_i / \sum_i w_i c_{y_i}`, whose
    :math:`s_i` is linear in :math:`c`, does not change when every
    :math:`c_k` is divided by one number, and a division by a power of two is
    exact: the mean is the one exact arithmetic would give the table as it
    is. Class weights near the largest float (``1e308``, or ``1e30`` in
    float32 logits) overflowed the losses' or the weights' sums (NaN or inf
    where the mean is finite), and tiny ones (``1e-300``, ``1e-45`` in
    float32) underflowed them (a mean of 0, a gradient of inf). The same
    :math:`e` serves every batch (it depends on the table alone), so the
    batches' ``weight_total`` -- :math:`\sum_i w_i c_{y_i} / 2^e` then -- still
    combine their means exactly.

    The division is exact as long as every positive weight stays a normal
    float64, which a table whose largest weight is at most
    :math:`2^{1021}` (:data:`CLASS_WEIGHT_RATIO`, about ``2.2e307``) times its
    smallest positive one always does. A wider table (``[1e300, 1e-300]``)
    lost its small weights: divided by :math:`2^{997}`, ``1e-300`` became 0,
    and a batch of that class had a loss of 0 where its mean is the plain
    mean of its losses. Such a table is refused (a ValueError naming ``who``
    and ``what``) whenever the division is not exact: a scale keeping both
    of its ends would put the largest weight far above 1, where its products
    and sums with the sample weights overflow."""
    largest = float(weight.max())
    if 2.0 ** -CLASS_WEIGHT_EXPONENT <= largest <= 2.0 ** CLASS_WEIGHT_EXPONENT:
        return weight
    shift = int(np.frexp(largest)[1])
    scaled = np.ldexp(weight, -shift)
    lost = np.ldexp(scaled, shift) != weight
    if lost.any():
        k = int(np.argmax(lost))
        smallest = float(weight[weight > 0].min())
        raise ValueError(
            f"{who} expected {what} whose largest is at most 2**{CLASS_WEIGHT_RATIO} "
            f"(about {2.0 ** CLASS_WEIGHT_RATIO:.2g}) times the smallest positive one, "
            f"received weights from {largest:.6g} down to {smallest:.6g} (a ratio of about "
            f"2**{math.log2(largest) - math.log2(smallest):.0f}): the mean divides them by "
            f"2**{shift} (so that its sums cannot overflow), and weight {k} = "
            f"{weight[k]:.6g} would become {scaled[k]:.6g}, changing the loss; set the "
            f"smallest weights to 0 or raise them")
    return scaled


def _rescaled_mean(weight, class_norm, per_sample, n_items):
    r"""``(L, scale)``: the weighted mean :math:`L = \sum_i w_i s_i / (n
    \sum_i w_i c_i)` (:math:`c_i` the class weights of ``class_norm``, 1
    without) and the per-sample factors :math:`w_i / (n \sum_k w_k c_k)` of
    its gradient, computed so that no sum overflows where they are finite.

    Both are unchanged when every :math:`w_i` is divided by :math:`w_{max}`:
    the weights then lie in [0, 1], and their sum (at most the batch size)
    cannot overflow; the losses are divided by :math:`\max_i |s_i|` for
    the numerator's sum and the quotient multiplied back. Weights of finite
    sum times losses above 1 overflowed the numerator, weights near the
    largest float (``np.full(n, 1e308)``) the denominator too, and the loss
    was inf or NaN (``fit`` and ``evaluate`` scaled their weights, by
    :func:`tinynet.checks.summable_weights`; a direct call did not).
    :meth:`Loss.forward` takes this path only when the plain quotient is
    not finite, so ordinary weights keep their bits (it rounds
    differently: the divisions by :math:`w_{max}` and :math:`\max|s_i|` are
    not exact); an inf or NaN :math:`s_i` gives an inf or NaN mean here too."""
    w = weight / weight.max()
    denominator = (w if class_norm is None else w * class_norm).sum() * n_items
    largest = np.abs(per_sample).max()
    if 0 < largest < np.inf:
        with np.errstate(over="ignore"):  # a mean past the largest float: inf, as it is
            mean = (w @ (per_sample / largest)) / denominator * largest
    else:  # every loss 0, or one inf or NaN, which the mean keeps
        mean = (w @ per_sample) / denominator
    return mean, w / denominator


class Loss:
    """Base class: checks inputs, applies sample weights, reduces, caches for backward.

    A subclass implements two pure functions of ``(pred, target)``:

    ``_forward(pred, target)``
        the unreduced loss: one value per element of ``pred`` (element-wise
        losses) or one per sample (``per_sample = True``);
    ``_backward(pred, target)``
        the derivative of each of those values with respect to ``pred``,
        shape of ``pred``, as a new array (the base class scales it in place).

    and ``_check_target(pred, target)`` returning the target in the form
    the maths expects (or ``_prepare``, which may also return per-sample
    weights of the mean's denominator). The base class reduces (module
    docstring: ``"mean"``, ``"sum"`` or ``"none"``) and scales the
    gradient to match.

    The settings (``reduction`` here; ``delta``, ``label_smoothing``,
    ``weight``, ``pos_weight`` in the subclasses) are
    :class:`~tinynet.layers._checks.Setting` attributes, as the layers' are:
    ``loss.label_smoothing = 2.0`` after the constructor is checked as the
    constructor checks it, with the same error, and the loss never holds a
    value it would compute garbage from.

    As an activation layer's (:class:`~tinynet.layers.Activation`), the
    forward keeps the settings it ran with
    (:func:`~tinynet.layers._checks.settings_of`) beside its cache, and the
    backward computes with those: a setting set between a forward and its
    backward (``huber.delta = 2.0``, ``loss.reduction = "sum"``) takes
    effect at the next forward, and the backward is still the gradient of
    the function the forward computed, reduced as it was (the clip at the
    old ``delta``; not a mean's gradient scaled as a sum's). ``_forward``
    and ``_backward`` receive, as keyword arguments, the settings their
    signature names (``Huber._backward(pred, target, delta)``;
    :func:`~tinynet.layers._checks.call_with_settings`); one written without
    them reads ``self.<setting>``, and then sees a setting set since its
    forward (``Huber``'s, given ``delta=None`` by such an override's
    ``super()._forward(pred, target)``, reads ``self.delta``). ``label_smoothing``, ``weight`` and ``pos_weight`` enter the
    target that ``_prepare`` makes, which the cache holds.

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}, default "mean"
    """

    #: True when ``_forward`` gives one value per sample rather than per element.
    per_sample = False
    #: The reduction; "mean" until set, so a subclass written before
    #: ``reduction=`` existed, whose ``__init__`` does not call this one, still
    #: reduces to the mean.
    reduction = Setting(check_reduction, default="mean")
    _cache = None
    #: The settings the last forward ran with (:func:`settings_of`), which its
    #: backward differentiates with.
    _settings = None
    #: Placeholder written over the targets of masked-out samples.
    _fill_value = 0.0
    #: The total weight of the last forward's samples: the mean's denominator
    #: over the element count (the batch size without weights; ``sum w_i``,
    #: or ``sum w_i c_{y_i}`` for class-weighted labels, the class weights
    #: scaled as :func:`scaled_class_weights` says). Means of batches
    #: weighted by it combine to the exact mean of their union.
    weight_total = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            LOSS_CLASSES[cls.__name__] = cls

    def __init__(self, reduction: str = "mean"):
        self.reduction = reduction
        self._cache = None

    def _setting_changed(self, name: str) -> None:
        """Called by a :class:`~tinynet.layers._checks.Setting` that took a new
        value: a loss has nothing to recompute (its next forward reads it)."""

    # ------------------------------------------------------------------ public
    def forward(self, pred, target, sample_weight=None, mask=None):
        """The loss of the batch, reduced as ``self.reduction`` says.

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
        float, or ndarray of shape (batch,) for ``reduction="none"``
        """
        settings = settings_of(self)
        reduction = settings["reduction"]
        pred = as_float_array(pred, self._who, "predictions", min_ndim=1)
        if pred.shape[0] == 0:
            raise ValueError(f"{self._who} expected at least one sample, "
                             f"received predictions of shape {pred.shape}")
        weight = self._sample_weights(sample_weight, mask, pred.shape[0])
        target = self._select(as_array(target, self._who, "targets"), weight)
        target, class_norm = self._prepare(pred, target)
        per_item = call_with_settings(self, "_forward", (pred, target), settings)
        per_sample = per_item.reshape(pred.shape[0], -1).sum(axis=1, dtype=np.float64)
        self.weight_total = self._weight_total(pred, weight, class_norm)
        if reduction == "none":
            values = per_sample if weight is None else weight * per_sample
            return self._keep(values.astype(pred.dtype), (pred, target, weight), settings)
        if reduction == "sum":
            return self._keep(float(_weighted_sum(per_sample, weight)),
                              (pred, target, 1.0 if weight is None else weight), settings)
        with np.errstate(over="ignore"):  # where the mean does not: see _rescaled_mean
            total = _weighted_sum(per_sample, weight)
        n_items = 1 if self.per_sample else int(np.prod(pred.shape[1:], dtype=np.int64))
        denominator = self.weight_total * n_items
        if denominator == 0:
            return self._keep(0.0, (pred, target, 0.0), settings)
        with np.errstate(over="ignore", invalid="ignore"):  # inf / inf: handled below
            mean = total / denominator
        if weight is not None and not (np.isfinite(mean) and np.isfinite(denominator)):
            # a sum may have overflowed where the mean does not (the losses' sum: inf
            # or NaN; the weights' alone: a mean of 0): the safe path, only then
            mean, scale = _rescaled_mean(weight, class_norm, per_sample, n_items)
        else:
            scale = 1.0 / denominator if weight is None else weight / denominator
        return self._keep(float(mean), (pred, target, scale), settings)

    __call__ = forward

    def _keep(self, value, cache, settings: dict):
        """``value``, the forward's result, once ``cache`` (``(pred, target,
        scale)``) and the ``settings`` it ran with are kept for :meth:`backward`."""
        self._cache, self._settings = cache, settings
        return value

    def _forward_settings(self) -> dict:
        """The settings the last forward ran with: one set since waits for the
        next forward. The current ones for a subclass whose own ``forward``
        fills ``_cache`` and records none."""
        return settings_of(self) if self._settings is None else self._settings

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a loss pickled when its settings were plain attributes
        (``state["reduction"]``, not the Setting's slot) gets them as settings
        (:func:`~tinynet.layers._checks.adopt_settings`)."""
        self.__dict__.update(state)
        adopt_settings(self)

    def backward(self, dloss=None) -> np.ndarray:
        """dL/dpred for the last :meth:`forward`; same shape and dtype as ``pred``.

        Parameters
        ----------
        dloss : float, or array_like of shape (batch,) for ``reduction="none"``
            The upstream gradient :math:`\\partial(\\cdot)/\\partial L` (chain
            rule); default 1 for a scalar loss, required for ``"none"``.

        Returns
        -------
        ndarray
            A new array on every call, which the caller may modify in place.
        """
        if self._cache is None:
            raise RuntimeError(f"{self._who}.backward() called before forward()")
        pred, target, scale = self._cache
        settings = self._forward_settings()
        scale = self._upstream(scale, dloss, pred.shape[0], settings["reduction"])
        if np.ndim(scale) == 0 and scale == 0:
            return np.zeros_like(pred)
        grad = call_with_settings(self, "_backward", (pred, target), settings)
        return _scaled(grad, scale)  # a new array every call

    def get_config(self) -> dict:
        """JSON-safe constructor arguments."""
        return {"reduction": self.reduction}

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

    def _upstream(self, scale, dloss, n_samples, reduction: str):
        """``scale`` (a number, or per-sample float64; None for ones) times the
        upstream gradient ``dloss``, checked for ``reduction`` (the forward's)."""
        who = f"{self._who}.backward"
        if reduction == "none":
            if dloss is None:
                raise ValueError(
                    f"{who} needs the upstream gradient dloss of shape ({n_samples},): "
                    f"reduction='none' gave one loss per sample (e.g. "
                    f"backward(np.ones({n_samples})) for the gradient of their sum)")
            dloss = as_array(dloss, who, "dloss")
            if not is_real_dtype(dloss.dtype) or dloss.shape != (n_samples,):
                raise ValueError(f"{who} expected dloss as real numbers of shape "
                                 f"({n_samples},) (one per sample), received {dloss.dtype} "
                                 f"of shape {dloss.shape}")
            dloss = dloss.astype(np.float64)
            return dloss if scale is None else scale * dloss
        if dloss is None:
            return scale
        if (isinstance(dloss, bool) or np.ndim(dloss) != 0
                or not is_real_dtype(np.asarray(dloss).dtype)):
            raise ValueError(f"{who} expected dloss as a number (the loss is a scalar with "
                             f"reduction={reduction!r}), received {dloss!r}"[:300])
        return scale * float(dloss)

    @staticmethod
    def _weight_total(pred, weight, class_norm) -> float:
        """:attr:`weight_total`: the batch size, or the sum of the weights of
        the mean's denominator, :math:`w_i` times the class weights
        ``class_norm`` (the loss's own per-sample weights of its mean) when
        there are some. inf, without a warning, when it overflows (weights
        near the largest float): the mean does not (:func:`_rescaled_mean`)."""
        if class_norm is None and weight is None:
            return float(pred.shape[0])
        with np.errstate(over="ignore"):
            norm = weight if class_norm is None else \
                class_norm if weight is None else weight * class_norm
            return float(norm.sum())

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

    def _prepare(self, pred, target):
        """``(target for the maths, per-sample weights of the mean's
        denominator or None for ones)``."""
        return self._check_target(pred, target), None

    def _check_target(self, pred, target) -> np.ndarray:
        raise NotImplementedError

    def _forward(self, pred, target):
        raise NotImplementedError

    def _backward(self, pred, target):
        raise NotImplementedError


def _scaled(grad: np.ndarray, scale) -> np.ndarray:
    """``grad`` times ``scale`` (a number, or one factor per sample), in place."""
    if scale is None:
        return grad
    if np.ndim(scale) == 0:
        if scale != 1.0:
            grad *= grad.dtype.type(scale)
        return grad
    grad *= np.asarray(scale).astype(grad.dtype).reshape((-1,) + (1,) * (grad.ndim - 1))
    return grad


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
    reduction : {"mean", "sum", "none"}, default "mean"
    """

    delta = Setting(check_real, low=0.0, low_open=True, high_open=True)

    def __init__(self, delta: float = 1.0, reduction: str = "mean"):
        self.delta = delta
        super().__init__(reduction)

    def _forward(self, pred, target, delta=None):
        # delta None: self.delta (a subclass's super()._forward(pred, target))
        d = np.abs(pred - target)
        delta = pred.dtype.type(self.delta if delta is None else delta)
        return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))

    def _backward(self, pred, target, delta=None):
        delta = pred.dtype.type(self.delta if delta is None else delta)
        return np.clip(pred - target, -delta, delta)

    def get_config(self) -> dict:
        return {"delta": self.delta, **super().get_config()}


# --------------------------------------------------------------------------- classification
class CrossEntropy(Loss):
    r"""Softmax cross-entropy from logits (``torch.nn.CrossEntropyLoss``).

    Targets are integer class labels of shape ``(batch,)`` (or ``(batch, 1)``) or class
    probabilities of the logits' shape ``(batch, n_classes)`` (one-hot or
    soft). With :math:`\log p = \log\mathrm{softmax}(z)`, label smoothing
    :math:`\varepsilon` over :math:`C` classes, which makes the target
    :math:`t' = (1 - \varepsilon)\,t + \varepsilon / C` (:math:`t` one-hot for a
    label), and class weights :math:`c` (``weight``; all ones without), the
    loss of sample :math:`i` is, with :math:`a_{ic} = c_c\,t'_{ic}`,

    .. math::
        \ell_i = -\sum_c a_{ic} \log p_{ic}, \qquad
        \frac{\partial \ell_i}{\partial z_{ic}} = p_{ic} \sum_k a_{ik} - a_{ic}.

    ``reduction="mean"`` divides :math:`\sum_i \ell_i` by PyTorch's
    denominator, which depends on the kind of target:

    * labels :math:`y_i`: :math:`D = \sum_i c_{y_i}` (without smoothing the
      weighted mean :math:`\sum_i c_{y_i} (-\log p_{i y_i}) / \sum_i c_{y_i}`;
      with smoothing PyTorch keeps this :math:`D`, and so does tinynet);
    * probabilities: :math:`D = B`, the batch size, *whatever the class
      weights* (PyTorch's rule: one-hot targets and the same labels give
      different means once there are class weights; pass labels for the
      weighted mean).

    So :math:`L = \sum_i \ell_i / D` and :math:`\partial L/\partial z_{ic} =
    (p_{ic} \sum_k a_{ik} - a_{ic}) / D`, which is :math:`(p - t')/B` without
    class weights. Sample weights and a mask :math:`w_i` multiply each
    sample's terms in both sums: :math:`L = \sum_i w_i \ell_i / \sum_i w_i
    c_{y_i}` (labels) or :math:`\sum_i w_i \ell_i / \sum_i w_i`
    (probabilities). ``"sum"`` is :math:`\sum_i w_i \ell_i` and ``"none"``
    the vector :math:`(w_i \ell_i)_i`, as PyTorch's (which has no
    ``sample_weight``). When :math:`D = 0` (every weight zero, or a batch
    whose labels are all of classes that weigh 0) the loss is 0 and the
    gradient zero, where PyTorch returns NaN (0/0).

    A class whose target is 0 adds nothing, so a logit of :math:`-\infty` (a
    masked class) leaves the loss finite, as in PyTorch.

    Parameters
    ----------
    label_smoothing : float in [0, 1], default 0
    weight : array_like of shape (n_classes,), optional
        Per-class weights :math:`c`: real numbers (not booleans), finite,
        non-negative (PyTorch accepts negative weights, which make a loss to
        maximise; tinynet refuses them) and not all zero (every loss would
        be 0 and nothing would train); the length is checked against the
        logits. Saved with the model as a list. A mean over labels computes
        with the table as :func:`scaled_class_weights` gives it (which
        refuses a table too wide to divide exactly), divided again by a
        power of two for a batch whose classes all weigh little
        (:meth:`_batch_scaled`: exact, so that float32 logits hold them).
    reduction : {"mean", "sum", "none"}, default "mean"

    Without class weights, sample weights or a mask, and with a reduction
    to a number, forward and backward run as one fused kernel pass over
    integer labels (:mod:`tinynet.kernels.losses`); otherwise through the
    general path above, which is the kernel's reference. ``backward``
    returns a copy of the pass's gradient, a new array on every call (as
    the general path's).
    """

    per_sample = True

    label_smoothing = Setting(check_real, low=0.0, high=1.0)
    weight = Setting(_class_weight_or_none, what="weight (one per class)")

    def __init__(self, label_smoothing: float = 0.0, weight=None, reduction: str = "mean"):
        self.label_smoothing = label_smoothing
        self.weight = weight
        super().__init__(reduction)

    def _target_probs(self, pred, target):
        """``(t', labels)``: the smoothed target probabilities, shape of
        ``pred``, and the integer labels they came from (None for
        probability targets)."""
        if pred.ndim != 2:
            raise ValueError(f"{self._who} expected logits of shape (batch, n_classes), "
                             f"received {pred.shape}")
        n_samples, n_classes = pred.shape
        target = np.asarray(target)
        if target.ndim == 2 and target.shape == (n_samples, 1) and n_classes > 1:
            target = target[:, 0]  # a column of labels, as Keras' sparse targets often are
        labels = None
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
        return probs, labels

    def _check_target(self, pred, target):
        return self._target_probs(pred, target)[0]

    def _prepare(self, pred, target):
        probs, labels = self._target_probs(pred, target)
        if self.weight is None:
            return probs, None
        n_classes = pred.shape[1]
        if self.weight.shape[0] != n_classes:
            raise ValueError(f"{self._who} expected weight with one value per class: "
                             f"{n_classes} for logits of shape {pred.shape}, received "
                             f"{self.weight.shape[0]} values")
        weight = self._class_weights(labels is not None)
        if labels is not None and self.reduction == "mean":
            weight = self._batch_scaled(weight, labels)
        weighted = probs * weight.astype(pred.dtype)  # a = c t'
        return weighted, None if labels is None else weight[labels]

    def _select(self, target, weight):
        self._counted = None if weight is None else weight != 0  # see _batch_scaled
        return super()._select(target, weight)

    def _batch_scaled(self, weight: np.ndarray, labels: np.ndarray) -> np.ndarray:
        r"""The class weights of this batch's mean over ``labels``: ``weight``
        (the table of :func:`scaled_class_weights`) itself when the largest
        weight of the classes that carry the batch's targets -- the labels of
        the samples that weigh something; every class with label smoothing --
        is at least :math:`2^{-60}` (:data:`CLASS_WEIGHT_EXPONENT`), else
        those weights divided by the power of two :math:`2^e` that brings
        their largest into :math:`[0.5, 1)`, and the others (whose targets are
        0) set to 0; :math:`e` is kept in ``_shift`` for :attr:`weight_total`.

        The mean :math:`\sum_i w_i \ell_i / \sum_i w_i c_{y_i}` and its
        gradient do not change (a power of two divides both sums exactly),
        but its terms :math:`c_c t'_{ic}` are computed in the logits' dtype:
        with float32 logits a table such as ``[1, 1e-40]`` gave a batch of
        class 1 terms rounded to a subnormal float32 and a gradient scale
        :math:`1/\sum_i c_{y_i}` above float32's largest, an infinite
        gradient (``1e-50``, rounded to 0: a loss of 0 and a NaN gradient),
        where the mean is the plain mean of the batch's losses.
        ``fit(class_weight=)``, whose weights divide in float64 before the
        cast, was right. The batch's scale leaves the other classes' weights
        out of the arithmetic (they could overflow float32 once scaled);
        a class far below the batch's largest then rounds as it does in
        ``fit(class_weight=)``, below float32's precision of the sum.
        With label smoothing every class carries (the table's largest,
        at least :math:`2^{-60}`: never scaled). Batches whose largest is in
        range (every ordinary table) compute as before, to the bit; a sum,
        one value per sample, and probability targets use the table as given
        (their value scales with it)."""
        self._shift = 0
        counted = labels if self._counted is None else labels[self._counted]
        carried = (np.ones(len(weight), dtype=bool) if self.label_smoothing
                   else np.isin(np.arange(len(weight)), counted))
        largest = float(weight[carried].max()) if carried.any() else 0.0
        if largest == 0 or largest >= 2.0 ** -CLASS_WEIGHT_EXPONENT:
            return weight
        self._shift = int(np.frexp(largest)[1])
        scaled = np.zeros_like(weight)
        scaled[carried] = np.ldexp(weight[carried], -self._shift)
        return scaled

    def _class_weights(self, labels: bool = True) -> np.ndarray:
        """The class weights the loss computes with (None without): for a
        mean over integer labels, whose value does not change when every
        class weight is divided by one number, :func:`scaled_class_weights`
        (a table near the largest or the smallest float divided by a power
        of two); for a sum, one value per sample, or probability targets
        (whose mean is divided by the batch size or the sample weights
        alone), the table as given."""
        if self.weight is None or not labels or self.reduction != "mean":
            return self.weight
        return scaled_class_weights(self.weight, self._who, "weight (one per class)")

    #: The samples that weigh something (None: all), and the power of two
    #: the last forward's batch divided its class weights by (:meth:`_batch_scaled`).
    _counted = None
    _shift = 0

    def forward(self, pred, target, sample_weight=None, mask=None):
        self._fused_grad = None
        self._shift = 0
        if (sample_weight is None and mask is None and self.weight is None
                and self.reduction != "none"):
            value = self._fused_forward(pred, as_array(target, self._who, "targets"))
            if value is not None:
                return value
        value = super().forward(pred, target, sample_weight=sample_weight, mask=mask)
        if self._shift:  # the total on the table's scale, which every batch shares
            self.weight_total = float(np.ldexp(self.weight_total, self._shift))
        return value

    forward.__doc__ = Loss.forward.__doc__
    __call__ = forward

    def backward(self, dloss=None) -> np.ndarray:
        grad = getattr(self, "_fused_grad", None)
        if grad is None:
            return super().backward(dloss)
        scale = self._upstream(1.0, dloss, grad.shape[0], self._forward_settings()["reduction"])
        # A copy on every call: the caller may change it in place, and a later
        # backward() must not see that. It costs ~1.4 us of ~30 us for this
        # loss at 128 x 10, nothing measurable in a training step (~4 ms).
        # scale is a float here: _scaled's np.ndim would cost more than the copy.
        grad = grad.copy()
        return grad if scale == 1.0 else _scaled(grad, scale)

    backward.__doc__ = Loss.backward.__doc__

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
        settings = settings_of(self)
        mean = settings["reduction"] == "mean"
        # trusted: check_labels above has checked every label
        total, grad = kernels.impl("softmax_cross_entropy", pred.size, trusted=True)(
            pred, labels, settings["label_smoothing"], 1.0 / pred.shape[0] if mean else 1.0)
        self._fused_grad = grad
        self.weight_total = float(pred.shape[0])
        return self._keep(total / pred.shape[0] if mean else total, None, settings)

    def _forward(self, logits, probs):
        # 0 log p = 0 even where p = 0 (a logit of -inf: a masked class)
        with np.errstate(invalid="ignore"):
            terms = probs * log_softmax(logits)
        return -np.where(probs != 0, terms, 0).sum(axis=1)

    def _backward(self, logits, probs):
        return softmax(logits) * probs.sum(axis=1, keepdims=True) - probs

    def get_config(self) -> dict:
        return {"label_smoothing": self.label_smoothing,
                "weight": None if self.weight is None else self.weight.tolist(),
                **super().get_config()}


class BinaryCrossEntropy(_ElementwiseLoss):
    r"""Sigmoid cross-entropy from logits (``torch.nn.BCEWithLogitsLoss``).

    Targets :math:`t \in [0, 1]` of the logits' shape (any shape). In the
    softplus form, finite for any finite logit :math:`z`,

    .. math::
        L = \frac{1}{N}\sum_j \big(\max(z_j, 0) - z_j t_j + \log(1 + e^{-|z_j|})\big),
        \qquad
        \frac{\partial L}{\partial z_j} = \frac{1}{N}\big(\sigma(z_j) - t_j\big).

    With ``pos_weight`` :math:`q` (PyTorch's; one value per output, the last
    axis, or one for all) the positive term is weighted:
    :math:`\ell_j = -q_j t_j \log\sigma(z_j) - (1 - t_j)\log(1 - \sigma(z_j))`,
    computed as

    .. math::
        \ell_j = (1 - t_j)\, z_j + \big(1 + (q_j - 1)\, t_j\big)\,
                 \mathrm{softplus}(-z_j), \qquad
        \frac{\partial \ell_j}{\partial z_j}
          = \sigma(z_j)\big(1 + (q_j - 1)\, t_j\big) - q_j t_j,

    and the mean still divides by the :math:`N` elements (PyTorch's rule).

    Parameters
    ----------
    pos_weight : float or array_like of shape (n_outputs,), optional
        Real numbers (not booleans), finite, non-negative; the length is 1 or
        the logits' last axis. Zeros are allowed, even all of them: the
        positives then count nothing, but the negatives still train.
    reduction : {"mean", "sum", "none"}, default "mean"
    """

    pos_weight = Setting(_class_weight_or_none, scalar=True, all_zero=True)

    def __init__(self, pos_weight=None, reduction: str = "mean"):
        self.pos_weight = pos_weight
        super().__init__(reduction)

    def _check_target(self, pred, target):
        target = super()._check_target(pred, target)
        if target.size and (target.min() < 0 or target.max() > 1):
            raise ValueError(f"{self._who} expected targets in [0, 1], received values "
                             f"in [{target.min()}, {target.max()}]")
        return target

    def _prepare(self, pred, target):
        """The target and the pos_weight broadcast over the last axis (None without)."""
        target = self._check_target(pred, target)
        pos = self.pos_weight
        if pos is not None:
            width = pred.shape[-1] if pred.ndim > 1 else 1
            if pos.shape[0] not in (1, width):
                raise ValueError(f"{self._who} expected pos_weight with one value per output "
                                 f"({width} for predictions of shape {pred.shape}) or a "
                                 f"single value, received {pos.shape[0]} values")
            pos = pos.astype(pred.dtype)
        return (target, pos), None

    def _forward(self, logits, target):
        target, pos = target
        if pos is None:
            return _softplus(logits) - logits * target
        return (1 - target) * logits + (1 + (pos - 1) * target) * _softplus(-logits)

    def _backward(self, logits, target):
        target, pos = target
        if pos is None:
            return sigmoid(logits) - target
        return sigmoid(logits) * (1 + (pos - 1) * target) - pos * target

    def get_config(self) -> dict:
        return {"pos_weight": None if self.pos_weight is None else self.pos_weight.tolist(),
                **super().get_config()}


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

#: The losses whose targets are class labels (integers, or 0/1), subclasses
#: (their twins on probabilities, :mod:`tinynet.output_losses`) included.
CLASSIFICATION_LOSSES = (CrossEntropy, BinaryCrossEntropy)


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
