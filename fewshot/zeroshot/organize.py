"""Sorting labelled images into ``DEST/<label>/`` without ever losing or overwriting a file.

- Label folder names are neutralised: separators, control characters and leading/trailing dots
  are replaced or stripped, so ``../x`` or ``/etc`` cannot leave the destination.
- A name already taken gets ``-1``, ``-2``, ... before its extension; targets are created
  exclusively (``O_EXCL``, ``link``, ``symlink``), so a concurrent file is never overwritten.
- A move links the file to its new name, then removes the old name (copy-then-delete across
  file systems): at every instant the image exists under at least one name.
"""

from __future__ import annotations

import errno
import os
import shutil
import unicodedata
from pathlib import Path

from fewshot.errors import FewshotError

MODES = ("copy", "move", "link")
_FORBIDDEN = set('/\\:*?"<>|')


def safe_folder_name(label: str, max_length: int = 100) -> str:
    """A single, harmless path component for `label` (never empty, ``.``, ``..`` or absolute)."""
    name = unicodedata.normalize("NFC", str(label))
    name = "".join("_" if c in _FORBIDDEN or ord(c) < 32 or ord(c) == 127 else c for c in name)
    name = name.strip().strip(".").strip()[:max_length].rstrip(". ")
    return name or "_"


def label_folders(dest: str | os.PathLike[str], labels: list[str]) -> dict[str, Path]:
    """Folder per label under `dest`; distinct labels that neutralise alike get ``-2``, ``-3``."""
    root = Path(dest).expanduser().resolve()
    folders: dict[str, Path] = {}
    used: set[str] = set()
    for label in labels:
        base = safe_folder_name(label)
        name, n = base, 1
        while name.lower() in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name.lower())
        folder = root / name
        if folder.parent != root:  # defensive: safe_folder_name makes this impossible
            raise FewshotError(f"label {label!r} would leave the destination folder")
        folders[label] = folder
    return folders


def _candidates(folder: Path, filename: str):
    path = Path(filename)
    stem, suffix = path.stem, path.suffix
    yield folder / filename
    n = 1
    while True:
        yield folder / f"{stem}-{n}{suffix}"
        n += 1


def _copy_exclusive(src: Path, target: Path) -> None:
    with open(src, "rb") as source, open(target, "xb") as out:
        try:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            out.close()
            target.unlink(missing_ok=True)
            raise
    shutil.copystat(src, target)


def _place_once(src: Path, target: Path, mode: str) -> None:
    """Raises FileExistsError when `target` is taken (nothing changed then)."""
    if mode == "copy":
        _copy_exclusive(src, target)
    elif mode == "link":
        os.symlink(src.resolve(), target)
    elif mode == "move":
        try:
            os.link(src, target)
        except OSError as err:
            if isinstance(err, FileExistsError) or err.errno == errno.EEXIST:
                raise
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            _copy_exclusive(src, target)  # another file system (or no hard links)
        os.unlink(src)
    else:
        raise FewshotError(f"unknown organize mode {mode!r}; choose one of: {', '.join(MODES)}")


def place(src: str | os.PathLike[str], folder: Path, mode: str) -> Path:
    """Copy, move or symlink `src` into `folder` under a free name; returns the new path."""
    src = Path(src)
    folder.mkdir(parents=True, exist_ok=True)
    for target in _candidates(folder, src.name):
        try:
            _place_once(src, target, mode)
            return target
        except FileExistsError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover
