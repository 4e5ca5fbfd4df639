"""Which files the review may serve: only image files inside the images root.

The page never names a file: it asks for a row number (``/image/17``), and the server looks
up that row's path in the results. The path is then checked here, so a results file listing
``../../etc/passwd``, ``/etc/shadow`` or a symlink out of the root serves nothing (404):

- relative paths are taken from the images root when ``--images`` is given, else from the
  current folder (where `fewshot label` / `predict` ran);
- the path is resolved (``..`` and every symlink followed) and must lie inside the resolved
  root and be a regular file with an image suffix.

Without ``--images`` the root is the deepest folder holding every image listed; a list whose
only common folder is ``/`` is refused (give ``--images``).
"""

from __future__ import annotations

import os
from pathlib import Path

from fewshot.errors import FewshotError

IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def _common_folder(paths: list[str], base: Path) -> Path:
    absolute = [os.path.abspath(os.path.join(base, p)) for p in paths if p]
    if not absolute:
        raise FewshotError("the results list no image paths")
    common = Path(os.path.commonpath(absolute))
    if len(absolute) == 1 or common.as_posix() in absolute:
        common = common.parent
    return common


class ImageRoot:
    """The folder images are served from (`root`, resolved) and the checks of the module docstring."""

    def __init__(self, paths: list[str], root: str | os.PathLike[str] | None = None) -> None:
        if root is not None:
            given = Path(root).expanduser()
            if not given.is_dir():
                raise FewshotError(f"--images {root} is not a folder")
            self.base = given.absolute()
        else:
            self.base = Path.cwd()
            given = _common_folder(paths, self.base)
            if given == Path(given.anchor):
                raise FewshotError(
                    "the images listed have no common folder but the file system root: give --images ROOT"
                )
        self.root = given.resolve()

    def absolute(self, path: str) -> Path:
        return Path(os.path.join(self.base, path))

    def resolve(self, path: str) -> Path | None:
        """The real file of `path` when it may be served, else None."""
        if not path or "\x00" in path:
            return None
        try:
            real = self.absolute(path).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if self.root not in real.parents or real.suffix.lower() not in IMAGE_TYPES:
            return None
        return real if real.is_file() else None

    def relative(self, path: str) -> str:
        """`path` under the root, POSIX style (as listed, made absolute, when outside it)."""
        absolute = Path(os.path.abspath(self.absolute(path)))
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return absolute.as_posix()
