"""Helpers of the IDX tests: a gzip stream of many zeros, peak memory of a refusal."""

import tracemalloc
import zlib

import pytest

from tinynet.data import IDXError


def gzip_of_zeros(header: bytes, n_zeros: int) -> bytes:
    """``header`` and ``n_zeros`` zero bytes, gzipped a chunk at a time (about
    1,000 times smaller than the data)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    chunk = bytes(1 << 20)
    parts = [packer.compress(header)]
    parts += [packer.compress(chunk) for _ in range(n_zeros >> 20)]
    return b"".join(parts + [packer.flush()])


def peak_memory(fn) -> tuple:
    """(bytes allocated at the peak of ``fn()``, its IDXError's message)."""
    tracemalloc.start()
    try:
        with pytest.raises(IDXError) as info:
            fn()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()
