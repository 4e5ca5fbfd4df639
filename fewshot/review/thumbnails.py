"""Thumbnails, made once per image and kept in a cache folder beside the results.

A thumbnail is a JPEG at most `size` pixels on its longer side, named by a digest of the
image's resolved path, size and modification time (an edited image gets a new one). It is
written with `fewshot.fileio.atomic_write_bytes`, so a kill -9 never leaves a half-written
thumbnail under its name; two requests for the same image may both make it, and the second
rename replaces an identical file. JPEGs are decoded at reduced size (``draft``), so a large
photograph costs a fraction of a full decode. Images over 100 megapixels are refused, as
everywhere in the toolkit.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

MAX_PIXELS = 100_000_000


class ThumbnailError(Exception):
    """The file is not an image PIL can read (the page shows a placeholder)."""


class ThumbnailCache:
    """Thumbnails of `size` pixels in `folder`; `made` counts the ones generated here."""

    def __init__(self, folder: str | os.PathLike[str], size: int = 192) -> None:
        self.folder, self.size = Path(folder), size
        self.made = 0

    def key(self, image: Path) -> str:
        stat = image.stat()
        text = f"{os.fsencode(image).hex()}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}"
        return hashlib.sha256(text.encode()).hexdigest()

    def path_for(self, image: Path) -> Path:
        key = self.key(image)
        return self.folder / key[:2] / f"{key}.jpg"

    def get(self, image: str | os.PathLike[str]) -> Path:
        """The cached thumbnail of `image` (a resolved path), made first if missing.

        Raises:
            ThumbnailError: `image` cannot be read as an image.
        """
        image = Path(image)
        try:
            target = self.path_for(image)
        except OSError as err:
            raise ThumbnailError(str(err)) from None
        if not target.exists():
            from fewshot.fileio import atomic_write_bytes

            atomic_write_bytes(target, self.render(image))
            self.made += 1
        return target

    def render(self, image: Path) -> bytes:
        """JPEG bytes of the thumbnail of `image`."""
        from PIL import Image, ImageOps

        try:
            with Image.open(image) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ThumbnailError(f"image too large ({width}x{height})")
                im.draft("RGB", (self.size, self.size))  # JPEG: decode at a reduced scale
                im = ImageOps.exif_transpose(im)
                im = im.convert("RGB")
                im.thumbnail((self.size, self.size))
                buffer = io.BytesIO()
                im.save(buffer, "JPEG", quality=85)
                return buffer.getvalue()
        except ThumbnailError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise ThumbnailError(f"not a readable image: {err}") from None
