"""Omniglot protocols on the real data (skipped when the shared copy is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fewshot.data.omniglot import _class_list, character_names, load_omniglot, read_alphabets
from fewshot.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_dir() -> Path:
    for candidate in (os.environ.get("FEWSHOT_DATA_DIR"), SHARED):
        if candidate and (Path(candidate) / "omniglot" / "alphabets.tsv").exists():
            return Path(candidate)
    pytest.skip("Omniglot is not available (set FEWSHOT_DATA_DIR)")


@pytest.fixture(scope="module")
def root() -> Path:
    return _data_dir() / "omniglot"


@pytest.fixture(scope="module")
def names(root):
    return character_names(read_alphabets(root))


def _classes(root, names, split, subset, seed=0, rotations=None):
    return _class_list(split, subset, root, names, read_alphabets(root), seed, rotations)


@pytest.fixture(scope="module")
def vinyals_test(root):
    return load_omniglot("vinyals", "test", root.parent)


def test_alphabets_cover_all_characters(root, names):
    alphabets = read_alphabets(root)
    assert len(alphabets) == 50 and len(names) == 1623
    assert names[708] == "Alphabet_of_the_Magi/character01"  # id 709, as the data README says
    assert sum(a.last_id - a.first_id + 1 for a in alphabets if a.set == "background") == 964


@pytest.mark.parametrize(
    ("split", "subset", "n_classes"),
    [
        ("vinyals", "train", 4112),
        ("vinyals", "val", 688),
        ("vinyals", "trainval", 4800),
        ("vinyals", "test", 1692),
        ("lake", "background", 964),
        ("lake", "evaluation", 659),
        ("random", "train", 4800),
        ("random", "test", 1692),
    ],
)
def test_class_counts(root, names, split, subset, n_classes):
    classes = _classes(root, names, split, subset)
    assert len(classes) == n_classes == len(set(classes))


def test_vinyals_parts_are_disjoint_and_trainval_is_train_plus_val(root, names):
    parts = {s: {c for c, _ in _classes(root, names, "vinyals", s)} for s in ("train", "val", "test")}
    assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
    assert not parts["val"] & parts["test"]
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (1028, 172, 423)
    trainval = set(_classes(root, names, "vinyals", "trainval"))
    assert trainval == set(_classes(root, names, "vinyals", "train")) | set(
        _classes(root, names, "vinyals", "val")
    )


def test_random_split_is_seeded_and_disjoint(root, names):
    train = {c for c, _ in _classes(root, names, "random", "train", seed=0)}
    test = {c for c, _ in _classes(root, names, "random", "test", seed=0)}
    assert len(train) == 1200 and len(test) == 423 and not train & test and len(train | test) == 1623
    assert train == {c for c, _ in _classes(root, names, "random", "train", seed=0)}
    assert train != {c for c, _ in _classes(root, names, "random", "train", seed=1)}
    assert len(_classes(root, names, "random", "test", rotations=False)) == 423


def test_lake_sets_split_by_alphabet(root, names):
    background = {c.split("/")[0] for c, _ in _classes(root, names, "lake", "background")}
    evaluation = {c.split("/")[0] for c, _ in _classes(root, names, "lake", "evaluation")}
    assert len(background) == 30 and len(evaluation) == 20 and not background & evaluation
    assert len(_classes(root, names, "lake", "evaluation", rotations=True)) == 659 * 4


def test_vinyals_test_images(vinyals_test):
    data = vinyals_test
    assert data.data.shape == (1692 * 20, 1, 28, 28) and data.data.dtype == torch.float32
    assert data.n_classes == 1692 and torch.equal(data.labels, torch.arange(1692).repeat_interleave(20))
    assert data.class_names[0].endswith("/rot000")
    # ink = 1 on paper = 0: strokes cover a small part of every image
    assert data.data.min() >= 0.0 and data.data.max() <= 1.0
    per_image_ink = data.data.mean(dim=(1, 2, 3))
    assert (per_image_ink > 0).all() and (per_image_ink < 0.5).all() and per_image_ink.mean() < 0.2
    assert data.info == {"dataset": "omniglot", "split": "vinyals", "subset": "test", "image_size": 28}


def test_rotated_classes_are_rotated_copies(vinyals_test):
    data = vinyals_test
    index = {name: i for i, name in enumerate(data.class_names)}
    character = data.class_names[0].rsplit("/", 1)[0]
    upright = data.data[data.labels == index[f"{character}/rot000"]]
    for angle in (90, 180, 270):
        rotated = data.data[data.labels == index[f"{character}/rot{angle:03d}"]]
        # counter-clockwise, as PIL's Image.rotate(angle) in the original Prototypical Networks code
        assert torch.equal(rotated, torch.rot90(upright, k=angle // 90, dims=(-2, -1)))
        assert not torch.equal(rotated, upright)


def test_lake_evaluation_has_no_rotations_by_default(root):
    data = load_omniglot("lake", "evaluation", root.parent, image_size=14)
    assert data.n_classes == 659 and data.data.shape == (659 * 20, 1, 14, 14)
    assert all(name.endswith("/rot000") for name in data.class_names)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "nope"}, "choose one of vinyals, lake, random"),
        ({"split": "lake", "subset": "val"}, "choose one of background, evaluation"),
        ({"image_size": 0}, "positive whole number"),
    ],
)
def test_bad_arguments(root, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_omniglot(data_dir=root.parent, **kwargs)


def test_missing_data_dir_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="fewshot data download omniglot.*FEWSHOT_DATA_DIR"):
        load_omniglot("vinyals", "test", tmp_path)
