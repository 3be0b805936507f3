r"""Functional, task-batched use of an MLP: forward, gradient and exact
Hessian-vector products for a given flat parameter vector.

Meta-learning adapts many *copies* of one network, one per task. Instead of
cloning layer objects, :class:`FunctionalMLP` reads the architecture of a
model made of :class:`~tinynet.layers.Dense` layers and element-wise
activations once, and then evaluates it for any parameter vector without
touching the model's own weights. Parameters carry a leading *task* axis,
``theta`` of shape ``(tasks, n_params)``, and inputs ``x`` of shape
``(tasks, n, in)``: every operation of a meta-batch of 25 tasks is one
batched matrix product, which is where the speed comes from.

The flat layout is ``model.parameters()`` order (``W`` of each Dense layer,
row-major, then its ``b``), so ``theta = concatenate([p.value.ravel() ...])``.

Forward and backward of the net (per task, :math:`a_0 = x`):

.. math::
    z_l = a_{l-1} W_l + b_l, \quad a_l = f_l(z_l); \qquad
    \delta z_l = \delta a_l \odot f_l'(z_l), \quad
    \nabla W_l = a_{l-1}^\top \delta z_l, \quad \nabla b_l = \textstyle\sum_n \delta z_l,
    \quad \delta a_{l-1} = \delta z_l W_l^\top

Hessian-vector products (second-order MAML) are exact, by Pearlmutter's
R-operator :math:`R\{\cdot\} = \tfrac{d}{dr}(\cdot)(\theta + r v)|_{r=0}`
applied to every line above (forward mode over the backward pass), with
:math:`v = (V_l, v_l)`:

.. math::
    R\{z_l\} = R\{a_{l-1}\} W_l + a_{l-1} V_l + v_l, \quad
    R\{a_l\} = f_l'(z_l) \odot R\{z_l\}, \quad
    R\{\delta a_L\} = \nabla^2_{\hat y} \ell \; R\{a_L\}

.. math::
    R\{\delta z_l\} = R\{\delta a_l\} \odot f'_l + \delta a_l \odot f''_l \odot R\{z_l\},
    \quad R\{\nabla W_l\} = R\{a_{l-1}\}^\top \delta z_l + a_{l-1}^\top R\{\delta z_l\},

.. math::
    R\{\nabla b_l\} = \textstyle\sum_n R\{\delta z_l\}, \quad
    R\{\delta a_{l-1}\} = R\{\delta z_l\} W_l^\top + \delta z_l V_l^\top

and :math:`H v = R\{\nabla\theta\}`. One HVP costs about one forward plus one
backward pass and reuses the caches of the gradient it differentiates.
ReLU has :math:`f'' = 0` almost everywhere, so the HVP is exact except on
the measure-zero kinks (where central differences of gradients are not).

Measured (``python -m benchmarks meta``, float64, 1-40-40-1, 25 tasks):
against central differences of gradients with step 1e-5 / 1e-7 the R-op HVP
of a tanh net differs by 8e-9 / 2e-10 of its largest entry (the difference
quotient's own truncation and rounding error); for ReLU, steps of 1e-3 and
1e-5 push units across kinks and the differences are meaningless, while at
1e-7 they agree to 2e-10. The resulting second-order MAML meta-gradient
equals PyTorch's ``autograd.grad(create_graph=True)`` to 4e-16 (1 step) and
6e-16 (2 steps). The tests check it against 4th-order central differences
to < 1e-6.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_float_array, check_bool, check_labels, is_real_dtype, lookup
from ..kernels.activations import stable_sigmoid

__all__ = ["FunctionalMLP", "LOSSES", "mse", "cross_entropy", "model_layers", "loss_name",
           "resolve_loss", "check_label_array"]


# --------------------------------------------------------------- activations
# Each activation: forward f(z), first derivative d1(z, y) = f'(z), second
# derivative d2(z, y) = f''(z) (None where it is zero almost everywhere).
# y = f(z) is passed so the derivatives reuse the forward output where that is
# exact (not ELU's). Classes, not closures: a learner pickles with its model.
class _Activation:
    """Base of the functional activations; ``name`` is the layer class's."""

    __slots__ = ("name", "alpha")
    d2 = None

    def __init__(self, name, alpha=0.0):
        self.name, self.alpha = name, alpha


