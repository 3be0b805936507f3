r"""Cross-stitch units (Misra, Shrivastava, Gupta & Hebert, CVPR 2016).

One tower per task; after a layer, a cross-stitch unit replaces each task's
activation by a learned linear combination of all tasks' activations at
that depth:

.. math::
    y_t = \sum_{s=1}^{T} \alpha_{ts}\, x_s

with :math:`\alpha \in \mathbb R^{T\times T}` initialised to :math:`a` on the
diagonal and :math:`(1-a)/(T-1)` elsewhere (the paper's "mostly own task"
start, :math:`a = 0.9`). Backward, for :math:`\delta_t = \partial L/\partial y_t`:

.. math::
    \frac{\partial L}{\partial x_s} = \sum_t \alpha_{ts}\,\delta_t, \qquad
    \frac{\partial L}{\partial \alpha_{ts}} \mathrel{+}=
        \sum_{\text{batch, units}} \delta_t \odot x_s .

The paper learns one :math:`\alpha` matrix per channel; this unit learns one
per layer (``per_unit=True`` gives one per unit: :math:`\alpha` of shape
``(T, T, units)``, same equations element-wise).

Row :math:`t` of :math:`\alpha` is a parameter of its own (``alpha_rows[t]``):
it reaches output :math:`t` only (:meth:`CrossStitch.output_parameters`), so
in the last unit, above which the towers no longer mix, it belongs to task
:math:`t` alone, and MGDA, PCGrad and GradNorm treat it as that task's
parameter rather than as a shared one.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_bool
from ..layers._checks import Setting, check_real
from ..param import check_param_budget
from .merge import MultiInputLayer

__all__ = ["CrossStitch"]


class CrossStitch(MultiInputLayer):
    """Learned mixing of T same-shaped task activations into T outputs.

    Parameters
    ----------
    self_weight : float in (0, 1], default 0.9
        Initial :math:`\\alpha_{tt}` (set later: before the build only).
    per_unit : bool, default False
        One mixing matrix per feature instead of one for the layer (fixes
        the parameters' shapes: once built, a change is refused).
    **kwargs
        Layer arguments (``name``, ``trainable``, ``dtype``, ``seed``).

    Attributes
    ----------
    alpha_rows : list of T Params of shape (T,) or (T, units)
        Row ``t`` mixes the inputs into output ``t``.
    alpha : ndarray of shape (T, T) or (T, T, units)
        The rows stacked (a copy: set a row's ``.value`` to change it).
    """

    # the build makes alpha from self_weight, in the shapes per_unit gives
    self_weight = Setting(check_real, fixed="weights", low=0.0, high=1.0, low_open=True)
    per_unit = Setting(check_bool, fixed=True)

    def __init__(self, self_weight: float = 0.9, per_unit: bool = False, **kwargs):
        self.self_weight = self_weight
        self.per_unit = per_unit
        self.alpha_rows = []
        self._xs = None
        super().__init__(**kwargs)

    @property
    def n_outputs(self) -> int:
        return len(self.input_shape) if self.input_shape is not None else 0

    def compute_output_shape(self, shapes):
        if len(shapes) < 2 or len(set(shapes)) != 1:
            raise ValueError(f"{self._who} expected two or more inputs of one shape, "
                             f"received {shapes}")
        if self.per_unit and len(shapes[0]) != 1:
            raise ValueError(f"{self._who} with per_unit=True expected 1-D per-sample "
                             f"inputs, received {shapes[0]}")
        return [shapes[0]] * len(shapes)

    def _build(self, shapes, rng):
        n = len(shapes)
        check_param_budget((n, n) + ((shapes[0][0],) if self.per_unit else ()),
                           f"the parameters {self.name}/alpha*")
        alpha = np.full((n, n), (1.0 - self.self_weight) / (n - 1))
        np.fill_diagonal(alpha, self.self_weight)
        if self.per_unit:
            alpha = np.repeat(alpha[:, :, None], shapes[0][0], axis=2)
        self.alpha_rows = [self.add_param(f"alpha{t}", alpha[t]) for t in range(n)]

    @property
    def alpha(self) -> np.ndarray:
        return np.stack([row.value for row in self.alpha_rows])

    def output_parameters(self, k: int) -> list:
        """Parameters that reach output ``k`` only: row ``k`` of alpha."""
        return [self.alpha_rows[k]]

    def forward(self, xs, training: bool = False):
        xs = self._prepare_inputs(xs)
        self._xs = xs
        stacked = np.stack(xs)  # (T, batch, ...)
        a = self.alpha
        if self.per_unit:
            return list(np.einsum("tsu,sbu->tbu", a, stacked))
        return list(np.tensordot(a, stacked, axes=(1, 0)))

    def backward(self, dys):
        self._require_cache(self._xs)
        if not isinstance(dys, (list, tuple)) or len(dys) != len(self._xs):
            raise ValueError(f"{self._who} expected a list of {len(self._xs)} output "
                             f"gradients, received {type(dys).__name__}")
        dys = [self._check_dy(d, x.shape) for d, x in zip(dys, self._xs)]
        dy = np.stack(dys)
        x = np.stack(self._xs)
        a = self.alpha
        if self.per_unit:
            grad = np.einsum("tbu,sbu->tsu", dy, x)
            dxs = list(np.einsum("tsu,tbu->sbu", a, dy))
        else:
            batch_axes = tuple(range(1, x.ndim))
            grad = np.tensordot(dy, x, axes=(batch_axes, batch_axes))
            dxs = list(np.tensordot(a.T, dy, axes=(1, 0)))
        for row, g in zip(self.alpha_rows, grad):
            row.grad += g
        return dxs

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(self_weight=self.self_weight, per_unit=self.per_unit)
        return config
