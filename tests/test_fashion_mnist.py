"""Fashion-MNIST: the shared copy of the official files (skipped when absent), a tiny fake
copy written here for the splits, `fewshot eval` through the CLI, and `fewshot data
download fashion-mnist` / `data info` with a fake opener (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from fewshot_cli.app import app
from typer.testing import CliRunner

import fewshot.data.fashion_mnist as fashion
from fewshot.data.loading import load_dataset, load_train_val
from fewshot.data.remote import RemoteFile
from fewshot.errors import DataError


def _shared_dir() -> Path | None:
    for candidate in (os.environ.get("FEWSHOT_DATA_DIR"), SHARED_DATA):
        if candidate and (Path(candidate) / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").is_file():
            return Path(candidate)
    return None


@pytest.fixture
def shared() -> Path:
    found = _shared_dir()
    if found is None:
        pytest.skip("Fashion-MNIST not found: set FEWSHOT_DATA_DIR to a folder holding fashion-mnist/")
    return found


def idx(values: np.ndarray) -> bytes:
    return (
        struct.pack(">HBB", 0, 8, values.ndim)
        + struct.pack(f">{values.ndim}I", *values.shape)
        + values.tobytes()
    )


def fake_files(per_class=(4, 2), seed=0) -> dict[str, bytes]:
    """Gzipped IDX files in the official names: 10 classes, per_class training/test images."""
    rng = np.random.default_rng(seed)
    files = {}
    for part, n in zip(fashion.PARTS, per_class, strict=True):
        labels = np.tile(np.arange(10, dtype=np.uint8), n)
        images = rng.integers(0, 256, size=(labels.size, 28, 28), dtype=np.uint8)
        files[f"{part}-images-idx3-ubyte.gz"] = gzip.compress(idx(images))
        files[f"{part}-labels-idx1-ubyte.gz"] = gzip.compress(idx(labels))
    return files


@pytest.fixture
def fake_dir(tmp_path) -> Path:
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    for name, content in fake_files().items():
        (root / name).write_bytes(content)
    return tmp_path


def test_official_test_images_from_the_shared_copy(shared):
    data = load_dataset("fashion-mnist", "test", data_dir=shared)
    assert data.data.shape == (10_000, 1, 28, 28) and data.data.dtype == torch.float32
    assert torch.bincount(data.labels).tolist() == [1000] * 10
    with gzip.open(shared / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz") as handle:
        first = handle.read(9)[8]
    assert int(data.labels[0]) == first == 9 and data.class_names[first] == "Ankle boot"
    assert data.class_names[:2] == ["T-shirt/top", "Trouser"] and len(data.class_names) == 10
    assert float(data.data.min()) == 0.0 and float(data.data.max()) == 1.0
    assert data.info == {"dataset": "fashion-mnist", "split": "official", "subset": "test", "image_size": 28}


def test_official_parts_and_resizing_on_a_fake_copy(fake_dir):
    train = load_dataset("fashion-mnist", "train", data_dir=fake_dir)
    test = load_dataset("fashion-mnist", "test", data_dir=fake_dir, image_size=14)
    assert (len(train), len(test)) == (40, 20) and train.n_classes == test.n_classes == 10
    assert test.data.shape == (20, 1, 14, 14) and 0 <= float(test.data.min()) <= float(test.data.max()) <= 1
    assert len(load_dataset("fashion-mnist", "all", data_dir=fake_dir)) == 60
    fit, val = load_train_val("fashion-mnist", data_dir=fake_dir)
    assert (len(fit), len(val)) == (30, 10) and torch.bincount(val.labels).tolist() == [1] * 10
    train_all, none = load_train_val("fashion-mnist", trainval=True, data_dir=fake_dir)
    assert none is None and len(train_all) == 40


def test_class_splits_are_disjoint_seeded_and_take_every_image(fake_dir):
    parts = {s: load_dataset("fashion-mnist", s, "classes", fake_dir) for s in ("train", "val", "test")}
    names = [set(p.class_names) for p in parts.values()]
    assert [len(n) for n in names] == [3, 2, 5] and len(set.union(*names)) == 10
    assert [len(p) for p in parts.values()] == [18, 12, 30]  # 6 images a class, both official parts
    same = load_dataset("fashion-mnist", "test", "classes", fake_dir)
    assert same.class_names == parts["test"].class_names
    other = {
        tuple(load_dataset("fashion-mnist", "test", "classes", fake_dir, seed=s).class_names)
        for s in range(5)
    }
    assert len(other) > 1


def test_missing_and_damaged_files_are_one_line(tmp_path, fake_dir):
    with pytest.raises(DataError, match="fewshot data download fashion-mnist"):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path / "empty")
    (fake_dir / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx(np.zeros(3, np.uint8)))
    )
    with pytest.raises(DataError, match="3 labels for the 20 images") as err:
        load_dataset("fashion-mnist", "test", data_dir=fake_dir)
    assert "\n" not in str(err.value)


def test_bad_split_and_subset_are_refused_before_reading(tmp_path):
    with pytest.raises(DataError, match="unknown split 'vinyals' of fashion-mnist: choose official"):
        load_dataset("fashion-mnist", "test", "vinyals", tmp_path)
    with pytest.raises(DataError, match="unknown subset 'background'"):
        load_dataset("fashion-mnist", "background", None, tmp_path)


def test_cli_eval_on_fashion_mnist(monkeypatch, shared):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(shared))
    result = CliRunner().invoke(
        app, ["eval", "--dataset", "fashion-mnist", "--encoder", "conv4", "--episodes", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 0.0 <= report["accuracy"] <= 1.0
    assert (report["dataset"], report["split"], report["subset"]) == ("fashion-mnist", "official", "test")


class _Response(io.BytesIO):
    def __init__(self, payload: bytes):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


@pytest.fixture
def served(monkeypatch):
    """The fake files behind fake URLs, with their MD5s; returns the files and the URLs fetched."""
    files, fetched = fake_files(), []
    specs = tuple(
        RemoteFile(f"https://example.invalid/{name}", name, hashlib.md5(content).hexdigest(), items=items)
        for (name, content), items in zip(files.items(), (40, 40, 20, 20), strict=True)
    )
    monkeypatch.setattr(fashion, "FILES", specs)

    def opener(url, timeout):
        fetched.append(url)
        return _Response(files[url.rsplit("/", 1)[1]])

    return opener, fetched


def test_download_verifies_writes_and_loads(tmp_path, served):
    opener, fetched = served
    messages = []
    root = fashion.FashionMNIST().download(tmp_path, progress=False, opener=opener, log=messages.append)
    assert root == tmp_path / "fashion-mnist" and len(fetched) == 4
    assert sorted(p.name for p in root.iterdir()) == sorted(s.target for s in fashion.FILES)
    assert len(load_dataset("fashion-mnist", "test", data_dir=tmp_path)) == 20
    fashion.FashionMNIST().download(tmp_path, progress=False, opener=opener, log=messages.append)
    assert len(fetched) == 4 and sum("present and valid" in m for m in messages) == 4


def test_download_refuses_a_wrong_item_count_and_leaves_nothing(tmp_path, served, monkeypatch):
    opener, _ = served
    wrong = tuple(RemoteFile(s.url, s.target, s.md5, items=7) for s in fashion.FILES)
    monkeypatch.setattr(fashion, "FILES", wrong)
    with pytest.raises(DataError, match="holds 40 items, expected 7"):
        fashion.FashionMNIST().download(tmp_path, progress=False, opener=opener)
    assert not (tmp_path / "fashion-mnist").exists()


def test_the_shared_copy_passes_the_official_checks(shared):
    """The Debian copy is re-compressed (other MD5s); its content checksums are the official data's."""
    from fewshot.data.remote import verify

    spec = fashion.FILES[3]
    verify(shared / "fashion-mnist" / spec.target, spec)
    with pytest.raises(DataError, match="checksum mismatch"):
        verify(shared / "fashion-mnist" / spec.target, RemoteFile(spec.url, spec.target, spec.md5))


