"""Classify new images given a support folder (one subfolder of example images per class).

`fewshot.workflows.predict.predict_folder` is `fewshot predict` as one call (the model, the
checks, the CSV file); `predict_images` does the work with a learner in hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fewshot.data.images import find_images, is_image_file, stream_images
from fewshot.errors import DataError


@dataclass
class Prediction:
    """One query image: its ``top_k`` labels and probabilities, best first."""

    path: Path
    labels: list[str]
    probabilities: list[float]


@dataclass
class PredictionReport:
    predictions: list[Prediction]
    class_names: list[str]
    support_counts: list[int]
    failures: list[tuple[Path, str]] = field(default_factory=list)  # support and query files skipped

    def csv_bytes(self, top_k: int = 1) -> bytes:
        """``path,label,probability``; with `top_k` > 1 also ``label_1..label_k`` (the k best)."""
        import csv
        import io

        k = min(top_k, len(self.class_names))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["path", "label", "probability"]
        if k > 1:
            for rank in range(1, k + 1):
                header += [f"label_{rank}", f"probability_{rank}"]
        writer.writerow(header)
        for p in self.predictions:
            row = [str(p.path), p.labels[0], f"{p.probabilities[0]:.4f}"]
            if k > 1:
                for label, probability in zip(p.labels, p.probabilities, strict=True):
                    row += [label, f"{probability:.4f}"]
            writer.writerow(row)
        # A file name that is not UTF-8 arrives as surrogate escapes: write back its own bytes.
        return buffer.getvalue().encode("utf-8", "surrogateescape")

    def json_text(self, out: str | os.PathLike[str] | None = None) -> str:
        """The report as one JSON object (``out``: where the CSV was written, or None)."""
        import json

        from fewshot.runs import json_safe

        document = {
            "classes": self.class_names,
            "predictions": [
                {"path": str(p.path), "labels": p.labels, "probabilities": p.probabilities}
                for p in self.predictions
            ],
            "skipped": [{"path": str(path), "reason": reason} for path, reason in self.failures],
            "out": None if out is None else str(out),
        }
        # ASCII: a name that is not UTF-8 becomes the JSON escape \udcff, so the text stays valid.
        return json.dumps(json_safe(document), ensure_ascii=True, allow_nan=False)


def support_classes(support_dir: str | os.PathLike[str]) -> list[tuple[str, list[Path]]]:
    """``(class name, image paths)`` per subfolder of `support_dir`, sorted by name.

    Raises:
        DataError: the folder is missing, has no class subfolders, fewer than two classes,
            or a class subfolder holds no image.
    """
    root = Path(support_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"support folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"support folder {root} has no class subfolders (one subfolder of images per class)")
    if len(folders) < 2:
        raise DataError(f"support folder {root} has only one class ({folders[0].name}): give at least two")
    classes = []
    for folder in folders:
        images = [p for p in sorted(folder.rglob("*")) if p.is_file() and is_image_file(p)]
        if not images:
            raise DataError(f"support class {folder.name!r} has no images ({folder})")
        classes.append((folder.name, images))
    return classes


def _decode(paths: list[Path], transform: Callable, mode: str, batch_size: int, workers: int | None):
    return stream_images(paths, transform, batch_size=batch_size, workers=workers, mode=mode)


@torch.no_grad()
def predict_images(
    learner,
    transform: Callable,
    support_dir: str | os.PathLike[str] | None,
    queries: Iterable[str | os.PathLike[str]],
    mode: str = "L",
    top_k: int = 1,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    workers: int | None = None,
) -> PredictionReport:
    """Fit `learner` on the support folder and classify every query image.

    Args:
        learner: a fitted-per-task learner (``fit``, ``predict_proba``).
        transform: PIL image -> tensor ``(C, H, W)`` (e.g. `Preprocessing.transform()`).
        support_dir: one subfolder per class, holding that class's example images; None for a
            fixed-class classifier (``learner.fixed_classes``, e.g. from `fewshot finetune`),
            which predicts its own ``learner.class_names``.
        queries: image files and/or folders (searched recursively).
        mode: PIL mode the images are decoded to (``"L"`` or ``"RGB"``).
        top_k: how many labels to report per query.

    Raises:
        DataError: bad support folder, a class whose images are all unreadable, no query image.
    """
    query_paths = find_images(list(queries))
    if support_dir is None:
        if not getattr(learner, "fixed_classes", False):
            raise DataError("this model classifies among the classes of a support set: give --support FOLDER")
        learner = learner.to(device).eval()
        names, counts, failures = list(learner.class_names), [], []
    else:
        names, counts, failures = _fit_on_support(
            learner, transform, support_dir, mode, device, batch_size, workers
        )
    top_k = max(1, min(top_k, len(names)))
    predictions = []
    for batch in _decode(query_paths, transform, mode, batch_size, workers):
        failures.extend(batch.failures)
        if batch.images is None:
            continue
        proba = learner.predict_proba(batch.images.to(device)).float().cpu()
        values, indices = proba.topk(top_k, dim=1)
        for path, v, i in zip(batch.paths, values.tolist(), indices.tolist(), strict=True):
            predictions.append(Prediction(path, [names[j] for j in i], v))
    return PredictionReport(predictions, names, counts, failures)


def _fit_on_support(learner, transform, support_dir, mode, device, batch_size, workers):
    """Fit `learner` on the support folder: ``(class names, items per class, files skipped)``."""
    classes = support_classes(support_dir)
    failures: list[tuple[Path, str]] = []
    support_x, support_y = [], []
    label_of = {path: i for i, (_, paths) in enumerate(classes) for path in paths}
    all_support = [path for _, paths in classes for path in paths]
    for batch in _decode(all_support, transform, mode, batch_size, workers):
        failures.extend(batch.failures)
        if batch.images is not None:
            support_x.append(batch.images)
            support_y.extend(label_of[p] for p in batch.paths)
    labels = torch.tensor(support_y, dtype=torch.long)
    counts = torch.bincount(labels, minlength=len(classes)).tolist() if support_y else [0] * len(classes)
    empty = [name for (name, _), count in zip(classes, counts, strict=True) if count == 0]
    if empty:
        raise DataError(f"support class {empty[0]!r} has no readable image: fix or replace its files")
    learner = learner.to(device).eval()
    learner.fit(torch.cat(support_x).to(device), labels.to(device))
    return [name for name, _ in classes], counts, failures
