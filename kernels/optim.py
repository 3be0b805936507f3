r"""Fused optimizer updates: one parallel pass over a parameter's elements.

Each kernel applies the same rule, operation by operation and in the
parameter's dtype, as ``torch.optim``: SGD with momentum/Nesterov, Adam/AdamW
(with amsgrad), RMSprop (centred, momentum) and Adagrad. The NumPy
references (``*_ref``) beside them are written array-wise and carry the
equations; ``tinynet.optim.rules`` presents them as the optimizers' rules.

Arrays are updated in place; they must be C-contiguous (a Param's arrays
always are, also as views into a flat buffer, so a whole model's flat
buffers can be updated by one call). Scalars are cast to the arrays' dtype
before the kernel runs, so float32 parameters are updated in float32
arithmetic as in PyTorch; the results agree with the references to a few
ulps (fused multiply-adds may round once instead of twice).

Near-subnormal state is stored as zero
--------------------------------------
One departure from ``torch.optim``: every *state* value (momentum buffers,
first and second moments, Adagrad's sum) whose magnitude falls below
:data:`STATE_FLOOR` of its dtype, :math:`2^{26}` times the smallest normal
number (:math:`2^{-100} \approx 7.9\cdot 10^{-31}` in float32,
:math:`2^{-996}` in float64), is stored as zero. Why: a dead ReLU unit's
gradient is exactly zero, so its Adam first moment decays by beta1 = 0.9 a
step towards the subnormal range, and on Intel CPUs every operation that
reads or *produces* a subnormal takes a microcode assist (~100 cycles).
Storing only subnormals as zero is not enough: ``lr * m`` is subnormal
already for :math:`m < 2^{-126}/\eta`. Measured here on the 235k-parameter
benchmark MLP: Adam's step took 0.27 ms, 4.3 ms after three epochs without
any flushing (80 % of the first moments subnormal; PyTorch slows the same
way unless ``torch.set_flush_denormal(True)``), and still 0.5-1.7 ms with
a flush at the smallest normal number. The floor keeps every intermediate
normal for learning rates down to :math:`2^{-26} \approx 1.5\cdot 10^{-8}`.
Other floating dtypes (float16, longdouble: the references step them, the
kernels do not) have no floor: their state is never flushed, as in PyTorch
(float16's :math:`2^{26}` times its smallest normal number would be 4096).
The parameters are never flushed. A state that divides (Adam's :math:`v`,
RMSprop's :math:`s`, Adagrad's :math:`S`) is flushed only where the
numerator it divides is zero (Adam's :math:`m` after its own flush, the
gradient for the other two), and never with eps = 0 (a zero divisor would
make 0/0 where PyTorch has 0/tiny): flushing it under a non-zero numerator would
turn :math:`\eta m/(\sqrt v + \epsilon)` into :math:`\eta m/\epsilon`, an
unbounded step for a small ``eps`` (Adam with eps = 1e-20 and gradients of
1e-15 moved a parameter by -300 where PyTorch moves it by 1e-3). With that
rule a flushed value changes a parameter by less than ``lr * floor / eps``
(8e-26 at the defaults): below the rounding unit of any parameter larger
than 1e-18. Such a divisor can still go subnormal where gradients stay
non-zero below about 1e-19 (float32): correct, only slow there. NaN and
infinity pass through unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from .checks import check_writable
from .config import NUMBA_ENABLED, njit, num_threads, prange

__all__ = ["sgd", "adam", "rmsprop", "adagrad", "sgd_ref", "adam_ref", "rmsprop_ref",
           "adagrad_ref", "flush_small_state_ref", "STATE_FLOOR"]

_MIN_CHUNK = 1 << 16  # elements per thread worth waking it for (~25 µs of Adam)


def _chunks(n):
    return max(1, min(num_threads(), n // _MIN_CHUNK)) if n >= 2 * _MIN_CHUNK else 1


def _flat(*arrays):
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        if not a.flags.c_contiguous:
            raise ValueError(f"optimizer kernel expected C-contiguous arrays, received one "
                             f"with strides {a.strides}")
        out.append(a.reshape(-1))
    return out


def _check(value, grad, *state):
    if value.dtype not in (np.float32, np.float64):
        raise TypeError(f"optimizer kernel expected float32 or float64 parameters, "
                        f"received {value.dtype}")
    for a in (grad, *state):
        if a is not None and (a.shape != value.shape or a.dtype != value.dtype):
            raise ValueError(f"optimizer kernel expected arrays of shape {value.shape} and "
                             f"dtype {value.dtype}, received {a.shape} {a.dtype}")
    check_writable("optimizer kernel", value=value, **{f"state {i}": a for i, a in
                                                       enumerate(state)})


#: State magnitudes below ``STATE_FLOOR[dtype]`` are stored as zero (see above).
STATE_FLOOR = {np.dtype(t): np.finfo(t).tiny * 2.0 ** 26 for t in (np.float32, np.float64)}


def _floor(dtype):
    """The state floor of ``dtype``: 0 (nothing flushed) for dtypes other than
    float32 and float64 (see the module docstring)."""
    return STATE_FLOOR.get(np.dtype(dtype), 0.0)


@njit(exact=True)
def _flush(x, tiny):
    """``x``, or zero when ``|x|`` is below the floor (NaN compares False: it stays)."""
    return x - x if abs(x) < tiny else x


@njit(exact=True)
def _flush_divisor(x, tiny_div, numerator):
    """:func:`_flush` for a state that divides ``numerator``: kept while the
    numerator is non-zero. ``tiny_div`` is the floor, or 0 (never flush)
    when eps = 0, where a zero divisor would make 0/0 (:func:`_divisor_floor`)."""
    # & not and: no short-circuit branches in the loops LLVM vectorises
    return x - x if (abs(x) < tiny_div) & (numerator == 0) else x


def _divisor_floor(dtype, eps):
    """The floor for :func:`_flush_divisor`: the state floor, or 0 with eps = 0."""
    return np.dtype(dtype).type(_floor(dtype) if eps > 0 else 0.0)


def flush_small_state_ref(a, numerator=None, eps=None):
    """In place: entries of ``a`` with magnitude below the state floor become
    zero; with ``numerator``, only where it is zero (``a`` plus ``eps``
    divides it) and ``eps`` > 0."""
    small = np.abs(a) < _floor(a.dtype)
    if numerator is not None:
        small &= (numerator == 0) & (eps > 0)
    a[small] = 0


# --------------------------------------------------------------------- SGD
@njit(exact=True)
def _sgd_range(p, g, buf, lr, wd, momentum, damp1, nesterov, first, use_momentum, tiny):
    for i in range(p.shape[0]):
        d = g[i]
        if wd != 0:
            d = d + wd * p[i]
        if use_momentum:
            if first:
                b = d
            else:
                b = buf[i] * momentum + damp1 * d
            b = _flush(b, tiny)
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] += -lr * d


@njit(parallel=True, exact=True)
def _sgd(p, g, buf, lr, wd, momentum, damp1, nesterov, first, use_momentum, tiny, n_chunks):
    n = p.shape[0]
    for t in prange(n_chunks):
        lo, hi = (n * t) // n_chunks, (n * (t + 1)) // n_chunks
        _sgd_range(p[lo:hi], g[lo:hi], buf[lo:hi], lr, wd, momentum, damp1, nesterov, first,
                   use_momentum, tiny)


def sgd(value, grad, momentum_buffer, *, lr, momentum, dampening, nesterov, weight_decay,
        first_step):
    """In-place SGD step (see :func:`sgd_ref` for the rule)."""
    _check(value, grad, momentum_buffer)
    p, g, buf = _flat(value, grad, momentum_buffer)
    if p.size == 0:
        return
    t = value.dtype.type
    _sgd(p, g, p if buf is None else buf, t(lr), t(weight_decay), t(momentum),
         t(1 - dampening), bool(nesterov), bool(first_step), bool(momentum),
         t(_floor(value.dtype)), _chunks(p.size))


def sgd_ref(value, grad, momentum_buffer, *, lr, momentum, dampening, nesterov, weight_decay,
            first_step):
    r"""Stochastic gradient descent with optional (Nesterov) momentum.

    .. math::
        d = g + \lambda\theta, \quad
        b \leftarrow \begin{cases} d & \text{no buffer yet} \\ \mu b + (1 - \tau) d
                                   & \text{otherwise}\end{cases},
        \quad
        \theta \leftarrow \theta - \eta \cdot \begin{cases} d + \mu b & \text{Nesterov} \\
                                                         b & \text{otherwise}\end{cases}

    (:math:`\mu` momentum, :math:`\tau` dampening; with :math:`\mu = 0`,
    :math:`\theta \leftarrow \theta - \eta d` and ``momentum_buffer`` is unused).
    "No buffer yet" (``first_step``) is the first step taken with momentum on,
    which is not step 1 when momentum was switched on later, as in
    ``torch.optim.SGD``.
    A :math:`b` below the state floor is stored as zero (see the module docstring).
    """
    d = grad + weight_decay * value if weight_decay else grad
    if momentum:
        if first_step:
            momentum_buffer[...] = d
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * d
        flush_small_state_ref(momentum_buffer)
        d = d + momentum * momentum_buffer if nesterov else momentum_buffer
    value += -lr * d


# -------------------------------------------------------------------- Adam
@njit(exact=True)
def _adam_elem(p, m, v, i, gi, lr_bc1, bc2_sqrt, beta2, one_minus_beta2, w1, eps, tiny,
               tiny_div):
    mi = m[i]
    mi = _flush(mi + w1 * (gi - mi), tiny)
    m[i] = mi
    vi = _flush_divisor(v[i] * beta2 + one_minus_beta2 * gi * gi, tiny_div, mi)
    v[i] = vi
    p[i] += (-lr_bc1 * mi) / (math.sqrt(vi) / bc2_sqrt + eps)


@njit(exact=True)
def _adam_range(p, g, m, v, vmax, lr_bc1, bc2_sqrt, beta2, one_minus_beta2, w1, w1c,
                lerp_small, eps, wd, decay_factor, decoupled, amsgrad, tiny, tiny_div):
    # The common cases get branch-free loops, which LLVM vectorises (a loop
    # with branches on flags inside runs ~5x slower here).
    if lerp_small and not amsgrad:
        if decoupled:
            for i in range(p.shape[0]):
                p[i] *= decay_factor
                _adam_elem(p, m, v, i, g[i], lr_bc1, bc2_sqrt, beta2, one_minus_beta2, w1, eps,
                           tiny, tiny_div)
        elif wd != 0:
            for i in range(p.shape[0]):
                _adam_elem(p, m, v, i, g[i] + wd * p[i], lr_bc1, bc2_sqrt, beta2,
                           one_minus_beta2, w1, eps, tiny, tiny_div)
        else:
            for i in range(p.shape[0]):
                _adam_elem(p, m, v, i, g[i], lr_bc1, bc2_sqrt, beta2, one_minus_beta2, w1, eps,
                           tiny, tiny_div)
        return
    for i in range(p.shape[0]):
        gi = g[i]
        if decoupled:
            p[i] *= decay_factor
        elif wd != 0:
            gi = gi + wd * p[i]
        mi = m[i]
        if lerp_small:
            mi = mi + w1 * (gi - mi)
        else:
            mi = gi - (gi - mi) * w1c
        mi = _flush(mi, tiny)
        m[i] = mi
        vi = _flush_divisor(v[i] * beta2 + one_minus_beta2 * gi * gi, tiny_div, mi)
        v[i] = vi
        if amsgrad:
            # np.maximum's NaN rule: Numba's max(a, b) returns a unless b > a,
            # so max(vmax, NaN) kept the old finite maximum
            vm = vmax[i]
            vi = vi if (vi > vm) | (vi != vi) else vm
            vmax[i] = vi
        p[i] += (-lr_bc1 * mi) / (math.sqrt(vi) / bc2_sqrt + eps)


@njit(parallel=True, exact=True)
def _adam(p, g, m, v, vmax, lr_bc1, bc2_sqrt, beta2, one_minus_beta2, w1, w1c, lerp_small,
          eps, wd, decay_factor, decoupled, amsgrad, tiny, tiny_div, n_chunks):
    n = p.shape[0]
    for t in prange(n_chunks):
        lo, hi = (n * t) // n_chunks, (n * (t + 1)) // n_chunks
        _adam_range(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi] if amsgrad else vmax,
                    lr_bc1, bc2_sqrt, beta2, one_minus_beta2, w1, w1c, lerp_small, eps, wd,
                    decay_factor, decoupled, amsgrad, tiny, tiny_div)


def adam(value, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
         weight_decay, amsgrad, decoupled):
    """In-place Adam / AdamW step (see :func:`adam_ref` for the rule)."""
    _check(value, grad, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else None)
    p, g, m, v, vmax = _flat(value, grad, exp_avg, exp_avg_sq,
                             max_exp_avg_sq if amsgrad else None)
    if p.size == 0:
        return
    t = value.dtype.type
    w1 = 1 - beta1
    _adam(p, g, m, v, p if vmax is None else vmax, t(lr / (1 - beta1 ** step)),
          t((1 - beta2 ** step) ** 0.5), t(beta2), t(1 - beta2), t(w1), t(1 - w1), abs(w1) < 0.5,
          t(eps),
          t(weight_decay), t(1 - lr * weight_decay), bool(decoupled and weight_decay),
          bool(amsgrad), t(_floor(value.dtype)), _divisor_floor(value.dtype, eps),
          _chunks(p.size))


def _lerp_ref(start, end, weight):
    """``start += weight * (end - start)`` in place, rounded as ``torch.lerp_``."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def adam_ref(value, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
             weight_decay, amsgrad, decoupled):
    r"""Adam (Kingma & Ba), and AdamW when ``decoupled`` (Loshchilov & Hutter).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
            \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    Weight decay is L2 (:math:`g \leftarrow g + \lambda\theta`) for Adam and
    decoupled (:math:`\theta \leftarrow (1 - \eta\lambda)\theta` first) for
    AdamW. With ``amsgrad`` the running maximum of :math:`v` replaces
    :math:`v` in the denominator. :math:`m` below the state floor is stored as
    zero, and :math:`v` where :math:`m` is zero too.
    """
    if weight_decay:
        if decoupled:
            value *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * value
    _lerp_ref(exp_avg, grad, 1 - beta1)
    flush_small_state_ref(exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    flush_small_state_ref(exp_avg_sq, numerator=exp_avg, eps=eps)
    second = exp_avg_sq
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    denom = np.sqrt(second) / ((1 - beta2 ** step) ** 0.5)
    denom += eps
    value += -(lr / (1 - beta1 ** step)) * exp_avg / denom


# ----------------------------------------------------------------- RMSprop
@njit(exact=True)
def _rmsprop_range(p, g, sq, gavg, buf, lr, alpha, one_minus_alpha, eps, wd, momentum,
                   centered, use_momentum, tiny, tiny_div):
    if not centered and not use_momentum and wd == 0:  # the default: a branch-free loop
        for i in range(p.shape[0]):
            gi = g[i]
            s = _flush_divisor(sq[i] * alpha + one_minus_alpha * gi * gi, tiny_div, gi)
            sq[i] = s
            p[i] += (-lr * gi) / (math.sqrt(s) + eps)
        return
    for i in range(p.shape[0]):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        if centered:
            ga = gavg[i]
            ga = _flush(ga + one_minus_alpha * (gi - ga), tiny)
            gavg[i] = ga
            # s - ga^2 must not turn negative: s stays while ga does
            s = _flush_divisor(sq[i] * alpha + one_minus_alpha * gi * gi, tiny_div,
                               abs(gi) + abs(ga))
            sq[i] = s
            avg = math.sqrt(s - ga * ga) + eps
        else:
            s = _flush_divisor(sq[i] * alpha + one_minus_alpha * gi * gi, tiny_div, gi)
            sq[i] = s
            avg = math.sqrt(s) + eps
        if use_momentum:
            b = _flush(buf[i] * momentum + gi / avg, tiny)
            buf[i] = b
            p[i] += -lr * b
        else:
            p[i] += (-lr * gi) / avg


@njit(parallel=True, exact=True)
def _rmsprop(p, g, sq, gavg, buf, lr, alpha, one_minus_alpha, eps, wd, momentum, centered,
             use_momentum, tiny, tiny_div, n_chunks):
    n = p.shape[0]
    for t in prange(n_chunks):
        lo, hi = (n * t) // n_chunks, (n * (t + 1)) // n_chunks
        _rmsprop_range(p[lo:hi], g[lo:hi], sq[lo:hi], gavg[lo:hi], buf[lo:hi], lr, alpha,
                       one_minus_alpha, eps, wd, momentum, centered, use_momentum, tiny,
                       tiny_div)


def rmsprop(value, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
            weight_decay, momentum, centered):
    """In-place RMSprop step (see :func:`rmsprop_ref` for the rule)."""
    _check(value, grad, square_avg, grad_avg if centered else None,
           momentum_buffer if momentum > 0 else None)
    p, g, sq, ga, buf = _flat(value, grad, square_avg, grad_avg if centered else None,
                              momentum_buffer if momentum > 0 else None)
    if p.size == 0:
        return
    t = value.dtype.type
    if centered and not abs(1 - alpha) < 0.5:  # torch.lerp_'s other rounding branch: rare
        return rmsprop_ref(value, grad, square_avg, grad_avg, momentum_buffer, lr=lr,
                           alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                           centered=centered)
    _rmsprop(p, g, sq, p if ga is None else ga, p if buf is None else buf, t(lr), t(alpha),
             t(1 - alpha), t(eps), t(weight_decay), t(momentum), bool(centered),
             momentum > 0, t(_floor(value.dtype)), _divisor_floor(value.dtype, eps),
             _chunks(p.size))


def rmsprop_ref(value, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
                weight_decay, momentum, centered):
    r"""RMSprop (Hinton), optionally centred and with momentum.

    .. math::
        g \leftarrow g + \lambda\theta, \quad
        s \leftarrow \alpha s + (1-\alpha) g^2, \quad
        a = \sqrt{s - \bar g^2} + \epsilon \ (\text{centred; } \bar g \leftarrow
            \alpha\bar g + (1-\alpha) g) \ \text{ or } \sqrt{s} + \epsilon,

    .. math::
        b \leftarrow \mu b + g / a, \ \theta \leftarrow \theta - \eta b
        \quad (\mu > 0), \qquad \theta \leftarrow \theta - \eta\, g / a \quad (\mu = 0).

    :math:`\bar g, b` below the state floor are stored as zero, and :math:`s`
    where :math:`g` (and, centred, :math:`\bar g`) is zero.
    """
    if weight_decay:
        grad = grad + weight_decay * value
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        _lerp_ref(grad_avg, grad, 1 - alpha)
        flush_small_state_ref(grad_avg)
        # s - g_bar^2 must not turn negative: s stays while g_bar does
        flush_small_state_ref(square_avg, numerator=np.abs(grad) + np.abs(grad_avg),
                              eps=eps)
        avg = np.sqrt(square_avg - grad_avg * grad_avg)
    else:
        flush_small_state_ref(square_avg, numerator=grad, eps=eps)
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += grad / avg
        flush_small_state_ref(momentum_buffer)
        value += -lr * momentum_buffer
    else:
        value += -lr * grad / avg


# ----------------------------------------------------------------- Adagrad
@njit(exact=True)
def _adagrad_range(p, g, ssum, clr, eps, wd, tiny_div):
    for i in range(p.shape[0]):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * p[i]
        s = _flush_divisor(ssum[i] + gi * gi, tiny_div, gi)
        ssum[i] = s
        p[i] += (-clr * gi) / (math.sqrt(s) + eps)


@njit(parallel=True, exact=True)
def _adagrad(p, g, ssum, clr, eps, wd, tiny_div, n_chunks):
    n = p.shape[0]
    for t in prange(n_chunks):
        lo, hi = (n * t) // n_chunks, (n * (t + 1)) // n_chunks
        _adagrad_range(p[lo:hi], g[lo:hi], ssum[lo:hi], clr, eps, wd, tiny_div)


def adagrad(value, grad, state_sum, *, step, lr, lr_decay, eps, weight_decay):
    """In-place Adagrad step (see :func:`adagrad_ref` for the rule)."""
    _check(value, grad, state_sum)
    p, g, s = _flat(value, grad, state_sum)
    if p.size == 0:
        return
    t = value.dtype.type
    _adagrad(p, g, s, t(lr / (1 + (step - 1) * lr_decay)), t(eps), t(weight_decay),
             _divisor_floor(value.dtype, eps), _chunks(p.size))


def adagrad_ref(value, grad, state_sum, *, step, lr, lr_decay, eps, weight_decay):
    r"""Adagrad (Duchi et al.).

    .. math::
        g \leftarrow g + \lambda\theta, \quad
        \tilde\eta = \frac{\eta}{1 + (t-1)\,\delta}, \quad
        S \leftarrow S + g^2, \quad
        \theta \leftarrow \theta - \tilde\eta\, \frac{g}{\sqrt{S} + \epsilon}

    (:math:`\delta` is ``lr_decay``). An :math:`S` below the state floor is
    stored as zero where :math:`g` is zero.
    """
    if weight_decay:
        grad = grad + weight_decay * value
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += grad * grad
    flush_small_state_ref(state_sum, numerator=grad, eps=eps)
    std = np.sqrt(state_sum)
    std += eps
    value += -clr * grad / std


if not NUMBA_ENABLED:
    sgd, adam, rmsprop, adagrad = sgd_ref, adam_ref, rmsprop_ref, adagrad_ref
