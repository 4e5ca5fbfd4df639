"""kill -9 at every crash point of `fewshot index build` and `index add`, then a plain rerun:
the index ends exactly as after an uninterrupted run, and no half-written index is ever loaded.

Real subprocesses (`fewshot.faults`: ``FEWSHOT_CRASH_AT=N`` makes the N-th crash point
SIGKILL its own process), the shipped micro CLIP on a few shapes, the index on this filesystem
and on tmpfs (/dev/shm). A clean run with ``FEWSHOT_CRASH_LOG`` lists the points. The whole
sweep is slow (two processes of a few seconds per point); by default the save protocol is
swept through the Python API, in processes that need no torch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from fewshot.index import EmbeddingIndex

pytestmark = pytest.mark.usefixtures("one_faiss_thread")
SHM = Path("/dev/shm")
OPTS = ["--model", "micro-clip", "--workers", "0", "--no-progress", "--device", "cpu", "--batch-size", "8"]


def fewshot(*args, crash_at: int | None = None, log: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEWSHOT_CRASH")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    if crash_at is not None:
        env["FEWSHOT_CRASH_AT"] = str(crash_at)
    if log is not None:
        env["FEWSHOT_CRASH_LOG"] = str(log)
    argv = [sys.executable, "-m", "fewshot_cli.app", *map(str, args)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def content(directory: Path) -> dict:
    """What an index holds (the sidecar without the FAISS file's random name, whose checksum
    covers every vector), after checking that it loads and searches."""
    index = EmbeddingIndex.load(directory, device="cpu")
    hits = index.search(np.eye(index.dim, dtype=np.float32)[:4], k=5)
    sidecar = json.loads((directory / "index.json").read_text())
    del sidecar["faiss_file"]
    return {"sidecar": sidecar, "hits": hits.ids.tolist(), "scores": hits.scores.tolist()}


def listing(directory: Path) -> list[str]:
    """The files of a tidy index: its sidecar and the one FAISS file it names, nothing else."""
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted(["index.json", json.loads((directory / "index.json").read_text())["faiss_file"]])
    return names


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Images, the clean build and clean add results, and the crash points each one reaches."""
    pytest.importorskip("open_clip")
    from fewshot.zeroshot.micro_clip import make_folder

    root = tmp_path_factory.mktemp("kill9")
    shapes = make_folder(root / "first", per_class=1, size=32)
    more = make_folder(root / "more", per_class=1, size=32, seed=1)
    runs = {"root": root, "shapes": shapes, "more": more}
    for kind, args in (("build", ["index", "build", shapes, "--out", root / "ix", *OPTS]),
                       ("add", ["index", "add", root / "ix", more, *OPTS[2:]])):  # fmt: skip
        if kind == "add":
            shutil.copytree(root / "ix", root / "base")
        log = root / f"{kind}.log"
        result = fewshot(*args, log=log)
        assert result.returncode == 0, result.stderr
        runs[kind] = content(root / "ix")
        runs[f"{kind}-points"] = [line.split("\t")[1] for line in log.read_text().splitlines()]
    assert runs["add"]["sidecar"]["items"]["ids"][:24] == runs["build"]["sidecar"]["items"]["ids"]
    return runs


@pytest.fixture(params=["same-fs", "tmpfs"])
def place(request, tmp_path):
    if request.param == "same-fs":
        yield tmp_path
        return
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    where = SHM / f"fewshot-kill9-{uuid.uuid4().hex}"
    where.mkdir()
    yield where
    shutil.rmtree(where, ignore_errors=True)


def kill_and_rerun(runs, kind: str, n: int, place: Path) -> None:
    out = place / "ix"
    if kind == "build":
        args = ["index", "build", runs["shapes"], "--out", out, *OPTS]
        before = None
    else:
        shutil.copytree(runs["root"] / "base", out)
        args = ["index", "add", out, runs["more"], *OPTS[2:]]
        before = content(out)
    point = runs[f"{kind}-points"][n - 1]
    killed = fewshot(*args, crash_at=n)
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    if (out / "index.json").exists():  # whatever is there loads, and is the old or the new index
        assert content(out) in (before, runs[kind]), point
    rerun = fewshot(*args)
    if rerun.returncode == 2 and kind == "build":  # killed after the commit: the index is whole
        assert "already holds an index" in rerun.stderr and point.startswith("index.save.")
        rerun = fewshot("index", "add", out, runs["shapes"], *OPTS[2:])  # what the message says
    assert rerun.returncode == 0, (point, rerun.stderr)
    assert content(out) == runs[kind], point
    listing(out)


@pytest.mark.slow
def test_clean_runs_reach_the_crash_points(runs):
    assert runs["build-points"].count("index.add.batch-embedded") == 3
    assert runs["add-points"][-5:] == [
        "index.save.start",
        "index.save.faiss-written",
        "index.save.sidecar-written",
        "index.save.committed",
        "index.save.stale-removed",
    ]


# The save protocol alone, through the Python API in processes that import FAISS but not torch
# (fast): a writer that adds the ids of a fixed set that are missing, as `index add` does.
WRITER = """
import sys
import numpy as np
from fewshot.index import EmbeddingIndex
from fewshot.index.storage import is_index_dir, remove_stale
from fewshot.locking import exclusive_lock

directory, count = sys.argv[1], int(sys.argv[2])
vectors = np.random.default_rng(0).normal(size=(count, 8)).astype("float32")
with exclusive_lock(directory):
    if is_index_dir(directory):
        index = EmbeddingIndex.load(directory, device="cpu")
    else:
        index = EmbeddingIndex(8, device="cpu")
    new = [i for i in range(count) if str(i) not in index]
    index.add(vectors[new], ids=[str(i) for i in new], metadata=[{"n": i} for i in new])
    index.save(directory, lock=False) if new else remove_stale(directory)
"""


def writer(directory: Path, count: int, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEWSHOT_CRASH")}
    env["OMP_NUM_THREADS"] = "1"
    env.update({k: str(v) for k, v in kwargs.items()})
    argv = [sys.executable, "-c", WRITER, str(directory), str(count)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_save_killed_at_every_point_then_rerun(place):
    """First save (a build) and second save (an add), killed at each of their crash points."""
    clean = {}
    for count in (6, 10):
        log = place / f"clean-{count}.log"
        assert writer(place / "clean", count, FEWSHOT_CRASH_LOG=log).returncode == 0
        clean[count] = (content(place / "clean"), log.read_text().count("\n"))
    assert clean[6][1] == 4 and clean[10][1] == 5  # the second save also removes the old file
    for count, before in ((6, None), (10, clean[6][0])):
        for n in range(1, clean[count][1] + 1):
            out = place / f"ix-{count}-{n}"
            if before is not None:
                assert writer(out, 6).returncode == 0
            killed = writer(out, count, FEWSHOT_CRASH_AT=n)
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            if (out / "index.json").exists():
                assert content(out) in (before, clean[count][0]), (count, n)
            assert writer(out, count).returncode == 0
            assert content(out) == clean[count][0], (count, n)
            listing(out)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["build", "add"])
def test_kill9_at_every_point_then_rerun(runs, kind, place):
    for n in range(1, len(runs[f"{kind}-points"]) + 1):
        out = place / "ix"
        shutil.rmtree(out, ignore_errors=True)
        kill_and_rerun(runs, kind, n, place)
