"""Episodic sampler speed: fewshot's EpisodeSampler vs easyfsl's TaskSampler, same run.

Draws 10,000 index-only 5-way 1-shot 15-query episodes over the Omniglot Vinyals trainval
label vector (4,800 classes x 20 drawers; read from the split file when the data is present,
else built as the identical ``arange(4800).repeat(20)``). Each sampler yields the same thing, a
flat list of item indices per episode (what a DataLoader ``batch_sampler`` consumes);
fewshot's vectorised ``sample_indices`` (all episodes as one array) is timed as well. Best of
``--repeats`` runs. Also times ``fewshot --help`` (wall clock of a fresh process).

    python benchmarks/bench_sampler.py [--episodes 10000] [--repeats 5]

Needs easyfsl for the comparison: ``pip install --no-deps easyfsl`` (its package imports
pandas, so ``pip install pandas`` too).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fewshot.sampling import EpisodeSampler

WAYS, SHOTS, QUERIES = 5, 1, 15


def trainval_labels() -> np.ndarray:
    split = Path(os.environ.get("FEWSHOT_DATA_DIR", "")) / "omniglot/splits/vinyals/trainval.txt"
    n_classes = len(split.read_text().split()) if split.is_file() else 4800
    return np.repeat(np.arange(n_classes), 20)


class _Labels:
    """The minimal dataset easyfsl's TaskSampler needs: ``get_labels()``."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels.tolist()

    def get_labels(self) -> list[int]:
        return self.labels


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def help_seconds(repeats: int = 5) -> float | None:
    exe = shutil.which("fewshot") or str(Path(sys.executable).parent / "fewshot")
    if not Path(exe).exists():
        return None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([exe, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _task_sampler():
    """easyfsl's TaskSampler, with torch's Sampler made to accept its old call."""
    try:
        from easyfsl.samplers import TaskSampler
    except ImportError as err:
        sys.exit(
            f"easyfsl is not installed ({err}): `pip install --no-deps easyfsl pandas` to compare against it"
        )
    import inspect

    from torch.utils.data import Sampler

    if "data_source" not in inspect.signature(Sampler.__init__).parameters:
        # easyfsl 1.5.0 calls Sampler.__init__(data_source=None), which recent torch no longer
        # accepts; restore the old no-op signature for this benchmark process only.
        Sampler.__init__ = lambda self, data_source=None: None
    return TaskSampler


def _runs(labels: np.ndarray, n: int, task_sampler) -> dict:
    """The three samplers, each a function that draws ``n`` episodes."""

    def ours_lists():
        for _ in EpisodeSampler(labels, WAYS, SHOTS, QUERIES, episodes=n, seed=0):
            pass

    def ours_arrays():
        EpisodeSampler(labels, WAYS, SHOTS, QUERIES, episodes=n, seed=0).sample_indices()

    def easyfsl_lists():
        random.seed(0)
        for _ in task_sampler(_Labels(labels), WAYS, SHOTS, QUERIES, n):
            pass

    return {
        "easyfsl TaskSampler (lists)": easyfsl_lists,
        "fewshot EpisodeSampler (lists)": ours_lists,
        "fewshot EpisodeSampler.sample_indices (arrays)": ours_arrays,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    task_sampler = _task_sampler()
    labels = trainval_labels()
    n = args.episodes
    print(
        f"{n} episodes, {WAYS}-way {SHOTS}-shot {QUERIES}-query, {labels.max() + 1} classes, "
        f"{labels.size} items; best of {args.repeats}"
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    )
    runs = _runs(labels, n, task_sampler)
    for run in runs.values():  # warm up each once
        run()
    results = {name: best_of(args.repeats, run) for name, run in runs.items()}
    base = results["easyfsl TaskSampler (lists)"]
    print(f"{'sampler (construction included)':<50} {'seconds':>8} {'episodes/s':>12} {'speed-up':>9}")
    for name, seconds in results.items():
        print(f"{name:<50} {seconds:>8.3f} {n / seconds:>12,.0f} {base / seconds:>8.1f}x")
    help_time = help_seconds()
    if help_time is not None:
        print(f"`fewshot --help` wall time (median of 5 fresh processes): {help_time:.2f} s")


if __name__ == "__main__":
    main()
