"""Multi-task learning: multi-input/multi-output models, shared trunks, soft sharing,
cross-stitch units, MMoE, and the loss-weighting methods that decide how tasks share.

Every backward pass is written out; see :mod:`tinynet.mtl.graph` for how
gradients from several task heads are summed into a shared trunk.
"""

from .graph import Input, SymbolicTensor
from .merge import Add, Concatenate, MultiInputLayer
from .graph import Model

__all__ = ["Input", "SymbolicTensor", "Model", "MultiInputLayer", "Concatenate", "Add"]
