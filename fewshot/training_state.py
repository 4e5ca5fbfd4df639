"""The files a meta-training run keeps beside its checkpoint: settings, state and log.

See `fewshot.run_loop` for the order they are written in, and `fewshot.runs` for how a run's
settings decide whether it may resume.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fewshot.errors import CheckpointError
from fewshot.fileio import atomic_write_bytes
from fewshot.runs import data_description, load_state, save_state

if TYPE_CHECKING:
    from _typeshed import DataclassInstance  # a `fewshot.training.TrainConfig`, kept unimported

    from fewshot.data.tensors import LabeledTensors
    from fewshot.learners.base import FewShotLearner

LOG_HEADER = ["step", "train_loss", "train_accuracy", "val_accuracy", "lr", "seconds"]


def write_log(path: Path, rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LOG_HEADER)
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def run_settings(
    learner: FewShotLearner,
    train_data: LabeledTensors,
    val_data: LabeledTensors | None,
    config: DataclassInstance,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    """What defines a run: the model, the data (with a digest) and every hyperparameter.

    The device is left out: a run may resume on another device (not bit-exactly).
    """
    from fewshot.runs import json_safe

    meta = metadata or {}
    encoder = getattr(learner, "encoder", None)
    return json_safe(
        {
            "learner": meta.get("learner", type(learner).__name__),
            "learner_config": meta.get("learner_config", learner.config()),
            "encoder": meta.get("encoder", type(encoder).__name__),
            "encoder_config": meta.get("encoder_config", getattr(encoder, "config", dict)()),
            "train": {k: v for k, v in asdict(config).items() if k != "device"},
            "data": data_description(train_data),
            "val_data": data_description(val_data),
        }
    )


def train_state(learner, optimizer, schedule, scaler, run: dict) -> dict:
    """The state file's entries: the modules' states, then `run` (counters and log rows)."""
    return {
        "model": learner.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict(),
        **run,
    }


def restore_train_state(state: dict, learner, optimizer, schedule, scaler) -> None:
    learner.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    scaler.load_state_dict(state["scaler"])


def train_counters(path: Path, state: dict) -> dict:
    """The counters and log rows of a state read from `path` (`CheckpointError` if missing)."""
    try:
        return {
            "step": int(state["step"]),
            "best_acc": float(state["best_acc"]),
            "best_step": int(state["best_step"]),
            "bad_rounds": int(state["bad_rounds"]),
            "elapsed": float(state["elapsed"]),
            "stopped_early": bool(state["stopped_early"]),
            "rows": [[str(c) for c in row] for row in state["rows"]],
        }
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"cannot resume from {path} (missing {err}); pass --restart to start over"
        ) from err


def load_train_state(path: Path, device: torch.device, learner, optimizer, schedule, scaler) -> dict:
    state = load_state(path, device, lambda s: restore_train_state(s, learner, optimizer, schedule, scaler))
    return train_counters(path, state)


def save_train_state(
    path: Path, device: torch.device, learner, optimizer, schedule, scaler, run: dict
) -> None:
    save_state(path, train_state(learner, optimizer, schedule, scaler, run), device)
