"""The review's decisions: an append-only JSON Lines journal beside the results, fsync'd.

``<results>.review.jsonl``: line 1 is a header ``{"fewshot_review": 1, "results": NAME}``
(written whole: temporary file, fsync, rename); then one record per decision, in the order
the server received them, each with the next ``id`` (1, 2, ...)::

    {"id": 7, "t": 1700000000.5, "action": "correct", "items": [["a/01.jpg", "cat"]], "tab": "x1"}
    {"id": 8, "t": 1700000001.0, "action": "undo", "target": 7, "tab": "x1"}

``action`` is ``accept`` / ``correct`` (``items``: ``[path, label]`` pairs; a bulk accept is
one record with many items) / ``skip`` (label null) / ``undo`` (``target``: the id undone).

Durability: a record is one ``os.write`` on a descriptor opened with ``O_APPEND``, then
``fsync``, before the request that made it is answered, so a decision the page saw
acknowledged survives kill -9 and power loss. A kill in mid-write can only leave the *last*
line without its newline; opening the journal detects that line, drops it and truncates the
file back to the last complete record (that decision was never acknowledged). Any other
damage is refused with the line number.

Concurrency: one server per journal (`fewshot.locking.exclusive_lock` for the server's
lifetime: a second ``fewshot review`` of the same results is refused), and inside it one
lock around "take the next id, write, fsync", so requests from several browser tabs are
serialised into whole lines with distinct, increasing ids. What two tabs see is defined in
`fewshot.review.state`: the last decision received wins, and each tab undoes its own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from fewshot.errors import FewshotError
from fewshot.faults import crash_point

ACTIONS = ("accept", "correct", "skip", "undo")
HEADER_KEY = "fewshot_review"
VERSION = 1
VIEW_KEYS = ("label", "queue", "sort", "page", "threshold")


def journal_path(results: str | os.PathLike[str]) -> Path:
    """``<results>.review.jsonl``, beside the results file."""
    results = Path(results)
    return results.with_name(results.name + ".review.jsonl")


def _line(obj: dict) -> bytes:
    # ASCII: a file name that is not UTF-8 (a surrogate escape) becomes the JSON escape \udcff
    return (json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n").encode()


def _write_all(fd: int, data: bytes) -> None:
    """Write `data` at the end of the file; normally one call (a whole line at once)."""
    while data:
        written = os.write(fd, data)
        data = data[written:]
        if data:
            crash_point("review.journal-short-write")


def record_problem(record: object, expected_id: int) -> str | None:
    """Why `record` is not the journal's record number `expected_id`, or None."""
    if not isinstance(record, dict) or record.get("id") != expected_id:
        return f"expected record {expected_id}"
    action = record.get("action")
    if action not in ACTIONS or not isinstance(record.get("t"), (int, float)):
        return "bad action or time"
    if action == "undo":
        target = record.get("target")
        ok = isinstance(target, int) and not isinstance(target, bool) and 0 < target < expected_id
        return None if ok else "bad undo target"
    items = record.get("items")
    if not isinstance(items, list) or not items:
        return "no items"
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return "bad item"
        if not (item[1] is None if action == "skip" else isinstance(item[1], str) and item[1]):
            return "bad label"
    return None


class DecisionJournal:
    """The journal of one results file; `records` holds every record, oldest first.

    Raises:
        FewshotError: another review holds the journal, or it is damaged before its last line.
    """

    def __init__(self, path: str | os.PathLike[str], results_name: str = "") -> None:
        from fewshot.locking import exclusive_lock

        self.path = Path(path)
        self._stack = ExitStack()
        self._stack.enter_context(exclusive_lock(self.path, "decisions of this review"))
        self.lock = threading.RLock()  # held by the state around its checks too
        self.records: list[dict] = []
        self.dropped_bytes = 0  # a torn last line removed on opening
        try:
            if self.path.exists():
                self._load()
            else:
                self._create(results_name)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except BaseException:
            self._stack.close()
            raise

    def _create(self, results_name: str) -> None:
        from fewshot.fileio import atomic_write_bytes

        atomic_write_bytes(self.path, _line({HEADER_KEY: VERSION, "results": results_name}))
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the new name itself survives a power cut
        finally:
            os.close(folder)
        crash_point("review.journal-created")

    def _damaged(self, number: int, why: str) -> FewshotError:
        return FewshotError(
            f"{self.path} is damaged at line {number} ({why}): move it away to start the review over"
        )

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):  # a write cut short by a kill: never acknowledged, dropped
            self.dropped_bytes = len(raw) - len(complete)
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
                os.fsync(handle.fileno())
        lines = complete.split(b"\n")[:-1]
        if not lines:
            raise self._damaged(1, "no header")
        for number, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line.decode("ascii"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise self._damaged(number, "not a JSON line") from None
            if number == 1:
                if not isinstance(entry, dict) or entry.get(HEADER_KEY) != VERSION:
                    raise self._damaged(1, "not a fewshot review journal")
                continue
            problem = record_problem(entry, number - 1)
            if problem:
                raise self._damaged(number, problem)
            self.records.append(entry)

    def append(self, action: str, *, items=None, target=None, tab=None, view=None) -> dict:
        """Write one record (durably) and return it, with its ``id`` and time."""
        with self.lock:
            record: dict = {"id": len(self.records) + 1, "t": round(time.time(), 3), "action": action}
            if action == "undo":
                record["target"] = target
            else:
                record["items"] = [[path, label] for path, label in items]
            if tab:
                record["tab"] = str(tab)[:64]
            if view:
                record["view"] = {key: view[key] for key in VIEW_KEYS if view.get(key) is not None}
            problem = record_problem(record, record["id"])
            if problem:
                raise FewshotError(f"not a valid decision: {problem}")
            _write_all(self._fd, _line(record))
            crash_point("review.journal-written")
            os.fsync(self._fd)
            crash_point("review.journal-synced")
            self.records.append(record)
            return record

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None
        self._stack.close()

    def __enter__(self) -> DecisionJournal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
