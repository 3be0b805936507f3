"""Layers: each with its forward and backward pass written out."""

from .base import Layer
from .activations import Identity, ReLU
from .dense import Dense

__all__ = ["Layer", "Dense", "Identity", "ReLU"]
