"""Checks on output paths, made before a long run starts instead of failing at its end.

`check_writable(path, option)` refuses, in one line naming the option, an output that is a
folder, an existing non-regular file (a device, ``/proc/...``), or one whose folder cannot
be written (read-only, a file in the way, a pseudo file system). Writers here replace their
output atomically (a temporary file in the same folder, then a rename), so what matters is
that the folder accepts a new file: the check creates one and removes it at once, leaving
the disk as it was. Folders that do not exist yet are not created; their nearest existing
ancestor is checked instead.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from fewshot.errors import FewshotError


def _nearest_existing(folder: Path) -> Path:
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def check_writable(path: str | os.PathLike[str], option: str) -> Path:
    """`path` (expanded) when a file can be written there; else `FewshotError` naming `option`."""
    path = Path(path).expanduser()
    if path.name in ("", ".", ".."):
        raise FewshotError(f"{option} {path} is a folder: give a file name")
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as err:
        raise FewshotError(f"{option} {path} cannot be written: {err.strerror or err}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise FewshotError(f"{option} {path} is a folder: give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise FewshotError(f"{option} {path} is not a regular file: give a file name")
    folder = _nearest_existing(path.absolute().parent)
    if not folder.is_dir():
        raise FewshotError(f"{option} {path} cannot be written: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fewshot-write-check-")
    except OSError as err:
        reason = err.strerror or str(err)
        if err.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
            reason = "cannot create files there"
        raise FewshotError(
            f"{option} {path} cannot be written: {folder} is not writable ({reason})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path
