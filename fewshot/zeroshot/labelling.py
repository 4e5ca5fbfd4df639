"""Label folders of images of any size with a zero-shot classifier, resumably.

Images are found recursively (`fewshot.data.images.scan_images`) and decoded by worker
processes (`stream_images`) while the model runs; memory stays constant. Each image gets one
output row: its top-k labels and probabilities, ``label`` = the top label or ``unknown`` below
the threshold, ``label_1`` ... ``label_k`` the k best (``label_1`` is the top, as in
``fewshot predict``), ``status`` ``ok`` or ``error`` (with the reason: unreadable, truncated,
empty, not an image, too large, a broken link, a folder that cannot be listed), and where it
was organised to. At least two classes are needed (with one, every probability is 1.0).

File names that are not UTF-8 (possible on Linux) are kept exactly: Python reads them with
surrogate escapes (``bad\\udcff.jpg`` for the bytes ``bad\\xff.jpg``). A CSV holds the name's own
bytes, so it is not UTF-8 then: read it with ``open(out, encoding="utf-8",
errors="surrogateescape", newline="")`` and ``os.fsencode(path)`` gives the bytes back. JSON
Lines stays UTF-8 and writes the JSON escape ``\\udcff``; ``json.loads`` gives the same string.

Resuming, kill -9 included (`fewshot.zeroshot.journal`): every row, with the exact target
of its image, is synced to ``<out>.partial`` before the image is copied, moved or linked, and
placements are atomic (`fewshot.zeroshot.organize`). A re-run with the same settings first
finishes the placements that may have been cut off, then labels the images not yet in the
journal; ``<out>`` is written at the end, byte-identical to an uninterrupted run, with every
image exactly once at its destination. One run at a time writes an `out`
(`fewshot.locking.exclusive_lock`); a second is refused.
"""

from __future__ import annotations

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


def _round(value: float) -> float:
    return float(f"{value:.6f}")


def _check_options(classifier, top_k: int, threshold, organize, dest) -> None:
    from fewshot.zeroshot.organize import MODES

    if len(classifier.class_names) < 2:
        raise FewshotError(
            f"--labels: give at least two classes (got {classifier.class_names!r}); with one class "
            "every image gets probability 1.0, which says nothing"
        )
    if top_k < 1:
        raise FewshotError("--top-k must be at least 1")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise FewshotError("--threshold is a probability: give a value between 0 and 1")
    if organize is not None and organize not in MODES:
        raise FewshotError(f"unknown --organize {organize!r}; choose one of: {', '.join(MODES)}")
    if (organize is None) != (dest is None):
        raise FewshotError("--organize and --dest go together")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_dest(inputs: list[Path], dest_root: Path, folders: dict[str, Path]) -> None:
    """Refuse a destination inside an input folder (its images would be labelled again)."""
    if dest_root.exists() and not dest_root.is_dir():
        raise FewshotError(f"--dest {dest_root} is not a folder")
    for item in inputs:
        if not item.is_dir():
            continue
        folder = item.resolve()
        if _inside(dest_root, folder):
            raise FewshotError(
                f"--dest {dest_root} is inside the input folder {item}: choose a destination outside it"
            )
        if any(_inside(folder, f) for f in folders.values()):
            raise FewshotError(
                f"the input folder {item} is one of the --dest label folders: move it out first"
            )


