"""The IDX reader on tiny files written here: good ones (gzipped or not, any type code) and
every defect refused in one line naming the file."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from fewshot.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx, read_idx, read_images_labels
from fewshot.errors import DataError


def idx_bytes(values: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = struct.pack(">HBB", 0, code, values.ndim) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(dtype).tobytes()


def write(path, content: bytes, gzipped: bool = False):
    path.write_bytes(gzip.compress(content) if gzipped else content)
    return path


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)
    labels = np.array([0, 2, 1, 2, 0, 1], dtype=np.uint8)
    return tmp_path, images, labels


@pytest.mark.parametrize("gzipped", [False, True])
def test_images_and_labels_read_back_exactly(pair, gzipped):
    folder, images, labels = pair
    x = write(folder / "x-idx3-ubyte", idx_bytes(images), gzipped)
    y = write(folder / "y-idx1-ubyte", idx_bytes(labels), gzipped)
    got_x, got_y = read_images_labels(x, y, n_classes=3)
    assert got_x.dtype == np.uint8 and got_x.shape == (6, 4, 3)
    np.testing.assert_array_equal(got_x, images)
    assert got_y.dtype == np.int64 and got_y.tolist() == labels.tolist()


def test_other_type_codes_are_decoded_big_endian():
    ints = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    assert parse_idx(idx_bytes(ints, 0x0C)).tolist() == ints.tolist()
    floats = np.array([0.5, -1.25], dtype=np.float32)
    got = parse_idx(idx_bytes(floats, 0x0D))
    assert got.dtype == np.float32 and got.tolist() == [0.5, -1.25]


def one_line_error(call, fragment: str) -> str:
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert fragment in message and "\n" not in message, message
    return message


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_truncated_file_is_refused(pair, gzipped):
    folder, images, _ = pair
    path = write(folder / "x", idx_bytes(images)[:-5], gzipped)
    message = one_line_error(lambda: read_idx(path, IMAGES_MAGIC), "truncated")
    assert str(path) in message and "83 bytes" in message and "88" in message


def test_a_file_longer_than_its_header_says_is_refused(pair):
    folder, images, _ = pair
    path = write(folder / "x", idx_bytes(images) + b"\0")
    one_line_error(lambda: read_idx(path), "too long")


def test_a_header_cut_short_is_refused(tmp_path):
    path = write(tmp_path / "x", idx_bytes(np.zeros((2, 2, 2), np.uint8))[:9])
    one_line_error(lambda: read_idx(path), "truncated inside the header")
    tiny = write(tmp_path / "y", b"\0\0")
    one_line_error(lambda: read_idx(tiny), "too short for an IDX header")


def test_wrong_magic_is_refused(pair):
    folder, images, labels = pair
    x = write(folder / "x", idx_bytes(images))
    y = write(folder / "y", idx_bytes(labels))
    one_line_error(lambda: read_images_labels(y, x, 3), "magic number 0x00000801, expected 0x00000803")
    one_line_error(lambda: read_idx(x, LABELS_MAGIC), "expected 0x00000801")
    junk = write(folder / "junk", b"<html>not found</html>")
    one_line_error(lambda: read_idx(junk), "is not an IDX header")


def test_label_count_differing_from_image_count_is_refused(pair):
    folder, images, labels = pair
    x = write(folder / "x", idx_bytes(images))
    y = write(folder / "y", idx_bytes(labels[:5]))
    one_line_error(lambda: read_images_labels(x, y, 3), "5 labels for the 6 images")


def test_labels_out_of_range_are_refused(pair):
    folder, images, labels = pair
    x = write(folder / "x", idx_bytes(images))
    labels[3] = 12
    y = write(folder / "y", idx_bytes(labels))
    one_line_error(lambda: read_images_labels(x, y, 3), "label 12 is out of range: expected 0..2")


def test_a_damaged_gzip_stream_is_refused(pair):
    folder, images, _ = pair
    packed = gzip.compress(idx_bytes(images))
    path = write(folder / "x.gz", packed[: len(packed) // 2])
    one_line_error(lambda: read_idx(path), "damaged gzip stream")
    one_line_error(lambda: read_idx(folder / "absent.gz"), "cannot read")
