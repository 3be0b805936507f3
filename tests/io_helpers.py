"""Helpers for the model-file tests (tests/test_io.py and tests/mtl/test_mtl_io.py).

A module of its own: importing one test module from another defines its
layer classes twice, and layers register by class name."""

import json

import numpy as np
import pytest

import tinynet as tn
from tinynet.io import ModelFileError


def rewrite_header(path, out, change):
    """Copy the model file ``path`` to ``out`` after ``change(header, arrays)``."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    header = json.loads(arrays["__tinynet__"].tobytes().decode())
    change(header, arrays)
    arrays["__tinynet__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(out, **arrays)
    return out


def assert_truncations_refused(good, tmp_path):
    """Every cut of the file ``good`` is one clear ModelFileError."""
    data = open(good, "rb").read()
    for cut in (0, 10, len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="not a readable tinynet model file"):
            tn.load(path)
