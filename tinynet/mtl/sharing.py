r"""Ready-made multi-task architectures, each a :class:`~tinynet.mtl.Model`.

=====================  ====================================================
:class:`HardSharing`   one shared trunk, one head per task (shared-bottom)
:class:`SoftSharing`   one tower per task, corresponding weights pulled
                       together by an L2 penalty
:class:`CrossStitchNet`  one tower per task, cross-stitch units between
                       the towers after each layer
:class:`MMoENet`       shared experts, one gate and one tower per task
=====================  ====================================================

All take the per-sample ``input_shape`` and layers (not yet built; each
layer object is used once), so any tinynet layer can form a trunk, a tower
or a head. They train with ``compile``/``fit`` like any functional model.

Saved (``model.save(path)``, :func:`tinynet.load`) as the general graph of
:meth:`Model.get_config <tinynet.mtl.Model.get_config>` under their own class
name, plus what the graph does not say: soft sharing's ``penalty`` and
coupled parameters, the cross-stitch units and the MMoE layer; loading gives
back an instance of the same class.
"""

from __future__ import annotations

import numpy as np

from ..layers._checks import check_real
from ..layers.base import Layer
from .cross_stitch import CrossStitch
from .graph import Input, Model, _index
from .mmoe import MMoE

__all__ = ["HardSharing", "SoftSharing", "CrossStitchNet", "MMoENet"]


def _chain(tensor, layers):
    for layer in layers:
        tensor = layer(tensor)
    return tensor


def _layers(layers, who, what) -> list:
    """``layers`` (a list or tuple of layers) as a list."""
    if not isinstance(layers, (list, tuple)) or not all(isinstance(la, Layer) for la in layers):
        got = type(layers).__name__ if isinstance(layers, Layer) else repr(layers)
        raise TypeError(f"{who} expected {what} as a list of layers, received {got}"[:300])
    return list(layers)


def _towers(towers, who) -> dict:
    if not isinstance(towers, dict) or len(towers) < 2:
        got = (f"a dict of {len(towers)} task(s)" if isinstance(towers, dict)
               else type(towers).__name__)
        raise ValueError(f"{who} expected a dict {{task: [layers]}} with two or more tasks, "
                         f"received {got}")
    out = {}
    for task, layers in towers.items():
        layers = _layers(layers, who, f"the layers of task {task!r}")
        if not layers:
            raise ValueError(f"{who} expected at least one layer for task {task!r}")
        out[str(task)] = layers
    return out


class HardSharing(Model):
    """Hard parameter sharing: ``heads[t](trunk(x))`` for every task ``t``.

    Parameters
    ----------
    input_shape : tuple of int
    trunk : list of Layer
        Shared by every task.
    heads : dict {task: list of Layer}
        Each task's own layers; the last one gives the task's output.
    dtype : optional
        dtype of the whole model (float64 for gradient checks).

    Examples
    --------
    >>> from tinynet.layers import Dense
    >>> model = HardSharing((64,), trunk=[Dense(64, activation="relu")],
    ...                     heads={"left": [Dense(10)], "right": [Dense(10)]})
    """

    def __init__(self, input_shape, trunk, heads, dtype=None, name=None):
        heads = _towers(heads, "HardSharing")
        inp = Input(input_shape, name="x", dtype=dtype)
        shared = _chain(inp, _layers(trunk, "HardSharing", "trunk"))
        super().__init__(inp, {t: _chain(shared, layers) for t, layers in heads.items()},
                         name=name)


