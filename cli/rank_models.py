"""`fewshot rank-models`: which pretrained encoder to start from, scored before any training."""

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
from fewshot_cli.finetune import Epochs, FreezeBN, HeadLr, ItemsPerStep, Lr, Subset, ValFraction

Data = Annotated[
    str, typer.Argument(help="A named data set (fashion-mnist, digits, omniglot) or an image folder.")
]
Models = Annotated[
    str,
    typer.Option(
        "--models",
        help="Comma-separated encoders (anything --encoder takes), each optionally with its own "
        "options: efficientnet-lite0,conv4,efficientnet-lite0\\[pretrained=none].",
    ),
]
Scores = Annotated[
    str | None,
    typer.Option(
        "--scores",
        help="Comma-separated scores: hscore, hscore-shrinkage, leep, logme, nce, transrate [default: all].",
    ),
]
Finetune = Annotated[
    bool,
    typer.Option(
        "--finetune", help="Also train each candidate and report its held-out accuracy and tau per score."
    ),
]
Strategy = Annotated[
    str,
    typer.Option(
        "--strategy", "-s", help="With --finetune: full, partial, gradual, linear-probe or simpleshot."
    ),
]
PerClass = Annotated[
    int | None, typer.Option("--per-class", min=2, help="Labelled items per class to use [default: all].")
]
Classes = Annotated[
    int | None,
    typer.Option("--classes", min=2, help="Use a seeded sample of this many classes [default: all]."),
]
ImageSide = Annotated[
    int | None,
    typer.Option(
        "--image-size", min=8, help="Input side of encoders that take one (ImageNet: 224 by default)."
    ),
]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the report to this .json file.")]


def rank_models_command(
    ctx: typer.Context,
    data: Data,
    models: Models,
    scores: Scores = None,
    finetune: Finetune = False,
    strategy: Strategy = "full",
    epochs: Epochs = 5,
    lr: Lr = 1e-4,
    head_lr: HeadLr = 1e-3,
    batch_size: ItemsPerStep = 32,
    freeze_batchnorm: FreezeBN = False,
    per_class: PerClass = None,
    classes: Classes = None,
    val_fraction: ValFraction = 0.2,
    subset: Subset = "all",
    split: Split = None,
    image_size: ImageSide = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    out: Out = None,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Rank pretrained encoders on a labelled target with transferability scores (LogME, LEEP, ...)."""
    from fewshot.workflows.rank_models import RankRequest, rank_models

    report = rank_models(RankRequest(**request_settings(ctx, as_json)))
    echo_report(report, as_json, table)


def _cell(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(report: dict) -> str:
    """One row per model (scores, accuracy), then tau per score."""
    names = report["scores"]
    accuracy = report.get("correlations") is not None
    header = ["model", *names] + (["accuracy"] if accuracy else [])
    rows = [
        [row["model"], *(_cell(row["scores"][n]) for n in names)]
        + ([f"{100 * row['accuracy']:.2f}%"] if accuracy else [])
        for row in report["models"]
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header, *rows]
    ]
    items = report["models"][0]
    lines.insert(
        0,
        f"{report['data']} ({report['subset']}): {items['train_items']} items scored per model, "
        f"{items['test_items']} held out",
    )
    if accuracy:
        lines.append("")
        for n in names:
            c = report["correlations"][n]
            lines.append(
                f"{n:<17} Kendall tau {_cell(c['kendall_tau'])}, weighted tau {_cell(c['weighted_tau'])} "
                f"({c['models']} model{'' if c['models'] == 1 else 's'})"
            )
    best = ", ".join(f"{n}: {m}" for n, m in report["best"].items() if m is not None)
    lines.append(f"best by {best}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("rank-models", cls=Command)(rank_models_command)
