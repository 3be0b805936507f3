r"""Reptile (Nichol et al. 2018): move the initialisation toward the weights
each task reaches after a few SGD steps.

.. math::
    \phi_t = \mathrm{SGD}^{k}(\theta; \text{support}_t), \qquad
    \text{meta-gradient} = \theta - \tfrac{1}{T}\sum_t \phi_t

The meta-gradient is handed to the meta-optimizer like any gradient (plain
SGD with rate :math:`\epsilon` gives Reptile's
:math:`\theta \leftarrow \theta + \epsilon(\bar\phi - \theta)`).
"""

from __future__ import annotations

import numpy as np

from .base import MetaLearner

__all__ = ["Reptile"]


class Reptile(MetaLearner):
    """Reptile; ``inner_steps`` (default 5, at least 1) SGD steps per task.

    Parameters are those of :class:`MAML` (without ``first_order``).
    The reported meta-loss is the query loss after the inner steps.
    """

    _min_inner_steps = 1  # with 0, phi = theta: a zero meta-gradient, nothing learned

    def __init__(self, model, loss="mse", inner_lr=0.01, inner_steps=5, meta_lr=1e-3,
                 meta_optimizer="adam"):
        super().__init__(model, loss=loss, inner_lr=inner_lr, inner_steps=inner_steps,
                         meta_lr=meta_lr, meta_optimizer=meta_optimizer)

    def _meta_gradient(self, batch):
        theta0 = self.net.get_params()
        phi = self._adapt_theta(theta0, batch.support_x, batch.support_y, self.inner_steps)
        return float(self._query_loss(phi, batch)[1].mean()), theta0 - np.mean(phi, axis=0)
