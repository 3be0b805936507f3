"""The index of a zip archive, read at a bounded cost before :mod:`zipfile` parses it.

``zipfile.ZipFile(f)`` reads a zip file's whole central directory into one
``ZipInfo`` per entry (about 480 bytes of memory an entry, eight times what
the entry takes in the file) before its caller can look at any of it. This
module reads the records that say how large that directory is, so that a
caller (:func:`tinynet.io.load`) can refuse a file whose index is far larger
than it needs before ``zipfile`` builds it.

The end of a zip file (PKWARE's APPNOTE.TXT, 4.3.12-4.3.16)::

    central directory    one entry per member: "PK\\1\\2", 46 bytes, then its
                         name, extra field and comment (lengths at bytes 28-33)
    zip64 end record     "PK\\6\\6", 56 bytes: 64-bit entry count, directory size
                         and offset (ZIP64 archives only: more than 65,535
                         entries or past 4 GB)
    zip64 locator        "PK\\6\\7", 20 bytes: where the zip64 end record is
    end record           "PK\\5\\6", 22 bytes: entry count, directory size and
                         offset (0xFFFF / 0xFFFFFFFF when the zip64 record holds
                         them), then a comment of up to 65,535 bytes

The end record is found as ``zipfile`` finds it (the last 22 bytes when they
are an end record without a comment, else the last ``PK\\5\\6`` in the last
65,557 bytes), and a ZIP64 archive is one whose end record is preceded by a
locator, as ``zipfile`` decides. Where ``zipfile`` would guess, this module
refuses instead (:class:`zipfile.BadZipFile`), so that the index it reads is
the one ``zipfile`` reads: a comment that does not end the file, a locator
without the zip64 end record directly before it or pointing elsewhere, a
zip64 record with extensible data, an archive spanning several disks, and a
central directory that does not end where the end records begin (data
prepended to the archive included; tinynet never writes any).
"""

from __future__ import annotations

import struct
from typing import NamedTuple
from zipfile import BadZipFile

__all__ = ["Index", "read_index", "count_entries"]

_END = struct.Struct("<4s4H2LH")             # end of central directory record
_LOCATOR = struct.Struct("<4sLQL")           # zip64 end of central directory locator
_END64 = struct.Struct("<4sQ2H2L4Q")         # zip64 end of central directory record
_ENTRY = 46                                  # fixed part of a central directory entry
_MAX_COMMENT = 0xFFFF


class Index(NamedTuple):
    """What a zip file's end records declare about its central directory."""
    entries: int   #: number of entries (members)
    size: int      #: bytes of the central directory
    offset: int    #: where it starts in the file
    zip64: bool    #: read from a zip64 end record


def _read_at(f, offset: int, n: int, what: str) -> bytes:
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        raise BadZipFile(f"its {what} ({n:,} bytes at offset {offset:,}) is cut short: "
                         f"the file ends after {len(data):,} of them")
    return data


def _single_disk(disk: int, disk_with_directory: int, entries_here: int, entries: int,
                 record: str) -> None:
    if disk or disk_with_directory or entries_here != entries:
        raise BadZipFile(f"its {record} describes an archive split over several disks "
                         f"(disk {disk}, directory on disk {disk_with_directory}, "
                         f"{entries_here:,} of {entries:,} entries here)")


