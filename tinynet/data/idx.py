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

Reading takes the header first and then only the bytes it promises (and
one more, to see trailing bytes), decompressing a chunk at a time: memory
follows what the file holds, never what a header claims, and a small
gzipped file that expands to gigabytes past its array is refused after its
first trailing byte.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, check_target
from ..checks import check_bool

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
    """Decompress ``raw`` if it starts with gzip's magic bytes; else return it as is.

    Decompresses all of it, however large: to read an IDX file, use
    :func:`parse_idx`, which stops where the header says the data ends.
    """
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    with _gzip_errors(source):
        return gzip.decompress(raw)


#: The most bytes deflate expands one compressed byte into (zlib's
#: "Maximum compression factor", 1032:1): a gzip file of n bytes holds at
#: most about 1032 n bytes, so a header promising more is refused unread.
_MAX_GZIP_RATIO = 1032
#: Decompress and read this much at a time: memory follows the data that is
#: there, not what a header promises.
_CHUNK = 1 << 20


@contextlib.contextmanager
def _gzip_errors(source: str):
    """Turn gzip's and zlib's failures into an :class:`IDXError` naming ``source``."""
    try:
        yield
    except EOFError:
        raise IDXError(f"{source}: the gzip stream is truncated (incomplete download?)") \
            from None
    except (OSError, zlib.error) as exc:  # BadGzipFile, CRC errors, corrupt deflate data
        raise IDXError(f"{source}: corrupt gzip data ({exc})") from None


def _read_upto(stream, n: int) -> bytearray:
    """At most ``n`` bytes of ``stream``, read a chunk at a time (no buffer of
    ``n`` bytes is made before the bytes are there)."""
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(min(n - len(data), _CHUNK))
        if not chunk:
            break
        data += chunk
    return data


def _parse_stream(stream, size: int | None, gzipped: bool, source: str) -> np.ndarray:
    """Read one IDX file from ``stream`` (decompressed already if ``gzipped``),
    ``size`` bytes long as stored (None: unknown, a pipe); see :func:`parse_idx`.

    Reads the header first, then at most the bytes it promises and one more
    (to see trailing bytes): a header promising more than the file can hold
    (``size``, or ``1032 * size`` gzipped) is refused before any data is
    read, and trailing data is never decompressed past its first byte.
    """
    head = _read_upto(stream, 4)
    if len(head) < 4:
        raise IDXError(f"{source}: too short for an IDX header ({len(head)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or type_code not in IDX_DTYPES:
        raise IDXError(f"{source}: bad magic number 0x{bytes(head).hex()} (an IDX file starts "
                       f"with 00 00, a type code in "
                       f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)} and the number of "
                       f"dimensions): not an IDX file")
    header_size = 4 + 4 * ndim
    dims = _read_upto(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise IDXError(f"{source}: truncated header: {ndim} dimensions need "
                       f"{header_size} bytes, the file has {4 + len(dims)}")
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = IDX_DTYPES[type_code]
    # Python integers: np.prod in int64 wrapped past 2**63 (a 16-byte header
    # promising 2**31 x 2**31 x 4 values passed the check as 0 bytes)
    expected = header_size + math.prod(shape) * dtype.itemsize
    promise = (f"the header promises {shape} values of {dtype.newbyteorder('=').name}, "
               f"i.e. {expected} bytes")
    if gzipped and size is not None and expected > _MAX_GZIP_RATIO * size:
        raise IDXError(f"{source}: wrong length: {promise}, more than the {size} bytes of "
                       f"gzip data can hold (at most {_MAX_GZIP_RATIO} times as many; "
                       f"truncated)")
    body = _read_upto(stream, expected - header_size + 1)
    length = header_size + len(body)
    size_known = not gzipped and size is not None
    if size_known:  # say it
        length = size
    if length != expected:
        problem = "truncated" if length < expected else "has trailing bytes"
        has = (f"the file has {length}" if length < expected or size_known
               else "the file has more")
        raise IDXError(f"{source}: wrong length: {promise}, {has} ({problem})")
    values = np.frombuffer(body, dtype=dtype).reshape(shape)
    # a native array that owns its memory or views the bytearray read: writable
    return values.astype(dtype.newbyteorder("="), copy=False)


def _parse_file(f, size: int | None, source: str) -> np.ndarray:
    """Parse the IDX file (gzipped or not) of ``size`` bytes (None: unknown)
    open as ``f``, a buffered binary reader (``peek`` looks at the magic bytes
    without consuming them, so a pipe can be read too)."""
    gzipped = f.peek(2)[:2] == _GZIP_MAGIC
    if not gzipped:
        return _parse_stream(f, size, False, source)
    with _gzip_errors(source), gzip.GzipFile(fileobj=f, mode="rb") as stream:
        return _parse_stream(stream, size, True, source)


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file (gzipped or not) into a native-endian array.

    The header is read first, and only as many bytes as it promises (and one
    more) after it: neither a header promising far more than the data holds
    nor gzipped data that expands far past the array is decompressed whole.

    Raises
    ------
    IDXError
        Bad magic number, unknown type code, corrupt or truncated gzip data,
        or a length that does not match the header (truncated file or
        trailing bytes).
    """
    data = bytes(data)  # no copy of bytes: BytesIO then shares them too
    return _parse_file(io.BufferedReader(io.BytesIO(data)), len(data), source)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into an array of its stored dtype and shape.

    Reads the header, then only the bytes it promises (see :func:`parse_idx`).

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
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None  # a pipe has none
        return _parse_file(f, size, str(path))


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

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError
        Before encoding, when ``path`` cannot be written (its directory
        missing...), named as ``write_idx``'s (:func:`tinynet.atomic.check_target`).
    """
    check_target(path, "write_idx")  # before the work, as io.save
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    compress = check_bool(compress, "write_idx", "compress")
    if compress:
        data = gzip.compress(data, mtime=0)
    atomic_write(path, lambda out: out.write(data))
    return path
