"""Label folders of images of any size with a zero-shot classifier, resumably.

Images are found recursively (`fewshot.data.images.find_images`) and decoded by worker
processes (`stream_images`) while the model runs; memory stays constant. Each image gets one
output row: its top-k labels and probabilities, ``label`` = the top label or ``unknown`` below
the threshold, ``status`` ``ok`` or ``error`` (with the reason: unreadable, truncated, empty,
not an image, too large), and where it was organised to.

Resuming: rows are appended batch by batch to ``<out>.partial`` (flushed and synced), next to
``<out>.partial.json`` holding the run's settings. A re-run with the same settings skips the
images already in the partial file; at the end the partial file is renamed onto ``<out>``
(atomic), so ``<out>`` only ever holds a complete result, identical to an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fewshot.errors import DataError, FewshotError
from fewshot.progress import show_progress

UNKNOWN = "unknown"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass
class LabelSummary:
    """What a labelling run did. ``images_per_second`` counts images labelled in this run."""

    out: str
    total: int
    labelled: int
    failed: int
    unknown: int
    organized: int
    resumed: int
    seconds: float
    images_per_second: float

    def as_dict(self) -> dict:
        return asdict(self)


def output_format(out: Path, fmt: str | None = None) -> str:
    if fmt is None:
        fmt = "jsonl" if out.suffix.lower() in JSONL_SUFFIXES else "csv"
    if fmt not in ("csv", "jsonl"):
        raise FewshotError(f"unknown output format {fmt!r}: use csv or jsonl")
    return fmt


class _Writer:
    """Formats rows as CSV or JSON Lines text."""

    def __init__(self, fmt: str, top_k: int) -> None:
        self.fmt, self.top_k = fmt, top_k
        self.columns = ["path", "status", "label", "probability"]
        for i in range(1, top_k + 1):
            self.columns += [f"label_{i}", f"probability_{i}"]
        self.columns += ["organized_to", "error"]

    def header(self) -> str:
        return self._csv([self.columns]) if self.fmt == "csv" else ""

    @staticmethod
    def _csv(rows: list[list[str]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()

    def format(self, rows: list[dict]) -> str:
        if self.fmt == "jsonl":
            return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        flat = []
        for row in rows:
            values = [row["path"], row["status"], row["label"] or "", _p(row["probability"])]
            top = row["top"] + [{"label": "", "probability": None}] * (self.top_k - len(row["top"]))
            for item in top:
                values += [item["label"], _p(item["probability"])]
            values += [row["organized_to"] or "", row["error"] or ""]
            flat.append(values)
        return self._csv(flat)

    def done_paths(self, text: str) -> list[str]:
        if self.fmt == "jsonl":
            return [json.loads(line)["path"] for line in text.splitlines() if line.strip()]
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or rows[0] != self.columns:
            raise FewshotError("the partial output's columns do not match this run")
        return [r[0] for r in rows[1:] if r]


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _round(value: float) -> float:
    return float(f"{value:.6f}")


class _Journal:
    """``<out>.partial`` (rows so far) + ``<out>.partial.json`` (settings); rename at the end."""

    def __init__(self, out: Path, writer: _Writer, settings: dict, restart: bool) -> None:
        self.out, self.writer = out, writer
        self.partial = out.with_name(out.name + ".partial")
        self.settings_path = out.with_name(out.name + ".partial.json")
        self.done: set[str] = set()
        self.done_rows: list[str] = []
        if restart:
            self.partial.unlink(missing_ok=True)
            self.settings_path.unlink(missing_ok=True)
        if self.partial.exists():
            self._resume(settings)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.settings_path.write_text(json.dumps(settings, indent=1))
            self.partial.write_text(writer.header(), encoding="utf-8")
        self.handle = open(self.partial, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()

    def _resume(self, settings: dict) -> None:
        try:
            previous = json.loads(self.settings_path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != settings:
            raise FewshotError(
                f"{self.partial} holds an interrupted run with other settings (labels, templates, model, "
                "top-k, threshold, organize): re-run with the same options to resume, or pass --restart"
            )
        raw = self.partial.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]  # a row cut short by a crash is dropped and redone
        if len(complete) != len(raw):
            with open(self.partial, "r+b") as handle:
                handle.truncate(len(complete))
        text = complete.decode("utf-8")
        if self.writer.fmt == "csv" and not text:
            self.partial.write_text(self.writer.header(), encoding="utf-8")
            text = self.writer.header()
        try:
            paths = self.writer.done_paths(text)
        except (ValueError, KeyError, csv.Error) as err:
            raise FewshotError(f"{self.partial} is damaged ({err}); pass --restart") from err
        self.done = set(paths)

    def append(self, rows: list[dict]) -> None:
        if rows:
            self.handle.write(self.writer.format(rows))
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def finish(self) -> None:
        self.handle.close()
        os.replace(self.partial, self.out)
        self.settings_path.unlink(missing_ok=True)

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.close()


def _within(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def label_images(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    classifier,
    out: str | os.PathLike[str] = "labels.csv",
    *,
    top_k: int = 1,
    threshold: float | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    organize: str | None = None,
    dest: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    recursive: bool = True,
    restart: bool = False,
    progress: bool = True,
) -> LabelSummary:
    """Label every image under `inputs` with a fitted `ZeroShotClassifier`; write `out`.

    Args:
        top_k: labels per row (at most the number of classes).
        threshold: top probability below which ``label`` is ``unknown`` (None: never).
        organize: ``copy``, ``move`` or ``link`` images into ``dest/<label>/`` (errors stay put).
        fmt: ``csv`` or ``jsonl``; None picks from the suffix of `out`.
        restart: discard the partial output of an interrupted run instead of resuming it.

    Raises:
        FewshotError: bad options, or a partial output from a run with other settings.
        DataError: an input does not exist or holds no image.
    """
    from fewshot.data.images import find_images, stream_images
    from fewshot.zeroshot.organize import MODES, label_folders, place

    if classifier.prototypes_ is None:
        classifier.fit()
    n_classes = len(classifier.class_names)
    if top_k < 1:
        raise FewshotError("--top-k must be at least 1")
    top_k = min(top_k, n_classes)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise FewshotError("--threshold is a probability: give a value between 0 and 1")
    if organize is not None and organize not in MODES:
        raise FewshotError(f"unknown --organize {organize!r}; choose one of: {', '.join(MODES)}")
    if (organize is None) != (dest is None):
        raise FewshotError("--organize and --dest go together")
    out = Path(out).expanduser()
    writer = _Writer(output_format(out, fmt), top_k)
    dest_root = Path(dest).expanduser().resolve() if dest is not None else None
    folders = label_folders(dest_root, [*classifier.class_names, UNKNOWN]) if dest_root else {}
    encoder = classifier.encoder
    settings = {
        "class_names": classifier.class_names,
        "templates": classifier.templates,
        "encoder": encoder.config() if hasattr(encoder, "config") else None,
        "top_k": top_k,
        "threshold": threshold,
        "organize": organize,
        "dest": str(dest_root) if dest_root else None,
        "format": writer.fmt,
    }
    try:
        paths = find_images(inputs, recursive=recursive)
    except DataError:
        if restart or not out.with_name(out.name + ".partial").exists():
            raise
        paths = []  # perhaps everything was labelled (and moved away) before the interruption
    journal = _Journal(out, writer, settings, restart)
    try:
        paths = [p for p in paths if str(p) not in journal.done and not _within(p, dest_root)]
        position = {str(p): i for i, p in enumerate(paths)}
        counts = {"labelled": 0, "failed": 0, "unknown": 0, "organized": 0}
        start = time.perf_counter()
        bar = None
        if show_progress(progress):
            from tqdm import tqdm

            bar = tqdm(total=len(paths), unit="img", desc="labelling", dynamic_ncols=True)
        prototypes = classifier.prototypes_
        scale = classifier.logit_scale
        from fewshot.scoring import prototype_logits

        for batch in stream_images(paths, encoder.preprocess, batch_size=batch_size, workers=workers):
            results: dict[str, dict] = {}
            if batch.images is not None:
                with torch.inference_mode():
                    z = encoder.encode(batch.images)
                    probs = prototype_logits(z, prototypes.to(z.device), "cosine", scale).float().softmax(-1)
                    top_p, top_i = probs.topk(top_k, dim=-1)
                for path, ps, idx in zip(
                    batch.paths, top_p.cpu().tolist(), top_i.cpu().tolist(), strict=True
                ):
                    top = [
                        {"label": classifier.class_names[i], "probability": _round(p)}
                        for p, i in zip(ps, idx, strict=True)
                    ]
                    label = top[0]["label"] if threshold is None or ps[0] >= threshold else UNKNOWN
                    row = {
                        "path": str(path),
                        "status": "ok",
                        "label": label,
                        "probability": top[0]["probability"],
                        "top": top,
                        "organized_to": None,
                        "error": None,
                    }
                    counts["labelled"] += 1
                    counts["unknown"] += label == UNKNOWN
                    if organize:
                        try:
                            row["organized_to"] = str(place(path, folders[label], organize))
                            counts["organized"] += 1
                        except OSError as err:
                            row["error"] = f"not organised: {err}"
                    results[str(path)] = row
            for path, reason in batch.failures:
                counts["failed"] += 1
                results[str(path)] = {
                    "path": str(path),
                    "status": "error",
                    "label": None,
                    "probability": None,
                    "top": [],
                    "organized_to": None,
                    "error": reason,
                }
            # rows in discovery order, so a resumed run writes the same file as an uninterrupted one
            order = sorted(results, key=position.__getitem__)
            journal.append([results[p] for p in order])
            if bar is not None:
                bar.update(len(results))
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        journal.finish()
    finally:
        journal.close()
    done_now = counts["labelled"] + counts["failed"]
    return LabelSummary(
        out=str(out),
        total=len(journal.done) + done_now,
        labelled=counts["labelled"],
        failed=counts["failed"],
        unknown=counts["unknown"],
        organized=counts["organized"],
        resumed=len(journal.done),
        seconds=round(seconds, 3),
        images_per_second=round(counts["labelled"] / seconds, 2) if seconds > 0 else 0.0,
    )
