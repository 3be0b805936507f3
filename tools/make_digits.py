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
from tinynet.data.preprocessing import train_val_split

N_TEST = 360
SEED = 20260101
OUT = Path(__file__).resolve().parent.parent / "tinynet" / "data" / "digits.npz"


def main() -> None:
    from sklearn.datasets import load_digits  # maintainer-only dependency

    bunch = load_digits()
    x = bunch.data
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 16):
        raise SystemExit("unexpected digits values: expected integers in 0..16")
    x = x.astype(np.uint8)
    y = bunch.target.astype(np.int64)
    # the library's stratified split (largest remainders per class, each part
    # in the original order): the same indices this script drew on its own
    # before, so the stored file is unchanged
    (x_train, y_train), (x_test, y_test) = train_val_split(x, y, val_size=N_TEST,
                                                           stratify=True, seed=SEED)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    atomic_write(OUT, lambda f: np.savez_compressed(f, **arrays))  # never a half-written file
    digest = hashlib.sha256(OUT.read_bytes()).hexdigest()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, sha256 {digest}): "
          f"{len(y_train)} train / {len(y_test)} test")


if __name__ == "__main__":
    main()
