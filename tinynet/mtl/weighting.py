r"""Loss weighting: how the task losses (or their gradients) combine into one update.

With task losses :math:`L_1, \dots, L_T`, shared parameters :math:`\theta`
and task gradients :math:`g_t = \nabla_\theta L_t`, each method decides the
shared update :math:`g`:

===============  ==========================================================
``equal``        :math:`g = \sum_t g_t`
``static``       :math:`g = \sum_t w_t g_t`, fixed :math:`w`
``uncertainty``  Kendall et al. 2018: :math:`\sum_t e^{-s_t} L_t + s_t`, the
                 log-variances :math:`s_t` learned with the network
``dwa``          Liu et al. 2019: :math:`w_t = T\,\mathrm{softmax}(r/\tau)_t`,
                 :math:`r_t = \bar L_t(e-1)/\bar L_t(e-2)` from epoch means
``gradnorm``     Chen et al. 2018: weights learned so that the task gradient
                 norms :math:`\lVert w_t g_t\rVert` follow the tasks' relative
                 training rates
``pcgrad``       Yu et al. 2020: project each :math:`g_t` off every
                 :math:`g_s` it conflicts with (:math:`g_t^\top g_s < 0`), sum
``mgda``         Sener & Koltun 2018: :math:`g = \sum_t \alpha_t g_t`, the
                 min-norm point of the convex hull of the :math:`g_t`
===============  ==========================================================

The first four only *weight the losses*: one backward pass of
:math:`\sum_t w_t L_t` through the whole model. The last three need every
:math:`g_t` separately (``needs_task_gradients = True``): the trainer runs one
forward pass and then **one backward pass per task** (head :math:`t` and
the shared trunk), copying the shared gradient after each, so a step costs
:math:`T` trunk backward passes instead of one, plus :math:`O(T^2 P)` for the
inner products of :math:`P` shared parameters. Task-specific parameters
always receive their own task's gradient (scaled by :math:`w_t` for GradNorm),
as in LibMTL.
"""

from __future__ import annotations

import numpy as np

from ..checks import lookup
from ..param import Param
from .min_norm import min_norm_weights

__all__ = ["Weighting", "Equal", "Static", "Uncertainty", "DWA", "GradNorm", "PCGrad", "MGDA",
           "WEIGHTINGS", "get"]


class Weighting:
    """Base class: equal weights. Subclasses override what they change.

    Life cycle (driven by the trainer): :meth:`bind` once at compile time;
    each step :meth:`loss_weights` (the scale of each task's loss gradient),
    then, if ``needs_task_gradients``, :meth:`combine` of the per-task shared
    gradients; :meth:`on_epoch_end` with the epoch's mean task losses.
    """

    name = "equal"
    needs_task_gradients = False

    def bind(self, task_names, dtype=np.float64) -> "Weighting":
        self.task_names = list(task_names)
        self.n_tasks = len(self.task_names)
        self.dtype = np.dtype(dtype)
        self.last_weights = np.ones(self.n_tasks)
        return self

    def parameters(self) -> list[Param]:
        """Learned parameters that the optimizer must update with the model's."""
        return []

    def loss_weights(self, losses: np.ndarray, training: bool = True) -> np.ndarray:
        """The scale :math:`w_t` of each task's loss gradient in this step.

        ``losses`` holds the batch's task losses; a learned weighting also adds
        its own parameters' gradients here when ``training``.
        """
        return np.ones(self.n_tasks)

    def combine(self, grads: np.ndarray, losses: np.ndarray) -> np.ndarray:
        """The shared update from the per-task shared gradients (rows of ``grads``)."""
        return grads.sum(axis=0)

    def on_epoch_end(self, mean_losses: np.ndarray) -> None:
        """Called with the epoch's mean training loss of each task."""

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Equal(Weighting):
    """:math:`L = \\sum_t L_t`: the baseline."""

    def loss_weights(self, losses, training=True):
        self.last_weights = np.ones(self.n_tasks)
        return self.last_weights


class Static(Weighting):
    """Fixed weights: :math:`L = \\sum_t w_t L_t`.

    Parameters
    ----------
    weights : dict {task: float} or sequence of float
    """

    name = "static"

    def __init__(self, weights):
        self.weights = weights

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        w = self.weights
        if isinstance(w, dict):
            unknown = sorted(set(w) - set(self.task_names))
            if unknown:
                raise ValueError(f"Static weighting received weights for unknown tasks "
                                 f"{unknown} (tasks: {self.task_names})")
            w = [w.get(t, 1.0) for t in self.task_names]
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_tasks,) or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"Static weighting expected {self.n_tasks} finite non-negative "
                             f"weights, received {self.weights!r}")
        self.last_weights = w
        return self

    def loss_weights(self, losses, training=True):
        return self.last_weights

    def get_config(self):
        w = self.weights
        return {"weights": dict(w) if isinstance(w, dict) else [float(v) for v in w]}


