"""The running AUC (and R²) of an epoch as ``fit`` computes it after every batch.

One epoch of 20,000 samples in batches of 32: every batch is added to a
:class:`tinynet.metrics.MetricStates` and its results read, as ``fit``'s
train step does for the batch logs, the last batch's as the epoch's final
value. Median seconds per epoch over ``--repeats`` epochs, for a binary AUC
(one output unit), a 10-class one-vs-rest AUC and R² of 10 outputs.

    python tools/metrics_cost.py [--repeats 5] [--samples 20000]

A maintainer's measuring script, not one of the benchmarks: it has no peer
(scikit-learn computes an AUC once, on the whole data).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def epoch_seconds(metric, pred, target, batch_size: int) -> float:
    from tinynet.metrics import MetricStates
    states = MetricStates([metric])
    n = len(pred)
    start = time.perf_counter()
    for first in range(0, n, batch_size):
        states.add(pred[first:first + batch_size], target[first:first + batch_size])
        states.results(running=first + batch_size < n)
    return time.perf_counter() - start


def main(argv=None) -> int:
    from tinynet import metrics
    parser = argparse.ArgumentParser(prog="python tools/metrics_cost.py")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.samples
    logits = rng.normal(size=(n, 10)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10, n)
    cases = {"auc, binary": (metrics.AUC(), logits[:, :1], labels % 2),
             "auc, 10 classes": (metrics.AUC(), probs, labels),
             "r2, 10 outputs": (metrics.R2Score(), logits, probs)}
    print(f"{n} samples, batches of {args.batch_size}: median seconds per epoch "
          f"over {args.repeats} repeats")
    for name, (metric, pred, target) in cases.items():
        times = [epoch_seconds(metric, pred, target, args.batch_size)
                 for _ in range(args.repeats)]
        print(f"  {name:<16} {np.median(times):8.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
