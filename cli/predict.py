"""`fewshot predict`: classify new images from a few labelled examples per class."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, BatchSize, Command, Device, Workers


def _csv_bytes(report, k: int) -> bytes:
    """``path,label,probability``; with ``--top-k`` > 1 also ``label_1..label_k`` (the k best)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["path", "label", "probability"]
    if k > 1:
        for rank in range(1, k + 1):
            header += [f"label_{rank}", f"probability_{rank}"]
    writer.writerow(header)
    for p in report.predictions:
        row = [str(p.path), p.labels[0], f"{p.probabilities[0]:.4f}"]
        if k > 1:
            for label, probability in zip(p.labels, p.probabilities, strict=True):
                row += [label, f"{probability:.4f}"]
        writer.writerow(row)
    # A file name that is not UTF-8 arrives as surrogate escapes: write back its own bytes.
    return buffer.getvalue().encode("utf-8", "surrogateescape")


def _json_report(report, out: Path | None) -> str:
    document = {
        "classes": report.class_names,
        "predictions": [
            {"path": str(p.path), "labels": p.labels, "probabilities": p.probabilities}
            for p in report.predictions
        ],
        "skipped": [{"path": str(path), "reason": reason} for path, reason in report.failures],
        "out": None if out is None else str(out),
    }
    # ASCII: a name that is not UTF-8 becomes the JSON escape \udcff, so the text stays valid.
    from fewshot.runs import json_safe

    return json.dumps(json_safe(document), ensure_ascii=True, allow_nan=False)


def predict_command(
    query: Annotated[
        list[Path],
        typer.Option("--query", "-q", help="Image file or folder to classify (repeatable)."),
    ],
    support: Annotated[
        Path | None,
        typer.Option(
            "--support",
            "-s",
            help="Folder with one subfolder of example images per class (not for fixed-class "
            "models from `fewshot finetune`, which predict their own classes).",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", "-c", help="Trained model (default: the shipped Omniglot ProtoNet)."),
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="Frozen-encoder learner to wrap the encoder in.")
    ] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="euclidean or cosine.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="CSV file to write (default: print the CSV): path,label,probability, and with "
            "--top-k K also label_1..label_K (label_1 is the top, as in `fewshot label`).",
        ),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Labels reported per image.")] = 1,
    device: Device = "auto",
    batch_size: BatchSize = 64,
    workers: Workers = None,
    as_json: AsJson = False,
) -> None:
    """Classify images given a support folder (or with a fine-tuned classifier): path,label,probability."""
    from fewshot_cli.models import resolve_learner

    from fewshot.device import resolve_device
    from fewshot.errors import FewshotError
    from fewshot.fileio import atomic_write_bytes
    from fewshot.outputs import check_writable
    from fewshot.prediction import predict_images
    from fewshot.preprocessing import preprocessing_from_metadata

    if top_k < 1:
        raise FewshotError("--top-k must be at least 1")
    if out is not None:
        check_writable(out, "--out")
    torch_device = resolve_device(device)
    learner, meta = resolve_learner(method, checkpoint, None, {}, metric, torch_device)
    if support is not None and getattr(learner, "fixed_classes", False):
        raise FewshotError(
            "this model predicts its own classes (it was trained with `fewshot finetune`): drop "
            "--support, or add --method simpleshot to classify the support folder's classes with its encoder"
        )
    prep = preprocessing_from_metadata(meta)
    report = predict_images(
        learner,
        prep.transform(),
        support,
        query,
        mode=prep.mode,
        top_k=top_k,
        device=torch_device,
        batch_size=batch_size,
        workers=workers,
    )
    for path, reason in report.failures:
        typer.echo(f"skipped {path}: {reason}", err=True)
    if not report.predictions:
        raise FewshotError("no query image could be read")
    k = min(top_k, len(report.class_names))
    payload = _csv_bytes(report, k)
    if out is not None:
        try:
            atomic_write_bytes(out, payload)
        except OSError as err:
            raise FewshotError(f"cannot write {out}: {err.strerror or err}") from err
    if as_json:
        typer.echo(_json_report(report, out))
    elif out is None:
        typer.echo(payload, nl=False)
    else:
        typer.echo(
            f"{len(report.predictions)} images classified into {len(report.class_names)} classes "
            f"({len(report.failures)} skipped): {out}",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("predict", cls=Command)(predict_command)
