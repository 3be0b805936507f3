"""Download a file into a cache directory: verified first, renamed into place last.

The bytes are read whole and verified in memory (up to ``max_bytes``, so a
server that announces or streams more cannot fill the memory): only when the
download is complete, its size matches the server's ``Content-Length``, its MD5 matches
the published checksum and ``check`` accepts it are they written, through
:func:`tinynet.atomic.atomic_write` (a temporary file beside the destination,
renamed into place). Any failure leaves no file, so the cache never holds a
half-written or unverified file.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.request
from pathlib import Path

from ..atomic import atomic_write

__all__ = ["ChecksumError", "download_verified", "md5_hex"]

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file whose checksum differs from the published one."""


def md5_hex(data: bytes) -> str:
    """Hex MD5 of ``data`` (an integrity check against published sums, not security)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_verified(url: str, dest, md5: str | None = None, check=None,
                      timeout: float = 60.0, verbose: bool = True,
                      max_bytes: int | None = None) -> Path:
    """Fetch ``url`` to ``dest`` only if it arrives whole and verified.

    Parameters
    ----------
    url : str
    dest : str or os.PathLike
        Final path; its directory is created if needed.
    md5 : str, optional
        Published MD5 (hex) of the file as served.
    check : callable(bytes) -> None, optional
        Further validation of the content (e.g. parse it); raises to refuse.
    timeout : float
        Seconds without data before giving up.
    verbose : bool
        One line on stderr per file.
    max_bytes : int, optional
        The largest file accepted: a ``Content-Length`` above it is refused
        before any byte is read, and a transfer is cut as soon as it passes
        it (a server that sends no length and never stops). None: no limit.

    Raises
    ------
    OSError (urllib.error.URLError, TimeoutError, ...)
        The server could not be reached, the transfer broke off, or the file
        is larger than ``max_bytes``.
    ChecksumError
        The content differs from the published checksum.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"tinynet: downloading {url}", file=sys.stderr, flush=True)

    def fetch_and_verify(out):  # raising here leaves no file: atomic_write removes its temp
        with urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            if announced is not None and not announced.strip().isdigit():
                raise OSError(f"download of {url}: the server announced a Content-Length of "
                              f"{announced!r}, not a number of bytes; nothing can be checked")
            if announced is not None and max_bytes is not None and int(announced) > max_bytes:
                raise OSError(f"download of {url}: the server announced {int(announced):,} "
                              f"bytes, more than the {max_bytes:,} this file may have; "
                              f"nothing was read")
            chunks, total = [], 0
            try:
                while chunk := response.read(_CHUNK):
                    chunks.append(chunk)
                    total += len(chunk)
                    if max_bytes is not None and total > max_bytes:
                        raise OSError(f"download of {url}: more than the {max_bytes:,} bytes "
                                      f"this file may have arrived; the transfer was cut")
            except http.client.HTTPException as exc:  # e.g. IncompleteRead: connection cut
                raise OSError(f"incomplete download of {url}: {exc!r}") from None
        data = b"".join(chunks)
        if announced is not None and len(data) != int(announced):
            raise OSError(f"incomplete download of {url}: received {len(data)} of "
                          f"{announced} bytes")
        if md5 is not None and md5_hex(data) != md5:
            raise ChecksumError(f"{url}: MD5 {md5_hex(data)} differs from the published "
                                f"{md5}; the file was not kept")
        if check is not None:
            check(data)
        out.write(data)

    atomic_write(dest, fetch_and_verify)
    return dest