class _ReLU(_Activation):
    r"""ReLU, or leaky ReLU for ``alpha`` != 0: :math:`f = z` for z > 0 else :math:`\alpha z`,
    :math:`f' = 1` for z > 0 else :math:`\alpha`, :math:`f'' = 0`. At a NaN z
    the derivative is 1 for ReLU (not :math:`z \le 0`) and :math:`\alpha` for
    leaky ReLU, as the layers' backward passes and PyTorch's."""

    __slots__ = ()

    def f(self, z):
        return np.maximum(z, 0) if self.alpha == 0.0 else np.where(z > 0, z, self.alpha * z)

    def d1(self, z, y):
        if self.alpha == 0.0:
            return (~(z <= 0)).astype(z.dtype)  # 1 at NaN, as the ReLU layer
        return np.where(z > 0, 1.0, self.alpha).astype(z.dtype)


class _ELU(_Activation):
    r""":math:`f = z` for z > 0 else :math:`\alpha(e^z - 1)`; :math:`f' = 1`,
    :math:`f'' = 0` for z > 0, else both :math:`\alpha e^z`, from z: y + alpha
    cancels as y -> -alpha (as the ELU layer's backward, which reads x for the
    same reason)."""

    __slots__ = ()

    def f(self, z):
        return np.where(z > 0, z, self.alpha * np.expm1(np.minimum(z, 0)))

    def _d(self, z, positive):
        return np.where(z > 0, positive, self.alpha * np.exp(np.minimum(z, 0))).astype(z.dtype)

    def d1(self, z, y):
        return self._d(z, 1.0)

    def d2(self, z, y):
        return self._d(z, 0.0)


class _SiLU(_Activation):
    r""":math:`f = z s`, :math:`s = \sigma(z)`; :math:`f' = s(1 + z(1 - s))`,
    :math:`f'' = s(1 - s)(2 + z(1 - 2s))`."""

    __slots__ = ()

    def f(self, z):
        return z * stable_sigmoid(z)

    def d1(self, z, y):
        s = stable_sigmoid(z)
        return s * (1 + z * (1 - s))

    def d2(self, z, y):
        s = stable_sigmoid(z)
        return s * (1 - s) * (2 + z * (1 - 2 * s))


class _Tanh(_Activation):
    r""":math:`f' = 1 - y^2`, :math:`f'' = -2y(1 - y^2)`."""

    __slots__ = ()

    def f(self, z):
        return np.tanh(z)

    def d1(self, z, y):
        return 1 - y * y

    def d2(self, z, y):
        return -2 * y * (1 - y * y)


class _Sigmoid(_Activation):
    r""":math:`f' = y(1 - y)`, :math:`f'' = y(1 - y)(1 - 2y)`."""

    __slots__ = ()

    def f(self, z):
        return stable_sigmoid(z)

    def d1(self, z, y):
        return y * (1 - y)

    def d2(self, z, y):
        return y * (1 - y) * (1 - 2 * y)


#: The supported activation layers: the functional activation (None for the
#: identity) and the layer attribute giving its alpha, with its default.
_ACTIVATIONS = {
    "Identity": (None, None), "ReLU": (_ReLU, None), "LeakyReLU": (_ReLU, ("alpha", 0.01)),
    "ELU": (_ELU, ("alpha", 1.0)), "SiLU": (_SiLU, None), "Tanh": (_Tanh, None),
    "Sigmoid": (_Sigmoid, None),
}


def _functional_activation(name, layer):
    """The functional activation of the activation layer ``layer`` (class
    ``name``), or None for the identity."""
    cls, alpha = _ACTIVATIONS[name]
    if cls is None:
        return None
    return cls(name, 0.0 if alpha is None else float(getattr(layer, alpha[0], alpha[1])))


# -------------------------------------------------------------------- losses
def mse(pred, target):
    r"""Per-task mean squared error and its derivatives.

    .. math::
        \ell_t = \frac{1}{n d}\sum_{i,j} (\hat y_{tij} - y_{tij})^2, \quad
        \frac{\partial \ell_t}{\partial \hat y} = \frac{2(\hat y - y)}{n d}, \quad
        \nabla^2 \ell_t \, u = \frac{2u}{n d}

    Parameters
    ----------
    pred, target : ndarray of shape (tasks, n, d)

    Returns
    -------
    loss : ndarray of shape (tasks,)
    dpred : ndarray of shape (tasks, n, d)
    hess : callable u -> ndarray, the Hessian of the loss w.r.t. ``pred`` times u
    """
    scale = 2.0 / (pred.shape[1] * pred.shape[2])
    diff = pred - target
    loss = np.einsum("tij,tij->t", diff, diff) * (0.5 * scale)
    return loss, diff * scale, lambda u: u * scale


