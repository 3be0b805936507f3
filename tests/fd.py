"""Independent, slow references for the tests: central finite differences.

Kept apart from :mod:`tinynet.gradcheck` on purpose, so that the library's
own gradient checker is not the only judge of the library's gradients.
"""

import numpy as np


def numerical_grad(f, x, eps=1e-6):
    """d f(x) / d x by central differences, one element at a time.

    ``f`` takes no arguments and reads ``x`` (which is perturbed in place and
    restored); it returns a float.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        f_plus = f()
        flat[i] = old - eps
        f_minus = f()
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def numerical_grad4(f, x, eps=1e-4):
    """d f / d x by the fourth-order central difference
    (8 f(x+h) - 8 f(x-h) - f(x+2h) + f(x-2h)) / 12h, element by element
    (``x`` is perturbed in place and restored). Truncation O(h^4) ~ 1e-16
    and rounding ~1e-12 keep a 1e-6 relative check meaningful for the small
    meta-gradients of nested inner loops, and for nets whose third derivative
    is large, where :func:`numerical_grad`'s second-order difference has
    ~1e-10 absolute error (truncation eps^2 f'''/6, and rounding)."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        values = []
        for step in (eps, -eps, 2 * eps, -2 * eps):
            flat[i] = old + step
            values.append(f())
        flat[i] = old
        gflat[i] = (8 * values[0] - 8 * values[1] - values[2] + values[3]) / (12 * eps)
    return grad


def max_rel_error(a, b, floor=1e-8, scale_floor=0.0):
    """Worst |a-b| / max(|a|, |b|, floor, scale_floor * max|b|): the measure the
    issues quote.

    ``scale_floor`` (e.g. 1e-3) judges entries far below the array's largest
    relative to that scale: central differences carry an absolute rounding
    error of about 1e-16 * |L| / eps ~ 1e-10 on *every* entry, so a correct
    gradient entry of 1e-5 would otherwise fail a 1e-6 test. The default 0
    keeps the strict per-entry ratio.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    floor = max(floor, scale_floor * float(np.max(np.abs(b))))
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)))


def check_layer_gradients(layer, x, rng, eps=1e-6, training=False):
    """Worst relative errors of a layer's input and parameter gradients.

    Uses the scalar loss L = sum(y * r) with a fixed random r, so dL/dy = r.
    Returns a dict: {"x": err, "<param name>": err, ...}.
    """
    y = layer.forward(x, training=training)
    r = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(layer.forward(x, training=training) * r))

    layer.zero_grad()
    layer.forward(x, training=training)
    dx = layer.backward(r)
    errors = {"x": max_rel_error(dx, numerical_grad(loss, x, eps))}
    analytic = {p.name: p.grad.copy() for p in layer.parameters()}
    for p in layer.parameters():
        errors[p.name] = max_rel_error(analytic[p.name], numerical_grad(loss, p.value, eps))
    return errors


#: Below this magnitude an entry is judged by its absolute error: errors under
#: ABS_FLOOR * 1e-6 = 1e-10 pass. The central differences' rounding noise is about
#: 1e-16 * |L| / eps (1e-11 |L| at eps = 1e-5) on every entry, and a whole array can
#: be that small: a saturated MMoE gate had gradients of 3e-6 and errors of 5e-12,
#: and failed against the 1e-12 floor the losses' and models' checks used to have.
#: A wrong backward errs by the size of the gradient itself, far above 1e-10.
ABS_FLOOR = 1e-4


def grad_error(analytic, numeric):
    """Relative error against a thousandth of the gradient's scale for near-zero
    entries, whose central difference is rounding noise, and against
    :data:`ABS_FLOOR` for arrays that are tiny as a whole (eps around 1e-5)."""
    scale = float(np.abs(numeric).max()) if np.size(numeric) else 0.0
    return max_rel_error(analytic, numeric, floor=max(1e-3 * scale, ABS_FLOOR))
