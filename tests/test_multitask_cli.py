"""`fewshot multitask` end to end on two tiny image folders: the table, `--json`, the files
(one classifier per task and model, report, bar chart), `fewshot predict` on a task's model,
a rerun resuming, other settings refused; and kill -9 at every crash point, then a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fewshot_cli.app import app
from test_continual_cli import square_folder
from test_train_kill9 import run_driver, without_timing
from typer.testing import CliRunner

runner = CliRunner()


def folders(root: Path) -> tuple[Path, Path]:
    a = square_folder(root / "left", classes=3, per_class=8)
    b = square_folder(root / "right", classes=4, per_class=6)
    for c in range(3):  # the right task's class names differ from the left's
        (b / f"class{c}").rename(b / f"shape{c}")
    return a, b


def multitask_args(a: Path, b: Path, out: Path | str, *extra: str) -> list[str]:
    return [
        "multitask", "--data", f"{a},{b}", "--image-size", "16", "--steps", "6", "--eval-every", "3",
        "--baseline-steps", "3", "--batch-size", "4", "--lr", "0.05", "--sampling", "uniform",
        "--test-fraction", "0.25", "--device", "cpu", "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("multitask")
    a, b = folders(work)
    out = work / "mt"
    result = runner.invoke(app, multitask_args(a, b, out, "--weighting", "uncertainty", "--json"))
    assert result.exit_code == 0, result.output
    return work, a, b, out, json.loads(result.output.strip().splitlines()[-1])


def test_the_run_reports_both_models_per_task_and_writes_its_files(run):
    work, a, b, out, report = run
    assert [t["name"] for t in report["tasks"]] == [str(a), str(b)]
    assert [t["classes"] for t in report["tasks"]] == [3, 4]
    assert sum(t["batches"] for t in report["tasks"]) == 12  # 6 steps of 2 drawn tasks
    assert all(0 <= t["shared_accuracy"] <= 1 and 0 <= t["single_accuracy"] <= 1 for t in report["tasks"])
    assert report["tasks"][0]["weight"] != 1.0  # uncertainty weights were learned
    names = sorted(p.name for p in out.iterdir())
    for stem in ("shared-left", "shared-right", "single-left", "single-right"):
        assert f"{stem}.safetensors" in names
    assert json.loads((out / "report.json").read_text())["tasks"] == report["tasks"]
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "multitask.run.json").read_text())["status"] == "done"
    assert (out / "multitask.log.csv").read_text().startswith("model,step,task,loss,batches,weight,seconds")


def test_a_task_model_is_usable_by_predict(run):
    work, a, b, out, _ = run
    result = runner.invoke(
        app, ["predict", "--checkpoint", str(out / "shared-right.safetensors"), "--query", str(b / "class3")]
    )
    assert result.exit_code == 0, result.output
    labels = [row.split(",")[1] for row in result.output.strip().splitlines()[1:]]
    assert len(labels) == 6 and set(labels) <= {"shape0", "shape1", "shape2", "class3"}


def test_the_table_is_printed_and_a_rerun_resumes_the_finished_run(run):
    work, a, b, out, report = run
    before = (out / "shared-left.safetensors").read_bytes()
    result = runner.invoke(app, multitask_args(a, b, out, "--weighting", "uncertainty"))
    assert result.exit_code == 0, result.output
    assert "one model per task" in result.output and "shared" in result.output
    assert (out / "shared-left.safetensors").read_bytes() == before  # nothing retrained
    other = runner.invoke(app, multitask_args(a, b, out))
    assert other.exit_code == 2 and "--restart" in other.output


POINTS = {"multitask.started", "multitask.state", "multitask.log", "multitask.model", "multitask.report"}
POINTS |= {"multitask.plot", "multitask.done"}


@pytest.mark.slow  # ~20 killed children and reruns; over 10 minutes on a loaded 2-core machine
def test_multitask_killed_at_every_point_then_rerun_ends_as_an_uninterrupted_run(tmp_path):
    a, b = folders(tmp_path)
    argv = multitask_args(a, b, "{out}")
    argv[argv.index("--steps") + 1], argv[argv.index("--eval-every") + 1] = "4", "2"
    argv[argv.index("--baseline-steps") + 1] = "2"
    report = run_driver(tmp_path / "work", {"multitask": {"argv": argv}})["multitask"]
    assert report["clean"] == 0 and set(report["names"]) >= POINTS
    assert report["names"].count("multitask.state") == 4  # 2 rounds shared, 1 per task model
    work = tmp_path / "work" / "multitask"
    clean = work / "clean" / "m.safetensors"  # the driver's output name: here a folder
    for n, (killed, rerun) in report["runs"].items():
        assert killed == -9 and rerun == 0, (n, killed, rerun)
        other = work / f"kill-{n}" / "m.safetensors"
        assert sorted(p.name for p in other.iterdir()) == sorted(p.name for p in clean.iterdir())
        for name in ("shared-left.safetensors", "single-right.safetensors", "accuracy.png"):
            assert (other / name).read_bytes() == (clean / name).read_bytes(), (n, name)
        for name in ("report.json", "multitask.run.json"):
            mine, theirs = (json.loads((d / name).read_text()) for d in (other, clean))
            assert without_timing(mine) == without_timing(theirs), (n, name)
        rows = [
            [r.rsplit(",", 1)[0] for r in (d / "multitask.log.csv").read_text().splitlines()]
            for d in (other, clean)
        ]
        assert rows[0] == rows[1], n
