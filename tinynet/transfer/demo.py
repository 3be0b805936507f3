"""``tinynet demo transfer``: digits 0-4 teach a network that then learns
digits 5-9 from a handful of labels.

An MLP is pretrained on the embedded digits of classes 0-4; a new head is
put on it for classes 5-9, trained with 10 and 50 labelled images per
class, and compared with the same network trained from scratch on the same
images (:mod:`tinynet.transfer.experiment`).
"""

from __future__ import annotations

from .experiment import METHODS, Config, class_split, run as run_experiment

__all__ = ["run"]

_NAMES = {"scratch": "from scratch", "features": "frozen features + new head",
          "fine_tune": "fine-tune (head, then all at low lr)",
          "discriminative": "discriminative lrs + gradual unfreezing"}


def run(seed: int = 0, verbose: int = 1) -> dict:
    """Run the demo; returns the table the CLI prints (see the demo contract)."""
    import numpy as np

    from ..data import load_digits

    (x, y), (xt, yt) = load_digits()
    x, xt = x.astype(np.float32) / 16, xt.astype(np.float32) / 16
    source = (class_split(x, y, range(5)), class_split(xt, yt, range(5)))
    target = (class_split(x, y, range(5, 10)), class_split(xt, yt, range(5, 10)))
    budgets = (10, 50)
    log = print if verbose > 1 else None
    res = run_experiment(source, target, budgets=budgets, seeds=(seed,), config=Config(
        hidden=(128, 64), pretrain_epochs=30, steps=300), log=log)
    acc = {m: {b: res["accuracy"][m][b][0] for b in budgets} for m in METHODS}
    rows = [[_NAMES[m]] + [round(acc[m][b], 3) for b in budgets] for m in METHODS]
    best = max(METHODS[1:], key=lambda m: acc[m][budgets[0]])
    gain = acc[best][budgets[0]] - acc["scratch"][budgets[0]]
    return {
        "title": "Transfer: pretrain on digits 0-4, learn digits 5-9 from few labels",
        "columns": ["method"] + [f"acc @ {b} labels/class" for b in budgets],
        "rows": rows,
        "notes": [f"source (0-4) test accuracy after pretraining: "
                  f"{res['source_accuracy'][0]:.3f}",
                  f"target test set: {len(target[1][1])} images of digits 5-9; seed {seed}",
                  "same MLP (128-64), optimizer (Adam) and step budget for every method",
                  f"best transfer ({_NAMES[best]}) minus scratch at {budgets[0]} "
                  f"labels/class: {gain:+.3f}",
                  "full study over 3 seeds and Fashion-MNIST: python -m benchmarks transfer"],
    }
