"""`fewshot curves`: did pretraining help? Fine-tuning against the same network from scratch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    AsJson,
    Command,
    DataDir,
    Device,
    Progress,
    Seed,
    Split,
    echo_report,
    request_settings,
)
from fewshot_cli.finetune import Epochs, FreezeBN, HeadLr, ItemsPerStep, Lr, Subset
from fewshot_cli.rank_models import Data, ImageSide
from fewshot_cli.train import positive

Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="The pretrained encoder (anything --encoder takes, optionally NAME\\[option=value;...]); "
        "scratch is the same network with new random weights. Default: the shipped Omniglot Conv-4.",
    ),
]
Sizes = Annotated[
    str,
    typer.Option("--sizes", help="Labelled images per class to train on (comma-separated; all = every one)."),
]
Seeds = Annotated[
    int, typer.Option("--seeds", min=1, help="Runs per size and init (training items and order differ).")
]
Strategy = Annotated[
    str, typer.Option("--strategy", "-s", help="full, partial or gradual (as fewshot finetune).")
]
ScratchLr = Annotated[
    float, typer.Option("--scratch-lr", callback=positive, help="Encoder learning rate from scratch.")
]
TestPerClass = Annotated[int, typer.Option("--test-per-class", min=1, help="Held-out test items per class.")]
CurveSize = Annotated[
    str | None,
    typer.Option("--curve-size", help="The size whose learning curves are plotted [default: the largest]."),
]
Out = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write the report (every run) to this .json file.")
]
Plot = Annotated[
    Path | None, typer.Option("--plot", help="Draw learning and data-efficiency curves into this .png.")
]


def curves_command(
    ctx: typer.Context,
    data: Data,
    encoder: Encoder = None,
    sizes: Sizes = "1,2,5,10,20,50,100,all",
    seeds: Seeds = 3,
    strategy: Strategy = "full",
    epochs: Epochs = 10,
    lr: Lr = 1e-4,
    scratch_lr: ScratchLr = 1e-3,
    head_lr: HeadLr = 1e-3,
    batch_size: ItemsPerStep = 32,
    freeze_batchnorm: FreezeBN = False,
    test_per_class: TestPerClass = 100,
    curve_size: CurveSize = None,
    subset: Subset = "all",
    split: Split = None,
    image_size: ImageSide = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    out: Out = None,
    plot: Plot = None,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Learning and data-efficiency curves, pretrained vs scratch, and the negative-transfer gap."""
    from fewshot.workflows.curves import CurvesRequest, run_curves

    report = run_curves(CurvesRequest(**request_settings(ctx, as_json)))
    echo_report({k: v for k, v in report.items() if k != "runs"} if as_json else report, as_json, table)


def _pm(stat: dict, scale: float = 100, digits: int = 1) -> str:
    half = stat["ci95"]
    spread = "" if half is None or half != half else f" +- {scale * half:.{digits}f}"
    return f"{scale * stat['mean']:.{digits}f}{spread}"


def table(report: dict) -> str:
    """One row per size: accuracy, steps to 90%, AULC of both inits, the gap and verdict."""
    header = (
        "per class",
        "pretrained %",
        "scratch %",
        "steps to 90% (pre/scr)",
        "AULC % (pre/scr)",
        "gap (points)",
    )
    rows = []
    for s in report["sizes"]:
        pre, scr, gap = s["pretrained"], s["scratch"], s["negative_transfer"]
        rows.append(
            (
                s["size"],
                _pm(pre["accuracy"]),
                _pm(scr["accuracy"]),
                f"{_pm(pre['steps_to_90'], 1, 0)} / {_pm(scr['steps_to_90'], 1, 0)}",
                f"{_pm(pre['aulc'])} / {_pm(scr['aulc'])}",
                _pm({"mean": gap["gap"], "ci95": gap["ci95"]}),
            )
        )
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = [
        f"{report['encoder']} on {report['data']}: {report['test_items']} test items, "
        f"{report['settings']['seeds']} seeds, 95% t-intervals; gap = error(pretrained) - error(scratch)"
    ]
    lines += [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header, *rows]
    ]
    lines += [f"{s['size']:>4} per class: {s['negative_transfer']['verdict']}" for s in report["sizes"]]
    if report.get("plots"):
        lines.append(f"plot: {', '.join(report['plots'])}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("curves", cls=Command)(curves_command)
