"""`fewshot continual` end to end on a tiny image folder: the matrix printed and saved, the
plot, `--json`, a rerun resuming, and the final model used by `fewshot predict`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()


def square_folder(root: Path, classes: int = 6, per_class: int = 12) -> Path:
    """Class c: a bright square at its own place on a dark noisy 16x16 RGB image."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        r, col = divmod(c, 4)
        for i in range(per_class):
            pixels = rng.integers(0, 70, (16, 16, 3), dtype=np.uint8)
            pixels[1 + 5 * r : 5 + 5 * r, 1 + 4 * col : 4 + 4 * col] = 250
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def continual_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "continual", "--data", str(data), "--tasks", "3", "--image-size", "16", "--epochs", "3",
        "--lr", "0.05", "--batch-size", "8", "--test-fraction", "0.25", "--device", "cpu",
        "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("continual")
    data, out = square_folder(work / "imgs"), work / "m.safetensors"
    result = runner.invoke(app, continual_args(data, out, "--strategy", "replay", "--memory", "12", "--json"))
    assert result.exit_code == 0, result.output
    return work, data, out, json.loads(result.output.strip().splitlines()[-1])


def test_the_run_reports_and_saves_the_accuracy_matrix_and_plot(replay_run):
    work, _, out, report = replay_run
    R = report["accuracy_matrix"]
    assert len(R) == 3 and all(len(row) == 3 for row in R)
    assert R[0][1] == 0.0  # class-incremental: a later task's classes are not among the choices yet
    saved = json.loads(Path(report["report"]).read_text())
    assert saved["accuracy_matrix"] == R and saved["metrics"] == report["metrics"]
    assert report["metrics"]["average_accuracy"] >= 0.6
    assert Path(report["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(out.with_name(out.name + ".run.json").read_text())["status"] == "done"


def test_the_table_is_printed_and_a_rerun_resumes_the_finished_run(replay_run):
    work, data, out, report = replay_run
    before = out.read_bytes()
    result = runner.invoke(app, continual_args(data, out, "--strategy", "replay", "--memory", "12"))
    assert result.exit_code == 0, result.output
    assert "average accuracy" in result.output and "task 3" in result.output
    assert out.read_bytes() == before  # nothing retrained
    other = runner.invoke(app, continual_args(data, out, "--strategy", "replay", "--memory", "6"))
    assert other.exit_code == 2 and "--restart" in other.output


def test_the_final_model_is_usable_by_predict(replay_run):
    work, data, out, _ = replay_run
    result = runner.invoke(app, ["predict", "--checkpoint", str(out), "--query", str(data / "class4")])
    assert result.exit_code == 0, result.output
    rows = result.output.strip().splitlines()[1:]
    labels = [row.split(",")[1] for row in rows]
    assert len(labels) == 12 and labels.count("class4") >= 8


def test_task_incremental_multihead_and_domain_shifts_run(tmp_path):
    data = square_folder(tmp_path / "imgs", classes=4, per_class=8)
    args = continual_args(
        data, tmp_path / "t.safetensors", "--scenario", "task-il", "--strategy", "multihead"
    )
    args[args.index("--tasks") + 1] = "2"
    result = runner.invoke(app, [*args, "--no-plot", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["scenario"] == "task-il"
    args = continual_args(data, tmp_path / "d.safetensors", "--scenario", "domain-il", "--strategy", "ewc")
    args += ["--shifts", "none,inversion", "--no-plot", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert [e["name"] for e in report["experiences"]] == ["none", "inversion"]
    assert "forward_transfer" in report["metrics"]
