r"""Prototypical Networks (Snell et al. 2017).

An embedding net :math:`f_\theta` maps every example to a vector. For an
episode, each class prototype is the mean embedding of its support
examples, and a query's logits are its negative squared distances to the
prototypes:

.. math::
    c_k = \frac{1}{|S_k|}\sum_{i \in S_k} f(x_i), \qquad
    z_{mk} = -\lVert f(q_m) - c_k \rVert^2, \qquad
    L = \mathrm{CE}(z, y^{q})

The logits are computed from the differences :math:`f(q_m) - c_k` directly
(as :meth:`PrototypeClassifier.predict` does), not from the expansion
:math:`2 f(q_m)\cdot c_k - \lVert f(q_m)\rVert^2 - \lVert c_k\rVert^2`, which
cancels catastrophically for embeddings far from the origin (float32
embeddings about 300 from it gave logits off by 0.1 on a scale of 16, and
positive "negative squared distances").

Backward, with :math:`G = \partial L/\partial z` (softmax minus one-hot, over
the number of queries) and the same differences
:math:`\Delta_{mk} = f(q_m) - c_k`:

.. math::
    \frac{\partial L}{\partial f(q_m)} = -2\sum_k G_{mk} \Delta_{mk},
    \qquad
    \frac{\partial L}{\partial c_k} = 2\sum_m G_{mk} \Delta_{mk},
    \qquad
    \frac{\partial L}{\partial f(x_i)} = \frac{1}{|S_{y_i}|}\,
        \frac{\partial L}{\partial c_{y_i}}

(the prototypes are class means of the support embeddings), and on through
the embedding net's own backward pass.
"""

from __future__ import annotations

import numpy as np

from ..checks import as_float_array, check_finite, check_positive_int
from ..metrics import _argmax_labels
from .base import MetaLearner, _check_step_counts, accuracy, quiet_float_warnings
from .functional import check_label_array, cross_entropy

__all__ = ["ProtoNet", "PrototypeClassifier", "prototype_loss"]


def _one_hot(labels, n_way, dtype):
    return (labels[..., None] == np.arange(n_way)).astype(dtype)


def prototype_loss(emb_support, support_y, emb_query, query_y, n_way):
    """Per-episode loss, gradients w.r.t. both embeddings and the logits
    (negative squared distances, from direct differences: see the module).

    Parameters
    ----------
    emb_support : ndarray of shape (tasks, s, d)
    support_y : int ndarray of shape (tasks, s), labels in [0, n_way)
    emb_query : ndarray of shape (tasks, q, d)
    query_y : int ndarray of shape (tasks, q)

    Returns
    -------
    loss : ndarray of shape (tasks,)
    d_support, d_query : gradients of ``loss.sum()`` (shapes of the embeddings)
    logits : ndarray of shape (tasks, q, n_way)

    Raises
    ------
    ValueError
        A label outside ``[0, n_way)``, a support set without some class,
        embeddings of different tasks or widths; ``TypeError`` for non-float
        embeddings or an ``n_way`` that is not a positive integer.
    """
    who = "prototype_loss"
    n_way = check_positive_int(n_way, who, "n_way")
    emb_support = as_float_array(emb_support, who, "emb_support", ndim=3)
    emb_query = as_float_array(emb_query, who, "emb_query", ndim=3)
    n_tasks, _, d = emb_support.shape
    if emb_query.shape[0] != n_tasks or emb_query.shape[2] != d:
        raise ValueError(f"{who} expected emb_query of shape ({n_tasks}, q, {d}) (as "
                         f"emb_support), received {emb_query.shape}")
    support_y = check_label_array(support_y, emb_support.shape[:2], n_way, who, "support_y")
    query_y = check_label_array(query_y, emb_query.shape[:2], n_way, who, "query_y")
    return _prototype_loss(emb_support, support_y, emb_query, query_y, n_way)


def _prototype_loss(emb_support, support_y, emb_query, query_y, n_way):
    """:func:`prototype_loss` for checked arguments (ProtoNet checks its
    episodes once, in ``_n_way``)."""
    onehot = _one_hot(support_y, n_way, emb_support.dtype)           # (T, s, N)
    counts = onehot.sum(axis=1)                                       # (T, N)
    if np.any(counts == 0):
        raise ValueError(f"prototype_loss expected every one of the {n_way} classes in each "
                         f"support set, received an episode without some class")
    protos = np.matmul(onehot.transpose(0, 2, 1), emb_support) / counts[..., None]
    diff = emb_query[:, :, None, :] - protos[:, None, :, :]          # (T, q, N, d)
    logits = -np.einsum("tqnd,tqnd->tqn", diff, diff)
    loss, g, _ = cross_entropy(logits, query_y)
    d_query = -2 * np.einsum("tqn,tqnd->tqd", g, diff)
    d_protos = 2 * np.einsum("tqn,tqnd->tnd", g, diff)
    d_support = np.matmul(onehot, d_protos / counts[..., None])
    return loss, d_support, d_query, logits