def cross_entropy(logits, labels):
    r"""Per-task mean softmax cross-entropy (logits in) and its derivatives.

    .. math::
        p = \mathrm{softmax}(z), \quad \ell_t = -\frac1n \sum_i \log p_{i y_i}, \quad
        \frac{\partial \ell_t}{\partial z} = \frac{p - \mathrm{onehot}(y)}{n}, \quad
        \nabla^2 \ell_t \, u = \frac{p \odot (u - \sum_c p_c u_c)}{n}

    Parameters
    ----------
    logits : ndarray of shape (tasks, n, classes)
    labels : int ndarray of shape (tasks, n)
    """
    n = logits.shape[1]
    shifted = logits - logits.max(axis=2, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    log_p = shifted - log_norm
    p = np.exp(log_p)
    picked = np.take_along_axis(log_p, labels[..., None], axis=2)[..., 0]
    loss = -picked.mean(axis=1)
    dlogits = p.copy()
    np.put_along_axis(dlogits, labels[..., None], np.take_along_axis(p, labels[..., None], 2) - 1,
                      axis=2)
    dlogits /= n

    def hess(u):
        return p * (u - (p * u).sum(axis=2, keepdims=True)) / n
    return loss, dlogits, hess


#: Losses by name; the functional MLP and every meta-learner accept these names.
LOSSES = {"mse": mse, "cross_entropy": cross_entropy}


def loss_name(loss) -> str:
    """The key in :data:`LOSSES` of a loss name given in any case, with
    ``-`` or ``_`` (``"MSE"`` -> ``"mse"``, ``"Cross-Entropy"`` ->
    ``"cross_entropy"``); an unknown name raises with a did-you-mean. The
    meta-learners keep this key: their checks and loss look-ups compare
    with it exactly."""
    fn = lookup(LOSSES, loss, "loss")
    return next(key for key, value in LOSSES.items() if value is fn)


def resolve_loss(loss):
    """A loss as every functional evaluation takes it, resolved once: a name
    in any spelling to its key in :data:`LOSSES` (:func:`loss_name`), one of
    the functions of :data:`LOSSES` (:func:`mse`, :func:`cross_entropy`) to
    its key too, and any other callable unchanged. The target checks
    (:meth:`FunctionalMLP.check_target`) compare with the key, so a loss
    spelt ``"Cross-Entropy"`` or given as :func:`cross_entropy` has its
    labels checked as ``"cross_entropy"`` has (they were skipped: a label
    of -1 was read as the last class); only a callable of your own gets its
    targets as given."""
    if callable(loss):
        return next((key for key, fn in LOSSES.items() if fn is loss), loss)
    return loss_name(loss)


def _loss_fn(loss):
    """The function of a loss resolved by :func:`resolve_loss`."""
    return LOSSES[loss] if isinstance(loss, str) else loss


def check_label_array(labels, shape, n_classes: int, who: str, what: str = "labels"):
    """``labels`` as integer class labels of ``shape`` (e.g. (tasks, n)) in
    ``[0, n_classes)``, or a ``ValueError`` naming ``who`` and ``what``
    (NumPy would read a label of -1 as the last class)."""
    labels = np.asarray(labels)
    shape = tuple(shape)
    if labels.shape != shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{who} expected integer {what} of shape {shape}, received "
                         f"{labels.dtype} {labels.shape}")
    check_labels(labels.ravel(), n_classes, labels.size, who)
    return labels


# ------------------------------------------------------------ architecture
def model_layers(model) -> list:
    """The flat list of layers of a Sequential model, a layer list or one layer."""
    if isinstance(model, (list, tuple)):
        return list(model)
    layers = getattr(model, "layers", None)
    if layers is not None:
        return list(layers)
    return [model]


