"""Image preprocessing: PIL image -> tensor ``(C, H, W)`` in ``[0, 1]``.

`image_transform` is the one transform used to turn user images into model inputs. For
models trained on Omniglot (ink = 1 on paper = 0, one channel, 28x28) use
``image_transform(28, channels=1, invert=True)``: dark ink on white paper becomes ink = 1.
The transform is a small picklable object, so `fewshot.data.images.stream_images` can run
it in worker processes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fewshot.errors import DataError


class ImageTransform:
    """Resize to ``image_size x image_size``, convert to ``channels``, optionally invert.

    The whole image is resized to a square (no crop), with antialiasing.
    """

    def __init__(self, image_size: int, channels: int = 3, invert: bool = False) -> None:
        if not isinstance(image_size, int) or image_size < 1:
            raise DataError(f"image size must be a positive whole number, got {image_size!r}")
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        self.image_size, self.channels, self.invert = image_size, channels, bool(invert)

    def __call__(self, image) -> torch.Tensor:
        """PIL image (any mode) -> float32 ``(C, image_size, image_size)`` in ``[0, 1]``."""
        from PIL import Image

        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            # Transparent pixels count as white paper, not as black.
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image.convert("RGBA"))
        image = image.convert("L" if self.channels == 1 else "RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize(
                (self.image_size, self.image_size), Image.Resampling.BILINEAR, reducing_gap=None
            )
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        if self.invert:
            pixels = 1.0 - pixels
        if pixels.ndim == 2:
            pixels = pixels.unsqueeze(-1)
        return pixels.permute(2, 0, 1).contiguous()

    def __repr__(self) -> str:
        return f"ImageTransform(image_size={self.image_size}, channels={self.channels}, invert={self.invert})"


def image_transform(image_size: int, channels: int = 3, invert: bool = False) -> Callable[..., torch.Tensor]:
    """A transform PIL image -> float32 tensor ``(channels, image_size, image_size)`` in ``[0, 1]``.

    Args:
        image_size: output side length (the image is resized to a square, not cropped).
        channels: 1 for grayscale, 3 for RGB.
        invert: ``1 - x``: dark ink on white paper becomes ink = 1, as in Omniglot.
    """
    return ImageTransform(image_size, channels, invert)
