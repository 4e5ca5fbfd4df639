"""Sorting labelled images into ``DEST/<label>/`` without ever losing or overwriting a file.

- Label folder names are neutralised: separators, control characters and leading/trailing dots
  are replaced or stripped, so ``../x`` or ``/etc`` cannot leave the destination.
- A name already taken (on disk, or by an earlier image of the same run) gets ``-1``, ``-2``,
  ... before its extension (`choose_target`): the choice depends only on what is on disk and
  what the run chose before, so a resumed run picks the same names as an uninterrupted one.
- A target appears only complete and only where nothing was (`place_at`): a copy is written
  to a hidden temporary file in the target folder (``.<name>.fewshot-tmp``), synced, then
  hard-linked to its name (``link`` fails when the name is taken) and the temporary name
  removed. A move on one file system links the file to its new name and then removes the
  old one; across file systems it copies as above and then removes the source. At every
  instant the image exists under at least one name, and never half-written under its target.
- `finish_placement` completes a placement interrupted at any step (kill -9): a target that
  exists is complete, so only the source (of a move) and a temporary file remain to remove.
"""

from __future__ import annotations

import errno
import os
import shutil
import unicodedata
from pathlib import Path

from fewshot.errors import FewshotError
from fewshot.faults import crash_point

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


def choose_target(src: str | os.PathLike[str], folder: Path, claimed: set[str]) -> Path:
    """The first of ``name``, ``name-1``, ... in `folder` neither on disk nor in `claimed`."""
    for target in _candidates(folder, Path(src).name):
        if str(target) not in claimed and not os.path.lexists(target):
            return target
    raise AssertionError("unreachable")  # pragma: no cover


def temp_path(target: Path) -> Path:
    """Where a copy to `target` is written before it is linked to its name."""
    return target.with_name(f".{target.name}.fewshot-tmp")


def _no_hard_links(err: OSError) -> bool:
    return err.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES)


def _copy_into_place(src: Path, target: Path) -> None:
    tmp = temp_path(target)
    tmp.unlink(missing_ok=True)  # left by an interrupted copy
    with open(src, "rb") as source, open(tmp, "xb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    shutil.copystat(src, tmp)
    crash_point("organize.temp-written")
    try:
        os.link(tmp, target)  # fails when the name is taken: nothing is ever overwritten
    except OSError as err:
        if isinstance(err, FileExistsError) or not _no_hard_links(err):
            tmp.unlink(missing_ok=True)
            raise
        if os.path.lexists(target):
            tmp.unlink(missing_ok=True)
            raise FileExistsError(errno.EEXIST, "target exists", str(target)) from None
        os.rename(tmp, target)  # a file system without hard links
    crash_point("organize.target-linked")
    tmp.unlink(missing_ok=True)
    crash_point("organize.temp-removed")


def _place_new(src: Path, target: Path, mode: str) -> None:
    if mode == "link":
        os.symlink(src.resolve(), target)
        crash_point("organize.symlinked")
    elif mode == "copy":
        _copy_into_place(src, target)
    elif mode == "move":
        try:
            os.link(src, target)
            crash_point("organize.target-linked")
        except OSError as err:
            if isinstance(err, FileExistsError) or not _no_hard_links(err):
                raise
            _copy_into_place(src, target)  # another file system (or no hard links)
        os.unlink(src)
        crash_point("organize.source-removed")
    else:
        raise FewshotError(f"unknown organize mode {mode!r}; choose one of: {', '.join(MODES)}")


def place_at(src: str | os.PathLike[str], target: Path, mode: str) -> Path:
    """Copy, move or symlink `src` to exactly `target` (which must be free); returns `target`.

    Raises:
        FileExistsError: `target` is taken (nothing changed then).
        OSError: the placement failed; the source is still where it was.
    """
    src = Path(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    _place_new(src, target, mode)
    return target


def finish_placement(src: str | os.PathLike[str], target: Path, mode: str) -> Path:
    """Complete a `place_at` that may have been interrupted at any step; idempotent.

    Raises:
        OSError: neither the source nor the target exists, or the placement failed.
    """
    src = Path(src)
    tmp = temp_path(target)
    if os.path.lexists(target):
        if os.path.lexists(tmp):
            tmp.unlink()
            crash_point("organize.temp-removed")
        if mode == "move" and os.path.lexists(src):
            os.unlink(src)
            crash_point("organize.source-removed")
        return target
    if not os.path.lexists(src):
        raise FileNotFoundError(
            errno.ENOENT, "the image is neither at its source nor at its target", str(src)
        )
    return place_at(src, target, mode)


def place(src: str | os.PathLike[str], folder: Path, mode: str) -> Path:
    """Copy, move or symlink `src` into `folder` under a free name; returns the new path."""
    while True:
        target = choose_target(src, folder, set())
        try:
            return place_at(src, target, mode)
        except FileExistsError:
            continue  # taken since it was chosen
