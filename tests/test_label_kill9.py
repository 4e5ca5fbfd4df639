"""kill -9 at every crash point of `fewshot label`, then a rerun: exactly the uninterrupted result.

Each mode (no organize, copy, link, move on one file system, move to another one) is first
run uninterrupted with every crash point logged (`fewshot.faults`). Then, for each point N,
a fresh copy of the workspace is labelled in a forked process that SIGKILLs itself at the
N-th point, exactly as ``kill -9`` would; the run is repeated without the kill, and the end
state must equal the uninterrupted one: the output file byte for byte, the destination tree
(names and contents: every image exactly once, no temporary file left), and the sources.
Forking a process that already holds the model keeps one kill + rerun to a few tens of ms;
`test_cli_kill9_*` does the same through the real command line in fresh interpreters.

The images: 9 readable ones (one with a name that is not UTF-8, several with the same file
name, so the destination needs ``-1``, ``-2`` names, one clashing with a file already in the
destination) and one unreadable file; batches of 3 cross label folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import tree_digest

pytest.importorskip("open_clip")

LABELS = ["red circle", "blue square", "green cross"]
BAD_NAME = os.fsdecode(b"bad\xff.jpg")
SHM = Path("/dev/shm")


def _cross_fs_root() -> Path | None:
    if not SHM.is_dir() or not os.access(SHM, os.W_OK):
        return None
    if os.stat(SHM).st_dev == os.stat(tempfile.gettempdir()).st_dev:
        return None
    return SHM


@pytest.fixture(scope="module")
def classifier():
    from fewshot.encoders.clip import ClipEncoder
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    torch.manual_seed(0)
    encoder = ClipEncoder("micro-clip", pretrained=None, device="cpu")
    return ZeroShotClassifier(encoder, LABELS, "photo").fit()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """The source images, never touched: each trial copies them."""
    from fewshot.zeroshot.micro_clip import make_folder

    root = tmp_path_factory.mktemp("kill9") / "imgs"
    make_folder(root, per_class=1, size=24)
    for folder in sorted(root.iterdir())[9:]:
        shutil.rmtree(folder)
    first = sorted(root.iterdir())[0]
    os.rename(first / "00000.jpg", first / BAD_NAME)
    (first / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


class Trial:
    """One workspace, reset before every run so that absolute paths in the output match."""

    def __init__(self, base: Path, pristine: Path, mode: str | None, dest_root: Path) -> None:
        self.pristine, self.mode = pristine, mode
        self.src, self.out = base / "imgs", base / "labels.csv"
        self.dest = dest_root / "sorted" if mode else None

    def reset(self) -> None:
        for path in (self.src, self.dest):
            if path is not None and path.exists():
                shutil.rmtree(path)
        for path in self.out.parent.glob(self.out.name + "*"):
            path.unlink()
        shutil.copytree(self.pristine, self.src)
        if self.dest is not None:  # a file already there with a name the run will want
            (self.dest / "red circle").mkdir(parents=True)
            (self.dest / "red circle" / "00000.jpg").write_bytes(b"keep me")

    def label(self, classifier) -> None:
        from fewshot.zeroshot.labelling import label_images

        label_images(
            self.src,
            classifier,
            self.out,
            top_k=2,
            batch_size=3,
            workers=0,
            organize=self.mode,
            dest=self.dest,
            progress=False,
        )

    def state(self) -> tuple:
        leftovers = sorted(p.name for p in self.out.parent.iterdir() if p.name.startswith("labels.csv."))
        return (
            self.out.read_bytes(),
            tree_digest(self.src),
            tree_digest(self.dest) if self.dest else {},
            leftovers,
        )


def _in_child(fn, crash_at: int = 0, log: str | None = None) -> int:
    """Run `fn` in a forked process with the crash points armed; its exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            from fewshot import faults

            torch.set_num_threads(1)  # the parent's OpenMP threads are gone in a forked child

            faults._AT, faults._LOG, faults._count = crash_at, log, 0
            fn()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the labelling child hung")


def _reference(trial: Trial, classifier, tmp_path: Path) -> tuple[tuple, list[str]]:
    log = tmp_path / "points.log"
    trial.reset()
    assert _in_child(lambda: trial.label(classifier), log=str(log)) == 0
    points = [line.split("\t")[1] for line in log.read_text().splitlines()]
    return trial.state(), points