class SoftSharing(Model):
    r"""Soft parameter sharing: a tower per task, L2-coupled (Duong et al. 2015).

    The towers must have the same architecture. Training adds

    .. math::
        P = \lambda \sum_{s<t} \lVert \theta_s - \theta_t \rVert^2, \qquad
        \frac{\partial P}{\partial \theta_t} = 2\lambda \sum_{s \ne t}(\theta_t - \theta_s)
        = 2\lambda\Big(T\theta_t - \sum_s \theta_s\Big)

    over every pair of corresponding parameters :math:`\theta_t` (the
    :math:`j`-th parameter of tower :math:`t`), logged as ``"penalty"``.

    Parameters
    ----------
    input_shape : tuple of int
    towers : dict {task: list of Layer}
    penalty : float, default 1e-3
        :math:`\lambda`.
    couple : int, optional
        Couple only the first ``couple`` layers of each tower (the heads stay
        free), from 0 to the towers' depth; default all but the last layer.
        The coupled layers of every tower must have parameters of the same
        shapes (a ``ValueError`` otherwise).
    """

    penalized = True

    def __init__(self, input_shape, towers, penalty: float = 1e-3, couple: int | None = None,
                 dtype=None, name=None):
        towers = _towers(towers, "SoftSharing")
        self.penalty = check_real(penalty, "SoftSharing", "penalty", low=0.0, high_open=True)
        depth = {len(layers) for layers in towers.values()}
        if len(depth) != 1:
            raise ValueError(f"SoftSharing expected towers of one depth, received depths "
                             f"{ {t: len(la) for t, la in towers.items()} }")
        depth = depth.pop()
        if couple is None:
            couple = depth - 1
        elif isinstance(couple, bool) or not isinstance(couple, (int, np.integer)) \
                or not 0 <= couple <= depth:
            raise ValueError(f"SoftSharing expected couple as an integer from 0 to {depth} "
                             f"(how many layers of each tower to couple), received "
                             f"{couple!r}")
        inp = Input(input_shape, name="x", dtype=dtype)
        outputs = {t: _chain(inp, layers) for t, layers in towers.items()}
        super().__init__(inp, outputs, name=name)
        groups = []
        for level in range(int(couple)):
            per_task = [layers[level].parameters() for layers in towers.values()]
            shapes = {t: [p.shape for p in params] for t, params in zip(towers, per_task)}
            if any(s != shapes[next(iter(towers))] for s in shapes.values()):
                raise ValueError(f"SoftSharing expected towers of one architecture; layer "
                                 f"{level} has parameters of shapes {shapes}")
            groups.extend(list(params) for params in zip(*per_task))
        self.coupled = groups

    def get_config(self) -> dict:
        """The graph (:meth:`Model.get_config`), the penalty, and the coupled
        parameters as indices into ``parameters()``."""
        index = {id(p): i for i, p in enumerate(self.parameters())}
        return {**super().get_config(), "penalty": self.penalty,
                "coupled": [[index[id(p)] for p in group] for group in self.coupled]}

    def _set_extra_config(self, extra):
        extra = dict(extra)
        penalty = extra.pop("penalty", None)
        coupled = extra.pop("coupled", None)
        super()._set_extra_config(extra)
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) \
                or not 0 <= penalty < np.inf:
            raise ValueError(f"SoftSharing config expected a finite non-negative penalty, "
                             f"received {penalty!r}")
        params = self.parameters()
        if not isinstance(coupled, list) or not all(
                isinstance(g, list) and len(g) >= 2 and all(_index(i, len(params)) for i in g)
                and len({params[i].shape for i in g}) == 1 for g in coupled):
            raise ValueError(f"SoftSharing config expected coupled as lists of two or more "
                             f"indices of same-shaped parameters (0 <= i < {len(params)}), "
                             f"received {coupled!r}"[:300])
        self.penalty = float(penalty)
        self.coupled = [[params[i] for i in group] for group in coupled]

    def regularization(self) -> float:
        """Add the penalty's gradient to the coupled parameters; return its value."""
        total = 0.0
        lam = self.penalty
        for params in self.coupled:
            values = [p.value for p in params]
            mean_sum = np.sum(values, axis=0)
            n = len(values)
            for i, p in enumerate(params):
                p.grad += (2 * lam) * (n * p.value - mean_sum)
                for q in values[i + 1:]:
                    total += lam * float(np.sum((p.value - q) ** 2))
        return total


