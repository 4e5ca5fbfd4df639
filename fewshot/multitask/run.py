"""The multi-task run on the run machinery: the shared model, then (the baseline) one model
per task, each trained for its steps in rounds of ``eval_every`` steps; one unit of
`fewshot.run_loop` is one round of one model.

Every model starts from the same encoder weights (copies) and the same seed. After each round
the run writes its state (every model, optimiser and sampler; crash point ``multitask.state``)
and the log ``<out>/multitask.log.csv`` (``multitask.log``); a model's test accuracies are
measured after its last round. When every round is done it writes, each atomically and
followed by its crash point: one classifier checkpoint per task and model
(``shared-<task>.safetensors``, ``single-<task>.safetensors``: ``multitask.model``),
``report.json`` (``multitask.report``) and ``accuracy.png`` (``multitask.plot``), then marks
``multitask.run.json`` done. A run killed anywhere resumes after its last state and ends with
the files of an uninterrupted run (timings aside).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.multitask.training import MultiTaskSettings, MultiTaskTraining
from fewshot.run_loop import RunTask


@dataclass
class Task:
    """One task: its name, training and test items (labels ``0..C-1``, the same classes)."""

    name: str
    train: LabeledTensors
    test: LabeledTensors


def slug(name: str) -> str:
    """A task name as a file-name part: ``/data/my set`` -> ``my-set``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name.rstrip("/")).name or name).strip("-.") or "task"


class MultiTaskRun(RunTask):
    """The shared model on every task, then one model per task (``baseline_steps`` > 0).

    Args:
        encoder: the initial encoder (each model trains its own copy).
        tasks: the tasks.
        settings: the shared model's training; the baseline models use the same with one task
            and ``baseline_steps`` steps (None: ``settings.steps``; 0: no baseline).
        seed: heads, sampling order.
    """

    command, unit = "multitask", "round"

    def __init__(
        self,
        encoder: torch.nn.Module,
        tasks: list[Task],
        settings: MultiTaskSettings,
        seed: int = 0,
        baseline_steps: int | None = None,
    ) -> None:
        self.tasks, self.settings, self.seed = tasks, settings, seed
        self.device = torch.device(settings.device)
        baseline = settings.steps if baseline_steps is None else baseline_steps
        single = replace(settings, steps=baseline, weighting="fixed", weights=None, tasks_per_step=1)
        self.names = ["shared"] + ([f"single-{slug(t.name)}" for t in tasks] if baseline else [])
        self.plans = [(settings, list(range(len(tasks))))]
        self.plans += [(single, [i]) for i in range(len(tasks))] if baseline else []
        self.jobs = [
            MultiTaskTraining(copy.deepcopy(encoder), [tasks[i].train for i in idx], s, seed)
            for s, idx in self.plans
        ]
        self.rounds = [math.ceil(s.steps / s.eval_every) for s, _ in self.plans]
        self.total = sum(self.rounds)
        self.accuracy: list[list[float] | None] = [None] * len(self.jobs)
        self.seconds = [0.0] * len(self.jobs)
        self.rows: list[list[Any]] = []
        self.log_path: Path | None = None  # where `after_state` writes the log

    def locate(self, index: int) -> tuple[int, int]:
        """Unit `index` -> (model, round)."""
        for job, rounds in enumerate(self.rounds):
            if index < rounds:
                return job, index
            index -= rounds
        raise IndexError(index)

    def run_unit(self, index: int) -> None:
        job, r = self.locate(index)
        settings, idx = self.plans[job]
        training = self.jobs[job]
        steps = min(settings.eval_every, settings.steps - r * settings.eval_every)
        started = time.perf_counter()
        losses = training.train_steps(steps)
        elapsed = time.perf_counter() - started
        self.seconds[job] += elapsed
        weights = training.model.weighting.task_weights()
        for k, t in enumerate(idx):
            loss = None if losses[k] is None else round(losses[k], 6)
            draws = training.batches.draws[k]
            self.rows.append(
                [
                    self.names[job],
                    training.steps_done,
                    self.tasks[t].name,
                    loss,
                    draws,
                    round(weights[k], 6),
                    round(elapsed, 3),
                ]
            )
        if r == self.rounds[job] - 1:
            self.accuracy[job] = training.accuracies([self.tasks[t].test for t in idx])

    def postfix(self, done: int) -> dict[str, str]:
        job, _ = self.locate(done - 1)
        return {"model": self.names[job]}

    def validate(self, done: int) -> float:
        return float(done)  # nothing is selected: every model is kept as it ends

    def keep_best(self, out: Path | None, done: int, score: float) -> None:
        """Nothing: the checkpoints are written once every model is trained (`write_models`)."""

    def training_state(self) -> dict[str, Any]:
        return {
            "jobs": [j.state_dict() for j in self.jobs],
            "accuracy": self.accuracy,
            "seconds": self.seconds,
            "rows": self.rows,
        }

    def restore(self, state: dict[str, Any]) -> None:
        for job, s in zip(self.jobs, state["jobs"], strict=True):
            job.load_state_dict(s)
        self.accuracy, self.seconds, self.rows = state["accuracy"], state["seconds"], state["rows"]

    def after_state(self) -> None:
        from fewshot.faults import crash_point
        from fewshot.fileio import atomic_write_bytes

        if self.log_path is None:
            return
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["model", "step", "task", "loss", "batches", "weight", "seconds"])
        writer.writerows(self.rows)
        atomic_write_bytes(self.log_path, text.getvalue().encode())
        crash_point("multitask.log")

    # -- results -----------------------------------------------------------------------------

    def models(self) -> list[tuple[str, Any]]:
        """``(file stem, Classifier)`` of every task of every model, with its class names."""
        out = []
        for job, (_, idx) in enumerate(self.plans):
            prefix = "shared" if job == 0 else "single"
            for k, t in enumerate(idx):
                task = self.tasks[t]
                out.append(
                    (
                        f"{prefix}-{slug(task.name)}",
                        self.jobs[job].model.classifier(k, task.train.class_names),
                    )
                )
        return out

    def report(self) -> dict[str, Any]:
        """Per-task accuracy of the shared model and of its own model, batches, weights, times."""
        shared = self.jobs[0]
        weights = shared.model.weighting.task_weights()
        tasks = []
        for t, task in enumerate(self.tasks):
            single = self.accuracy[1 + t] if len(self.jobs) > 1 else None
            tasks.append({
                "name": task.name,
                "classes": task.train.n_classes,
                "train_items": len(task.train),
                "test_items": len(task.test),
                "shared_accuracy": None if self.accuracy[0] is None else self.accuracy[0][t],
                "single_accuracy": None if single is None else single[0],
                "batches": shared.batches.draws[t],
                "weight": weights[t],
            })  # fmt: skip
        return {
            "sampling": self.settings.sampling,
            "weighting": self.settings.weighting,
            "steps": self.settings.steps,
            "baseline_steps": self.plans[1][0].steps if len(self.plans) > 1 else 0,
            "tasks": tasks,
            "shared": summary(self.accuracy[0], self.seconds[0]),
            "single": summary([a[0] for a in self.accuracy[1:] if a], sum(self.seconds[1:]))
            if len(self.jobs) > 1
            else None,
        }


def summary(accuracy: list[float] | None, seconds: float) -> dict[str, Any]:
    mean = None if not accuracy else sum(accuracy) / len(accuracy)
    return {"mean_accuracy": mean, "seconds": round(seconds, 3)}


__all__ = ["MultiTaskRun", "Task", "slug"]
