"""Ready-made pieces shared by the command line, the demo and the benchmarks.

* :func:`load_for_training` -- a dataset by name, as float32 features in [0, 1]
  and int64 labels, with the preprocessing recorded so that a saved model can
  be applied to raw data later;
* :func:`build_mlp` -- the multi-layer perceptron ``tinynet train`` trains;
* :func:`cnn_layers` -- the small convolutional stack the transfer and
  multi-task experiments use on square grey images;
* :func:`cosine_schedule` -- cosine decay of the learning rate per epoch.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from . import data as tn_data
from .checks import check_positive_int, check_widths

__all__ = ["DATASETS", "Prepared", "apply_preprocessing", "build_mlp", "cnn_layers",
           "check_pixels", "cosine_schedule", "dataset_key", "load_for_training",
           "pixel_scale"]

#: Dataset names the command line knows; any other name reads MNIST-style IDX
#: files from ``--data-dir``.
DATASETS = {
    "digits": "UCI optical digits, 8x8, embedded in tinynet (no download)",
    "fashion-mnist": "Zalando's Fashion-MNIST, 28x28 (Debian: dataset-fashion-mnist)",
    "mnist": "MNIST handwritten digits, 28x28 (files in --data-dir, the cache, or downloaded)",
}


class Prepared:
    """A dataset ready for an MLP: flat float32 features, int64 labels.

    Attributes
    ----------
    train, test : (x, y)
        ``x`` float32 of shape (n, n_features), ``y`` int64 of shape (n,).
    preprocessing : dict
        JSON-safe: ``{"dataset": ..., "scale": 255.0, "sample_shape": [28, 28]}``;
        features are ``raw.reshape(n, -1) / scale``.
    classes : tuple of str
    sources : tuple of Path
        The files the data was read from (none for the embedded digits).
    """

    def __init__(self, train, test, preprocessing, classes, sources=()):
        self.train, self.test = train, test
        self.preprocessing = preprocessing
        self.classes = tuple(classes)
        self.sources = tuple(sources)

    @property
    def n_features(self) -> int:
        return self.train[0].shape[1]


def apply_preprocessing(raw, preprocessing: dict) -> np.ndarray:
    """Raw samples (e.g. uint8 pixels) to the float32 features a model was trained on.

    Parameters
    ----------
    raw : ndarray of shape (n, *sample_shape) or (n, prod(sample_shape))
        Samples along the first axis, always: a 1-D array is refused, as
        scikit-learn refuses it ("Expected 2D array, got 1D array"), for it
        could be one sample or one feature of many (it was read as ``n``
        samples of one feature). One sample is ``raw[None]`` or
        ``raw.reshape(1, -1)``.
    preprocessing : dict
        As in :attr:`Prepared.preprocessing`.

    Returns
    -------
    ndarray of float32, shape (n, prod(sample_shape))
    """
    raw = np.asarray(raw)
    if raw.ndim < 2:
        raise ValueError(f"apply_preprocessing expected samples of shape (n, *sample_shape), "
                         f"received a {raw.ndim}-D array of shape {raw.shape}; reshape it: "
                         f"raw.reshape(1, -1) if it is one sample, raw.reshape(-1, 1) if it "
                         f"holds one feature of each sample")
    return raw.reshape(len(raw), -1).astype(np.float32) / np.float32(preprocessing["scale"])


def dataset_key(name: str) -> str:
    """A dataset name as :func:`load_for_training` looks it up: lower case,
    ``_`` as ``-`` (``Fashion_MNIST`` is ``fashion-mnist``)."""
    return name.lower().replace("_", "-")


def pixel_scale(x_train, name: str = "dataset") -> float:
    """What ``tinynet train`` divides an IDX dataset's integer pixels by.

    The bit depth's maximum: the smallest ``2**k - 1`` (``k >= 8``) at or
    above the training images' maximum, but never above the dtype's own
    maximum ``np.iinfo(dtype).max``. So 255 for 8-bit pixels (uint8, or
    wider integers within 0..255: 8-bit images stored as int16 or int32),
    127 for int8 (a signed byte holds 0..127: its pixels span [0, 1] as
    uint8's do; 255 left them in [0, 0.5]), 4095 for 12-bit and 65535 for
    16-bit ones, 32767 for int16 pixels past 16383. The features then span
    [0, 1] as for 8-bit images; dividing by the dtype's maximum whatever the
    pixels (2**31 - 1 for int32) left 8-bit images stored as int32 near
    1e-7, where a network trains to chance. Not the training maximum
    itself: a test image may hold a brighter pixel of the same depth
    (training maximum 3899, test pixel 4095), which ``predict`` would then
    refuse as outside the trained range. The scale is recorded in the model
    file, so ``evaluate`` and ``predict`` divide by the same number.

    Raises
    ------
    ValueError
        For pixels that are not integers, or are negative (:func:`check_pixels`).
    """
    if not np.issubdtype(x_train.dtype, np.integer):
        raise ValueError(f"dataset {name!r}: expected integer pixels, received "
                         f"dtype {x_train.dtype}")
    check_pixels(x_train, name, "training")
    largest = int(np.iinfo(x_train.dtype).max)
    if x_train.dtype == np.uint8 or not x_train.size:
        return float(min(255, largest))
    # high < 2**k for k = high.bit_length(): 2**k - 1 is the smallest such maximum
    high = int(x_train.max())
    return float(min(2 ** max(8, high.bit_length()) - 1, largest))


def check_pixels(x, name: str, part: str) -> None:
    """Refuse negative pixels (a ValueError naming the dataset and the
    ``part``, "training" or "test"): a pixel is a brightness from 0 up, and a
    negative one would become a negative feature the network never saw in
    [0, 1]. Signed types are where they come from: 8-bit images written as
    int8 wrap their pixels above 127 to negative values."""
    if not np.issubdtype(x.dtype, np.signedinteger) or not x.size:
        return
    low = int(x.min())
    if low < 0:
        hint = ("; 8-bit images stored as int8 wrap pixels above 127 to negative "
                "values: store them as uint8" if x.dtype == np.int8 else "")
        raise ValueError(f"dataset {name!r}: expected pixels >= 0, received {part} "
                         f"images of dtype {x.dtype} with values down to {low}{hint}")


def load_for_training(name: str, data_dir=None, download: bool | None = None,
                      limit: int | None = None) -> Prepared:
    """Load a dataset by name and scale its pixels to [0, 1].

    The digits are divided by 16; an IDX dataset by :func:`pixel_scale` of
    its training images (the bit depth's maximum: 255 for 8-bit pixels,
    127 for int8); negative pixels, in the training or the test images, are
    refused.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"fashion-mnist"``, ``"mnist"`` or the name of an
        MNIST-style file set in ``data_dir`` (``"kmnist"``...).
    data_dir : str or os.PathLike, optional
        Searched first (see :func:`tinynet.data.load_idx_dataset`).
    download : bool, optional
    limit : int, optional
        Keep only the first ``limit`` training and test samples (quick runs);
        a positive integer.

    Returns
    -------
    Prepared
    """
    if limit is not None:  # a negative one would slice samples off the end
        limit = check_positive_int(limit, "load_for_training", "limit")
    key = dataset_key(name)
    sources = ()
    if key == "digits":
        (x_train, y_train), (x_test, y_test) = tn_data.load_digits()
        scale, classes = 16.0, tn_data.DIGITS_CLASSES
    else:
        # the files read, from the one search that found them (a second one,
        # idx_dataset_files, searched every directory again)
        ((x_train, y_train), (x_test, y_test)), sources = tn_data.load_idx_dataset(
            key, root=data_dir, download=download, return_paths=True)
        spec = tn_data.IDX_DATASETS.get(key)
        classes = spec.classes if spec and spec.classes else \
            tuple(str(c) for c in range(int(max(y_train.max(), y_test.max())) + 1))
        scale = pixel_scale(x_train, name)
        check_pixels(x_test, name, "test")
    if limit is not None:
        x_train, y_train, x_test, y_test = (x_train[:limit], y_train[:limit],
                                            x_test[:limit], y_test[:limit])
    preprocessing = {"dataset": key, "scale": scale, "sample_shape": list(x_train.shape[1:])}
    return Prepared((apply_preprocessing(x_train, preprocessing), y_train),
                    (apply_preprocessing(x_test, preprocessing), y_test),
                    preprocessing, classes, sources)


def build_mlp(n_inputs: int, hidden, n_classes: int, activation: str = "relu",
              dropout: float = 0.0, batch_norm: bool = False, seed: int | None = None):
    """An MLP classifier producing logits.

    ``Dense(h) -> [BatchNorm] -> activation -> [Dropout]`` for each hidden
    width ``h``, then ``Dense(n_classes)``. Without BatchNorm the activation
    is fused into the Dense layer.

    Parameters
    ----------
    n_inputs : int
    hidden : sequence of int
        One width per hidden layer (``(256, 128)``; ``()`` for a linear model);
        a single int or a string is refused, not read as widths.
    n_classes : int
    activation : str, default "relu"
        A name ``Dense(activation=...)`` takes, with or without ``batch_norm``.
    dropout : float in [0, 1), default 0
    batch_norm : bool, default False
    seed : int, optional
        Seed of the initial weights.

    Returns
    -------
    tinynet.Sequential
    """
    from . import layers as tn_layers
    from .checks import lookup
    from .layers.activations import ACTIVATIONS
    from .model import Sequential

    n_inputs = check_positive_int(n_inputs, "build_mlp", "n_inputs")
    hidden = check_widths(hidden, "build_mlp", "hidden", "one width per hidden layer, () for "
                          "none", allow_empty=True)
    n_classes = check_positive_int(n_classes, "build_mlp", "n_classes")
    # the names Dense(activation=...) takes; a fresh layer per use
    make_activation = lookup(ACTIVATIONS, activation, "activation") if batch_norm else None
    stack = []
    for width in hidden:
        if batch_norm:  # the bias would be cancelled by BatchNorm's centring
            stack += [tn_layers.Dense(width, use_bias=False), tn_layers.BatchNorm(),
                      make_activation()]
        else:
            stack.append(tn_layers.Dense(width, activation=activation))
        if dropout:
            stack.append(tn_layers.Dropout(dropout))
    stack.append(tn_layers.Dense(n_classes))
    model = Sequential(stack)
    model.build((n_inputs,), rng=np.random.default_rng(seed))
    return model


def cnn_layers(n_inputs: int, filters=(32, 64), units: int = 128, seed: int = 0,
               named: bool = False, batch_norm: bool = False) -> list:
    r"""A small CNN on the ``n_inputs`` pixels of a square grey image, flat in.

    ``Reshape((s, s, 1))``, then per entry ``f`` of ``filters`` a 3x3 ReLU
    ``Conv2D(f)`` ('valid') and a 2x2 ``MaxPool2D``, then ``Flatten`` and a
    ``Dense(units)`` ReLU layer; no output layer. Shapes for 28x28 with the
    defaults: 28x28x1 -> 26x26x32 -> 13x13x32 -> 11x11x64 -> 5x5x64 -> 1600
    -> 128, with 320 + 18,496 + 204,928 = 223,744 parameters.

    With ``batch_norm=True`` each convolution and the Dense layer lose their
    bias and their ReLU moves behind a :class:`~tinynet.layers.BatchNorm`
    (Keras' defaults): ``Conv2D(f, use_bias=False) -> BatchNorm -> ReLU``, the
    usual ordering of Ioffe & Szegedy (2015). Each BatchNorm has :math:`2c`
    parameters (:math:`\gamma, \beta`) for :math:`c` channels or units, in
    place of the :math:`c` biases: 223,744 - 224 + 448 = 223,968 with the
    defaults.

    Parameters
    ----------
    n_inputs : int
        Pixels per image (a perfect square).
    filters : sequence of int
    units : int
    seed : int
        Layer ``i`` (counting the layers with weights) is initialised from
        ``seed + i``.
    named : bool, default False
        Name the layers ``conv1, pool1, conv2, pool2, ..., flatten, fc1`` (a
        Sequential can then address them by name); otherwise they get the
        automatic unique names, as a multi-task graph with several such
        stacks needs.
    batch_norm : bool, default False
        Batch normalization before each ReLU (see above); named ``bn1, ...``
        and ``relu1, ...`` with ``named``.

    Returns
    -------
    list of Layer
    """
    from .layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Reshape

    n_inputs = check_positive_int(n_inputs, "cnn_layers", "n_inputs")
    filters = check_widths(filters, "cnn_layers", "filters", "one width per conv block",
                           allow_empty=True)
    units = check_positive_int(units, "cnn_layers", "units")
    side = int(round(n_inputs ** 0.5))
    if side * side != n_inputs:
        raise ValueError(f"cnn_layers expected the pixel count of a square grey image, "
                         f"received {n_inputs} (not a perfect square)")

    def name(base):
        return base if named else None

    def block(make, i, label):
        """``make(...)`` named ``label`` with seed ``seed + i``: with its ReLU, or
        without bias and followed by BatchNorm and ReLU."""
        if not batch_norm:
            return [make(activation="relu", seed=seed + i, name=name(label))]
        return [make(use_bias=False, seed=seed + i, name=name(label)),
                BatchNorm(name=name(f"bn{i + 1}")), ReLU(name=name(f"relu{i + 1}"))]

    stack = [Reshape((side, side, 1), name=name("image"))]
    for i, f in enumerate(filters):
        stack += block(partial(Conv2D, f, 3), i, f"conv{i + 1}") + [
            MaxPool2D(2, name=name(f"pool{i + 1}"))]
    shape = (side * side,)
    try:  # the layers' own shape rules say whether the image is big enough
        for layer in stack:
            shape = layer.compute_output_shape(shape)
    except ValueError:
        raise ValueError(f"cnn_layers: a {side}x{side} image is too small for "
                         f"{len(filters)} blocks of 3x3 convolution and 2x2 pooling "
                         f"(they need at least {3 * 2 ** len(filters) - 2} pixels a side)"
                         ) from None
    return (stack + [Flatten(name=name("flatten"))]
            + block(partial(Dense, units), len(filters), "fc1"))


def cosine_schedule(lr: float, epochs: int, final_fraction: float = 0.0):
    """``schedule(epoch) -> lr``: cosine decay from ``lr`` towards ``lr * final_fraction``.

    .. math:: \\eta_e = \\eta_{min} + \\tfrac12 (\\eta - \\eta_{min})
              (1 + \\cos(\\pi \\min(e, E) / E))

    From epoch ``E = epochs`` on (a run continued past the plan) the rate
    stays at :math:`\\eta_{min}`, as Keras' ``CosineDecay`` keeps it, instead
    of climbing back up the cosine.
    """
    low = lr * final_fraction

    def schedule(epoch: int) -> float:
        span = max(epochs, 1)
        return low + 0.5 * (lr - low) * (1.0 + math.cos(math.pi * min(epoch, span) / span))

    return schedule
