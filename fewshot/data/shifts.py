"""Domain shifts on image tensors: blur + contrast, rotation, inversion.

Each shift is a small picklable callable on images ``(n, C, H, W)`` float in ``[0, 1]`` that
returns a new tensor of the same shape and range; a seeded shift (rotation with jitter) draws
from ``torch.Generator().manual_seed(seed)``, so the same seed gives the same images. They make
a *target domain* from a source data set (domain adaptation, `fewshot.adapt`) or the domains of
a domain-incremental stream (continual learning).

- ``blur-contrast``: Gaussian blur (``sigma`` pixels) then contrast scaled by ``contrast``
  about the image mean (a washed-out, defocused camera).
- ``rotation``: every image turned by ``degrees`` (plus uniform ``jitter`` degrees either way),
  bilinear, the corners filled with 0 (background).
- ``inversion``: ``1 - x`` (ink becomes paper). Known to defeat feature alignment: CORAL or
  DANN match the marginals but the classes swap places, so it is the negative-transfer case.

``shift_named(name, **options)`` builds one by name; ``shift_data(data, name, seed)`` applies
one to `LabeledTensors`, keeping labels and recording the shift in ``info``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fewshot.errors import DataError

if TYPE_CHECKING:
    from fewshot.data.tensors import LabeledTensors


class BlurContrast:
    """Gaussian blur of ``sigma`` pixels, then contrast ``contrast`` (1 = unchanged) about the
    per-image mean."""

    name = "blur-contrast"

    def __init__(self, sigma: float = 1.0, contrast: float = 0.5) -> None:
        if sigma < 0 or contrast <= 0:
            raise DataError(f"blur-contrast needs sigma >= 0 and contrast > 0, got {sigma}, {contrast}")
        self.sigma, self.contrast = float(sigma), float(contrast)

    def __call__(self, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
        x = images.to(torch.float32)
        if self.sigma > 0:
            x = _gaussian_blur(x, self.sigma)
        mean = x.mean(dim=(-1, -2), keepdim=True)
        return ((x - mean) * self.contrast + mean).clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        return f"BlurContrast(sigma={self.sigma}, contrast={self.contrast})"


class Rotation:
    """Rotate by ``degrees`` (counter-clockwise) plus a seeded uniform ``+-jitter``."""

    name = "rotation"

    def __init__(self, degrees: float = 45.0, jitter: float = 0.0) -> None:
        if jitter < 0:
            raise DataError(f"rotation jitter must be >= 0 degrees, got {jitter}")
        self.degrees, self.jitter = float(degrees), float(jitter)

    def __call__(self, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
        x = images.to(torch.float32)
        n = x.shape[0]
        angles = torch.full((n,), self.degrees)
        if self.jitter > 0:
            g = torch.Generator().manual_seed(int(seed))
            angles = angles + (torch.rand(n, generator=g) * 2 - 1) * self.jitter
        return rotate(x, angles)

    def __repr__(self) -> str:
        return f"Rotation(degrees={self.degrees}, jitter={self.jitter})"


class Inversion:
    """``1 - x``."""

    name = "inversion"

    def __call__(self, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return 1.0 - images.to(torch.float32)

    def __repr__(self) -> str:
        return "Inversion()"


SHIFTS = {cls.name: cls for cls in (BlurContrast, Rotation, Inversion)}


def shift_named(name: str, **options: float):
    """The shift called ``name`` (see `SHIFTS`) built with ``options``; one line when unknown."""
    if name not in SHIFTS:
        raise DataError(f"unknown shift {name!r}: choose one of {', '.join(SHIFTS)}")
    try:
        return SHIFTS[name](**options)
    except TypeError:
        raise DataError(f"shift {name} takes no option among {', '.join(options)}") from None


def shift_data(data: LabeledTensors, name: str, seed: int = 0, **options: float) -> LabeledTensors:
    """``data`` with shift ``name`` applied to its images; labels and classes unchanged."""
    from fewshot.data.tensors import LabeledTensors

    if data.data.ndim != 4:
        raise DataError(
            f"a shift applies to images (n, C, H, W), got items of shape {tuple(data.data.shape)}"
        )
    shift = shift_named(name, **options)
    info = {**data.info, "shift": repr(shift)}
    return LabeledTensors(
        shift(data.data, seed), data.labels.clone(), list(data.class_names), info, data.class_groups
    )


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """``(n, C, H, W)`` turned by ``degrees`` ``(n,)`` about the centre, 0 outside."""
    theta = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, kernel radius ``ceil(3 sigma)``, reflected borders."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    n, c, h, w = images.shape
    x = images.reshape(n * c, 1, h, w)
    pad = min(radius, h - 1, w - 1)
    if pad < radius:
        x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    else:
        x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


__all__ = ["SHIFTS", "BlurContrast", "Inversion", "Rotation", "rotate", "shift_data", "shift_named"]
