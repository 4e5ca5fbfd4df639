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
from functools import partial
from pathlib import Path

from fewshot.errors import DataError, FewshotError
from fewshot.zeroshot.label_pass import UNKNOWN, LabelPass, error_row, label_all

__all__ = ["UNKNOWN", "LabelSummary", "label_images", "output_format"]
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

    @classmethod
    def of_pass(cls, out: Path, resumed: int, counts: dict[str, int], seconds: float) -> LabelSummary:
        return cls(
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


def output_format(out: Path, fmt: str | None = None) -> str:
    if fmt is None:
        fmt = "jsonl" if out.suffix.lower() in JSONL_SUFFIXES else "csv"
    if fmt not in ("csv", "jsonl"):
        raise FewshotError(f"unknown output format {fmt!r}: use csv or jsonl")
    return fmt


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
    batches=None,
) -> LabelSummary:
    """Label every image under `inputs` with a fitted `ZeroShotClassifier`; write `out`.

    Args:
        top_k: labels per row (at most the number of classes).
        threshold: top probability below which ``label`` is ``unknown`` (None: never).
        organize: ``copy``, ``move`` or ``link`` images into ``dest/<label>/`` (errors stay put).
        fmt: ``csv`` or ``jsonl``; None picks from the suffix of `out`.
        restart: discard the partial output of an interrupted run instead of resuming it.
        batches: what scores the images (`fewshot.zeroshot.label_pass.label_all`); None: this
            process. The output does not depend on it, so a run may resume with another.

    Raises:
        FewshotError: bad options, an output that cannot be written, another run writing the
            same `out`, or a partial output from a run with other settings (or damaged).
        DataError: an input does not exist or holds no image.
    """
    from fewshot.locking import exclusive_lock
    from fewshot.outputs import check_writable
    from fewshot.zeroshot.journal import Journal, RowFormat

    if not classifier.fitted:
        classifier.fit()
    _check_options(classifier, top_k, threshold, organize, dest)
    top_k = min(top_k, len(classifier.class_names))
    out = check_writable(out, "--out")
    row_format = RowFormat(output_format(out, fmt), top_k)
    input_paths = _as_paths(inputs)
    dest_root, folders = _destination(input_paths, dest, classifier.class_names)
    settings = _settings(classifier, top_k, threshold, organize, dest_root, row_format.fmt)
    paths, problems = _scan(input_paths, out, recursive, restart)
    label = partial(
        label_all,
        classifier=classifier,
        top_k=top_k,
        threshold=threshold,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        batches=batches,
    )
    with exclusive_lock(out, "these labels"):
        journal = Journal(out, settings, top_k, restart)
        resumed, counts, seconds = _label_journaled(
            journal, row_format, organize, folders, problems, paths, label
        )
    return LabelSummary.of_pass(out, resumed, counts, seconds)


def _destination(inputs: list[Path], dest, class_names: list[str]) -> tuple[Path | None, dict[str, Path]]:
    """The resolved ``--dest`` and its label folders (checked), or ``(None, {})``."""
    from fewshot.zeroshot.organize import label_folders

    if dest is None:
        return None, {}
    dest_root = Path(dest).expanduser().resolve()
    folders = label_folders(dest_root, [*class_names, UNKNOWN])
    _check_dest(inputs, dest_root, folders)
    return dest_root, folders


def _settings(classifier, top_k, threshold, organize, dest_root: Path | None, fmt: str) -> dict:
    """What the journal records: a resumed run must have been started with the same."""
    encoder = classifier.encoder
    return {
        "class_names": classifier.class_names,
        "templates": classifier.templates,
        "encoder": encoder.config() if hasattr(encoder, "config") else None,
        "top_k": top_k,
        "threshold": threshold,
        "organize": organize,
        "dest": str(dest_root) if dest_root else None,
        "format": fmt,
    }


def _scan(inputs: list[Path], out: Path, recursive: bool, restart: bool) -> tuple[list, list]:
    """``(image paths, (path, problem) pairs)`` under `inputs`."""
    from fewshot.data.images import scan_images

    try:
        scan = scan_images(inputs, recursive=recursive)
        return scan.paths, scan.problems
    except DataError:
        if restart or not out.with_name(out.name + ".partial").exists():
            raise
        return [], []  # perhaps everything was labelled (and moved away) before the interruption


def _label_journaled(
    journal, row_format, organize, folders, problems, paths, label
) -> tuple[int, dict, float]:
    """Finish the placements an interrupted run left, label what the journal lacks, write the
    output and close the journal: ``(rows resumed, counts of this pass, seconds)``."""
    try:
        resumed = len(journal.done)
        run = LabelPass(journal, organize, folders)
        run.finish_pending()
        start = time.perf_counter()
        problem_rows = [error_row(p, r) for p, r in problems if str(p) not in journal.done]
        if problem_rows:
            run.write(problem_rows)
        label(run, [p for p in paths if str(p) not in journal.done])
        seconds = time.perf_counter() - start
        journal.finish(row_format)
    finally:
        journal.close()
    return resumed, run.counts, seconds
