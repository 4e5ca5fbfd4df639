"""Image folders: one subfolder per class, the main way to bring your own data.

Layout. Every folder that directly contains image files is one class, named by its path
relative to the root with ``/`` separators, so classes may sit at any depth::

    root/cat/*.jpg                  -> class "cat"
    root/animals/dog/*.png          -> class "animals/dog"
    root/animals/*.jpg              -> class "animals" (its own images; "animals/dog" stays separate)

Groups. A class's group is its parent folder (``root/<group>/<class>/*.png``: class
``animals/dog`` is in group ``animals``), for episodes drawn within one group
(``--within-group``). When at least one class sits in a group folder, classes directly under
``root`` form the group ``.``; when none does, the folder has no groups (``class_groups`` is
None).

Images directly in ``root`` belong to no class and are skipped (and reported), as are
folders without subfolders that hold no image. Hidden files and folders (``.name``) are
ignored. Image extensions: jpg, jpeg, png, webp, bmp, gif, tif, tiff (any case); other files
in class folders are skipped and reported.

Splits. Classes (never items) are split into ``train``/``val``/``test`` by ratios such as
``"0.6,0.2,0.2"``, shuffled with a seed, so the same seed and ratios give the same split on
every machine. ``subset="all"`` keeps every class. Unreadable images (corrupt, truncated,
empty, not an image) are skipped; a class left without a readable image is dropped. Both are
reported in one line on the ``fewshot.data`` logger (level WARNING, shown on stderr unless
logging is configured otherwise) naming the first few; when there are more, the full list
(one ``path: reason`` per line) is written to ``fewshot-skipped-<digest of the root>.txt`` in
the temporary folder and the line says where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fewshot.data.images import is_image_file
from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError

SUBSETS = ("train", "val", "test", "all")
DEFAULT_SPLIT = "0.6,0.2,0.2"
DEFAULT_IMAGE_SIZE = 84


log = logging.getLogger("fewshot.data")


@dataclass
class FolderScan:
    """What a folder holds: image paths per class and the files that were left out."""

    root: Path
    classes: dict[str, list[Path]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_image_folder(root: str | os.PathLike[str]) -> FolderScan:
    """Find the classes of an image folder (see the module docstring for the layout).

    Returns:
        `FolderScan` with classes sorted by name and each class's files sorted.

    Raises:
        DataError: `root` is not a folder, or holds no class folder with an image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: give a folder with one subfolder per class")
    classes: dict[str, list[Path]] = {}
    skipped: list[tuple[Path, str]] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(folder)
        files = sorted(here / f for f in filenames if not f.startswith("."))
        images = [f for f in files if is_image_file(f)]
        skipped += [(f, "not an image file (extension)") for f in files if not is_image_file(f)]
        if here == root:
            skipped += [(f, "image directly in the root folder belongs to no class") for f in images]
        elif images:
            classes[here.relative_to(root).as_posix()] = images
        elif not dirnames:
            skipped.append((here, "folder holds no image"))
    if not classes:
        raise DataError(
            f"no class folder with images in {root}: expected {root}/<class>/<image>.jpg "
            "(one subfolder per class)"
        )
    return FolderScan(root, dict(sorted(classes.items())), skipped)


def parse_ratios(split: str | None) -> tuple[float, float, float]:
    """``"0.6,0.2,0.2"`` -> ``(0.6, 0.2, 0.2)`` (train, val, test), normalised to sum 1.

    Two numbers mean train and test (no val). Raises `DataError` on anything else.
    """
    text = DEFAULT_SPLIT if split is None else split
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) == 2:
        values = [values[0], 0.0, values[1]]
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise DataError(
            f"bad split {text!r} for an image folder: give class ratios train,val,test such as 0.6,0.2,0.2"
        )
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def split_classes(names: list[str], split: str | None, seed: int = 0) -> dict[str, list[str]]:
    """Class-disjoint ``train``/``val``/``test`` lists of class names, from ratios and a seed.

    Class counts are the ratios times the number of classes, rounded so that they add up and
    every part with a non-zero ratio gets at least one class when there are enough classes.
    """
    ratios = parse_ratios(split)
    n = len(names)
    wanted = [r > 0 for r in ratios]
    if n < sum(wanted):
        raise DataError(
            f"{n} classes cannot be split into {sum(wanted)} non-empty parts ({split or DEFAULT_SPLIT}): "
            "add classes, or use --subset all"
        )
    counts = np.floor(np.array(ratios) * n).astype(int)
    for i in np.argsort(-(np.array(ratios) * n - counts), kind="stable"):
        if counts.sum() >= n:
            break
        counts[i] += 1
    for i in range(3):  # a part that was asked for gets one class, taken from the largest part
        if wanted[i] and counts[i] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    order = np.random.default_rng(seed).permutation(n)
    ordered = sorted(names)
    shuffled = [ordered[i] for i in order]
    bounds = np.cumsum([0, *counts])
    return {
        part: sorted(shuffled[bounds[i] : bounds[i + 1]]) for i, part in enumerate(("train", "val", "test"))
    }


def skipped_list_path(root: Path) -> Path:
    """Where the full list of files skipped in `root` is written."""
    digest = hashlib.sha256(os.fsencode(root.absolute())).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fewshot-skipped-{digest}.txt"


