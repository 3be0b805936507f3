r"""Multi-gate Mixture-of-Experts (Ma, Zhao, Yi, Chen, Hong & Chi, KDD 2018).

:math:`K` expert networks are shared by all tasks; each task :math:`t` has
its own softmax gate that mixes them per sample. With input :math:`x` of
shape ``(B, d)``, expert pre-activations :math:`A = xW_e + b_e` (one block
of ``units`` columns per expert) and :math:`E_k = f(A_k)`:

.. math::
    G_t = \mathrm{softmax}(x W_{g,t} + b_{g,t}) \in \mathbb R^{B\times K}, \qquad
    y_t = \sum_{k=1}^{K} G_{t,k} \odot E_k .

Backward, for :math:`\delta_t = \partial L/\partial y_t` of every task:

.. math::
    \frac{\partial L}{\partial E_k} = \sum_t G_{t,k}\,\delta_t, \qquad
    \frac{\partial L}{\partial G_{t,k}} = \langle E_k, \delta_t\rangle_{\text{units}},

    \frac{\partial L}{\partial z_t} = G_t \odot \Big(\frac{\partial L}{\partial G_t}
        - \Big\langle \frac{\partial L}{\partial G_t}, G_t\Big\rangle_K\Big)
    \quad\text{(softmax)}, \qquad
    \frac{\partial L}{\partial A} = \frac{\partial L}{\partial E}\odot f'(A),

    \frac{\partial L}{\partial W_{g,t}} \mathrel{+}= x^\top \frac{\partial L}{\partial z_t},\quad
    \frac{\partial L}{\partial W_e} \mathrel{+}= x^\top \frac{\partial L}{\partial A},\quad
    \frac{\partial L}{\partial x} = \frac{\partial L}{\partial A} W_e^\top
        + \sum_t \frac{\partial L}{\partial z_t} W_{g,t}^\top .

The experts are computed as one matrix product (all :math:`K` experts side
by side), which is the fast way to run :math:`K` small Dense layers; the
activation :math:`f` then sees them as ``(B, K, units)``, so that a softmax
normalises each expert's units alone. The
gate of task :math:`t` only reaches output :math:`t`
(:meth:`MMoE.output_parameters`), so a multi-task trainer counts it as that
task's parameter and the experts as shared.
"""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from ..checks import check_positive_int
from ..layers import activations
from ..layers._checks import Setting, check_initializer
from ..layers.base import Layer
from ..param import check_param_budget

