"""tinynet: a from-scratch neural-network engine in NumPy and Numba.

Every layer writes out its forward and backward pass; Numba kernels form the
performance core; transfer, multi-task and meta-learning are built on the
same pieces. Submodules are imported on first use, which keeps
``import tinynet`` fast.

>>> import tinynet as tn
>>> model = tn.Sequential([tn.layers.Dense(64, activation="relu", input_dim=64),
...                        tn.layers.Dense(10)])
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from . import spinwait  # noqa: E402,F401  (first: it acts before NumPy loads OpenBLAS)
from .param import Param  # noqa: E402  (tiny, and needed everywhere)

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "init": ("tinynet.init", None),
    "layers": ("tinynet.layers", None),
    "losses": ("tinynet.losses", None),
    "optim": ("tinynet.optim", None),
    "metrics": ("tinynet.metrics", None),
    "callbacks": ("tinynet.callbacks", None),
    "training": ("tinynet.training", None),
    "data": ("tinynet.data", None),
    "io": ("tinynet.io", None),
    "kernels": ("tinynet.kernels", None),
    "transfer": ("tinynet.transfer", None),
    "mtl": ("tinynet.mtl", None),
    "meta": ("tinynet.meta", None),
    "Sequential": ("tinynet.model", "Sequential"),
    "History": ("tinynet.training", "History"),
    "load": ("tinynet.io", "load"),
    "ModelFileError": ("tinynet.io", "ModelFileError"),
    "gradcheck": ("tinynet.gradcheck", "gradcheck"),
}

__all__ = ["Param", "__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tinynet' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
