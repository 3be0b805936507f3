"""``tinynet demo meta``: MAML learns to fit a new sine from 10 points.

Meta-trains second-order MAML on sinusoid tasks for a few seconds, trains
the "one network on all tasks" baseline for the same number of iterations,
and shows how well each fits new sines after 0, 1 and 10 SGD steps on 10
support points (MSE on 100 query points). With matplotlib installed, it
also plots one sine before and after adaptation to a PNG file.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

__all__ = ["run"]

ITERATIONS = 2000


def _model(seed):
    from ..layers import Dense
    from ..model import Sequential
    return Sequential([Dense(40, activation="relu", input_dim=1, seed=seed),
                       Dense(40, activation="relu", seed=seed + 1), Dense(1, seed=seed + 2)])


def _plot(learners, task, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from .tasks import SinusoidTasks
    grid = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, SinusoidTasks.function(grid, task.info["amplitude"][0],
                                         task.info["phase"][0]), "k", lw=2, label="true sine")
    ax.plot(task.support_x[0], task.support_y[0], "k^", label="10 support points")
    for name, learner in learners.items():
        for steps, style in ((0, ":"), (10, "-")):
            model = learner.adapt(task.support_x[0], task.support_y[0], steps=steps)
            ax.plot(grid, model.predict(grid), style, label=f"{name}, {steps} steps")
    ax.legend(fontsize=7)
    from ..atomic import atomic_write
    try:  # whole or not at all, like every file tinynet writes
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100,
                                                 bbox_inches="tight"))
    except OSError:  # another user's file in a shared temp directory: no plot
        return None
    finally:
        plt.close(fig)
    return path


def run(seed: int = 0, verbose: int = 1, iterations: int = ITERATIONS) -> dict:
    """Meta-train briefly and report MSE before/after adaptation (demo contract)."""
    from .baseline import Pretrained
    from .maml import MAML
    from .tasks import SinusoidTasks

    start = time.perf_counter()
    learners = {"MAML": MAML(_model(seed), inner_lr=0.01),
                "pretrained": Pretrained(_model(seed), inner_lr=0.01)}
    for name, learner in learners.items():
        learner.meta_fit(SinusoidTasks(10, seed=seed), iterations, meta_batch_size=25)
        if verbose:
            print(f"meta-trained {name} for {iterations} iterations "
                  f"({time.perf_counter() - start:.1f} s so far)")
    tests = SinusoidTasks(10, k_query=100, seed=seed + 1).sample(200)
    one = tests[0]
    rows = []
    results = {name: learner.evaluate(tests, steps=(0, 1, 10)) for name, learner in
               learners.items()}
    single = {name: learner.evaluate(one, steps=(0, 1, 10)) for name, learner in
              learners.items()}
    for steps in (0, 1, 10):
        rows.append([steps] + [round(single[n]["steps"][steps]["loss"], 3) for n in learners]
                    + [f"{results[n]['steps'][steps]['loss']:.3f} ± "
                       f"{results[n]['steps'][steps]['loss_ci95']:.3f}" for n in learners])
    notes = [f"1-40-40-1 ReLU net, {iterations} meta-iterations of 25 tasks, inner SGD lr 0.01, "
             f"K = 10 support points; MSE on 100 query points",
             f"one sine: amplitude {one.info['amplitude'][0]:.2f}, "
             f"phase {one.info['phase'][0]:.2f}; mean ± 95% CI over 200 new sines",
             f"total time {time.perf_counter() - start:.1f} s"]
    path = _plot(learners, one, os.path.join(tempfile.gettempdir(), "tinynet_meta_demo.png"))
    if path:
        notes.append(f"plot of the sine before and after adaptation: {path}")
    return {"title": "Meta-learning: MAML vs pretraining, adapting to a new sine from 10 points",
            "columns": ["SGD steps", "MAML (one sine)", "pretrained (one sine)",
                        "MAML (200 sines)", "pretrained (200 sines)"],
            "rows": rows, "notes": notes}


if __name__ == "__main__":  # pragma: no cover
    out = run()
    print(out["title"])
    print(out["columns"])
    for row in out["rows"]:
        print(row)
    print("\n".join(out["notes"]))
