"""Datasets: the embedded UCI digits and the IDX image sets (Fashion-MNIST, ...).

Every loader returns ``(x_train, y_train), (x_test, y_test)`` like
``keras.datasets``: images as uint8 exactly as stored, labels as int64.
Scaling to floats is the caller's choice (``x.astype("float32") / 255``).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = [
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "load_digits",
]

#: Class names of the digits data set, by label.
DIGITS_CLASSES = tuple(str(i) for i in range(10))

#: Class names of Fashion-MNIST, by label (from the data set's README).
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_DIGITS_FILE = "digits.npz"


def load_digits():
    """The UCI optical-recognition digits shipped inside tinynet (no download).

    1,797 images of 8x8 pixels with values 0..16 (the number of ink pixels in
    a 4x4 block of the original 32x32 bitmap), 10 classes, split once into a
    fixed, stratified training set of 1,437 and test set of 360 images.
    Source: UCI ML Repository, E. Alpaydin and C. Kaynak (1998), CC BY 4.0
    (see ``DIGITS_LICENSE.txt`` beside the data).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_*`` : uint8 ndarray of shape (n, 64), values 0..16;
        ``y_*`` : int64 ndarray of shape (n,), values 0..9.
        Fresh arrays on every call: changing them changes nothing stored.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape
    ((1437, 64), (360, 64))
    >>> x = x_train.astype("float32") / 16.0   # scale to [0, 1] before training
    """
    ref = resources.files(__package__).joinpath(_DIGITS_FILE)
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as data:
        arrays = {key: np.array(data[key]) for key in ("x_train", "y_train", "x_test", "y_test")}
    return ((arrays["x_train"], arrays["y_train"].astype(np.int64)),
            (arrays["x_test"], arrays["y_test"].astype(np.int64)))