def _check_layers(layers):
    """The dtype of the parameters of ``layers`` (a list's, or a model's), after
    checking everything :class:`FunctionalMLP` needs of them before it builds
    any (so that a refused list is left as it was given; it built the unbuilt
    Dense layers before the one refused, and the list given again with another
    first layer was refused for the widths of the first attempt): Dense layers
    with a supported activation and the stand-alone activations only; the
    first Dense layer built (it has no shape to be built on); each built one
    taking the previous one's outputs, in the first one's dtype. The unbuilt
    Dense layers after the first are built on the widths before them, in its
    dtype, as :class:`~tinynet.Sequential` builds the layers after a first one
    given ``input_dim=`` (a layer with a ``seed`` draws its weights from it, one
    without from a fresh generator, as there)."""
    from ..layers.dense import Dense

    width = dtype = None  # the previous Dense layer's outputs, the first's dtype
    for layer in layers:
        kind = type(layer).__name__
        if not isinstance(layer, Dense):
            if kind not in _ACTIVATIONS:
                raise ValueError(f"FunctionalMLP supports Dense layers and the activations "
                                 f"{sorted(_ACTIVATIONS)}, received layer {kind} "
                                 f"{getattr(layer, 'name', '')!r}")
            continue
        if type(layer.activation).__name__ not in _ACTIVATIONS:
            raise ValueError(f"FunctionalMLP supports the activations {sorted(_ACTIVATIONS)}, "
                             f"received {type(layer.activation).__name__} in Dense "
                             f"{layer.name!r}")
        if not layer.built and width is None:
            raise ValueError(f"FunctionalMLP expected its first Dense layer built, "
                             f"received Dense {layer.name!r} unbuilt: give it input_dim= "
                             f"(the layers after it are then built from it), or build "
                             f"the model")
        own = layer.W.dtype if layer.built else layer.dtype  # (None: not given)
        if dtype is not None and own is not None and np.dtype(own) != dtype:
            raise TypeError(f"FunctionalMLP expected parameters of one dtype, received "
                            f"{sorted(map(str, {dtype, np.dtype(own)}))}")
        if not layer.built:
            width = layer.units
            continue
        if width is not None and layer.W.shape[0] != width:
            raise ValueError(f"FunctionalMLP expected Dense {layer.name!r} to take {width} "
                             f"inputs (the previous Dense layer's outputs), received one "
                             f"built for {layer.W.shape[0]}")
        width, dtype = layer.W.shape[1], layer.W.dtype if dtype is None else dtype
    if dtype is None:
        raise ValueError("FunctionalMLP expected at least one Dense layer, received none")
    return dtype


class _Linear:
    __slots__ = ("n_in", "n_out", "w_slice", "b_slice")

    def __init__(self, n_in, n_out, offset, use_bias):
        self.n_in, self.n_out = n_in, n_out
        self.w_slice = slice(offset, offset + n_in * n_out)
        end = self.w_slice.stop
        self.b_slice = slice(end, end + n_out) if use_bias else None

    @property
    def stop(self):
        return (self.b_slice or self.w_slice).stop


