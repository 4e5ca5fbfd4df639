"""`fewshot label`: zero-shot label folders of images from text prompts (CLIP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    BatchSize,
    ClipModel,
    ClipPretrained,
    Command,
    Device,
    Precision,
    Progress,
    Workers,
)

Images = Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")]
Labels = Annotated[
    str | None, typer.Option("--labels", "-l", help="Class names, comma-separated: 'cat,dog,bird'.")
]
LabelsFile = Annotated[
    Path | None, typer.Option("--labels-file", help="Class names, one per line ('#' comments).")
]
Templates = Annotated[
    str,
    typer.Option(
        "--templates",
        help="Prompt templates: simple (7, default), imagenet (80), photo, name, or a file "
        "with one template per line, each with one '{}'.",
    ),
]
ClassEmbeddings = Annotated[
    Path | None,
    typer.Option(
        "--class-embeddings",
        help="Reuse class embeddings saved by --save-class-embeddings (replaces labels/templates).",
    ),
]
SaveClassEmbeddings = Annotated[
    Path | None,
    typer.Option("--save-class-embeddings", help="Also save the class-embedding matrix here."),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output: .csv, or .jsonl for JSON Lines.")]
TopK = Annotated[int, typer.Option("--top-k", help="Labels (with probabilities) per image.")]
Threshold = Annotated[
    float | None, typer.Option("--threshold", help="Below this top probability the label is 'unknown'.")
]
Organize = Annotated[
    str | None,
    typer.Option("--organize", help="copy | move | link images into DEST/<label>/ (never overwrites)."),
]
Dest = Annotated[Path | None, typer.Option("--dest", help="Destination folder for --organize.")]
Restart = Annotated[
    bool, typer.Option("--restart", help="Discard an interrupted run's partial output instead of resuming.")
]
Engine = Annotated[
    str, typer.Option("--engine", help="local (this process) or ray (Ray Data actors; same output).")
]
Actors = Annotated[
    int | None, typer.Option("--actors", help="Ray: model actors (default: one per GPU, else 1).")
]
SummaryJson = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]


def label_command(
    images: Images,
    labels: Labels = None,
    labels_file: LabelsFile = None,
    templates: Templates = "simple",
    class_embeddings: ClassEmbeddings = None,
    save_class_embeddings: SaveClassEmbeddings = None,
    out: Out = Path("labels.csv"),
    top_k: TopK = 1,
    threshold: Threshold = None,
    organize: Organize = None,
    dest: Dest = None,
    model: ClipModel = "ViT-B-32",
    pretrained: ClipPretrained = "default",
    device: Device = "auto",
    precision: Precision = "auto",
    batch_size: BatchSize = 64,
    workers: Workers = None,
    engine: Engine = "local",
    actors: Actors = None,
    restart: Restart = False,
    as_json: SummaryJson = False,
    progress: Progress = None,
) -> None:
    """Label images with CLIP zero-shot: one row per image with its top-k labels (resumable)."""
    options = {**locals(), "progress": False if as_json else progress}  # label_with_clip's names
    del options["as_json"]
    from fewshot.workflows.label import label_with_clip

    summary = label_with_clip(**options)
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
        return
    typer.echo(
        f"labelled {summary.labelled} images ({summary.unknown} unknown), {summary.failed} unreadable, "
        f"{summary.resumed} from an earlier run; {summary.images_per_second:.1f} images/s; "
        f"wrote {summary.out}" + (f"; organised {summary.organized} into {dest}" if organize else "")
    )


def register(app: typer.Typer) -> None:
    app.command("label", cls=Command)(label_command)
