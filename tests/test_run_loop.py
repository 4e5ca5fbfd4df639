"""The generic run machinery (`fewshot.run_loop`) on a toy task: resume, early stopping, best
kept, the order of durable writes, and that the trainers built on it sit in no import circle."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

import fewshot.faults as faults
import fewshot.run_loop as run_loop
from fewshot.fileio import atomic_write_bytes
from fewshot.run_loop import MixedPrecision, RunProgress, RunTask, run_units
from fewshot.runs import RunFiles


class Toy(RunTask):
    """A unit adds a random number (the global torch RNG) to `value`; the score follows `scores`."""

    command, unit = "toy", "step"

    def __init__(self, total=8, patience=0, scores=None, every=1, fail_at=None) -> None:
        self.total, self.patience, self.every, self.fail_at = total, patience, every, fail_at
        self.scores = scores or {}
        self.value, self.kept, self.log = 0.0, None, []

    def run_unit(self, index):
        if index == self.fail_at:
            raise KeyboardInterrupt
        self.value += torch.rand(()).item()

    def validates_after(self, done):
        return done % self.every == 0

    def validate(self, done):
        self.log.append(done)
        return self.scores.get(done, float(done))

    def keep_best(self, out, done, score):
        self.kept = (done, self.value)
        if out is not None:
            atomic_write_bytes(out, json.dumps(self.kept).encode())

    def training_state(self):
        return {"value": self.value, "log": list(self.log)}

    def restore(self, state):
        self.value, self.log = state["value"], list(state["log"])

    def after_state(self):
        faults.crash_point("toy.after")


def run(tmp_path: Path, name: str, **options) -> tuple[Toy, RunProgress]:
    torch.manual_seed(0)
    task = Toy(**options)
    return task, run_units(task, RunFiles(tmp_path / name), progress=False)


def test_resume_after_interruption_ends_as_the_uninterrupted_run(tmp_path):
    straight, done = run(tmp_path, "a", every=3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "b", every=3, fail_at=4)  # after the state written at unit 3
    torch.manual_seed(99)  # the resumed process has other random state: restored from the state
    resumed = Toy(every=3)
    again = run_units(resumed, RunFiles(tmp_path / "b"), progress=False)
    assert again == done == RunProgress(done=8, best_score=8.0, best=8)
    assert resumed.value == straight.value and resumed.log == straight.log == [3, 6, 8]
    assert (tmp_path / "b").read_bytes() == (tmp_path / "a").read_bytes()


def test_early_stopping_after_patience_and_a_stopped_run_stays_stopped(tmp_path):
    scores = {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.7, 5: 0.9}
    task, done = run(tmp_path, "m", total=10, patience=2, scores=scores)
    assert done == RunProgress(done=4, best_score=0.7, best=2, bad_rounds=2, stopped_early=True)
    assert task.log == [1, 2, 3, 4]
    again = Toy(total=10, patience=2, scores=scores)
    assert run_units(again, RunFiles(tmp_path / "m"), progress=False) == done
    assert again.log == [1, 2, 3, 4]  # restored, nothing trained or validated on


def test_the_best_is_kept_not_the_last(tmp_path):
    task, done = run(tmp_path, "m", total=6, scores={1: 0.2, 2: 0.9, 3: 0.1, 4: 0.5, 5: 0.3, 6: 0.4})
    assert (done.best, done.best_score, done.done) == (2, 0.9, 6)
    assert json.loads((tmp_path / "m").read_text())[0] == 2
    assert task.kept[0] == 2 and task.kept[1] != task.value


def test_in_memory_runs_keep_the_best_and_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    task = Toy(total=4, scores={1: 0.5, 2: 0.9, 3: 0.1, 4: 0.2})
    done = run_units(task, None, progress=False)
    assert done.best == 2 and task.kept[0] == 2
    assert list(tmp_path.iterdir()) == []


def test_durable_writes_come_in_order_checkpoint_state_then_the_tasks(tmp_path, monkeypatch):
    log = tmp_path / "points.log"
    monkeypatch.setattr(faults, "_LOG", str(log))
    monkeypatch.setattr(faults, "_count", 0)
    run(tmp_path, "m", total=4, every=2, scores={2: 0.5, 4: 0.1})
    names = [line.split("\t")[1] for line in log.read_text().splitlines()]
    assert names == ["toy.checkpoint", "toy.state", "toy.after", "toy.state", "toy.after"]
    state = torch.load(tmp_path / "m.state.pt", weights_only=True)
    assert (state["done"], state["best"], state["bad_rounds"], state["log"]) == (4, 2, 1, [2, 4])
    assert "torch_rng" in state


def test_the_last_unit_is_always_validated(tmp_path):
    task, done = run(tmp_path, "m", total=5, every=2)
    assert task.log == [2, 4, 5] and done.done == 5


def test_mixed_precision_is_off_on_the_cpu():
    amp = MixedPrecision(torch.device("cpu"))
    assert amp.dtype is None and not amp.scaler().is_enabled()
    with amp.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_the_docstring_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = textwrap.dedent(run_loop.__doc__.split("::", 1)[1])
    exec(code, {**vars(run_loop), "Path": Path})  # noqa: S102 - our own docstring


def test_the_trainers_on_the_loop_sit_in_no_import_circle():
    from test_layers import _circles

    trainers = {"fewshot.run_loop", "fewshot.training", "fewshot.training_config"}
    trainers |= {f"fewshot.transfer.{name}" for name in ("finetune", "finetune_loop", "finetune_config")}
    for circle in _circles():
        assert not circle & trainers, sorted(circle)
