"""`fewshot multitask` as a library call: several labelled data sets -> one shared encoder with
a head per task, trained on all of them at once, beside one model per task (the baseline) ->
per-task accuracy and training time, a report, a bar chart and one classifier per task for
`fewshot predict`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class MultiTaskRequest:
    """The settings of one multi-task run (the options of `fewshot multitask`)."""

    data: str  # "fashion-mnist,digits,/path/to/folder": one task each
    encoder: str | None = "conv4"
    steps: int = 500
    batch_size: int = 32
    lr: float = 0.01
    optimizer: str = "sgd"
    sampling: str = "proportional"
    weighting: str = "fixed"
    weights: str | None = None  # "1,0.5": fixed weights, one per task
    tasks_per_step: int | None = None
    eval_every: int = 100
    baseline_steps: int | None = None  # one model per task, steps each (None: --steps; 0: none)
    max_classes: int | None = None
    max_per_class: int | None = None
    max_test_per_class: int | None = None
    test_fraction: float = 0.2  # sets without a test part: items held out per class
    subset: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    out: Path = Path("runs/multitask")
    plot: bool = True
    resume: bool = True
    progress: bool | None = None


def parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise FewshotError(f"--weights must be numbers separated by commas, got {text!r}") from None


def settings_of(r: MultiTaskRequest, device: str = "cpu"):
    from fewshot.multitask.training import MultiTaskSettings

    return MultiTaskSettings(
        r.steps, r.batch_size, r.lr, r.optimizer, r.sampling, r.weighting, parse_weights(r.weights),
        r.tasks_per_step, r.eval_every, device,
    )  # fmt: skip


def check_request(r: MultiTaskRequest) -> None:
    """Every check that needs no data, before anything is loaded or written."""
    from fewshot.workflows.index import check_writable_dir
    from fewshot.workflows.multitask_data import data_names

    names = data_names(r.data)
    settings_of(r).check(len(names))
    if r.baseline_steps is not None and r.baseline_steps < 0:
        raise FewshotError(f"--baseline-steps must be >= 0 (0: no baseline), got {r.baseline_steps}")
    if not 0 < r.test_fraction < 1:
        raise FewshotError(f"--test-fraction must be between 0 and 1, got {r.test_fraction}")
    if r.max_classes is not None and r.max_classes < 2:
        raise FewshotError(f"--max-classes must be at least 2, got {r.max_classes}")
    check_writable_dir(r.out, "--out")


def run_multitask(request: MultiTaskRequest) -> dict[str, Any]:
    """Check, build the encoder, load the tasks, train the shared model and the baseline
    (resumable in the folder ``request.out``) and return the report with the files written."""
    from fewshot.device import resolve_device
    from fewshot.multitask.run import MultiTaskRun
    from fewshot.multitask.saving import PLOT, REPORT, outputs, train_multitask
    from fewshot.workflows.multitask_data import load_tasks

    r = request
    check_request(r)
    device = resolve_device(r.device)
    source, tasks, digests = load_tasks(r, device)
    run = MultiTaskRun(source.encoder, tasks, settings_of(r, str(device)), r.seed, r.baseline_steps)
    out = Path(r.out).expanduser()
    settings = _run_settings(r, source, digests)
    report = train_multitask(run, out, settings, r.resume, r.progress, r.plot, _metadata(source))
    files = [str(p) for p in outputs(out) if p.name not in (REPORT, PLOT) or p.exists()]
    return {
        **report,
        "encoder": source.description,
        "out": str(out),
        "report": str(out / REPORT),
        "files": files,
    }


def _metadata(source) -> dict[str, Any]:
    from fewshot.transfer.sources import preprocessing_record, weights_provenance

    return {
        "encoder_name": source.name,
        "preprocessing": preprocessing_record(source),
        "source_encoder": source.description,
        **weights_provenance(source.encoder),
    }


def _run_settings(r: MultiTaskRequest, source, digests: dict) -> dict[str, Any]:
    from fewshot.checkpoints import weights_digest
    from fewshot.runs import json_safe

    skip = {"out", "resume", "progress", "device", "data_dir", "plot"}
    request = {f.name: getattr(r, f.name) for f in fields(r) if f.name not in skip}
    return json_safe(
        {
            "multitask": request,
            "encoder": source.name,
            "encoder_sha256": weights_digest(source.encoder.state_dict()),
            "data": digests,
        }
    )


__all__ = ["MultiTaskRequest", "check_request", "parse_weights", "run_multitask", "settings_of"]