def report_skipped(skipped: list[tuple[Path, str]], root: Path, shown: int = 5) -> str:
    """Log one line naming the first `shown` skipped files; the full list goes to a file."""
    lines = [f"{path}: {reason}" for path, reason in skipped]
    message = f"skipped {len(skipped)} file(s) or folder(s) in {root}: " + "; ".join(lines[:shown])
    if len(skipped) > shown:
        from fewshot.fileio import atomic_write_bytes

        listing = skipped_list_path(root)
        try:
            atomic_write_bytes(listing, ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
            message += f" (the first {shown}; all {len(skipped)} are listed in {listing})"
        except OSError:
            message += f" (the first {shown} of {len(skipped)})"
    log.warning("%s", message)
    return message


def _chosen_classes(scan: FolderScan, subset: str, split: str | None, seed: int) -> list[str]:
    """The names of the classes of `subset` (all of them for ``all``)."""
    if subset == "all":
        return list(scan.classes)
    chosen = split_classes(list(scan.classes), split, seed)[subset]
    if not chosen:
        raise DataError(
            f"the {subset} part of split {split or DEFAULT_SPLIT} has no class: give it a non-zero ratio"
        )
    return chosen


def _read_classes(
    scan: FolderScan,
    chosen: list[str],
    subset: str,
    transform: Callable,
    batch_size: int,
    workers: int | None,
) -> tuple[list, list[int], list[tuple[Path, str]]]:
    """Decode the images of the `chosen` classes: image batches, the class position of every
    image, and what was skipped (reported here). Refuses classes without a readable image."""
    from fewshot.data.images import stream_images

    paths = [p for name in chosen for p in scan.classes[name]]
    class_of = {p: i for i, name in enumerate(chosen) for p in scan.classes[name]}
    images, labels, skipped = [], [], list(scan.skipped)
    for batch in stream_images(paths, transform, batch_size=batch_size, workers=workers):
        skipped += batch.failures
        if batch.images is not None:
            images.append(batch.images)
            labels += [class_of[p] for p in batch.paths]
    present = set(labels)
    skipped += [
        (scan.root / name, "class has no readable image") for i, name in enumerate(chosen) if i not in present
    ]
    if skipped:
        report_skipped(skipped, scan.root)
    if not images:
        raise DataError(f"no readable image in the {subset} classes of {scan.root}")
    return images, labels, skipped


def _labeled(images: list, labels: list[int], chosen: list[str], info: dict, skipped: int) -> LabeledTensors:
    """The decoded images as `LabeledTensors`, relabelled ``0..k-1`` over the classes that kept
    at least one image, in name order."""
    import torch

    shapes = {tuple(x.shape[1:]) for x in images}
    if len(shapes) > 1:
        raise DataError(f"the transform gave images of several shapes {sorted(shapes)}: it must resize")
    present = sorted(set(labels))
    remap = {old: new for new, old in enumerate(present)}
    names = [chosen[i] for i in present]
    return LabeledTensors(
        torch.cat(images),
        torch.tensor([remap[y] for y in labels], dtype=torch.int64),
        names,
        {**info, "image_size": int(images[0].shape[-1]), "skipped": skipped},
        class_groups=folder_groups(names),
    )


def folder_groups(class_names: list[str]) -> list[str] | None:
    """The parent folder of every class (``.`` for a class directly under the root); None
    when no class sits in a group folder."""
    groups = [name.rpartition("/")[0] or "." for name in class_names]
    return None if all(g == "." for g in groups) else groups


def load_image_folder(
    root: str | os.PathLike[str],
    subset: str = "all",
    split: str | None = None,
    seed: int = 0,
    transform: Callable | None = None,
    image_size: int | None = None,
    workers: int | None = None,
    batch_size: int = 64,
) -> LabeledTensors:
    """Load one class-disjoint part of an image folder into memory.

    Args:
        root: the folder (one subfolder per class, at any depth).
        subset: ``train``, ``val``, ``test`` (a part of the split) or ``all``.
        split: class ratios ``"train,val,test"`` (default ``0.6,0.2,0.2``); ignored for ``all``.
        seed: shuffles classes before splitting; use the same seed for training and testing.
        transform: PIL image -> tensor ``(C, H, W)``; default RGB resized to `image_size`
            (84 when not given), see `fewshot.data.transforms.image_transform`.
        workers: decoding processes (None: up to 8; 0: decode in this process).

    Returns:
        `LabeledTensors` with ``data`` ``(n, C, H, W)``, labels ``0..n_classes-1`` in class
        name order, and ``info["skipped"]`` the number of files left out.

    Raises:
        DataError: bad subset/split, no classes, or no readable image in the chosen classes.
    """
    from fewshot.data.transforms import image_transform

    if subset not in SUBSETS:
        raise DataError(f"unknown subset {subset!r} of an image folder: choose one of {', '.join(SUBSETS)}")
    scan = scan_image_folder(root)
    chosen = _chosen_classes(scan, subset, split, seed)
    if transform is None:
        transform = image_transform(image_size or DEFAULT_IMAGE_SIZE, channels=3, invert=False)
    images, labels, skipped = _read_classes(scan, chosen, subset, transform, batch_size, workers)
    split_used = None if subset == "all" else (split or DEFAULT_SPLIT)
    info = {"dataset": "folder", "root": str(scan.root), "subset": subset, "split": split_used, "seed": seed}
    return _labeled(images, labels, chosen, info, len(skipped))
