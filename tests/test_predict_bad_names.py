"""`fewshot predict`: names that are not UTF-8, ``--json`` (valid JSON always), column numbering."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import pytest
import torch
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

BAD = os.fsdecode(b"bad\xff.png")


def _draw(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (28, 28), value).save(path)


@pytest.fixture
def folders(tmp_path):
    support, query = tmp_path / "support", tmp_path / "query"
    for k, name in enumerate(["dark", "light"]):
        for i in range(2):
            _draw(support / name / f"{i}.png", 40 + 160 * k + i)
    _draw(query / BAD, 45)
    _draw(query / "plain.png", 210)
    return support, query


def _predict(checkpoint, support, query, *extra):
    argv = ["predict", "-c", str(checkpoint), "-s", str(support), "-q", str(query), "--workers", "0"]
    return CliRunner().invoke(app, [*argv, "--device", "cpu", *extra])


def _rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8", "surrogateescape"))))


def test_predict_out_keeps_a_name_that_is_not_utf8(tiny_checkpoint, folders, tmp_path):
    support, query = folders
    out = tmp_path / "preds.csv"
    result = _predict(tiny_checkpoint, support, query, "--out", str(out))
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert b"/bad\xff.png," in raw  # the name's own bytes
    rows = _rows(raw)
    assert len(rows) == 2 and all(Path(r["path"]).is_file() for r in rows)

    printed = _predict(tiny_checkpoint, support, query)  # the CSV on stdout, same bytes
    assert printed.exit_code == 0, printed.output
    assert printed.stdout_bytes == raw


def test_predict_json_is_valid_json_with_the_same_predictions(tiny_checkpoint, folders, tmp_path):
    support, query = folders
    out = tmp_path / "preds.csv"
    result = _predict(tiny_checkpoint, support, query, "--json", "--top-k", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert document["classes"] == ["dark", "light"] and document["out"] == str(out)
    by_path = {p["path"]: p for p in document["predictions"]}
    assert sorted(by_path) == sorted(r["path"] for r in _rows(out.read_bytes()))
    assert any(os.fsencode(p).endswith(b"/bad\xff.png") for p in by_path)
    for row in _rows(out.read_bytes()):
        prediction = by_path[row["path"]]
        assert prediction["labels"] == [row["label_1"], row["label_2"]]
        assert prediction["probabilities"] == pytest.approx(
            [float(row["probability_1"]), float(row["probability_2"])], abs=1e-4
        )


def test_runners_up_are_numbered_as_in_label(tiny_checkpoint, folders):
    support, query = folders
    rows = _rows(_predict(tiny_checkpoint, support, query, "--top-k", "2").stdout_bytes)
    assert list(rows[0]) == [
        "path",
        "label",
        "probability",
        "label_1",
        "probability_1",
        "label_2",
        "probability_2",
    ]
    for row in rows:
        assert row["label_1"] == row["label"] and row["probability_1"] == row["probability"]
        assert row["label_2"] != row["label"] and float(row["probability_2"]) <= float(row["probability"])
    top1 = _rows(_predict(tiny_checkpoint, support, query).stdout_bytes)
    assert list(top1[0]) == ["path", "label", "probability"]


def test_predict_json_never_holds_nan(tiny_checkpoint, folders, monkeypatch):
    from fewshot.learners.protonet import ProtoNet

    def nan_proba(self, x):
        return torch.full((len(x), 2), math.nan)

    monkeypatch.setattr(ProtoNet, "predict_proba", nan_proba)
    support, query = folders
    result = _predict(tiny_checkpoint, support, query, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert all(p["probabilities"] == [None] for p in document["predictions"])
