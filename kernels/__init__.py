"""tinynet's performance core: Numba kernels, each beside a NumPy reference.

Installed as ``tinynet.kernels`` (see setup.cfg); knows nothing of layers.

Modules, one family each: :mod:`.gemm` (matrix products), :mod:`.activations`,
:mod:`.dense` (fused dense forward/backward), :mod:`.losses` (softmax
cross-entropy), :mod:`.dropout`, :mod:`.pooling` (max and average pooling), :mod:`.im2col`
(window view, col2im), :mod:`.norms` (BatchNorm, LayerNorm), :mod:`.optim`
(fused optimizer updates); :mod:`.config` holds the Numba options,
:mod:`.dispatch` the backend choice, :mod:`.checks` the public functions'
argument checks and :mod:`.cachelock` the lock around cache writes::

    import tinynet as tn
    tn.kernels.set_backend("numpy")      # or "numba" (default), "auto"
    tn.kernels.warm_up()                 # compile everything ahead of time
    tn.kernels.set_num_threads(1)        # serial kernels (a busy, shared machine)

``TINYNET_BACKEND=numba|numpy|auto`` sets the initial backend.
"""

if __name__ != "tinynet.kernels":
    # From the repository's root, ``import kernels`` would also work, but Numba's
    # disk cache (kept beside these files) records the module's name, and a
    # kernel cached as ``kernels.dense`` crashes later loads as tinynet.kernels.
    raise ImportError(f"this package is tinynet.kernels; import it as that, not as "
                      f"{__name__!r} (Numba's kernel cache records the module name)")

from .config import NUMBA_ENABLED, limit_threads, num_threads, set_num_threads, threading_layer
from .dispatch import (BACKENDS, auto_choices, effective_backend, get_backend, impl,
                       set_backend, use_backend)
from .warmup import warm_up

__all__ = ["NUMBA_ENABLED", "BACKENDS", "set_backend", "get_backend", "use_backend",
           "effective_backend", "impl", "auto_choices", "warm_up", "num_threads",
           "set_num_threads", "threading_layer", "limit_threads"]
