"""Meta-learning without autograd.

Every algorithm works on a :class:`FunctionalMLP` view of a model (Dense
layers and activations), which runs the tasks of a meta-batch as one set of
batched array operations and gives exact Hessian-vector products for the
second-order MAML meta-gradient.

- :class:`MAML` (``first_order=True`` gives FOMAML), :class:`MetaSGD`,
  :class:`ANIL`, :class:`Reptile`, :class:`ProtoNet`, and the
  :class:`Pretrained` (pretrain, then fine-tune) baseline;
- task samplers: :class:`SinusoidTasks`, :class:`EpisodeSampler`,
  :func:`split_classes`, and :class:`TaskBatch`;
- :func:`save` (also ``learner.save(path)``) and :func:`load`: a learner in
  one file, its learned rates and meta-optimizer state included.

>>> import tinynet as tn
>>> model = tn.Sequential([tn.layers.Dense(40, activation="relu", input_dim=1),
...                        tn.layers.Dense(40, activation="relu"), tn.layers.Dense(1)])
>>> maml = tn.meta.MAML(model, loss="mse", inner_lr=0.01)
>>> maml.meta_fit(tn.meta.SinusoidTasks(k_shot=10, seed=0), iterations=100)  # doctest: +SKIP
"""

from .anil import ANIL
from .base import MetaLearner, summarize
from .baseline import Pretrained
from .functional import LOSSES, FunctionalMLP, cross_entropy, mse
from .maml import MAML, maml_meta_gradient
from .metasgd import MetaSGD
from .protonet import PrototypeClassifier, ProtoNet, prototype_loss
from .reptile import Reptile
from .saving import load, save
from .tasks import EpisodeSampler, SinusoidTasks, TaskBatch, split_classes

__all__ = [
    "FunctionalMLP", "LOSSES", "mse", "cross_entropy",
    "MetaLearner", "MAML", "MetaSGD", "ANIL", "Reptile", "ProtoNet", "Pretrained",
    "PrototypeClassifier", "maml_meta_gradient", "prototype_loss", "summarize",
    "SinusoidTasks", "EpisodeSampler", "TaskBatch", "split_classes", "save", "load",
]
