"""Transfer learning: reuse what a model learned on one task for another.

The pieces, each usable on its own with any :class:`tinynet.Sequential`:

* freezing -- :func:`freeze`, :func:`unfreeze` by index, name or range;
  frozen layers keep their weights to the bit, still pass gradients, and a
  frozen BatchNorm uses (and keeps) its moving statistics;
* surgery -- :func:`replace_head` for a new task, :func:`copy_weights`
  between models, by position or by layer name;
* features -- :func:`extract_features`, any layer's activations in
  inference mode;
* fine-tuning -- :func:`discriminative_param_groups` (ULMFiT learning
  rates), :class:`GradualUnfreezing` (a callback) and :func:`fine_tune`
  (train the head on a frozen base, then fine-tune everything at a low rate);
  :class:`L2SP` (a penalty toward the pretrained weights, ``fine_tune(l2sp=...)``).

>>> import tinynet as tn
>>> from tinynet import transfer
>>> transfer.replace_head(model, [tn.layers.Dense(5, name="head")])
>>> hist = transfer.fine_tune(model, x, y, head_epochs=5, epochs=5, lr=1e-4)
"""

from .features import extract_features, preserved_caches
from .finetune import (FineTuneHistory, GradualUnfreezing, discriminative_lrs,
                       discriminative_param_groups, fine_tune)
from .freezing import freeze, frozen_layers, set_trainable, trainable_layers, unfreeze
from .l2sp import L2SP, L2SPLogger
from .selection import layer_groups, layer_index, select_layers
from .surgery import copy_weights, replace_head

__all__ = [
    "freeze", "unfreeze", "set_trainable", "frozen_layers", "trainable_layers",
    "replace_head", "copy_weights", "extract_features", "preserved_caches",
    "discriminative_lrs", "discriminative_param_groups", "GradualUnfreezing", "fine_tune",
    "FineTuneHistory", "L2SP", "L2SPLogger", "layer_groups", "layer_index", "select_layers",
]