def test_cli_download_offline_is_one_line(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(
        fashion.FashionMNIST, "download", _with_opener(fashion.FashionMNIST.download, offline)
    )
    result = CliRunner().invoke(
        app, ["data", "download", "fashion-mnist", "--data-dir", str(tmp_path), "--no-progress"]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot download")
    assert "fashion-mnist/ folder" in result.stderr and "FEWSHOT_DATA_DIR" in result.stderr
    assert not (tmp_path / "fashion-mnist").exists()


def _with_opener(download, opener):
    def patched(self, data_dir=None, **options):
        return download(self, data_dir, **{**options, "opener": opener})

    return patched


def test_cli_download_json_and_info(tmp_path, served, monkeypatch):
    opener, _ = served
    monkeypatch.setattr(fashion.FashionMNIST, "download", _with_opener(fashion.FashionMNIST.download, opener))
    empty = CliRunner().invoke(app, ["data", "info", "--data-dir", str(tmp_path)])
    assert "fashion-mnist: " in empty.stdout and "not downloaded" in empty.stdout
    assert "digits: bundled with scikit-learn" in empty.stdout
    result = CliRunner().invoke(
        app, ["data", "download", "fashion-mnist", "--data-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    folder = str(tmp_path / "fashion-mnist")
    assert json.loads(result.stdout) == {"dataset": "fashion-mnist", "folder": folder, "ready": True}
    info = CliRunner().invoke(app, ["data", "info", "fashion-mnist", "--data-dir", str(tmp_path), "--json"])
    document = json.loads(info.stdout)["datasets"]["fashion-mnist"]
    assert document["folder"] == folder and document["items"]["t10k-images-idx3-ubyte.gz"] == "20 items"
    text = CliRunner().invoke(app, ["data", "info", "--data-dir", str(tmp_path)]).stdout
    assert "train-labels-idx1-ubyte.gz  40 items" in text


def test_cli_download_of_a_bundled_set_says_so():
    result = CliRunner().invoke(app, ["data", "download", "digits"])
    assert result.exit_code == 0 and "bundled with scikit-learn" in result.stdout
