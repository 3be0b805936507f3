"""``tinynet demo``: a tour in a few seconds per part, on the embedded digits.

Parts (the demo contract): ``core`` lives here; ``transfer``, ``mtl`` and
``meta`` come from ``tinynet/<part>/demo.py`` (``run(seed=0, verbose=1) ->
dict``). Each returns ``{"title", "columns", "rows", "notes"}`` and
:func:`format_table` prints it.
"""

from __future__ import annotations

import importlib
import re
import time

import numpy as np

__all__ = ["PARTS", "format_table", "load_part", "run_core"]

#: Part name -> modules that may provide its ``run`` (first found wins).
PARTS = {
    "core": ("tinynet.demo",),
    "transfer": ("tinynet.transfer.demo", "tinynet.transfer_demo"),
    "mtl": ("tinynet.mtl.demo",),
    "meta": ("tinynet.meta.demo",),
}


class PartUnavailable(LookupError):
    """A demo part whose module is not (yet) part of this installation."""


def load_part(name: str):
    """The ``run`` function of demo part ``name``, or :class:`PartUnavailable`."""
    if name == "core":
        return run_core
    tried = []
    for module_name in PARTS[name]:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # only a missing demo module means "not available"; a missing import
            # inside an existing demo is a bug and propagates
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            tried.append(module_name)
            continue
        if not callable(getattr(module, "run", None)):
            raise PartUnavailable(f"demo part {name!r}: {module_name} has no run() function")
        return module.run
    raise PartUnavailable(f"demo part {name!r} is not available in this installation "
                          f"(no module {' or '.join(tried)})")


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


_NUMBER = r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?"
#: A number as the tables show it: ``1,437``, ``-0.25``, ``+3.1``, ``98.2%``,
#: ``0.123 ± 0.010``; or ``-`` for a missing one.
_NUMERIC_CELL = re.compile(rf"{_NUMBER}%?(?: ± {_NUMBER})?|-")


def format_table(result: dict) -> str:
    """A part's result as a plain-text table with its title and notes.

    Alignment is per column, the header's included: right-aligned when every
    cell of the column is a number (see ``_NUMERIC_CELL``), else left-aligned,
    so a column of labels such as ``all``, ``0 T-shirt/top``, ``1 Trouser``
    starts every label at the same place."""
    columns = [str(c) for c in result.get("columns", [])]
    rows = [[_cell(v) for v in row] for row in result.get("rows", [])]
    widths = [max([len(c)] + [len(r[i]) for r in rows if i < len(r)])
              for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(_NUMERIC_CELL.fullmatch(r[i]) for r in rows if i < len(r))
               for i in range(len(columns))]

    def line(cells):
        return "  ".join(cell.rjust(w) if right else cell.ljust(w)
                         for cell, w, right in zip(cells, widths, numeric)).rstrip()

    title = str(result.get("title", ""))
    out = [title, "=" * max(len(title), sum(widths) + 2 * max(len(widths) - 1, 0)),
           line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out += [f"  * {note}" for note in result.get("notes", [])]
    return "\n".join(out)


def _nearest_centroid_accuracy(x_train, y_train, x_test, y_test) -> float:
    centroids = np.stack([x_train[y_train == c].mean(axis=0) for c in range(10)])
    distances = ((x_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((distances.argmin(axis=1) == y_test).mean())


def run_core(seed: int = 0, verbose: int = 1) -> dict:
    """Part ``core``: an MLP on the embedded digits, with the progress bar.

    Trains 64-128-64-10 (ReLU, dropout 0.1, Adam, cosine decay) for 30
    epochs on 1,437 images and scores it on the 360 held-out ones, beside a
    nearest-centroid baseline.

    The table's train time is the 30 epochs alone: the kernels the fit needs
    are compiled (or loaded from the disk cache) before it, by one epoch of
    a throwaway copy of the model on 64 images, and the notes give that time
    apart.
    """
    from .callbacks import LearningRateScheduler
    from .optim import Adam
    from .recipes import build_mlp, cosine_schedule, load_for_training

    data = load_for_training("digits")
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    epochs, lr = 30, 2e-3
    validation = (x_test, y_test) if verbose > 1 else None

    def build():
        model = build_mlp(data.n_features, (128, 64), 10, dropout=0.1, seed=seed)
        model.compile(optimizer=Adam(lr=lr), loss="cross_entropy", metrics=["accuracy"])
        return model

    model = build()
    if verbose:
        model.summary()
    start = time.perf_counter()
    build().fit(x_train[:64], y_train[:64], epochs=1, batch_size=32, seed=seed,
                validation_data=validation, verbose=0)
    warm_up_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, seed=seed,
              validation_data=validation,
              callbacks=[LearningRateScheduler(cosine_schedule(lr, epochs))],
              verbose=1 if verbose else 0)
    seconds = time.perf_counter() - start
    mlp_accuracy = float((model.predict_classes(x_test) == y_test).mean())
    start = time.perf_counter()
    baseline = _nearest_centroid_accuracy(x_train, y_train, x_test, y_test)
    baseline_seconds = time.perf_counter() - start
    n_params = sum(p.value.size for p in model.parameters())
    return {
        "title": "Core: an MLP written from scratch, on the UCI digits (8x8)",
        "columns": ["model", "parameters", "train time (s)", "test accuracy"],
        "rows": [["nearest centroid (baseline)", 640, f"{baseline_seconds:.3f}", baseline],
                 ["MLP 64-128-64-10, ReLU, dropout 0.1, Adam", n_params, f"{seconds:.2f}",
                  mlp_accuracy]],
        "notes": [f"{len(y_train)} training / {len(y_test)} test images, {epochs} epochs, "
                  f"batch 32, seed {seed}",
                  f"kernels compiled (or loaded from the disk cache) before training: "
                  f"{warm_up_seconds:.1f} s, not in the train time",
                  "data: UCI ML Repository, Alpaydin & Kaynak (1998), CC BY 4.0",
                  "next: tinynet train fashion-mnist --hidden 256,128 --epochs 20 "
                  "--out model.npz"],
    }
