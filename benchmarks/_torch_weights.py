"""tinynet's dense weights in PyTorch ``nn.Linear`` layers, and back: the PyTorch
peers of the benchmarks start from tinynet's initial weights (not PyTorch's own
initialisation, another distribution), so that the runs differ only where the
frameworks do (imported only when torch is)."""

from __future__ import annotations

import numpy as np


def load_tinynet_weights(linears, weights) -> None:
    """Copy tinynet's ``[W, b, W, b, ...]`` (``get_weights()`` of its Dense
    layers, in order) into the ``nn.Linear`` layers ``linears``: tinynet's
    ``W`` is (in, out), torch's ``weight`` (out, in)."""
    import torch

    weights = list(weights)
    if len(weights) != 2 * len(linears):
        raise ValueError(f"expected a W and a b for each of {len(linears)} linear layers, "
                         f"received {len(weights)} arrays")
    with torch.no_grad():
        for linear, w, b in zip(linears, weights[::2], weights[1::2]):
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))


def tinynet_weights(linears) -> list:
    """The inverse of :func:`load_tinynet_weights`: ``[W, b, ...]`` in tinynet's layout."""
    return [a for m in linears for a in (m.weight.detach().numpy().T.copy(),
                                         m.bias.detach().numpy().copy())]
