"""Small models and task batches shared by the meta-learning tests."""

import numpy as np

from tests.fd import numerical_grad4  # noqa: F401 (the meta tests import it from here)
from tinynet.layers import Dense
from tinynet.meta import TaskBatch


def mlp_layers(sizes, activation="tanh", seed=0, dtype="float64"):
    """Dense layers of widths ``sizes`` with ``activation`` between them."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        act = activation if i < len(sizes) - 2 else None
        layers.append(Dense(n_out, activation=act, input_dim=n_in, dtype=dtype,
                            seed=seed + i))
    return layers


def regression_tasks(n_tasks, k, n_in=1, n_out=1, seed=0, q=None):
    rng = np.random.default_rng(seed)
    q = k if q is None else q
    return TaskBatch(rng.standard_normal((n_tasks, k, n_in)),
                     rng.standard_normal((n_tasks, k, n_out)),
                     rng.standard_normal((n_tasks, q, n_in)),
                     rng.standard_normal((n_tasks, q, n_out)))


def randomize(net, seed):
    """Random non-zero weights (biases included) for a FunctionalMLP's model."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(net.n_params) * 0.8
    net.set_params(theta)
    return theta


def rel_error(analytic, numeric, at_least=1e-5):
    """Worst relative error, with entries far below the array's scale judged
    against 1e-3 of that scale (central differences carry ~1e-10 absolute
    noise, which would swamp the relative error of a 1e-5 entry), and every
    entry against at least ``at_least``: the fourth-order difference's rounding
    noise is ~1e-12 for losses of order 1, so a 1e-6 check of a gradient whose
    largest entry is 2e-7 failed on that noise alone (9e-5: SiLU, cross-entropy,
    sizes [4, 4, 2], seed 284); with the default an absolute error above 1e-11
    still fails. Differences of gradients (Hessian-vector products) carry the
    gradients' own rounding, ~1e-15 where a softmax probability near 1 cancels
    against its target, divided by the step: ``at_least=1e-4`` there."""
    from tests.fd import max_rel_error
    numeric = np.asarray(numeric, np.float64)
    return max_rel_error(analytic, numeric,
                         floor=max(1e-3 * float(np.abs(numeric).max()), at_least))


def directional_diff4(grad_fn, theta, v, eps=1e-4):
    """(grad(theta + h v) - grad(theta - h v)) / 2h, fourth-order accurate:
    the reference for Hessian-vector products."""
    def diff(h):
        return grad_fn(theta + h * v) - grad_fn(theta - h * v)
    return (8 * diff(eps) - diff(2 * eps)) / (12 * eps)