class FunctionalMLP:
    """A model's architecture, evaluated for any (task-batched) parameters.

    Parameters
    ----------
    model : Sequential, list of layers or a layer
        :class:`~tinynet.layers.Dense` layers (any supported fused
        activation) and stand-alone activations (Identity, ReLU, LeakyReLU,
        ELU, SiLU, Tanh, Sigmoid). Dropout and normalisation layers are not
        supported (a functional inner loop has no use for their state). The
        first Dense layer is built (``input_dim=``, or a built model); in a
        list, the unbuilt Dense layers after it are built here on the widths
        before them, as a :class:`~tinynet.Sequential` of that list would be.

    Attributes
    ----------
    n_params : int
        Length of the flat parameter vector.
    shapes : list of (name, shape, slice)
        Where each of ``model.parameters()`` lives in the flat vector.
    dtype : numpy dtype of the model's parameters.
    """

    def __init__(self, model):
        from ..layers.dense import Dense

        self.model = model
        self.ops = []
        self.shapes = []
        self._params = []
        offset, previous = 0, None
        layers = list(model_layers(model))
        self.dtype = _check_layers(layers)
        self._layers = tuple(layers)
        for layer in layers:
            if isinstance(layer, Dense):
                if not layer.built:  # in a list: on the outputs before it (_check_layers)
                    layer.build((previous.n_out,), dtype=self.dtype)
                op = previous = _Linear(layer.W.shape[0], layer.W.shape[1], offset,
                                        layer.b is not None)
                self.ops.append(op)
                self.shapes.append((layer.W.name, layer.W.shape, op.w_slice))
                self._params.append(layer.W)
                if layer.b is not None:
                    self.shapes.append((layer.b.name, layer.b.shape, op.b_slice))
                    self._params.append(layer.b)
                offset = op.stop
                self._add_activation(layer.activation)
            else:
                self._add_activation(layer)
        self.n_params = offset
        linears = [op for op in self.ops if isinstance(op, _Linear)]
        self.input_dim = linears[0].n_in
        self.output_dim = linears[-1].n_out

    def _add_activation(self, layer):
        activation = _functional_activation(type(layer).__name__, layer)
        if activation is not None:
            self.ops.append(activation)

    # ----------------------------------------------------------- parameters
    def get_params(self, model=None) -> np.ndarray:
        """The model's current weights as one flat vector of shape (n_params,)."""
        params = self._params if model is None else FunctionalMLP(model)._params
        return np.concatenate([p.value.ravel() for p in params])

    def set_params(self, theta, model=None) -> None:
        """Write a flat vector into the model's Params (in place, views kept);
        ``model``, if given, must have this architecture's parameter shapes."""
        theta = np.asarray(theta)
        if theta.shape != (self.n_params,):
            raise ValueError(f"FunctionalMLP.set_params expected a vector of shape "
                             f"({self.n_params},), received {theta.shape}")
        params = self._params if model is None else FunctionalMLP(model)._params
        ours, theirs = [shape for _, shape, _ in self.shapes], [p.shape for p in params]
        if theirs != ours:  # zip would write a prefix of a bigger model and say nothing
            raise ValueError(f"FunctionalMLP.set_params expected a model with parameters "
                             f"of shapes {ours}, received one with {theirs}")
        for p, (_, shape, where) in zip(params, self.shapes):
            p.value = theta[where].reshape(shape)

    def param_list(self) -> list:
        """The Params of the model this view was built from, in flat-vector
        order (see :meth:`change` for whether the model still holds them)."""
        return list(self._params)

    def change(self) -> str | None:
        """What changed in the model since this view was built, or None: its
        layers (``pop``, ``add``: another list of layers) or, the layers
        the same, their Params (``reset_parameters``, a layer built again
        makes new ones). The view keeps the Params it was built from, so
        after such a change it reads and writes Params the model no longer
        holds: build a new one."""
        from ..layers.dense import Dense

        layers = model_layers(self.model)
        if len(layers) != len(self._layers) or any(
                a is not b for a, b in zip(layers, self._layers)):
            return "its layers changed (pop, add or another list of layers)"
        params = [p for layer in layers if isinstance(layer, Dense)
                  for p in (layer.W, layer.b) if p is not None]
        if len(params) != len(self._params) or any(
                a is not b for a, b in zip(params, self._params)):
            return ("its parameters were replaced (reset_parameters, or a layer built "
                    "again)")
        return None

    def mask(self, layers) -> np.ndarray:
        """A 0/1 vector over the flat parameters: 1 for the params of ``layers``
        (indices into the Dense layers, e.g. ``[-1]`` for the head)."""
        if isinstance(layers, str) or not hasattr(layers, "__iter__"):
            raise TypeError(f"FunctionalMLP.mask expected a sequence of Dense layer indices "
                            f"(e.g. [-1]), received {layers!r}")
        linears = [op for op in self.ops if isinstance(op, _Linear)]
        n = len(linears)
        mask = np.zeros(self.n_params, self.dtype)
        for i in layers:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
                raise ValueError(f"FunctionalMLP.mask expected indices of its {n} Dense "
                                 f"layers (in [{-n}, {n - 1}]), received {i!r}")
            op = linears[i]
            mask[op.w_slice.start:op.stop] = 1
        return mask

    # --------------------------------------------------------------- checks
    def _batch(self, theta, x):
        theta = as_float_array(theta, "FunctionalMLP", "theta")
        x = as_float_array(x, "FunctionalMLP", "x")
        if theta.ndim == 1:
            theta = theta[None]
        if theta.ndim != 2 or theta.shape[1] != self.n_params:
            raise ValueError(f"FunctionalMLP expected theta of shape (tasks, {self.n_params}) "
                             f"or ({self.n_params},), received {theta.shape}")
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[2] != self.input_dim:
            raise ValueError(f"FunctionalMLP expected x of shape (tasks, n, {self.input_dim}), "
                             f"received {x.shape}")
        if x.shape[0] != theta.shape[0]:
            if theta.shape[0] == 1:
                theta = np.broadcast_to(theta, (x.shape[0], self.n_params))
            else:
                raise ValueError(f"FunctionalMLP expected {theta.shape[0]} tasks in x (one "
                                 f"per parameter row), received {x.shape[0]}")
        return theta, x

    # ---------------------------------------------------------------- maths
    def _weights(self, theta, op):
        w = theta[:, op.w_slice].reshape(theta.shape[0], op.n_in, op.n_out)
        b = None if op.b_slice is None else theta[:, None, op.b_slice]
        return w, b

    def _forward(self, theta, x):
        """Forward pass keeping each op's input (and activation output)."""
        tape = []
        a = x
        for op in self.ops:
            if isinstance(op, _Linear):
                w, b = self._weights(theta, op)
                tape.append(a)
                a = np.matmul(a, w)
                if b is not None:
                    a += b
            else:
                z = a
                a = op.f(z)
                tape.append((z, a))
        return a, tape

    def forward(self, theta, x) -> np.ndarray:
        """Outputs for parameters ``theta`` (tasks, P) or (P,) and inputs
        ``x`` (tasks, n, in); returns (tasks, n, out)."""
        theta, x = self._batch(theta, x)
        return self._forward(theta, x)[0]

    def _backward(self, theta, tape, dy, need_dx=False):
        """Gradient (tasks, P) from dL/d output; keeps what the R-op needs."""
        grad = np.empty((theta.shape[0], self.n_params), dtype=dy.dtype)
        deltas = [None] * len(self.ops)
        first_linear = next(i for i, op in enumerate(self.ops) if isinstance(op, _Linear))
        for i in range(len(self.ops) - 1, -1, -1):
            op = self.ops[i]
            if isinstance(op, _Linear):
                a = tape[i]
                w, _ = self._weights(theta, op)
                deltas[i] = dy
                grad[:, op.w_slice] = np.matmul(a.transpose(0, 2, 1), dy).reshape(len(dy), -1)
                if op.b_slice is not None:
                    grad[:, op.b_slice] = dy.sum(axis=1)
                if i == first_linear and not need_dx:
                    break
                dy = np.matmul(dy, w.transpose(0, 2, 1))
            else:
                z, y = tape[i]
                d1 = op.d1(z, y)
                deltas[i] = (dy, d1)
                dy = dy * d1
        return grad, deltas, (dy if need_dx else None)

    def value_and_grad(self, theta, x, target, loss="mse") -> "Evaluation":
        """Per-task loss and gradient at ``theta``; the result also gives
        Hessian-vector products (:meth:`Evaluation.hvp`).

        Parameters
        ----------
        theta : ndarray of shape (tasks, P) or (P,)
        x : ndarray of shape (tasks, n, in)
        target : ndarray of shape (tasks, n, out) for "mse", int (tasks, n)
            for "cross_entropy"
        loss : "mse", "cross_entropy" (in any case, with ``-`` or ``_``) or a
            callable like :func:`mse`; see :func:`resolve_loss`
        """
        return self._value_and_grad(theta, x, target, resolve_loss(loss))

    def _value_and_grad(self, theta, x, target, loss) -> "Evaluation":
        """:meth:`value_and_grad` for a loss resolved by :func:`resolve_loss`:
        MAML and the learners resolve theirs once, not at every inner step."""
        theta, x = self._batch(theta, x)
        out, tape = self._forward(theta, x)
        losses, dout, hess = _loss_fn(loss)(out, self._check_target(target, out.shape, loss))
        grad, deltas, _ = self._backward(theta, tape, dout)
        return Evaluation(self, theta, tape, deltas, out, losses, grad, hess)

    def check_target(self, target, shape, loss, who="FunctionalMLP"):
        """Targets checked against outputs of ``shape`` (tasks, n, out), in
        the form the loss takes: for "cross_entropy" integer labels of shape
        (tasks, n) in ``[0, out)``; for "mse" targets of ``shape``, or of
        shape (tasks, n) when ``out`` is 1 (read as (tasks, n, 1)). ``loss``
        is resolved by :func:`resolve_loss` (any spelling of a name, or the
        library's own function, is checked as its name); the targets of a
        callable of your own are returned as given. Every loss a
        meta-learner computes from task targets goes through here."""
        return self._check_target(target, shape, resolve_loss(loss), who)

    @staticmethod
    def _check_target(target, shape, loss, who="FunctionalMLP"):
        """:meth:`check_target` for a loss resolved by :func:`resolve_loss`."""
        target = np.asarray(target)
        shape = tuple(shape)
        if loss == "cross_entropy":
            check_label_array(target, shape[:2], shape[2], who)
        elif loss == "mse" and not is_real_dtype(target.dtype):
            raise TypeError(f"{who} expected targets of an integer or floating-point dtype, "
                            f"received dtype {target.dtype}")
        if loss == "mse" and target.shape != shape:
            if target.ndim == 2 and shape[2] == 1 and target.shape == shape[:2]:
                return target[..., None]
            raise ValueError(f"{who} expected targets of shape {shape}, "
                             f"received {target.shape}")
        return target

    def backward(self, theta, x, dout, need_dx=False):
        """Gradient (tasks, P) of ``sum(out * dout)`` (and d/dx when asked);
        ``dout`` has the outputs' shape (tasks, n, out)."""
        who = "FunctionalMLP.backward"
        need_dx = check_bool(need_dx, who, "need_dx")
        theta, x = self._batch(theta, x)
        dout = as_float_array(dout, who, "dout")
        shape = (len(theta), x.shape[1], self.output_dim)
        if dout.shape != shape:
            raise ValueError(f"{who} expected dout of shape {shape} (the outputs'), received "
                             f"{dout.shape}")
        _, tape = self._forward(theta, x)
        grad, _, dx = self._backward(theta, tape, dout, need_dx)
        return (grad, dx) if need_dx else grad

    def _hvp(self, theta, tape, deltas, hess, v):
        """Exact H v by the R-operator (see the module docstring)."""
        first_linear = next(i for i, op in enumerate(self.ops) if isinstance(op, _Linear))
        r_in = [None] * len(self.ops)  # R{input} of each op
        r_a = None
        for i, op in enumerate(self.ops):
            r_in[i] = r_a
            if isinstance(op, _Linear):
                w, _ = self._weights(theta, op)
                vw, vb = self._weights(v, op)
                r_z = np.matmul(tape[i], vw)
                if r_a is not None:
                    r_z += np.matmul(r_a, w)
                if vb is not None:
                    r_z += vb
                r_a = r_z
            elif r_a is not None:
                r_a = r_a * deltas[i][1]
        r_dy = hess(r_a)
        hv = np.empty_like(v)
        for i in range(len(self.ops) - 1, -1, -1):
            op = self.ops[i]
            if isinstance(op, _Linear):
                dz = deltas[i]
                r_dw = np.matmul(tape[i].transpose(0, 2, 1), r_dy)
                if r_in[i] is not None:
                    r_dw += np.matmul(r_in[i].transpose(0, 2, 1), dz)
                hv[:, op.w_slice] = r_dw.reshape(len(hv), -1)
                if op.b_slice is not None:
                    hv[:, op.b_slice] = r_dy.sum(axis=1)
                if i == first_linear:
                    break
                w, _ = self._weights(theta, op)
                vw, _ = self._weights(v, op)
                r_dy = np.matmul(r_dy, w.transpose(0, 2, 1)) + np.matmul(dz, vw.transpose(0, 2, 1))
            else:
                dy, d1 = deltas[i]
                new = r_dy * d1
                if op.d2 is not None:
                    z, y = tape[i]
                    new += dy * op.d2(z, y) * r_in[i]
                r_dy = new
        return hv


class Evaluation:
    """Loss, gradient and the caches to take Hessian-vector products at one
    point (returned by :meth:`FunctionalMLP.value_and_grad`).

    Attributes
    ----------
    loss : ndarray of shape (tasks,)
    grad : ndarray of shape (tasks, P)
    output : ndarray of shape (tasks, n, out)
    """

    __slots__ = ("net", "theta", "tape", "deltas", "output", "loss", "grad", "hess")

    def __init__(self, net, theta, tape, deltas, output, loss, grad, hess):
        self.net, self.theta, self.tape, self.deltas = net, theta, tape, deltas
        self.output, self.loss, self.grad, self.hess = output, loss, grad, hess

    def hvp(self, v) -> np.ndarray:
        """Hessian of each task's loss w.r.t. its parameters times ``v`` (tasks, P)."""
        v = np.asarray(v, dtype=self.grad.dtype)
        if v.shape != self.grad.shape:
            raise ValueError(f"Evaluation.hvp expected v of shape {self.grad.shape}, "
                             f"received {v.shape}")
        return self.net._hvp(self.theta, self.tape, self.deltas, self.hess, v)
