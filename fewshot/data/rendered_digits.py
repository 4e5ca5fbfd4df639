"""Digits 0-9 rendered from TrueType fonts with random affine jitter: a synthetic source domain.

In the spirit of Ganin and Lempitsky's SynNumbers (digits rendered from Windows fonts, the
source for SVHN), `RenderedDigits` draws every digit in every font that ships with
matplotlib (the DejaVu, STIX General and Computer Modern families that hold the ten digits;
symbol-only fonts are left out), white ink on black as the UCI digits are, with a seeded random
stroke weight, rotation, shear, scale and shift. Fonts installed on the system are not used, so
the data set is the same on every machine with the same matplotlib.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from fewshot.data.catalog import DATASETS
from fewshot.data.labelled import ArraySet, stratified_pick
from fewshot.errors import DataError

TEST_FRACTION = 0.25
PER_CLASS = 210  # 21 fonts x 10 jittered copies
CANVAS = 64  # drawn at this side, then reduced to 28 with antialiasing
#: matplotlib's fonts that hold the ten digits as ordinary glyphs
FONT_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10")


def font_files() -> list[Path]:
    """The TrueType files used, sorted by name (matplotlib's ``fonts/ttf`` folder)."""
    try:
        import matplotlib
    except ImportError as err:
        raise DataError("rendered-digits draws with matplotlib's fonts: pip install matplotlib") from err
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = sorted(
        p for p in folder.glob("*.ttf") if p.name.startswith(FONT_PREFIXES) and "Display" not in p.name
    )  # the Display faces hold no digits
    if not files:
        raise DataError(f"no digit font found in {folder}")
    return files


def _draw(digit: int, font, rng: np.random.Generator) -> np.ndarray:
    """One digit as ``(28, 28)`` uint8, ink 255 on 0, with random stroke and affine jitter."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(canvas)
    stroke = int(rng.integers(0, 4))
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke)
    xy = ((CANVAS - (right - left)) / 2 - left, (CANVAS - (bottom - top)) / 2 - top)
    draw.text(xy, str(digit), fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    height = max(bottom - top, right - left, 1)
    scale = rng.uniform(0.8, 1.0) * 24.0 / height * (CANVAS / 28)  # glyph ~19-24 px of 28
    angle = math.radians(rng.uniform(-12, 12))
    shear = rng.uniform(-0.2, 0.2)
    shift = rng.uniform(-2, 2, size=2) * (CANVAS / 28)
    # output pixel p -> input pixel: centre, inverse of rotation*shear*scale, back and shift
    a = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    a = a @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    inv = np.linalg.inv(a)
    centre = np.array([CANVAS / 2, CANVAS / 2])
    offset = centre - inv @ (centre + shift)
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    warped = canvas.transform(canvas.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    small = warped.resize((28, 28), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(small, dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def render_digits(per_class: int = PER_CLASS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(images (10*per_class, 28, 28) float32 in 0..255, labels int64)``, the fonts taken in
    turn; the same ``seed`` gives the same images."""
    from PIL import ImageFont

    if per_class < 1:
        raise DataError(f"per_class must be at least 1, got {per_class}")
    fonts = [ImageFont.truetype(str(path), 44) for path in font_files()]
    rng = np.random.default_rng([seed, 16])
    images = np.empty((10 * per_class, 28, 28), dtype=np.float32)
    labels = np.repeat(np.arange(10, dtype=np.int64), per_class)
    for i, digit in enumerate(labels):
        images[i] = _draw(int(digit), fonts[(i % per_class) % len(fonts)], rng)
    images.setflags(write=False)
    return images, labels


@DATASETS.register("rendered-digits")
class RenderedDigits(ArraySet):
    """Digits 0-9 rendered from matplotlib's TrueType fonts (21 faces: DejaVu Sans/Serif/Mono,
    STIX General, Computer Modern; every weight and slant), 210 images per digit with a seeded
    random stroke weight (0-3 px at 44 pt), rotation (+-12 degrees), shear (+-0.2), size and
    shift: the synthetic source for the rendered -> handwritten (`digits`) domain shift.

    Splits as for `digits`: ``items`` (default; a seeded stratified quarter of each digit is
    ``test``, the rest ``train``, with ``fit``/``val``), ``classes`` or ratios. Items float32
    ``(n, 1, 28, 28)`` in ``[0, 1]``, white ink on black. ``--seed`` draws both the jitter and
    the split. Nothing to download.
    """

    name = title = "rendered-digits"
    class_names = tuple(str(d) for d in range(10))
    item_split = default_split = "items"
    image_size = native_size = 28
    pixel_scale = 255.0
    val_fraction = 0.2
    downloads = False
    source = "rendered from matplotlib's bundled TrueType fonts"

    def arrays(self, data_dir, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images, labels = render_digits(PER_CLASS, seed)
        in_test = stratified_pick(labels, np.ones(labels.shape[0], dtype=bool), TEST_FRACTION, seed)
        return images, labels, ~in_test
