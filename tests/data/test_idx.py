"""The IDX reader and writer: round trips and every kind of broken file."""

import gzip
import os
import struct
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinynet.data import IDXError, read_idx, write_idx
from tinynet.data.idx import encode_idx, parse_idx

from tests.data.idx_helpers import gzip_of_zeros, peak_memory

dtypes = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])


@given(array=dtypes.flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    elements=hnp.from_dtype(np.dtype(dt), allow_nan=False))),
    compress=st.booleans())
def test_round_trip_bytes(array, compress):
    data = encode_idx(array)
    if compress:
        data = gzip.compress(data)
    back = parse_idx(data)
    assert back.dtype == array.dtype and back.dtype.isnative
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_header_matches_the_published_layout():
    data = encode_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert data[:4] == b"\x00\x00\x08\x02"
    assert struct.unpack(">II", data[4:12]) == (2, 3)
    assert data[12:] == bytes(range(6))
    assert parse_idx(encode_idx(np.array([1], dtype=np.int32)))[0] == 1
    assert encode_idx(np.array([1], dtype=np.int32))[-4:] == b"\x00\x00\x00\x01"  # big-endian


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_file_round_trip_and_writable(tmp_path, name):
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, images)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    back = read_idx(path)
    np.testing.assert_array_equal(back, images)
    back[0, 0, 0] = 1  # a writable copy, not a view of the file's bytes
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "labels.idx"
    path.write_bytes(gzip.compress(encode_idx(np.arange(3, dtype=np.uint8))))
    np.testing.assert_array_equal(read_idx(path), [0, 1, 2])


good = encode_idx(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize("data, match", [
    (b"\x1f\x8b\x08\x00junk", "corrupt gzip|truncated"),
    (gzip.compress(good)[:-12], "gzip stream is truncated"),
    (b"PK\x03\x04" + good, "bad magic number"),
    (b"\x00\x00\x07\x01" + good[4:], "bad magic number"),
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x03", "truncated header"),
    (good[:-1], r"wrong length.*truncated"),
    (good + b"\x00", "trailing bytes"),
    (gzip.compress(good[:-5]), r"wrong length.*truncated"),
    # dimensions whose product wraps past 2**64 in int64 (it used to pass as 0 bytes)
    (b"\x00\x00\x08\x03" + struct.pack(">3I", 2**31, 2**31, 4),
     r"18446744073709551632 bytes.*truncated"),
])
def test_broken_files_raise_idx_error(data, match):
    with pytest.raises(IDXError, match=match):
        parse_idx(data, "broken.idx")


def test_error_names_the_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(good[:-1])
    with pytest.raises(IDXError, match=str(path)):
        read_idx(path)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def test_write_refuses_unsupported_dtype(tmp_path):
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    with pytest.raises(TypeError, match="uint8, int8"):
        write_idx(tmp_path / "a", np.zeros(2, dtype=np.int64))
    assert list(tmp_path.iterdir()) == []


def test_gzip_data_far_past_the_header_is_not_decompressed_whole(tmp_path):
    # 9 bytes promised, 48 MB of zeros after them in a 50 kB file: the whole
    # stream used to be decompressed before the length was checked
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(gzip_of_zeros(encode_idx(np.zeros(1, np.uint8)), 48 << 20))
    for read in (lambda: read_idx(path), lambda: parse_idx(path.read_bytes(), str(path))):
        peak, message = peak_memory(read)
        assert peak < 8 << 20, peak
        assert str(path) in message and "9 bytes" in message and "trailing bytes" in message


def test_a_plain_file_is_read_no_further_than_its_header_promises(tmp_path):
    path = tmp_path / "long-idx1-ubyte"
    path.write_bytes(encode_idx(np.zeros(1, np.uint8)) + bytes(24 << 20))
    peak, message = peak_memory(lambda: read_idx(path))
    assert peak < 4 << 20, peak
    assert f"the file has {9 + (24 << 20)} (has trailing bytes)" in message


def test_a_header_promising_more_than_gzip_can_hold_is_refused_unread():
    # 2**40 bytes promised in 1 kB of gzip data: deflate expands at most 1032:1
    data = gzip_of_zeros(b"\x00\x00\x08\x02" + struct.pack(">2I", 2**20, 2**20), 0)
    with pytest.raises(IDXError, match=rf"{2**40 + 12} bytes, more than the {len(data)} "
                                       r"bytes of gzip data can hold.*truncated"):
        parse_idx(data, "promise.gz")


def test_a_read_error_of_a_plain_file_is_not_called_corrupt_gzip(monkeypatch):
    import io

    class FailingFile(io.BytesIO):  # a disk failing after the first bytes
        def readinto(self, buffer):
            if self.tell() >= 4:
                raise OSError(5, "Input/output error")
            return super().readinto(memoryview(buffer)[:4])

    from tinynet.data import idx
    with pytest.raises(OSError, match="Input/output error") as info:
        idx._parse_file(io.BufferedReader(FailingFile(good)), len(good), "disk.idx")
    assert not isinstance(info.value, IDXError)


def test_write_compress_must_be_a_bool(tmp_path):
    # compress="False" is truthy: the file was gzipped against the caller's word
    tmp_path = tmp_path / "files"
    tmp_path.mkdir()
    with pytest.raises(TypeError, match="write_idx expected compress as True or False"):
        write_idx(tmp_path / "a", np.zeros(2, np.uint8), compress="False")
    assert list(tmp_path.iterdir()) == []
    write_idx(tmp_path / "b.gz", np.zeros(2, np.uint8), compress=np.False_)
    assert (tmp_path / "b.gz").read_bytes()[:2] == b"\x00\x00"


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
@pytest.mark.parametrize("compress", [False, True])
def test_read_from_a_pipe(compress):
    # e.g. read_idx("/dev/fd/63") from a shell's <(zcat ...): not seekable, no size
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    data = encode_idx(array)
    data = gzip.compress(data) if compress else data
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        np.testing.assert_array_equal(read_idx(f"/dev/fd/{read_end}"), array)
    finally:
        writer.join()
        os.close(read_end)


def test_write_idx_to_a_missing_directory_says_so_before_encoding(tmp_path, monkeypatch):
    # it encoded (and gzipped) the whole array, then failed naming atomic_write
    from tinynet.data import idx

    def no_encoding(array):
        raise AssertionError("encoded before the path was checked")

    monkeypatch.setattr(idx, "encode_idx", no_encoding)
    target = tmp_path / "nope" / "images-idx3-ubyte.gz"
    with pytest.raises(FileNotFoundError, match=r"write_idx expected the directory of .*nope"):
        idx.write_idx(target, np.zeros((2, 3, 3), np.uint8))
    assert not (tmp_path / "nope").exists()
