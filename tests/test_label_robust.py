"""`fewshot label` on hostile ground: a damaged journal, names that are not UTF-8, two runs at
once, destinations inside the input, broken links, unreadable folders, one class, bad outputs."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from fewshot.errors import FewshotError

pytest.importorskip("open_clip")

BAD = os.fsdecode(b"bad\xff.jpg")  # the bytes b"bad\xff.jpg": not UTF-8


@pytest.fixture(scope="module")
def classifier():
    from fewshot.encoders.clip import ClipEncoder
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    torch.manual_seed(0)
    encoder = ClipEncoder("micro-clip", pretrained=None, device="cpu")
    return ZeroShotClassifier(encoder, ["red circle", "blue square", "green cross"], "photo").fit()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    from fewshot.zeroshot.micro_clip import make_folder

    root = tmp_path_factory.mktemp("robust") / "imgs"
    make_folder(root, per_class=2, size=24)
    for folder in sorted(root.iterdir())[3:]:
        shutil.rmtree(folder)
    first = sorted(root.iterdir())[0]
    os.rename(first / "00000.jpg", first / BAD)
    return root


@pytest.fixture
def folder(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "imgs"))


def _label(folder, classifier, out, **kwargs):
    from fewshot.zeroshot.labelling import label_images

    return label_images(folder, classifier, out, top_k=2, batch_size=2, workers=0, progress=False, **kwargs)


def _csv_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        return list(csv.DictReader(handle))


def _interrupt_after(monkeypatch, batches: int) -> None:
    from fewshot.zeroshot.journal import Journal

    original, calls = Journal.append, {"n": 0}

    def append(self, rows, end):
        if calls["n"] == batches:
            raise KeyboardInterrupt
        calls["n"] += 1
        original(self, rows, end)

    monkeypatch.setattr(Journal, "append", append)


def test_a_name_that_is_not_utf8_is_labelled_and_kept_exactly(classifier, folder, tmp_path):
    summary = _label(folder, classifier, tmp_path / "labels.csv")
    assert summary.labelled == 6
    raw = (tmp_path / "labels.csv").read_bytes()
    assert os.fsencode(folder) + b"/" in raw and b"bad\xff.jpg," in raw  # the name's own bytes
    rows = _csv_rows(tmp_path / "labels.csv")
    assert sum(os.fsencode(r["path"]).endswith(b"/bad\xff.jpg") for r in rows) == 1
    assert all(Path(r["path"]).is_file() for r in rows)

    _label(folder, classifier, tmp_path / "labels.jsonl")
    text = (tmp_path / "labels.jsonl").read_bytes().decode("utf-8")  # JSON Lines stays UTF-8
    assert "\\udcff" in text
    paths = [json.loads(line)["path"] for line in text.splitlines()]
    assert sorted(paths) == sorted(r["path"] for r in rows)


def test_move_of_a_name_that_is_not_utf8_survives_an_interruption(
    classifier, template, tmp_path, monkeypatch
):
    def fresh():
        for path in (tmp_path / "imgs", tmp_path / "sorted"):
            shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(template, tmp_path / "imgs")

    out, dest = tmp_path / "labels.csv", tmp_path / "sorted"
    fresh()
    _label(tmp_path / "imgs", classifier, out, organize="move", dest=dest)
    reference = out.read_bytes()
    out.unlink()
    fresh()
    _interrupt_after(monkeypatch, 1)  # the first batch (with the bad name) is moved, then a crash
    with pytest.raises(KeyboardInterrupt):
        _label(tmp_path / "imgs", classifier, out, organize="move", dest=dest)
    monkeypatch.undo()
    summary = _label(tmp_path / "imgs", classifier, out, organize="move", dest=dest)
    assert summary.resumed == 2 and out.read_bytes() == reference
    moved = [r["organized_to"] for r in _csv_rows(out)]
    assert len(moved) == 6 and all(Path(m).is_file() for m in moved)
    assert sum(os.fsencode(m).endswith(b"/bad\xff.jpg") for m in moved) == 1
    assert not list((tmp_path / "imgs").rglob("*.jpg"))


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        ('"unterminated,quote\n', "last"),  # a complete garbage line appended
        ('{"row": {"path": "x"}}\n', "last"),  # JSON, but not a row
        ('{"end": {"failed": {"nope": "x"}}}\n', "last"),  # an end marker for no pending row
        ("garbage\n", "middle"),
    ],
)
def test_a_damaged_journal_is_refused_until_restart(classifier, folder, tmp_path, monkeypatch, damage, where):
    out = tmp_path / "labels.csv"
    _label(folder, classifier, tmp_path / "reference.csv")
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _label(folder, classifier, out)
    monkeypatch.undo()
    partial = out.with_name("labels.csv.partial")
    lines = partial.read_text().splitlines(keepends=True)
    lines.insert(len(lines) if where == "last" else 2, damage)
    partial.write_text("".join(lines))
    with pytest.raises(FewshotError, match=r"damaged at line \d+.*--restart"):
        _label(folder, classifier, out)
    assert not out.exists()
    _label(folder, classifier, out, restart=True)
    assert out.read_bytes() == (tmp_path / "reference.csv").read_bytes()


def test_a_second_run_on_the_same_out_is_refused(classifier, folder, tmp_path):
    from fewshot.locking import exclusive_lock

    out = tmp_path / "labels.csv"
    with exclusive_lock(out, "these labels"), pytest.raises(FewshotError, match="another fewshot run"):
        _label(folder, classifier, out)
    assert not out.exists() and not out.with_name("labels.csv.partial").exists()
    _label(folder, classifier, out)
    assert len(_csv_rows(out)) == 6


def test_cli_second_run_gets_one_line(folder, tmp_path):
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    from fewshot.locking import exclusive_lock

    out = tmp_path / "labels.csv"
    argv = [
        "label",
        str(folder),
        "-l",
        "a,b",
        "--model",
        "micro-clip",
        "--pretrained",
        "none",
        "--workers",
        "0",
    ]
    with exclusive_lock(out, "these labels"):
        result = CliRunner().invoke(app, [*argv, "--out", str(out)])
    assert result.exit_code == 2 and "another fewshot run is writing" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_dest_inside_the_input_is_refused(classifier, folder, tmp_path):
    for dest in (folder / "sorted", folder):
        with pytest.raises(FewshotError, match="--dest .* inside the input folder"):
            _label(folder, classifier, tmp_path / "labels.csv", organize="copy", dest=dest)
    with pytest.raises(FewshotError, match="label folders"):
        _label(folder / "blue square", classifier, tmp_path / "l.csv", organize="move", dest=folder)
    assert not (folder / "sorted").exists() and not list(tmp_path.glob("*.csv*"))
    # an input folder inside the destination, beside the label folders, is fine
    summary = _label(folder, classifier, tmp_path / "labels.csv", organize="copy", dest=tmp_path)
    assert summary.organized == 6


def test_broken_links_and_unreadable_folders_get_error_rows(classifier, folder, tmp_path, monkeypatch):
    (folder / "gone.jpg").symlink_to(folder / "nowhere.jpg")
    locked = folder / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root ignores chmod: refuse the listing instead
    summary = _label(folder, classifier, tmp_path / "labels.csv")
    errors = {
        Path(r["path"]).name: r["error"] for r in _csv_rows(tmp_path / "labels.csv") if r["status"] == "error"
    }
    assert "broken symbolic link" in errors["gone.jpg"]
    assert "folder not readable" in errors["locked"] and "Permission denied" in errors["locked"]
    assert summary.labelled == 6 and summary.failed == 2


def test_one_class_is_refused(classifier, folder, tmp_path):
    one = copy.copy(classifier)  # as from class embeddings saved with one class
    one.class_names, one.prototypes_ = ["red"], classifier.prototypes_[:1]
    with pytest.raises(FewshotError, match="at least two classes"):
        _label(folder, one, tmp_path / "labels.csv")
    assert not list(tmp_path.glob("labels*"))


def test_check_writable_refuses_before_anything_is_written(tmp_path):
    from fewshot.outputs import check_writable

    (tmp_path / "a-file").write_text("x")
    cases = {
        tmp_path: "is a folder",
        Path("/proc/version"): "cannot be written",
        tmp_path / "a-file" / "out.csv": "is not a folder",
        Path("/dev/null"): "not a regular file",
    }
    for path, message in cases.items():
        with pytest.raises(FewshotError, match=f"--out .*{message}"):
            check_writable(path, "--out")
    nested = tmp_path / "new" / "deeper" / "out.csv"
    assert check_writable(nested, "--out") == nested and not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
