"""`label_images` and `fewshot label`: rows, bad files, threshold, resume, organise, CLI."""

from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import pytest
import torch

from fewshot.errors import FewshotError

pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def classifier():
    from fewshot.encoders.clip import ClipEncoder
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    torch.manual_seed(0)
    encoder = ClipEncoder("micro-clip", pretrained=None, device="cpu")
    return ZeroShotClassifier(encoder, ["red circle", "blue square", "green cross"], "photo").fit()


def _huge_png(path: Path, side: int = 20000) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
    )


@pytest.fixture
def folder(tmp_path):
    from fewshot.zeroshot.micro_clip import make_folder

    root = make_folder(tmp_path / "imgs", per_class=2, size=40)
    for name in list((root).iterdir())[3:]:  # keep 3 classes x 2 images: a small, fast folder
        for f in name.iterdir():
            f.unlink()
        name.rmdir()
    good = sorted(root.rglob("*.jpg"))[0].read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "bad" / "empty.png").write_bytes(b"")
    (root / "bad" / "text.jpg").write_text("hello")
    _huge_png(root / "bad" / "huge.png")
    (root / "bad" / "notes.txt").write_text("not looked at: not an image extension")
    return root


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_image_gets_a_row_and_bad_files_are_reported(classifier, folder, tmp_path):
    from fewshot.zeroshot.labelling import label_images

    out = tmp_path / "labels.csv"
    summary = label_images(folder, classifier, out, top_k=2, batch_size=4, workers=0, progress=False)
    rows = _rows(out)
    assert len(rows) == 10 and summary.labelled == 6 and summary.failed == 4 and summary.total == 10
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["status"] == "error"}
    assert set(errors) == {"truncated.jpg", "empty.png", "text.jpg", "huge.png"}
    assert errors["empty.png"] == "empty file" and errors["text.jpg"] == "not an image"
    assert "too large" in errors["huge.png"] and "unreadable" in errors["truncated.jpg"]
    for row in (r for r in rows if r["status"] == "ok"):
        assert row["label"] == row["label_1"] and row["label_1"] in classifier.class_names
        p1, p2 = float(row["probability_1"]), float(row["probability_2"])
        assert 1.0 >= p1 >= p2 >= 0.0 and row["label_2"] != row["label_1"]
    assert not list(tmp_path.glob("*.partial*"))


def test_probabilities_match_the_classifier_and_threshold_gives_unknown(classifier, folder, tmp_path):
    from fewshot.data.images import read_image
    from fewshot.zeroshot.labelling import label_images

    out = tmp_path / "labels.jsonl"
    label_images(folder, classifier, out, top_k=3, threshold=0.99, workers=0, progress=False)
    rows = [r for r in _rows(out) if r["status"] == "ok"]
    x = torch.stack([classifier.encoder.preprocess(read_image(r["path"])) for r in rows])
    expected = classifier.predict_proba(x)
    for row, probs in zip(rows, expected, strict=True):
        assert [t["probability"] for t in row["top"]] == pytest.approx(
            probs.sort(descending=True).values.tolist(), abs=1e-5
        )
        assert row["label"] == ("unknown" if probs.max() < 0.99 else row["top"][0]["label"])
    assert any(r["label"] == "unknown" for r in rows)


