"""Preprocessing records: user images are prepared exactly as the training data were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot.preprocessing import Preprocessing, preprocessing_from_data


def test_omniglot_png_matches_the_loader(omniglot_dir):
    from fewshot.data.omniglot import _to_ink_tensor

    with np.load(omniglot_dir / "omniglot" / "images_evaluation.npz", allow_pickle=False) as archive:
        raw = archive["images"][5, 3]  # (105, 105) bool, True = paper
    png = Image.fromarray(np.where(raw, 255, 0).astype(np.uint8))  # as the original zips draw it
    expected = _to_ink_tensor(raw[None], 28)[0]  # what training saw: (1, 28, 28), ink = 1
    got = Preprocessing(28, channels=1, invert=True).transform()(png)
    assert got.shape == (1, 28, 28)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_rgb_resize_and_normalise():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    prep = Preprocessing(16, channels=3, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = prep.transform()(image)
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x[0], torch.ones(16, 16))
    torch.testing.assert_close(x[1], -torch.ones(16, 16))


def test_grey_conversion_and_inversion():
    image = Image.new("RGB", (28, 28), (255, 255, 255))
    assert Preprocessing(28, 1, invert=True).transform()(image).abs().max() == 0  # white paper -> 0
    assert Preprocessing(28, 1, invert=False).transform()(image).min() == 1


def test_round_trip_and_validation():
    prep = Preprocessing(84, 3, False, (0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    assert Preprocessing.from_dict(prep.to_dict()) == prep
    with pytest.raises(ValueError):
        Preprocessing(28, channels=2)


def test_from_data(blobs):
    from conftest import synthetic_images

    assert preprocessing_from_data(blobs) is None  # vectors, not images
    data = synthetic_images(3, 2)
    assert preprocessing_from_data(data) == Preprocessing(28, 1, False)
    data.info["dataset"] = "omniglot"
    assert preprocessing_from_data(data).invert
    data.info["dataset"] = "folder"
    assert preprocessing_from_data(data).resize == "pil"
    data.info["preprocessing"] = {"image_size": 32, "channels": 3}
    assert preprocessing_from_data(data) == Preprocessing(32, 3, False)


def test_pil_resize_matches_the_folder_loader():
    from fewshot.data.transforms import image_transform

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    expected = image_transform(24, channels=3, invert=False)(image)
    got = Preprocessing(24, channels=3, resize="pil").transform()(image)
    torch.testing.assert_close(got, expected)
