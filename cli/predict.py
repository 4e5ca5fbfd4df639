"""`fewshot predict`: classify new images from a few labelled examples per class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, BatchSize, Command, Device, Workers

Query = Annotated[
    list[Path], typer.Option("--query", "-q", help="Image file or folder to classify (repeatable).")
]
Support = Annotated[
    Path | None,
    typer.Option(
        "--support",
        "-s",
        help="Folder with one subfolder of example images per class (not for fixed-class "
        "models from `fewshot finetune`, which predict their own classes).",
    ),
]
Checkpoint = Annotated[
    Path | None,
    typer.Option("--checkpoint", "-c", help="Trained model (default: the shipped Omniglot ProtoNet)."),
]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="An ImageNet-pretrained encoder (efficientnet-lite0, timm:resnet50, ...): label the images "
        "with its 1,000 ImageNet classes, no support folder.",
    ),
]
Method = Annotated[
    str | None, typer.Option("--method", "-m", help="Frozen-encoder learner to wrap the encoder in.")
]
Metric = Annotated[str | None, typer.Option("--metric", help="euclidean or cosine.")]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="CSV file to write (default: print the CSV): path,label,probability, and with "
        "--top-k K also label_1..label_K (label_1 is the top, as in `fewshot label`).",
    ),
]
TopK = Annotated[int, typer.Option("--top-k", help="Labels reported per image.")]


def _skipped(path: str, reason: str) -> None:
    typer.echo(f"skipped {path}: {reason}", err=True)


def predict_command(
    query: Query,
    support: Support = None,
    checkpoint: Checkpoint = None,
    encoder: Encoder = None,
    method: Method = None,
    metric: Metric = None,
    out: Out = None,
    top_k: TopK = 1,
    device: Device = "auto",
    batch_size: BatchSize = 64,
    workers: Workers = None,
    as_json: AsJson = False,
) -> None:
    """Classify images given a support folder (or with a fine-tuned classifier): path,label,probability."""
    options = dict(locals())  # predict_folder's arguments, by name
    del options["as_json"]
    from fewshot.workflows.predict import predict_folder

    report = predict_folder(**options, warn=_skipped)
    if as_json:
        typer.echo(report.json_text(out))
    elif out is None:
        typer.echo(report.csv_bytes(top_k), nl=False)
    else:
        typer.echo(
            f"{len(report.predictions)} images classified into {len(report.class_names)} classes "
            f"({len(report.failures)} skipped): {out}",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("predict", cls=Command)(predict_command)
