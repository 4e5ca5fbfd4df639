"""Omniglot protocols: alphabets as class groups, rotations on every split, any image size
(a tiny fake Omniglot; the alphabet counts also on the shared data when it is there)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from fake_omniglot import fake_images, write_zips

from fewshot.data.omniglot import (
    _class_list,
    character_names,
    load_omniglot,
    parse_split,
    read_alphabets,
    split_with_rotations,
)
from fewshot.data.omniglot_set import Omniglot
from fewshot.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VINYALS_TEST = ["Gamma/character01", "Gamma/character02", "Alpha/character01"]


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory) -> Path:
    """A fake data directory: 7 characters in 3 alphabets, and a Vinyals test split file."""
    data_dir = tmp_path_factory.mktemp("data")
    root = write_zips(data_dir / "omniglot", fake_images())
    (root / "splits" / "vinyals").mkdir(parents=True)
    lines = [f"{c}/rot{a:03d}" for c in VINYALS_TEST for a in (0, 90, 180, 270)]
    (root / "splits" / "vinyals" / "test.txt").write_text("\n".join(lines) + "\n")
    return data_dir


@pytest.mark.parametrize(
    ("split", "subset", "characters"),
    [("vinyals", "test", 3), ("lake", "background", 5), ("lake", "evaluation", 2), ("random", "train", 5)],
)
def test_rotations_on_every_split_and_the_defaults(fake_dir, split, subset, characters):
    default = load_omniglot(split, subset, fake_dir, image_size=8)
    rotated = load_omniglot(split, subset, fake_dir, image_size=8, rotations=True)
    plain = load_omniglot(f"{split}+no-rotations", subset, fake_dir, image_size=8)
    assert rotated.n_classes == 4 * characters and plain.n_classes == characters
    assert default.n_classes == (characters if split == "lake" else 4 * characters)  # Lake: none
    assert all(name.endswith("/rot000") for name in plain.class_names)
    assert (
        load_omniglot(f"{split}+rotations", subset, fake_dir, image_size=8).class_names == rotated.class_names
    )
    # a rotated class holds its character's drawings turned by its angle
    base = plain.data[plain.labels == 0]
    turned = rotated.data[rotated.labels == rotated.class_names.index(plain.class_names[0][:-3] + "090")]
    torch.testing.assert_close(turned, torch.rot90(base, 1, dims=(-2, -1)))


def test_every_class_is_grouped_by_its_alphabet_rotations_included(fake_dir):
    data = load_omniglot("lake+rotations", "background", fake_dir, image_size=8)
    assert data.class_groups == [name.split("/")[0] for name in data.class_names]
    assert Counter(data.class_groups) == {"Alpha": 12, "Beta_(Test)": 8}
    assert load_omniglot("vinyals", "test", fake_dir, image_size=8).class_groups[0] == "Gamma"


@pytest.mark.parametrize("size", [28, 56, 84, 105])
def test_any_image_size(fake_dir, size):
    data = load_omniglot("lake", "evaluation", fake_dir, image_size=size)
    assert data.data.shape == (2 * 20, 1, size, size) and data.info["image_size"] == size
    assert float(data.data.min()) >= 0 and float(data.data.max()) <= 1


@pytest.mark.parametrize(("name", "size"), [("conv4", 56), ("conv4", 105), ("resnet12", 84)])
def test_conv4_and_resnet12_take_other_image_sizes(name, size):
    from fewshot.encoders import create_encoder

    encoder = create_encoder(name, in_channels=1, image_size=size).eval()
    with torch.no_grad():
        out = encoder(torch.rand(2, 1, size, size))
    assert out.shape == (2, encoder.embed_dim)


def test_split_names_with_rotations():
    assert parse_split("lake+rotations") == ("lake", True)
    assert parse_split("vinyals+no-rotations") == ("vinyals", False)
    assert parse_split("random") == ("random", None)
    assert split_with_rotations("lake+rotations", False) == "lake+no-rotations"
    assert split_with_rotations("lake+rotations", None) == "lake"
    assert Omniglot().with_rotations(None, True) == "vinyals+rotations"
    assert Omniglot().train_val_subsets("vinyals+no-rotations", False) == ("train", "val")
    with pytest.raises(DataError, match=r"unknown Omniglot split 'lake\+rot'.*\+rotations"):
        load_omniglot("lake+rot", "evaluation")


def _shared() -> Path:
    for candidate in (os.environ.get("FEWSHOT_DATA_DIR"), SHARED):
        if candidate and (Path(candidate) / "omniglot" / "alphabets.tsv").exists():
            return Path(candidate) / "omniglot"
    pytest.skip("Omniglot is not available (set FEWSHOT_DATA_DIR)")


def test_shared_omniglot_has_50_alphabets_20_in_lakes_evaluation_set():
    root = _shared()
    alphabets = read_alphabets(root)
    names = character_names(alphabets)

    def groups(split, subset, rotations=None):
        classes = _class_list(split, subset, root, names, alphabets, 0, rotations)
        return Counter(c.partition("/")[0] for c, _ in classes)

    background, evaluation = groups("lake", "background"), groups("lake", "evaluation")
    assert len(background) == 30 and len(evaluation) == 20 and len(background | evaluation) == 50
    assert min(evaluation.values()) == 20  # 20-way within-alphabet episodes fit every alphabet
    assert groups("lake", "evaluation", rotations=True) == Counter({a: 4 * n for a, n in evaluation.items()})
