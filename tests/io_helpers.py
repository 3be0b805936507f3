"""Helpers for the model-file tests (tests/test_io.py and tests/mtl/test_mtl_io.py).

A module of its own: importing one test module from another defines its
layer classes twice, and layers register by class name."""

import json
import tracemalloc
import zipfile

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


def refused_within(path, match, max_mb=16):
    """``tn.load(path)`` raises ModelFileError matching ``match`` while
    allocating at most ``max_mb`` MB (tracemalloc sees NumPy's arrays too):
    a hostile file is refused before it costs memory."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=match):
            tn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < max_mb << 20, f"load allocated {peak / 2**20:.0f} MB before refusing"


def copy_with_member(path, out, name, write, method=zipfile.ZIP_DEFLATED):
    """Copy the model file ``path`` to ``out`` with the member ``name`` (added,
    or replacing the one of that name) written by ``write(file)`` and compressed
    with ``method``."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info))
        info = zipfile.ZipInfo(name)
        info.compress_type = method
        with dst.open(info, "w") as f:
            write(f)
    return out
