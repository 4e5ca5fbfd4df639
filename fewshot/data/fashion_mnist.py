"""Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) as a named data set."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from fewshot.data.catalog import DATASETS
from fewshot.data.labelled import ArraySet
from fewshot.data.paths import resolve_data_dir
from fewshot.data.remote import RemoteFile
from fewshot.errors import DataError

FOLDER = "fashion-mnist"
BASE = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# the official files: Zalando's MD5 of each .gz; the sha256 of its decompressed content
# (from the Debian package's re-compressed copy) accepts a copy re-compressed by others
FILES = (
    RemoteFile(
        f"{BASE}/train-images-idx3-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        items=60_000,
        content_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    RemoteFile(
        f"{BASE}/train-labels-idx1-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
        items=60_000,
        content_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    RemoteFile(
        f"{BASE}/t10k-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
        items=10_000,
        content_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    RemoteFile(
        f"{BASE}/t10k-labels-idx1-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
        items=10_000,
        content_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
)
PARTS = ("train", "t10k")  # the official training and test files, in that order


def offline_hint(data_dir: Path) -> str:
    return (
        "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        f"t10k-labels-idx1-ubyte.gz in a {FOLDER}/ folder and point --data-dir or FEWSHOT_DATA_DIR "
        f"at its parent (now {data_dir})"
    )


def find_file(root: Path, stem: str) -> Path:
    """``<stem>.gz`` or the unpacked ``<stem>``; refuses when neither is there."""
    for path in (root / f"{stem}.gz", root / stem):
        if path.is_file():
            return path
    raise DataError(
        f"Fashion-MNIST file {stem}.gz not found in {root}: run `fewshot data download {FOLDER}`, "
        f"or point --data-dir / FEWSHOT_DATA_DIR at a folder that contains {FOLDER}/"
    )


@lru_cache(maxsize=2)
def _decoded(images: Path, labels: Path, stamp: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Decoded once per process and file version (train and val of one run read the same files)."""
    from fewshot.data.idx import read_images_labels

    return read_images_labels(images, labels, len(CLASS_NAMES))


def read_part(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """One official part (``train``, ``t10k``): ``(images (n, 28, 28) uint8, labels (n,) int64)``."""
    images = find_file(root, f"{part}-images-idx3-ubyte")
    labels = find_file(root, f"{part}-labels-idx1-ubyte")
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in (images, labels))
    return _decoded(images.resolve(), labels.resolve(), stamp)


def _header_count(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(8)
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: unreadable ({err})") from err
    if len(header) < 8:
        raise DataError(f"{path}: too short for an IDX header")
    return struct.unpack(">I", header[4:8])[0]


@DATASETS.register("fashion-mnist")
class FashionMNIST(ArraySet):
    """Zalando's Fashion-MNIST: 70,000 greyscale 28x28 photographs of clothing, 10 classes
    (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot;
    MIT licence), read from the four official IDX files in ``<data_dir>/fashion-mnist/``.

    Splits (see `fewshot.data.labelled`):

    - ``official`` (default): the published item split, every class in each part. Subsets
      ``train`` (60,000), ``test`` (10,000), ``all`` (70,000); ``val`` (6,000, a seeded
      stratified tenth of ``train``) and ``fit`` (the other 54,000) for validation.
      `fewshot eval` and `compare` default to ``test``: few-shot episodes over all 10
      classes of the official test images (the usual cross-domain protocol for an encoder
      trained elsewhere). Fine-tuning trains on ``train`` and is tested on ``test``.
    - ``classes`` or ratios ``"<train>,<val>,<test>"``: class-disjoint, seeded, all 7,000
      images of a class go with it. ``classes`` is 3/2/5 classes (``0.3,0.2,0.5``), the most
      a 5-way test part and a 2-way val part leave for meta-training.

    Items: float32 ``(n, 1, 28, 28)`` in ``[0, 1]`` (0 = black background), resized with
    antialiasing to ``image_size``. ``fewshot data download fashion-mnist`` fetches the files.
    """

    name = FOLDER
    title = "Fashion-MNIST"
    class_names = CLASS_NAMES
    item_split = default_split = "official"
    image_size = native_size = 28
    pixel_scale = 255.0
    downloads = True
    source = "Zalando Research, github.com/zalandoresearch/fashion-mnist (MIT licence)"

    def arrays(self, data_dir, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        root = resolve_data_dir(data_dir) / FOLDER
        if not root.is_dir():
            raise DataError(
                f"Fashion-MNIST not found in {root}: run `fewshot data download {FOLDER}`, or point "
                f"--data-dir / FEWSHOT_DATA_DIR at a folder that contains {FOLDER}/"
            )
        (train_x, train_y), (test_x, test_y) = (read_part(root, part) for part in PARTS)
        in_train = np.repeat([True, False], [len(train_y), len(test_y)])
        return np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]), in_train

    def download(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        force: bool = False,
        progress: bool = True,
        timeout: float = 10.0,
        log: Callable[[str], None] = lambda message: None,
        opener=None,
        **_options,
    ) -> Path:
        """Fetch and verify the four official files into ``<data_dir>/fashion-mnist``."""
        from fewshot.data.remote import download_files

        return download_files(
            FOLDER,
            FILES,
            data_dir,
            force=force,
            progress=progress,
            timeout=timeout,
            opener=opener,
            log=log,
            hint=offline_hint,
        )

    def status(self, data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, list[tuple[str, str]]]:
        """``(folder, [(file, state), ...])`` for `fewshot data info`."""
        root = resolve_data_dir(data_dir) / FOLDER
        rows = []
        for spec in FILES:
            stem = spec.target.removesuffix(".gz")
            found = [p for p in (root / spec.target, root / stem) if p.is_file()]
            if not found:
                rows.append((spec.target, "missing"))
                continue
            try:
                rows.append((found[0].name, f"{_header_count(found[0]):,} items"))
            except DataError as err:
                rows.append((found[0].name, f"damaged: {err}"))
        return root, rows
