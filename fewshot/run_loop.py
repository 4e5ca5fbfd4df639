"""The run machinery every training loop plugs into: units, validation, best kept, resume.

A *task* says what one unit of training is (a meta-step of episodes, an epoch, ...), how to
validate and what its resumable state holds; `run_units` does the rest, the same way for
every trainer: the progress bar, validation every few units, the best checkpoint kept,
early stopping after ``patience`` validations without improvement, and resuming from the
state with the random number generators (`fewshot.runs.save_state` / `load_state`).

After every validation the run writes, each atomically and in this order: the best
checkpoint (``task.keep_best``, when the score improved; crash point
``<command>.checkpoint``), the state (``<command>.state``), then what the task writes after
it (``task.after_state``, e.g. a log). The state is the commit point: a run killed anywhere
and run again resumes from its last state and ends with the files of an uninterrupted run.
Run it inside `fewshot.runs.open_run` / `finish_run`, which lock the run and keep its
``run.json``.

Example, a task whose "training" is a counter and whose score peaks at unit 3::

    class Toy(RunTask):
        command, total, patience = "toy", 10, 2

        def __init__(self):
            self.device, self.count = torch.device("cpu"), 0

        def run_unit(self, index):
            self.count += 1

        def validate(self, done):
            return -abs(done - 3)

        def keep_best(self, out, done, score):
            self.best = self.count  # or write a checkpoint to `out` atomically

        def training_state(self):
            return {"count": self.count}

        def restore(self, state):
            self.count = state["count"]

    progress = run_units(Toy(), RunFiles(Path("toy.bin")), progress=False)
    assert (progress.best, progress.done, progress.stopped_early) == (3, 5, True)
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from fewshot.device import autocast_dtype
from fewshot.faults import crash_point
from fewshot.runs import RunFiles, load_state, save_state


@dataclass
class RunProgress:
    """Where a run stands: what `run_units` keeps in the state besides the task's own."""

    done: int = 0  # units finished as of the last validation (and state)
    best_score: float = -math.inf
    best: int = 0  # units done when the kept best was validated (0: nothing kept yet)
    bad_rounds: int = 0  # validations since the last improvement
    stopped_early: bool = False


class RunTask:
    """What a trainer plugs into `run_units`; subclasses set the attributes and implement
    `run_unit`, `validate`, `keep_best`, `training_state` and `restore`."""

    #: names the crash points (``<command>.checkpoint``, ``<command>.state``) and the bar
    command: str = "run"
    unit: str = "unit"  # the progress bar's unit
    total: int = 1  # units in a whole run
    patience: int = 0  # validations without improvement before stopping; 0 = never stop early
    device: torch.device = torch.device("cpu")
    writes: bool = True  # False: a rank of a process group other than 0 (reads the state, writes nothing)

    def run_unit(self, index: int) -> None:
        """Train unit `index` (0-based)."""
        raise NotImplementedError

    def validates_after(self, done: int) -> bool:
        """Whether to validate (and save the state) once `done` units are finished; the last
        unit of a run is always validated."""
        return True

    def validate(self, done: int) -> float:
        """The score after `done` units: higher is better (record log rows here)."""
        raise NotImplementedError

    def keep_best(self, out: Path | None, done: int, score: float) -> None:
        """Keep the model as the best so far: written atomically to `out`, in memory when None."""
        raise NotImplementedError

    def training_state(self) -> dict[str, Any]:
        """The task's resumable state (weights, optimiser, ...); the RNGs are added for it."""
        raise NotImplementedError

    def restore(self, state: dict[str, Any]) -> None:
        """Load `training_state`'s entries back (before the RNGs are restored)."""
        raise NotImplementedError

    def state(self, progress: RunProgress) -> dict[str, Any]:
        """The whole state written after a validation: the task's, then `progress`."""
        return {**self.training_state(), **asdict(progress)}

    def progress_from(self, state: dict[str, Any]) -> RunProgress:
        """`RunProgress` from a state that `state` wrote (a task may read its own counters here)."""
        return RunProgress(**{f.name: state[f.name] for f in fields(RunProgress)})

    def start(self, progress: RunProgress, resumed: bool) -> None:
        """Called once before the first unit, after the state was restored when `resumed`."""

    def postfix(self, done: int) -> dict[str, str] | None:
        """What the progress bar shows after `done` units (None: leave it)."""
        return None

    def after_state(self) -> None:
        """Durable writes that follow the state (each followed by its crash point)."""


def run_units(task: RunTask, files: RunFiles | None, progress: bool | None = True) -> RunProgress:
    """Run `task`'s units from where ``files.state`` left off (None: in memory, no resume)."""
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    run = RunProgress()
    resumed = files is not None and files.state.exists()
    if resumed:
        run = task.progress_from(load_state(files.state, task.device, task.restore))
    task.start(run, resumed)
    first = task.total if run.stopped_early else run.done
    bar = tqdm(
        total=task.total,
        initial=run.done,
        desc=task.command,
        unit=task.unit,
        disable=not show_progress(progress),
    )
    try:
        for index in range(first, task.total):
            task.run_unit(index)
            bar.update(1)
            postfix = task.postfix(index + 1)
            if postfix is not None:
                bar.set_postfix(**postfix)
            if task.validates_after(index + 1) or index + 1 == task.total:
                _round(task, files, run, index + 1)
                if run.stopped_early:
                    break
    finally:
        bar.close()
    return run


def _round(task: RunTask, files: RunFiles | None, run: RunProgress, done: int) -> None:
    """Validate after `done` units; keep the best; stop early; write the state (the commit)."""
    run.done = done
    score = task.validate(done)
    writes = files is not None and task.writes
    if score > run.best_score:
        run.best_score, run.best, run.bad_rounds = score, done, 0
        task.keep_best(files.out if writes else None, done, score)
        if writes:
            crash_point(f"{task.command}.checkpoint")
    else:
        run.bad_rounds += 1
    run.stopped_early = bool(task.patience and run.bad_rounds >= task.patience)
    if writes:
        save_state(files.state, task.state(run), task.device)
        crash_point(f"{task.command}.state")
        task.after_state()


class MixedPrecision:
    """Automatic mixed precision on `device` (CUDA only: bfloat16, else float16 with a loss
    scaler); disabled, or on other devices, everything runs in float32."""

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device = device
        self.dtype = autocast_dtype(device) if enabled else None

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()

    def scaler(self) -> torch.amp.GradScaler:
        """float16 needs loss scaling; bfloat16 and float32 do not (then the scaler is a no-op)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)


__all__ = ["MixedPrecision", "RunProgress", "RunTask", "run_units"]
