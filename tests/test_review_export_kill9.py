"""kill -9 at every crash point of the folder export (the organiser's own points included),
then a rerun: the tree at DEST is that of an uninterrupted export, no hidden staging folder is
left, and with ``move`` no image is ever lost (each one is at its source or in a complete
tree, and after the rerun only in the tree)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import tree_digest
from review_fixtures import review_workspace

from fewshot import faults
from fewshot.review.session import ReviewSession


class Workspace:
    """The same absolute paths on every trial: the results list them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.csv, self.root = review_workspace(base)
        self.pristine = base.parent / f"{base.name}-pristine"
        shutil.copytree(self.root, self.pristine)
        with ReviewSession(self.csv) as session:
            session.state.decide("accept", [0, 1, 4])
            session.state.decide("correct", [5], label="../up")
            session.state.decide("correct", [8], label="red")  # two red/00.png-like names: -1
        self.export = self.csv.with_name(self.csv.name + ".review") / "export"

    def reset(self) -> None:
        shutil.rmtree(self.root)
        shutil.rmtree(self.export, ignore_errors=True)
        shutil.copytree(self.pristine, self.root)

    def export_folder(self, mode: str) -> dict:
        with ReviewSession(self.csv) as session:
            return session.export("folder", mode)


def _killed_export(ws: Workspace, mode: str, crash_at: int, log: Path | None = None) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            faults._AT, faults._count, faults._LOG = crash_at, 0, str(log) if log else None
            ws.export_folder(mode)
        except BaseException:
            code = 3
        os._exit(code)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize("mode", ["copy", "move", "link"])
def test_folder_export_killed_anywhere_then_rerun_gives_the_uninterrupted_tree(tmp_path, mode):
    ws = Workspace(tmp_path / "ws")
    log = tmp_path / "points.log"
    assert os.WEXITSTATUS(_killed_export(ws, mode, 0, log)) == 0
    points = [line.split("\t")[1] for line in log.read_text().splitlines()]
    clean = tree_digest(ws.export / "sorted")
    assert len([v for v in clean.values() if v != "dir"]) == 5 and "review.export-renamed" in points
    reviewed = {ws.root / f / n for f in ("red", "green") for n in ("00.png", "01.png")} | {
        ws.root / "blue/00.png"
    }
    for n in range(1, len(points) + 1):
        ws.reset()
        status = _killed_export(ws, mode, n)
        assert os.WIFSIGNALED(status), (n, points[n - 1])
        tree_done = (ws.export / "sorted").exists()
        if tree_done:  # the rename happened: the tree is complete
            assert tree_digest(ws.export / "sorted") == clean, (n, points[n - 1])
        elif mode == "move":  # no tree yet: every source is still where it was
            assert all(p.exists() for p in reviewed), (n, points[n - 1])
        ws.export_folder(mode)  # the rerun
        assert tree_digest(ws.export / "sorted") == clean, (n, points[n - 1])
        assert not [p for p in ws.export.iterdir() if p.name.startswith(".")], (n, points[n - 1])
        if mode == "move":
            assert not any(p.exists() for p in reviewed), (n, points[n - 1])
