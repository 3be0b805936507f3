r"""The update rules of the optimizers, one small function each.

Each rule updates one parameter *in place* from its gradient and its state
arrays, given plain-number hyperparameters; it reads and writes nothing
else, so a fused kernel of the same signature can take its place, on one
parameter or on a flat buffer holding many. The arithmetic follows
``torch.optim``'s single-tensor code paths operation by operation, so
results agree with PyTorch to the last few ulps; the one departure is that
*state* values below :math:`2^{26}` times the dtype's smallest normal number
are stored as zero (see :mod:`tinynet.kernels.optim` for why: on Intel CPUs
subnormal arithmetic slowed Adam's step up to sixteenfold).

The rules are the NumPy references that live beside the fused kernels in
:mod:`tinynet.kernels.optim` (the kernels are tested against them); their
docstrings carry the equations. In the formulas :math:`\theta` is the
parameter, :math:`g` its gradient, :math:`\eta` the learning rate,
:math:`\lambda` the weight decay and :math:`t` the step count (1 on the
first step).
"""

from __future__ import annotations

from ..kernels.optim import adagrad_ref as adagrad
from ..kernels.optim import adam_ref as adam
from ..kernels.optim import rmsprop_ref as rmsprop
from ..kernels.optim import sgd_ref as sgd

__all__ = ["sgd", "adam", "rmsprop", "adagrad"]
