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
    clip_encoder,
)


def label_command(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    labels: Annotated[
        str | None, typer.Option("--labels", "-l", help="Class names, comma-separated: 'cat,dog,bird'.")
    ] = None,
    labels_file: Annotated[
        Path | None, typer.Option("--labels-file", help="Class names, one per line ('#' comments).")
    ] = None,
    templates: Annotated[
        str,
        typer.Option(
            "--templates",
            help="Prompt templates: simple (7, default), imagenet (80), photo, name, or a file "
            "with one template per line, each with one '{}'.",
        ),
    ] = "simple",
    class_embeddings: Annotated[
        Path | None,
        typer.Option(
            "--class-embeddings",
            help="Reuse class embeddings saved by --save-class-embeddings (replaces labels/templates).",
        ),
    ] = None,
    save_class_embeddings: Annotated[
        Path | None,
        typer.Option("--save-class-embeddings", help="Also save the class-embedding matrix here."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output: .csv, or .jsonl for JSON Lines.")] = Path(
        "labels.csv"
    ),
    top_k: Annotated[int, typer.Option("--top-k", help="Labels (with probabilities) per image.")] = 1,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Below this top probability the label is 'unknown'."),
    ] = None,
    organize: Annotated[
        str | None,
        typer.Option("--organize", help="copy | move | link images into DEST/<label>/ (never overwrites)."),
    ] = None,
    dest: Annotated[Path | None, typer.Option("--dest", help="Destination folder for --organize.")] = None,
    model: ClipModel = "ViT-B-32",
    pretrained: ClipPretrained = "default",
    device: Device = "auto",
    precision: Precision = "auto",
    batch_size: BatchSize = 64,
    workers: Workers = None,
    restart: Annotated[
        bool,
        typer.Option("--restart", help="Discard an interrupted run's partial output instead of resuming."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    progress: Progress = None,
) -> None:
    """Label images with CLIP zero-shot: one row per image with its top-k labels (resumable)."""
    from fewshot.errors import FewshotError
    from fewshot.outputs import check_writable
    from fewshot.zeroshot.classifier import ZeroShotClassifier, parse_class_names
    from fewshot.zeroshot.labelling import label_images

    check_writable(out, "--out")
    if save_class_embeddings is not None:
        check_writable(save_class_embeddings, "--save-class-embeddings")
    if class_embeddings is None:
        names = parse_class_names(labels, labels_file)
        if len(names) < 2:
            option = "--labels" if labels is not None else "--labels-file"
            raise FewshotError(
                f"{option} gives one class ({names[0]!r}): give at least two, since with one class "
                "every image gets probability 1.0"
            )
        from fewshot.zeroshot.templates import load_templates

        load_templates(templates)  # bad templates fail before the model loads
    elif labels is not None or labels_file is not None:
        raise FewshotError("--class-embeddings already holds the classes: drop --labels/--labels-file")
    from fewshot.seeding import seeded

    with seeded(0):  # --pretrained none: the same random weights on every run
        encoder = clip_encoder(model, pretrained, device, precision)
    if class_embeddings is None:
        classifier = ZeroShotClassifier(encoder, names, templates).fit()
    else:
        classifier = ZeroShotClassifier.from_class_embeddings(encoder, class_embeddings)
    if save_class_embeddings is not None:
        classifier.save_class_embeddings(save_class_embeddings)
    summary = label_images(
        images,
        classifier,
        out,
        top_k=top_k,
        threshold=threshold,
        batch_size=batch_size,
        workers=workers,
        organize=organize,
        dest=dest,
        restart=restart,
        progress=False if as_json else progress,
    )
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
