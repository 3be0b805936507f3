r"""2-D convolution on channels-last images, by im2col (and the geometry the
pooling layers share with it: padding, windows, layout checks).

Images are ``(batch, height, width, channels)`` (Keras' ``channels_last``;
PyTorch's ``(batch, channels, height, width)`` converts with
``x.transpose(0, 2, 3, 1)``). A built layer names the layout when an input's
last axis is not its channel count; an unbuilt one cannot tell, and builds
for whatever the last axis holds.
A convolution becomes one matrix product: every ``kh x kw x C`` patch of the
(padded) input is a row of the *column matrix* ``cols``, the kernel is a
``(kh*kw*C, filters)`` matrix, and their product is the output. The backward
pass is two products and a *col2im* that adds each patch's gradient back
where the patch came from.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..kernels.im2col import im2col, im2col_order, span
from ..checks import as_float_array, check_positive_int
from ._checks import Setting, check_choice
from .base import shape_str
from .weights import _KernelLayer

__all__ = ["Conv2D"]

PADDINGS = ("valid", "same")


def _pair(value, who: str, what: str, check=check_positive_int) -> tuple:
    """An int or a pair of ints, as a pair, each passed by ``check`` (positive
    by default; :func:`~tinynet.checks.check_non_negative_int` for a cropping)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{who} expected {what} as an int or a pair, received {value!r}")
        return tuple(check(v, who, what) for v in value)
    v = check(value, who, what)
    return (v, v)


def _prepare_image(layer, x) -> np.ndarray:
    """``layer._prepare_input(x)`` for a batch of images, with errors that
    name the layout: ``x`` not 4-D (one image without its batch axis, built
    or not, which the base read as a batch of ``H`` images of per-sample
    shape ``(W, C)``), or a last axis that is not the built layer's channel
    count (a PyTorch-style NCHW batch; before the layer is built, an NCHW
    batch cannot be told from an NHWC one)."""
    x = as_float_array(x, layer._who)
    built = layer.input_shape if layer.built else None
    if x.ndim != 4:
        expected = shape_str(built) if built else "(batch, height, width, channels)"
        raise ValueError(f"{layer._who} expected input of shape {expected}, received "
                         f"{x.shape}{_missing_axis_hint(x.shape, built)}")
    if layer.built and x.shape[-1] != layer.input_shape[-1]:
        raise ValueError(f"{layer._who} expected (..., H, W, C={layer.input_shape[-1]}) "
                         f"channels-last input, received shape {x.shape}; tinynet "
                         f"uses NHWC (PyTorch's NCHW: x.transpose(0, 2, 3, 1))")
    return layer._prepare_input(x)


def _missing_axis_hint(shape: tuple, built) -> str:
    """What a 3-D input of ``shape`` lacks: the batch axis of one image, or the
    channel axis of one-channel images; either, before the layer is built
    (``built``: its per-sample shape, else None)."""
    one_image = "one image needs a batch axis: x[None]"
    one_channel = "one-channel images need a channel axis: x[..., None]"
    if len(shape) != 3:
        return ""
    if built is None:
        return f" ({one_image}; {one_channel})"
    if tuple(shape) == tuple(built):
        return f" ({one_image})"
    if built[2] == 1 and tuple(shape[1:]) == tuple(built[:2]):
        return f" ({one_channel})"
    return ""


