"""Finite-difference checks of whole multi-output models (float64)."""

import numpy as np

from tests.fd import grad_error, numerical_grad


# A larger step than fd's default: these losses are sums over whole models, whose
# rounding noise (~1e-16 * |L| / eps) would otherwise swamp gradients of 1e-4.
EPS = 1e-5


def check_model_gradients(model, xs, rng, skip=(), training=False):
    """Worst relative errors of input and parameter gradients of a Model.

    The scalar is L = sum_k sum(out_k * r_k) with fixed random r_k, so every
    output (task) contributes and shared parameters receive summed gradients.
    Entries of ``skip`` (output indices) get no gradient.
    """
    outs = model.forward_all(xs, training=training)
    rs = [None if k in skip else rng.standard_normal(o.shape) for k, o in enumerate(outs)]

    def loss():
        outs = model.forward_all(xs, training=training)
        return float(sum(np.sum(o * r) for o, r in zip(outs, rs) if r is not None))

    model.zero_grad()
    model.forward_all(xs, training=training)
    dxs = model.backward_all(rs)
    errors = {}
    for i, (x, dx) in enumerate(zip(xs, dxs)):
        errors[f"x{i}"] = grad_error(dx, numerical_grad(loss, x, EPS))
    analytic = [p.grad.copy() for p in model.parameters()]
    for p, g in zip(model.parameters(), analytic):
        errors[p.name] = grad_error(g, numerical_grad(loss, p.value, EPS))
    return errors
