"""Layers: each with its forward and backward pass written out."""

from .base import Layer
from .activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softmax, Tanh
from .conv import Conv2D
from .dense import Dense
from .normalization import BatchNorm, LayerNorm
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                      GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .regularization import Dropout
from .reshape import Cropping2D, Flatten, Reshape

__all__ = [
    "Layer", "Dense", "Identity", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid",
    "Tanh", "Softmax", "Dropout", "BatchNorm", "LayerNorm", "Flatten", "Reshape", "Conv2D",
    "MaxPool2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "Cropping2D",
    # Keras' other names of the pooling layers (the same classes)
    "MaxPooling2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D",
]
