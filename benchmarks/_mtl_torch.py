"""The PyTorch peer of the MTL benchmark: hard sharing with equal weights, same MLP
(and dropout), same initial weights, same optimizer settings and learning-rate
schedule, same data in the same order, same epochs (imported only when torch is)."""

from __future__ import annotations

import time

import numpy as np


def hard_sharing(train, test, hidden, outputs: dict, epochs: int, batch_size: int, lr: float,
                 seed: int, dropout: float = 0.0, lr_schedule: str = "constant",
                 weight_decay: float = 0.0, label_smoothing: float = 0.0,
                 optimizer: str = "adam", momentum: float | None = None) -> dict:
    """Train a torch shared-trunk MLP with one linear head per task (``dropout``
    after each hidden layer, as tinynet's; ``lr_schedule="cosine"``:
    ``CosineAnnealingLR(T_max=epochs)``, stepped after each epoch, the rates of
    tinynet.mtl.experiments.run's cosine; ``weight_decay``: Adam's L2 term, as
    tinynet's Adam (``optimizer="sgd"``: ``torch.optim.SGD`` with ``momentum``,
    as tinynet's SGD); ``label_smoothing``: the cross-entropy's, as
    ``tinynet.losses.CrossEntropy(label_smoothing=)``); return accuracies, the
    rate of each epoch and the final ``weights`` in tinynet's layout.

    The twin starts from the initial weights of tinynet's
    ``tinynet.mtl.experiments.hard_sharing(n_in, hidden, outputs, seed)`` (not
    PyTorch's own initialisation, another distribution) and takes the batches
    in the order ``fit(seed=seed)`` does (:func:`tinynet.training.epoch_rng`,
    shuffle stream), so only the dropout masks and the rounding differ."""
    import torch
    from torch import nn

    from benchmarks._torch_weights import load_tinynet_weights, tinynet_weights
    from tinynet.mtl import experiments as ex
    from tinynet.training import SHUFFLE_STREAM, batch_indices, epoch_rng

    torch.manual_seed(seed)
    x, y = train
    x_test, y_test = test
    layers, width = [], x.shape[1]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        width = h
    trunk = nn.Sequential(*layers)
    heads = nn.ModuleDict({t: nn.Linear(width, n) for t, n in outputs.items()})
    linears = [m for m in trunk if isinstance(m, nn.Linear)] + [heads[t] for t in outputs]
    load_tinynet_weights(linears, ex.hard_sharing(x.shape[1], tuple(hidden), outputs,
                                                  seed).get_weights())
    params = list(trunk.parameters()) + list(heads.parameters())
    if optimizer not in ("adam", "sgd") or (momentum is not None and optimizer != "sgd"):
        raise ValueError(f"the torch twin expected optimizer 'adam' or 'sgd' (momentum with sgd "
                         f"only), received optimizer={optimizer!r}, momentum={momentum!r}")
    opt = (torch.optim.SGD(params, lr=lr, momentum=momentum or 0.0, weight_decay=weight_decay)
           if optimizer == "sgd" else torch.optim.Adam(params, lr=lr, weight_decay=weight_decay))
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
                if lr_schedule == "cosine" else None)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = {t: torch.from_numpy(y[t].astype(np.int64)) for t in outputs}
    start, cpu_start = time.perf_counter(), time.process_time()
    trunk.train()
    rates = []
    for epoch in range(epochs):
        rates.append(float(opt.param_groups[0]["lr"]))
        for batch in batch_indices(len(xt), batch_size,
                                   epoch_rng(seed, epoch, SHUFFLE_STREAM)):
            idx = torch.from_numpy(batch)
            z = trunk(xt[idx])
            loss = sum(loss_fn(heads[t](z), yt[t][idx]) for t in outputs)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if schedule is not None:
            schedule.step()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    trunk.eval()
    with torch.no_grad():
        z = trunk(torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)))
        acc = {f"{t}/accuracy": float((heads[t](z).argmax(1).numpy() == y_test[t]).mean())
               for t in outputs}
    weights = tinynet_weights(linears)
    return {"test": acc, "params": int(sum(p.numel() for p in params)), "seconds": seconds,
            "cpu_seconds": cpu_seconds, "threads": torch.get_num_threads(),
            "lr_per_epoch": rates, "weights": weights}
