r"""Normalization layers: BatchNorm and LayerNorm.

Both standardise ``x`` over some axes and then scale and shift each feature
(the last axis) with learned :math:`\gamma, \beta`. With :math:`n` the number
of elements averaged over:

.. math::
    \mu = \tfrac1n \textstyle\sum x, \quad
    \sigma^2 = \tfrac1n \textstyle\sum (x - \mu)^2, \quad
    \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \quad
    y = \gamma \hat x + \beta

and, because :math:`\mu` and :math:`\sigma^2` depend on every :math:`x` they
average, the backward (with :math:`g = \gamma\, \partial L/\partial y`, means
over the same axes) is

.. math::
    \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
    \Bigl(g - \overline{g} - \hat x\, \overline{g \hat x}\Bigr), \qquad
    \frac{\partial L}{\partial \gamma} = \textstyle\sum \frac{\partial L}{\partial y}\hat x,
    \qquad
    \frac{\partial L}{\partial \beta} = \textstyle\sum \frac{\partial L}{\partial y}

(the two subtracted terms are the paths through :math:`\mu` and through
:math:`\sigma^2`; the parameter sums run over every axis but the last).
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..kernels.norms import check_eps, standardise_ref
from ..checks import as_values_like, check_bool
from ..param import check_param_budget
from ._checks import Setting, check_real
from .base import Layer


def _use_kernels(x, gamma) -> bool:
    """Whether the Numba kernels run (the NumPy code here is their reference)."""
    return (x.dtype == gamma.dtype and x.dtype in (np.float32, np.float64)
            and kernels.effective_backend() != "numpy")

__all__ = ["BatchNorm", "LayerNorm"]


def _mean(a, axes):
    """Mean over ``axes`` (kept), summed in float64 and returned in ``a``'s
    dtype: as the kernels (:mod:`tinynet.kernels.norms`) and PyTorch's CPU
    code. A float32 sum put the mean of values near 100 that differ by 1e-3
    an ulp off, 1 % of their spread (NumPy adds along a non-contiguous axis
    one row at a time, so its error grows with the batch)."""
    return a.mean(axis=axes, dtype=np.float64, keepdims=True).astype(a.dtype, copy=False)


def _standardize(x, axes, eps):
    """``(x_hat, inv_std, mean, var)`` with statistics over ``axes`` (kept):
    the kernels' reference, centred in x's dtype, squares and sums in float64
    (float32 squares overflowed from ``|x - mean| ~ 1.8e19`` and gave x_hat 0)."""
    return standardise_ref(x, axes, eps, x.dtype)


def _standardize_backward(g, x_hat, inv_std, axes):
    r""":math:`\partial L/\partial x` from :math:`g = \partial L/\partial \hat x`
    when the statistics were computed over ``axes`` (see the module docstring)."""
    g_mean = _mean(g, axes)
    gx_mean = _mean(g * x_hat, axes)
    return inv_std * (g - g_mean - x_hat * gx_mean)


def _refuse_positional(who: str, args: tuple, settings: str, torch_name: str) -> None:
    """A normalization layer's settings are keyword-only: PyTorch's first
    argument is the feature count, which here comes from the input, and as a
    positional ``eps`` or ``momentum`` it would make another layer silently."""
    if args:
        raise TypeError(f"{who} takes its settings by keyword ({settings}); its feature "
                        f"count comes from the input when it is built ({torch_name}(n) is "
                        f"{who}() here), received positional arguments "
                        f"{', '.join(map(repr, args))}")


class _FeatureNorm(Layer):
    """Shared parts: ``gamma``/``beta`` of shape ``(features,)`` on the last axis."""

    # checked when set later too (the kernels take it unchecked); inf would map every x to beta
    eps = Setting(check_real, low=0.0, low_open=True, high_open=True)
    _eps_checked = None  # the (eps, dtype) check_eps last passed

    def __init__(self, eps: float, **kwargs):
        self.eps = eps
        self.gamma = None
        self.beta = None
        self._cache = None
        super().__init__(**kwargs)

    def _prepare_input(self, x) -> np.ndarray:
        """As :meth:`Layer._prepare_input`, and an ``eps`` the layer's dtype can
        hold (:func:`~tinynet.kernels.norms.check_eps`: 1e-50 is 0 in float32,
        and a constant feature gave NaN on Numba, 0 on NumPy), checked here
        because the dtype is known here (a layer's first input may fix it)."""
        x = super()._prepare_input(x)
        if (self.eps, x.dtype) != self._eps_checked:  # once per eps and dtype, not per forward
            check_eps(self.eps, x.dtype, self._who)
            self._eps_checked = (self.eps, x.dtype)
        return x

    def _build(self, input_shape, rng):
        n_features = input_shape[-1]
        check_param_budget((2, n_features), f"the parameters {self.name}/gamma and beta")
        self.gamma = self.add_param("gamma", np.ones(n_features))
        self.beta = self.add_param("beta", np.zeros(n_features))

    def _scale_shift(self, x_hat):
        return x_hat * self.gamma.value + self.beta.value

    def _accumulate_param_grads(self, dy, x_hat):
        """Add the gamma and beta gradients; return g = gamma * dy."""
        batch_axes = tuple(range(dy.ndim - 1))
        # float64 sums, as _mean's (then rounded once, by +=, to the grad's dtype)
        self.gamma.grad += (dy * x_hat).sum(axis=batch_axes, dtype=np.float64)
        self.beta.grad += dy.sum(axis=batch_axes, dtype=np.float64)
        return dy * self.gamma.value

    def get_config(self) -> dict:
        return {**super().get_config(), "eps": self.eps}


class BatchNorm(_FeatureNorm):
    r"""Batch normalization over the batch (Keras' conventions).

    Features are on the last axis; statistics are taken over every other
    axis (for ``(batch, features)`` input: over the batch).

    **Training** (``training=True`` and the layer training in effect,
    :attr:`~tinynet.layers.base.Layer.trains`: its own flag on and no
    container holding it frozen) uses the batch's mean and biased variance,
    with the backward of the module docstring, and updates the moving
    statistics the Keras way:

    .. math::
        \mu_{run} \leftarrow m\,\mu_{run} + (1 - m)\,\mu_B, \qquad
        \sigma^2_{run} \leftarrow m\,\sigma^2_{run} + (1 - m)\,\sigma^2_B

    with :math:`\sigma^2_B` the *biased* batch variance (as Keras; PyTorch's
    ``BatchNorm1d(momentum=1 - m)`` stores the unbiased
    :math:`\sigma^2_B\, n/(n-1)` instead).

    Training needs more than one value per feature (as PyTorch): a batch of
    one sample of shape ``(1, features)`` has zero variance and would come
    out as all zeros, so it raises a ``ValueError``; one image
    ``(1, H, W, C)`` with :math:`H W > 1` is fine.

    **Inference** (``training=False``, or a frozen layer or one held by a
    frozen container, whatever ``training`` says) uses the moving statistics, which are constants:

    .. math::
        y = \gamma \frac{x - \mu_{run}}{\sqrt{\sigma^2_{run} + \epsilon}} + \beta,
        \qquad
        \frac{\partial L}{\partial x} = \frac{\gamma}{\sqrt{\sigma^2_{run} + \epsilon}}
        \frac{\partial L}{\partial y}

    and leaves them untouched. Freezing (``trainable=False``) thus turns a
    BatchNorm into a fixed affine map, which is what fine-tuning wants.

    The batch variance is squared and summed in float64, so a float32 batch
    of values ~1e20..1e30 (squares past 3.4e38) trains on its true
    :math:`\hat x`; PyTorch 2.13's float32 BatchNorm outputs :math:`\beta`
    there. The moving variance is kept in the layer's dtype, though: in
    float32 such a variance is inf, and inference outputs :math:`\beta` (as
    PyTorch's ``running_var``, inf too).

    Parameters
    ----------
    (keyword-only: the number of features comes from the input, so
    ``torch.nn.BatchNorm1d(64)`` is ``BatchNorm()``; a positional argument
    is refused)
    momentum : float, default 0.99
        Weight :math:`m \in [0, 1]` of the old moving statistics (Keras'
        meaning; PyTorch's ``momentum`` is :math:`1 - m`).
    eps : float, default 1e-3
        Added to the variance, positive and finite (Keras' default; PyTorch's
        is 1e-5). Both are checked again when set later (``bn.momentum = 0.9``).

    Attributes
    ----------
    gamma, beta : Param of shape (features,)
    moving_mean, moving_variance : ndarray of shape (features,)
        State, not parameters: saved by :meth:`get_state`. A moving variance
        is never negative (a mix of biased batch variances): :meth:`set_state`,
        ``set_weights`` and ``load`` refuse a negative one, which would give NaN
        (below :math:`-\epsilon`) or silently wrong outputs at inference.
    """

    nonnegative_state = frozenset({"moving_variance"})
    momentum = Setting(check_real, low=0.0, high=1.0)

    def __init__(self, *args, momentum: float = 0.99, eps: float = 1e-3, **kwargs):
        _refuse_positional("BatchNorm", args, "momentum, eps", "torch.nn.BatchNorm1d")
        self.momentum = momentum
        self.moving_mean = None
        self.moving_variance = None
        super().__init__(eps, **kwargs)

    def _build(self, input_shape, rng):
        super()._build(input_shape, rng)
        self.moving_mean = np.zeros(input_shape[-1], dtype=self.dtype)
        self.moving_variance = np.ones(input_shape[-1], dtype=self.dtype)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        axes = tuple(range(x.ndim - 1))
        use_batch = check_bool(training, self._who, "training") and self.trains
        if use_batch:
            per_feature = x.size // x.shape[-1]  # the built shape has no zero
            if per_feature < 2:
                raise ValueError(
                    f"{self._who} expected more than 1 value per feature in training "
                    f"mode (its statistics run over every axis but the last), received "
                    f"input of shape {x.shape}, which it would normalise to zeros; "
                    f"in fit, choose a batch_size that does not leave a last batch of "
                    f"one sample (n_samples % batch_size == 1)")
            if _use_kernels(x, self.gamma.value):
                x2 = x.reshape(-1, x.shape[-1])
                # trusted: x is checked against the built shape, gamma and beta
                # keep theirs (Param), their dtype is x's (_use_kernels)
                y, x_hat, inv_std, mean, var = kernels.impl("batchnorm_forward", x.size,
                                                            trusted=True)(
                    x2, self.gamma.value, self.beta.value, self.eps)
                self._update_moving(mean, var)
                self._cache = (x_hat.reshape(x.shape), inv_std, "kernel")
                return y.reshape(x.shape)
            x_hat, inv_std, mean, var = _standardize(x, axes, self.eps)
            self._update_moving(mean.reshape(-1), var.reshape(-1))
        else:
            inv_std = 1.0 / np.sqrt(self.moving_variance + self.eps)
            x_hat = (x - self.moving_mean) * inv_std
        self._cache = (x_hat, inv_std, use_batch)
        return self._scale_shift(x_hat)

    def _update_moving(self, mean, var) -> None:
        m = self.momentum
        # in place, so references to the state arrays stay valid
        self.moving_mean *= m
        self.moving_mean += (1.0 - m) * mean
        self.moving_variance *= m
        self.moving_variance += (1.0 - m) * var

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._cache)
        x_hat, inv_std, used_batch = self._cache
        dy = self._check_dy(dy, x_hat.shape)
        if used_batch == "kernel" and dy.dtype == x_hat.dtype:
            # trusted: dy is checked to x_hat's shape and dtype; x_hat and
            # inv_std are the forward's, gamma and the gradients the Params'
            dx = kernels.impl("batchnorm_backward", dy.size, trusted=True)(
                dy.reshape(-1, dy.shape[-1]), x_hat.reshape(-1, dy.shape[-1]), inv_std,
                self.gamma.value, self.gamma.grad, self.beta.grad)
            return dx.reshape(dy.shape)
        if used_batch == "kernel":  # dy of another dtype: the reference path
            inv_std = inv_std.reshape((1,) * (dy.ndim - 1) + (-1,))
        g = self._accumulate_param_grads(dy, x_hat)
        if used_batch:
            return _standardize_backward(g, x_hat, inv_std, tuple(range(dy.ndim - 1)))
        return g * inv_std

    def get_state(self) -> dict[str, np.ndarray]:
        if not self.built:
            return {}
        return {"moving_mean": self.moving_mean.copy(),
                "moving_variance": self.moving_variance.copy()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Set (some of) ``moving_mean`` and ``moving_variance``; the layer must be built."""
        unknown = sorted(set(state) - {"moving_mean", "moving_variance"})
        if unknown:
            raise ValueError(f"{self._who} has state 'moving_mean' and 'moving_variance', "
                             f"received unknown keys {unknown}")
        if state and not self.built:
            raise ValueError(f"{self._who} must be built before its state is set")
        checked = {key: as_values_like(value, getattr(self, key), self._who, key,
                                       nonnegative=key in self.nonnegative_state)
                   for key, value in state.items()}  # all checked before any is set
        self._restore_state(checked)

    def _restore_state(self, state: dict[str, np.ndarray]) -> None:
        for key, value in state.items():  # (keys and shapes are the layer's own)
            setattr(self, key, np.array(value, dtype=self.dtype))  # a copy: never the caller's

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum}


class LayerNorm(_FeatureNorm):
    r"""Layer normalization over the last axis of each sample.

    Statistics are per sample (over its features), so training and inference
    are the same and the batch size does not matter:

    .. math::
        y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad
        \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2 + \epsilon}}
        \Bigl(g - \overline{g} - \hat x\, \overline{g \hat x}\Bigr)

    with means over the last axis and :math:`g = \gamma\,\partial L/\partial y`
    (matches ``torch.nn.LayerNorm(features)``).

    Parameters
    ----------
    (keyword-only: ``torch.nn.LayerNorm(n)`` is ``LayerNorm()``, the feature
    count coming from the input; a positional argument is refused)
    eps : float, default 1e-5
        Added to the variance, positive and finite.

    Attributes
    ----------
    gamma, beta : Param of shape (features,)
    """

    def __init__(self, *args, eps: float = 1e-5, **kwargs):
        _refuse_positional("LayerNorm", args, "eps", "torch.nn.LayerNorm")
        super().__init__(eps, **kwargs)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = self._prepare_input(x)
        if _use_kernels(x, self.gamma.value) and x.shape[0]:
            x2 = x.reshape(-1, x.shape[-1])
            # trusted: as BatchNorm's
            y, x_hat, inv_std = kernels.impl("layernorm_forward", x.size, trusted=True)(
                x2, self.gamma.value, self.beta.value, self.eps)
            self._cache = (x_hat.reshape(x.shape), inv_std.reshape(x.shape[:-1] + (1,)))
            return y.reshape(x.shape)
        # centred in float64, as the layernorm_forward kernel and its reference: a float32
        # mean of values near 1e4 is an ulp (1e-3) off, which centring in float32 would
        # carry into every x_hat of the row (relative error 7e-3 at a spread of 1)
        x_hat, inv_std, _, _ = standardise_ref(x, -1, self.eps, np.float64)
        self._cache = (x_hat, inv_std)
        return self._scale_shift(x_hat)

    def backward(self, dy) -> np.ndarray:
        self._require_cache(self._cache)
        x_hat, inv_std = self._cache
        dy = self._check_dy(dy, x_hat.shape)
        if _use_kernels(dy, self.gamma.value) and dy.dtype == x_hat.dtype and dy.size:
            n = dy.shape[-1]
            # trusted: as BatchNorm's
            dx = kernels.impl("layernorm_backward", dy.size, trusted=True)(
                dy.reshape(-1, n), x_hat.reshape(-1, n), inv_std.reshape(-1),
                self.gamma.value, self.gamma.grad, self.beta.grad)
            return dx.reshape(dy.shape)
        g = self._accumulate_param_grads(dy, x_hat)
        return _standardize_backward(g, x_hat, inv_std, -1)