def _sweep(trial: Trial, classifier, tmp_path: Path, spread: int | None) -> None:
    expected, points = _reference(trial, classifier, tmp_path)
    assert trial.out.exists() and len(points) > 5
    chosen = range(1, len(points) + 1)
    if spread is not None and len(points) > spread:
        chosen = sorted({round(1 + i * (len(points) - 1) / (spread - 1)) for i in range(spread)})
    for n in chosen:
        trial.reset()
        assert _in_child(lambda: trial.label(classifier), crash_at=n) == -9, f"no kill at point {n}"
        trial.label(classifier)
        assert trial.state() == expected, f"killed at point {n} ({points[n - 1]}), then rerun"


def _modes():
    cross = _cross_fs_root()
    yield pytest.param(None, None, id="no-organize")
    yield pytest.param("copy", None, id="copy")
    yield pytest.param("link", None, id="link")
    yield pytest.param("move", None, id="move-same-fs")
    yield pytest.param(
        "move",
        cross,
        id="move-cross-fs",
        marks=pytest.mark.skipif(cross is None, reason="no /dev/shm on another device than the temp folder"),
    )


@pytest.fixture
def dest_base(request, tmp_path):
    def make(root: Path | None) -> Path:
        if root is None:
            return tmp_path
        base = Path(tempfile.mkdtemp(dir=root, prefix="fewshot-kill9-"))
        request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
        return base

    return make


@pytest.mark.parametrize(("mode", "dest_fs"), list(_modes()))
def test_kill9_at_a_spread_of_points_then_rerun_equals_uninterrupted(
    mode, dest_fs, classifier, pristine, tmp_path, dest_base
):
    trial = Trial(tmp_path, pristine, mode, dest_base(dest_fs))
    _sweep(trial, classifier, tmp_path, spread=12)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "dest_fs"), list(_modes()))
def test_kill9_at_every_point_then_rerun_equals_uninterrupted(
    mode, dest_fs, classifier, pristine, tmp_path, dest_base
):
    trial = Trial(tmp_path, pristine, mode, dest_base(dest_fs))
    _sweep(trial, classifier, tmp_path, spread=None)


@pytest.mark.parametrize(("mode", "dest_fs"), list(_modes())[1:])
def test_killed_again_while_resuming_still_ends_right(
    mode, dest_fs, classifier, pristine, tmp_path, dest_base
):
    trial = Trial(tmp_path, pristine, mode, dest_base(dest_fs))
    expected, points = _reference(trial, classifier, tmp_path)
    for first in (len(points) // 3, len(points) // 2):
        trial.reset()
        assert _in_child(lambda: trial.label(classifier), crash_at=first) == -9
        for again in (1, 2):  # the resume's first steps finish the interrupted placements
            assert _in_child(lambda: trial.label(classifier), crash_at=again) == -9
        trial.label(classifier)
        assert trial.state() == expected, f"killed at {first}, then at 1 and 2 of the resumes"


def _cli(trial: Trial, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "fewshot_cli.app", "label", str(trial.src), "-l", ",".join(LABELS)]
    argv += ["--templates", "photo", "--model", "micro-clip", "--workers", "0"]  # shipped weights
    argv += ["--top-k", "2", "--batch-size", "3", "--out", str(trial.out)]
    argv += ["--organize", trial.mode, "--dest", str(trial.dest)] if trial.mode else []
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.skipif(_cross_fs_root() is None, reason="no /dev/shm on another device than the temp folder")
def test_cli_kill9_move_to_another_file_system(pristine, tmp_path, dest_base):
    trial = Trial(tmp_path, pristine, "move", dest_base(SHM))
    trial.reset()
    log = tmp_path / "cli-points.log"
    assert _cli(trial, {"FEWSHOT_CRASH_LOG": str(log)}).returncode == 0
    expected = trial.state()
    total = len(log.read_text().splitlines())
    for n in (2, total // 4, total // 2, 3 * total // 4, total - 1):
        trial.reset()
        assert _cli(trial, {"FEWSHOT_CRASH_AT": str(n)}).returncode == -9
        rerun = _cli(trial, {})
        assert rerun.returncode == 0, rerun.stderr.decode(errors="replace")
        assert trial.state() == expected, f"killed at point {n} of {total}, then rerun"
