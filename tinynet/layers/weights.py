"""What Dense and Conv2D share: a kernel, an optional bias and an activation."""

from __future__ import annotations

import numpy as np

from .. import init as initializers
from .. import kernels
from ..checks import check_bool
from ..kernels.activations import needs_input
from . import activations
from ._checks import Setting, check_initializer
from .base import Layer

__all__ = []


class _KernelLayer(Layer):
    """A layer with a kernel ``W``, an optional bias ``b`` and an activation
    (a private base: not a layer of its own, so not registered for saving)."""

    activation = activations.setting()
    # check_bool, not bool(): use_bias="False" must not mean True; b exists or not
    use_bias = Setting(check_bool, fixed=True)
    # looked up at the build, which draws the weights with them
    kernel_initializer = Setting(check_initializer, fixed="weights")
    bias_initializer = Setting(check_initializer, fixed="weights")

    def _set_kernel_options(self, activation, use_bias, kernel_initializer,
                            bias_initializer) -> None:
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.W = None
        self.b = None

    def _build_kernel(self, shape, rng) -> None:
        """Create ``W`` of ``shape`` and, with ``use_bias``, ``b`` of its last
        axis; and build the activation for the layer's output shape (set by
        :meth:`~tinynet.layers.base.Layer.build` before it calls ``_build``):
        a layer built again for another input (a Conv2D for another image
        size) otherwise kept an activation built for the old output, which
        refused the next forward's on the NumPy path."""
        self.activation.build(self.output_shape, dtype=self.dtype)
        init_w = initializers.get(self.kernel_initializer)
        self.W = self.add_param("W", init_w(shape, rng, dtype=self.dtype))
        if self.use_bias:
            init_b = initializers.get(self.bias_initializer)
            self.b = self.add_param("b", init_b((shape[-1],), rng, dtype=self.dtype))
        else:
            self.b = None

    def _activate(self, z, training: bool) -> np.ndarray:
        """The activation's forward on ``z`` (the NumPy path), keeping which
        activation ran: :meth:`_activation_backward` differentiates that one,
        even if another is set in between (it takes effect at the next
        forward; the fused path keeps its kernel code likewise)."""
        self._activation_used = self.activation
        return self._activation_used.forward(z, training=training)

    def _activation_backward(self, dy) -> np.ndarray:
        """The backward of the activation the last :meth:`_activate` ran."""
        return self._activation_used.backward(dy)

    def _kernel_activation(self, x):
        """``(code, alpha)`` when the fused dense kernels
        (:mod:`tinynet.kernels.dense`: product, bias and activation in one call)
        can run this layer on ``x``, else None (another dtype, the "numpy"
        backend, an activation without a kernel)."""
        if x.dtype != self.W.dtype:
            return None
        return activations.kernel_code(self.activation, x.dtype)

    def _workspace(self, name: str, shape, dtype, order: str = "C") -> np.ndarray:
        """A buffer kept from call to call for a temporary that never leaves
        the layer (Conv2D's column matrix and its gradient): a new array only
        when the shape, dtype or memory order changes, else the same memory,
        overwritten.

        Why: NumPy asks glibc for every array, and glibc maps each one larger
        than its mmap threshold (at most 32 MB) as fresh memory, which the
        kernel then faults in and zeroes page by page. The small CNN at batch
        512 allocates ~270 MB of such temporaries a step; that cost about 1 s
        of system time an epoch on a 2-core Xeon (50,000 page faults).
        """
        ws = self.__dict__.setdefault("_workspaces", {})
        buf = ws.get(name)
        if (buf is None or buf.shape != tuple(shape) or buf.dtype != dtype
                or not buf.flags[f"{order}_CONTIGUOUS"]):
            buf = ws[name] = np.empty(shape, dtype, order=order)
        return buf

    def __getstate__(self) -> dict:
        """What a pickle or a copy takes: all but the
        :meth:`_workspace` buffers, which hold nothing between two calls that
        the layer does not keep elsewhere (the column matrix its backward
        reads is in its forward cache too, which goes along: a copy made
        between a forward and its backward backpropagates). A trained
        Conv2D(32, 3) on 256 28x28x16 images pickled to 269 MiB, its
        parameters 18 KB: the gradient buffers g and dcols (135 MiB) were
        pure scratch."""
        state = self.__dict__.copy()
        state.pop("_workspaces", None)
        return state

    def _fused_forward(self, x2, fused):
        """:func:`~tinynet.kernels.dense.dense_forward` on the rows ``x2`` of
        shape (M, fan_in), with ``W`` as a (fan_in, n_out) matrix and
        ``fused = (code, alpha)``: returns ``y`` (M, n_out) and the ``z`` its
        backward needs (None unless the activation needs its input)."""
        n_out = self.W.value.shape[-1]
        z = np.empty((x2.shape[0], n_out), x2.dtype) if needs_input(fused[0]) else None
        b = self.b.value if self.b is not None else None
        # trusted: x2 is checked against the built shape and W's dtype
        # (_kernel_activation), W and b keep their shapes (Param), z is ours
        y = kernels.impl("dense_forward", x2.shape[0] * n_out, trusted=True)(
            x2, self.W.value.reshape(-1, n_out), b, *fused, z_out=z)
        return y, z

    def _fused_backward(self, x2, dy2, y, z, fused, need_dx, g_out=None, dx_out=None):
        """:func:`~tinynet.kernels.dense.dense_backward` for
        :meth:`_fused_forward`: adds to ``W.grad`` (and ``b.grad``), returns
        dL/dx2 (None when ``need_dx`` is False); ``g_out`` / ``dx_out`` may
        receive g and dL/dx2 (see :meth:`_workspace`)."""
        n_out = self.W.value.shape[-1]
        # trusted: dy2 is checked to y's shape and dtype, y and z are the
        # forward's, the gradients the Params' (their shapes fixed)
        return kernels.impl("dense_backward", y.size, trusted=True)(
            x2, self.W.value.reshape(-1, n_out), dy2, y, z, *fused,
            self.W.grad.reshape(-1, n_out), self.b.grad if self.b is not None else None,
            need_dx, g_out=g_out, dx_out=dx_out)

    def astype(self, dtype) -> "_KernelLayer":
        """As :meth:`Layer.astype`, the activation too (it computes in the
        layer's dtype)."""
        super().astype(dtype)
        self.activation.astype(dtype)
        return self

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
