"""The settings and the result of a meta-training run (`fewshot.training.train`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fewshot.errors import FewshotError

CLI_OPTIONS = {"ways", "shots", "queries", "steps", "lr", "lr_step", "meta_batch", "val_every"}
CLI_OPTIONS |= {"val_episodes", "patience", "seed"}


@dataclass
class TrainConfig:
    """Hyperparameters of a meta-training run (episodes are counted in ``steps``)."""

    ways: int = 60
    shots: int = 1
    queries: int = 5
    steps: int = 10_000
    lr: float = 1e-3
    lr_step: int = 2_000  # multiply the learning rate by lr_gamma every lr_step steps; 0 = constant
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    meta_batch: int = 1  # episodes whose losses are averaged per optimiser step (one meta-step)
    val_ways: int = 5
    val_shots: int = 1
    val_queries: int = 15
    val_episodes: int = 200
    val_every: int = 500
    patience: int = 0  # validations without improvement before stopping; 0 = never stop early
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True  # used on CUDA only
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse impossible settings in one line naming the option (``--steps``, ...)."""
        minimum = {"ways": 2, "val_ways": 2, "lr_step": 0, "patience": 0, "seed": 0}
        for name in ("shots", "queries", "steps", "meta_batch", "val_shots", "val_queries"):
            minimum[name] = 1
        minimum.update(val_episodes=1, val_every=1)
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise FewshotError(f"{_option(name)} must be a whole number of at least {low}, got {value!r}")
        for name in ("lr", "lr_gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise FewshotError(f"{_option(name)} must be a positive number, got {value!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise FewshotError(f"weight_decay must be zero or positive, got {self.weight_decay!r}")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-") if name in CLI_OPTIONS else f"TrainConfig.{name}"


@dataclass
class TrainResult:
    best_val_accuracy: float | None  # None when trained without validation data
    best_step: int
    steps_done: int
    seconds: float
    stopped_early: bool
    checkpoint: str
    resumed_from: int = 0  # the step an earlier, interrupted run had reached (0: a fresh run)
