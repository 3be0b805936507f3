"""Data for tinynet: embedded digits, IDX datasets, splits, scalers, batches.

>>> from tinynet.data import load_digits
>>> (x_train, y_train), (x_test, y_test) = load_digits()
"""

from .datasets import DIGITS_CLASSES, FASHION_MNIST_CLASSES, load_digits

__all__ = [
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "load_digits",
]