def read_index(f) -> Index:
    """The :class:`Index` the end records of the zip file ``f`` (a binary file
    open for reading, seekable) declare; reads at most its last 65,557 bytes
    and the 76 before them.

    Raises :class:`zipfile.BadZipFile` when there is no end record (a
    truncated file, or not a zip file) or the records do not agree (see the
    module docstring).
    """
    size = f.seek(0, 2)
    if size < _END.size:
        raise BadZipFile(f"it is {size} bytes long, shorter than a zip end record "
                         f"({_END.size} bytes)")
    tail_start = max(size - _END.size - _MAX_COMMENT, 0)
    tail = _read_at(f, tail_start, size - tail_start, "end")
    at = len(tail) - _END.size
    if not (tail.startswith(b"PK\x05\x06", at) and tail.endswith(b"\0\0")):
        at = tail.rfind(b"PK\x05\x06")  # an end record followed by its comment
        if at < 0 or at + _END.size > len(tail):
            raise BadZipFile(f"no zip end record (signature PK\\5\\6) in its last "
                             f"{len(tail):,} bytes: the file is truncated or not a zip file")
    (_, disk, disk_with_directory, entries_here, entries, directory_size,
     directory_offset, comment) = _END.unpack_from(tail, at)
    end = tail_start + at
    if end + _END.size + comment != size:
        raise BadZipFile(f"its zip end record (at offset {end:,}) declares a comment of "
                         f"{comment:,} bytes, but {size - end - _END.size:,} bytes follow it")
    zip64 = end >= _LOCATOR.size and _read_at(
        f, end - _LOCATOR.size, 4, "zip64 end record locator") == b"PK\x06\x07"
    directory_end = end
    if not zip64:
        _single_disk(disk, disk_with_directory, entries_here, entries, "zip end record")
    else:  # the end record's fields may be 0xFFFF... placeholders: read the zip64 record's
        _, disk_with_record, record_offset, disks = _LOCATOR.unpack(
            _read_at(f, end - _LOCATOR.size, _LOCATOR.size, "zip64 end record locator"))
        if disk_with_record != 0 or disks > 1:
            raise BadZipFile(f"its zip64 locator describes an archive split over several "
                             f"disks (zip64 end record on disk {disk_with_record}, {disks} "
                             f"disks)")
        directory_end = end - _LOCATOR.size - _END64.size
        if directory_end < 0 or record_offset != directory_end:
            raise BadZipFile(f"its zip64 locator points to a zip64 end record at offset "
                             f"{record_offset:,}, expected one at {directory_end:,}, "
                             f"directly before the locator")
        (signature, record_size, _, _, disk, disk_with_directory, entries_here, entries,
         directory_size, directory_offset) = _END64.unpack(
            _read_at(f, directory_end, _END64.size, "zip64 end record"))
        if signature != b"PK\x06\x06":
            raise BadZipFile(f"its zip64 locator is not preceded by a zip64 end record "
                             f"(signature PK\\6\\6) at offset {directory_end:,}")
        if record_size != _END64.size - 12:
            raise BadZipFile(f"its zip64 end record declares {record_size:,} bytes after its "
                             f"first 12, expected {_END64.size - 12} (no extensible data)")
        _single_disk(disk, disk_with_directory, entries_here, entries, "zip64 end record")
    if directory_offset + directory_size != directory_end:
        raise BadZipFile(f"its central directory ({directory_size:,} bytes from offset "
                         f"{directory_offset:,}) does not end where its end record "
                         f"begins (offset {directory_end:,})")
    return Index(entries, directory_size, directory_offset, zip64)


def count_entries(f, index: Index, limit: int) -> int:
    """The number of entries in the central directory ``index`` locates (as
    many as ``zipfile`` would make a ``ZipInfo`` of), counting no further
    than ``limit + 1``: walks the entries' fixed parts without building
    anything. Reads the ``index.size`` bytes of the directory, so bound that
    first.

    Raises :class:`zipfile.BadZipFile` when an entry lacks its signature or
    the entries do not fill the directory exactly.
    """
    data = _read_at(f, index.offset, index.size, "central directory")
    at = n = 0
    while at < len(data) and n <= limit:
        if not data.startswith(b"PK\x01\x02", at) or at + _ENTRY > len(data):
            raise BadZipFile(f"its central directory entry {n:,} (at offset "
                             f"{index.offset + at:,}) is not one (no signature PK\\1\\2, or "
                             f"cut short)")
        at += _ENTRY + sum(struct.unpack_from("<3H", data, at + 28))
        n += 1
    if at > len(data):
        raise BadZipFile(f"its central directory's last entry is cut short: it needs "
                         f"{at - len(data):,} bytes more than the directory holds")
    return n
