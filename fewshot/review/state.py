"""What the review knows: the results, the decisions replayed from the journal, the queues.

Semantics of decisions (one server, any number of tabs):

- An image's decision is that of the *last* record naming it that is not undone, in the
  order the server received them: two tabs deciding one image -> the later one wins.
- A decision may carry ``base``, the decision id the tab saw for each image (None: none);
  when another tab has decided the image since, the decision is refused (`Conflict`, HTTP
  409) and the tab is sent the image's current state instead.
- ``undo`` marks one record undone (every image it named falls back to its previous live
  decision). Without a target it undoes the latest live record of the same tab (its own
  last decision, even when another tab decided something since), or, with no tab, the
  latest overall. An undo cannot be undone: decide again instead.

Pages are computed with numpy over sort orders made once (`orders`), so a page of a
100,000-row file costs a few vectorised passes plus `row_view` for only the rows shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewshot.errors import FewshotError
from fewshot.review.journal import DecisionJournal, journal_path
from fewshot.review.results import Results, displayable, load_results

NONE, ACCEPTED, CORRECTED, SKIPPED = 0, 1, 2, 3
DECISION_NAMES = {NONE: None, ACCEPTED: "accepted", CORRECTED: "corrected", SKIPPED: "skipped"}
CODES = {"accept": ACCEPTED, "correct": CORRECTED, "skip": SKIPPED}
SORTS = ("confidence", "margin", "confidence-desc", "probe")
QUEUES = ("all", "todo", "uncertain", "reviewed")
MAX_LABEL = 200


class Conflict(FewshotError):
    """Another tab changed these images since the page saw them (HTTP 409)."""

    def __init__(self, message: str, rows: list[int]) -> None:
        super().__init__(message)
        self.rows = rows


def clean_label(label: object) -> str:
    """A typed label: stripped text without control characters, 1-200 characters."""
    if not isinstance(label, str) or not label.strip():
        raise FewshotError("give a label (text)")
    text = label.strip()
    if len(text) > MAX_LABEL or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise FewshotError(f"a label is at most {MAX_LABEL} characters, without control characters")
    return text


@dataclass
class Page:
    total: int
    page: int
    pages: int
    rows: list[int]


class ReviewState:
    """The results of `results_path`, with the decisions of its journal applied."""

    def __init__(self, results_path: str | os.PathLike[str], results: Results | None = None) -> None:
        self.results = results if results is not None else load_results(results_path)
        r = self.results
        self.labels = list(r.classes)  # grows with typed labels
        self._label_index = {name: i for i, name in enumerate(self.labels)}
        self.ok = np.array([s == "ok" for s in r.status], dtype=bool)
        self.decision = np.zeros(len(r), dtype=np.int8)
        self.final = r.predicted.copy()
        self.decided_by = np.zeros(len(r), dtype=np.int64)
        self.history: dict[int, list[int]] = {}  # row -> live record ids naming it, oldest first
        self.items: dict[int, dict[int, int]] = {}  # record id -> {row: label index}
        self._codes: dict[int, int] = {}  # record id -> decision code
        self.undone: set[int] = set()
        self.probe_label = np.full(len(r), -1, dtype=np.int32)
        self.probe_p = np.full(len(r), np.nan, dtype=np.float32)
        self._row_of = r.row_of()
        self.orders = self._orders()
        self.journal = DecisionJournal(journal_path(results_path), Path(results_path).name)
        try:
            for record in self.journal.records:
                self._apply(record)
        except BaseException:
            self.journal.close()
            raise

    # -- orders and pages --------------------------------------------------------------

    def _orders(self) -> dict[str, np.ndarray]:
        r = self.results
        # error rows last; ties broken by row number (a stable sort), so pages are reproducible
        conf, margin = np.where(self.ok, r.confidence, 2.0), np.where(self.ok, r.margin, 2.0)
        orders = {
            "confidence": np.argsort(conf, kind="stable"),
            "margin": np.argsort(margin, kind="stable"),
            "confidence-desc": np.argsort(np.where(self.ok, -r.confidence, 2.0), kind="stable"),
        }
        orders["probe"] = orders["confidence"]
        return orders

    def disagree(self) -> np.ndarray:
        """Rows where the refitted probe's label differs from the predicted one."""
        return (self.probe_label >= 0) & (self.probe_label != self.results.predicted)

    def mask(self, label: str | None, queue: str, threshold: float) -> np.ndarray:
        m = self.ok.copy()
        if label is not None:
            if label not in self._label_index:
                return np.zeros_like(m)
            m &= self.results.predicted == self._label_index[label]
        if queue == "todo":
            m &= self.decision == NONE
        elif queue == "reviewed":
            m &= self.decision != NONE
        elif queue == "uncertain":
            m &= (self.decision == NONE) & ((self.results.confidence < threshold) | self.disagree())
        return m

    def page(self, label=None, queue="all", sort="confidence", page=1, per_page=48, threshold=0.5) -> Page:
        """The row numbers of one page (1-based) of a gallery, with the total and page count."""
        if sort not in SORTS or queue not in QUEUES:
            raise FewshotError(f"sort is one of {', '.join(SORTS)}; queue one of {', '.join(QUEUES)}")
        order = self.orders[sort]
        selected = order[self.mask(label, queue, threshold)[order]]
        pages = max(1, -(-len(selected) // per_page))
        page = min(max(1, page), pages)
        rows = selected[(page - 1) * per_page : page * per_page]
        return Page(len(selected), page, pages, [int(i) for i in rows])

    def counts(self) -> list[dict]:
        """Per predicted label: images and how many are reviewed, most images first."""
        n = len(self.labels)
        pred = self.results.predicted[self.ok]
        total = np.bincount(pred, minlength=n)
        done = np.bincount(pred[self.decision[self.ok] != NONE], minlength=n)
        entries = [
            {"label": name, "count": int(total[i]), "reviewed": int(done[i])}
            for i, name in enumerate(self.labels)
            if total[i]
        ]
        return sorted(entries, key=lambda e: (-e["count"], e["label"]))

    def summary(self) -> dict:
        d = self.decision[self.ok]
        return {
            "rows": len(self.results),
            "images": int(self.ok.sum()),
            "unreadable": int((~self.ok).sum()),
            "reviewed": int((d != NONE).sum()),
            "accepted": int((d == ACCEPTED).sum()),
            "corrected": int((d == CORRECTED).sum()),
            "skipped": int((d == SKIPPED).sum()),
            "last_id": len(self.journal.records),
        }

    def label_name(self, index: int) -> str | None:
        return self.labels[index] if index >= 0 else None

    def row_view(self, i: int) -> dict:
        """What the page shows of row `i` (JSON-ready)."""
        r = self.results
        top = [
            {"label": self.labels[int(c)], "p": float(p)}
            for c, p in zip(r.top[i], r.top_p[i], strict=True)
            if c >= 0
        ]
        probe = None
        if self.probe_label[i] >= 0:
            probe = {"label": self.labels[int(self.probe_label[i])], "p": float(self.probe_p[i])}
        return {
            "row": i,
            "path": displayable(r.paths[i]),
            "predicted": self.label_name(int(r.predicted[i])),
            "confidence": float(r.confidence[i]),
            "margin": float(r.margin[i]),
            "top": top,
            "decision": DECISION_NAMES[int(self.decision[i])],
            "label": self.label_name(int(self.final[i])),
            "decision_id": int(self.decided_by[i]) or None,
            "probe": probe,
        }

    # -- decisions -----------------------------------------------------------------------

    def _index(self, label: str) -> int:
        if label not in self._label_index:
            self._label_index[label] = len(self.labels)
            self.labels.append(label)
        return self._label_index[label]

    def _refresh(self, row: int) -> None:
        live = self.history.get(row)
        if not live:
            self.decision[row], self.decided_by[row] = NONE, 0
            self.final[row] = self.results.predicted[row]
            return
        record_id = live[-1]
        code, label = self._codes[record_id], self.items[record_id][row]
        self.decision[row], self.decided_by[row] = code, record_id
        self.final[row] = label if code != SKIPPED else self.results.predicted[row]

    def _apply(self, record: dict) -> None:
        """Replay one journal record (paths not in these results are ignored)."""
        if record["action"] == "undo":
            target = record["target"]
            self.undone.add(target)
            for row in self.items.get(target, {}):
                self.history[row] = [x for x in self.history.get(row, []) if x != target]
                self._refresh(row)
            return
        rid = record["id"]
        pairs: dict[int, int] = {}
        for path, label in record["items"]:
            row = self._row_of.get(path)
            if row is not None and self.ok[row]:
                pairs[row] = self._index(label) if label is not None else -1
        self.items[rid], self._codes[rid] = pairs, CODES[record["action"]]
        for row in pairs:
            self.history.setdefault(row, []).append(rid)
            self._refresh(row)

    def _check_rows(self, rows: list, base: list | None) -> list[int]:
        checked = []
        for row in rows:
            if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < len(self.results):
                raise FewshotError(f"no such image: {row!r}")
            if not self.ok[row]:
                raise FewshotError(f"image {row} has no label (unreadable): nothing to review")
            checked.append(row)
        if base is not None:
            if len(base) != len(checked):
                raise FewshotError("base needs one decision id per image")
            stale = [
                row for row, b in zip(checked, base, strict=True) if int(self.decided_by[row]) != (b or 0)
            ]
            if stale:
                raise Conflict("changed in another tab: reload to see the current decision", stale)
        return checked

    def decide(self, action: str, rows: list, label=None, base=None, tab=None, view=None) -> dict:
        """Accept, correct (to `label`) or skip `rows`; journaled before it returns the record."""
        if action not in CODES:
            raise FewshotError(f"unknown action {action!r}: accept, correct, skip or undo")
        if not rows:
            raise FewshotError("no image given")
        with self.journal.lock:  # check and write as one step: no other tab between them
            rows = self._check_rows(rows, base)
            if action == "correct":
                names = [clean_label(label)] * len(rows)
                if all(self.label_name(int(self.results.predicted[r])) == names[0] for r in rows):
                    action = "accept"  # "corrected" to the label it had: that is an accept
            elif action == "accept":
                names = [self.labels[int(self.results.predicted[row])] for row in rows]
            else:
                names = [None] * len(rows)
            items = [(self.results.paths[row], name) for row, name in zip(rows, names, strict=True)]
            record = self.journal.append(action, items=items, tab=tab, view=view)
        self._apply(record)
        return record

    def last_live(self, tab: str | None) -> int | None:
        for record in reversed(self.journal.records):
            if record["action"] == "undo" or record["id"] in self.undone:
                continue
            if tab is None or record.get("tab") == tab:
                return record["id"]
        return None

    def undo(self, target: int | None = None, tab: str | None = None) -> tuple[dict, list[int]]:
        """Undo record `target` (default: this tab's last live decision): (record, rows changed)."""
        with self.journal.lock:
            target = self.last_live(tab) if target is None else target
            if target is None:
                raise FewshotError("nothing to undo")
            if not isinstance(target, int) or target not in self.items or target in self.undone:
                raise Conflict(f"decision {target} cannot be undone (unknown, an undo, or undone)", [])
            record = self.journal.append("undo", target=target, tab=tab)
        self._apply(record)
        return record, list(self.items[target])

    def bulk_accept(self, label: str, threshold: float, tab: str | None = None) -> tuple[dict | None, int]:
        """Accept every undecided image predicted `label` at `threshold` or above, as one
        record (one undo takes it back): ``(record or None, images accepted)``."""
        with self.journal.lock:  # no tab decides one of these rows between the choice and the write
            rows = self.bulk_rows(label, threshold)
            record = self.decide("accept", rows, tab=tab) if rows else None
        return record, len(rows)

    def bulk_rows(self, label: str, threshold: float) -> list[int]:
        """Undecided rows predicted `label` with confidence at least `threshold`."""
        if label not in self._label_index:
            raise FewshotError(f"no images are predicted {label!r}")
        m = self.mask(label, "todo", 0.0) & (self.results.confidence >= threshold)
        return [int(i) for i in np.flatnonzero(m)]

    def last_view(self) -> dict | None:
        for record in reversed(self.journal.records):
            if "view" in record:
                return record["view"]
        return None

    def close(self) -> None:
        self.journal.close()
