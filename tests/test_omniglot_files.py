"""Omniglot from the official zips or unpacked folders (a tiny fake in tmp_path)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from fake_omniglot import SIZE, fake_images, write_folders, write_zips

from fewshot.data.omniglot import load_omniglot, load_raw_images, read_alphabets
from fewshot.data.omniglot_files import load_official, official_alphabets, write_alphabets_tsv
from fewshot.errors import DataError


@pytest.fixture(scope="module")
def images():
    return fake_images()


def test_load_official_from_zip_matches_the_pixels(tmp_path, images):
    root = write_zips(tmp_path, images)
    background = load_official(root, "images_background")
    evaluation = load_official(root, "images_evaluation")
    assert background.dtype == bool and background.shape == (5, 20, SIZE, SIZE)
    assert evaluation.shape == (2, 20, SIZE, SIZE)
    np.testing.assert_array_equal(np.concatenate([background, evaluation]), images)


def test_unpacked_folders_read_like_the_zips(tmp_path, images):
    folders = write_folders(tmp_path / "folders", images)
    nested = tmp_path / "nested"
    write_folders(nested / "images_background", images)  # unzipped into a folder of the same name
    (nested / "images_background" / "images_evaluation").rename(nested / "images_evaluation")
    for root in (folders, nested):
        np.testing.assert_array_equal(load_official(root, "images_background"), images[:5])
        np.testing.assert_array_equal(load_official(root, "images_evaluation"), images[5:])


def test_alphabets_are_derived_from_the_structure(tmp_path, images):
    root = write_zips(tmp_path, images)
    rows = official_alphabets(root)
    assert rows == [
        ("Alpha", 1, 3, "background"),
        ("Beta_(Test)", 4, 5, "background"),
        ("Gamma", 6, 7, "evaluation"),
    ]
    write_alphabets_tsv(rows, root / "alphabets.tsv")
    assert [(a.name, a.first_id, a.last_id, a.set) for a in read_alphabets(root)] == rows
    header = (root / "alphabets.tsv").read_text().splitlines()[0]
    assert header == "first_id\tlast_id\talphabet\tset"


def test_load_omniglot_from_zips_without_alphabets_tsv(tmp_path, images):
    root = write_zips(tmp_path / "omniglot", images)
    assert not (root / "alphabets.tsv").exists()
    data = load_omniglot("lake", "evaluation", data_dir=tmp_path, image_size=SIZE)
    assert data.class_names == ["Gamma/character01/rot000", "Gamma/character02/rot000"]
    expected = torch.from_numpy(~images[5:]).float().reshape(-1, 1, SIZE, SIZE)
    torch.testing.assert_close(data.data, expected)
    background = load_omniglot("lake", "background", data_dir=tmp_path, image_size=6, rotations=True)
    assert background.n_classes == 5 * 4 and background.data.shape == (5 * 4 * 20, 1, 6, 6)
    assert load_raw_images(root, 7).shape == (7, 20, SIZE, SIZE)


def test_mixed_npz_and_zip(tmp_path, images):
    root = write_zips(tmp_path, images)
    (root / "images_background.zip").unlink()
    np.savez(root / "images_background.npz", images=images[:5], labels=np.zeros((5, 20), dtype=np.int64))
    np.testing.assert_array_equal(load_raw_images(root, 7), images)


def test_missing_set_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="FEWSHOT_DATA_DIR") as err:
        load_official(tmp_path, "images_background")
    assert "fewshot data download omniglot" in str(err.value)


def test_incomplete_zip_is_refused(tmp_path, images):
    root = write_zips(tmp_path, images)
    path = root / "images_background.zip"
    with zipfile.ZipFile(path) as archive:
        kept = {n: archive.read(n) for n in archive.namelist() if not n.endswith("0002_07.png")}
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in kept.items():
            archive.writestr(name, payload)
    with pytest.raises(DataError, match="character 2 has drawers .*19 images"):
        load_official(root, "images_background")


def test_damaged_zip_and_image_are_refused(tmp_path, images):
    root = write_zips(tmp_path, images)
    path = root / "images_evaluation.zip"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable zip"):
        load_official(root, "images_evaluation")
    folders = write_folders(tmp_path / "f", images)
    next(folders.rglob("0003_01.png")).write_bytes(b"not a png")
    with pytest.raises(DataError, match="unreadable image"):
        load_official(folders, "images_background")


def test_character_number_must_follow_ids(tmp_path, images):
    root = write_folders(tmp_path, images)
    alpha = root / "images_background" / "Alpha"
    (alpha / "character03").rename(alpha / "character09")
    with pytest.raises(DataError, match="does not follow"):
        official_alphabets(root)
