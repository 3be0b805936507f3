"""Multi-task learning: multi-input/multi-output models, shared trunks, soft sharing,
cross-stitch units, MMoE, and the loss-weighting methods that decide how tasks share.

Every backward pass is written out; see :mod:`tinynet.mtl.graph` for how
gradients from several task heads are summed into a shared trunk, and
:mod:`tinynet.mtl.weighting` for the weighting methods and their cost.
Every model saves with ``model.save(path)`` and loads with ``tinynet.load(path)``
(graph, weights, and the compiled training set-up with its state).
"""

from .graph import Input, Model, SymbolicTensor
from .merge import Add, Concatenate, MultiInputLayer
from .cross_stitch import CrossStitch
from .mmoe import MMoE
from .sharing import CrossStitchNet, HardSharing, MMoENet, SoftSharing
from . import weighting
from .metrics import delta_m

__all__ = ["Input", "SymbolicTensor", "Model", "MultiInputLayer", "Concatenate", "Add",
           "CrossStitch", "MMoE", "HardSharing", "SoftSharing", "CrossStitchNet", "MMoENet",
           "weighting", "delta_m"]
