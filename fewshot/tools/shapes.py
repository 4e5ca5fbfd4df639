"""Synthetic coloured shapes ("a red circle" on grey): the micro CLIP's training and test images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 30),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
}
SHAPES = ("circle", "square", "triangle", "cross")
CLASS_NAMES = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def draw_shape(rng: np.random.Generator, colour: str, shape: str, size: int = 64):
    """One RGB PIL image ``size x size``: a jittered `colour` `shape` on a noisy grey background."""
    from PIL import Image, ImageDraw

    grey = int(rng.integers(70, 190))
    background = np.clip(grey + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    fill = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOURS[colour])
    radius = size * rng.uniform(0.2, 0.38)
    cx, cy = (rng.uniform(radius + 1, size - radius - 1) for _ in range(2))
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=fill)
    elif shape == "cross":
        bar = radius / 3
        draw.rectangle([cx - radius, cy - bar, cx + radius, cy + bar], fill=fill)
        draw.rectangle([cx - bar, cy - radius, cx + bar, cy + radius], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return image


def _jpeg_roundtrip(image, quality: int = 90):
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_folder(
    dest: str | Path, per_class: int = 20, seed: int = 0, size: int = 64, ext: str = "jpg"
) -> Path:
    """Write ``dest/<colour shape>/<n>.<ext>`` for every class; returns `dest`."""
    rng = np.random.default_rng(seed)
    dest = Path(dest)
    for name in CLASS_NAMES:
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        colour, shape = name.split()
        for i in range(per_class):
            draw_shape(rng, colour, shape, size).save(folder / f"{i:05d}.{ext}", quality=90)
    return dest


def synthetic_batch(rng: np.random.Generator, per_class: int, preprocess, size: int = 64):
    """``(per_class * C, 3, H, W)`` preprocessed images and labels, class-major order."""
    import torch

    images, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        colour, shape = name.split()
        for _ in range(per_class):
            images.append(preprocess(_jpeg_roundtrip(draw_shape(rng, colour, shape, size))))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)
