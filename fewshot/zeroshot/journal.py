"""The write-ahead journal of a labelling run, and the CSV / JSON Lines rows it becomes.

``<out>.partial`` is JSON Lines, ASCII only, appended and synced (``fsync``) step by step:

- line 1: ``{"settings": {...}}`` (labels, templates, model, top-k, threshold, organize);
  written whole (temporary file, then rename), so it is never cut short;
- ``{"row": {...}}`` per image, a batch at a time, synced *before* the batch's files are
  copied or moved; a row names the exact target of its image (``organized_to``);
- ``{"end": {"failed": {path: error}}}`` after the batch's placements: everything above is
  finished; ``failed`` lists images that could not be placed (they stay where they were).

Rows after the last ``end`` may have unfinished placements: a resumed run completes each one
(`fewshot.zeroshot.organize.finish_placement`) before it labels anything new. On resume
every line is checked strictly (a JSON object with exactly the expected keys and types); a
last line without its newline (a crash in mid-write) is dropped and redone, damage anywhere
else is an error asking for ``--restart``. At the end the journal is rendered to
``<out>.partial.render``, synced and renamed onto ``<out>``, then removed: ``<out>`` only ever
holds a complete result, byte-identical to that of an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from fewshot.errors import FewshotError
from fewshot.faults import crash_point

ROW_KEYS = ("path", "status", "label", "probability", "top", "organized_to", "error")


class RowFormat:
    """Formats rows as CSV or JSON Lines bytes (see `fewshot.zeroshot.labelling` for names)."""

    def __init__(self, fmt: str, top_k: int) -> None:
        self.fmt, self.top_k = fmt, top_k
        self.columns = ["path", "status", "label", "probability"]
        for i in range(1, top_k + 1):
            self.columns += [f"label_{i}", f"probability_{i}"]
        self.columns += ["organized_to", "error"]

    def header(self) -> bytes:
        return self._csv([self.columns]) if self.fmt == "csv" else b""

    @staticmethod
    def _csv(rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        # A file name that is not UTF-8 arrives as surrogate escapes: write back its own bytes.
        return buffer.getvalue().encode("utf-8", "surrogateescape")

    def format(self, rows: list[dict]) -> bytes:
        if self.fmt == "jsonl":
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            # A surrogate escape (a name that is not UTF-8) becomes the JSON escape "\udcff".
            return text.encode("utf-8", "backslashreplace")
        flat = []
        for row in rows:
            values = [row["path"], row["status"], row["label"] or "", _p(row["probability"])]
            top = row["top"] + [{"label": "", "probability": None}] * (self.top_k - len(row["top"]))
            for item in top:
                values += [item["label"], _p(item["probability"])]
            values += [row["organized_to"] or "", row["error"] or ""]
            flat.append(values)
        return self._csv(flat)


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _optional(value, kind) -> bool:
    return value is None or isinstance(value, kind)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def row_problem(row: object, top_k: int) -> str | None:
    """Why `row` is not a row this journal writes, or None when it is one."""
    if not isinstance(row, dict) or set(row) != set(ROW_KEYS):
        return f"a row must have exactly the keys {', '.join(ROW_KEYS)}"
    if not isinstance(row["path"], str) or row["status"] not in ("ok", "error"):
        return "bad path or status"
    if not (
        _optional(row["label"], str) and _optional(row["organized_to"], str) and _optional(row["error"], str)
    ):
        return "bad label, organized_to or error"
    if not (row["probability"] is None or _number(row["probability"])):
        return "bad probability"
    top = row["top"]
    if not isinstance(top, list) or len(top) > top_k:
        return "bad top labels"
    for item in top:
        if not isinstance(item, dict) or set(item) != {"label", "probability"}:
            return "bad top labels"
        if not isinstance(item["label"], str) or not _number(item["probability"]):
            return "bad top labels"
    return None


def _sync_write(handle, data: str) -> None:
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False) + "\n"


class Journal:
    """``<out>.partial``: see the module docstring. ``done``: paths with a row already."""

    def __init__(self, out: Path, settings: dict, top_k: int, restart: bool) -> None:
        self.out, self.top_k = out, top_k
        self.partial = out.with_name(out.name + ".partial")
        self.done: set[str] = set()
        self.failed: dict[str, str] = {}  # path -> error of a placement that failed
        self.claimed: set[str] = set()  # targets of failed placements: never chosen again
        self.pending: list[dict] = []  # rows after the last end marker
        if restart:
            self.partial.unlink(missing_ok=True)
        if self.partial.exists():
            self._load(settings)
        else:
            self._create(settings)
        self.handle = open(self.partial, "a", encoding="ascii", newline="")  # noqa: SIM115 - closed by close()

    def _create(self, settings: dict) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.partial.with_name(self.partial.name + ".new")
        with open(tmp, "w", encoding="ascii", newline="") as handle:
            _sync_write(handle, _line({"settings": settings}))
        os.replace(tmp, self.partial)
        crash_point("label.journal-created")

    def _damaged(self, number: int, why: str) -> FewshotError:
        return FewshotError(
            f"{self.partial} is damaged at line {number} ({why}): pass --restart to start over"
        )

    def _load(self, settings: dict) -> None:
        raw = self.partial.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]  # a line cut short by a crash is dropped and redone
        if len(complete) != len(raw):
            with open(self.partial, "r+b") as handle:
                handle.truncate(len(complete))
        lines = complete.split(b"\n")[:-1]
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line.decode("ascii"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise self._damaged(number, f"not a JSON line: {err}") from None
            if not isinstance(entry, dict) or len(entry) != 1:
                raise self._damaged(number, "not a journal entry")
            self._take(number, *next(iter(entry.items())), settings)
        if not lines:
            raise self._damaged(1, "no settings line")

    def _take(self, number: int, kind: str, value: object, settings: dict) -> None:
        if number == 1:
            if kind != "settings":
                raise self._damaged(1, "no settings line")
            if value != settings:
                raise FewshotError(
                    f"{self.partial} holds an interrupted run with other settings (labels, templates, "
                    "model, top-k, threshold, organize): re-run with the same options to resume, "
                    "or pass --restart"
                )
        elif kind == "row":
            problem = row_problem(value, self.top_k)
            if problem or value["path"] in self.done:
                raise self._damaged(number, problem or f"a second row for {value['path']!r}")
            self.done.add(value["path"])
            self.pending.append(value)
        elif kind == "end":
            failed = value.get("failed") if isinstance(value, dict) and set(value) == {"failed"} else None
            targets = {row["path"]: row["organized_to"] for row in self.pending}
            if not isinstance(failed, dict) or not all(
                isinstance(err, str) and targets.get(path) for path, err in failed.items()
            ):
                raise self._damaged(number, "bad end marker")
            self.record_end(failed, targets)
        else:
            raise self._damaged(number, f"unknown entry {kind!r}")

    def record_end(self, failed: dict[str, str], targets: dict[str, str | None]) -> None:
        self.failed.update(failed)
        self.claimed.update(targets[path] for path in failed)
        self.pending = []

    def append(self, rows: list[dict], end: bool) -> None:
        """Journal `rows` (synced); with `end`, also mark them finished (nothing to place)."""
        for row in rows:
            self.done.add(row["path"])
        data = "".join(_line({"row": row}) for row in rows)
        _sync_write(self.handle, data + (_line({"end": {"failed": {}}}) if end else ""))
        crash_point("label.rows-journaled")

    def end(self, rows: list[dict], failed: dict[str, str]) -> None:
        """The placements of `rows` are finished; `failed`: path -> why one was not placed."""
        _sync_write(self.handle, _line({"end": {"failed": failed}}))
        self.record_end(failed, {row["path"]: row["organized_to"] for row in rows})
        crash_point("label.batch-ended")

    def _rows(self):
        with open(self.partial, encoding="ascii") as handle:
            next(handle)  # settings
            for line in handle:
                entry = json.loads(line)
                if "row" in entry:
                    row = entry["row"]
                    if row["path"] in self.failed:
                        row["organized_to"], row["error"] = None, self.failed[row["path"]]
                    yield row

    def finish(self, fmt: RowFormat, chunk: int = 1024) -> None:
        """Render the rows to ``<out>`` atomically and remove the journal."""
        self.close()
        tmp = self.partial.with_name(self.partial.name + ".render")
        with open(tmp, "wb") as out:
            out.write(fmt.header())
            rows: list[dict] = []
            for row in self._rows():
                rows.append(row)
                if len(rows) == chunk:
                    out.write(fmt.format(rows))
                    rows = []
            out.write(fmt.format(rows))
            out.flush()
            os.fsync(out.fileno())
        crash_point("label.rendered")
        os.replace(tmp, self.out)
        crash_point("label.output-replaced")
        self.partial.unlink()  # the run is complete: a rerun now is a new run

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.close()
