"""A multi-task run inside `fewshot.runs.open_run`: resumable and locked, its files in one
folder (see `fewshot.multitask.run` for what is written and in which order)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fewshot.multitask.run import MultiTaskRun

RUN_NAME = "multitask"  # <out>/multitask.run.json, .state.pt, .log.csv
REPORT, PLOT = "report.json", "accuracy.png"


def outputs(out: Path) -> list[Path]:
    """The files a run writes at its end (besides ``multitask.*``), as globs' matches now."""
    found = [*out.glob("shared-*.safetensors"), *out.glob("single-*.safetensors")]
    return sorted(found) + [out / REPORT, out / PLOT]


def _clean(out: Path, restart: bool) -> None:
    """Remove what killed atomic writes left (and, to start over, the old run's results)."""
    for name in ("shared-*", "single-*", REPORT, PLOT):
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    if restart:
        for path in outputs(out):
            path.unlink(missing_ok=True)


def train_multitask(
    task: MultiTaskRun,
    out: Path | None,
    settings: dict[str, Any],
    resume: bool = True,
    progress: bool | None = None,
    plot: bool = True,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `task` to the end and return its report; with `out` (a folder), resumably, writing
    the checkpoints (with `metadata`), ``report.json`` and (``plot``) ``accuracy.png``."""
    from fewshot.run_loop import run_units

    if out is None:
        run_units(task, None, progress)
        return task.report()
    from fewshot.checkpoints import save_checkpoint
    from fewshot.faults import crash_point
    from fewshot.fileio import atomic_write_bytes
    from fewshot.runs import finish_run, open_run

    out.mkdir(parents=True, exist_ok=True)
    with open_run(out / RUN_NAME, settings, resume, "multitask", "this multi-task run") as files:
        _clean(out, restart=not resume)
        task.log_path = files.log
        run_units(task, files, progress)
        task.after_state()  # again: a run killed before its last log resumes with nothing to do
        report = task.report()
        for stem, classifier in task.models():
            save_checkpoint(out / f"{stem}.safetensors", classifier, _metadata(stem, classifier, metadata))
            crash_point("multitask.model")
        atomic_write_bytes(out / REPORT, (json.dumps(report, indent=2, allow_nan=False) + "\n").encode())
        crash_point("multitask.report")
        if plot:
            from fewshot.multitask.plot import accuracy_bars

            atomic_write_bytes(out / PLOT, accuracy_bars(report))
            crash_point("multitask.plot")
        finish_run(files, settings, "multitask", **{k: report[k] for k in ("shared", "single")})
    return report


def _metadata(stem: str, classifier: Any, extra: dict[str, Any] | None) -> dict[str, Any]:
    from fewshot.transfer.sources import classifier_metadata

    extra = dict(extra or {})
    meta = {**classifier_metadata(extra.pop("encoder_name", "conv4"), classifier), **extra}
    meta["multitask"] = {"model": stem}
    return meta


__all__ = ["PLOT", "REPORT", "RUN_NAME", "outputs", "train_multitask"]
