r"""The update rules of the optimizers, one small function each.

Each rule updates one parameter *in place* from its gradient and its state
arrays, given plain-number hyperparameters; it reads and writes nothing
else, so it can be swapped for a fused kernel that does the same on a flat
buffer. The arithmetic follows ``torch.optim``'s single-tensor code paths
operation by operation, so results agree with PyTorch to the last few ulps.

In the formulas :math:`\theta` is the parameter, :math:`g` its gradient,
:math:`\eta` the learning rate, :math:`\lambda` the weight decay and
:math:`t` the step count (1 on the first step).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lerp_", "sgd", "adam", "rmsprop", "adagrad"]


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start += weight * (end - start)`` in place, rounded as ``torch.lerp_``."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def sgd(value, grad, momentum_buffer, *, lr, momentum, dampening, nesterov, weight_decay,
        first_step):
    r"""Stochastic gradient descent with optional (Nesterov) momentum.

    .. math::
        d = g + \lambda\theta, \quad
        b \leftarrow \begin{cases} d & t = 1 \\ \mu b + (1 - \tau) d & t > 1\end{cases},
        \quad
        \theta \leftarrow \theta - \eta \cdot \begin{cases} d + \mu b & \text{Nesterov} \\
                                                         b & \text{otherwise}\end{cases}

    (:math:`\mu` momentum, :math:`\tau` dampening; with :math:`\mu = 0`,
    :math:`\theta \leftarrow \theta - \eta d` and ``momentum_buffer`` is unused).
    """
    d = grad + weight_decay * value if weight_decay else grad
    if momentum:
        if first_step:
            momentum_buffer[...] = d
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * d
        d = d + momentum * momentum_buffer if nesterov else momentum_buffer
    value += -lr * d


def adam(value, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, lr, beta1, beta2, eps,
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
    :math:`v` in the denominator.
    """
    if weight_decay:
        if decoupled:
            value *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * value
    lerp_(exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    denom = np.sqrt(second) / bias_correction2_sqrt
    denom += eps
    value += -(lr / bias_correction1) * exp_avg / denom


def rmsprop(value, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
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
    """
    if weight_decay:
        grad = grad + weight_decay * value
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        lerp_(grad_avg, grad, 1 - alpha)
        avg = np.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg += eps
    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += grad / avg
        value += -lr * momentum_buffer
    else:
        value += -lr * grad / avg


def adagrad(value, grad, state_sum, *, step, lr, lr_decay, eps, weight_decay):
    r"""Adagrad (Duchi et al.).

    .. math::
        g \leftarrow g + \lambda\theta, \quad
        \tilde\eta = \frac{\eta}{1 + (t-1)\,\delta}, \quad
        S \leftarrow S + g^2, \quad
        \theta \leftarrow \theta - \tilde\eta\, \frac{g}{\sqrt{S} + \epsilon}

    (:math:`\delta` is ``lr_decay``).
    """
    if weight_decay:
        grad = grad + weight_decay * value
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += grad * grad
    std = np.sqrt(state_sum)
    std += eps
    value += -clr * grad / std
