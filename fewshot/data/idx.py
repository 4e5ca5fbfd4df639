"""IDX files (the MNIST format), gzipped or plain, read into numpy without unpickling anything.

Layout: a big-endian header -- two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8,
``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of dimensions,
then one uint32 size per dimension -- followed by the values, row-major. Images are magic
``0x00000803`` (2051: uint8, 3 dimensions), labels ``0x00000801`` (2049: uint8, 1 dimension).

Every defect is one `DataError` line naming the file: a damaged gzip stream, a wrong magic,
fewer (or more) bytes than the header says, a label count that differs from the image count,
or a label outside ``0..n_classes-1``.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from fewshot.errors import DataError

IMAGES_MAGIC = 0x00000803  # 2051
LABELS_MAGIC = 0x00000801  # 2049
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP = b"\x1f\x8b"


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's content, decompressed when it is gzipped (told by its first two bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or err})") from err
    if not raw.startswith(_GZIP):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: damaged gzip stream ({err}): download it again") from err


def parse_idx(content: bytes, name: str = "IDX data", magic: int | None = None) -> np.ndarray:
    """Decode IDX bytes into an array of the header's shape and type (native byte order).

    Args:
        content: the (decompressed) file content.
        name: what to call the data in error messages (usually the path).
        magic: the expected magic number (`IMAGES_MAGIC`, `LABELS_MAGIC`); None: any IDX.
    """
    if len(content) < 4:
        raise DataError(f"{name}: {len(content)} bytes, too short for an IDX header: download it again")
    zero, code, ndim = struct.unpack(">HBB", content[:4])
    found = struct.unpack(">I", content[:4])[0]
    if magic is not None and found != magic:
        raise DataError(f"{name}: magic number 0x{found:08x}, expected 0x{magic:08x}: not the right IDX file")
    if zero != 0 or code not in DTYPES or ndim == 0:
        raise DataError(f"{name}: magic number 0x{found:08x} is not an IDX header")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{name}: truncated inside the header ({len(content)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", content[4:header])
    dtype = np.dtype(DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        state = "truncated" if len(content) < expected else "too long"
        raise DataError(
            f"{name}: {state}: {len(content):,} bytes where the header {shape} says {expected:,}: "
            "download it again"
        )
    values = np.frombuffer(content, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike[str], magic: int | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or plain); see `parse_idx`."""
    return parse_idx(read_bytes(path), str(path), magic)


def read_images_labels(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str], n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """An image file and its label file: ``(images (n, H, W) uint8, labels (n,) int64)``.

    Raises:
        DataError: either file is damaged, the counts differ, or a label is not in
            ``0..n_classes-1``.
    """
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: {len(labels):,} labels for the {len(images):,} images of {images_path}: "
            "the files do not belong together"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(labels[(labels < 0) | (labels >= n_classes)][0])
        raise DataError(f"{labels_path}: label {bad} is out of range: expected 0..{n_classes - 1}")
    return images, labels.astype(np.int64)
