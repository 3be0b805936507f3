"""What Dense and Conv2D share: a kernel, an optional bias and an activation."""

from __future__ import annotations

from .. import init as initializers
from . import activations
from .base import Layer

__all__ = []


class _KernelLayer(Layer):
    """A layer with a kernel ``W``, an optional bias ``b`` and an activation
    (a private base: not a layer of its own, so not registered for saving)."""

    def _set_kernel_options(self, activation, use_bias, kernel_initializer,
                            bias_initializer) -> None:
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._init_w = initializers.get(kernel_initializer)
        self._init_b = initializers.get(bias_initializer)
        self.W = None
        self.b = None

    def _build_kernel(self, shape, rng) -> None:
        """Create ``W`` of ``shape`` and, with ``use_bias``, ``b`` of its last axis."""
        self.W = self.add_param("W", self._init_w(shape, rng, dtype=self.dtype))
        self.b = (self.add_param("b", self._init_b((shape[-1],), rng, dtype=self.dtype))
                  if self.use_bias else None)

    def _kernel_activation(self, x):
        """``(code, alpha)`` when the fused dense kernels
        (:mod:`tinynet.kernels.dense`: product, bias and activation in one call)
        can run this layer on ``x``, else None (another dtype, the "numpy"
        backend, an activation without a kernel)."""
        if x.dtype != self.W.dtype:
            return None
        return activations.kernel_code(self.activation, x.dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        if not isinstance(self.kernel_initializer, str) or not isinstance(
                self.bias_initializer, str):
            raise ValueError(f"{self._who} uses a custom initializer function, which "
                             f"cannot be written to a config; pass its name instead")
        config.update(activation=activations.to_config(self.activation),
                      use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
                      bias_initializer=self.bias_initializer)
        return config
