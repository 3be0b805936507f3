"""ANIL (Raghu et al. 2020, "Almost No Inner Loop"): MAML whose inner loop
adapts only the head (the last Dense layer); the body is meta-learned but
fixed within a task.

It is MAML with a per-parameter inner learning rate that is zero outside
the head, so the meta-gradient (second-order by default) is exact,
including the body's mixed second derivatives.
"""

from __future__ import annotations

import numpy as np

from .maml import MAML

__all__ = ["ANIL"]


class ANIL(MAML):
    """MAML adapting only the last ``head_layers`` Dense layers.

    Parameters
    ----------
    head_layers : int, default 1
        How many of the last Dense layers the inner loop adapts, in
        ``[1, number of Dense layers]`` (a NumPy integer is fine).
    Others : see :class:`MAML`.
    """

    def __init__(self, model, loss="cross_entropy", inner_lr=0.01, inner_steps=1,
                 meta_lr=1e-3, first_order=False, head_layers=1, meta_optimizer="adam"):
        super().__init__(model, loss=loss, inner_lr=inner_lr, inner_steps=inner_steps,
                         meta_lr=meta_lr, first_order=first_order,
                         meta_optimizer=meta_optimizer)
        self.head_layers = head_layers

    @property
    def head_layers(self) -> int:
        """How many of the last Dense layers the inner loop adapts; checked
        when set, also later, and setting it sets the adapted parameters."""
        return self._head_layers_value

    @head_layers.setter
    def head_layers(self, value) -> None:
        # The view follows the model with head_layers as stored (_follow_mask),
        # so the new value is stored first: after a change that left fewer Dense
        # layers than the old value, the old one could not be followed and no
        # new one could be set. A refused value leaves the old one.
        previous = getattr(self, "_head_layers_value", None)
        self._head_layers_value = value
        try:
            mask = self._head_mask(self.net, value)
        except (TypeError, ValueError):
            self._head_layers_value = previous
            raise
        self._lr_mask, self._head_layers_value = mask, int(value)

    @staticmethod
    def _head_mask(net, value):
        """The 0/1 mask of the last ``value`` Dense layers of ``net``, after
        checking ``value`` against its number of Dense layers."""
        n_dense = sum(1 for name, _, _ in net.shapes if name.endswith("/W"))
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 1 <= value <= n_dense:
            raise ValueError(f"ANIL expected head_layers in [1, {n_dense}], "
                             f"received {value!r}")
        return net.mask(range(-value, 0))

    def _follow_mask(self, net, old):
        """The model's layers changed: the head is its last ``head_layers``
        Dense layers now (refused if it has fewer)."""
        return self._head_mask(net, self.head_layers)
