"""The shift transforms of `fewshot.data.shifts`: shape and range kept, seeded, what each does."""

from __future__ import annotations

import pytest
import torch

from fewshot.data.shifts import SHIFTS, Rotation, rotate, shift_data, shift_named
from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError


def _images(n: int = 6, side: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, side, side, generator=g)


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_every_shift_keeps_shape_and_range_and_changes_the_images(name):
    x = _images()
    y = shift_named(name)(x, seed=3)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.allclose(x, y)


def test_inversion_is_one_minus_x_and_blur_contrast_flattens():
    x = _images()
    assert torch.equal(shift_named("inversion")(x), 1 - x)
    y = shift_named("blur-contrast", sigma=1.0, contrast=0.5)(x)
    assert float(y.std()) < 0.5 * float(x.std())  # blur and contrast both shrink the spread
    assert torch.allclose(y.mean(dim=(-1, -2)), x.mean(dim=(-1, -2)), atol=0.05)


def test_rotation_by_90_degrees_turns_the_image():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 1, 4] = 1.0  # a dot above the centre
    y = rotate(x, torch.tensor([90.0]))
    assert y[0, 0].argmax() != x[0, 0].argmax()
    assert torch.allclose(rotate(x, torch.tensor([0.0])), x, atol=1e-6)


def test_rotation_jitter_is_seeded():
    x = _images()
    shift = Rotation(30.0, jitter=10.0)
    assert torch.equal(shift(x, seed=1), shift(x, seed=1))
    assert not torch.equal(shift(x, seed=1), shift(x, seed=2))


def test_shift_data_keeps_labels_and_records_the_shift():
    data = LabeledTensors(_images(), torch.arange(6) % 2, ["a", "b"], {"dataset": "toy"})
    shifted = shift_data(data, "rotation", seed=0, degrees=45.0)
    assert torch.equal(shifted.labels, data.labels) and shifted.class_names == ["a", "b"]
    assert shifted.info["shift"].startswith("Rotation(degrees=45.0")


def test_unknown_shift_and_option_are_one_line():
    with pytest.raises(DataError, match="unknown shift 'warp'"):
        shift_named("warp")
    with pytest.raises(DataError, match="takes no option"):
        shift_named("inversion", degrees=3)
