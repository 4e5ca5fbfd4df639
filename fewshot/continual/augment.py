"""Random augmentation of replayed images (Buzzega et al. 2020, "Rethinking Experience Replay:
a Bag of Tricks", independent buffer augmentation): a model that sees the same few hundred
memory items thousands of times learns them by heart; shifted (and mirrored) copies keep it
learning the classes instead.

One gather for the whole batch, drawn from the strategy's generator so the same seed gives
the same copies."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from fewshot.errors import FewshotError

AUGMENTS = ("none", "shift", "shift-flip")
Augment = Literal["none", "shift", "shift-flip"]


def check_augment(name: str) -> None:
    if name not in AUGMENTS:
        raise FewshotError(f"--augment must be one of {', '.join(AUGMENTS)}, got {name!r}")


def augment_images(x: torch.Tensor, how: Augment, generator: torch.Generator) -> torch.Tensor:
    """``x (n, c, h, w)`` -> the same shape: each image shifted by up to ``max(1, side // 14)``
    pixels in each direction (zero-filled: 2 px at 28 px), and for ``shift-flip`` mirrored
    left-right with probability 1/2. ``none`` and non-image items return `x` itself."""
    if how == "none" or x.ndim != 4:
        return x
    n, c, h, w = x.shape
    s = max(1, min(h, w) // 14)
    padded = F.pad(x, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n, 1), generator=generator)
    cols = torch.arange(w).expand(n, w)
    if how == "shift-flip":
        flip = torch.rand(n, 1, generator=generator) < 0.5
        cols = torch.where(flip, cols.flip(-1), cols)
    rows = (dy + torch.arange(h)).to(x.device)
    cols = (dx + cols).to(x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


__all__ = ["AUGMENTS", "Augment", "augment_images", "check_augment"]
