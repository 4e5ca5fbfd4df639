"""The settings of one adaptation run and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fewshot.errors import FewshotError

KEEP_CHOICES = ("auto", "adapted", "source-only")


@dataclass
class AdaptConfig:
    """Hyperparameters of `fewshot.adapt.run.adapt` (the options of `fewshot adapt`).

    ``source_epochs`` train the source-only model (encoder and a new head, source labels
    only; 0 when starting from a classifier of the source classes); ``epochs`` then adapt
    (network methods; AdaBN needs one pass, the frozen-feature methods none). ``select`` is
    the validator that picks the checkpoint (network methods) or the grid value (frozen
    features); ``keep`` which model the output holds: ``auto`` the adapted one unless
    negative transfer is detected, then the source-only one.
    """

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    source_epochs: int = 10
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    augment: bool = True
    select: str = "im"
    keep: str = "auto"
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        from fewshot.adapt.selection import check_validator

        check_validator(self.select)
        if self.keep not in KEEP_CHOICES:
            raise FewshotError(f"--keep {self.keep!r}: choose one of {', '.join(KEEP_CHOICES)}")
        for name in ("source_epochs", "epochs"):
            if getattr(self, name) < 0:
                raise FewshotError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise FewshotError(f"--batch-size must be at least 2, got {self.batch_size}")
        if self.lr <= 0:
            raise FewshotError(f"--lr must be positive, got {self.lr}")


@dataclass
class Evaluation:
    """One model on the target: accuracy (None without target labels) and every validator's score."""

    accuracy: float | None
    scores: dict[str, float]


@dataclass
class AdaptResult:
    """What an adaptation run found, and which model its output holds."""

    method: str
    params: dict[str, Any]
    select: str
    source_only: Evaluation
    adapted: Evaluation
    negative_transfer: bool
    reason: str
    kept: str
    best_unit: int
    units: int
    checkpoint: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


__all__ = ["KEEP_CHOICES", "AdaptConfig", "AdaptResult", "Evaluation"]