def test_interrupted_run_resumes_to_the_same_output(classifier, folder, tmp_path, monkeypatch):
    from fewshot.zeroshot import labelling
    from fewshot.zeroshot.journal import Journal

    reference = tmp_path / "reference.csv"
    labelling.label_images(folder, classifier, reference, top_k=2, batch_size=3, workers=0, progress=False)

    out = tmp_path / "labels.csv"
    original = Journal.append
    calls = {"n": 0}

    def crash_after_two_batches(self, rows, end):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        original(self, rows, end)

    monkeypatch.setattr(Journal, "append", crash_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        labelling.label_images(folder, classifier, out, top_k=2, batch_size=3, workers=0, progress=False)
    assert not out.exists()
    partial = out.with_name("labels.csv.partial")
    lines = partial.read_text().splitlines()
    assert len(lines) == 1 + 2 * (3 + 1)  # settings, then two batches of 3 rows and an end marker
    with open(partial, "a") as handle:  # a line cut short by the crash
        handle.write('{"row": {"path": "imgs/half-writ')
    monkeypatch.setattr(Journal, "append", original)

    with pytest.raises(FewshotError, match="other settings"):
        labelling.label_images(folder, classifier, out, top_k=1, batch_size=3, workers=0, progress=False)
    summary = labelling.label_images(
        folder, classifier, out, top_k=2, batch_size=3, workers=0, progress=False
    )
    assert summary.resumed == 6 and summary.labelled + summary.failed == 4
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists()


def test_organize_move_never_overwrites_and_records_moves(classifier, folder, tmp_path):
    from fewshot.zeroshot.labelling import label_images

    dest = tmp_path / "sorted"
    before = {p.read_bytes() for p in folder.rglob("*.jpg") if "bad" not in p.parts}
    for label in classifier.class_names:  # an existing file with a name the moves will want
        (dest / label).mkdir(parents=True)
        (dest / label / "00000.jpg").write_bytes(b"keep me")
    out = tmp_path / "labels.csv"
    label_images(folder, classifier, out, organize="move", dest=dest, workers=2, progress=False)
    rows = _rows(out)
    moved = [r for r in rows if r["status"] == "ok"]
    assert len(moved) == 6
    for row in moved:
        assert not Path(row["path"]).exists() and Path(row["organized_to"]).is_file()
        assert Path(row["organized_to"]).parent.name == row["label"]
    assert {Path(r["organized_to"]).read_bytes() for r in moved} == before
    assert all((dest / label / "00000.jpg").read_bytes() == b"keep me" for label in classifier.class_names)
    assert (folder / "bad" / "empty.png").exists()  # unreadable files stay where they were


def test_label_folder_names_cannot_escape(tmp_path):
    from fewshot.zeroshot.organize import label_folders, place, safe_folder_name

    for evil in ["../evil", "..", ".", "/etc/passwd", "a/b\\c", "\x00\n", "  .hidden. "]:
        name = safe_folder_name(evil)
        assert (
            name not in ("", ".", "..") and "/" not in name and "\\" not in name and not name.startswith(".")
        )
    folders = label_folders(tmp_path / "d", ["../x", "/x", "x", "a/b", "a_b"])
    assert all(f.parent == (tmp_path / "d").resolve() for f in folders.values())
    assert len({f.name for f in folders.values()}) == 5
    src = tmp_path / "img.jpg"
    src.write_bytes(b"1")
    first = place(src, folders["x"], "copy")
    second = place(src, folders["x"], "link")
    assert first.name == "img.jpg" and second.name == "img-1.jpg" and second.is_symlink()
    assert second.resolve() == src.resolve() and src.exists()


def test_cli_label(folder, tmp_path):
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "out.jsonl"
    args = ["label", str(folder), "--model", "micro-clip", "--pretrained", "none", "--workers", "0"]
    result = runner.invoke(app, [*args, "--labels", "red circle,blue square", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["labelled"] == 6 and summary["failed"] == 4 and len(_rows(out)) == 10
    again = tmp_path / "again.jsonl"
    torch.manual_seed(123)  # the random weights do not depend on the caller's random state
    result = runner.invoke(app, [*args, "--labels", "red circle,blue square", "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == out.read_bytes()  # --pretrained none: the same weights every run
    assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 2  # no labels
    bad = runner.invoke(app, [*args, "--labels", "a,b", "--templates", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "templates" in bad.output
    bad = runner.invoke(app, [*args, "--labels", "a,b", "--organize", "move", "--out", str(out)])
    assert bad.exit_code == 2 and "--dest" in bad.output


def test_missing_input_is_an_error_and_leaves_nothing_behind(classifier, tmp_path):
    from fewshot.errors import DataError
    from fewshot.zeroshot.labelling import label_images

    with pytest.raises(DataError, match="does not exist"):
        label_images(tmp_path / "nope", classifier, tmp_path / "labels.csv", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FewshotError, match="probability"):
        label_images(tmp_path, classifier, tmp_path / "labels.csv", threshold=1.5, progress=False)
