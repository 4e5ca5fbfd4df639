"""The ``<out>.log.csv`` of an adaptation run: one row per unit (epoch or grid value)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any


def log_bytes(rows: list[dict[str, Any]]) -> bytes:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue().encode()


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the whole log atomically (crash point ``adapt.log`` after it)."""
    from fewshot.faults import crash_point
    from fewshot.fileio import atomic_write_bytes

    atomic_write_bytes(path, log_bytes(rows))
    crash_point("adapt.log")
