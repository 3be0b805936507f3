"""tinynet's performance core: Numba kernels, each beside a NumPy reference.

Installed as ``tinynet.kernels`` (see setup.cfg). Knows nothing of layers.
"""