__all__ = ["MMoE"]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class MMoE(Layer, auto_name="mmoe"):  # not m_mo_e
    """Shared experts and one softmax gate per task; one output per task.

    Parameters
    ----------
    n_tasks : int
    n_experts : int
    units : int
        Width of each expert (and of each task's output). ``n_tasks``,
        ``n_experts`` and ``units`` fix the layer's shapes: once it is
        built, a change is refused (make a new layer).
    activation : str, activation layer or None, default "relu"
        Experts' activation; may be set later (``mmoe.activation = "gelu"``),
        checked as here, as a Dense layer's.
    kernel_initializer : str or callable, default "glorot_uniform"
        For each expert's kernel of shape (d, units) and each gate's (d, K);
        may be set later, before the layer is built (refused once built).
    **kwargs
        Layer arguments (``name``, ``trainable``, ``dtype``, ``input_dim``, ``seed``).

    Attributes
    ----------
    W_experts : Param of shape (d, n_experts * units)
    b_experts : Param of shape (n_experts * units,)
    W_gates, b_gates : lists of Params of shapes (d, n_experts) and (n_experts,)
    """

    n_tasks = Setting(check_positive_int, fixed=True)
    n_experts = Setting(check_positive_int, fixed=True)
    units = Setting(check_positive_int, fixed=True)
    activation = activations.setting()
    kernel_initializer = Setting(check_initializer, fixed="weights")

    def __init__(self, n_tasks: int, n_experts: int, units: int, activation="relu",
                 kernel_initializer="glorot_uniform", **kwargs):
        self.n_tasks = n_tasks
        self.n_experts = n_experts
        self.units = units
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.W_experts = self.b_experts = None
        self.W_gates, self.b_gates = [], []
        self._cache = None
        super().__init__(**kwargs)

    @property
    def n_outputs(self) -> int:
        return self.n_tasks

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"{self._who} expected input of shape (batch, features), "
                             f"received per-sample shape {tuple(input_shape)}")
        return tuple((self.units,) for _ in range(self.n_tasks))

    def _build(self, input_shape, rng):
        d, k, u = input_shape[0], self.n_experts, self.units
        init = initializers.get(self.kernel_initializer)
        check_param_budget((d, k * u), f"the parameter {self.name}/W_experts")
        experts = np.concatenate([init((d, u), rng, dtype=self.dtype) for _ in range(k)],
                                 axis=1)
        self.W_experts = self.add_param("W_experts", experts)
        self.b_experts = self.add_param("b_experts", np.zeros(k * u))
        self.W_gates = [self.add_param(f"W_gate{t}", init((d, k), rng, dtype=self.dtype))
                        for t in range(self.n_tasks)]
        self.b_gates = [self.add_param(f"b_gate{t}", np.zeros(k)) for t in range(self.n_tasks)]

    def output_parameters(self, k: int) -> list:
        """Parameters that reach output ``k`` only: the gate of task ``k``."""
        return [self.W_gates[k], self.b_gates[k]]

    def forward(self, x, training: bool = False):
        x = self._prepare_input(x)
        batch = x.shape[0]
        # (batch, K, units): the activation's last axis is one expert's units,
        # so that a softmax normalises each expert alone
        pre = (x @ self.W_experts.value + self.b_experts.value).reshape(
            batch, self.n_experts, self.units)
        # the activation that ran, for the backward (one set in between waits
        # for the next forward)
        activation = self.activation
        experts = activation.forward(pre, training=training)
        gates = [_softmax(x @ W.value + b.value) for W, b in zip(self.W_gates, self.b_gates)]
        self._cache = (x, experts, gates, activation)
        return [np.einsum("bk,bku->bu", g, experts) for g in gates]

    def backward(self, dys):
        self._require_cache(self._cache)
        x, experts, gates, activation = self._cache
        if not isinstance(dys, (list, tuple)) or len(dys) != self.n_tasks:
            raise ValueError(f"{self._who} expected a list of {self.n_tasks} output "
                             f"gradients, received {type(dys).__name__}")
        out_shape = (x.shape[0], self.units)
        dys = [self._check_dy(d, out_shape) for d in dys]
        d_experts = np.zeros_like(experts)
        dx = np.zeros_like(x)
        for t, (g, dy) in enumerate(zip(gates, dys)):
            d_experts += g[:, :, None] * dy[:, None, :]
            d_gate = np.einsum("bku,bu->bk", experts, dy)
            dz = g * (d_gate - (d_gate * g).sum(axis=1, keepdims=True))
            self.W_gates[t].grad += x.T @ dz
            self.b_gates[t].grad += dz.sum(axis=0)
            dx += dz @ self.W_gates[t].value.T
        d_pre = activation.backward(d_experts).reshape(x.shape[0], -1)
        self.W_experts.grad += x.T @ d_pre
        self.b_experts.grad += d_pre.sum(axis=0)
        dx += d_pre @ self.W_experts.value.T
        return dx

    def gate_weights(self) -> list[np.ndarray]:
        """The gates of the last forward pass: ``[G_t]``, each of shape (batch, K)."""
        self._require_cache(self._cache)
        return [g.copy() for g in self._cache[2]]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(n_tasks=self.n_tasks, n_experts=self.n_experts, units=self.units,
                      activation=activations.to_config(self.activation),
                      kernel_initializer=self.kernel_initializer)
        return config
