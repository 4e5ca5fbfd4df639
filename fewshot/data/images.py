"""Finding, decoding and streaming image files, with bad files reported instead of crashing.

`stream_images` is the one path by which every command that reads many images (labelling,
indexing, folder data sets) decodes them: worker processes decode in parallel while the
model runs, memory stays constant however large the folder, and a corrupt, truncated,
empty, huge or non-image file is reported in the batch's ``failures`` and skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fewshot.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_PIXELS = 100_000_000  # larger images are refused (decompression bombs, broken headers)


class ImageReadError(DataError):
    """One image could not be read; the message says why."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def find_images(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], recursive: bool = True
) -> list[Path]:
    """Image files under the given files or folders, sorted, without duplicates.

    Files given by name are kept whatever their extension (a bad one is reported when it is
    decoded); inside folders only image extensions count, hidden files are skipped.

    Raises:
        DataError: a path does not exist, or no image was found at all.
    """
    return scan_images(inputs, recursive).paths


@dataclass
class ImageScan:
    """Image files found, and what could not be looked at: ``(path, reason)`` pairs.

    ``problems`` holds folders that could not be listed (no permission, vanished) and image
    names that lead nowhere (a symbolic link whose target is missing).
    """

    paths: list[Path]
    problems: list[tuple[Path, str]] = field(default_factory=list)


def _walk(folder: Path, recursive: bool, problems: list[tuple[Path, str]]) -> list[Path]:
    def unreadable(err: OSError) -> None:
        problems.append((Path(err.filename), f"folder not readable ({err.strerror or err})"))

    found = []
    for here, dirnames, filenames in os.walk(folder, onerror=unreadable, followlinks=False):
        if not recursive:
            dirnames.clear()
        for name in filenames:
            candidate = Path(here, name)
            if not is_image_file(candidate):
                continue
            if candidate.is_file():
                found.append(candidate)
            elif candidate.is_symlink() and not candidate.exists():
                problems.append((candidate, "broken symbolic link (its target is missing)"))
    return sorted(found)


def scan_images(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], recursive: bool = True
) -> ImageScan:
    """Like `find_images`, and also reports unreadable folders and broken links it met."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: dict[Path, None] = {}
    problems: list[tuple[Path, str]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found.update(dict.fromkeys(_walk(path, recursive, problems)))
        elif path.is_file():
            found[path] = None
        else:
            raise DataError(f"{path} does not exist")
    if not found:
        names = ", ".join(str(i) for i in inputs)
        also = f"; {problems[0][0]}: {problems[0][1]}" if problems else ""
        raise DataError(
            f"no image files found in {names} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}){also}"
        )
    return ImageScan(list(found), sorted(problems))


def read_image(path: str | os.PathLike[str], mode: str = "RGB", max_pixels: int = MAX_PIXELS):
    """Decode one image fully into a PIL image in `mode`.

    Raises:
        ImageReadError: empty, truncated, corrupt, too large, or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file")
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageReadError(f"{path}: image too large ({width}x{height} pixels)")
            image.load()
            return image.convert(mode)
    except ImageReadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: not an image") from err
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: image too large") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageReadError(f"{path}: unreadable image ({err})") from err


@dataclass
class ImageBatch:
    """Decoded images of one batch: ``images`` ``(B, ...)`` for ``paths``; ``failures`` skipped."""

    paths: list[Path]
    images: torch.Tensor | None
    failures: list[tuple[Path, str]] = field(default_factory=list)


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], transform: Callable, mode: str) -> None:
        self.paths, self.transform, self.mode = paths, transform, mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        try:
            return path, self.transform(read_image(path, self.mode)), None
        except ImageReadError as err:
            return path, None, str(err).removeprefix(f"{path}: ")
        except Exception as err:  # noqa: BLE001 - a transform failing on one file must not end the run
            return path, None, f"cannot transform image ({type(err).__name__}: {err})"


def _collate(items) -> ImageBatch:
    good = [(p, x) for p, x, e in items if e is None]
    failures = [(p, e) for p, _, e in items if e is not None]
    images = torch.stack([x for _, x in good]) if good else None
    return ImageBatch([p for p, _ in good], images, failures)


def stream_images(
    paths: list[Path],
    transform: Callable,
    batch_size: int = 64,
    workers: int | None = None,
    mode: str = "RGB",
) -> Iterator[ImageBatch]:
    """Decode `paths` in order, in batches, with `workers` processes decoding ahead.

    Args:
        transform: PIL image -> tensor ``(C, H, W)`` (e.g. a CLIP preprocess).
        workers: decoding processes; None picks ``min(8, cpu count)``; 0 decodes in-process.
    Yields:
        `ImageBatch` per batch: the decoded images and the files that failed, with reasons.
    """
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(
        _ImageFiles(list(paths), transform, mode),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
    )
    yield from loader
