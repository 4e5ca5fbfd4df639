"""`fewshot predict` as a library call: a checkpoint, a support folder and query images ->
their top-k labels (`fewshot.prediction.PredictionReport`), optionally written as a CSV file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from fewshot.errors import FewshotError
from fewshot.prediction import PredictionReport, predict_images


def _silent(path: str, reason: str) -> None:
    pass


def predict_folder(
    query: Iterable[str | os.PathLike[str]],
    *,
    support: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    encoder: str | None = None,
    method: str | None = None,
    metric: str | None = None,
    out: str | os.PathLike[str] | None = None,
    top_k: int = 1,
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    warn: Callable[[str, str], None] = _silent,
) -> PredictionReport:
    """Classify the `query` images with a checkpoint (default: the shipped Omniglot ProtoNet),
    optionally wrapped in `method`, fitted on the `support` folder (None for a fixed-class
    model), or with the 1,000 ImageNet classes of an ImageNet-pretrained `encoder`
    (``efficientnet-lite0``, ``timm:resnet50``: `fewshot.transfer.imagenet`).
    `warn(path, reason)` hears of each file skipped; with `out`, the CSV
    (`PredictionReport.csv_bytes`) is written there atomically.

    Raises:
        FewshotError: bad options, a support folder for a fixed-class model, no readable query
            image, an `out` that cannot be written. DataError: see `predict_images`.
    """
    from fewshot.device import resolve_device
    from fewshot.outputs import check_writable

    if top_k < 1:
        raise FewshotError("--top-k must be at least 1")
    if encoder is not None and (checkpoint or support or method or metric):
        raise FewshotError(
            "--encoder labels images with its own ImageNet classes: "
            "drop --checkpoint, --support, --method and --metric"
        )
    if out is not None:
        check_writable(out, "--out")
    torch_device = resolve_device(device)
    learner, transform, mode = _model(checkpoint, encoder, method, metric, torch_device)
    if support is not None and getattr(learner, "fixed_classes", False):
        raise FewshotError(
            "this model predicts its own classes (it was trained with `fewshot finetune`): drop "
            "--support, or add --method simpleshot to classify the support folder's classes with its encoder"
        )
    report = predict_images(
        learner, transform, support, query, mode, top_k, torch_device, batch_size, workers
    )
    for path, reason in report.failures:
        warn(str(path), reason)
    if not report.predictions:
        raise FewshotError("no query image could be read")
    if out is not None:
        _write(out, report.csv_bytes(top_k))
    return report


def _model(checkpoint, encoder, method, metric, device):
    """The learner and how to turn a PIL image into its input: ``(learner, transform, mode)``."""
    if encoder is not None:
        from fewshot.transfer.imagenet import imagenet_classifier

        classifier = imagenet_classifier(encoder, device)
        return classifier, classifier.encoder.preprocess, "RGB"
    from fewshot.build import build_model
    from fewshot.preprocessing import preprocessing_from_metadata

    learner, meta = build_model(method, checkpoint, None, {}, {"metric": metric}, device)
    prep = preprocessing_from_metadata(meta)
    return learner, prep.transform(), prep.mode


def _write(out: str | os.PathLike[str], payload: bytes) -> None:
    from fewshot.fileio import atomic_write_bytes

    try:
        atomic_write_bytes(out, payload)
    except OSError as err:
        raise FewshotError(f"cannot write {out}: {err.strerror or err}") from err
