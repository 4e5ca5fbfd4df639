"""`fewshot multitask`: one shared encoder, a head per task, trained on several data sets at
once, compared with one model per task."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    AsJson,
    Command,
    DataDir,
    Device,
    ImageSize,
    Progress,
    Seed,
    echo_report,
    request_settings,
)
from fewshot_cli.train import positive

Data = Annotated[
    str,
    typer.Option(
        "--data",
        help="Two or more labelled data sets, comma-separated, one task each: named sets "
        "(fashion-mnist, digits, omniglot) or folders of class subfolders.",
    ),
]
Encoder = Annotated[
    str | None,
    typer.Option("--encoder", "-e", help="The shared encoder: a name (conv4: from scratch) or a checkpoint."),
]
Steps = Annotated[int, typer.Option("--steps", min=1, help="Optimiser steps of the shared model.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Items per drawn task in a step.")]
Lr = Annotated[float, typer.Option("--lr", callback=positive, help="Learning rate.")]
Optimizer = Annotated[str, typer.Option("--optimizer", help="sgd (momentum 0.9) or adam.")]
Sampling = Annotated[
    str,
    typer.Option(
        "--sampling", help="Which tasks a step trains on: proportional (to their sizes) or uniform."
    ),
]
Weighting = Annotated[
    str,
    typer.Option(
        "--weighting",
        help="How the tasks' losses add up: fixed (--weights) or uncertainty (learned, Kendall et al. 2018).",
    ),
]
Weights = Annotated[
    str | None,
    typer.Option("--weights", help="Fixed loss weights, one per task, e.g. 1,0.5 [default: 1 each]."),
]
TasksPerStep = Annotated[
    int | None,
    typer.Option("--tasks-per-step", min=1, help="Tasks drawn per step [default: the number of tasks]."),
]
EvalEvery = Annotated[
    int, typer.Option("--eval-every", min=1, help="Steps between saved states (resume points).")
]
BaselineSteps = Annotated[
    int | None,
    typer.Option(
        "--baseline-steps",
        min=0,
        help="Steps of each one-model-per-task baseline (one batch of its task a step) "
        "[default: --steps; 0: none].",
    ),
]
MaxClasses = Annotated[
    int | None, typer.Option("--max-classes", min=2, help="Classes per task, at most (a seeded choice).")
]
MaxPerClass = Annotated[
    int | None, typer.Option("--max-per-class", min=1, help="Training items per class, at most.")
]
MaxTest = Annotated[
    int | None, typer.Option("--max-test-per-class", min=1, help="Test items per class, at most.")
]
TestFraction = Annotated[
    float,
    typer.Option("--test-fraction", help="Items per class held out for testing (sets without a test part)."),
]
Subset = Annotated[
    str | None,
    typer.Option("--subset", help="Sets without a test part: which part (Omniglot: e.g. background)."),
]
Out = Annotated[
    Path,
    typer.Option("--out", "-o", help="Folder: one classifier per task and model, report.json, accuracy.png."),
]
Plot = Annotated[bool, typer.Option("--plot/--no-plot", help="Write <out>/accuracy.png.")]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--restart", help="Resume a killed run at --out (same settings); --restart starts over."
    ),
]


def multitask_command(
    ctx: typer.Context,
    data: Data,
    encoder: Encoder = "conv4",
    steps: Steps = 500,
    batch_size: BatchSize = 32,
    lr: Lr = 0.01,
    optimizer: Optimizer = "sgd",
    sampling: Sampling = "proportional",
    weighting: Weighting = "fixed",
    weights: Weights = None,
    tasks_per_step: TasksPerStep = None,
    eval_every: EvalEvery = 100,
    baseline_steps: BaselineSteps = None,
    max_classes: MaxClasses = None,
    max_per_class: MaxPerClass = None,
    max_test_per_class: MaxTest = None,
    test_fraction: TestFraction = 0.2,
    subset: Subset = None,
    image_size: ImageSize = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    out: Out = Path("runs/multitask"),
    plot: Plot = True,
    resume: Resume = True,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Train one shared encoder with a head per task on several data sets; compare with one model per task."""
    from fewshot.workflows.multitask import MultiTaskRequest, run_multitask

    report = run_multitask(MultiTaskRequest(**request_settings(ctx)))
    echo_report(report, as_json, summary)


def _cell(value: float | None) -> str:
    return "     -" if value is None else f"{value:6.3f}"


def summary(r: dict) -> str:
    """Per task: classes, items, the shared model's and its own model's accuracy; then times."""
    width = max(8, *(len(t["name"]) for t in r["tasks"]))
    head = f"multi-task on {r['encoder']}: {r['sampling']} sampling, {r['weighting']} weights"
    lines = [f"{head}, {r['steps']} steps"]
    lines.append(f"{'task':<{width}}  classes  train  shared  single  batches  weight")
    for t in r["tasks"]:
        lines.append(
            f"{t['name']:<{width}}  {t['classes']:>7}  {t['train_items']:>5}  {_cell(t['shared_accuracy'])}  "
            f"{_cell(t['single_accuracy'])}  {t['batches']:>7}  {t['weight']:6.3f}"
        )
    shared, single = r["shared"], r["single"]
    text = f"mean accuracy: shared {shared['mean_accuracy']:.4f}"
    if single:
        text += f", one model per task {single['mean_accuracy']:.4f}"
    text += f"; training time: shared {shared['seconds']:.1f} s"
    if single:
        text += f", one model per task {single['seconds']:.1f} s in all"
    lines += [text, f"files in {r['out']}: {', '.join(Path(f).name for f in r['files'])}"]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("multitask", cls=Command)(multitask_command)
