r"""Meta-SGD (Li et al. 2017): MAML that also meta-learns a learning rate
for every parameter.

.. math::
    \theta_{k+1} = \theta_k - \alpha \odot \nabla L^{s}(\theta_k)

Both :math:`\theta` and :math:`\alpha` are meta-parameters; the gradient
with respect to :math:`\alpha` is
:math:`-\sum_k \nabla L^{s}(\theta_k) \odot g_{k+1}` (see :mod:`.maml`).
"""

from __future__ import annotations

import numpy as np

from ..param import Param
from .base import MetaLearner
from .maml import _maml_meta_gradient, first_order_property

__all__ = ["MetaSGD"]


class MetaSGD(MetaLearner):
    """Meta-SGD: a meta-learned initialisation *and* per-parameter inner
    learning rates (one Param per model Param, named ``"<name>/lr"``).

    Parameters
    ----------
    model, loss, inner_steps, meta_lr, meta_optimizer : see :class:`MAML`
    inner_lr : float, default 0.01
        Initial value of every learned learning rate.
    first_order : bool, default False
        True drops the Hessian terms (see :class:`MAML`).

    Attributes
    ----------
    lrs : list of Param, shaped like the model's parameters
        Read-only list, following ``learner.model``; set a rate by writing
        into its array in place (``learner.lrs[i].value[...] = 0.02``).
    """

    def __init__(self, model, loss="mse", inner_lr=0.01, inner_steps=1, meta_lr=1e-3,
                 first_order=False, meta_optimizer="adam"):
        super().__init__(model, loss=loss, inner_lr=inner_lr, inner_steps=inner_steps,
                         meta_lr=meta_lr, meta_optimizer=meta_optimizer)
        self.first_order = first_order
        self._lrs = [self._new_rate(p) for p in self.net.param_list()]

    first_order = first_order_property

    def _new_rate(self, param) -> Param:
        """A learned rate for ``param``, starting at ``inner_lr``."""
        return Param(np.full(param.shape, self.inner_lr, dtype=param.dtype),
                     name=f"{param.name}/lr")

    @property
    def lrs(self) -> list:
        """The learned rates, one Param per model Param (following the
        model: see :meth:`_params_replaced`)."""
        self._follow_model()
        return self._lrs

    @lrs.setter
    def lrs(self, value) -> None:
        raise AttributeError("MetaSGD.lrs is a read-only list that follows learner.model "
                             "(one rate Param per model Param); set rates in place: "
                             "learner.lrs[i].value[...] = rate")

    def _params_replaced(self, old_params) -> None:
        """The model's Params changed (``reset_parameters``, ``pop``,
        ``add``, another model): a Param that stays keeps its learned rate,
        a new one gets a new rate at ``inner_lr`` -- as the meta-optimizer
        keeps the state of the Params that stay and starts the others
        without (:meth:`MetaLearner._follow_model`)."""
        kept = {id(p): lr for p, lr in zip(old_params, self._lrs)}
        self._lrs = [kept[id(p)] if id(p) in kept else self._new_rate(p)
                     for p in self._net.param_list()]

    def meta_parameters(self):
        return self.net.param_list() + self._lrs

    def _inner_lr(self):
        return np.concatenate([p.value.ravel() for p in self.lrs])

    def _meta_gradient(self, batch):
        loss, grad, dlr = _maml_meta_gradient(self.net, self.net.get_params(), self._inner_lr(),
                                              batch, self.inner_steps, self.loss,
                                              self.first_order, lr_grad=True)
        return loss, np.concatenate([grad, dlr])