def _as_paths(inputs) -> list[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return [Path(i).expanduser() for i in inputs]


def _error_row(path: Path | str, reason: str) -> dict:
    return {
        "path": str(path),
        "status": "error",
        "label": None,
        "probability": None,
        "top": [],
        "organized_to": None,
        "error": reason,
    }


def _label_rows(batch, classifier, top_k: int, threshold: float | None) -> dict[str, dict]:
    results: dict[str, dict] = {}
    if batch.images is not None:
        encoder, names = classifier.encoder, classifier.class_names
        with torch.inference_mode():
            probs = classifier.proba_embeddings(encoder.encode(batch.images))
            top_p, top_i = probs.topk(top_k, dim=-1)
        for path, ps, idx in zip(batch.paths, top_p.cpu().tolist(), top_i.cpu().tolist(), strict=True):
            top = [{"label": names[i], "probability": _round(p)} for p, i in zip(ps, idx, strict=True)]
            label = top[0]["label"] if threshold is None or ps[0] >= threshold else UNKNOWN
            results[str(path)] = {
                **_error_row(path, ""),
                "status": "ok",
                "label": label,
                "probability": top[0]["probability"],
                "top": top,
                "error": None,
            }
    for path, reason in batch.failures:
        results[str(path)] = _error_row(path, reason)
    return results


class _Run:
    """One labelling pass over the images not yet in the journal."""

    def __init__(self, journal, organize: str | None, folders: dict[str, Path]) -> None:
        self.journal, self.organize, self.folders = journal, organize, folders
        self.counts = {"labelled": 0, "failed": 0, "unknown": 0, "organized": 0}

    def finish_pending(self) -> None:
        """Complete the placements an interrupted run journaled but may not have finished."""
        from fewshot.zeroshot.organize import finish_placement

        rows = self.journal.pending
        if not rows:
            return
        failed = {}
        for row in rows:
            if row["organized_to"] is not None:
                try:
                    finish_placement(row["path"], Path(row["organized_to"]), self.organize)
                except OSError as err:
                    failed[row["path"]] = f"not organised: {err}"
        self.journal.end(rows, failed)

    def write(self, rows: list[dict]) -> None:
        """Journal `rows` (targets chosen first), then place their files, then mark them done."""
        from fewshot.zeroshot.organize import choose_target, place_at

        for row in rows:
            self.counts["labelled" if row["status"] == "ok" else "failed"] += 1
            self.counts["unknown"] += row["label"] == UNKNOWN
        placing = [r for r in rows if self.organize and r["status"] == "ok"]
        claimed = set(self.journal.claimed)
        for row in placing:
            target = choose_target(row["path"], self.folders[row["label"]], claimed)
            row["organized_to"] = str(target)
            claimed.add(str(target))
        self.journal.append(rows, end=not placing)
        if not placing:
            return
        failed = {}
        for row in placing:
            try:
                place_at(row["path"], Path(row["organized_to"]), self.organize)
                self.counts["organized"] += 1
            except OSError as err:
                failed[row["path"]] = f"not organised: {err}"
        self.journal.end(placing, failed)


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
        FewshotError: bad options, an output that cannot be written, another run writing the
            same `out`, or a partial output from a run with other settings (or damaged).
        DataError: an input does not exist or holds no image.
    """
    from fewshot.data.images import scan_images
    from fewshot.locking import exclusive_lock
    from fewshot.outputs import check_writable
    from fewshot.zeroshot.journal import Journal, RowFormat
    from fewshot.zeroshot.organize import label_folders

    if not classifier.fitted:
        classifier.fit()
    _check_options(classifier, top_k, threshold, organize, dest)
    top_k = min(top_k, len(classifier.class_names))
    out = check_writable(out, "--out")
    row_format = RowFormat(output_format(out, fmt), top_k)
    input_paths = _as_paths(inputs)
    dest_root = Path(dest).expanduser().resolve() if dest is not None else None
    folders = label_folders(dest_root, [*classifier.class_names, UNKNOWN]) if dest_root else {}
    if dest_root is not None:
        _check_dest(input_paths, dest_root, folders)
    encoder = classifier.encoder
    settings = {
        "class_names": classifier.class_names,
        "templates": classifier.templates,
        "encoder": encoder.config() if hasattr(encoder, "config") else None,
        "top_k": top_k,
        "threshold": threshold,
        "organize": organize,
        "dest": str(dest_root) if dest_root else None,
        "format": row_format.fmt,
    }
    try:
        scan = scan_images(input_paths, recursive=recursive)
        paths, problems = scan.paths, scan.problems
    except DataError:
        if restart or not out.with_name(out.name + ".partial").exists():
            raise
        paths, problems = [], []  # perhaps everything was labelled (and moved away) before the interruption
    with exclusive_lock(out, "these labels"):
        journal = Journal(out, settings, top_k, restart)
        try:
            resumed = len(journal.done)
            run = _Run(journal, organize, folders)
            run.finish_pending()
            start = time.perf_counter()
            problem_rows = [_error_row(p, r) for p, r in problems if str(p) not in journal.done]
            if problem_rows:
                run.write(problem_rows)
            _label_all(
                run,
                [p for p in paths if str(p) not in journal.done],
                classifier,
                top_k,
                threshold,
                batch_size,
                workers,
                progress,
            )
            seconds = time.perf_counter() - start
            journal.finish(row_format)
        finally:
            journal.close()
    counts = run.counts
    return LabelSummary(
        out=str(out),
        total=resumed + counts["labelled"] + counts["failed"],
        labelled=counts["labelled"],
        failed=counts["failed"],
        unknown=counts["unknown"],
        organized=counts["organized"],
        resumed=resumed,
        seconds=round(seconds, 3),
        images_per_second=round(counts["labelled"] / seconds, 2) if seconds > 0 else 0.0,
    )


def _label_all(
    run: _Run, paths: list[Path], classifier, top_k, threshold, batch_size, workers, progress
) -> None:
    from fewshot.data.images import stream_images

    position = {str(p): i for i, p in enumerate(paths)}
    bar = None
    if show_progress(progress):
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", desc="labelling", dynamic_ncols=True)
    preprocess = classifier.encoder.preprocess
    for batch in stream_images(paths, preprocess, batch_size=batch_size, workers=workers):
        results = _label_rows(batch, classifier, top_k, threshold)
        # rows in discovery order, so a resumed run writes the same file as an uninterrupted one
        run.write([results[p] for p in sorted(results, key=position.__getitem__)])
        if bar is not None:
            bar.update(len(results))
    if bar is not None:
        bar.close()
