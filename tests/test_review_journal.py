"""The decision journal under kill -9, torn writes and concurrent tabs.

kill -9: a child process (forked, so no interpreter start per trial) appends decisions with
`fewshot.faults` armed to SIGKILL it at the N-th crash point, for every N a clean run reaches;
writes are forced short (a few bytes per ``os.write``) so that kills also land in mid-line.
After each kill the journal reopens with every decision the child had acknowledged, the torn
tail (if any) dropped, and a rerun that appends the rest ends with exactly the records of an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from review_fixtures import review_workspace

from fewshot import faults
from fewshot.errors import FewshotError
from fewshot.review import journal as journal_module
from fewshot.review.journal import DecisionJournal
from fewshot.review.session import ReviewSession

DECISIONS = [("correct", f"img{i}.jpg", f"label {i} " + "é" * i) for i in range(3)] + [
    ("skip", "x.jpg", None)
]


def _append_missing(path: Path, acked: Path | None = None) -> None:
    """Append the decisions `path` lacks (a rerun resumes); note each acknowledged one."""
    with DecisionJournal(path, "labels.csv") as journal:
        for action, image, label in DECISIONS[len(journal.records) :]:
            record = journal.append(action, items=[(image, label)], tab="t")
            if acked is not None:
                with open(acked, "a") as handle:
                    handle.write(f"{record['id']}\n")


def _short_writes(fd, data, _write=os.write):
    return _write(fd, data[:9])  # at most 9 bytes per call: kills land inside lines


def _run_child(path: Path, acked: Path, crash_at: int, log: Path | None = None) -> int:
    pid = os.fork()
    if pid == 0:  # the child: armed, short writes, appends until it is killed
        code = 0
        try:
            faults._AT, faults._count, faults._LOG = crash_at, 0, str(log) if log else None
            journal_module.os.write = _short_writes
            # a fixed clock: a record's length (so its count of short writes, so the count of
            # crash points) must not depend on how many digits round(time.time(), 3) prints
            journal_module.time.time = lambda: 1_700_000_000.125
            _append_missing(path, acked)
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def _content(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_bytes().split(b"\n") if line]
    return [{k: v for k, v in entry.items() if k != "t"} for entry in lines]


@pytest.fixture
def clean(tmp_path):
    """The crash points of an uninterrupted run, and its records."""
    log, path = tmp_path / "points.log", tmp_path / "clean" / "j.jsonl"
    path.parent.mkdir()
    status = _run_child(path, tmp_path / "acked", 0, log)
    assert os.WEXITSTATUS(status) == 0
    points = [line.split("\t")[1] for line in log.read_text().splitlines()]
    return points, _content(path)


def test_kill9_at_every_point_keeps_every_acknowledged_decision_and_a_rerun_completes(tmp_path, clean):
    points, expected = clean
    assert "review.journal-short-write" in points and "review.journal-synced" in points
    torn = 0
    for n in range(1, len(points) + 1):
        trial = tmp_path / f"kill-{n}"
        trial.mkdir()
        path, acked = trial / "j.jsonl", trial / "acked"
        status = _run_child(path, acked, n)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9, (n, points[n - 1])
        acknowledged = [int(x) for x in acked.read_text().split()] if acked.exists() else []
        if not path.exists():
            assert points[n - 1].startswith("review.journal-created") or not acknowledged
            continue
        raw = path.read_bytes()
        torn += not raw.endswith(b"\n")
        with DecisionJournal(path) as journal:  # reopening drops a torn tail, keeps the rest
            ids = [r["id"] for r in journal.records]
            assert set(acknowledged) <= set(ids), (n, points[n - 1])
            assert ids == list(range(1, len(ids) + 1))
        assert path.read_bytes().endswith(b"\n")
        _append_missing(path)
        assert _content(path) == expected, (n, points[n - 1])
    assert torn >= 3  # the short writes really did leave torn lines to recover from


def test_a_torn_last_line_at_any_byte_is_dropped_and_the_journal_goes_on(tmp_path):
    path = tmp_path / "j.jsonl"
    _append_missing(path)
    whole = path.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last_start + 1, len(whole)):
        path.write_bytes(whole[:cut])
        with DecisionJournal(path) as journal:
            assert len(journal.records) == len(DECISIONS) - 1 and journal.dropped_bytes == cut - last_start
            journal.append("accept", items=[("y.jpg", "cat")])
        assert _content(path)[-1]["items"] == [["y.jpg", "cat"]] and len(_content(path)) == len(DECISIONS) + 1


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda b: b.replace(b'"id":2', b'"id":7'), "line 3 (expected record 2)"),
        (lambda b: b.replace(b"img0", b"im\n0"), "line 2 (not a JSON line)"),
        (lambda b: b'{"other":1}\n' + b.split(b"\n", 1)[1], "not a fewshot review journal"),
        (lambda b: b.replace(b'"correct"', b'"delete"', 1), "bad action"),
    ],
)
def test_damage_before_the_last_line_is_refused_with_its_line(tmp_path, damage, fragment):
    path = tmp_path / "j.jsonl"
    _append_missing(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(FewshotError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        DecisionJournal(path)


def test_concurrent_tabs_write_whole_lines_with_distinct_ids(tmp_path):
    csv_path, _ = review_workspace(tmp_path)
    per_tab, tabs = 40, 6
    errors = []
    with ReviewSession(csv_path) as session:
        state = session.state

        def tab(t: int) -> None:
            try:
                for i in range(per_tab):
                    row = (t * per_tab + i) % 12
                    if i % 3 == 2:
                        state.decide("correct", [row], label=f"tab{t}", tab=f"tab{t}")
                    else:
                        state.decide("accept" if i % 2 else "skip", [row], tab=f"tab{t}")
            except Exception as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=tab, args=(t,)) for t in range(tabs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        views = [state.row_view(i) for i in range(12)]
    records = _content(journal_module.journal_path(csv_path))[1:]
    assert [r["id"] for r in records] == list(range(1, per_tab * tabs + 1))
    with ReviewSession(csv_path) as again:  # the replay gives what the server showed
        assert [again.state.row_view(i) for i in range(12)] == views
        last = {}
        for r in records:
            last[r["items"][0][0]] = r
        for i in range(12):
            record = last[again.state.results.paths[i]]
            assert views[i]["decision_id"] == record["id"]  # the last decision received wins