class Uncertainty(Weighting):
    r"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    With a learned log-variance :math:`s_t` per task,

    .. math::
        L = \sum_t e^{-s_t} L_t + s_t, \qquad
        \frac{\partial L}{\partial s_t} = 1 - e^{-s_t} L_t, \qquad
        w_t = e^{-s_t},

    the form the paper uses for classification (and LibMTL for every task);
    at its optimum :math:`s_t = \log L_t`, so noisy (high-loss) tasks are
    down-weighted.

    Parameters
    ----------
    init : float, default 0.0
        Initial :math:`s_t`.
    """

    name = "uncertainty"

    def __init__(self, init: float = 0.0):
        self.init = float(init)

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.log_vars = Param(np.full(self.n_tasks, self.init, dtype=self.dtype),
                              name="uncertainty/log_vars")
        return self

    def parameters(self):
        return [self.log_vars]

    def loss_weights(self, losses, training=True):
        s = self.log_vars.value.astype(np.float64)
        w = np.exp(-s)
        if training:
            self.log_vars.grad += (1.0 - w * losses).astype(self.dtype)
        self.last_weights = w
        return w

    def get_config(self):
        return {"init": self.init}


class DWA(Weighting):
    r"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019).

    .. math::
        r_t = \frac{\bar L_t(e-1)}{\bar L_t(e-2)}, \qquad
        w_t(e) = \frac{T \exp(r_t/\tau)}{\sum_s \exp(r_s/\tau)}

    with :math:`\bar L_t(e)` the mean training loss of task :math:`t` in epoch
    :math:`e`; :math:`w = 1` for the first two epochs.

    Parameters
    ----------
    temperature : float, default 2.0
    """

    name = "dwa"

    def __init__(self, temperature: float = 2.0):
        if not temperature > 0:
            raise ValueError(f"DWA expected a positive temperature, received {temperature}")
        self.temperature = float(temperature)

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.history: list[np.ndarray] = []
        return self

    def loss_weights(self, losses, training=True):
        return self.last_weights

    def on_epoch_end(self, mean_losses):
        self.history.append(np.asarray(mean_losses, dtype=np.float64))
        if len(self.history) >= 2:
            r = self.history[-1] / np.maximum(self.history[-2], 1e-12)
            z = np.exp((r - r.max()) / self.temperature)
            self.last_weights = self.n_tasks * z / z.sum()

    def get_config(self):
        return {"temperature": self.temperature}


