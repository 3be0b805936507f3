"""An independent, slow, single-task reference for the meta-learning tests:
a plain tanh/sigmoid MLP with its loss and gradient written out per layer
(no task axis, no shared code with tinynet.meta), and the MAML inner loop.
"""

import numpy as np


def unpack(theta, sizes):
    """[(W, b), ...] views of a flat vector for layer widths ``sizes``."""
    out, offset = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = theta[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        b = theta[offset:offset + n_out]
        offset += n_out
        out.append((w, b))
    return out


def n_params(sizes):
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def loss_and_grad(theta, sizes, x, y, act="tanh"):
    """MSE (mean over all elements) of an MLP with ``act`` hidden units."""
    layers = unpack(theta, sizes)
    acts = [x]
    for i, (w, b) in enumerate(layers):
        z = acts[-1] @ w + b
        if i < len(layers) - 1:
            z = np.tanh(z) if act == "tanh" else 1 / (1 + np.exp(-z))
        acts.append(z)
    diff = acts[-1] - y
    loss = float(np.mean(diff ** 2))
    delta = 2 * diff / diff.size
    grads = []
    for i in range(len(layers) - 1, -1, -1):
        w, _ = layers[i]
        grads.append((delta.sum(0), acts[i].T @ delta))
        if i:
            a = acts[i]
            delta = (delta @ w.T) * ((1 - a * a) if act == "tanh" else a * (1 - a))
    flat = []
    for db, dw in reversed(grads):
        flat += [dw.ravel(), db]
    return loss, np.concatenate(flat)


def adapted_query_loss(theta0, lr, sizes, task, steps, act="tanh"):
    """Query loss after ``steps`` SGD steps on the support set (lr scalar or vector)."""
    sx, sy, qx, qy = task
    theta = theta0.copy()
    for _ in range(steps):
        theta = theta - lr * loss_and_grad(theta, sizes, sx, sy, act)[1]
    return loss_and_grad(theta, sizes, qx, qy, act)[0], theta
