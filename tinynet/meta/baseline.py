"""The baseline every meta-learner must beat: train one network on the
pooled data of many tasks (or on the base classes), then fine-tune it on a
new task's support set by plain SGD.
"""

from __future__ import annotations

import numpy as np

from ..checks import (as_float_array, check_finite, check_labels, check_positive_int,
                      check_seed)
from .base import MetaLearner, quiet_float_warnings
from .functional import FunctionalMLP, model_layers
from .tasks import check_targets

__all__ = ["Pretrained"]


class Pretrained(MetaLearner):
    """Pretrain-then-fine-tune.

    ``meta_fit(tasks, ...)`` trains on the support and query points of each
    meta-batch pooled, with no inner adaptation (for sinusoids: one network
    fitted to all of them). ``fit(x, y, ...)`` trains on a plain labelled
    dataset instead (e.g. the base classes). :meth:`new_head` swaps the
    last Dense layer for a fresh zero-initialised one with a new number of
    outputs, after which adaptation fine-tunes that head only. ``adapt`` and
    ``evaluate`` fine-tune with SGD at ``inner_lr`` (``adapt`` needs its
    number of ``steps``).

    Parameters
    ----------
    model, loss, inner_lr, meta_lr, meta_optimizer : see :class:`MAML`
    """

    def __init__(self, model, loss="mse", inner_lr=0.01, meta_lr=1e-3, meta_optimizer="adam"):
        super().__init__(model, loss=loss, inner_lr=inner_lr, inner_steps=0, meta_lr=meta_lr,
                         meta_optimizer=meta_optimizer)

    def _meta_gradient(self, batch):
        x = np.concatenate([batch.support_x, batch.query_x], axis=1)
        # each set's targets checked (and (tasks, n) read as (tasks, n, 1)) before pooling
        y = np.concatenate([self.net._check_target(y, (*part.shape[:2], self.net.output_dim),
                                                   self.loss)
                            for part, y in ((batch.support_x, batch.support_y),
                                            (batch.query_x, batch.query_y))], axis=1)
        ev = self.net._value_and_grad(self.net.get_params(), x, y, self.loss)
        return float(ev.loss.mean()), ev.grad.mean(axis=0)

    def adapt(self, support_x, support_y, steps: int | None = None):
        """A copy of the model fine-tuned on one support set by ``steps``
        SGD steps at ``inner_lr`` (see :meth:`MetaLearner.adapt`).
        ``steps`` must be given: the baseline has no inner loop in training,
        so no number of steps to default to (``inner_steps`` is 0, and
        ``adapt`` without steps used to return the model unchanged)."""
        if steps is None:
            raise TypeError("Pretrained.adapt expected steps= (the number of fine-tuning SGD "
                            "steps on the support set), received none")
        return super().adapt(support_x, support_y, steps)

    def fit(self, x, y, iterations: int, batch_size: int = 64, seed=None):
        """Supervised training on one dataset, ``iterations`` mini-batches.

        Parameters
        ----------
        x : ndarray of shape (n, features) (or (n, ...), flattened)
        y : ndarray of shape (n, outputs) (or (n,) for one output), or
            labels of shape (n,) in ``[0, outputs)`` (integers, or floats
            with integer values, as ``adapt`` takes them)

        Everything is checked before the first step.

        Stops like :meth:`meta_fit` before an update whose loss or gradient
        is not finite, or after undoing one that made the weights non-finite.
        """
        iterations = check_positive_int(iterations, "Pretrained.fit", "iterations")
        batch_size = check_positive_int(batch_size, "Pretrained.fit", "batch_size")
        x = as_float_array(x, "Pretrained.fit", "x", min_ndim=1)
        if len(x) == 0:
            raise ValueError(f"Pretrained.fit expected at least one example, received x of "
                             f"shape {x.shape}")
        x = x.reshape(len(x), -1)
        y = check_targets(y, "Pretrained.fit", "targets y")
        check_finite(x, "Pretrained.fit", "x")
        if np.issubdtype(y.dtype, np.floating):
            check_finite(y, "Pretrained.fit", "targets y")
        if self.loss == "mse" and y.ndim == 1:
            y = y[:, None]
        if len(y) != len(x):
            raise ValueError(f"Pretrained.fit expected as many targets as inputs ({len(x)}), "
                             f"received {len(y)}")
        # all of the data checked here, not a mini-batch at a time by the
        # loss after earlier steps have changed the weights
        n_in, n_out = self.net.input_dim, self.net.output_dim
        if x.shape[1] != n_in:
            raise ValueError(f"Pretrained.fit expected x of shape (n, {n_in}), received "
                             f"{x.shape}")
        if self.loss == "cross_entropy":
            y = check_labels(y, n_out, len(x), "Pretrained.fit")
        elif y.shape != (len(x), n_out):
            raise ValueError(f"Pretrained.fit expected targets y of shape ({len(x)}, {n_out}), "
                             f"received {y.shape}")
        rng = np.random.default_rng(check_seed(seed, "Pretrained.fit"))
        opt = self.optimizer
        for it in range(iterations):
            idx = rng.choice(len(x), min(batch_size, len(x)), replace=False)
            with quiet_float_warnings():  # a divergence is warned of just below
                ev = self.net._value_and_grad(self.net.get_params(), x[idx][None],
                                              y[idx][None], self.loss)
            if self._diverged(float(ev.loss[0]), ev.grad, f"iteration {it + 1}/{iterations}",
                              "fit"):
                break
            self._set_meta_grad(ev.grad[0])
            self.history.append(float(ev.loss[0]))
            if self._step_overflowed(opt, f"iteration {it + 1}/{iterations}", "fit"):
                break
        return self.history

    def new_head(self, n_outputs: int, fine_tune="head"):
        """Replace the last Dense layer by a zero-initialised one with
        ``n_outputs`` units; ``fine_tune`` is "head" (adapt only it) or "all".

        Afterwards ``self.model`` is a new Sequential (or list, if the model
        was a list) of the same body layers and the new head.
        """
        from ..layers.dense import Dense
        from ..model import Sequential

        n_outputs = check_positive_int(n_outputs, "Pretrained.new_head", "n_outputs")
        if fine_tune not in ("head", "all"):
            raise ValueError(f"Pretrained.new_head expected fine_tune 'head' or 'all', "
                             f"received {fine_tune!r}")
        layers = model_layers(self.model)
        last = max(i for i, layer in enumerate(layers) if isinstance(layer, Dense))
        old = layers[last]
        head = Dense(n_outputs, activation=None, use_bias=old.b is not None,
                     kernel_initializer="zeros", input_dim=old.W.shape[0], dtype=old.W.dtype)
        layers = layers[:last] + [head] + layers[last + 1:]
        self.model = Sequential(layers) if isinstance(self.model, Sequential) else layers
        self._net = FunctionalMLP(self.model)
        self._optimizer = None
        self._lr_mask = None if fine_tune == "all" else self.net.mask([-1])
        return self