def _same_padding(size: int, k: int, s: int) -> tuple:
    """(before, after) padding so that the output has ceil(size / s) positions
    (TensorFlow's ``"same"``: the odd pixel goes after)."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _check_image_shape(who: str, input_shape) -> tuple:
    """``(height, width, channels)``: a per-sample image shape, else a clear error."""
    if len(input_shape) != 3:
        raise ValueError(f"{who} expected input of shape (batch, height, width, "
                         f"channels), received per-sample shape {tuple(input_shape)}")
    return tuple(input_shape)


def _window_geometry(who: str, what: str, size: tuple, kernel: tuple, strides: tuple,
                     padding: str, dilation=(1, 1)) -> tuple:
    """``(pads, out)`` of a windowed layer on a ``size = (H, W)`` image:
    ``pads = ((top, bottom), (left, right))`` and ``out = (Ho, Wo)``,
    ``ceil(H / s)`` for "same" and ``(H - span) // s + 1`` for "valid", with
    ``span = d (k - 1) + 1``. A window larger than the (padded) image is
    refused, naming ``what`` ("kernel", "pool")."""
    spans = span(kernel, dilation)
    if padding == "same":
        pads = tuple(_same_padding(n, e, st) for n, e, st in zip(size, spans, strides))
    else:
        pads = ((0, 0), (0, 0))
    padded = tuple(n + sum(p) for n, p in zip(size, pads))
    if padded[0] < spans[0] or padded[1] < spans[1]:
        dilated = (f" with dilation_rate {dilation[0]}x{dilation[1]} (spanning "
                   f"{spans[0]}x{spans[1]})" if tuple(dilation) != (1, 1) else "")
        raise ValueError(f"{who}: a {kernel[0]}x{kernel[1]} {what}{dilated} does not fit an "
                         f"input of {size[0]}x{size[1]} with padding {padding!r} (expected "
                         f"an input of at least {spans[0]}x{spans[1]}, or padding='same')")
    return pads, tuple((p - e) // st + 1 for p, e, st in zip(padded, spans, strides))


class _KeptGeometry:
    """``_geometry(height, width)``: ``(pads, (Ho, Wo))`` of a windowed layer
    (:class:`Conv2D`, the pooling layers) on an image of that size, from its
    ``_compute_geometry`` (:func:`_window_geometry`'s checks), computed once
    per input size and kept in ``_geometries``: the forward and the backward
    pass of every step ask for it, and it depends only on the size and on
    the window settings (each a :class:`~tinynet.layers._checks.Setting`,
    fixed once the layer is built). A setting changed before the build
    (after a model's summary asked for the output shape) empties
    ``_geometries`` (:meth:`_setting_changed`, which the constructor's first
    setting calls, creates it). (A size whose window does not fit raises
    each time: nothing is kept for it.)"""

    def _setting_changed(self, name: str) -> None:
        self._geometries = {}
        super()._setting_changed(name)

    def _geometry(self, height, width):
        kept = self._geometries.get((height, width))
        if kept is None:
            kept = self._geometries[(height, width)] = self._compute_geometry(height, width)
        return kept


def _pad_image(x, pads, value=0.0):
    """``x`` (N, H, W, C) padded by ``pads`` with ``value``; ``x`` itself when no padding."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _unpad(dxp, pads, x_shape):
    """The part of a padded gradient ``dxp`` that belongs to the input of ``x_shape``."""
    (pt, _), (pl, _) = pads
    return dxp[:, pt:pt + x_shape[1], pl:pl + x_shape[2], :]


class Conv2D(_KeptGeometry, _KernelLayer):
    r"""2-D convolution (cross-correlation, as in every framework) with an
    optional fused activation.

    .. math::
        z_{n,i,j,f} = b_f + \sum_{a<k_h,\ c<k_w,\ d<C}
            x^{p}_{n,\ i s_h + a r_h,\ j s_w + c r_w,\ d}\, W_{a,c,d,f}, \qquad y = \phi(z)

    with :math:`x^p` the input padded by zeros (``padding="same"``) or not
    (``"valid"``), kernel :math:`W` of shape ``(kh, kw, C, filters)`` and
    :math:`b` of shape ``(filters,)``; :math:`(r_h, r_w)` is the dilation
    (``dilation_rate``, PyTorch's ``dilation``; 1 is a plain convolution),
    whose kernel taps lie :math:`r` pixels apart and span
    :math:`r (k - 1) + 1`. In matrix form, with
    :math:`X_c` = ``cols`` of shape ``(N*Ho*Wo, kh*kw*C)`` (one patch a row)
    and :math:`g = \delta \odot \phi'(z)` reshaped to ``(N*Ho*Wo, filters)``:

    .. math::
        z = X_c W + b, \quad
        \frac{\partial L}{\partial W} \mathrel{+}= X_c^\top g, \quad
        \frac{\partial L}{\partial b} \mathrel{+}= \textstyle\sum_{\text{rows}} g, \quad
        \frac{\partial L}{\partial X_c} = g W^\top

    and :math:`\partial L/\partial x` adds every row of
    :math:`\partial L/\partial X_c` back onto the patch it came from (col2im;
    overlapping patches sum, a dilated patch's taps go back :math:`r` pixels
    apart), then drops the padding:

    .. math::
        \frac{\partial L}{\partial x^p_{n,\ i s_h + a r_h,\ j s_w + c r_w,\ d}}
            \mathrel{+}= \sum_f g_{n,i,j,f}\, W_{a,c,d,f}

    Given ``cols``, this is a Dense layer with ``kh*kw*C`` inputs, so when the
    activation has a fused kernel the product, bias and activation run as
    :func:`tinynet.kernels.dense.dense_forward` and the backward as
    :func:`~tinynet.kernels.dense.dense_backward` (:math:`g` and the bias
    gradient in one pass); other activations run the NumPy code. The column
    matrix, :math:`g` and :math:`\partial L/\partial X_c` never leave the
    layer, so they live in buffers it reuses from call to call
    (``_KernelLayer._workspace``), not in new arrays every step.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {"valid", "same"}, default "valid"
    dilation_rate : int or (int, int), default 1
        Spacing of the kernel's taps (Keras' name; PyTorch's ``dilation``).
        Strides above 1 may go with it, as in PyTorch (Keras refuses the pair).
        ``filters`` to ``dilation_rate`` fix the layer's shapes: once it is
        built, a change is refused (make a new layer).
    activation : str, activation layer or None
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or callable
        As :class:`~tinynet.layers.Dense` (fans count the receptive field; set
        later: before the build only).

    Input ``(batch, height, width, channels)``; output ``(batch, Ho, Wo, filters)``
    with ``Ho = ceil(height / sh)`` for "same" and
    ``(height - rh (kh - 1) - 1) // sh + 1`` for "valid".
    """

    filters = Setting(check_positive_int, fixed=True)
    kernel_size = Setting(_pair, fixed=True)
    strides = Setting(_pair, fixed=True)
    padding = Setting(check_choice, fixed=True, choices=PADDINGS)
    dilation_rate = Setting(_pair, fixed=True)

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid",
                 activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", dilation_rate=1, **kwargs):
        # settings first (checked as set): the base may build at once
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.dilation_rate = dilation_rate
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer)
        self._cache = None
        super().__init__(**kwargs)

    def _pads(self, height, width):
        return self._geometry(height, width)[0]

    def _compute_geometry(self, height, width):
        return _window_geometry(self._who, "kernel", (height, width), self.kernel_size,
                                self.strides, self.padding, self.dilation_rate)

    def compute_output_shape(self, input_shape):
        h, w, _ = _check_image_shape(self._who, input_shape)
        return (*self._geometry(h, w)[1], self.filters)

    def _build(self, input_shape, rng):
        self._build_kernel((*self.kernel_size, input_shape[2], self.filters), rng)

    def forward(self, x, training: bool = False) -> np.ndarray:
        x = _prepare_image(self, x)
        xp = _pad_image(x, self._pads(x.shape[1], x.shape[2]))
        n = x.shape[0]
        ho, wo, f = self.output_shape
        k = self.kernel_size[0] * self.kernel_size[1] * xp.shape[3]
        cols = im2col(xp, self.kernel_size, self.strides,
                      out=self._workspace("cols", (n * ho * wo, k), xp.dtype,
                                          im2col_order(xp.shape[3])),
                      dilation=self.dilation_rate)
        fused = self._kernel_activation(cols)
        if fused is not None:  # Dense's kernel: product, bias and activation in one call
            y, z = self._fused_forward(cols, fused)
            self._cache = (x.shape, xp.shape, cols, fused, y, z)
            return y.reshape(n, ho, wo, f)
        # trusted: cols and W are the layer's, 2-D and of matching shapes; checked
        # when W was converted alone (Param.astype) and the dtypes differ
        w = self.W.value.reshape(-1, f)
        z = kernels.impl("matmul", cols.shape[0] * f, trusted=w.dtype == cols.dtype)(cols, w)
        if self.b is not None:
            z += self.b.value
        self._cache = (x.shape, xp.shape, cols, None, None, None)
        return self._activate(z.reshape(n, ho, wo, f), training)

    #: :meth:`backward` accepts ``need_dx=False`` (see ``Sequential.backward``).
    can_skip_dx = True

    def backward(self, dy, need_dx: bool = True) -> np.ndarray:
        """dL/dx, by the two products and col2im above (None when ``need_dx``
        is False: the first convolution of a model skips the product and col2im)."""
        self._require_cache(self._cache)
        x_shape, xp_shape, cols, fused, y, z = self._cache
        f = self.filters
        if fused is not None:  # Dense's backward on the column matrix: g and db in one pass
            dy = np.asarray(self._check_dy(dy, (x_shape[0], *self.output_shape)),
                            dtype=y.dtype).reshape(-1, f)
            g = (self._workspace("g", dy.shape, dy.dtype)
                 if fused[0] != kernels.activations.IDENTITY else None)
            dcols = self._fused_backward(
                cols, dy, y, z, fused, need_dx, g_out=g,
                dx_out=self._workspace("dcols", cols.shape, cols.dtype) if need_dx else None)
        else:
            w2 = self.W.value.reshape(-1, f)
            # the checked products: g2 comes from the activation's backward,
            # which a subclass of it may write
            g2 = np.ascontiguousarray(self._activation_backward(dy)).reshape(-1, f)
            kernels.impl("matmul_tn", w2.size)(cols, g2, out=self.W.grad.reshape(-1, f),
                                              accumulate=True)
            if self.b is not None:
                self.b.grad += g2.sum(axis=0)
            dcols = kernels.impl("matmul_nt", cols.size)(g2, w2) if need_dx else None
        if not need_dx:
            return None
        # trusted: the geometry is the layer's, checked as it was built
        dxp = kernels.impl("col2im", dcols.size, trusted=True)(
            dcols, xp_shape, self.kernel_size, self.strides, self.dilation_rate)
        return _unpad(dxp, self._pads(x_shape[1], x_shape[2]), x_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=list(self.kernel_size),
                      strides=list(self.strides), padding=self.padding,
                      dilation_rate=list(self.dilation_rate))
        return config
