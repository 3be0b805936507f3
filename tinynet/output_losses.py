r"""Cross-entropies for outputs that are already probabilities (a softmax/sigmoid layer).

tinynet's :class:`~tinynet.losses.CrossEntropy` and
:class:`~tinynet.losses.BinaryCrossEntropy` take *logits*. A Keras-style
model ending in ``Dense(10, activation="softmax")`` outputs probabilities
:math:`p = \mathrm{softmax}(z)`; feeding them to a logit loss would apply a
second softmax and train the wrong objective. The ``compile`` of
:class:`tinynet.Sequential` and of :class:`tinynet.mtl.Model` therefore swaps
in these twins (:func:`for_output`) when the output layer ends in softmax
(sigmoid) and the loss is the logit cross-entropy. They compute the same
quantity from :math:`p`:

.. math::
    L = -\frac{1}{B}\sum_i \sum_c t_{ic} \log \max(p_{ic}, \epsilon), \qquad
    \frac{\partial L}{\partial p_{ic}} = -\frac{1}{B}\frac{t_{ic}}{\max(p_{ic}, \epsilon)},

with :math:`\epsilon` the smallest normal number of the dtype (so the value
and the gradient stay finite and consistent). Through the softmax's own
backward, :math:`\partial L/\partial z_{ic} = p_{ic}(\partial L/\partial p_{ic}
- \sum_k p_{ik}\,\partial L/\partial p_{ik})`, this is exactly
:math:`(p_{ic}\sum_k t_{ik} - t_{ic})/B`, the logit loss's gradient, as long as
no :math:`p_{ic}` underflows below :math:`\epsilon`. A linear output with the
logit loss never has that limit (and skips a division): prefer it; the
probability form exists so that Keras models run unchanged.

The other two pairings follow Keras' losses of probabilities too: a binary
cross-entropy of a softmax output is that of its probabilities, element by
element (:class:`SigmoidOutputBinaryCrossEntropy` takes any probabilities),
and a cross-entropy of a sigmoid output is that of the outputs divided by
their sum (:class:`NormalizedOutputCrossEntropy`), as Keras'
``categorical_crossentropy`` does. Each was the logit loss of the
probabilities (a second softmax or sigmoid), silently.
"""

from __future__ import annotations

import numpy as np

from .losses import BinaryCrossEntropy, CrossEntropy

__all__ = ["SoftmaxOutputCrossEntropy", "SigmoidOutputBinaryCrossEntropy",
           "NormalizedOutputCrossEntropy", "for_output", "row_probabilities",
           "output_activation", "IDENTITY", "RESHAPING", "DROPOUT"]


def _floor(p: np.ndarray) -> np.ndarray:
    return np.maximum(p, np.finfo(p.dtype).tiny)


class SoftmaxOutputCrossEntropy(CrossEntropy):
    r"""Cross-entropy of class probabilities (the output of a softmax).

    Class weights and label smoothing enter through the target
    :math:`a_{ic} = c_c t'_{ic}` and the denominator, as in
    :class:`~tinynet.losses.CrossEntropy`: :math:`\ell_i = -\sum_c a_{ic}
    \log p_{ic}`, :math:`\partial \ell_i/\partial p_{ic} = -a_{ic}/p_{ic}`.
    """

    def _fused_forward(self, pred, target):
        # The parent's fused kernel takes logits; these are probabilities.
        return None

    def _forward(self, probs_pred, target):
        return -(target * np.log(_floor(probs_pred))).sum(axis=1)

    def _backward(self, probs_pred, target):
        return -target / _floor(probs_pred)


class SigmoidOutputBinaryCrossEntropy(BinaryCrossEntropy):
    r"""Binary cross-entropy of probabilities (the output of a sigmoid, or of a
    softmax: each entry is a probability).

    .. math::
        \ell = -q\,t\log p - (1-t)\log(1-p), \qquad
        \frac{\partial \ell}{\partial p} = -\frac{q\,t}{p} + \frac{1-t}{1-p}

    with :math:`q` the ``pos_weight`` (1 without).
    """

    def _forward(self, p, target):
        target, pos = target
        positive = target if pos is None else pos * target
        return -(positive * np.log(_floor(p)) + (1 - target) * np.log(_floor(1 - p)))

    def _backward(self, p, target):
        target, pos = target
        positive = target if pos is None else pos * target
        return -positive / _floor(p) + (1 - target) / _floor(1 - p)


class NormalizedOutputCrossEntropy(SoftmaxOutputCrossEntropy):
    r"""Cross-entropy of non-negative outputs divided by their sum (a sigmoid
    output taken as class scores), as Keras' ``categorical_crossentropy`` of
    probabilities: with :math:`S_i = \sum_c p_{ic}` and the target
    :math:`a_{ic}` of :class:`SoftmaxOutputCrossEntropy` (weights, smoothing),

    .. math::
        \ell_i = -\sum_c a_{ic} \log \frac{p_{ic}}{S_i}
               = -\sum_c a_{ic} \log p_{ic} + \Big(\sum_c a_{ic}\Big) \log S_i,
        \qquad
        \frac{\partial \ell_i}{\partial p_{ic}} = -\frac{a_{ic}}{p_{ic}}
               + \frac{\sum_k a_{ik}}{S_i}.
    """

    def _forward(self, probs_pred, target):
        total = _floor(probs_pred.sum(axis=1))
        return super()._forward(probs_pred, target) + target.sum(axis=1) * np.log(total)

    def _backward(self, probs_pred, target):
        total = _floor(probs_pred.sum(axis=1, keepdims=True))
        return super()._backward(probs_pred, target) + target.sum(axis=1, keepdims=True) / total


