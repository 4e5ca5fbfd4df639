"""One labelling pass: rows for decoded batches, journaled before their images are placed.

`fewshot.zeroshot.labelling.label_images` checks the options, opens the journal and hands the
images not yet in it to `label_all`; the row format is described there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fewshot.progress import show_progress

UNKNOWN = "unknown"


def _round(value: float) -> float:
    return float(f"{value:.6f}")


def error_row(path: Path | str, reason: str) -> dict:
    return {
        "path": str(path),
        "status": "error",
        "label": None,
        "probability": None,
        "top": [],
        "organized_to": None,
        "error": reason,
    }


@dataclass
class ScoredBatch:
    """One batch's top-k: ``top_p[j]`` / ``top_i[j]`` (k probabilities and class indices) for
    ``paths[j]``; ``failures`` the images that could not be read, with reasons."""

    paths: list[Path]
    top_p: list[list[float]]
    top_i: list[list[int]]
    failures: list[tuple[Path, str]] = field(default_factory=list)


def score_batch(batch, classifier, top_k: int) -> ScoredBatch:
    """The local engine: the top-k of a decoded `ImageBatch`, in this process."""
    if batch.images is None:
        return ScoredBatch([], [], [], list(batch.failures))
    with torch.inference_mode():
        probs = classifier.proba_embeddings(classifier.encoder.encode(batch.images))
        top_p, top_i = probs.topk(top_k, dim=-1)
    return ScoredBatch(list(batch.paths), top_p.cpu().tolist(), top_i.cpu().tolist(), list(batch.failures))


def label_rows(batch: ScoredBatch, names: list[str], threshold: float | None) -> dict[str, dict]:
    results: dict[str, dict] = {}
    for path, ps, idx in zip(batch.paths, batch.top_p, batch.top_i, strict=True):
        top = [{"label": names[i], "probability": _round(p)} for p, i in zip(ps, idx, strict=True)]
        label = top[0]["label"] if threshold is None or ps[0] >= threshold else UNKNOWN
        results[str(path)] = {
            **error_row(path, ""),
            "status": "ok",
            "label": label,
            "probability": top[0]["probability"],
            "top": top,
            "error": None,
        }
    for path, reason in batch.failures:
        results[str(path)] = error_row(path, reason)
    return results


def local_batches(
    paths: list[Path], classifier, top_k: int, batch_size: int, workers
) -> Iterator[ScoredBatch]:
    """`paths` decoded by `workers` processes and scored here, batch by batch, in order."""
    from fewshot.data.images import stream_images

    preprocess = classifier.encoder.preprocess
    for batch in stream_images(paths, preprocess, batch_size=batch_size, workers=workers):
        yield score_batch(batch, classifier, top_k)


class LabelPass:
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


def label_all(
    run: LabelPass,
    paths: list[Path],
    classifier,
    top_k,
    threshold,
    batch_size,
    workers,
    progress,
    batches: Callable[..., Iterable[ScoredBatch]] | None = None,
) -> None:
    """Label `paths` batch by batch as they are scored; `run` writes the rows.

    `batches(paths, classifier, top_k, batch_size, workers)` yields `ScoredBatch`es in the order
    of `paths` (default `local_batches`; ``fewshot label --engine ray`` passes Ray Data's).
    """
    position = {str(p): i for i, p in enumerate(paths)}
    bar = None
    if show_progress(progress):
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", desc="labelling", dynamic_ncols=True)
    for batch in (batches or local_batches)(paths, classifier, top_k, batch_size, workers):
        results = label_rows(batch, classifier.class_names, threshold)
        # rows in discovery order, so a resumed run writes the same file as an uninterrupted one
        run.write([results[p] for p in sorted(results, key=position.__getitem__)])
        if bar is not None:
            bar.update(len(results))
    if bar is not None:
        bar.close()
