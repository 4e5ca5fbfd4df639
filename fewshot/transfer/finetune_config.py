"""The settings, epoch records and result of a fine-tuning run (`fewshot.transfer.finetune`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fewshot.errors import FewshotError
from fewshot.transfer.strategies import STRATEGIES


@dataclass
class FinetuneConfig:
    """Hyperparameters of a fine-tuning run.

    ``lr`` is the top block's learning rate: 1e-4 by default, ten times below the 1e-3 that
    `fewshot train` uses from scratch, so pretrained features are adjusted, not erased.
    """

    strategy: str = "full"
    freeze: int = 0  # blocks frozen at the input side (partial; also a floor for gradual)
    epochs: int = 20
    lr: float = 1e-4
    head_lr: float = 1e-3
    lr_decay: float = 1.0  # discriminative rates: block i of n gets lr * lr_decay ** (n-1-i)
    weight_decay: float = 1e-4
    batch_size: int = 64
    augment: bool = True
    hflip: bool = False  # horizontal flips (off by default: wrong for characters and text)
    # every BatchNorm keeps its pretrained running statistics (eval mode) while weights train:
    # with few labels, batch statistics of 32 images drift away from them and eval-mode accuracy
    # collapses (EfficientNet-Lite0, 10 Fashion-MNIST images per class: 39% vs 71%)
    freeze_batchnorm: bool = False
    val_fraction: float = 0.2  # items per class held out for validation when no val set is given
    patience: int = 5  # epochs without improvement before stopping; 0 = never stop early
    unfreeze_every: int = 2  # gradual: epochs per phase
    normalize: bool = False  # L2-normalise embeddings before the head
    head_init: str = "prototypes"  # "prototypes": start as nearest class mean; "random"
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True  # CUDA only

    def check(self) -> None:
        """Refuse impossible settings in one line naming the option (``--epochs``, ...)."""
        if self.strategy not in STRATEGIES:
            raise FewshotError(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        minimum = {"epochs": 1, "batch_size": 1, "unfreeze_every": 1, "freeze": 0, "patience": 0, "seed": 0}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise FewshotError(f"{_option(name)} must be a whole number of at least {low}, got {value!r}")
        for name in ("lr", "head_lr", "lr_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise FewshotError(f"{_option(name)} must be a positive number, got {value!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise FewshotError(f"--weight-decay must be zero or positive, got {self.weight_decay!r}")
        if self.head_init not in ("prototypes", "random"):
            raise FewshotError(f"head_init must be 'prototypes' or 'random', got {self.head_init!r}")
        if not 0 < self.val_fraction < 1:
            raise FewshotError(f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class EpochRecord:
    epoch: int
    trainable_blocks: int
    frozen_blocks: list[bool]
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float


@dataclass
class FinetuneResult:
    best_val_accuracy: float
    best_epoch: int
    epochs_done: int
    stopped_early: bool
    checkpoint: str | None
    history: list[EpochRecord] = field(default_factory=list)
