"""The rendered-digits data set: fonts, seeded jitter, splits, and that it is a named data set."""

from __future__ import annotations

import pytest
import torch

from fewshot.data.catalog import DATASETS
from fewshot.data.loading import load_dataset
from fewshot.data.rendered_digits import PER_CLASS, font_files, render_digits

pytest.importorskip("matplotlib", reason="the digits are drawn with matplotlib's fonts")


def test_registered_and_every_font_draws_every_digit():
    assert "rendered-digits" in DATASETS.names()
    fonts = font_files()
    assert len(fonts) == 21 and not any("Display" in p.name for p in fonts)
    images, labels = render_digits(PER_CLASS, 0)
    assert images.shape == (10 * PER_CLASS, 28, 28)
    assert (images.reshape(len(images), -1).max(1) > 100).all()  # no blank glyph
    assert torch.bincount(torch.from_numpy(labels)).tolist() == [PER_CLASS] * 10


def test_same_seed_same_images_other_seed_other_jitter():
    a, _ = render_digits(PER_CLASS, 0)
    b, _ = render_digits(PER_CLASS, 1)
    assert (render_digits.__wrapped__(PER_CLASS, 0)[0] == a).all()
    assert (a != b).any()


def test_item_split_is_disjoint_and_stratified():
    train = load_dataset("rendered-digits", "train")
    test = load_dataset("rendered-digits", "test")
    assert len(train) + len(test) == 10 * PER_CLASS
    assert torch.bincount(test.labels).tolist() == [round(0.25 * PER_CLASS)] * 10
    assert train.data.shape[1:] == (1, 28, 28) and float(train.data.max()) <= 1.0
    rows = {r.numpy().tobytes() for r in train.data.flatten(1)}
    assert not any(r.numpy().tobytes() in rows for r in test.data.flatten(1))
    assert train.class_names == [str(d) for d in range(10)]
