"""kill -9 at every crash point of `fewshot train` and `fewshot finetune`, then a rerun: the
files end exactly as an uninterrupted run leaves them (timing fields aside)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

DRIVER = Path(__file__).with_name("kill9_driver.py")
# timing, and where a run resumed from: the only fields a killed-and-rerun run may differ in
TIMING = {"seconds", "elapsed", "train_seconds", "resumed_from"}


def image_folder(root: Path, classes: int, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c:02d}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, (16, 16, 3), dtype=np.uint8)
            pixels[c % 4 * 4 : c % 4 * 4 + 4, c // 4 * 4 : c // 4 * 4 + 4] = 250
            Image.fromarray(pixels).save(root / f"class{c:02d}" / f"{i}.png")
    return root


def run_driver(workdir: Path, jobs: dict) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "spec.json"
    spec.write_text(json.dumps({"workdir": str(workdir), "jobs": jobs}))
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(spec)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def same_state(a: Path, b: Path) -> None:
    sa, sb = (without_timing(torch.load(p, weights_only=True)) for p in (a, b))
    for state in (sa, sb):  # train: the log rows, whose last column is seconds
        state["rows"] = [row[:-1] for row in state.get("rows", [])]
    flat_a, flat_b = _flatten(sa), _flatten(sb)
    assert flat_a.keys() == flat_b.keys()
    for key, value in flat_a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, flat_b[key]), key
        else:
            assert value == flat_b[key], key


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
        return out
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, torch.Tensor)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}{i}/"))
        return out
    return {prefix: value}


def assert_same_run(clean: Path, other: Path) -> None:
    names = sorted(p.name for p in clean.iterdir())
    assert sorted(p.name for p in other.iterdir()) == names  # nothing missing, no litter
    out = "m.safetensors"
    assert (other / out).read_bytes() == (clean / out).read_bytes()
    same_state(clean / f"{out}.state.pt", other / f"{out}.state.pt")
    summaries = [json.loads((d / f"{out}.run.json").read_text()) for d in (clean, other)]
    assert summaries[0]["status"] == "done"
    assert without_timing(summaries[1]) == without_timing(summaries[0])
    if (clean / f"{out}.log.csv").exists():
        rows = [list(csv.reader((d / f"{out}.log.csv").read_text().splitlines())) for d in (clean, other)]
        assert [r[:-1] for r in rows[1]] == [r[:-1] for r in rows[0]]  # the last column: seconds


def check_every_point(work: Path, report: dict, expected: set[str]) -> None:
    assert report["clean"] == 0
    assert expected <= set(report["names"]), report["names"]
    assert len(report["runs"]) == len(report["names"]) >= 6
    for n, (killed, rerun) in report["runs"].items():
        assert killed == -9, f"point {n} ({report['names'][int(n) - 1]}): not killed ({killed})"
        assert rerun == 0, f"rerun after point {n}: exit {rerun}"
        assert_same_run(work / "clean", work / f"kill-{n}")


TRAIN_POINTS = {"train.started", "train.checkpoint", "train.state", "train.log", "train.done"}
FINETUNE_POINTS = {"finetune.started", "finetune.checkpoint", "finetune.state", "finetune.done"}


@pytest.fixture(scope="module")
def library_runs(tmp_path_factory) -> tuple[Path, dict]:
    """`train` and `finetune` on tiny tensors, killed at every crash point (~10 s for both)."""
    work = tmp_path_factory.mktemp("kill9")
    return work, run_driver(work, {"train": {"library": "train"}, "finetune": {"library": "finetune"}})


def test_training_killed_at_every_point_then_rerun_ends_as_an_uninterrupted_run(library_runs):
    work, report = library_runs
    check_every_point(work / "train", report["train"], TRAIN_POINTS)
    assert report["train"]["names"].count("train.checkpoint") >= 2  # a best replaced mid-run


def test_finetuning_killed_at_every_point_then_rerun_ends_as_an_uninterrupted_run(library_runs):
    work, report = library_runs
    check_every_point(work / "finetune", report["finetune"], FINETUNE_POINTS)
    assert report["finetune"]["names"].count("finetune.checkpoint") >= 2


def test_a_kill_really_interrupts_the_run(library_runs):
    """The harness cannot pass vacuously: a run killed at a state write leaves no final result."""
    work, report = library_runs
    names = report["train"]["names"]
    n = names.index("train.state") + 1
    killed_dir = work / "train" / f"kill-{n}"
    summary = json.loads((killed_dir / "m.safetensors.run.json").read_text())
    assert summary["status"] == "done"  # after the rerun
    assert report["train"]["runs"][str(n)][0] == -9


@pytest.mark.slow  # two CLI commands killed at ~25 points: about a minute
def test_cli_commands_killed_at_every_point_then_rerun_end_as_uninterrupted_runs(tmp_path):
    imgs = image_folder(tmp_path / "imgs", classes=10, per_class=16)
    small = image_folder(tmp_path / "small", classes=3, per_class=6)
    train = ["train", "--dataset", str(imgs), "--image-size", "16", "--ways", "3", "--queries", "2"]
    train += ["--steps", "6", "--val-every", "2", "--val-episodes", "2", "--device", "cpu"]
    finetune = ["finetune", str(small), "--encoder", "conv4", "--image-size", "16", "--epochs", "4"]
    finetune += ["--batch-size", "4", "--device", "cpu"]
    jobs = {
        name: {"argv": [*argv, "--no-progress", "--out", "{out}"]}
        for name, argv in (("train", train), ("finetune", finetune))
    }
    report = run_driver(tmp_path / "work", jobs)
    check_every_point(tmp_path / "work" / "train", report["train"], TRAIN_POINTS)
    check_every_point(
        tmp_path / "work" / "finetune",
        report["finetune"],
        FINETUNE_POINTS - {"finetune.checkpoint"} | {"finetune.started"},
    )