class GradNorm(Weighting):
    r"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018).

    Loss weights :math:`w_t` (a parameter the optimizer updates) scale each
    task; with :math:`G_t = \lVert w_t g_t\rVert` on the shared parameters,
    :math:`\bar G` their mean, :math:`\tilde L_t = L_t / L_t(0)` and
    :math:`r_t = \tilde L_t / \overline{\tilde L}`, the weights minimise

    .. math::
        L_{\text{grad}} = \sum_t \big| G_t - \bar G\, r_t^{\alpha} \big|, \qquad
        \frac{\partial L_{\text{grad}}}{\partial w_t}
            = \operatorname{sign}\big(G_t - \bar G r_t^{\alpha}\big)\,\lVert g_t\rVert

    (the target :math:`\bar G r_t^\alpha` is held constant, as in the paper),
    and are renormalised to :math:`\sum_t w_t = T` before each step. The
    paper uses the last shared layer's weights; here (as in LibMTL) all shared
    parameters, from the per-task backward passes.

    Parameters
    ----------
    alpha : float, default 1.5
        Strength of the pull towards equal training rates.
    """

    name = "gradnorm"
    needs_task_gradients = True

    def __init__(self, alpha: float = 1.5):
        self.alpha = float(alpha)

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.weights = Param(np.ones(self.n_tasks, dtype=self.dtype), name="gradnorm/weights")
        self.initial_losses = None
        return self

    def parameters(self):
        return [self.weights]

    def loss_weights(self, losses, training=True):
        # The optimizer stepped the weights freely; project back to sum T, positive.
        w = np.maximum(self.weights.value.astype(np.float64), 1e-4)
        self.weights.value = (self.n_tasks * w / w.sum()).astype(self.dtype)
        self.last_weights = self.weights.value.astype(np.float64)
        return self.last_weights

    def combine(self, grads, losses):
        losses = np.asarray(losses, dtype=np.float64)
        if self.initial_losses is None:
            self.initial_losses = np.maximum(losses, 1e-12)
        norms = np.sqrt(np.einsum("ij,ij->i", grads, grads, dtype=np.float64))
        ratio = losses / self.initial_losses
        rate = ratio / max(ratio.mean(), 1e-12)
        target = norms.mean() * rate ** self.alpha
        w = np.maximum(self.last_weights, 1e-12)
        self.weights.grad += (np.sign(norms - target) * norms / w).astype(self.dtype)
        return grads.sum(axis=0)

    def get_config(self):
        return {"alpha": self.alpha}


class PCGrad(Weighting):
    r"""Projecting Conflicting Gradients (Yu et al., NeurIPS 2020).

    For each task :math:`t`, in a random order over the other tasks
    :math:`s`, remove the conflicting component:

    .. math::
        \text{if } \tilde g_t^\top g_s < 0: \quad
        \tilde g_t \leftarrow \tilde g_t - \frac{\tilde g_t^\top g_s}{\lVert g_s\rVert^2} g_s,
        \qquad g = \sum_t \tilde g_t .

    Parameters
    ----------
    seed : int, optional
        Seed of the random projection order.
    """

    name = "pcgrad"
    needs_task_gradients = True

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def bind(self, task_names, dtype=np.float64):
        super().bind(task_names, dtype)
        self.rng = np.random.default_rng(self.seed)
        return self

    def combine(self, grads, losses):
        grads64 = grads.astype(np.float64)
        sq_norms = np.einsum("ij,ij->i", grads64, grads64)
        projected = grads64.copy()
        for t in range(len(grads64)):
            for s in self.rng.permutation(len(grads64)):
                if s == t or sq_norms[s] == 0:
                    continue
                dot = projected[t] @ grads64[s]
                if dot < 0:
                    projected[t] -= dot / sq_norms[s] * grads64[s]
        return projected.sum(axis=0).astype(grads.dtype)

    def get_config(self):
        return {"seed": self.seed}


class MGDA(Weighting):
    r"""Multiple-gradient descent (Sener & Koltun, NeurIPS 2018).

    .. math::
        \alpha = \arg\min_{\alpha \in \Delta}\Big\lVert\sum_t \alpha_t \hat g_t\Big\rVert^2,
        \qquad g = \sum_t \alpha_t g_t

    solved by :func:`~tinynet.mtl.min_norm.min_norm_weights` (closed form for
    two tasks, Frank-Wolfe beyond). :math:`\hat g_t` is :math:`g_t` scaled
    by ``normalize``: ``"none"``, ``"l2"`` (:math:`g_t/\lVert g_t\rVert`),
    ``"loss"`` (:math:`g_t/L_t`) or ``"loss+"``
    (:math:`g_t/(L_t\lVert g_t\rVert)`), the paper's options. With no
    normalisation the result is a common descent direction of all tasks
    whenever one exists (zero at a Pareto-stationary point).

    Parameters
    ----------
    normalize : {"none", "l2", "loss", "loss+"}, default "none"
    """

    name = "mgda"
    needs_task_gradients = True
    _NORMALIZE = ("none", "l2", "loss", "loss+")

    def __init__(self, normalize: str = "none"):
        if normalize not in self._NORMALIZE:
            raise ValueError(f"MGDA expected normalize in {self._NORMALIZE}, "
                             f"received {normalize!r}")
        self.normalize = normalize

    def combine(self, grads, losses):
        grads64 = grads.astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", grads64, grads64))
        scale = np.ones(len(grads64))
        if self.normalize in ("l2", "loss+"):
            scale /= np.maximum(norms, 1e-12)
        if self.normalize in ("loss", "loss+"):
            scale /= np.maximum(np.asarray(losses, dtype=np.float64), 1e-12)
        scaled = grads64 * scale[:, None]
        alpha = min_norm_weights(scaled @ scaled.T)
        self.last_weights = alpha
        return (alpha @ grads64).astype(grads.dtype)

    def get_config(self):
        return {"normalize": self.normalize}


#: Weighting names to classes.
WEIGHTINGS: dict[str, type] = {
    "equal": Equal, "static": Static, "uncertainty": Uncertainty, "dwa": DWA,
    "gradnorm": GradNorm, "pcgrad": PCGrad, "mgda": MGDA,
}


def get(spec, **kwargs) -> Weighting:
    """A weighting from a name (``"pcgrad"``), a dict of static weights, or an instance.

    ``get("mgda", normalize="l2")``; ``get({"left": 1.0, "right": 0.5})``
    is static weighting.
    """
    if spec is None:
        return Equal()
    if isinstance(spec, Weighting):
        return spec
    if isinstance(spec, dict):
        return Static(spec)
    if isinstance(spec, (list, tuple, np.ndarray)):
        return Static(list(spec))
    return lookup(WEIGHTINGS, spec, "weighting")(**kwargs)
