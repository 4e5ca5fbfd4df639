"""Reading the CSV (or JSON Lines) that `fewshot label` and `fewshot predict` write.

Both have ``path``, ``label`` and ``probability`` columns; with ``--top-k K`` (always for
``label``) also ``label_1, probability_1 ... label_K, probability_K`` (``label_1`` is the top).
``fewshot label`` adds ``status`` (``ok`` / ``error``: an unreadable image has no label),
``organized_to`` and ``error``, and its ``label`` is ``unknown`` below its threshold while
``label_1`` keeps the top class. ``fewshot label -o x.jsonl`` writes the same rows as JSON
objects (``top``: a list of ``{label, probability}``).

Every cell is text: nothing in the file is evaluated, imported or executed. File names that
are not UTF-8 come back as surrogate escapes, as `fewshot label` wrote them. Rows are held in
numpy arrays so that 100,000 of them sort and filter in milliseconds:

- ``predicted[i]``: index into ``classes`` of row i's ``label`` (-1 for an error row);
- ``top[i, j]`` / ``top_p[i, j]``: the j-th best class and its probability (-1 / NaN if absent);
- ``confidence[i]``: the top probability; ``margin[i]``: top minus second. With only the top
  label known, the second is at most ``1 - p``, so the margin is taken as ``2p - 1`` (its
  lower bound, which orders rows as the confidence does).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from fewshot.errors import DataError

MAX_TOP = 50  # label_1..label_50 at most: a wider file is not one the toolkit wrote


@dataclass
class Results:
    """The rows of one results file (see the module docstring for the arrays)."""

    source: Path
    paths: list[str]
    classes: list[str]
    predicted: np.ndarray  # (n,) int32
    top: np.ndarray  # (n, k) int32
    top_p: np.ndarray  # (n, k) float32
    status: list[str]  # "ok" or "error" per row
    errors: dict[int, str] = field(default_factory=dict)
    kind: str = "predict"  # "label" (has a status column) or "predict"
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def k(self) -> int:
        return self.top.shape[1]

    @cached_property
    def confidence(self) -> np.ndarray:
        p = self.top_p[:, 0] if self.k else np.full(len(self), np.nan, np.float32)
        return np.nan_to_num(p, nan=-1.0)

    @cached_property
    def margin(self) -> np.ndarray:
        p1 = self.confidence
        if self.k >= 2:
            p2 = np.nan_to_num(self.top_p[:, 1], nan=0.0)
            return np.where(np.isnan(self.top_p[:, 1]), 2 * p1 - 1, p1 - p2)
        return 2 * p1 - 1

    def row_of(self) -> dict[str, int]:
        """Path -> row number (the last row wins when a path repeats)."""
        return {path: i for i, path in enumerate(self.paths)}


def displayable(text: str) -> str:
    """`text` with a non-UTF-8 file name's surrogate escapes shown as U+FFFD (for the page)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _probability(cell: str | None, where: str) -> float:
    if cell is None or cell == "":
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{where}: probability {cell[:40]!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{where}: probability {value} is not between 0 and 1")
    return value


def _top_width(columns: list[str]) -> int:
    k = 0
    while f"label_{k + 1}" in columns and k < MAX_TOP:
        k += 1
    return k


def _jsonl_rows(path: Path) -> tuple[list[str], list[dict]]:
    rows = []
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path} line {number} is not JSON") from None
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                raise DataError(f"{path} line {number}: a row needs a 'path'")
            row = {key: ("" if value is None else str(value)) for key, value in item.items() if key != "top"}
            for j, entry in enumerate(item.get("top") or [], start=1):
                if isinstance(entry, dict):
                    row[f"label_{j}"] = str(entry.get("label") or "")
                    row[f"probability_{j}"] = str(entry.get("probability", ""))
            rows.append(row)
    columns = sorted({key for row in rows for key in row}, key=lambda c: (c != "path", c))
    return columns, rows


def _csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    # surrogateescape: a name that is not UTF-8 comes back exactly as `fewshot label` wrote it
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        return columns, list(reader)


def read_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[dict]]:
    """``(columns, rows as dicts of text)`` of a results CSV or JSON Lines file.

    Raises:
        DataError: the file is missing, empty or lacks a ``path`` or ``label`` column.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"results file {path} does not exist (give the CSV that fewshot label/predict wrote)")
    try:
        jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
        columns, rows = _jsonl_rows(path) if jsonl else _csv_rows(path)
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if "path" not in columns or not ({"label", "label_1"} & set(columns)):
        raise DataError(
            f"{path} has no 'path' and 'label' columns: it is not a file from fewshot label or predict"
        )
    if not rows:
        raise DataError(f"{path} has no rows")
    return columns, rows


def load_results(path: str | os.PathLike[str]) -> Results:
    """The rows of a `fewshot label` / `fewshot predict` results file, as `Results`.

    Raises:
        DataError: not such a file, or a probability that is not a number in [0, 1].
    """
    path = Path(path).expanduser()
    columns, rows = read_rows(path)
    k = max(_top_width(columns), 1)
    pairs = [(f"label_{j}", f"probability_{j}") for j in range(1, k + 1)] if "label_1" in columns else []
    n = len(rows)
    names: dict[str, int] = {}  # label -> index in order of appearance
    shown: dict[str, str] = {}  # cell -> label (a label is text, unlike a file name)
    predicted = np.full(n, -1, dtype=np.int32)
    top = np.full((n, k), -1, dtype=np.int32)
    top_p = np.full((n, k), np.nan, dtype=np.float32)
    paths, status, errors = [], [], {}

    def index(cell: str) -> int:
        label = shown.get(cell)
        if label is None:
            label = shown[cell] = displayable(cell)
        return names.setdefault(label, len(names))

    for i, row in enumerate(rows):
        paths.append(row.get("path") or "")
        ok = (row.get("status") or "ok") == "ok" and bool(row.get("label") or row.get("label_1"))
        status.append("ok" if ok else "error")
        if not ok:
            errors[i] = row.get("error") or "no label"
            continue
        for j, (label_col, p_col) in enumerate(pairs or [("label", "probability")]):
            cell = row.get(label_col) or ""
            if cell:
                top[i, j] = index(cell)
                top_p[i, j] = _probability(row.get(p_col), f"{path} row {i + 2}")
        predicted[i] = index(row.get("label") or row["label_1"])
    return _assemble(path, columns, paths, status, errors, names, predicted, top, top_p)


def _assemble(path, columns, paths, status, errors, names, predicted, top, top_p) -> Results:
    """Renumber the labels in sorted order."""
    classes = sorted(names)
    rank = np.empty(len(names) + 1, dtype=np.int32)
    rank[-1] = -1  # -1 (no label) stays -1
    for new, name in enumerate(classes):
        rank[names[name]] = new
    kind = "label" if "status" in columns else "predict"
    return Results(path, paths, classes, rank[predicted], rank[top], top_p, status, errors, kind, columns)
