"""One labelling pass: rows for decoded batches, journaled before their images are placed.

`fewshot.zeroshot.labelling.label_images` checks the options, opens the journal and hands the
images not yet in it to `label_all`; the row format is described there.
"""

from __future__ import annotations

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


def label_rows(batch, classifier, top_k: int, threshold: float | None) -> dict[str, dict]:
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
    run: LabelPass, paths: list[Path], classifier, top_k, threshold, batch_size, workers, progress
) -> None:
    """Label `paths` batch by batch as worker processes decode them; `run` writes the rows."""
    from fewshot.data.images import stream_images

    position = {str(p): i for i, p in enumerate(paths)}
    bar = None
    if show_progress(progress):
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", desc="labelling", dynamic_ncols=True)
    preprocess = classifier.encoder.preprocess
    for batch in stream_images(paths, preprocess, batch_size=batch_size, workers=workers):
        results = label_rows(batch, classifier, top_k, threshold)
        # rows in discovery order, so a resumed run writes the same file as an uninterrupted one
        run.write([results[p] for p in sorted(results, key=position.__getitem__)])
        if bar is not None:
            bar.update(len(results))
    if bar is not None:
        bar.close()
