"""Data for tinynet: embedded digits, IDX datasets, splits, scalers, batches, mixup.

>>> from tinynet.data import load_digits, train_val_split, Standardizer
>>> (x_train, y_train), (x_test, y_test) = load_digits()
>>> (x_train, y_train), (x_val, y_val) = train_val_split(x_train, y_train, 0.1,
...                                                       stratify=True, seed=0)
>>> scaler = Standardizer().fit(x_train)          # fit on training data only
>>> x_val = scaler.transform(x_val)
"""

from .batches import Batches, as_generator, batch_indices, iterate_minibatches, n_batches
from .datasets import (DIGITS_CLASSES, FASHION_MNIST_CLASSES, IDX_DATASETS,
                       DatasetNotFoundError, IDXDatasetSpec, cache_dir, load_digits,
                       load_fashion_mnist, load_idx_dataset, locate_idx_dataset)
from .download import ChecksumError
from .idx import IDXError, read_idx, write_idx
from .mixup import mixup
from .preprocessing import (MinMaxScaler, Standardizer, one_hot, stratify_problem,
                            train_val_split)

__all__ = [
    "Batches",
    "ChecksumError",
    "DIGITS_CLASSES",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "IDXDatasetSpec",
    "IDXError",
    "IDX_DATASETS",
    "MinMaxScaler",
    "Standardizer",
    "as_generator",
    "batch_indices",
    "cache_dir",
    "iterate_minibatches",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_dataset",
    "locate_idx_dataset",
    "mixup",
    "n_batches",
    "one_hot",
    "read_idx",
    "stratify_problem",
    "train_val_split",
    "write_idx",
]