def row_probabilities(scores: np.ndarray) -> np.ndarray:
    """Non-negative class scores ``(n, classes)`` divided by their row sums
    (floored at the dtype's smallest normal number): the class probabilities
    :class:`NormalizedOutputCrossEntropy` scores, which ``predict_proba`` and
    the model's ``"auc"`` give for sigmoids compiled with the cross-entropy."""
    return scores / _floor(scores.sum(axis=-1, keepdims=True))


#: Layers whose output is their input, values and shape: an output is a
#: softmax's or a sigmoid's probabilities behind them.
IDENTITY = ("Identity",)
#: Layers whose output holds their input's values rearranged or cropped: an
#: output is still a sigmoid's probabilities behind them (``Conv2D(1, 1,
#: activation="sigmoid")`` then ``Flatten()``: one per pixel), and a softmax's
#: only where its rows are the output's (a softmax of one vector per sample,
#: flattened: ``Softmax(axis=1)`` of a (3, 4) map, flattened, gives rows
#: summing to 4).
RESHAPING = ("Flatten", "Reshape", "Cropping2D")
#: Dropout is the identity at inference (``predict``), but not in training: it
#: scales kept probabilities past 1 and zeroes others, which a loss of
#: probabilities cannot take. Looked past only with ``at_inference=True``.
DROPOUT = ("Dropout",)


def _layers_back(obj):
    """The layers computing ``obj``'s output, last first: a layer, a
    :class:`~tinynet.Sequential` (its layers, nested ones flattened), or a
    functional model's output tensor (a ``tinynet.mtl`` SymbolicTensor: its
    node's layer, then the nodes before it along one input, looking through
    nested functional models, and out of one again where its output is its
    own input). Lazy: a scan stops at the first layer it needs."""
    if hasattr(obj, "node"):  # a SymbolicTensor (duck-typed: mtl imports this module)
        t, callers = obj, []  # the nodes calling the nested models walked into
        while True:
            layer = t.node.layer
            if layer is None:  # an Input: of a nested model, go on where it was called
                if not callers:
                    return
                caller = callers.pop()
                t = caller.inputs[[id(i) for i in caller.layer.inputs].index(id(t))]
            elif _is_a(layer, "Model"):
                callers.append(t.node)
                t = layer.outputs[t.index]
            else:
                yield from _layers_back(layer)
                if t.node.multi_input:
                    return
                t = t.node.inputs[0]
    elif _is_a(obj, "Sequential"):
        for inner in reversed(obj.layers):
            yield from _layers_back(inner)
    elif obj is not None:
        yield obj


def output_activation(layer, at_inference: bool = False) -> str | None:
    """``"softmax"`` / ``"sigmoid"`` if ``layer`` ends in one, else None.

    ``layer`` ends in one if it is a ``Softmax``/``Sigmoid`` layer, has one as
    its ``activation`` (``Dense(10, activation="softmax")``), or is a
    :class:`~tinynet.Sequential` (or a functional model's output tensor) whose
    last layer ends in one -- not counting the :data:`IDENTITY` layers after
    it, the :data:`RESHAPING` ones after a sigmoid or after a softmax whose
    output per sample is one vector of the output's shape (a sigmoid then
    ``Flatten()`` was taken for logits: the loss applied a second sigmoid, the
    accuracy thresholded at 0 and ``predict_classes`` called every sample
    class 1), nor, ``at_inference`` (what ``predict`` gives), :data:`DROPOUT`.
    """
    reshaped, final = False, None
    for i, inner in enumerate(_layers_back(layer)):
        if i == 0:  # the output's shape per sample (None: not built)
            final = getattr(inner, "output_shape", None)
        if any(_is_a(inner, name) for name in IDENTITY) or (
                at_inference and any(_is_a(inner, name) for name in DROPOUT)):
            continue
        if any(_is_a(inner, name) for name in RESHAPING):
            reshaped = True
            continue
        for candidate in (inner, getattr(inner, "activation", None)):
            if _is_a(candidate, "Sigmoid"):
                return "sigmoid"
            if _is_a(candidate, "Softmax"):
                rows = final is not None and len(final) == 1 and \
                    tuple(getattr(inner, "output_shape", None) or ()) == tuple(final)
                return "softmax" if rows or not reshaped else None
        return None
    return None


def _is_a(obj, class_name: str) -> bool:
    # By class name: the layers and tinynet.model import far more than this
    # module (and the metrics that use it) needs.
    return any(cls.__name__ == class_name for cls in type(obj).__mro__)


def for_output(loss, layer):
    """The loss to use on ``layer``'s output (a layer, a Sequential or a
    functional model's output tensor): the probability twin of a logit
    cross-entropy when the layer ends in softmax/sigmoid (either loss, either
    activation: see the module docstring), else ``loss``."""
    activation = output_activation(layer)
    if activation is None:
        return loss
    if type(loss) is CrossEntropy:
        twin = SoftmaxOutputCrossEntropy if activation == "softmax" else \
            NormalizedOutputCrossEntropy
        return twin(**loss.get_config())
    if type(loss) is BinaryCrossEntropy:
        return SigmoidOutputBinaryCrossEntropy(**loss.get_config())
    return loss
