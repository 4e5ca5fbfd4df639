"""kill -9 at every crash point of `fewshot continual` (between and inside the writes after
each experience), then a rerun: the files end exactly as an uninterrupted run leaves them."""

from __future__ import annotations

import json

from test_continual_cli import square_folder
from test_train_kill9 import check_every_point, run_driver, without_timing

POINTS = {
    "continual.started",
    "continual.checkpoint",
    "continual.state",
    "continual.report",
    "continual.plot",
    "continual.done",
}


def test_continual_killed_at_every_point_then_rerun_ends_as_an_uninterrupted_run(tmp_path):
    data = square_folder(tmp_path / "imgs", classes=4, per_class=6)
    argv = ["continual", "--data", str(data), "--tasks", "2", "--image-size", "16", "--epochs", "1"]
    argv += ["--batch-size", "8", "--strategy", "replay", "--memory", "6", "--device", "cpu"]
    # every option that keeps state between experiences (distillation targets) or draws from
    # the run's generator (augmented copies, the heads' re-fit)
    argv += ["--augment", "shift-flip", "--distill", "0.3", "--rebalance", "2", "--replay-ratio", "2"]
    argv += ["--no-progress", "--out", "{out}"]
    report = run_driver(tmp_path / "work", {"continual": {"argv": argv}})["continual"]
    work = tmp_path / "work" / "continual"
    check_every_point(work, report, POINTS)
    assert report["names"].count("continual.state") == 2  # one commit after each experience
    clean = work / "clean"
    for n in report["runs"]:
        killed = work / f"kill-{n}"
        for name in ("m.safetensors.accuracy.json",):
            a, b = (json.loads((d / name).read_text()) for d in (clean, killed))
            assert without_timing(a) == without_timing(b)
        assert (killed / "m.safetensors.png").read_bytes() == (clean / "m.safetensors.png").read_bytes()
