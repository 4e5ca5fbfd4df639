"""Image folders, embedding files, transforms and `load_dataset` on tiny generated data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot.data.embeddings import load_embeddings, save_embeddings
from fewshot.data.folders import load_image_folder, scan_image_folder, skipped_list_path, split_classes
from fewshot.data.loading import load_dataset
from fewshot.data.transforms import image_transform
from fewshot.errors import DataError


def _image(path, value, size=(10, 8), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, value, value)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    """root/<class>/ with 3 images each; nested classes; a bad file and a non-image file."""
    root = tmp_path / "pets"
    for i, name in enumerate(["cat", "dog", "birds/owl", "birds/crow", "fish"]):
        for j, ext in enumerate(["png", "jpg", "webp"]):
            _image(root / name / f"{j}.{ext}", 40 * i + j)
    _image(root / "birds" / "parrot.bmp", 200)  # "birds" itself holds an image: its own class
    (root / "fish" / "2.webp").unlink()
    _image(root / "fish" / "2.GIF", 162, fmt="GIF")
    _image(root / "fish" / "3.tiff", 163)
    (root / "fish" / "3.tiff").rename(root / "fish" / "3.TIF")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    _image(root / ".hidden" / "x.png", 1)
    _image(root / "stray.png", 1)  # directly in the root: no class
    return root


def test_scan_finds_nested_classes_and_reports_non_images(folder):
    scan = scan_image_folder(folder)
    assert list(scan.classes) == ["birds", "birds/crow", "birds/owl", "cat", "dog", "fish"]
    assert len(scan.classes["cat"]) == 4 and len(scan.classes["birds"]) == 1
    reasons = {p.name: r for p, r in scan.skipped}
    assert set(reasons) == {"notes.txt", "stray.png", "empty"}
    assert reasons["empty"] == "folder holds no image"


def test_load_all_skips_and_reports_bad_files(folder, caplog):
    with caplog.at_level("WARNING", logger="fewshot.data"):
        data = load_image_folder(folder, "all", image_size=16, workers=0)
    [record] = [r for r in caplog.records if r.name == "fewshot.data"]
    message = record.getMessage()
    assert message.startswith("skipped 4 file(s) or folder(s)") and "broken.png" in message
    assert "notes.txt" in message and "stray.png" in message and "listed in" not in message
    assert data.class_names == ["birds", "birds/crow", "birds/owl", "cat", "dog", "fish"]
    assert data.data.shape == (17, 3, 16, 16) and data.info["skipped"] == 4
    fish = data.data[data.labels == data.class_names.index("fish")]
    assert sorted(round(float(x.mean()) * 255) for x in fish) == [160, 161, 162, 163]  # png jpg gif tif
    assert torch.equal(torch.bincount(data.labels), torch.tensor([1, 3, 3, 3, 3, 4]))
    # pixel values survive: the cat class (i=0) has grey levels 0,1,2
    cat = data.data[data.labels == data.class_names.index("cat")]
    assert sorted(round(float(x.mean()) * 255) for x in cat) == [0, 1, 2]


def test_many_skipped_files_are_one_clean_line_and_a_full_list(tmp_path, caplog):
    root = tmp_path / "many"
    for i in range(3):
        _image(root / "cls" / f"{i}.png", 10 * i)
    for i in range(11):
        (root / "cls" / f"junk{i:02d}.png").write_bytes(b"not an image")
    with caplog.at_level("WARNING", logger="fewshot.data"):
        data = load_image_folder(root, "all", image_size=8, workers=0)
    assert data.info["skipped"] == 11
    [record] = [r for r in caplog.records if r.name == "fewshot.data"]
    message = record.getMessage()
    listing = skipped_list_path(root)
    assert "\n" not in message and "warnings.warn" not in message
    assert message.count("junk") == 5 and f"all 11 are listed in {listing}" in message
    listed = listing.read_text().splitlines()
    assert len(listed) == 11 and all("junk" in line and "not an image" in line for line in listed)
    listing.unlink()


def test_worker_processes_give_the_same_result(folder):
    a = load_image_folder(folder, "all", image_size=8, workers=0)
    b = load_image_folder(folder, "all", image_size=8, workers=2, batch_size=4)
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)


def test_class_split_is_disjoint_seeded_and_complete():
    names = [f"c{i:02d}" for i in range(20)]
    parts = split_classes(names, "0.6,0.2,0.2", seed=3)
    assert [len(parts[p]) for p in ("train", "val", "test")] == [12, 4, 4]
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == names
    assert parts == split_classes(list(reversed(names)), "0.6,0.2,0.2", seed=3)  # order-independent
    assert parts != split_classes(names, "0.6,0.2,0.2", seed=4)
    assert [len(v) for v in split_classes(names[:3], "0.9,0.05,0.05").values()] == [1, 1, 1]
    assert split_classes(names, "0.5,0.5")["val"] == []


@pytest.mark.parametrize("split", ["a,b,c", "1,-1,1", "0,0,0", "1,2,3,4", ""])
def test_bad_split_says_how_to_fix(split):
    with pytest.raises(DataError, match="give class ratios train,val,test such as 0.6,0.2,0.2"):
        split_classes(["a", "b", "c"], split)


def test_subsets_of_a_folder_are_class_disjoint(folder):
    parts = {
        s: load_image_folder(folder, s, "0.5,0.2,0.3", seed=1, image_size=8, workers=0)
        for s in ("train", "val", "test")
    }
    names = [set(p.class_names) for p in parts.values()]
    assert sum(len(n) for n in names) == 6 and len(set.union(*names)) == 6
    assert parts["val"].info["split"] == "0.5,0.2,0.3"


def test_folder_errors(tmp_path, caplog):
    with pytest.raises(DataError, match="not a folder"):
        scan_image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="one subfolder per class"):
        scan_image_folder(tmp_path / "empty")
    (tmp_path / "bad" / "cls").mkdir(parents=True)
    (tmp_path / "bad" / "cls" / "a.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="no readable image"):
        load_image_folder(tmp_path / "bad", "all", workers=0)
    assert "class has no readable image" in caplog.text
    with pytest.raises(DataError, match="choose one of train, val, test, all"):
        load_image_folder(tmp_path / "bad", "everything")


def test_transform_grayscale_invert_and_alpha():
    ink_on_paper = Image.new("L", (50, 30), 255)
    ink_on_paper.paste(0, (0, 0, 25, 30))  # left half dark ink
    x = image_transform(28, channels=1, invert=True)(ink_on_paper)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x[0, :, :10].min() > 0.99 and x[0, :, -10:].max() < 0.01  # ink = 1, paper = 0
    rgb = image_transform(8, channels=3)(Image.new("RGB", (4, 4), (255, 0, 0)))
    assert rgb.shape == (3, 8, 8) and torch.allclose(rgb[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    transparent = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert image_transform(4, channels=1)(transparent).min() == 1.0  # transparent = white paper
    with pytest.raises(DataError, match="channels"):
        image_transform(8, channels=2)


def test_embedding_file_round_trip(tmp_path):
    vectors = torch.randn(12, 5)
    labels = torch.arange(3).repeat_interleave(4)
    path = save_embeddings(tmp_path / "feats", vectors, labels, ["a", "b/c", "d"], {"encoder": "conv4"})
    assert path.name == "feats.npz" and not list(tmp_path.glob("*.tmp"))
    data = load_embeddings(path)
    assert torch.equal(data.data, vectors) and torch.equal(data.labels, labels)
    assert data.class_names == ["a", "b/c", "d"] and data.info["encoder"] == "conv4"
    assert data.info["dataset"] == "embeddings"


def test_embedding_file_refusals(tmp_path):
    with pytest.raises(DataError, match="labels must lie in 0..1"):
        save_embeddings(tmp_path / "x.npz", np.zeros((2, 3)), [0, 2], ["a", "b"])
    with pytest.raises(DataError, match="vectors must be"):
        save_embeddings(tmp_path / "x.npz", np.zeros(3), [0, 1, 1], ["a", "b"])
    path = save_embeddings(tmp_path / "ok.npz", np.zeros((2, 3)), [0, 1], ["a", "b"])
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable embedding file"):
        load_embeddings(path)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="lacks"):
        load_embeddings(tmp_path / "other.npz")
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        vectors=np.zeros((1, 2)),
        labels=np.zeros(1, dtype=np.int64),
        class_names=np.array([{"evil": 1}], dtype=object),
        meta=np.array("{}"),
    )
    with pytest.raises(DataError, match="not a readable embedding file"):
        load_embeddings(pickled)  # object arrays would need unpickling: refused
    with pytest.raises(DataError, match="not found"):
        load_embeddings(tmp_path / "nothing.npz")


def test_load_dataset_dispatch(tmp_path, folder):
    vectors = torch.randn(40, 4)
    path = save_embeddings(
        tmp_path / "e.npz", vectors, torch.arange(10).repeat_interleave(4), list("abcdefghij")
    )
    everything = load_dataset(str(path), "all")
    assert everything.data.shape == (40, 4)
    train = load_dataset(str(path), "train", "0.6,0.2,0.2", seed=0)
    test = load_dataset(str(path), "test", "0.6,0.2,0.2", seed=0)
    assert train.n_classes == 6 and test.n_classes == 2 and not set(train.class_names) & set(test.class_names)
    assert torch.equal(train.labels.unique(), torch.arange(6))
    gray = load_dataset(str(folder), "all", transform=image_transform(5, channels=1, invert=True))
    assert gray.data.shape[1:] == (1, 5, 5)
    with pytest.raises(DataError, match="neither a named data set .*omniglot.* nor"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="embedding file"):
        load_dataset(str(tmp_path / "x.csv"))
