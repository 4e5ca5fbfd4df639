"""A tiny Omniglot in the official layout (zips or folders) for tests: no real data needed."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

# (set, alphabet, number of characters); global ids run 1..7 in this order.
ALPHABETS = [
    ("background", "Alpha", 3),
    ("background", "Beta_(Test)", 2),
    ("evaluation", "Gamma", 2),
]
SIZE = 12


def fake_images(seed: int = 0) -> np.ndarray:
    """bool ``(7, 20, SIZE, SIZE)``, True = paper, mostly paper with random ink strokes."""
    n = sum(count for _, _, count in ALPHABETS)
    return np.random.default_rng(seed).random((n, 20, SIZE, SIZE)) > 0.2


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def official_members(images: np.ndarray) -> dict[str, dict[str, bytes]]:
    """``{set_name: {member path: png bytes}}`` in the layout of the official zips."""
    members: dict[str, dict[str, bytes]] = {"images_background": {}, "images_evaluation": {}}
    char_id = 0
    for set_name, alphabet, count in ALPHABETS:
        name = f"images_{set_name}"
        for number in range(1, count + 1):
            char_id += 1
            for drawer in range(1, 21):
                path = f"{name}/{alphabet}/character{number:02d}/{char_id:04d}_{drawer:02d}.png"
                members[name][path] = _png(images[char_id - 1, drawer - 1])
    return members


def write_zips(root: Path, images: np.ndarray) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, files in official_members(images).items():
        with zipfile.ZipFile(root / f"{name}.zip", "w") as archive:
            for path, payload in files.items():
                archive.writestr(path, payload)
    return root


def write_folders(root: Path, images: np.ndarray) -> Path:
    """Unpacked as `unzip` does it: root/images_background/<Alphabet>/characterNN/*.png."""
    for files in official_members(images).values():
        for path, payload in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
    return root
