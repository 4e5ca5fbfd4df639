"""What a review exports: a corrected CSV, a folder tree, Label Studio and FiftyOne files.

- `export_csv`: the results' own columns and rows, ``label`` set to the reviewed label
  (accepted, corrected; skipped and undecided rows keep the prediction), plus ``predicted``
  (the label the file had) and ``decision`` (accepted / corrected / skipped / empty).
- `export_folder`: the accepted and corrected images in ``DEST/<label>/`` through the
  organiser `fewshot label --organize` uses (`fewshot.zeroshot.organize`): label-derived folder
  names never leave DEST, names already taken get ``-1``, ``-2``, and files appear only
  complete. The tree is built in a hidden ``.DEST.partial`` beside DEST and renamed onto DEST
  at the end, so DEST is either absent or complete; an export killed before the rename leaves
  only the hidden folder, removed by the next export. ``move`` copies first and removes the
  sources only once DEST is complete: a kill leaves an image twice, never nowhere.
- `export_label_studio`: tasks in Label Studio's JSON import format, each image's prediction
  under ``predictions`` (``score``: its probability) and a reviewed label under
  ``annotations``; the matching labelling config is written beside it (``*.xml``).
- `export_fiftyone`: ``labels.json`` as FiftyOne's image-classification dataset format has it
  (``classes``, and ``labels`` keyed by the image's path under the images root without its
  extension, each ``{"label", "confidence"}``).

Every file is written atomically (`fewshot.fileio.atomic_write_bytes`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from xml.sax.saxutils import quoteattr

from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.review.results import read_rows
from fewshot.review.state import ACCEPTED, CORRECTED, DECISION_NAMES, ReviewState

MODES = ("copy", "link", "move")


def _write(path: Path, payload: bytes) -> Path:
    from fewshot.fileio import atomic_write_bytes

    return atomic_write_bytes(path, payload)


def export_csv(state: ReviewState, out: str | os.PathLike[str]) -> Path:
    """The results with the reviewed labels (see the module docstring); returns `out`."""
    columns, rows = read_rows(state.results.source)
    header = [c for c in columns if c not in ("predicted", "decision")] + ["predicted", "decision"]
    if "label" not in header:
        header.insert(1, "label")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows):
        code = int(state.decision[i])
        ok = state.ok[i]
        out_row = dict(row)
        out_row["predicted"] = row.get("label") or ""
        out_row["decision"] = DECISION_NAMES[code] or ""
        if ok and code in (ACCEPTED, CORRECTED):
            out_row["label"] = state.labels[int(state.final[i])]
        writer.writerow(out_row)
    return _write(Path(out), buffer.getvalue().encode("utf-8", "surrogateescape"))


def reviewed_rows(state: ReviewState) -> list[int]:
    return [int(i) for i, code in enumerate(state.decision) if code in (ACCEPTED, CORRECTED)]


def export_folder(state: ReviewState, dest: str | os.PathLike[str], mode: str, resolve) -> dict:
    """Place the reviewed images in ``dest/<label>/``; `resolve(row)` gives a row's file or None.

    Returns ``{"dest", "placed", "missing"}``.

    Raises:
        FewshotError: an unknown mode, or `dest` exists already.
    """
    from fewshot.zeroshot.organize import choose_target, label_folders, place_at

    if mode not in MODES:
        raise FewshotError(f"unknown export mode {mode!r}: choose one of {', '.join(MODES)}")
    dest = Path(dest).expanduser().absolute()
    if os.path.lexists(dest):
        raise FewshotError(f"{dest} exists already: remove it or export elsewhere")
    staging = dest.with_name(f".{dest.name}.partial")
    if os.path.lexists(staging):
        shutil.rmtree(staging)  # left by an export that was killed: copies and links only
    rows = reviewed_rows(state)
    folders = label_folders(staging, sorted({state.labels[int(state.final[i])] for i in rows}))
    placed, missing, claimed = [], 0, set()
    staging.mkdir(parents=True)
    for i in rows:
        source = resolve(i)
        if source is None:
            missing += 1
            continue
        target = choose_target(source, folders[state.labels[int(state.final[i])]], claimed)
        claimed.add(str(target))
        place_at(source, target, "link" if mode == "link" else "copy")
        placed.append(source)
    crash_point("review.export-staged")
    os.rename(staging, dest)
    crash_point("review.export-renamed")
    if mode == "move":
        for source in placed:
            Path(source).unlink(missing_ok=True)
    return {"dest": str(dest), "placed": len(placed), "missing": missing}


def _choice(label: str) -> list[dict]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]


def export_label_studio(state: ReviewState, out: str | os.PathLike[str], relative) -> Path:
    """Label Studio tasks (``relative(row)``: the image's path under the root, POSIX style)."""
    tasks = []
    for i in range(len(state.results)):
        if not state.ok[i]:
            continue
        task: dict = {"data": {"image": "/data/local-files/?d=" + relative(i)}}
        task["predictions"] = [
            {
                "model_version": "fewshot",
                "score": round(float(state.results.confidence[i]), 6),
                "result": _choice(state.labels[int(state.results.predicted[i])]),
            }
        ]
        if state.decision[i] in (ACCEPTED, CORRECTED):
            task["annotations"] = [{"result": _choice(state.labels[int(state.final[i])])}]
        tasks.append(task)
    out = Path(out)
    choices = "".join(f"    <Choice value={quoteattr(name)}/>\n" for name in sorted(set(state.labels)))
    config = (
        '<View>\n  <Image name="image" value="$image"/>\n'
        f'  <Choices name="label" toName="image" choice="single">\n{choices}  </Choices>\n</View>\n'
    )
    _write(out.with_suffix(".xml"), config.encode())
    return _write(out, json.dumps(tasks, indent=1, ensure_ascii=True).encode())


def export_fiftyone(state: ReviewState, out: str | os.PathLike[str], relative) -> Path:
    """FiftyOne's ``labels.json``: reviewed labels where there are, else the predictions."""
    labels = {}
    for i in range(len(state.results)):
        if not state.ok[i]:
            continue
        key = str(Path(relative(i)).with_suffix(""))
        reviewed = state.decision[i] in (ACCEPTED, CORRECTED)
        entry = {"label": state.labels[int(state.final[i])]}
        entry["confidence"] = 1.0 if reviewed else round(float(state.results.confidence[i]), 6)
        labels[key] = entry
    document = {"classes": sorted(set(state.labels)), "labels": labels}
    return _write(Path(out), json.dumps(document, indent=1, ensure_ascii=True).encode())
