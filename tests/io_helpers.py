"""Helpers for the model-file tests (tests/test_io.py and tests/mtl/test_mtl_io.py).

A module of its own: importing one test module from another defines its
layer classes twice, and layers register by class name."""

import json
import struct
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
    for cut in (0, 10, len(data) // 2, len(data) - 23, len(data) - 10, len(data) - 1):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="not a readable tinynet model file"):
            tn.load(path)


def refused_within(path, match, max_mb=16.0):
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
    assert peak < max_mb * 2**20, f"load allocated {peak / 2**20:.1f} MB before refusing"


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


# ------------------------------------------------ zip indexes, written byte by byte
def central_entry(name: bytes, extra=b"", comment=b"", offset=0) -> bytes:
    """One zip central-directory entry: a stored, empty member ``name`` whose
    local header would be at ``offset``."""
    return struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0,
                       len(name), len(extra), len(comment), 0, 0, 0, offset) \
        + name + extra + comment


def end_records(entries, size, offset, zip64=False, comment=b"", locator_offset=None):
    """The records ending a zip file whose central directory of ``entries``
    entries is ``size`` bytes from ``offset``: the end record (with
    ``comment``), after a zip64 end record and its locator when ``zip64``
    (the locator pointing at ``locator_offset``, by default the record)."""
    records = b""
    if zip64:
        locator_offset = offset + size if locator_offset is None else locator_offset
        records = (struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries,
                               entries, size, offset)
                   + struct.pack("<4sLQL", b"PK\x06\x07", 0, locator_offset, 1))
        entries, size, offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    return records + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, size,
                                 offset, len(comment)) + comment


def zip_parts(path):
    """``(members, directory, entries)`` of a zip file ending in a plain end
    record without a comment (as ``np.savez`` writes): the bytes before the
    central directory, the directory's, and its number of entries."""
    data = open(path, "rb").read()
    _, _, _, _, entries, size, offset, _ = struct.unpack("<4s4H2LH", data[-22:])
    assert offset + size == len(data) - 22
    return data[:offset], data[offset:offset + size], entries


def write_zip(path, members, directory, entries, **records):
    """Write ``members``, the central ``directory`` and :func:`end_records`
    (``entries``, ``**records``) to ``path``."""
    with open(path, "wb") as f:
        f.write(members + directory + end_records(entries, len(directory), len(members),
                                                  **records))
    return path
