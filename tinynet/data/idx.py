"""The IDX file format of MNIST, Fashion-MNIST, KMNIST and EMNIST, gzipped or plain.

An IDX file is a header and the array in C order, big-endian::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions, d
    4 * d       each dimension as a big-endian uint32
    ...         prod(dims) values

(``http://yann.lecun.com/exdb/mnist/``, section "the IDX file format").
A gzipped file is recognised by its own magic bytes, not by its name.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_write

__all__ = ["IDXError", "encode_idx", "gunzip_if_needed", "parse_idx", "read_idx", "write_idx"]

#: IDX type code -> big-endian numpy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file that is not a valid IDX file (bad magic number, wrong length, corrupt gzip)."""


def gunzip_if_needed(raw: bytes, source: str = "<bytes>") -> bytes:
    """Decompress ``raw`` if it starts with gzip's magic bytes; else return it as is."""
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXError(f"{source}: the gzip stream is truncated (incomplete download?)") \
            from None
    except (OSError, zlib.error) as exc:  # BadGzipFile, CRC errors, corrupt deflate data
        raise IDXError(f"{source}: corrupt gzip data ({exc})") from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file (gzipped or not) into a native-endian array.

    Raises
    ------
    IDXError
        Bad magic number, unknown type code, or a length that does not match
        the header (truncated file or trailing bytes).
    """
    data = gunzip_if_needed(bytes(data), source)
    if len(data) < 4:
        raise IDXError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in IDX_DTYPES:
        raise IDXError(f"{source}: bad magic number 0x{data[:4].hex()} (an IDX file starts "
                       f"with 00 00, a type code in "
                       f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)} and the number of "
                       f"dimensions): not an IDX file")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(f"{source}: truncated header: {ndim} dimensions need "
                       f"{header_size} bytes, the file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = IDX_DTYPES[type_code]
    # Python integers: np.prod in int64 wrapped past 2**63 (a 16-byte header
    # promising 2**31 x 2**31 x 4 values passed the check as 0 bytes)
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise IDXError(f"{source}: wrong length: the header promises {shape} values of "
                       f"{dtype.newbyteorder('=').name}, i.e. {expected} bytes, the file "
                       f"has {len(data)} ({problem})")
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a native, writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into an array of its stored dtype and shape.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray
        E.g. uint8 of shape (60000, 28, 28) for ``train-images-idx3-ubyte``.

    Raises
    ------
    FileNotFoundError
    IDXError
        Not an IDX file, truncated or corrupt.
    """
    path = Path(path)
    return parse_idx(path.read_bytes(), str(path))


def _dtype_code(dtype: np.dtype) -> int:
    for code, idx_dtype in IDX_DTYPES.items():
        if idx_dtype.newbyteorder("=") == dtype.newbyteorder("="):
            return code
    raise TypeError(f"write_idx expected an array of dtype uint8, int8, int16, int32, "
                    f"float32 or float64, received {dtype}")


def encode_idx(array) -> bytes:
    """The bytes of ``array`` as an (uncompressed) IDX file."""
    array = np.asarray(array)
    code = _dtype_code(array.dtype)
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx cannot store an array of shape {array.shape}")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or os.PathLike
    array : ndarray of dtype uint8, int8, int16, int32, float32 or float64
    compress : bool, optional
        gzip the file; by default when ``path`` ends in ``.gz``.
    """
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        data = gzip.compress(data, mtime=0)
    atomic_write(path, lambda out: out.write(data))
    return path