class PrototypeClassifier:
    """What :meth:`ProtoNet.adapt` returns: an embedding net and class
    prototypes; ``predict(x)`` gives logits (negative squared distances)."""

    def __init__(self, net, theta, prototypes):
        self.net, self.theta, self.prototypes = net, theta, prototypes

    def predict(self, x) -> np.ndarray:
        """Logits of shape (n, n_way) for finite float x of shape (n, features)
        (a NaN would make its row NaN, and ``predict_classes`` class 0)."""
        who = "PrototypeClassifier.predict"
        x = as_float_array(x, who, "x")
        if x.ndim != 2 or x.shape[1] != self.net.input_dim:
            raise ValueError(f"{who} expected x of shape (n, {self.net.input_dim}), "
                             f"received {x.shape}")
        check_finite(x, who, "x")
        emb = self.net.forward(self.theta, x[None])[0]
        return -((emb[:, None, :] - self.prototypes[None]) ** 2).sum(axis=2)

    def predict_classes(self, x) -> np.ndarray:
        """The arg-max of :meth:`predict`, -1 (no class) for a sample whose
        logits hold a NaN (NaN prototypes, of a diverged embedding), as
        :meth:`tinynet.Sequential.predict_classes` (the arg-max read it as
        class 0)."""
        return _argmax_labels(self.predict(x))


class ProtoNet(MetaLearner):
    """Prototypical Networks: meta-learn an embedding for nearest-prototype
    classification.

    Parameters
    ----------
    model : Sequential of Dense layers and activations (the embedding net;
        its output width is the embedding size)
    meta_lr : float, default 1e-3
    meta_optimizer : str or callable, default "adam"

    ``adapt`` needs no gradient steps: it computes the prototypes. The
    labels of a support set (and of each episode) are ``0 .. n_way - 1``,
    every class present: a label outside that range, or a gap, is refused
    (there would be no prototype for it).
    """

    def __init__(self, model, meta_lr=1e-3, meta_optimizer="adam"):
        super().__init__(model, loss="cross_entropy", inner_lr=0.0, inner_steps=0,
                         meta_lr=meta_lr, meta_optimizer=meta_optimizer)

    def _embed(self, theta, x):
        """Embeddings (tasks, n, d) of x (tasks, n, in) with one shared theta,
        as a single batch (the tasks share the weights)."""
        n_tasks, n, n_in = x.shape
        return self.net.forward(theta, x.reshape(1, n_tasks * n, n_in)).reshape(n_tasks, n, -1)

    def _n_classes(self, labels) -> int:
        # n_way is not fixed by the net: the support set names its classes
        return len(np.unique(np.asarray(labels)))

    def _n_way(self, batch, who) -> int:
        """The episodes' number of classes (the labels they use); refuses
        labels outside ``[0, n_way)``, so also gaps (``prototype_loss``
        refuses a support set that misses a class), and labels that are
        not integers of shape (tasks, n)."""
        n_way = self._n_classes(batch.support_y)
        for x, y in ((batch.support_x, batch.support_y), (batch.query_x, batch.query_y)):
            self.net._check_target(y, (*x.shape[:2], n_way), "cross_entropy", who)
        return n_way

    def _meta_gradient(self, batch):
        theta = self.net.get_params()
        n_way = self._n_way(batch, "ProtoNet.meta_fit")
        x = np.concatenate([batch.support_x, batch.query_x], axis=1)
        n_tasks, n, n_in = x.shape
        s = batch.support_x.shape[1]
        emb = self._embed(theta, x)
        loss, d_s, d_q, _ = _prototype_loss(emb[:, :s], batch.support_y, emb[:, s:],
                                           batch.query_y, n_way)
        d_emb = np.concatenate([d_s, d_q], axis=1) / n_tasks
        grad = self.net.backward(theta, x.reshape(1, n_tasks * n, n_in),
                                 d_emb.reshape(1, n_tasks * n, -1))[0]
        return float(loss.mean()), grad

    def adapt(self, support_x, support_y, steps=None) -> PrototypeClassifier:
        """A :class:`PrototypeClassifier` for one task (``steps`` is ignored)."""
        x, y = self._prepare_task(support_x, support_y)
        y = np.asarray(y, dtype=np.int64)
        theta = self.net.get_params()
        emb = self._embed(theta, x)
        n_way = int(y.max()) + 1
        onehot = _one_hot(y, n_way, emb.dtype)
        protos = np.matmul(onehot.transpose(0, 2, 1), emb) / onehot.sum(axis=1)[..., None]
        return PrototypeClassifier(self.net, theta, protos[0])

    def evaluate(self, tasks, steps=0, n_tasks=None, chunk: int = 200, seed=None) -> dict:
        """Query loss and accuracy over episodes (see
        :meth:`MetaLearner.evaluate`). No gradient steps are taken, so the
        one result is reported under each number of ``steps`` asked for
        (default 0), as the other learners report theirs."""
        batch = self._task_batch(tasks, n_tasks, seed)
        steps = _check_step_counts(steps, "evaluate")
        chunk = check_positive_int(chunk, "evaluate", "chunk")
        # one n_way for every chunk: a chunk's own labels may miss a class
        n_way = self._n_way(batch, "ProtoNet.evaluate")
        theta = self.net.get_params()
        acc = {"loss": [], "accuracy": []}
        with quiet_float_warnings():  # a divergence is reported as n_diverged
            for start in range(0, len(batch), chunk):
                part = batch[slice(start, start + chunk)]
                s = part.support_x.shape[1]
                emb = self._embed(theta, np.concatenate([part.support_x, part.query_x], axis=1))
                loss, _, _, logits = _prototype_loss(emb[:, :s], part.support_y, emb[:, s:],
                                                    part.query_y, n_way)
                acc["loss"].append(loss)
                acc["accuracy"].append(accuracy(logits, part.query_y))
        return self._summary(len(batch), {s: acc for s in steps})
