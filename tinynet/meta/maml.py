r"""MAML (Finn et al. 2017) with the exact second-order meta-gradient, and
its first-order approximation (FOMAML).

Inner loop, per task, with learning rate :math:`\alpha` (a scalar, or a
per-parameter vector for Meta-SGD and ANIL):

.. math::
    \theta_0 = \theta, \qquad
    \theta_{k+1} = \theta_k - \alpha \odot \nabla L^{s}(\theta_k), \qquad
    \text{meta-loss } L^{q}(\theta_K)

Meta-gradient, backwards through the steps with
:math:`g_K = \nabla L^{q}(\theta_K)` and the support-loss Hessian
:math:`H_k = \nabla^2 L^{s}(\theta_k)`:

.. math::
    g_k = \big(I - H_k \operatorname{diag}(\alpha)\big) g_{k+1}
        = g_{k+1} - H_k (\alpha \odot g_{k+1}), \qquad
    \frac{\partial L^{q}}{\partial \theta} = g_0, \qquad
    \frac{\partial L^{q}}{\partial \alpha} = -\sum_k \nabla L^{s}(\theta_k) \odot g_{k+1}

Each :math:`H_k v` is an exact R-operator pass
(:meth:`FunctionalMLP.value_and_grad` keeps the caches it needs), batched
over all tasks of the meta-batch. FOMAML drops the :math:`H_k` terms, so its
meta-gradient is the query gradient at the adapted parameters.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_array, as_float_array, check_bool, check_finite, is_real_dtype
from .base import MetaLearner, _check_steps, check_task_batch
from .functional import FunctionalMLP, resolve_loss
from .tasks import TaskBatch

__all__ = ["MAML", "maml_meta_gradient"]


def maml_meta_gradient(net, theta0, lr, batch, steps, loss="mse", first_order=False,
                       lr_grad=False):
    """Meta-gradient of the mean post-adaptation query loss over a task batch.

    Parameters
    ----------
    net : FunctionalMLP
    theta0 : ndarray of shape (P,)
        Initial (meta-learned) parameters.
    lr : float or ndarray of shape (P,)
        Inner learning rate(s).
    batch : TaskBatch
    steps : int
        Inner SGD steps (0 is allowed: plain training on the query sets).
    first_order : bool
        Drop the Hessian terms (FOMAML).
    lr_grad : bool
        Also return the gradient w.r.t. a per-parameter ``lr`` (shape (P,)).

    Returns
    -------
    loss : float
        Mean query loss after adaptation.
    grad : ndarray of shape (P,)
    dlr : ndarray of shape (P,), only when ``lr_grad``

    Every argument is checked (a clear error, not one from inside NumPy);
    ``loss`` is resolved once by :func:`~.functional.resolve_loss` (a name in
    any spelling, or a callable like :func:`~.functional.mse`).
    """
    who = "maml_meta_gradient"
    if not isinstance(net, FunctionalMLP):
        raise TypeError(f"{who} expected net as a FunctionalMLP, received "
                        f"{type(net).__name__}")
    theta0 = as_float_array(theta0, who, "theta0")
    if theta0.shape != (net.n_params,):
        raise ValueError(f"{who} expected theta0 of shape ({net.n_params},), received "
                         f"{theta0.shape}")
    check_finite(theta0, who, "theta0")
    rates = as_array(lr, who, "lr")
    if not is_real_dtype(rates.dtype):
        raise TypeError(f"{who} expected lr of an integer or floating-point dtype, received "
                        f"dtype {rates.dtype}")
    if rates.shape not in ((), (net.n_params,)):
        raise ValueError(f"{who} expected lr as a number or an array of shape "
                         f"({net.n_params},), received shape {rates.shape}")
    check_finite(rates, who, "lr")
    if not isinstance(batch, TaskBatch):
        raise TypeError(f"{who} expected a TaskBatch, received {type(batch).__name__}")
    return _maml_meta_gradient(
        net, theta0, lr if rates.ndim == 0 else rates, check_task_batch(batch, who),
        _check_steps(steps, who), resolve_loss(loss),
        check_bool(first_order, who, "first_order"), check_bool(lr_grad, who, "lr_grad"))


def _maml_meta_gradient(net, theta0, lr, batch, steps, loss, first_order, lr_grad=False):
    """:func:`maml_meta_gradient` for checked arguments (the learners'
    batches are checked where they are drawn)."""
    n_tasks = len(batch)
    theta = np.broadcast_to(theta0, (n_tasks, net.n_params))
    inner = []
    for _ in range(steps):
        ev = net._value_and_grad(theta, batch.support_x, batch.support_y, loss)
        inner.append(ev)
        theta = theta - lr * ev.grad
    query = net._value_and_grad(theta, batch.query_x, batch.query_y, loss)
    g = query.grad
    dlr = np.zeros(net.n_params, dtype=g.dtype) if lr_grad else None
    for ev in reversed(inner):
        if lr_grad:
            dlr -= np.einsum("tp,tp->p", ev.grad, g)
        if not first_order:
            g = g - ev.hvp(lr * g)
    grad = g.mean(axis=0)
    loss_value = float(query.loss.mean())
    if lr_grad:
        return loss_value, grad, dlr / n_tasks
    return loss_value, grad


def _get_first_order(self) -> bool:
    return self._first_order_value


def _set_first_order(self, value) -> None:
    self._first_order_value = check_bool(value, type(self).__name__, "first_order")


#: ``first_order`` of MAML (ANIL) and Meta-SGD: a bool, checked when set, also
#: after construction (``bool("no")`` is True: it would silently give FOMAML).
first_order_property = property(_get_first_order, _set_first_order,
                                doc="True drops the Hessian terms (first-order meta-gradient).")


class MAML(MetaLearner):
    """Model-Agnostic Meta-Learning: learn an initialisation from which a few
    SGD steps on a task's support set fit the task.

    Parameters
    ----------
    model : Sequential of Dense layers and activations
    loss : "mse" or "cross_entropy"
    inner_lr : float, default 0.01
    inner_steps : int, default 1
    meta_lr : float, default 1e-3
    first_order : bool, default False
        True gives FOMAML (no Hessian-vector products). Python's or NumPy's
        bool only: a string such as ``"no"`` is refused, not read as True.
    meta_optimizer : str or callable, default "adam"

    Examples
    --------
    >>> model = tn.Sequential([tn.layers.Dense(40, activation="relu", input_dim=1),
    ...                        tn.layers.Dense(40, activation="relu"), tn.layers.Dense(1)])
    >>> maml = tn.meta.MAML(model, loss="mse", inner_lr=0.01)
    >>> maml.meta_fit(tn.meta.SinusoidTasks(k_shot=10), iterations=1000)
    >>> adapted = maml.adapt(x_support, y_support, steps=10)   # a new model
    """

    def __init__(self, model, loss="mse", inner_lr=0.01, inner_steps=1, meta_lr=1e-3,
                 first_order=False, meta_optimizer="adam"):
        super().__init__(model, loss=loss, inner_lr=inner_lr, inner_steps=inner_steps,
                         meta_lr=meta_lr, meta_optimizer=meta_optimizer)
        self.first_order = first_order

    first_order = first_order_property

    def _meta_gradient(self, batch):
        return _maml_meta_gradient(self.net, self.net.get_params(), self._inner_lr(), batch,
                                   self.inner_steps, self.loss, self.first_order)