class CrossStitchNet(Model):
    """One tower per task with cross-stitch units between them (Misra et al. 2016).

    After layer ``i`` of every tower (for ``i`` in ``stitch_after``, default
    every layer but the last), a :class:`~tinynet.mtl.cross_stitch.CrossStitch`
    unit mixes the towers' activations. Towers must have one depth, and
    the stitched layers one output shape.

    Parameters
    ----------
    input_shape : tuple of int
    towers : dict {task: list of Layer}
    stitch_after : list of int, optional
        Indices of the layers (0 to depth - 1) after which to stitch.
    self_weight : float, default 0.9
        Initial diagonal of each unit's mixing matrix.
    per_unit : bool, default False
    """

    def __init__(self, input_shape, towers, stitch_after=None, self_weight: float = 0.9,
                 per_unit: bool = False, dtype=None, name=None):
        towers = _towers(towers, "CrossStitchNet")
        depths = {len(layers) for layers in towers.values()}
        if len(depths) != 1:
            raise ValueError(f"CrossStitchNet expected towers of one depth, received "
                             f"{ {t: len(la) for t, la in towers.items()} }")
        depth = depths.pop()
        if stitch_after is None:
            stitch_after = list(range(depth - 1))
        elif isinstance(stitch_after, (range, np.ndarray)) and np.ndim(stitch_after) == 1:
            stitch_after = list(stitch_after)
        for i in stitch_after if isinstance(stitch_after, (list, tuple)) else [None]:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) \
                    or not 0 <= i < depth:
                raise ValueError(f"CrossStitchNet expected stitch_after as layer indices "
                                 f"from 0 to {depth - 1}, received {stitch_after!r}")
        inp = Input(input_shape, name="x", dtype=dtype)
        hidden = [inp] * len(towers)
        self.stitches = []
        for level in range(depth):
            hidden = [layers[level](h) for layers, h in zip(towers.values(), hidden)]
            if level in stitch_after:
                unit = CrossStitch(self_weight=self_weight, per_unit=per_unit)
                hidden = unit(hidden)
                self.stitches.append(unit)
        super().__init__(inp, dict(zip(towers, hidden)), name=name)

    def get_config(self) -> dict:
        """The graph (:meth:`Model.get_config`) and which of its layers are the
        cross-stitch units (``stitches``)."""
        return {**super().get_config(), "stitches": _layer_indices(self, self.stitches)}

    def _set_extra_config(self, extra):
        extra = dict(extra)
        stitches = extra.pop("stitches", None)
        super()._set_extra_config(extra)
        self.stitches = _layers_at(self, stitches, "stitches", CrossStitch)


class MMoENet(Model, auto_name="mmoe_net"):  # not m_mo_e_net
    """MMoE: shared experts, one gate per task, then one tower per task (Ma et al. 2018).

    Parameters
    ----------
    input_shape : tuple of int
    n_experts : int
    expert_units : int
    towers : dict {task: list of Layer}
        Each task's tower on top of its gated mixture of experts.
    bottom : list of Layer, optional
        Shared layers before the experts.
    expert_activation : str, default "relu"
    """

    def __init__(self, input_shape, n_experts: int, expert_units: int, towers, bottom=(),
                 expert_activation="relu", dtype=None, name=None, seed=None):
        towers = _towers(towers, "MMoENet")
        inp = Input(input_shape, name="x", dtype=dtype)
        self.mmoe = MMoE(len(towers), n_experts, expert_units, activation=expert_activation,
                         seed=seed)
        mixtures = self.mmoe(_chain(inp, _layers(bottom, "MMoENet", "bottom")))
        super().__init__(inp, {t: _chain(m, layers)
                               for (t, layers), m in zip(towers.items(), mixtures)}, name=name)

    def get_config(self) -> dict:
        """The graph (:meth:`Model.get_config`) and which of its layers is the MMoE."""
        return {**super().get_config(), "mmoe": _layer_indices(self, [self.mmoe])[0]}

    def _set_extra_config(self, extra):
        extra = dict(extra)
        mmoe = extra.pop("mmoe", None)
        super()._set_extra_config(extra)
        self.mmoe = _layers_at(self, [mmoe], "mmoe", MMoE)[0]


def _layer_indices(model, layers) -> list[int]:
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    return [index[id(layer)] for layer in layers]


def _layers_at(model, indices, key, kind) -> list:
    """The layers of ``model`` at ``indices`` (into ``model.layers``), each a ``kind``."""
    layers = model.layers
    if not isinstance(indices, list) or not all(
            _index(i, len(layers)) and isinstance(layers[i], kind) for i in indices):
        raise ValueError(f"{type(model).__name__} config expected {key!r} as indices of "
                         f"{kind.__name__} layers among its {len(layers)} layers, received "
                         f"{indices!r}"[:300])
    return [layers[i] for i in indices]
