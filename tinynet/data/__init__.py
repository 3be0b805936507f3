"""Data for tinynet: embedded digits, IDX datasets, splits, scalers, batches.

>>> from tinynet.data import load_digits, train_val_split, Standardizer
>>> (x_train, y_train), (x_test, y_test) = load_digits()
>>> (x_train, y_train), (x_val, y_val) = train_val_split(x_train, y_train, 0.1,
...                                                       stratify=True, seed=0)
>>> scaler = Standardizer().fit(x_train)          # fit on training data only
>>> x_val = scaler.transform(x_val)
"""

from .batches import Batches, as_generator, batch_indices, iterate_minibatches, n_batches
from .datasets import DIGITS_CLASSES, FASHION_MNIST_CLASSES, load_digits
from .preprocessing import MinMaxScaler, Standardizer, one_hot, train_val_split

__all__ = [
    "Batches",
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MinMaxScaler",
    "Standardizer",
    "as_generator",
    "batch_indices",
    "iterate_minibatches",
    "load_digits",
    "n_batches",
    "one_hot",
    "train_val_split",
]
