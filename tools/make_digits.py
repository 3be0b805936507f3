"""Build ``tinynet/data/digits.npz`` from scikit-learn's copy of the UCI digits.

Run once by a maintainer (``python tools/make_digits.py``); the library never
imports this script or scikit-learn. The stored file holds only uint8/int64
arrays (no pickles), and the train/test split is fixed here, stratified by
class with a fixed seed, so every user sees the same 1,437 / 360 split.

Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten
Digits" (E. Alpaydin, C. Kaynak, 1998), CC BY 4.0. See
``tinynet/data/DIGITS_LICENSE.txt``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tinynet.atomic import atomic_write

N_TEST = 360
SEED = 20260101
OUT = Path(__file__).resolve().parent.parent / "tinynet" / "data" / "digits.npz"


def stratified_test_indices(y: np.ndarray, n_test: int, seed: int) -> np.ndarray:
    """Indices of a test set holding each class in proportion (largest remainders)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n_test / len(y)
    per_class = np.floor(exact).astype(int)
    short = n_test - per_class.sum()
    per_class[np.argsort(-(exact - per_class), kind="stable")[:short]] += 1
    picked = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, per_class)]
    return np.sort(np.concatenate(picked))


def main() -> None:
    from sklearn.datasets import load_digits  # maintainer-only dependency

    bunch = load_digits()
    x = bunch.data
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 16):
        raise SystemExit("unexpected digits values: expected integers in 0..16")
    x = x.astype(np.uint8)
    y = bunch.target.astype(np.int64)
    test = stratified_test_indices(y, N_TEST, SEED)
    train = np.setdiff1d(np.arange(len(y)), test)
    arrays = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    atomic_write(OUT, lambda f: np.savez_compressed(f, **arrays))  # never a half-written file
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, sha256 {digest}): "
          f"{len(train)} train / {len(test)} test")


if __name__ == "__main__":
    main()
