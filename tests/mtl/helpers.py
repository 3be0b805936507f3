"""Finite-difference checks of whole multi-output models (float64)."""

import numpy as np

from tests.fd import max_rel_error, numerical_grad


# A larger step than fd's default: these losses are sums over whole models, whose
# rounding noise (~1e-16 * |L| / eps) would otherwise swamp gradients of 1e-4.
EPS = 1e-5


#: Below this magnitude an entry is judged by its absolute error: errors under
#: ABS_FLOOR * 1e-6 = 1e-10 pass. The central differences' rounding noise is about
#: 1e-16 * |L| / EPS = 1e-11 |L| on every entry. A whole array can be that small: a
#: saturated MMoE gate had gradients of 3e-6 and errors of 5e-12, and failed against
#: the 1e-12 floor this used to have. A wrong backward errs by the size of the
#: gradient itself, far above 1e-10.
ABS_FLOOR = 1e-4


def grad_error(analytic, numeric):
    """Relative error against a thousandth of the gradient's scale for near-zero
    entries, whose central difference is rounding noise (as tests/test_losses.py),
    and against :data:`ABS_FLOOR` for arrays that are tiny as a whole."""
    scale = float(np.abs(numeric).max()) if np.size(numeric) else 0.0
    return max_rel_error(analytic, numeric, floor=max(1e-3 * scale, ABS_FLOOR))


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
